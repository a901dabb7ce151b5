"""Saved models served with no code: scikit-learn, XGBoost, LightGBM and ONNX (PyTorch in
:mod:`.torchmodels`).

The worker's entrypoint ``saved:FORMAT:FILE`` (see ``Manifest.worker_entrypoint``) names the
model file, relative to the model's folder, and its format, detected at publish. The framework
is imported here, lazily, from the model's own environment; at import time this module needs
the standard library only.

A tabular model (scikit-learn, XGBoost, LightGBM) takes JSON rows: a list of feature rows, one
row, or an object of named features (a list of such objects too) where the model knows its
feature names. It answers ``{"predictions": [...]}`` for rows and ``{"prediction": ...}`` for
one row, with ``probabilities`` (and ``classes``) for classifiers. An ONNX model takes its
single input's tensor as nested lists (rows, or one row), or an object of its inputs by name,
and answers an object of its outputs by name. Batches of calls are stacked into one array and
the model runs once (:meth:`_Served.predict_batch`).
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable
from typing import Any

from .loader import LoadedModel

__all__ = ["InvalidRows", "load_saved"]


class InvalidRows(ValueError):
    """The input is not rows the model takes: the worker reports it as ``invalid_input``."""


def load_saved(source_dir: str, entrypoint: str) -> LoadedModel:
    """Load the saved model ``entrypoint`` (``saved:FORMAT:FILE``) names, from ``source_dir``."""
    _, model_format, file = entrypoint.split(":", 2)
    model_class = None
    if model_format == "torch-state-dict":  # saved:FORMAT:MODULE:CLASS:FILE
        module, class_name, file = file.split(":", 2)
        model_class = f"{module}:{class_name}"
    root = os.path.realpath(source_dir)
    path = os.path.realpath(os.path.join(root, file))  # noqa: PTH118 - stdlib-only runtime
    if not path.startswith(root + os.sep) or not os.path.isfile(path):  # noqa: PTH113
        raise ValueError(f"the saved model {file!r} is not a file inside the model folder")
    served: _Served
    if model_format == "torchscript":
        from .torchmodels import load_torchscript  # it builds on this module's _Served

        served = load_torchscript(path)
    elif model_class is not None:
        from .torchmodels import load_state_dict

        served = load_state_dict(root, model_class, path)
    else:
        loader = _LOADERS.get(model_format)
        if loader is None:
            raise ValueError(f"saved-model format {model_format!r} is not one this runtime serves")
        served = loader(path)
    return LoadedModel(
        "class", served.predict, served.predict_batch, served.input_schema(), served.output_schema()
    )


def _lists(value: Any) -> Any:
    """A tensor (as the Open Inference Protocol sends it) as the nested lists JSON would be:
    BYTES as strings where they are UTF-8."""
    if not (hasattr(value, "ndim") and hasattr(value, "tolist")):
        return value
    plain = value.tolist()
    return _texts(plain) if getattr(value.dtype, "kind", "") == "O" else plain


def _texts(value: Any) -> Any:
    if isinstance(value, list):
        return [_texts(item) for item in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


class _Served:
    """A model that answers a stacked array of rows; subclasses load and run it."""

    def split(self, value: Any) -> tuple[Any, bool]:
        """``(rows, single)``: the input as a list of rows, and whether it was one row."""
        raise NotImplementedError

    def run(self, rows: list[Any]) -> dict[str, Any]:
        """Each output for the stacked ``rows``: a sequence with one entry per row."""
        raise NotImplementedError

    def input_schema(self) -> dict[str, Any]:
        return {}

    def output_schema(self) -> dict[str, Any]:
        return {}

    def predict(self, value: Any) -> Any:
        rows, single = self.split(_lists(value))
        return self.answer(self.run(rows), 0, len(rows), single)

    def predict_batch(self, inputs: list[Any]) -> list[Any]:
        parts = [self.split(_lists(value)) for value in inputs]
        stacked: list[Any] = []
        for rows, _single in parts:
            stacked.extend(rows)
        outputs = self.run(stacked)
        answers = []
        start = 0
        for rows, single in parts:
            answers.append(self.answer(outputs, start, start + len(rows), single))
            start += len(rows)
        return answers

    def answer(self, outputs: dict[str, Any], start: int, end: int, single: bool) -> Any:
        raise NotImplementedError


# -- tabular models: scikit-learn, XGBoost, LightGBM --------------------------------------------
class _Tabular(_Served):
    features: list[str] | None = None
    n_features: int | None = None
    classes: list[Any] | None = None
    classifier = False

    def split(self, value: Any) -> tuple[list[Any], bool]:
        if isinstance(value, dict):
            return [self._named(value)], True
        if not isinstance(value, list) or not value:
            raise InvalidRows(
                "send a list of feature rows, one row (a list of features)"
                + (", or an object of named features" if self.features else "")
            )
        if all(isinstance(row, dict) for row in value):
            rows = [self._named(row) for row in value]
            single = False
        elif all(isinstance(row, list) for row in value):
            rows, single = value, False
        elif not any(isinstance(item, (list, dict)) for item in value):
            rows, single = [value], True
        else:
            raise InvalidRows("rows must all be lists of features, or all objects")
        for index, row in enumerate(rows):
            if self.n_features is not None and len(row) != self.n_features:
                raise InvalidRows(
                    f"row {index} has {len(row)} features; the model takes {self.n_features}"
                )
        return rows, single

    def _named(self, row: dict[str, Any]) -> list[Any]:
        if not self.features:
            raise InvalidRows(
                "this model does not know its features' names: send each row as a list"
            )
        missing = [name for name in self.features if name not in row]
        unknown = [name for name in row if name not in self.features]
        if missing or unknown:
            raise InvalidRows(
                f"named features must be exactly the model's {self.features}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {unknown}" if unknown else "")
            )
        return [row[name] for name in self.features]

    def answer(self, outputs: dict[str, Any], start: int, end: int, single: bool) -> Any:
        predictions = outputs["predictions"][start:end]
        probabilities = outputs.get("probabilities")
        if single:
            out: dict[str, Any] = {"prediction": predictions[0]}
            if probabilities is not None:
                out["probabilities"] = probabilities[start]
        else:
            out = {"predictions": predictions}
            if probabilities is not None:
                out["probabilities"] = probabilities[start:end]
        if self.classes is not None:
            out["classes"] = self.classes
        return out

    def input_schema(self) -> dict[str, Any]:
        row: dict[str, Any] = {"type": "array", "items": {"type": "number"}}
        if self.n_features is not None:
            row.update(minItems=self.n_features, maxItems=self.n_features)
        shapes: list[dict[str, Any]] = [{"type": "array", "items": row, "minItems": 1}, row]
        if self.features:
            named = {
                "type": "object",
                "properties": {name: {"type": "number"} for name in self.features},
                "required": list(self.features),
                "additionalProperties": False,
            }
            shapes += [named, {"type": "array", "items": named, "minItems": 1}]
        return {"anyOf": shapes}

    def output_schema(self) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "predictions": {"type": "array"},
            "prediction": {},
        }
        if self.classifier:
            properties["probabilities"] = {"type": "array"}
            properties["classes"] = {"type": "array"}
        return {"type": "object", "properties": properties}


class _Sklearn(_Tabular):
    def __init__(self, path: str, model_format: str) -> None:
        if model_format == "joblib":
            self.model = importlib.import_module("joblib").load(path)
        elif model_format == "skops":
            sio = importlib.import_module("skops.io")
            untrusted = sio.get_untrusted_types(file=path)
            if untrusted:
                raise ValueError(
                    "the skops file holds types skops does not trust, which would run code "
                    f"when loaded: {untrusted}; save the model with trusted types, or publish "
                    "it as joblib (served as code, in the model's sandbox)"
                )
            self.model = sio.load(path)
        else:
            import pickle

            with open(path, "rb") as handle:  # noqa: PTH123 - stdlib-only runtime
                self.model = pickle.load(handle)  # noqa: S301 - a pickle is the model's code
        if not callable(getattr(self.model, "predict", None)):
            raise TypeError(f"the saved {type(self.model).__name__} has no predict method")
        names = getattr(self.model, "feature_names_in_", None)
        self.features = [str(n) for n in names] if names is not None else None
        count = getattr(self.model, "n_features_in_", None)
        self.n_features = int(count) if count is not None else None
        classes = getattr(self.model, "classes_", None)
        self.proba = _method(self.model, "predict_proba")
        self.classifier = self.proba is not None and classes is not None
        self.classes = _listed(classes) if self.classifier else None

    def _frame(self, rows: list[Any]) -> Any:
        if self.features:
            try:
                pandas = importlib.import_module("pandas")
            except ImportError:
                pass
            else:  # by name: a pipeline may pick its columns by name
                return pandas.DataFrame(rows, columns=self.features)
        return _numpy().asarray(rows)

    def run(self, rows: list[Any]) -> dict[str, Any]:
        data = self._frame(rows)
        out = {"predictions": _listed(self.model.predict(data))}
        if self.classifier and self.proba is not None:
            out["probabilities"] = _listed(self.proba(data))
        return out


class _XGBoost(_Tabular):
    def __init__(self, path: str) -> None:
        self.xgboost = importlib.import_module("xgboost")
        self.booster = self.xgboost.Booster()
        with open(path, "rb") as model:  # noqa: PTH123 - stdlib-only runtime
            # From bytes, XGBoost tells JSON from UBJ by content, not by the file's extension.
            self.booster.load_model(bytearray(model.read()))
        self.n_features = int(self.booster.num_features())
        names = self.booster.feature_names
        self.features = list(names) if names else None
        config = json.loads(self.booster.save_config())
        self.objective = str(config["learner"]["objective"]["name"])
        self.classifier = self.objective in ("binary:logistic", "multi:softprob")
        if self.classifier:
            count = int(config["learner"]["learner_model_param"].get("num_class", "0") or 0)
            self.classes = list(range(max(count, 2)))

    def run(self, rows: list[Any]) -> dict[str, Any]:
        numpy = _numpy()
        matrix = self.xgboost.DMatrix(
            numpy.asarray(rows, dtype=numpy.float32), feature_names=self.features
        )
        raw = self.booster.predict(matrix)
        return _classified(numpy, self.objective in ("binary:logistic",), raw, self.classifier)


class _LightGBM(_Tabular):
    def __init__(self, path: str) -> None:
        self.booster = importlib.import_module("lightgbm").Booster(model_file=path)
        self.n_features = int(self.booster.num_feature())
        names = [str(n) for n in self.booster.feature_name()]
        if names and not all(re.match(r"^Column_\d+$", n) for n in names):
            self.features = names
        objective = _text_model_objective(path)
        self.binary = objective.startswith(("binary", "cross_entropy"))
        self.classifier = self.binary or objective.startswith(("multiclass", "softmax"))
        if self.classifier:
            self.classes = list(range(max(int(self.booster.num_model_per_iteration()), 2)))

    def run(self, rows: list[Any]) -> dict[str, Any]:
        numpy = _numpy()
        raw = self.booster.predict(numpy.asarray(rows, dtype=numpy.float64))
        return _classified(numpy, self.binary, raw, self.classifier)


def _text_model_objective(path: str) -> str:
    """The ``objective=`` line of a LightGBM text model's header (``multiclass num_class:3``)."""
    with open(path, encoding="utf-8", errors="replace") as model:  # noqa: PTH123
        for line in model:
            if line.startswith("objective="):
                return line[len("objective=") :].strip()
            if line.startswith("Tree="):
                break
    return ""


def _classified(numpy: Any, binary: bool, raw: Any, classifier: bool) -> dict[str, Any]:
    """Predictions (and probabilities) from a booster's raw answer for the rows."""
    if not classifier:
        return {"predictions": _listed(raw)}
    probabilities = numpy.vstack((1 - raw, raw)).T if binary else raw
    predicted = numpy.argmax(probabilities, axis=1)
    return {"predictions": _listed(predicted), "probabilities": _listed(probabilities)}


# -- ONNX ----------------------------------------------------------------------------------------
_ONNX_TYPES = {
    "tensor(float)": ("float32", "number"),
    "tensor(double)": ("float64", "number"),
    "tensor(float16)": ("float16", "number"),
    "tensor(int64)": ("int64", "integer"),
    "tensor(int32)": ("int32", "integer"),
    "tensor(int16)": ("int16", "integer"),
    "tensor(int8)": ("int8", "integer"),
    "tensor(uint8)": ("uint8", "integer"),
    "tensor(uint16)": ("uint16", "integer"),
    "tensor(uint32)": ("uint32", "integer"),
    "tensor(uint64)": ("uint64", "integer"),
    "tensor(bool)": ("bool", "boolean"),
    "tensor(string)": ("object", "string"),
}


class _Onnx(_Served):
    def __init__(self, path: str) -> None:
        runtime = importlib.import_module("onnxruntime")
        options = runtime.SessionOptions()
        self.session = runtime.InferenceSession(
            path, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.inputs = list(self.session.get_inputs())
        self.outputs = list(self.session.get_outputs())
        first: list[Any] = list(self.inputs[0].shape or []) if len(self.inputs) == 1 else []
        # Calls are stacked into one run only along a free first (batch) dimension.
        self.stackable = bool(first) and not isinstance(first[0], int)

    def _dtype(self, type_name: str) -> Any:
        return _ONNX_TYPES.get(type_name, ("float32", "number"))[0]

    def split(self, value: Any) -> tuple[Any, bool]:
        if isinstance(value, dict) or len(self.inputs) != 1:
            return [self._feeds(value)], True
        rank = len(self.inputs[0].shape or [])
        depth = _depth(value)
        if rank and depth == rank - 1:  # one row of a batch dimension
            return [value], True
        if depth != rank and rank:
            raise InvalidRows(
                f"input '{self.inputs[0].name}' has rank {rank}; got nested lists {depth} deep"
            )
        return list(value), False

    def _feeds(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            names = [i.name for i in self.inputs]
            raise InvalidRows(f"send an object of the model's inputs by name: {names}")
        wanted = {i.name for i in self.inputs}
        if set(value) != wanted:
            raise InvalidRows(f"the model's inputs are {sorted(wanted)}; got {sorted(value)}")
        numpy = _numpy()
        return {
            i.name: numpy.asarray(value[i.name], dtype=self._dtype(i.type)) for i in self.inputs
        }

    def predict(self, value: Any) -> Any:
        if isinstance(value, dict) or len(self.inputs) != 1:
            return self._named(self.session.run(None, self._feeds(value)))
        return super().predict(value)

    def predict_batch(self, inputs: list[Any]) -> list[Any]:
        if not self.stackable or any(isinstance(v, dict) for v in inputs):
            return [self.predict(value) for value in inputs]
        return super().predict_batch(inputs)

    def run(self, rows: list[Any]) -> dict[str, Any]:
        numpy = _numpy()
        single = self.inputs[0]
        data = numpy.asarray(rows, dtype=self._dtype(single.type))
        return self._named(self.session.run(None, {single.name: data}))

    def _named(self, results: list[Any]) -> dict[str, Any]:
        return {o.name: _listed(results[index]) for index, o in enumerate(self.outputs)}

    def answer(self, outputs: dict[str, Any], start: int, end: int, single: bool) -> Any:
        if single:
            return {name: value[start] for name, value in outputs.items()}
        return {name: value[start:end] for name, value in outputs.items()}

    def input_schema(self) -> dict[str, Any]:
        named = _tensors_object(self.inputs)
        if len(self.inputs) != 1:
            return named
        tensor = _tensor_schema(self.inputs[0])
        shapes = [tensor, named]
        if self.stackable:
            shapes.append(_tensor_schema(self.inputs[0], drop_first=True))
        return {"anyOf": shapes}

    def output_schema(self) -> dict[str, Any]:
        return _tensors_object(self.outputs)


def _tensor_schema(arg: Any, drop_first: bool = False) -> dict[str, Any]:
    dtype, leaf = _ONNX_TYPES.get(arg.type, (arg.type, "number"))
    shape = list(arg.shape or [])
    shown = "[" + ", ".join(str(d) if isinstance(d, int) else "?" for d in shape) + "]"
    if drop_first:
        shape = shape[1:]
    schema: dict[str, Any] = {"type": leaf}
    for dim in reversed(shape):
        schema = {"type": "array", "items": schema}
        if isinstance(dim, int):
            schema.update(minItems=dim, maxItems=dim)
    described = f"{arg.name}: {dtype} tensor of shape {shown}"
    schema["description"] = described + (", one row" if drop_first else "")
    return schema


def _tensors_object(args: list[Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {a.name: _tensor_schema(a) for a in args},
        "required": [a.name for a in args],
    }


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    return depth


# -- helpers -------------------------------------------------------------------------------------
def _numpy() -> Any:
    return importlib.import_module("numpy")


def _listed(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else list(value)


def _method(obj: Any, name: str) -> Callable[..., Any] | None:
    try:  # a pipeline's predict_proba exists only when its last step has one
        method = getattr(obj, name, None)
    except AttributeError:
        return None
    return method if callable(method) else None


def _sentence_transformers(path: str) -> _Served:
    from .embeddings import load_sentence_transformers  # it builds on this module's _Served

    return load_sentence_transformers(path)


def _mlflow(path: str) -> _Served:
    from .mlflowmodels import load_mlflow

    return load_mlflow(path)


_LOADERS: dict[str, Callable[[str], _Served]] = {
    "joblib": lambda path: _Sklearn(path, "joblib"),
    "pickle": lambda path: _Sklearn(path, "pickle"),
    "skops": lambda path: _Sklearn(path, "skops"),
    "xgboost-json": _XGBoost,
    "xgboost-ubj": _XGBoost,
    "lightgbm": _LightGBM,
    "onnx": _Onnx,
    "sentence-transformers": _sentence_transformers,
    "mlflow": _mlflow,
}
