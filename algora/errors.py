"""The one exception tree of Algora.

Every error a user can see derives from :class:`AlgoraError` and carries an HTTP status and a
stable string ``code``. The server renders them with :func:`error_body`; the SDK maps the code
back to the same class with :func:`error_from_body`.

::

    AlgoraError (500 internal_error)
    ├── BadRequest (400 bad_request)
    │   ├── InvalidManifest (400 invalid_manifest)
    │   │   └── UnsupportedModelFormat (400 unsupported_model_format)  no saved model Algora serves
    │   ├── InvalidArchive (400 invalid_archive)
    │   ├── InvalidVersionSpec (400 invalid_version_spec)
    │   ├── InvalidInput (400 invalid_input)
    │   ├── InvalidAlias (400 invalid_alias)         not a valid alias name
    │   └── BadHost (400 bad_host)               the Host header names no allowed host
    ├── Unauthenticated (401 unauthenticated)
    ├── PermissionDenied (403 permission_denied)
    │   └── ForbiddenOrigin (403 forbidden_origin)   a browser page of another origin
    ├── NotFound (404 not_found)
    │   ├── ModelNotFound (404 model_not_found)
    │   └── VersionNotFound (404 version_not_found)
    │       └── AliasNotFound (404 alias_not_found)
    ├── Conflict (409 conflict)
    │   ├── VersionExists (409 version_exists)
    │   ├── VersionNotReady (409 version_not_ready)
    │   ├── AliasProtected (409 alias_protected)     moves only by an approved promotion
    │   ├── PromotionClosed (409 promotion_closed)   approved, rejected, expired or superseded
    │   └── LastAdminKey (409 last_admin_key)        would leave no admin a key to manage with
    ├── RequestTimeout (408 request_timeout)  the client was too slow over its own request
    ├── PayloadTooLarge (413 payload_too_large)
    ├── UnsupportedMediaType (415 unsupported_media_type)
    ├── BuildFailed (422 build_failed)
    │   └── PolicyViolation (422 policy_violation)   the dependency policy refused the lock
    ├── RateLimited (429 rate_limited)       the caller went past its own key's limit
    │   └── QuotaExceeded (429 quota_exceeded)   its key's or organization's quota is spent
    ├── ModelError (500 model_error)         the model's own code raised
    │   └── ModelLoadFailed (500 model_load_failed)
    ├── Unavailable (503 unavailable)
    │   ├── WorkerDied (503 worker_died)
    │   └── Overloaded (503 overloaded)
    └── CallTimeout (504 timeout)
"""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Any, ClassVar

__all__ = [
    "AlgoraError",
    "AliasNotFound",
    "AliasProtected",
    "BadHost",
    "BadRequest",
    "BuildFailed",
    "CallTimeout",
    "Conflict",
    "ForbiddenOrigin",
    "InvalidAlias",
    "InvalidArchive",
    "InvalidInput",
    "InvalidManifest",
    "InvalidVersionSpec",
    "LastAdminKey",
    "ModelError",
    "ModelLoadFailed",
    "ModelNotFound",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "PermissionDenied",
    "PolicyViolation",
    "PromotionClosed",
    "QuotaExceeded",
    "RateLimited",
    "RequestTimeout",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
    "UnsupportedModelFormat",
    "VersionExists",
    "VersionNotFound",
    "VersionNotReady",
    "WorkerDied",
    "error_body",
    "error_from_body",
    "retry_after",
]


class AlgoraError(Exception):
    """Base of every error Algora raises on purpose.

    A subclass names its stable ``code`` (and, where it differs from its parent's, its HTTP
    ``status``) as class keywords: ``class Gone(AlgoraError, code="gone", status=...)``; one
    that names neither keeps its parent's.
    """

    status: ClassVar[HTTPStatus] = HTTPStatus.INTERNAL_SERVER_ERROR
    code: ClassVar[str] = "internal_error"

    def __init_subclass__(
        cls, *, code: str | None = None, status: HTTPStatus | None = None
    ) -> None:
        super().__init_subclass__()
        if code is not None:
            cls.code = code
        if status is not None:
            cls.status = status

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class BadRequest(AlgoraError, code="bad_request", status=HTTPStatus.BAD_REQUEST): ...


class InvalidManifest(BadRequest, code="invalid_manifest"): ...


class UnsupportedModelFormat(InvalidManifest, code="unsupported_model_format"):
    """A model published with no code whose file is in no format Algora recognises; the
    message and ``details["formats"]`` list those it does."""


class InvalidArchive(BadRequest, code="invalid_archive"): ...


class InvalidVersionSpec(BadRequest, code="invalid_version_spec"): ...


class InvalidInput(BadRequest, code="invalid_input"): ...


class InvalidAlias(BadRequest, code="invalid_alias"):
    """A name that cannot be an alias: see :func:`algora.registry.specs.is_alias_name`."""


class BadHost(BadRequest, code="bad_host"):
    """The ``Host`` header names none of the gateway's ``allowed_hosts`` (DNS rebinding)."""


class Unauthenticated(AlgoraError, code="unauthenticated", status=HTTPStatus.UNAUTHORIZED): ...


class PermissionDenied(AlgoraError, code="permission_denied", status=HTTPStatus.FORBIDDEN): ...


class ForbiddenOrigin(PermissionDenied, code="forbidden_origin"):
    """A state-changing request came from a web page of another origin (its ``Origin``
    header is neither the gateway's own nor one of ``allowed_origins``)."""


class NotFound(AlgoraError, code="not_found", status=HTTPStatus.NOT_FOUND): ...


class ModelNotFound(NotFound, code="model_not_found"): ...


class VersionNotFound(NotFound, code="version_not_found"): ...


class AliasNotFound(VersionNotFound, code="alias_not_found"): ...


class Conflict(AlgoraError, code="conflict", status=HTTPStatus.CONFLICT): ...


class VersionExists(Conflict, code="version_exists"): ...


class VersionNotReady(Conflict, code="version_not_ready"): ...


class AliasProtected(Conflict, code="alias_protected"):
    """The alias is protected by the promotion policy: it moves only when a second principal
    approves a promotion request, and it cannot be deleted."""


class PromotionClosed(Conflict, code="promotion_closed"):
    """The promotion request is no longer pending (``details["status"]`` says what it is)."""


class LastAdminKey(Conflict, code="last_admin_key"):
    """The key is the last active key of the last admin: revoking it would lock every admin
    out. Create another admin key first, or recover with ``algora admin reset-key``."""


class PayloadTooLarge(
    AlgoraError, code="payload_too_large", status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE
): ...


class UnsupportedMediaType(
    AlgoraError, code="unsupported_media_type", status=HTTPStatus.UNSUPPORTED_MEDIA_TYPE
): ...


class BuildFailed(AlgoraError, code="build_failed", status=HTTPStatus.UNPROCESSABLE_ENTITY): ...


class PolicyViolation(BuildFailed, code="policy_violation"):
    """The locked dependencies break the platform's dependency policy.

    The message names each package and the rule it broke; ``details["violations"]`` lists them
    as ``{package, version, rule, message}``.
    """


class RateLimited(AlgoraError, code="rate_limited", status=HTTPStatus.TOO_MANY_REQUESTS):
    """The caller's key (or its limit for this model) has no tokens left.

    ``details["retry_after"]`` is the seconds until the next call would be admitted; the
    server also sends it as a ``Retry-After`` header. Other callers are not affected: a
    server that is itself overloaded answers 503 :class:`Overloaded` instead.
    """


class QuotaExceeded(RateLimited, code="quota_exceeded"):
    """A quota of the caller's key or organization (calls or compute seconds per day or month)
    is spent; ``details`` names it (``quota``, ``subject``, ``metric``, ``period``, ``limit``,
    ``used``) and when it resets (``resets_at``, and ``retry_after`` in seconds)."""


class ModelError(AlgoraError, code="model_error", status=HTTPStatus.INTERNAL_SERVER_ERROR):
    """The model's own code raised; ``details`` holds ``error_type`` and, for a caller who may
    manage the model, ``stacktrace`` (it shows the model's source)."""

    def for_callers(self) -> ModelError:
        """The error as a caller who may not manage the model sees it: its message and type,
        but not the stack trace (which shows the model's source) nor what it printed."""
        kept = {k: v for k, v in self.details.items() if k in ("error_type", "reason")}
        return type(self)(self.message, details=kept)


class ModelLoadFailed(ModelError, code="model_load_failed"): ...


class Unavailable(AlgoraError, code="unavailable", status=HTTPStatus.SERVICE_UNAVAILABLE): ...


class WorkerDied(Unavailable, code="worker_died"): ...


class Overloaded(Unavailable, code="overloaded"): ...


class CallTimeout(AlgoraError, code="timeout", status=HTTPStatus.GATEWAY_TIMEOUT): ...


class RequestTimeout(AlgoraError, code="request_timeout", status=HTTPStatus.REQUEST_TIMEOUT):
    """The client took too long over its own request (a slow upload, a stalled git push)."""


def _all_subclasses(cls: type[AlgoraError]) -> list[type[AlgoraError]]:
    found: list[type[AlgoraError]] = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


def retry_after(error: AlgoraError) -> int | None:
    """Whole seconds for a ``Retry-After`` header (at least 1), or None when retrying later
    is not the remedy. Sent with 429 :class:`RateLimited` and 503 :class:`Overloaded`."""
    if not isinstance(error, RateLimited | Overloaded):
        return None
    seconds = error.details.get("retry_after", 1)
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = 1.0
    if not math.isfinite(value):
        value = 1.0
    return max(1, math.ceil(value))


def error_body(error: AlgoraError) -> dict[str, Any]:
    """The one JSON error body of the native API."""
    return {"error": {"code": error.code, "message": error.message, "details": error.details}}


def error_from_body(status: int, body: Any) -> AlgoraError:
    """Rebuild the server's error class from a response body (used by the SDK)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return AlgoraError(f"HTTP {status}: unexpected response {str(body)[:200]!r}")
    code = str(error.get("code") or error.get("error_type") or "")
    message = str(error.get("message") or f"HTTP {status}")
    details = error.get("details") if isinstance(error.get("details"), dict) else {}
    by_code = {cls.code: cls for cls in _all_subclasses(AlgoraError)}
    cls = by_code.get(code)
    if cls is None:
        cls = next((c for c in _all_subclasses(AlgoraError) if c.status == status), AlgoraError)
    return cls(message, details=details)
