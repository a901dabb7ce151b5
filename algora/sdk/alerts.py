"""The SDK's alert methods (:class:`algora.Client` has them): a model's alert rules and their
deliveries to webhooks (see ``docs/alerts.md``)."""

from __future__ import annotations

from typing import Any

__all__ = ["AlertMethods"]


class AlertMethods:
    """What :class:`algora.sdk.client.Client` adds for alerts; it supplies the requests."""

    def get_json(self, path: str, **params: Any) -> Any:
        raise NotImplementedError

    def _send_json(self, method: str, path: str, body: Any = None) -> Any:
        raise NotImplementedError

    def add_alert(
        self,
        model: str,
        *,
        signal: str,
        threshold: float,
        window: str,
        webhook: str,
        comparison: str = "above",
        version: str | None = None,
        alias: str | None = None,
        min_calls: int = 10,
        secret: str | None = None,
    ) -> dict[str, Any]:
        """Add a rule to ``owner/name``: when ``signal`` (``error_rate``, ``p95_ms``,
        ``p99_ms``, ``accuracy``, ``mean_abs_error``) over ``window`` (``5m``..``24h``) of at
        least ``min_calls`` calls goes ``comparison`` (``above``/``below``) ``threshold``, and
        when it comes back, a signed JSON body is posted to ``webhook``. ``version`` or
        ``alias`` narrows it. The answer has the ``rule`` and its signing ``secret`` (made by
        the server unless given): the one time it is shown."""
        body = {
            "signal": signal, "comparison": comparison, "threshold": threshold,
            "window": window, "webhook": webhook, "version": version, "alias": alias,
            "min_calls": min_calls, "secret": secret,
        }  # fmt: skip
        return dict(self._send_json("POST", f"/api/v1/models/{model}/alerts", body))

    def alerts(self, model: str) -> list[dict[str, Any]]:
        """The alert rules of ``owner/name``, with their ``state`` and last reading."""
        return list(self.get_json(f"/api/v1/models/{model}/alerts"))

    def delete_alert(self, model: str, rule_id: int) -> None:
        """Delete an alert rule of ``owner/name`` and its deliveries."""
        self._send_json("DELETE", f"/api/v1/models/{model}/alerts/{rule_id}")

    def alert_deliveries(self, model: str, rule_id: int) -> list[dict[str, Any]]:
        """The rule's latest deliveries, newest first: ``status`` (pending, delivered,
        failed) and each try's ``attempts`` (time, the webhook's status code or error)."""
        return list(self.get_json(f"/api/v1/models/{model}/alerts/{rule_id}/deliveries"))
