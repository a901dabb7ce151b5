"""The SDK's payload sampling methods (``Client`` has them): a model's sampling rule, and the
samples its calls left, for the model's managers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["SamplingMethods"]


class SamplingMethods:
    """What :class:`~algora.sdk.client.Client` adds for payload sampling."""

    def get_json(self, path: str, **params: Any) -> Any:
        raise NotImplementedError

    def _send_json(self, method: str, path: str, body: Any = None) -> Any:
        raise NotImplementedError

    def sampling(self, model: str) -> dict[str, Any]:
        """``owner/name``'s sampling rule: ``enabled``, ``rate``, ``max_bytes``, ``redact``;
        NotFound when it has none (its calls are not sampled)."""
        return dict(self.get_json(f"/api/v1/models/{model}/sampling"))

    def set_sampling(
        self,
        model: str,
        *,
        rate: float = 0.01,
        max_bytes: int = 65536,
        redact: Sequence[str] = (),
        enabled: bool = True,
    ) -> dict[str, Any]:
        """Sample a share ``rate`` (0 < rate <= 1) of ``owner/name``'s calls: each input and
        output kept up to ``max_bytes``, the JSON fields named in ``redact`` replaced at any
        depth. Only the model's managers may."""
        body = {"rate": rate, "max_bytes": max_bytes, "redact": list(redact), "enabled": enabled}
        return dict(self._send_json("PUT", f"/api/v1/models/{model}/sampling", body))

    def stop_sampling(self, model: str) -> None:
        """Stop sampling ``owner/name``'s calls (the samples taken stay until they expire)."""
        self._send_json("DELETE", f"/api/v1/models/{model}/sampling")

    def samples(
        self,
        model: str,
        *,
        since: str | None = None,
        until: str | None = None,
        version: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """``owner/name``'s samples, newest first: ``since`` and ``until`` are ISO 8601 times
        or durations before now (``30m``, ``6h``, ``2d``); ``version`` keeps one version's."""
        wanted = {"since": since, "until": until, "version": version, "limit": limit}
        params = {name: value for name, value in wanted.items() if value is not None}
        return list(self.get_json(f"/api/v1/models/{model}/samples", **params))

    def sample(self, model: str, request_id: str) -> dict[str, Any]:
        """One sampled call of ``owner/name``: its ``sample`` (as :meth:`samples` lists it),
        and its stored ``input`` and ``output`` (``content_type``, ``bytes``, ``encoding``,
        ``data``, ``truncated``)."""
        return dict(self.get_json(f"/api/v1/models/{model}/samples/{request_id}"))
