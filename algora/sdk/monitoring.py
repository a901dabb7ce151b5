"""What the SDK reads of how models are doing: statistics, reports and drift (a part of
:class:`~algora.sdk.client.Client`)."""

from __future__ import annotations

from typing import Any


class MonitoringMethods:
    """A model's statistics, what its code reported and its drift."""

    def get_json(self, path: str, **params: Any) -> Any:
        raise NotImplementedError

    def stats(
        self,
        model: str,
        *,
        since: str | None = None,
        until: str | None = None,
        step: str = "1m",
        version: str | None = None,
    ) -> dict[str, Any]:
        """``owner/name``'s calls, errors and latency per version over time: ``since`` and
        ``until`` are ISO 8601 times or durations before now (``30m``, ``6h``, ``2d``);
        ``step`` is ``1m``, ``1h`` or ``1d``; ``version`` (``1.2.3``) keeps one. The answer
        has ``versions``, each with its ``total`` and its ``points`` (one per step)."""
        return self._windowed(f"/api/v1/models/{model}/stats", since, until, step, version)

    def reports(
        self,
        model: str,
        *,
        since: str | None = None,
        until: str | None = None,
        step: str = "1m",
        version: str | None = None,
    ) -> dict[str, Any]:
        """What ``owner/name``'s code reported (``algora.report``, Algorithmia's insights) per
        version and name over time, windowed as :meth:`stats` is: ``series`` holds each
        version and name with its ``total`` and ``points`` (count, mean, min, max)."""
        return self._windowed(f"/api/v1/models/{model}/reports", since, until, step, version)

    def _windowed(
        self, path: str, since: str | None, until: str | None, step: str, version: str | None
    ) -> dict[str, Any]:
        query = {"since": since, "until": until, "step": step, "version": version}
        params = {name: value for name, value in query.items() if value is not None}
        return dict(self.get_json(path, **params))

    def drift(
        self,
        model: str,
        *,
        version: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> dict[str, Any]:
        """The input and output drift of ``owner/name``'s ``version`` (default: its newest ready
        version with drift on) against its reference, over ``since`` to ``until`` as for
        :meth:`stats` (default: the last hour): ``features``, each with its ``psi`` and
        ``status`` (``ok``, ``warn``, ``alert``, ``no data``), ``calls`` in the window and the
        reference's ``reference_size``. A version without drift raises NotFound."""
        query = {"version": version, "since": since, "until": until}
        params = {name: value for name, value in query.items() if value is not None}
        return dict(self.get_json(f"/api/v1/models/{model}/drift", **params))
