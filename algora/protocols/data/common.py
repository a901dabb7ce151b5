"""What the hosted-data routes share, in Algorithmia's wire format.

Three modules serve ``/v1/data``: user collections (``data.py``), a model's own collection and
a call tree's scratch space (``model_data.py``) and data connectors (``connectors.py``). Each
decides who may do what and where the bytes live; the shapes on the wire are the same for all
and are written here: the scopes their routes need, a folder listing, a file streamed with
``X-Data-Type: file``, a HEAD answered with headers only (``X-Data-Type`` or
``X-Error-Message``), a ``{"name": ...}`` body that creates a folder, and an upload streamed
in chunks of at most :data:`WRITE_BUFFER` bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Protocol

import anyio
from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from algora.auth.principals import Caller
from algora.errors import AlgoraError, BadRequest, PayloadTooLarge
from algora.gateway.auditing import note_error
from algora.gateway.deps import read_body
from algora.gateway.inputs import decode_json
from algora.gateway.permissions import Needs
from algora.store.collections import PAGE_SIZE, Listing

__all__ = [
    "Limit",
    "Marker",
    "Opened",
    "ReadData",
    "WriteData",
    "head_response",
    "header_text",
    "json_body",
    "listing_body",
    "named_body",
    "read_response",
    "receive_upload",
    "refuse_declared_oversize",
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


class Readable(Protocol):
    """An open file or object body: read in chunks, then closed (closing never blocks)."""

    def read(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


class Upload(Protocol):
    """A file or object being written: nothing is visible under its name until ``commit``."""

    def write(self, chunk: bytes, /) -> None: ...

    def commit(self) -> int: ...

    def abort(self) -> None:
        """Drop what was written; safe to call more than once."""
        ...


Opened = tuple[Readable, int]
"""A file to stream, and its size."""


def listing_body(listing: Listing) -> dict[str, Any]:
    """A folder's page: its folders, its files, and the ``marker`` of the next page if any."""
    out: dict[str, Any] = {
        "folders": [{"name": e.name} for e in listing.entries if e.is_dir],
        "files": [
            {"filename": e.name, "last_modified": e.last_modified, "size": e.size}
            for e in listing.entries
            if not e.is_dir
        ],
    }
    if listing.marker is not None:
        out["marker"] = listing.marker
    return out


async def read_response(load: Callable[[], dict[str, Any] | Opened]) -> Response:
    """Run ``load`` (blocking) in a thread; answer its JSON, or stream the file it opened."""
    loaded = await asyncio.to_thread(load)
    if isinstance(loaded, dict):
        return JSONResponse(loaded)
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
