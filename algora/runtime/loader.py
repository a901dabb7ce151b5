"""Import a model's entrypoint and present it in one shape, whatever convention it follows.

Conventions (``entrypoint`` is ``"module:attr"``; ``"module"`` alone means ``"module:apply"``):

- a function ``apply(input)`` (the Algorithmia convention), called once per request;
- a class, instantiated once with no arguments; ``load()`` is called once if defined,
  ``predict(input)`` per request and, when defined, ``predict_batch(inputs: list) -> list``;
- an Algorithmia ADK script (``ADK(apply, load).init()`` at its top level): ADK is adapted while
  the module is imported (see :mod:`.adk`), and the algorithm it was handed is served when the
  entrypoint names its ``apply`` or the ``ADK`` object, or is a bare module without ``apply``.

Standard library only.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .adk import AdkAlgorithm, adk_error_type, capture
from .schema import callable_schemas

__all__ = ["LoadedModel", "load_model", "parse_entrypoint"]


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model: one predict callable, an optional batch callable, and its schemas."""

    kind: str
    predict: Callable[[Any], Any]
    predict_batch: Callable[[list[Any]], Any] | None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    error_type: Callable[[BaseException], str] | None = None
    """The ``error_type`` of an exception the model raised (default: its class name)."""
    takes_parameters: bool = False
    """``predict`` has a ``parameters`` argument: a call's parameters (the Open Inference
    Protocol's) are passed in it."""

    def run(self, value: Any, parameters: dict[str, Any] | None = None) -> Any:
        """``predict(value)``, with ``parameters=`` when the call has some and it takes them."""
        if parameters is not None and self.takes_parameters:
            # predict is typed with one argument; takes_parameters says it has this one too
            return self.predict(value, parameters=parameters)  # type: ignore[call-arg]
        return self.predict(value)

    def describe(self) -> dict[str, Any]:
        """The ``model`` object of the ``ready`` message."""
        return {
            "kind": self.kind,
            "batch": self.predict_batch is not None,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
        }


def parse_entrypoint(entrypoint: str) -> tuple[str, list[str]]:
    """``"pkg.module:Attr.inner"`` -> ``("pkg.module", ["Attr", "inner"])``."""
    module, _, attr = entrypoint.partition(":")
    attr = attr or "apply"
    parts = attr.split(".")
    if not module or not all(p.isidentifier() for p in parts):
        raise ValueError(f"invalid entrypoint {entrypoint!r}: expected 'module:attr'")
    if not all(p.isidentifier() for p in module.split(".")):
        raise ValueError(f"invalid entrypoint {entrypoint!r}: bad module name {module!r}")
    return module, parts


def load_model(source_dir: str | Path, entrypoint: str) -> LoadedModel:
    """Import ``entrypoint`` from ``source_dir`` (already first on sys.path) and load it;
    ``saved:FORMAT:FILE`` names a saved model served with no code (:mod:`.saved`)."""
    if entrypoint.startswith("saved:"):
        from .saved import load_saved  # it builds on this module's LoadedModel

        return load_saved(str(source_dir), entrypoint)
    module_name, attrs = parse_entrypoint(entrypoint)
    source = str(Path(source_dir).resolve())
    if source not in sys.path:
        sys.path.insert(0, source)
    package = module_name.partition(".")[0]
    if module_name.startswith("src.") and (Path(source) / package).is_dir():
        # Algorithmia's layout: its runtime ran src/ as the working folder, so algorithms
        # import their sibling files both as ``from .helpers import x`` and ``import helpers``.
        sys.path.insert(1, str(Path(source) / package))
    with capture() as captured:
        obj: Any = importlib.import_module(module_name)
    algorithm = captured.algorithm()
    try:
        for attr in attrs:
            obj = getattr(obj, attr)
    except AttributeError:
        if algorithm is None or ":" in entrypoint:
            raise
        obj = algorithm.instance  # a bare ADK script module: serve what it handed to ADK
    if algorithm is not None and _names_adk(obj, algorithm):
        algorithm.load()
        input_schema, output_schema = callable_schemas(algorithm.apply_func)
        return LoadedModel(
            "function", algorithm.predict, None, input_schema, output_schema, adk_error_type
        )

    if inspect.isclass(obj):
        instance = obj()
        load = getattr(instance, "load", None)
        if callable(load):
            load()
        return _from_instance(instance, entrypoint)
    if not callable(obj) and callable(getattr(obj, "predict", None)):
        return _from_instance(obj, entrypoint)  # an already built model object
    if not callable(obj):
        raise TypeError(f"entrypoint {entrypoint!r} is {type(obj).__name__}, not callable")
    input_schema, output_schema = callable_schemas(obj)
    return LoadedModel(
        "function", obj, None, input_schema, output_schema, takes_parameters=_takes(obj)
    )


def _names_adk(obj: Any, algorithm: AdkAlgorithm) -> bool:
    """Whether the entrypoint's object is the ADK algorithm: the ADK, its apply or a method."""
    return (
        obj is algorithm.instance
        or obj is algorithm.apply_func
        or getattr(obj, "__self__", None) is algorithm.instance
    )


def _from_instance(instance: Any, entrypoint: str) -> LoadedModel:
    predict = getattr(instance, "predict", None)
    if not callable(predict):
        raise TypeError(f"model class {entrypoint!r} has no predict(input) method")
    batch = getattr(instance, "predict_batch", None)
    input_schema, output_schema = callable_schemas(predict)
    return LoadedModel(
        "class",
        predict,
        batch if callable(batch) else None,
        input_schema,
        output_schema,
        takes_parameters=_takes(predict),
    )


def _takes(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` accepts a ``parameters`` keyword argument."""
    try:
        found = inspect.signature(fn).parameters.get("parameters")
    except (TypeError, ValueError):
        return False
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return found is not None and found.kind in keyword
