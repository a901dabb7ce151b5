"""A browser for hosted data collections (``data://owner/collection/...``): folders and files
the signed-in principal may read, through the same service as ``/v1/data``; a file is
downloaded as an attachment, never shown as a page of this site."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from algora.gateway.auditing import trail_of
from algora.gateway.permissions import declare
from algora.store.spaces import Page, Readable
from algora.web.signin import SignedIn, Visitor
from algora.web.site import site_of

__all__ = ["router"]

router = APIRouter()
DataReader = Annotated[Visitor, Depends(SignedIn("data:read"))]
_CHUNK = 256 * 1024
_LISTED = 1000


@router.get("/data", openapi_extra=declare("data:read", audit="ui.data"))
async def data_root(request: Request, visitor: DataReader) -> Response:
    return await browse(request, visitor, "")


@router.get("/data/{path:path}", openapi_extra=declare("data:read", audit="ui.data"))
async def browse(request: Request, visitor: DataReader, path: str) -> Response:
    site = site_of(request)
    space = site.platform.data_spaces.collections
    where = space.locate(visitor.caller, path)
    trail_of(request).resource = where.url
    got = await asyncio.to_thread(
        space.get, visitor.caller, where, acl=False, marker=None, limit=_LISTED
    )
    parts = [p for p in path.strip("/").split("/") if p]
    if isinstance(got, Page):
        crumbs = [("/".join(parts[: i + 1]), part) for i, part in enumerate(parts)]
        return site.render(
            request, "data.html", visitor=visitor, page=got, path="/".join(parts),
            crumbs=crumbs, shown=_LISTED,
        )  # fmt: skip
    if not isinstance(got, tuple):  # an ACL: not asked for here
        raise AssertionError("the data space answered an ACL to a read")
    body, size = got
    name = parts[-1] if parts else "file"
    headers = {
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        "Content-Length": str(size),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
    return StreamingResponse(_chunks(body), media_type="application/octet-stream", headers=headers)


def _chunks(body: Readable) -> Iterator[bytes]:
    try:
        while chunk := body.read(_CHUNK):
            yield chunk
    finally:
        body.close()
