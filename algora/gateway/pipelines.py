"""Running a pipeline: each step a call of its model through the one call path.

A pipeline's version has no worker. Its call comes through :class:`CallService` like any
other (resolved, authorized, admitted, counted), and here each step becomes a call of the
step's model through the same service, so every step runs in its own model's environment and
pool, is rate limited, counted in its version's statistics and traced. Steps that need nothing
but the request start at once and run concurrently; a step starts as soon as the steps it
references have answered.

Each step acts for the pipeline's caller, bounded by the pipeline's owner, exactly as a call
from inside a model does (``algora.auth.delegation.for_call``): a caller who may call the
pipeline but not one of its steps' models gets 403 naming the step, unless the step model's
owner grants the caller (or the caller's organization) the right to call it. Each step's
audit row names the pipeline's call as its parent (``parent_request_id``). The pipeline's
deadline bounds every step and the whole; a step's failure fails the call, naming the step.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from algora.audit.log import AuditLog
from algora.auth.delegation import for_call
from algora.auth.principals import Caller
from algora.db.tables import Model, Version
from algora.errors import (
    AlgoraError,
    BadRequest,
    CallTimeout,
    InvalidInput,
    ModelError,
    ModelNotFound,
    PermissionDenied,
)
from algora.gateway.auditing import call_event
from algora.gateway.calls import Call, CallService, Served, new_request_id
from algora.modelfolder.manifest import Manifest
from algora.modelfolder.pipeline import MAX_ITEMS, PipelineSpec, StepSection, holds, render
from algora.store.model_data import drop_session, new_session, session_written
from algora.workers.spec import CallResult

__all__ = ["MAX_NESTING", "Pipelines"]

_T = TypeVar("_T")

MAX_NESTING = 8
"""How many calls deep a pipeline may run (pipelines in pipelines, models calling models):
a pipeline that reaches itself again through its steps ends here rather than never."""


class Pipelines:
    """Runs pipelines' calls for a :class:`CallService` (its ``run_pipeline``)."""

    def __init__(self, calls: CallService, audit: AuditLog | None, data_dir: Path) -> None:
        self._calls = calls
        self._audit = audit
        self._data_dir = data_dir
        self._specs: dict[int, PipelineSpec] = {}

    def _spec(self, version: Version) -> PipelineSpec:
        spec = self._specs.get(version.id)
        if spec is None:
            spec = Manifest.model_validate(version.manifest).pipeline
            if spec is None:
                raise ModelError(f"version {version.semver} is not a pipeline")
            if len(self._specs) > 1000:
                self._specs.clear()
            self._specs[version.id] = spec  # versions never change: parsed once
        return spec

    async def run(self, call: Call, model: Model, version: Version, deadline: float) -> Served:
        """Call the pipeline's steps and answer its output template, by ``deadline``
        (``time.monotonic()``)."""
        name = f"{model.owner.name}/{model.name}"
        delegation = call.caller.delegation
        if delegation is not None and len(delegation.bounds) > MAX_NESTING:
            raise BadRequest(
                f"pipeline '{name}' was reached {MAX_NESTING} calls deep: a pipeline whose "
                "steps lead back to it never ends; change its steps"
            )
        spec = self._spec(version)
        request = _request(call)
        request_id = call.request_id or new_request_id()
        session = delegation.session if delegation is not None else None
        opened = session is None
        session = session or new_session()
        caller = for_call(
            call.caller, model, request_id=request_id, session=session, deadline=deadline
        )
        started = time.perf_counter()
        seconds = max(0.001, deadline - time.monotonic())
        try:
            outputs = await asyncio.wait_for(
                self._steps(spec, caller, model.owner.name, request), seconds
            )
        except TimeoutError:
            raise CallTimeout(
                f"pipeline '{name}' {version.semver} did not finish within {seconds:.3g} s; "
                "retry with a longer timeout, or ask its owner to raise serving.timeout",
            ) from None
        finally:
            if opened and session_written(self._data_dir, session):
                await asyncio.to_thread(drop_session, self._data_dir, session)
        answer = json.dumps(render(spec.output_template(), request, outputs)).encode()
        result = CallResult("json", answer, stdout="", duration=time.perf_counter() - started)
        return Served(model=model, version=version, result=result, request_id=request_id)

    async def _steps(
        self, spec: PipelineSpec, caller: Caller, owner: str, request: Any
    ) -> dict[str, Any]:
        """Every step's output (none for a skipped step), each step started once the steps
        it needs have answered; the first failure cancels the rest."""
        outputs: dict[str, Any] = {}
        tasks: dict[str, asyncio.Task[None]] = {}

        async def step(section: StepSection, needs: list[asyncio.Task[None]]) -> None:
            await asyncio.gather(*needs)
            condition = section.condition()
            if condition is not None and not holds(condition, request, outputs):
                return
            each = section.each()
            if each is None:
                value = render(section.input, request, outputs)
                outputs[section.name] = await self._call_step(section, caller, owner, value)
                return
            items = _items(section, each.lookup(request, outputs))
            calls = [
                self._call_step(section, caller, owner, render(section.input, request, outputs, i))
                for i in items
            ]
            outputs[section.name] = await _together([asyncio.create_task(c) for c in calls])

        for section in spec.order():
            needs = [tasks[name] for name in sorted(section.needs())]
            tasks[section.name] = asyncio.create_task(step(section, needs))
        await _together(list(tasks.values()))
        return outputs

    async def _call_step(self, step: StepSection, caller: Caller, owner: str, value: Any) -> Any:
        """One step's call through the call path, audited under the pipeline's call."""
        model_owner, model_name = step.model_ref(owner)
        ref = f"{model_owner}/{model_name}"
        call = Call(
            caller=caller,
            owner=model_owner,
            name=model_name,
            spec=step.version,
            content_type="json",
            payload=json.dumps(value).encode(),
            request_id=new_request_id(),
        )
        received_at, started = datetime.now(UTC), time.perf_counter()
        failure: AlgoraError | None = None
        try:
            served = await self._calls.call(call)
        except AlgoraError as error:
            failure = _named(step, ref, caller, error)
            raise failure from None
        except asyncio.CancelledError:  # another step failed, or the pipeline's time ran out
            failure = CallTimeout(f"pipeline step '{step.name}' was stopped with its pipeline")
            raise
        finally:
            if self._audit is not None:
                event = call_event(
                    caller, "model.call", ref, call.trail.version, call.request_id,
                    received_at, started, failure,
                )  # fmt: skip
                await self._audit.record(event)
        return _output(step, served)


async def _together(tasks: list[asyncio.Task[_T]]) -> list[_T]:
    """The tasks' results, in order; the first failure cancels the others (awaited)."""
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _items(step: StepSection, items: Any) -> list[Any]:
    """The elements a ``for_each`` step is called for."""
    if not isinstance(items, list):
        kind = "null" if items is None else type(items).__name__
        raise InvalidInput(
            f"pipeline step '{step.name}': for_each = '{step.for_each}' is {kind}, not a list",
            details={"step": step.name},
        )
    if len(items) > MAX_ITEMS:
        raise InvalidInput(
            f"pipeline step '{step.name}': for_each = '{step.for_each}' has {len(items)} "
            f"elements; a step is called for at most {MAX_ITEMS}: send fewer",
            details={"step": step.name},
        )
    return items


def _request(call: Call) -> Any:
    """The pipeline's input: JSON, or text as a string."""
    if call.content_type == "text":
        return call.payload.decode("utf-8", errors="replace")
    if call.content_type != "json":
        raise InvalidInput(
            f"a pipeline takes JSON or text, not {call.content_type}: send a JSON body"
        )
    try:
        return json.loads(call.payload) if call.payload else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput("the input is not valid JSON: send a JSON body") from None


def _output(step: StepSection, served: Served) -> Any:
    result = served.result
    if result.content_type == "json":
        return json.loads(result.payload) if result.payload else None
    if result.content_type == "text":
        return result.payload.decode("utf-8", errors="replace")
    raise ModelError(
        f"pipeline step '{step.name}' answered {result.content_type}, which a pipeline cannot "
        "pass on: its steps must answer JSON or text",
        details={"step": step.name},
    )


def _named(step: StepSection, ref: str, caller: Caller, error: AlgoraError) -> AlgoraError:
    """The step's error as the pipeline's caller sees it: the step named, the status kept
    (a model that is hidden from the caller is a refusal: the pipeline names it anyway)."""
    details = {**error.details, "step": step.name, "model": ref}
    if isinstance(error, PermissionDenied | ModelNotFound):
        # A hidden model's 404 ("does not exist") would mislead: the pipeline names it.
        why = "" if isinstance(error, ModelNotFound) else f" ({error.message})"
        return PermissionDenied(
            f"pipeline step '{step.name}' calls '{ref}', which '{caller.name}' may not call"
            f"{why}; its owner can grant '{caller.name}' the right to call it",
            details=details,
        )
    named = copy.copy(error)
    named.message = f"pipeline step '{step.name}' ('{ref}') failed: {error.message}"
    named.args = (named.message,)
    named.details = details
    return named
