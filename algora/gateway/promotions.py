"""Approving a promotion, for every adapter that offers it (the native API, the web UI): the
alias moves, the gateways' cached resolutions go, and the move gets an audit row of its own
(``alias.move``, under the approval's request id) before the approver is answered."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from algora.audit.related import follow_up
from algora.auth.keys import parse_authorization_scheme
from algora.auth.principals import Caller
from algora.platform import Platform
from algora.registry.aliases import Move, PromotionView

__all__ = ["Origin", "approve"]


@dataclass(frozen=True)
class Origin:
    """Where an approval came from, as the audit log records it."""

    request_id: str
    client: str | None
    forwarded_for: str | None
    authorization: str | None


async def approve(
    platform: Platform,
    caller: Caller,
    owner: str,
    name: str,
    promotion_id: int,
    note: str,
    origin: Origin,
) -> tuple[PromotionView, Move]:
    view, move = await asyncio.to_thread(
        platform.aliases.approve, caller, owner, name, promotion_id, note
    )
    platform.calls.forget()
    peer, forwarded = platform.audit.origin(origin.client, origin.forwarded_for)
    auth_method, _secret = parse_authorization_scheme(origin.authorization)
    await platform.audit.record(
        follow_up(
            "alias.move",
            resource=move.model,
            version=move.audit_text,
            request_id=origin.request_id[:128],
            principal=caller.name,
            principal_id=caller.principal_id,
            key_id=caller.key_id,
            auth_method=auth_method,
            peer=peer,
            forwarded_for=forwarded,
        )
    )
    return view, move
