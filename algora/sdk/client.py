"""``algora.Client``: call and publish models from Python.

client = algora.Client()                      # ALGORA_URL / ALGORA_KEY or `algora login`
client.model("admin/iris/1.x").call({...})
client.publish("./my-model")
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx

from algora.errors import BuildFailed, InvalidInput, ModelError, error_from_body
from algora.modelfolder.layouts import find_manifest
from algora.modelfolder.packing import pack_directory
from algora.modelfolder.saved import as_folder
from algora.sdk import alerts, tensors
from algora.sdk._closing import Closing
from algora.sdk.data import DataHandle
from algora.sdk.monitoring import MonitoringMethods
from algora.sdk.profiles import resolve_connection
from algora.sdk.sampling import SamplingMethods

__all__ = ["CallResponse", "Client", "ModelHandle"]


class CallResponse:
    """A call's result with Algorithmia's metadata."""

    def __init__(
        self,
        result: Any,
        content_type: str,
        duration: float,
        version: str | None,
        request_id: str | None = None,
    ) -> None:
        self.result = result
        self.content_type = content_type
        self.duration = duration
        self.version = version
        self.request_id = request_id
        """The call's request id: what :meth:`Client.feedback` names it by."""

    def __repr__(self) -> str:
        return f"CallResponse({self.content_type}, {self.result!r:.80})"


def raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {"error": {"message": response.text[:500] or f"HTTP {response.status_code}"}}
    raise error_from_body(response.status_code, body)


def git_lineage(folder: Path) -> dict[str, str]:
    """The folder's git commit, branch and dirty flag, when it is in a git repository."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    status = git("status", "--porcelain", "--", ".")
    return {
        "git_commit": commit,
        "git_dirty": "true" if status else "false",
        "git_branch": git("rev-parse", "--abbrev-ref", "HEAD") or "",
    }


class ModelHandle:
    """A model reference (``owner/name[/spec]``) bound to a client."""

    def __init__(self, client: Client, ref: str) -> None:
        parts = ref.strip("/").split("/")
        if len(parts) not in (2, 3) or not all(p not in ("", ".", "..") for p in parts):
            raise InvalidInput(
                f"'{ref}' is not a model reference: use owner/name or owner/name/1.x"
            )
        self._client = client
        self.ref = "/".join(parts)

    def call_full(self, data: Any, *, timeout: float | None = None) -> CallResponse:
        """Call the model and return the whole answer: the result, its content type and metadata.

        A NumPy array (or a pandas DataFrame) goes as raw tensors and the result comes back as
        an array (a dict of arrays for a model with several outputs): see :meth:`call_arrays`.
        """
        if tensors.is_array(data):
            return self.call_arrays(data, timeout=timeout)
        if isinstance(data, bytes | bytearray):
            content, ctype = bytes(data), "application/octet-stream"
        elif isinstance(data, str):
            content, ctype = data.encode(), "text/plain"
        else:
            content, ctype = json.dumps(data).encode(), "application/json"
        params = {"timeout": str(timeout)} if timeout else None
        response = self._client.request(
            "POST",
            f"/v1/algo/{self.ref}",
            content=content,
            headers={"Content-Type": ctype},
            params=params,
            timeout=(timeout or 300.0) + 10,
        )
        raise_for_error(response)
        body = response.json()
        if "error" in body:
            error = body["error"]
            raise _model_error(error)
        metadata = body.get("metadata", {})
        kind = metadata.get("content_type", "json")
        result = body.get("result")
        if kind == "binary" and isinstance(result, str):
            result = base64.b64decode(result)
        return CallResponse(
            result,
            kind,
            float(metadata.get("duration", 0.0)),
            response.headers.get("x-algora-version"),
            response.headers.get("x-request-id"),
        )

    def call_arrays(self, data: Any, *, timeout: float | None = None) -> CallResponse:
        """Call the model with a NumPy array, or a DataFrame (a tensor per column), as raw
        bytes over the Open Inference Protocol (``/v2``), never as JSON lists; the answer's
        tensors come back as arrays."""
        owner, name, *spec = self.ref.split("/")
        path = f"/v2/models/{owner}/{name}" + (f"/versions/{spec[0]}" if spec else "")
        if hasattr(data, "columns"):
            names: list[str] = []
        else:
            described = self._client.request("GET", path)
            _raise_for_oip_error(described)
            names = [str(i.get("name")) for i in described.json().get("inputs", [])]
        body, header_length = tensors.encode_request(tensors.named_arrays(data, names))
        response = self._client.request(
            "POST",
            f"{path}/infer",
            content=body,
            headers={
                "Content-Type": "application/octet-stream",
                tensors.HEADER_LENGTH: str(header_length),
            },
            timeout=(timeout or 300.0) + 10,
        )
        _raise_for_oip_error(response)
        result = tensors.decode_answer(
            response.content, response.headers.get(tensors.HEADER_LENGTH)
        )
        headers = response.headers
        return CallResponse(
            result, "tensors", 0.0, headers.get("x-algora-version"), headers.get("x-request-id")
        )

    def call(self, data: Any = None, *, timeout: float | None = None) -> Any:
        """Call the model; returns its result (parsed JSON, str or bytes)."""
        return self.call_full(data, timeout=timeout).result


def _raise_for_oip_error(response: httpx.Response) -> None:
    """The Open Inference Protocol's ``{"error": "..."}`` as the error class of its status."""
    if response.status_code < 400:
        return
    try:
        message = response.json().get("error")
    except ValueError:
        message = None
    message = message if isinstance(message, str) else response.text[:500]
    code = "invalid_input" if response.status_code == 400 else None  # the protocol's bad input
    raise error_from_body(response.status_code, {"error": {"message": message, "code": code}})


def _model_error(error: dict[str, Any]) -> ModelError:
    return ModelError(
        str(error.get("message", "the model raised an error")),
        details={
            "error_type": error.get("error_type", ""),
            "stacktrace": error.get("stacktrace", ""),
        },
    )


class Client(alerts.AlertMethods, Closing, SamplingMethods, MonitoringMethods):
    """A connection to an Algora gateway."""

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        profile: str = "default",
        timeout: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        """Connect to ``url`` with ``key``; ``http`` lets an existing httpx client (for
        instance Starlette's in-process TestClient) carry the requests instead."""
        connection = resolve_connection(url, key, profile)
        self.url = connection.url
        self._auth = {"Authorization": f"Simple {connection.key}"} if connection.key else {}
        self.http = http or httpx.Client(base_url=self.url, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request with this client's key; the response is returned as it came."""
        headers = {**self._auth, **kwargs.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def stream(
        self, method: str, path: str, **kwargs: Any
    ) -> AbstractContextManager[httpx.Response]:
        """Like :meth:`request`, with the body read as it arrives (``with client.stream(...)``)."""
        headers = {**self._auth, **kwargs.pop("headers", {})}
        return self.http.stream(method, path, headers=headers, **kwargs)

    def close(self) -> None:
        """Close the client's HTTP connections."""
        self.http.close()

    def get_json(self, path: str, **params: Any) -> Any:
        """GET ``path`` with query ``params``: the JSON answer, or the error it raised."""
        response = self.request("GET", path, params=params or None)
        raise_for_error(response)
        return response.json()

    def model(self, ref: str) -> ModelHandle:
        """A handle on ``owner/name`` or ``owner/name/spec`` to call (no request is made)."""
        return ModelHandle(self, ref)

    def data(self, uri: str) -> DataHandle:
        """Hosted data: ``data://owner/collection/path``, ``data://.my/...``, ``s3://bucket/key``
        (see :mod:`algora.sdk.data`)."""
        return DataHandle(self, uri)

    def whoami(self) -> dict[str, Any]:
        """The principal the key belongs to: its name, whether it is an admin, the key's id."""
        return dict(self.get_json("/api/v1/whoami"))

    def models(self) -> list[dict[str, Any]]:
        """The models the key may see."""
        return list(self.get_json("/api/v1/models"))

    def versions(self, model: str) -> list[dict[str, Any]]:
        """The versions of ``owner/name``."""
        return list(self.get_json(f"/api/v1/models/{model}/versions"))

    def version(self, model: str, version: str) -> dict[str, Any]:
        """One version of ``owner/name``: its status, hashes and environment."""
        return dict(self.get_json(f"/api/v1/models/{model}/versions/{version}"))

    def build_log(self, model: str, version: str, offset: int = 0) -> dict[str, Any]:
        """The version's build log from byte ``offset`` on, and whether the build is done."""
        return dict(self.get_json(f"/api/v1/models/{model}/versions/{version}/log", offset=offset))

    def deprecate(self, model: str, version: str | None = None, deprecated: bool = True) -> Any:
        """Deprecate (or, with ``deprecated=False``, restore) a model or one of its versions."""
        path = f"/api/v1/models/{model}" + (f"/versions/{version}" if version else "")
        response = self.request("PATCH", path, json={"deprecated": deprecated})
        raise_for_error(response)
        return response.json()

    # usage and quotas (see algora.registry.usage, algora.registry.quotas) -------------------
    def usage(
        self, *, by: str = "org", since: str | None = None, until: str | None = None
    ) -> dict[str, Any]:
        """Calls, errors and compute seconds summed ``by`` ``org``, ``principal``, ``key`` or
        ``model`` from ``since`` (default: 30 days ago) to ``until`` (now); yours, your
        organizations' if you administer them, or (an admin) everyone's. ``rows`` holds them."""
        query = {"by": by, "since": since, "until": until}
        params = {name: value for name, value in query.items() if value is not None}
        return dict(self.get_json("/api/v1/usage", **params))

    def quotas(self) -> list[dict[str, Any]]:
        """The quotas of your keys and organizations (an admin: all), each with ``used`` in its
        current period and ``resets_at``."""
        return list(self.get_json("/api/v1/quotas"))

    def set_quota(
        self,
        *,
        metric: str,
        period: str,
        limit: float,
        org: str | None = None,
        key_id: str | None = None,
    ) -> dict[str, Any]:
        """Create or change the quota of ``org`` or ``key_id`` (admins only): at most ``limit``
        ``calls`` or ``compute_seconds`` per ``day`` or ``month`` (UTC)."""
        if (org is None) == (key_id is None):
            raise InvalidInput("a quota is for an organization (org) or a key (key_id): name one")
        path = f"/api/v1/quotas/org/{org}" if org is not None else f"/api/v1/quotas/key/{key_id}"
        body = {"metric": metric, "period": period, "limit": limit}
        return dict(self._send_json("PUT", path, body))

    def delete_quota(self, quota_id: int) -> None:
        """Remove a quota (admins only)."""
        self._send_json("DELETE", f"/api/v1/quotas/{quota_id}")

    def feedback(
        self,
        request_id: str,
        *,
        label: str | float | bool | None = None,
        value: float | None = None,
    ) -> dict[str, Any]:
        """Send the ground truth of the call ``request_id`` (``CallResponse.request_id``): its
        true ``label`` (scored for equality with the prediction) or ``value`` (scored by its
        absolute error). Its version must record calls (``[monitoring] feedback = true``); a
        call's feedback is final. The answer says whether it was ``scored`` and ``correct`` (or
        its ``abs_error``)."""
        body: dict[str, Any] = {"request_id": request_id}
        body.update({"label": label} if value is None else {"value": value})
        return dict(self._send_json("POST", "/api/v1/feedback", body))

    # aliases and promotions (see algora.registry.aliases) -----------------------------------
    def _send_json(self, method: str, path: str, body: Any = None) -> Any:
        response = self.request(method, path, json=body)
        raise_for_error(response)
        return response.json() if response.content else None

    def aliases(self, model: str) -> list[dict[str, Any]]:
        """A model's aliases: ``[{"alias": "production", "version": "1.2.0", ...}]``."""
        return list(self.get_json(f"/api/v1/models/{model}/aliases"))

    def set_alias(
        self,
        model: str,
        alias: str,
        version: str | None = None,
        *,
        note: str = "",
        weights: dict[str, int] | None = None,
        shadow: str | None = None,
        sticky: bool = False,
    ) -> dict[str, Any]:
        """Point ``alias`` at the version that ``version`` (any spec) names now, or split its
        calls by ``weights`` (``{"1.0.0": 90, "1.1.0": 10}``, instead of ``version``), with
        ``sticky`` keeping each caller's key on one of them; ``shadow`` names a version that
        gets a copy of each call (its answers discarded).

        A protected alias does not move: the answer has ``moved`` False and the ``promotion``
        request that a second principal must approve.
        """
        body: dict[str, Any] = {"version": version, "note": note}
        if weights is not None:
            body["versions"] = weights
        if shadow is not None:
            body["shadow"] = shadow
        if sticky:
            body["sticky"] = True
        return dict(self._send_json("PUT", f"/api/v1/models/{model}/aliases/{alias}", body))

    def compare_alias(
        self, model: str, alias: str, *, since: str | None = None, until: str | None = None
    ) -> dict[str, Any]:
        """The comparison report of ``alias`` of ``owner/name``: its ``primary`` and its
        ``others`` (canaries and shadow), each with calls, errors, ``error_rate``, latency
        percentiles, ``accuracy`` or ``mean_abs_error`` from feedback, and, for the shadow, the
        ``agreement`` of its answers with the primary's; ``since`` and ``until`` as for
        :meth:`stats` (default: the last hour)."""
        params = {n: v for n, v in (("since", since), ("until", until)) if v is not None}
        return dict(self.get_json(f"/api/v1/models/{model}/aliases/{alias}/compare", **params))

    def delete_alias(self, model: str, alias: str) -> None:
        """Delete an alias of ``owner/name`` (protected aliases cannot be deleted)."""
        self._send_json("DELETE", f"/api/v1/models/{model}/aliases/{alias}")

    def request_promotion(
        self, model: str, alias: str, version: str, *, note: str = ""
    ) -> dict[str, Any]:
        """Ask for ``alias`` to point at ``version`` once a second principal approves."""
        body = {"alias": alias, "version": version, "note": note}
        return dict(self._send_json("POST", f"/api/v1/models/{model}/promotions", body))

    def promotions(self, model: str | None = None, status: str = "pending") -> list[dict[str, Any]]:
        """Promotion requests of one model, or of every model you manage (``status``: pending,
        approved, rejected, expired, superseded or all)."""
        path = f"/api/v1/models/{model}/promotions" if model else "/api/v1/promotions"
        return list(self.get_json(path, status=status))

    def approve_promotion(self, model: str, promotion_id: int, *, note: str = "") -> dict[str, Any]:
        """Approve another principal's request: the alias moves at once."""
        path = f"/api/v1/models/{model}/promotions/{int(promotion_id)}/approve"
        return dict(self._send_json("POST", path, {"note": note}))

    def reject_promotion(self, model: str, promotion_id: int, *, note: str = "") -> dict[str, Any]:
        """Reject a pending promotion of ``owner/name``; the alias stays where it is."""
        path = f"/api/v1/models/{model}/promotions/{int(promotion_id)}/reject"
        return dict(self._send_json("POST", path, {"note": note}))

    def publish(
        self,
        path: str | Path,
        *,
        owner: str | None = None,
        bump: str | None = None,
        version: str | None = None,
        wait: bool = True,
        on_log: Callable[[str], None] | None = None,
        poll_interval: float = 0.5,
    ) -> dict[str, Any]:
        """Publish a model folder (with an ``algora.toml``, or an Algorithmia algorithm's
        repository as it is: see :mod:`algora.modelfolder.algorithmia`), or a saved model with
        no code, a folder or a single file (:mod:`algora.modelfolder.saved`: named after the
        folder or the file's stem); with ``wait`` follow the build until ready or failed.

        Raises :class:`~algora.errors.BuildFailed` when the build fails.
        """
        with as_folder(Path(path)) as folder:
            manifest = find_manifest(folder).manifest
            buffer = io.BytesIO()
            pack_directory(folder, buffer)
        owner = owner or str(self.whoami()["name"])
        source = Path(path) if Path(path).is_dir() else Path(path).parent
        params: dict[str, str] = dict(git_lineage(source))
        if bump:
            params["bump"] = bump
        if version:
            params["version"] = version
        model = f"{owner}/{manifest.model.name}"
        response = self.request(
            "POST",
            f"/api/v1/models/{model}/versions",
            content=buffer.getvalue(),
            params=params,
            headers={"Content-Type": "application/gzip"},
            timeout=600,
        )
        raise_for_error(response)
        created: dict[str, Any] = response.json()
        if not wait:
            return created
        offset = 0
        while True:
            log = self.build_log(model, created["version"], offset)
            if log["text"] and on_log is not None:
                for line in log["text"].splitlines():
                    on_log(line)
            offset = log["offset"]
            if log["done"]:
                break
            time.sleep(poll_interval)
        final = self.version(model, created["version"])
        if final["status"] != "ready":
            raise BuildFailed(
                f"{model} {final['version']} failed: {final.get('failure_reason')}",
                details={"version": final},
            )
        return final
