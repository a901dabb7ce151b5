"""What the hosted-data routes share, in Algorithmia's wire format.

The spaces of :mod:`algora.store.spaces` decide who may do what and where the bytes live; the
shapes on the wire are the same for all and are written here: the scopes the routes need, a
folder listing, a file streamed with ``X-Data-Type: file``, a HEAD answered with headers only
(``X-Data-Type`` or ``X-Error-Message``), a ``{"name": ...}`` body that creates a folder, and
an upload streamed in chunks of at most :data:`WRITE_BUFFER` bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from algora.auth.principals import Caller
from algora.errors import AlgoraError, BadRequest, PayloadTooLarge
from algora.gateway.auditing import note_error
from algora.gateway.deps import read_body
from algora.gateway.inputs import decode_json
from algora.gateway.permissions import Needs
from algora.store.collections import PAGE_SIZE
from algora.store.spaces import Acl, Opened, Page, Upload

__all__ = [
    "Limit",
    "Marker",
    "ReadData",
    "WriteData",
    "head_response",
    "header_text",
    "json_body",
    "named_body",
    "page_body",
    "receive_upload",
    "refuse_declared_oversize",
    "render",
]

ReadData = Annotated[Caller, Depends(Needs("data:read"))]
WriteData = Annotated[Caller, Depends(Needs("data:write", write=True))]
Marker = Annotated[str | None, Query(max_length=1024)]
"""Where a listing page starts: the opaque ``marker`` of the page before."""
Limit = Annotated[int, Query(ge=1, le=PAGE_SIZE)]

MAX_JSON_BODY = 64 * 1024
WRITE_BUFFER = 1024 * 1024
"""Bytes of an upload gathered before they are handed to the store's thread."""
READ_CHUNK = 256 * 1024


def page_body(page: Page) -> dict[str, Any]:
    """A folder's page: its folders, its files, and the ``marker`` of the next page if any."""
    folders: list[dict[str, Any]] = []
    for folder in page.folders:
        shown: dict[str, Any] = {"name": folder.name}
        if folder.acl is not None:
            shown["acl"] = {"read": list(folder.acl)}
        folders.append(shown)
    out: dict[str, Any] = {
        "folders": folders,
        "files": [
            {"filename": e.name, "last_modified": e.last_modified, "size": e.size}
            for e in page.files
        ],
    }
    if page.marker is not None:
        out["marker"] = page.marker
    return out


def render(loaded: Page | Opened | Acl) -> Response:
    """A page or an ACL as JSON (``{}``: none), or the opened file streamed with
    ``X-Data-Type: file``."""
    if isinstance(loaded, Page):
        return JSONResponse(page_body(loaded))
    if isinstance(loaded, Acl):
        return JSONResponse({} if loaded.read is None else {"acl": {"read": list(loaded.read)}})
    handle, size = loaded

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(handle.read, READ_CHUNK):
                yield chunk
        finally:
            handle.close()

    headers = {"Content-Length": str(size), "X-Data-Type": "file"}
    return StreamingResponse(chunks(), media_type="application/octet-stream", headers=headers)


def header_text(message: str) -> str:
    """A header-safe message: ASCII, one line."""
    text = message.encode("ascii", errors="backslashreplace").decode("ascii")
    return " ".join(text.split())[:512]


async def head_response(request: Request, probe: Callable[[], str]) -> Response:
    """Run ``probe`` (blocking) in a thread: 200 with ``X-Data-Type`` (the kind it returns:
    file or directory), or the status of the error it raised with ``X-Error-Message`` (a HEAD
    answer has no body)."""
    try:
        kind = await asyncio.to_thread(probe)
    except AlgoraError as error:
        note_error(request, error)
        headers = {"X-Error-Message": header_text(error.message)}
        return Response(status_code=int(error.status), headers=headers)
    return Response(status_code=200, headers={"X-Data-Type": kind})


async def json_body(request: Request) -> Any:
    """The request's JSON body (at most :data:`MAX_JSON_BODY` bytes), or BadRequest."""
    raw = await read_body(request, MAX_JSON_BODY)
    try:
        return decode_json(raw)
    except ValueError:
        raise BadRequest("the body is not JSON") from None


async def named_body(request: Request, shape: str) -> tuple[dict[str, Any], str]:
    """A body that names a folder to create, and that name; else BadRequest saying ``shape``
    (the body the route expects)."""
    body = await json_body(request)
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str):
        raise BadRequest(f"the body is {shape}")
    return body, name


def refuse_declared_oversize(request: Request, max_file_bytes: int) -> None:
    """PayloadTooLarge at once when the declared Content-Length is over the cap (the upload
    checks what actually arrives)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_file_bytes:
        raise PayloadTooLarge(f"a data file is at most {max_file_bytes} bytes")


async def receive_upload(request: Request, upload: Upload) -> None:
    """Stream the request's body into ``upload`` and commit it; on any failure, or when the
    request is cancelled, abort it (shielded, so that nothing half-written is left behind)."""
    try:
        buffer = bytearray()
        async for chunk in request.stream():
            buffer += chunk
            if len(buffer) >= WRITE_BUFFER:
                await asyncio.to_thread(upload.write, bytes(buffer))
                buffer.clear()
        await asyncio.to_thread(upload.write, bytes(buffer))
        await asyncio.to_thread(upload.commit)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(upload.abort)
        raise
