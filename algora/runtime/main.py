"""The worker: load one model, then serve framed calls on stdin/stdout until told to stop.

Launched by the gateway with the model environment's own interpreter (docs/protocol.md)::

    <env python> -I -c "import sys; sys.path.insert(0, '<dir holding algora_runtime>'); \
from algora_runtime.main import main; main()" --source <model dir> --entrypoint model:apply

Standard library only; relative imports only (the package runs as ``algora_runtime``).

With ``--gateway-socket PATH`` the model reaches the gateway's API through that socket
(``gateway.py``: a loopback port forwarded to it, named in ``ALGORITHMIA_API``/``ALGORA_URL``).

Resource limits come in the argv (``--memory-limit BYTES``, ``--cpu-limit SECONDS``) and are set
here, before any user code is imported, so that they hold however the worker is launched (with
or without a sandbox, on any backend). A ``MemoryError`` while serving ends the worker with
status :data:`EXIT_OUT_OF_MEMORY` (its heap may be in any state); the gateway restarts it.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import sys
import time
from typing import IO, Any

from . import gateway
from .codec import (
    CapturedOutput,
    InvalidPayload,
    ResultNotSerializable,
    decode_call,
    encode_answer,
)
from .failures import error_object, model_error, show_paths_under
from .frames import PROTOCOL_VERSION, FrameError, read_frame, write_frame
from .loader import LoadedModel, load_model
from .tensors import run_stacked
from .validate import Check, InputMismatch, compile_schema

__all__ = ["EXIT_OUT_OF_MEMORY", "flush_std", "main", "serve"]

_READ_BUFFER = 1 << 16
EXIT_OUT_OF_MEMORY = 86
"""Exit status of a worker that ran out of memory (its memory limit) while serving a call."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of a worker process; never returns (exits 0 on shutdown or end of input)."""
    started = time.perf_counter()
    # What the model writes (bytecode, caches, files in HOME) is its owner's only. Set here,
    # not by the gateway: uvloop's subprocess support has no ``umask`` argument.
    os.umask(0o077)
    args = _parse_args(argv)
    _apply_limits(args.memory_limit, args.cpu_limit)
    proto_in, proto_out = _take_protocol_fds()
    reader = os.fdopen(proto_in, "rb", buffering=_READ_BUFFER)
    if args.gateway_socket:
        try:  # before the model: its clients read the environment when they are made
            gateway.start(args.gateway_socket)
        except OSError as exc:
            sys.stderr.write(f"algora_runtime: no way to the gateway for this model: {exc}\n")

    source = os.path.abspath(args.source)  # noqa: PTH100 - stdlib-only runtime, os.path is fine
    show_paths_under(source)  # errors show the model's files relative to its folder
    # A version's folder is immutable: bytecode goes under the worker's private HOME instead.
    sys.pycache_prefix = os.path.join(os.path.expanduser("~"), ".cache", "pycache")  # noqa: PTH111,PTH118
    try:
        os.chdir(source)
        sys.path.insert(0, source)
        model = load_model(source, args.entrypoint)
    except BaseException as exc:
        flush_std()
        error = error_object("model_load_failed", exc, skip_frames=0)
        if isinstance(exc, MemoryError) and args.memory_limit is not None:
            limit = args.memory_limit // (1 << 20)
            error["message"] = f"the model ran out of memory while loading (limit {limit} MiB)"
        _send(proto_out, {"type": "load_error", "error": error})
        sys.stderr.write(error["stacktrace"])
        flush_std()
        os._exit(1)
    flush_std()
    ready = {
        "type": "ready",
        "pid": os.getpid(),
        "protocol": PROTOCOL_VERSION,
        "model": model.describe(),
        "load_seconds": round(time.perf_counter() - started, 6),
    }
    _send(proto_out, ready)
    check = None if args.no_input_check else _input_check(model)
    code = serve(model, reader, proto_out, cpu_limit=args.cpu_limit, check=check)
    flush_std()
    os._exit(code)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="algora_runtime", description="Algora model worker")
    parser.add_argument("--source", required=True, help="directory holding the model's code")
    parser.add_argument("--entrypoint", required=True, help="module:attr of the model")
    parser.add_argument("--memory-limit", type=int, help="data-segment limit in bytes")
    parser.add_argument("--cpu-limit", type=float, help="CPU seconds each call may use")
    parser.add_argument("--gateway-socket", help="the worker's Unix socket to the gateway")
    parser.add_argument(
        "--no-input-check", action="store_true", help="do not check inputs against the schema"
    )
    return parser.parse_args(argv)


def _apply_limits(memory_limit: int | None, cpu_limit: float | None) -> None:
    """Set the worker's resource limits before any user code runs (docs/protocol.md).

    Memory is RLIMIT_DATA, not RLIMIT_AS: since Linux 4.7 it counts the private writable
    mappings (heap, anonymous mmap, thread stacks), which is what a model actually allocates,
    and not the address space that shared libraries, OpenBLAS/glibc arena reservations or
    CUDA/JAX PROT_NONE reservations take without using memory; RLIMIT_AS makes numpy-, torch-
    or JAX-based models fail to import under limits far above what they use. Soft and hard
    limits are equal, so the model cannot raise them (nor can it without capabilities).
    Core dumps are disabled: SIGXCPU (the CPU limit) would otherwise dump one.
    """
    if memory_limit is None and cpu_limit is None:
        return
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_limit is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            memory_limit = min(memory_limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (memory_limit, memory_limit))
    _arm_cpu_limit(cpu_limit)


def _arm_cpu_limit(seconds: float | None) -> None:
    """Let the process use ``seconds`` more CPU time from now (the soft RLIMIT_CPU).

    RLIMIT_CPU counts the process's whole life, so it is moved forward before each call: the
    limit is per call, and a busy worker is not killed merely for having served long. Past it
    the kernel sends SIGXCPU, whose default action ends the worker. The hard limit is left as
    it is (raising it again per call would need privileges), so a model that deliberately
    catches SIGXCPU and raises its own soft limit is still stopped by the call timeout.
    """
    if seconds is None:
        return
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _out_of_memory() -> int:
    """Report a MemoryError while serving in the log (allocating as little as possible)."""
    with contextlib.suppress(OSError):
        os.write(2, b"algora_runtime: out of memory while serving a call; exiting\n")
    return EXIT_OUT_OF_MEMORY


def _take_protocol_fds() -> tuple[int, int]:
    """Keep private copies of fds 0 and 1 for frames; point 1 at stderr and 0 at /dev/null.

    Done before any user code is imported, so that nothing the model writes (``print``, C
    libraries writing to fd 1, subprocesses) can corrupt the protocol stream. The copies are
    not inheritable, so the model's own subprocesses never see them.
    """
    flush_std()
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return proto_in, proto_out


def flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: S110 - a model may have replaced the stream with anything
            pass


def _send(fd: int, header: dict[str, Any], payload: bytes = b"") -> None:
    try:
        write_frame(fd, header, payload)
    except OSError:  # the gateway is gone: nobody to answer
        os._exit(1)


def serve(
    model: LoadedModel,
    reader: IO[bytes],
    out_fd: int,
    *,
    cpu_limit: float | None = None,
    check: Check | None = None,
) -> int:
    """Answer frames until ``shutdown`` or end of input; return the exit status.

    ``cpu_limit``: CPU seconds each call or batch may use (re-armed before each one);
    ``check``: refuses a JSON or text input its schema does not take, before the model runs.
    """
    while True:
        try:
            frame = read_frame(reader)
        except (FrameError, EOFError) as exc:
            sys.stderr.write(f"algora_runtime: protocol stream broken: {exc}\n")
            return 2
        if frame is None:
            return 0
        header, payload = frame
        kind = header.get("type")
        try:
            if kind == "call":
                _arm_cpu_limit(cpu_limit)
                reply, body = handle_call(model, header, payload, check)
            elif kind == "call_batch":
                _arm_cpu_limit(cpu_limit)
                reply, body = handle_batch(model, header, payload, check)
            elif kind == "shutdown":
                return 0
            else:
                error = {"code": "protocol_error", "message": f"unknown message type {kind!r}"}
                reply, body = {"type": "error", "id": header.get("id"), "error": error}, b""
        except MemoryError:
            return _out_of_memory()
        _send(out_fd, reply, body)


def handle_call(
    model: LoadedModel, header: dict[str, Any], payload: bytes, check: Check | None = None
) -> tuple[dict[str, Any], bytes]:
    """One ``call`` message -> its ``result`` or ``error`` reply."""
    call_id = header.get("id")
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        value = _checked(decode_call(header, payload), header, check)
    except (InvalidPayload, InputMismatch) as exc:
        error = {"code": exc.code, "message": str(exc), "error_type": type(exc).__name__}
        return {"type": "error", "id": call_id, "error": error, "stdout": ""}, b""
    capture = CapturedOutput()
    saved = sys.stdout
    sys.stdout = capture
    try:
        result = model.run(value, _parameters(header))
        content_type, body, described = encode_answer(result, header)
    except ResultNotSerializable as exc:
        error = error_object(exc.code, exc, skip_frames=0)
        return {"type": "error", "id": call_id, "error": error, "stdout": capture.getvalue()}, b""
    except MemoryError:
        raise  # the worker exits (serve); the gateway restarts it
    except Exception as exc:
        error = model_error(model, exc)
        return {"type": "error", "id": call_id, "error": error, "stdout": capture.getvalue()}, b""
    finally:
        sys.stdout = saved
    reply = {
        "type": "result",
        "id": call_id,
        "content_type": content_type,
        "stdout": capture.getvalue(),
        **_spent(started, cpu_started),
    }
    if described is not None:
        reply["tensors"] = described
    return reply, body


def _spent(started: float, cpu_started: float) -> dict[str, float]:
    """A reply's ``duration`` (wall seconds) and ``cpu`` (the process's CPU seconds) since."""
    return {"duration": time.perf_counter() - started, "cpu": time.process_time() - cpu_started}


def handle_batch(
    model: LoadedModel, header: dict[str, Any], payload: bytes, check: Check | None = None
) -> tuple[dict[str, Any], bytes]:
    """One ``call_batch`` message -> its ``batch_result`` reply.

    Output printed during ``predict_batch`` cannot be attributed to one caller, so it goes to
    the worker log rather than to any caller (each item's ``stdout`` is empty).
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    specs = header.get("items")
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        error = {"code": "protocol_error", "message": "call_batch needs an items list"}
        return {"type": "error", "id": None, "error": error}, b""
    replies: list[dict[str, Any] | None] = [None] * len(specs)
    inputs: list[Any] = []
    parameters: list[dict[str, Any] | None] = []
    positions: list[int] = []
    offset = 0
    for index, spec in enumerate(specs):
        length = int(spec.get("length", 0))
        chunk = payload[offset : offset + length]
        offset += length
        try:
            inputs.append(_checked(decode_call(spec, chunk), spec, check))
            parameters.append(_parameters(spec))
            positions.append(index)
        except (InvalidPayload, InputMismatch) as exc:
            error = {"code": exc.code, "message": str(exc), "error_type": type(exc).__name__}
            replies[index] = {"id": spec.get("id"), "error": error}

    bodies: dict[int, bytes] = {}
    if inputs:
        stack = all(spec.get("stack") for spec in specs)  # a declared batch dimension
        outcomes = _run_batch(model, inputs, parameters, stack)
        for position, outcome in enumerate(outcomes):
            index = positions[position]
            item_id = specs[index].get("id")
            if isinstance(outcome, dict):
                replies[index] = {"id": item_id, "error": outcome}
                continue
            try:
                content_type, body, described = encode_answer(outcome[0], specs[index])
            except ResultNotSerializable as exc:
                replies[index] = {
                    "id": item_id,
                    "error": error_object(exc.code, exc, skip_frames=0),
                }
                continue
            bodies[index] = body
            item = {"id": item_id, "content_type": content_type, "length": len(body), "stdout": ""}
            if described is not None:
                item["tensors"] = described
            replies[index] = item
    items = [r if r is not None else {"id": None} for r in replies]
    body = b"".join(bodies.get(i, b"") for i in range(len(items)))
    return {"type": "batch_result", "items": items, **_spent(started, cpu_started)}, body


def _input_check(model: LoadedModel) -> Check | None:
    try:
        return compile_schema(model.input_schema)
    except (re.error, RecursionError, TypeError, ValueError) as exc:  # a schema it can't use
        sys.stderr.write(f"algora_runtime: inputs are not checked: {exc}\n")
        return None


def _checked(value: Any, spec: dict[str, Any], check: Check | None) -> Any:
    """``value`` once ``check`` takes it (JSON and text inputs; bytes and tensors are not
    described by a JSON Schema)."""
    if check is not None and spec.get("content_type", "json") in ("json", "text"):
        check(value)
    return value


def _parameters(spec: dict[str, Any]) -> dict[str, Any] | None:
    found = spec.get("parameters")
    return found if isinstance(found, dict) else None


def _run_batch(
    model: LoadedModel, inputs: list[Any], parameters: list[dict[str, Any] | None], stack: bool
) -> list[tuple[Any] | dict[str, Any]]:
    """Each input's outcome: ``(value,)`` or an error object. Without predict_batch (or when
    the calls carry parameters that ``predict`` takes), one by one."""
    capture = CapturedOutput()
    saved = sys.stdout
    sys.stdout = capture
    outcomes: list[tuple[Any] | dict[str, Any]]
    try:
        one_by_one = model.takes_parameters and any(p is not None for p in parameters)
        if model.predict_batch is None or one_by_one:
            stacked = run_stacked(model.predict, inputs) if stack and not one_by_one else None
            outcomes = stacked or _one_by_one(model, inputs, parameters)
        else:
            try:
                results = list(model.predict_batch(inputs))
                if len(results) != len(inputs):
                    raise ValueError(
                        f"predict_batch returned {len(results)} results for {len(inputs)} inputs"
                    )
                outcomes = [(r,) for r in results]
            except MemoryError:
                raise
            except Exception as exc:
                # One bad input must not fail the other callers: each input is tried on its
                # own, so each caller gets its own result or error.
                if len(inputs) > 1:
                    outcomes = _one_by_one(model, inputs, parameters)
                else:
                    outcomes = [model_error(model, exc)]
    finally:
        sys.stdout = saved
    printed = capture.getvalue()
    if printed:
        sys.stderr.write(printed)
    return outcomes


def _one_by_one(
    model: LoadedModel, inputs: list[Any], parameters: list[dict[str, Any] | None]
) -> list[tuple[Any] | dict[str, Any]]:
    outcomes: list[tuple[Any] | dict[str, Any]] = []
    for value, given in zip(inputs, parameters):  # noqa: B905 - strict= is Python 3.10+
        try:
            outcomes.append((model.run(value, given),))
        except MemoryError:
            raise
        except Exception as exc:
            outcomes.append(model_error(model, exc))
    return outcomes
