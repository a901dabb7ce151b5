"""PyTorch's archives are recognised by their structure: TorchScript (code and constants) and a
state_dict (a pickle of tensors only); random, damaged or look-alike zips are no model, and a
state_dict needs the class it fits named in the manifest."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algora.errors import InvalidManifest
from algora.modelfolder.formats import FORMATS, detect
from algora.modelfolder.layouts import find_manifest
from algora.modelfolder.saved import requirements_for

from ..helpers import saved_models

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("torch-formats")
    script = saved_models()
    files = {
        "torchscript": script.make_torchscript(root / "ts"),
        "torch-state-dict": script.make_state_dict(root / "sd"),
    }
    blind = {}
    for index, (kind, path) in enumerate(files.items()):
        blind[kind] = root / f"weights{index}.bin"
        blind[kind].write_bytes(path.read_bytes())
    return blind


def test_torch_archives_are_detected_whatever_their_name(made: dict[str, Path]) -> None:
    for kind, path in made.items():
        assert detect(path) == kind
        assert FORMATS[kind].safe is False
        assert FORMATS[kind].requirements == ("torch==2.13.0",)


def test_a_whole_pickled_module_and_look_alike_zips_are_no_model(tmp_path: Path) -> None:
    whole = tmp_path / "whole.pt"
    torch.save(torch.nn.Linear(2, 2), whole)  # names torch's class: still code, not weights
    assert detect(whole) is None
    with zipfile.ZipFile(tmp_path / "loose.zip", "w") as archive:
        archive.writestr("data.pkl", b"\x80\x02}q\x00.")  # no folder: not torch's layout
        archive.writestr("version", "3")
    assert detect(tmp_path / "loose.zip") is None
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as archive:
        archive.writestr("a/data.pkl", b"\x80\x02cos\nsystem\nq\x00.")
        archive.writestr("a/version", "3")
    assert detect(tmp_path / "evil.zip") is None


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pickled=st.binary(max_size=256), code=st.booleans(), constants=st.booleans())
def test_random_pickles_in_torchs_layout_are_never_a_model(
    scratch: Path, pickled: bytes, code: bool, constants: bool
) -> None:
    path = scratch / "probe"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("m/data.pkl", b"\x80" + pickled)
        archive.writestr("m/version", "3")
        if code:
            archive.writestr("m/code/__torch__.py", pickled)
        if constants:
            archive.writestr("m/constants.pkl", pickled)
    assert detect(path) in (None, "torchscript" if code and constants else None)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_damaged_torch_archives_are_never_another_format(
    scratch: Path, made: dict[str, Path], data: st.DataObject
) -> None:
    kind = data.draw(st.sampled_from(sorted(made)))
    original = made[kind].read_bytes()
    cut = data.draw(st.integers(min_value=0, max_value=len(original)))
    flip = data.draw(st.integers(min_value=0, max_value=len(original) - 1))
    damaged = bytearray(original[:cut])
    if flip < len(damaged):
        damaged[flip] ^= 0xFF
    (scratch / "damaged").write_bytes(bytes(damaged))
    assert detect(scratch / "damaged") in (None, kind)


def test_a_state_dict_needs_its_class_named(tmp_path: Path) -> None:
    script = saved_models()
    weights = script.make_state_dict(tmp_path / "net")
    found = find_manifest(tmp_path / "net", name="net")
    saved = found.manifest.saved
    assert saved is not None and saved.model_class == "model:Net"
    assert found.manifest.worker_entrypoint == "saved:torch-state-dict:model:Net:model.pt"
    assert requirements_for(found.manifest, tmp_path / "net") == ["torch==2.13.0"]
    (tmp_path / "net" / "algora.toml").unlink()
    with pytest.raises(InvalidManifest, match=r'class = "model:Net"'):
        find_manifest(tmp_path / "net", name="net")
    bare = tmp_path / "bare"
    bare.mkdir()
    weights.rename(bare / "weights.pt")
    with pytest.raises(InvalidManifest, match="PyTorch state_dict"):
        find_manifest(bare, name="bare")
    (bare / "algora.toml").write_text(
        '[model]\nname = "bare"\n[saved]\nfile = "weights.pt"\nclass = "net:Net"\n'
    )
    with pytest.raises(InvalidManifest, match=r"no net\.py"):
        find_manifest(bare, name="bare")


def test_only_a_state_dict_takes_a_class(made: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(made["torchscript"].read_bytes())
    (tmp_path / "algora.toml").write_text(
        '[model]\nname = "ts"\n[saved]\nfile = "model.pt"\nclass = "model:Net"\n'
    )
    with pytest.raises(InvalidManifest, match="only for a PyTorch state_dict"):
        find_manifest(tmp_path, name="ts")
