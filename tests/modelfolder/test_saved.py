"""A folder holding a saved model and no manifest is a model: its manifest is derived from the
file's content (format), the folder's name and the format's own requirements."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from algora.errors import InvalidManifest, UnsupportedModelFormat
from algora.modelfolder.formats import FORMATS
from algora.modelfolder.layouts import find_manifest
from algora.modelfolder.pickled import recorded_sklearn_version
from algora.modelfolder.saved import requirements_for, saved_lineage

from ..helpers import matmul_onnx_model, saved_models


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("saved")
    script = saved_models()
    return {
        "onnx": script.make_onnx(root / "onnx"),
        "lightgbm": script.make_lightgbm(root / "lightgbm"),
        "joblib": script.make_sklearn(root / "joblib"),
    }


def test_a_folder_with_a_saved_model_is_named_after_the_folder(
    made: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "My_Churn.Model"
    folder.mkdir()
    shutil.copy(made["lightgbm"], folder / "booster")  # the name says nothing of the format
    (folder / "README.md").write_text("# churn\n")
    found = find_manifest(folder)
    manifest = found.manifest
    assert manifest.model.name == "my_churn-model"
    assert manifest.saved is not None
    assert (manifest.saved.file, manifest.saved.format) == ("booster", "lightgbm")
    assert manifest.worker_entrypoint == "saved:lightgbm:booster"
    assert requirements_for(manifest) == list(FORMATS["lightgbm"].requirements)
    assert saved_lineage(manifest) == {
        "saved_model": {"file": "booster", "format": "lightgbm", "safe": True}
    }
    assert "LightGBM" in found.notes[0]
    assert find_manifest(folder, name="churn").manifest.model.name == "churn"


def test_pickle_based_formats_are_not_safe(made: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "iris"
    folder.mkdir()
    shutil.copy(made["joblib"], folder / "model.joblib")
    manifest = find_manifest(folder).manifest
    assert saved_lineage(manifest)["saved_model"]["safe"] is False


def test_a_folder_without_any_model_lists_the_formats(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UnsupportedModelFormat) as raised:
        find_manifest(tmp_path)
    assert raised.value.status == 400 and raised.value.code == "unsupported_model_format"
    assert raised.value.details["formats"] == list(FORMATS)
    for model_format in FORMATS.values():
        assert model_format.title in raised.value.message
    assert "algora init" in raised.value.message


def test_several_saved_models_need_a_manifest_to_pick_one(
    made: dict[str, Path], tmp_path: Path
) -> None:
    shutil.copy(made["onnx"], tmp_path / "a.onnx")
    shutil.copy(made["lightgbm"], tmp_path / "b.txt")
    with pytest.raises(InvalidManifest, match="several saved models"):
        find_manifest(tmp_path)
    (tmp_path / "algora.toml").write_text('[model]\nname = "pick"\n[saved]\nfile = "b.txt"\n')
    manifest = find_manifest(tmp_path).manifest
    assert manifest.saved is not None and manifest.saved.format == "lightgbm"


@pytest.mark.parametrize(
    ("saved", "message"),
    [
        ('file = "../outside.onnx"', "not a file inside the model folder"),
        ('file = "missing.onnx"', "not a file inside the model folder"),
        ('file = "a.onnx"\nformat = "lightgbm"', "holds a onnx model"),
        ('file = "notes.txt"', "not a saved model in a format Algora recognises"),
    ],
)
def test_a_manifest_naming_a_saved_model_is_checked(
    made: dict[str, Path], tmp_path: Path, saved: str, message: str
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(made["onnx"], folder / "a.onnx")
    shutil.copy(made["onnx"], tmp_path / "outside.onnx")
    (folder / "notes.txt").write_text("hello")
    (folder / "algora.toml").write_text(f'[model]\nname = "m"\n[saved]\n{saved}\n')
    with pytest.raises(InvalidManifest, match=message):
        find_manifest(folder)


def test_onnx_external_data_must_stay_in_the_folder(tmp_path: Path) -> None:
    import onnx

    model = matmul_onnx_model()
    folder = tmp_path / "ext"
    folder.mkdir()
    onnx.save(model, folder / "model.onnx", save_as_external_data=True,
              location="weights.bin", size_threshold=0)  # fmt: skip
    assert find_manifest(folder).manifest.saved is not None
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../secret.bin"
    onnx.save(model, folder / "model.onnx")
    (tmp_path / "secret.bin").write_bytes(b"\0" * 32)
    with pytest.raises(InvalidManifest, match=r"keeps tensor data in '\.\./secret\.bin'"):
        find_manifest(folder)


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3)])
def test_a_pickles_scikit_learn_version_is_read_and_pinned(
    tmp_path: Path, compress: object
) -> None:
    import joblib
    import sklearn
    from sklearn.ensemble import RandomForestClassifier

    x, y = saved_models().iris()
    folder = tmp_path / "forest"
    folder.mkdir()
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y)
    joblib.dump(model, folder / "forest.joblib", compress=compress)
    assert recorded_sklearn_version(folder / "forest.joblib") == sklearn.__version__
    found = find_manifest(folder)
    assert f"scikit-learn {sklearn.__version__}" in found.notes[1]
    assert requirements_for(found.manifest, folder)[0] == f"scikit-learn=={sklearn.__version__}"
    assert requirements_for(found.manifest)[0] == "scikit-learn>=1.5,<2"  # folder unknown


def test_a_pickle_without_a_recorded_version_keeps_the_range(tmp_path: Path) -> None:
    import pickle
    from fractions import Fraction

    (tmp_path / "model.pkl").write_bytes(pickle.dumps(Fraction(1, 3), protocol=4))
    assert recorded_sklearn_version(tmp_path / "model.pkl") is None
    stated = pickle.dumps({"_sklearn_version": "not a version", "x": Fraction(1, 2)}, protocol=4)
    (tmp_path / "model.pkl").write_bytes(stated)
    assert recorded_sklearn_version(tmp_path / "model.pkl") is None
    manifest = find_manifest(tmp_path).manifest
    assert requirements_for(manifest, tmp_path)[0] == "scikit-learn>=1.5,<2"


def test_an_onnx_model_with_an_unreadable_initializer_is_refused(tmp_path: Path) -> None:
    graph = b"\x0a\x00" + b"\x62\x00" + b"\x2a\x02\xff\xff"  # node, output, broken initializer
    model = b"\x08\x08" + b"\x42\x02\x10\x11" + b"\x3a" + bytes([len(graph)]) + graph
    (tmp_path / "model.onnx").write_bytes(model)
    with pytest.raises(InvalidManifest, match="initializer that cannot be read"):
        find_manifest(tmp_path)
