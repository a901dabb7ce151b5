"""A worker's answers, turned into the results and errors of the calls waiting on them.

The pool sends a call (or a batch) to a worker and holds a :class:`PendingCall` for each; the
worker's ``result``, ``error`` or ``batch_result`` frame (``docs/protocol.md``) settles them
here: results go to their callers, a model's error becomes :class:`~algora.errors.ModelError`
(or :class:`~algora.errors.InvalidInput`), and a frame the protocol does not allow raises
:class:`ProtocolViolation`, for which the pool replaces the worker.
"""

from __future__ import annotations

import asyncio
from typing import Any

from algora.errors import AlgoraError, InvalidInput, ModelError
from algora.workers.spec import CallRequest, CallResult

__all__ = ["PendingCall", "ProtocolViolation", "error_from", "fail", "settle", "settle_batch"]


class PendingCall:
    """A call sent to (or waiting for) a worker, and the future its caller awaits."""

    __slots__ = ("future", "queued_at", "request", "started", "timer", "worker")

    def __init__(self, request: CallRequest, future: asyncio.Future[CallResult]) -> None:
        self.request = request
        self.future = future
        self.timer: asyncio.TimerHandle | None = None
        self.worker: object | None = None
        """The pool's worker holding the call, None while it waits in the queue."""
        self.queued_at = 0.0
        """The loop's time when the call joined the queue."""
        self.started = 0.0
        """The loop's time when a worker took the call."""


class ProtocolViolation(Exception):
    """The worker sent something the protocol does not allow here."""


def fail(pending: PendingCall, error: BaseException) -> None:
    if not pending.future.done():
        pending.future.set_exception(error)


def error_from(error: Any, stdout: str) -> AlgoraError:
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or "model_error")
    message = str(error.get("message") or "the model failed")
    details: dict[str, Any] = {
        "error_type": str(error.get("error_type") or ""),
        "stacktrace": str(error.get("stacktrace") or ""),
        "stdout": stdout,
    }
    if code == "invalid_input":
        return InvalidInput(message, details=details)
    if code != "model_error":
        details["reason"] = code
    return ModelError(message, details=details)


def settle(pending: PendingCall, header: dict[str, Any], payload: bytes) -> None:
    kind = header.get("type")
    if header.get("id") != pending.request.request_id or kind not in ("result", "error"):
        raise ProtocolViolation(f"expected the answer to {pending.request.request_id!r}")
    if pending.future.done():
        return
    stdout = str(header.get("stdout") or "")
    if kind == "error":
        pending.future.set_exception(error_from(header.get("error"), stdout))
        return
    pending.future.set_result(
        CallResult(
            content_type=str(header.get("content_type", "json")),
            payload=payload,
            stdout=stdout,
            duration=float(header.get("duration", 0.0)),
            tensors=_tensors(header),
            cpu=_seconds(header.get("cpu")),
        )
    )


def _seconds(value: Any) -> float:
    """The worker's CPU seconds for a call; 0 from a worker that does not say."""
    return float(value) if isinstance(value, int | float) and value > 0 else 0.0


def _tensors(header: dict[str, Any]) -> list[dict[str, Any]] | None:
    described = header.get("tensors")
    if header.get("content_type") != "tensors":
        return None
    if not isinstance(described, list) or not all(isinstance(d, dict) for d in described):
        raise ProtocolViolation("a tensors result needs a list of tensor descriptors")
    return described


def settle_batch(batch: list[PendingCall], header: dict[str, Any], payload: bytes) -> None:
    if header.get("type") == "error":  # the worker refused the whole batch
        error = error_from(header.get("error"), "")
        for pending in batch:
            fail(pending, error)
        return
    items = header.get("items")
    if (
        header.get("type") != "batch_result"
        or not isinstance(items, list)
        or len(items) != len(batch)
    ):
        raise ProtocolViolation("expected a batch_result with one item per call")
    duration = float(header.get("duration", 0.0))
    cpu = _seconds(header.get("cpu")) / len(batch)  # the batch's CPU time, shared evenly
    offset = 0
    for pending, item in zip(batch, items, strict=True):
        if not isinstance(item, dict) or item.get("id") != pending.request.request_id:
            raise ProtocolViolation("batch_result items out of order")
        if "error" in item:
            fail(pending, error_from(item["error"], str(item.get("stdout") or "")))
            continue
        length = int(item.get("length", 0))
        body = payload[offset : offset + length]
        offset += length
        if not pending.future.done():
            pending.future.set_result(
                CallResult(
                    content_type=str(item.get("content_type", "json")),
                    payload=body,
                    stdout=str(item.get("stdout") or ""),
                    duration=duration,
                    tensors=_tensors(item),
                    cpu=cpu,
                )
            )
