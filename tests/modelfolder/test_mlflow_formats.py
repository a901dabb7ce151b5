"""An MLflow model folder is recognised by its ``MLmodel`` (a pyfunc flavor naming its loader),
stands for the files inside it, and brings the requirements MLflow recorded for it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algora.modelfolder.formats import FORMATS, detect
from algora.modelfolder.layouts import find_manifest
from algora.modelfolder.saved import find_model_files, requirements_for

from ..helpers import saved_models

MLMODEL = """\
artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    pickled_model: model.pkl
    serialization_format: cloudpickle
mlflow_version: 2.17.0
"""

CONDA = """\
channels:
- conda-forge
dependencies:
- python=3.11.7
- pip<=24.2
- pip:
  - mlflow==2.17.0
  - cloudpickle==3.0.0
  - 'scikit-learn==1.5.2'
name: mlflow-env
"""


def _folder(root: Path, mlmodel: str = MLMODEL) -> Path:
    script = saved_models()
    pickled = script.make_sklearn(root, pickled=True)
    pickled.rename(root / "model.pkl")
    (root / "MLmodel").write_text(mlmodel)
    (root / "conda.yaml").write_text(CONDA)
    return root / "MLmodel"


def test_the_folder_is_one_model_whose_pickle_is_a_part(tmp_path: Path) -> None:
    marker = _folder(tmp_path / "churn")
    assert detect(marker) == "mlflow"
    assert FORMATS["mlflow"].safe is False
    assert find_model_files(tmp_path / "churn") == [("MLmodel", "mlflow")]
    found = find_manifest(tmp_path / "churn", name=None)
    assert found.manifest.worker_entrypoint == "saved:mlflow:MLmodel"
    # No requirements.txt: conda.yaml's pip section, as MLflow recorded it.
    assert requirements_for(found.manifest, tmp_path / "churn") == [
        "mlflow==2.17.0",
        "cloudpickle==3.0.0",
        "scikit-learn==1.5.2",
    ]
    (tmp_path / "churn" / "requirements.txt").write_text("mlflow-skinny==2.17.0\nnumpy\n")
    assert requirements_for(found.manifest, tmp_path / "churn") == [
        "mlflow-skinny==2.17.0",
        "numpy",
    ]


def test_a_model_in_a_subfolder_keeps_its_own_requirements(tmp_path: Path) -> None:
    _folder(tmp_path / "project" / "model")
    found = find_manifest(tmp_path / "project", name="project")
    saved = found.manifest.saved
    assert saved is not None and saved.file == "model/MLmodel"
    assert requirements_for(found.manifest, tmp_path / "project")[0] == "mlflow==2.17.0"


@pytest.mark.parametrize(
    "mlmodel",
    [
        MLMODEL.replace("python_function", "spark"),  # no pyfunc flavor
        MLMODEL.replace("    loader_module: mlflow.sklearn\n", ""),
        MLMODEL.replace("flavors:", "flavours:"),
        "flavors: {}\n",
    ],
)
def test_an_mlmodel_without_a_pyfunc_loader_is_no_model(tmp_path: Path, mlmodel: str) -> None:
    (tmp_path / "MLmodel").write_text(mlmodel)
    assert detect(tmp_path / "MLmodel") is None


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tail=st.binary(max_size=512) | st.text(max_size=300).map(str.encode))
def test_random_bytes_after_flavors_are_no_model(scratch: Path, tail: bytes) -> None:
    probe = scratch / "MLmodel"
    probe.write_bytes(b"flavors:\n  python_function:\n" + tail)
    assert detect(probe) in (None, "mlflow")
    if b"loader_module" not in tail:
        assert detect(probe) is None
