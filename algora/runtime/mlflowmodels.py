"""MLflow models served with no code: a model folder with an ``MLmodel`` file, loaded with
``mlflow.pyfunc.load_model`` (its pyfunc flavor) from the model's own environment.

The input is rows: a list of rows (lists of values, or objects of named columns), one row, or
an object of columns (each a list of values). Rows become a pandas DataFrame when the model's
signature names its columns (or the rows do), else an array. The answer is
``{"predictions": [...]}`` for rows and ``{"prediction": ...}`` for one row. Calls batched
together run as one frame.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from .saved import InvalidRows, _Served

__all__ = ["load_mlflow"]


def load_mlflow(mlmodel: str) -> _Served:
    return _MLflow(os.path.dirname(mlmodel))  # noqa: PTH120 - stdlib-only runtime


class _MLflow(_Served):
    def __init__(self, folder: str) -> None:
        self.model = importlib.import_module("mlflow.pyfunc").load_model(folder)
        schema = self.model.metadata.get_input_schema()
        self.columns: list[str] | None = None
        self.column_type: str | None = None
        """The JSON type of every column, when they share one (rows are then a tensor)."""
        if schema is not None and not schema.is_tensor_spec() and schema.has_input_names():
            self.columns = [str(name) for name in schema.input_names()]
            kinds = {_JSON_TYPES.get(getattr(t, "name", str(t))) for t in schema.input_types()}
            self.column_type = kinds.pop() if len(kinds) == 1 else None

    def split(self, value: Any) -> tuple[list[Any], bool]:
        if isinstance(value, dict):
            if value and all(isinstance(column, list) for column in value.values()):
                lengths = {len(column) for column in value.values()}
                if len(lengths) != 1:
                    raise InvalidRows("every column must have as many values as the others")
                names = list(value)
                columns = zip(*value.values(), strict=True)  # as long as each other: checked
                return [dict(zip(names, row, strict=True)) for row in columns], False
            return [value], True
        if not isinstance(value, list) or not value:
            raise InvalidRows("send a list of rows, one row, or an object of columns")
        if all(isinstance(row, (list, dict)) for row in value):
            return value, False
        if not any(isinstance(item, (list, dict)) for item in value):
            return [value], True
        raise InvalidRows("rows must all be lists of values, or all objects")

    def run(self, rows: list[Any]) -> dict[str, Any]:
        pandas = importlib.import_module("pandas")
        if all(isinstance(row, dict) for row in rows):
            data = pandas.DataFrame(rows)
        elif any(isinstance(row, dict) for row in rows):
            raise InvalidRows("rows must all be lists of values, or all objects")
        elif self.columns is not None:
            if any(len(row) != len(self.columns) for row in rows):
                raise InvalidRows(f"each row must have the model's {len(self.columns)} columns")
            data = pandas.DataFrame(rows, columns=self.columns)
        else:
            data = importlib.import_module("numpy").asarray(rows)
        try:
            predicted = self.model.predict(data)
        except importlib.import_module("mlflow.exceptions").MlflowException as error:
            raise InvalidRows(f"the input does not fit the model's signature: {error}") from None
        return {"predictions": _plain(predicted)}

    def answer(self, outputs: dict[str, Any], start: int, end: int, single: bool) -> Any:
        predictions = outputs["predictions"]
        return (
            {"prediction": predictions[start]}
            if single
            else {"predictions": predictions[start:end]}
        )

    def input_schema(self) -> dict[str, Any]:
        if self.columns is None:
            return {}
        row = {"type": "object", "properties": {c: {} for c in self.columns}}
        forms: list[dict[str, Any]] = [{"type": "array", "minItems": 1}, row]
        if self.column_type is not None:  # rows of one type: what the tensor protocols send
            width = len(self.columns)
            values = {"type": self.column_type}
            one_row = {"type": "array", "items": values, "minItems": width, "maxItems": width}
            forms.insert(0, {"type": "array", "items": one_row})
        return {"anyOf": forms}


_JSON_TYPES = {
    "double": "number", "float": "number", "long": "integer", "integer": "integer",
    "string": "string", "boolean": "boolean",
}  # fmt: skip
"""MLflow's column types as JSON types (others, such as binary or datetime, make no tensor)."""


def _plain(value: Any) -> list[Any]:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and hasattr(value, "columns"):  # a DataFrame: one object per row
        return list(to_dict(orient="records"))
    tolist = getattr(value, "tolist", None)
    return list(tolist()) if callable(tolist) else list(value)
