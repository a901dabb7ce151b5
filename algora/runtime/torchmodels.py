"""PyTorch models served with no code of the caller's: TorchScript, and a ``state_dict`` whose
class the model folder holds.

A TorchScript archive is loaded with ``torch.jit.load``; a ``state_dict`` with
``torch.load(..., weights_only=True)`` (which unpickles tensors and containers only) into an
instance of the class the manifest names (``[saved] class = "model:Net"``, constructed with no
arguments). Both run in eval mode, on the CPU, under ``torch.inference_mode``.

The input is the model's tensor as nested lists, its first dimension the batch: float32 unless
the model says otherwise with an ``input_dtype`` attribute (``"int64"``). An object of named
tensors is passed to ``forward`` by keyword. The output comes back as lists (a tuple or a dict
of tensors as a list or an object of them). Calls batched together are concatenated along the
first dimension and the model runs once, when their shapes allow it. torch is imported here,
lazily, from the model's own environment.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from .saved import InvalidRows, _lists, _Served

__all__ = ["load_state_dict", "load_torchscript"]


def load_torchscript(path: str) -> _Served:
    torch = importlib.import_module("torch")
    return _Torch(torch, torch.jit.load(path, map_location="cpu"))


def load_state_dict(root: str, model_class: str, path: str) -> _Served:
    torch = importlib.import_module("torch")
    module_name, _, class_name = model_class.partition(":")
    if root not in sys.path:
        sys.path.insert(0, root)
    factory = getattr(importlib.import_module(module_name), class_name, None)
    if factory is None:
        raise ValueError(f"the module {module_name!r} defines no {class_name!r}")
    model = factory()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return _Torch(torch, model)


_DATATYPES = {
    "float16": "FP16", "float32": "FP32", "float64": "FP64", "int8": "INT8", "int16": "INT16",
    "int32": "INT32", "int64": "INT64", "uint8": "UINT8", "bool": "BOOL",
}  # fmt: skip
"""The Open Inference Protocol's datatype of each torch dtype (metadata; bfloat16 has none)."""


class _Torch(_Served):
    def __init__(self, torch: Any, module: Any) -> None:
        self.torch = torch
        self.module = module.eval()
        dtype = getattr(module, "input_dtype", None)
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else torch.float32
        if not isinstance(self.dtype, torch.dtype):
            raise ValueError(f"the model's input_dtype {dtype!r} is not a torch dtype")

    def _tensor(self, value: Any) -> Any:
        value = _lists(value)
        if not isinstance(value, list) or not value:
            raise InvalidRows(
                "send the input tensor as nested lists of numbers (the first dimension is the "
                "batch), or an object of named tensors"
            )
        try:
            return self.torch.tensor(value, dtype=self.dtype)
        except (TypeError, ValueError, RuntimeError) as error:
            raise InvalidRows(
                f"the input is not a tensor of numbers of one shape: {error}"
            ) from None

    def _forward(self, *args: Any, **kwargs: Any) -> Any:
        with self.torch.inference_mode():
            return self.module(*args, **kwargs)

    def predict(self, value: Any) -> Any:
        if isinstance(value, dict):
            named = {name: self._tensor(tensor) for name, tensor in value.items()}
            return _plain(self._forward(**named))
        return _plain(self._forward(self._tensor(value)))

    def predict_batch(self, inputs: list[Any]) -> list[Any]:
        if any(isinstance(value, dict) for value in inputs):
            return [self.predict(value) for value in inputs]
        tensors = [self._tensor(value) for value in inputs]
        shapes = {tuple(t.shape[1:]) for t in tensors}
        if len(shapes) != 1 or any(t.dim() == 0 for t in tensors):
            return [_plain(self._forward(t)) for t in tensors]
        sizes = [int(t.shape[0]) for t in tensors]
        out = self._forward(self.torch.cat(tensors))
        if not isinstance(out, self.torch.Tensor) or out.dim() == 0 or out.shape[0] != sum(sizes):
            return [_plain(self._forward(t)) for t in tensors]  # not one row out per row in
        return [_plain(part) for part in self.torch.split(out, sizes)]

    def input_schema(self) -> dict[str, Any]:
        dtype = str(self.dtype).removeprefix("torch.")
        return {
            "anyOf": [{"type": "array", "x-tensor": _DATATYPES.get(dtype)}, {"type": "object"}],
            "description": f"a {dtype} tensor as nested lists, its first dimension the batch; "
            "or an object of named tensors",
        }


def _plain(value: Any) -> Any:
    """A model's output as JSON values: tensors as nested lists."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value
