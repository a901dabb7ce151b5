"""What the Open Inference Protocol's two adapters share: REST (:mod:`.routes`) and gRPC
(:mod:`.grpc_service`) differ only in how they read and write messages.

A model is named ``owner/name``, or by its bare name for the caller's own; without a version
the ``production`` alias answers, else the latest ready version. An infer becomes one
:class:`~algora.gateway.calls.Call` of content type ``tensors`` on the one call path, its
inputs checked against the version's declared tensors first; the answer's tensors come back as
descriptors and one payload. Every refusal is an :class:`~algora.errors.AlgoraError`; its
:func:`status` is the protocol's (503 for a version not ready, else the error's own).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from algora.auth.policy import require_scope
from algora.auth.principals import Caller
from algora.errors import AlgoraError, AliasNotFound, NotFound, VersionNotReady
from algora.gateway.auditing import AuditTrail
from algora.gateway.calls import Call, CallService
from algora.protocols.oip.wire import Declared, Infer
from algora.workers.spec import CallResult

__all__ = [
    "DEFAULT_ALIAS",
    "EXTENSIONS",
    "Resolved",
    "Target",
    "answer_of",
    "describe",
    "infer_call",
    "resolve",
    "status",
]

DEFAULT_ALIAS = "production"
EXTENSIONS = ["binary_tensor_data"]
"""What ``/v2`` (and gRPC's ServerMetadata) says the server supports."""
_NO_ALIAS_SECONDS = 2.0
_without_alias: dict[tuple[str, str], float] = {}
"""Models found without the default alias, until when: a call without a version then resolves
``latest`` from the call path's cache instead of asking the database for the alias each time
(like the call path's own cache, a new alias is seen within seconds)."""


@dataclass(frozen=True)
class Target:
    """The model (and version spec) a request names; ``shown`` is the name as it was given."""

    owner: str
    name: str
    spec: str | None
    shown: str

    @classmethod
    def named(cls, name: str, spec: str | None, caller: Caller) -> Target:
        """``owner/name``, or ``name`` for the caller's own; an empty spec is no spec."""
        parts = name.split("/")
        if len(parts) == 1 and parts[0]:
            return cls(caller.name, parts[0], spec or None, name)
        if len(parts) == 2 and all(parts):
            return cls(parts[0], parts[1], spec or None, name)
        raise NotFound(f"no model named '{name}': name a model OWNER/NAME, or NAME for your own")

    @property
    def resource(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass(frozen=True)
class Resolved:
    """The version a target resolved to, and the spec the call path resolves again (from
    its cache) when the call is made."""

    model: Any  # the registry's rows, which an adapter only reads
    version: Any
    spec: str | None

    @property
    def declared(self) -> Declared:
        version = self.version
        return Declared.of(version.manifest, version.input_schema, version.output_schema)


def status(error: AlgoraError) -> int:
    """The protocol's HTTP status for an error (a version not ready is 503, not 409)."""
    return 503 if isinstance(error, VersionNotReady) else int(error.status)


async def resolve(calls: CallService, caller: Caller, target: Target) -> Resolved:
    """The version the target names, once the key's ``call`` scope allows the model: without
    a version, the ``production`` alias, else the latest ready version."""
    require_scope(caller, "call", target.resource)
    if target.spec is not None:
        model, version = await calls.resolve(caller, target.owner, target.name, target.spec)
        return Resolved(model, version, target.spec)
    key = (target.owner, target.name)
    if _without_alias.get(key, 0.0) < time.monotonic():
        try:
            model, version = await calls.resolve(caller, *key, DEFAULT_ALIAS)
        except AliasNotFound:
            if len(_without_alias) > 10_000:
                _without_alias.clear()
            _without_alias[key] = time.monotonic() + _NO_ALIAS_SECONDS
        else:
            _without_alias.pop(key, None)
            return Resolved(model, version, DEFAULT_ALIAS)
    model, version = await calls.resolve(caller, *key, None)
    return Resolved(model, version, None)


def describe(target: Target, resolved: Resolved) -> dict[str, Any]:
    """The model's metadata: its name as given, the version, and its tensors."""
    declared = resolved.declared
    return {
        "name": target.shown,
        "versions": [resolved.version.semver],
        "platform": "algora",
        "inputs": declared.inputs,
        "outputs": declared.outputs,
    }


def infer_call(
    caller: Caller,
    target: Target,
    resolved: Resolved,
    infer: Infer,
    *,
    request_id: str,
    trail: AuditTrail,
    timeout: float | None = None,
) -> Call:
    """The call an inference request makes, its tensors checked against the declared ones.
    The caller was admitted (``CallService.admit``) before its request was read."""
    declared = resolved.declared
    declared.check(infer)
    fields: dict[str, Any] = {"tensors": infer.tensors, "parameters": infer.parameters}
    if declared.input_form is not None:
        fields["input_form"] = declared.input_form
    if declared.output_names:
        fields["output_names"] = declared.output_names
    if len(declared.inputs) == 1 and (declared.inputs[0].get("shape") or [None])[0] == -1:
        fields["stack"] = True  # a batch dimension: the worker may stack calls into one array
    return Call(
        caller=caller,
        owner=target.owner,
        name=target.name,
        spec=resolved.spec,
        content_type="tensors",
        payload=infer.payload,
        timeout=timeout,
        request_id=request_id,
        trail=trail,
        admitted=True,
        fields=fields,
    )


def answer_of(result: CallResult) -> tuple[list[dict[str, Any]], bytes]:
    """The output tensors (descriptors and payload) of a served call's result."""
    if result.content_type != "tensors" or result.tensors is None:
        raise AlgoraError(f"the model answered {result.content_type}, not tensors")
    return result.tensors, result.payload
