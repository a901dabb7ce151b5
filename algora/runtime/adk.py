"""Serve algorithms written with Algorithmia's ADK (``algorithmia-adk``) as they are.

An ADK script ends with ``ADK(apply, load).init(...)``: importing it would start ADK's own
serve loop (read requests from stdin, answer into the FIFO ``/tmp/algoout``), or, given a
local payload, run ``apply`` once and print. The worker instead imports the script with
:func:`capture` active: an import hook adapts the ``ADK`` class the moment its defining module
(``adk.ADK``, ``adk`` or ``Algorithmia``) is imported, so that constructing one records the
instance and ``init()`` records it and returns at once. The user's code is not changed; the
library's entry point is adapted in the worker's own process only.

The recorded instance is then served the way ADK serves it: ``load`` runs once at startup
(through ADK's own ``load()`` when it has one, so that ``model_manifest.json`` is verified by
ADK itself, relative to the working directory, which is the model's folder), and each call
runs ``apply(input)``, or ``apply(input, state)`` when ``apply`` takes two parameters and
``load`` returned a state (ADK's convention). An exception becomes the protocol's model error
with ADK's ``error_type`` (the exception's ``error_type`` attribute, else ``AlgorithmError``),
built by the runtime: ADK 1.2.4's own formatter fails on Python 3.10 and later.

Standard library only; nothing here imports ADK or Algorithmia.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import inspect
import sys
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

__all__ = ["ADK_MODULES", "AdkAlgorithm", "Capture", "adk_error_type", "capture"]

ADK_MODULES = frozenset({"adk", "adk.ADK", "Algorithmia"})
"""Modules that define or re-export the ``ADK`` class; adapted when they are imported."""

_MARK = "__algora_adapted__"
_active: list[Capture] = []


class Capture:
    """The ADK instances built (and those whose ``init`` was called) during an import."""

    def __init__(self) -> None:
        self.built: list[Any] = []
        self.initialized: list[Any] = []
        self.functions: dict[int, tuple[Any, Any]] = {}
        """``id(instance)`` -> the ``(apply_func, load_func)`` it was built with."""

    def algorithm(self) -> AdkAlgorithm | None:
        """The algorithm to serve: the last ADK whose ``init`` ran, else the last one built."""
        chosen = (self.initialized or self.built or [None])[-1]
        if chosen is None:
            return None
        apply_func, load_func = self.functions.get(id(chosen), (None, None))
        return AdkAlgorithm(chosen, apply_func, load_func)


@contextlib.contextmanager
def capture() -> Iterator[Capture]:
    """Adapt ADK for imports made inside the block and record the instances they create."""
    record = Capture()
    finder = _AdkFinder()
    _active.append(record)
    sys.meta_path.insert(0, finder)
    try:
        for name in ADK_MODULES:  # already imported (the worker imports nothing before)
            module = sys.modules.get(name)
            if module is not None:
                _adapt_module(module)
        yield record
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
        _active.remove(record)


class _AdkFinder(importlib.abc.MetaPathFinder):
    """Finds ADK's modules as the rest of ``sys.meta_path`` does, then adapts them once run."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in ADK_MODULES:
            return None
        for finder in sys.meta_path:
            if finder is self or isinstance(finder, _AdkFinder):
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec: importlib.machinery.ModuleSpec | None = find(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _AdaptingLoader(spec.loader)
                return spec
        return None


class _AdaptingLoader(importlib.abc.Loader):
    """Runs the module with its own loader, then adapts the ``ADK`` class it defines."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._inner.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        _adapt_module(module)

    def __getattr__(self, name: str) -> Any:  # get_data, get_filename, resource readers ...
        return getattr(self._inner, name)


def _adapt_module(module: ModuleType) -> None:
    cls = module.__dict__.get("ADK")
    if inspect.isclass(cls) and callable(getattr(cls, "init", None)):
        _adapt_class(cls)


def _adapt_class(cls: type) -> None:
    if cls.__dict__.get(_MARK):
        return
    original_init = cls.__init__  # type: ignore[misc]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        apply_func = args[0] if args else kwargs.get("apply_func")
        load_func = args[1] if len(args) > 1 else kwargs.get("load_func")
        for record in _active:
            record.built.append(self)
            record.functions[id(self)] = (apply_func, load_func)

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        """Adapted by Algora's worker: record the algorithm; the worker serves it."""
        for record in _active:
            record.initialized.append(self)

    __init__.__wrapped__ = original_init  # type: ignore[attr-defined]
    init.__wrapped__ = cls.__dict__.get("init")  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[misc]
    cls.init = init  # type: ignore[attr-defined]
    setattr(cls, _MARK, True)


def adk_error_type(exc: BaseException) -> str:
    """The ``error_type`` ADK reports for an exception raised by ``apply``."""
    error_type = getattr(exc, "error_type", None)
    return error_type if isinstance(error_type, str) and error_type else "AlgorithmError"


def _arity(func: Callable[..., Any]) -> int:
    """How many positional parameters ADK counts (``inspect.getfullargspec(f).args``)."""
    try:
        return len(inspect.getfullargspec(func).args)
    except TypeError:
        return 1


class AdkAlgorithm:
    """One captured ADK algorithm, loaded once and applied per call the way ADK does."""

    def __init__(self, instance: Any, apply_func: Any = None, load_func: Any = None) -> None:
        apply_func = getattr(instance, "apply_func", None) or apply_func
        if not callable(apply_func):
            raise TypeError("the ADK algorithm has no apply function")
        self.instance = instance
        self.apply_func: Callable[..., Any] = apply_func
        self.load_func: Callable[..., Any] | None = getattr(instance, "load_func", load_func)
        arity = getattr(instance, "apply_arity", None)
        self.apply_arity = arity if isinstance(arity, int) else _arity(apply_func)
        self.state: Any = None

    def load(self) -> None:
        """Run ``load`` once (and verify ``model_manifest.json``); raise what it raised."""
        own_load = getattr(self.instance, "load", None)
        if callable(own_load) and hasattr(self.instance, "loading_exception"):
            own_load()  # ADK's own: ModelData.initialize(), then load_func(), errors kept
            error = self.instance.loading_exception
            if error is not None:
                raise error
            self.state = getattr(self.instance, "load_result", None)
            return
        if self.load_func is None:
            return
        if _arity(self.load_func) == 1:
            self.state = self.load_func(getattr(self.instance, "model_data", None))
        else:
            self.state = self.load_func()

    def predict(self, input: Any) -> Any:
        if self.state and self.apply_arity == 2:
            return self.apply_func(input, self.state)
        return self.apply_func(input)
