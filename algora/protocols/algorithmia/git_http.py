"""Model repositories over git's smart HTTP: ``/git/{owner}/{name}.git``.

Git's own ``git http-backend`` answers, run as a CGI program for each request (never through
a shell) with the repository root, the path and the request's headers in its environment; the
request body is streamed into it and its answer streamed back. Only the smart protocol's three
endpoints are routed (``info/refs?service=...``, ``git-upload-pack``, ``git-receive-pack``):
no dumb HTTP, no other file of the repository.

Authentication is the API key, as everywhere; git sends it as HTTP Basic (any user name, the
key as the password: ``https://anything:KEY@host/git/owner/name.git``), and ``Simple``,
``Bearer`` or a bare key work too. Without credentials the answer is 401 with
``WWW-Authenticate: Basic``, which makes git ask its credential helpers or the user.

Rights: fetching and cloning need the ``models:read`` scope and pushing ``models:publish``;
both need the model's ``publish`` right (owner, admin, or a member of the owning
organization with at least the member role, or a ``manage`` grant). Source is closed, as
Algorithmia's was by default: those who may call a model do not read its code, and anyone who
may push needs to fetch. A push that moves the default branch starts a build of its new head
(see :mod:`algora.publishing.builds`). Refusals are plain text, which git prints as
``remote: ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from algora.auth.keys import basic_authorization
from algora.auth.policy import require_scope
from algora.auth.principals import Caller
from algora.errors import (
    AlgoraError,
    BadRequest,
    PayloadTooLarge,
    PermissionDenied,
    RequestTimeout,
    Unauthenticated,
    Unavailable,
    retry_after,
)
from algora.gateway.auditing import note_error, trail_of
from algora.gateway.deps import internal_call, platform_of
from algora.gateway.permissions import declare
from algora.platform import Platform

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/git", tags=["git"])
SERVICES = ("git-upload-pack", "git-receive-pack")
_CHUNK = 64 * 1024
_MAX_HEADER_BYTES = 64 * 1024
_MAX_EARLY_OUTPUT = 16 * 1024 * 1024
_GIT_PROTOCOL = re.compile(r"^[A-Za-z0-9=:.,_-]{1,256}\Z")
_HOP_BY_HOP = frozenset({"connection", "transfer-encoding", "content-length", "keep-alive"})
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="Algora", charset="UTF-8"'}


def _authorization(request: Request) -> tuple[str | None, bool]:
    """The ``Authorization`` header as the authenticator reads it, and whether it was Basic.

    Basic carries the key as the password (a user name alone is taken as the key too, as
    tools that put a token in the user name do).
    """
    return basic_authorization(request.headers.get("authorization"))


async def _caller(request: Request, platform: Platform) -> Caller:
    header, _basic = _authorization(request)
    if header is None:
        raise Unauthenticated(
            "an API key is required: use it as the password "
            "(https://any-name:KEY@host/git/owner/name.git or a git credential helper)"
        )
    authenticator = platform.authenticator
    caller = authenticator.cached(header)
    if caller is None:
        address = request.client.host if request.client else None
        caller = await asyncio.to_thread(authenticator.authenticate, header, address)
    trail_of(request).caller = caller
    if caller.model_calls_only and not internal_call(request):
        raise PermissionDenied(
            f"key '{caller.key_id}' may only be used by calls made from inside models"
        )
    return caller


def _refusal(request: Request, error: AlgoraError) -> Response:
    """A refusal git shows its user: plain text (``remote: ...``), with the challenge on 401."""
    note_error(request, error)
    headers: dict[str, str] = {}
    if isinstance(error, Unauthenticated):
        headers.update(_CHALLENGE)
    wait = retry_after(error)
    if wait is not None:
        headers["Retry-After"] = str(wait)
    return PlainTextResponse(error.message + "\n", status_code=int(error.status), headers=headers)


def _cgi_environment(
    request: Request, platform: Platform, caller: Caller, path_info: str, service: str | None
) -> dict[str, str]:
    env = {
        **platform.sources.environment(),
        "GIT_PROJECT_ROOT": str(platform.sources.root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_METHOD": request.method,
        "PATH_INFO": path_info,
        "QUERY_STRING": f"service={service}" if service else "",
        "CONTENT_TYPE": request.headers.get("content-type", ""),
        "REMOTE_USER": caller.name,
        "REMOTE_ADDR": request.client.host if request.client else "",
    }
    length = request.headers.get("content-length")
    if length is not None and length.isdigit():
        env["CONTENT_LENGTH"] = length
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        env["HTTP_CONTENT_ENCODING"] = encoding
    protocol = request.headers.get("git-protocol")
    if protocol is not None and _GIT_PROTOCOL.match(protocol):
        env["GIT_PROTOCOL"] = protocol
        env["HTTP_GIT_PROTOCOL"] = protocol
    return env


def _split_headers(buffer: bytes) -> tuple[bytes, bytes] | None:
    """(header block, rest) of a CGI answer, or None while the blank line has not arrived."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        index = buffer.find(separator)
        if index >= 0:
            return buffer[:index], buffer[index + len(separator) :]
    return None


def _parse_headers(block: bytes) -> tuple[int, dict[str, str]]:
    status = 200
    headers: dict[str, str] = {}
    for raw in block.decode("latin-1").splitlines():
        key, sep, value = raw.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key.lower() == "status":
            code = value.split(" ", 1)[0]
            status = int(code) if code.isdigit() else 500
        elif key.lower() not in _HOP_BY_HOP:
            headers[key] = value
    return status, headers


async def _feed(request: Request, stdin: asyncio.StreamWriter, limit: int) -> None:
    """Stream the request body into the backend; PayloadTooLarge past ``limit`` bytes."""
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the push is larger than the {limit}-byte limit")
            if chunk:
                stdin.write(chunk)
                await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the backend stopped reading: its answer says why
    finally:
        stdin.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await stdin.wait_closed()


async def _serve(
    request: Request, owner: str, name: str, path: str, service: str | None
) -> Response:
    platform = platform_of(request)
    sources = platform.sources
    pushing = path == "git-receive-pack"  # a push itself (not its info/refs)
    try:
        caller = await _caller(request, platform)
        writes = service == "git-receive-pack"
        require_scope(caller, "models:publish" if writes else "models:read")
        if pushing:
            platform.limiter.check(caller.key_id, None, caller.limits)
        branch = await asyncio.to_thread(sources.branch, caller, owner, name, "publish")
        if service is None:
            raise BadRequest("Algora serves git's smart HTTP protocol only: use git 1.6.6 or later")
        if service not in SERVICES:
            raise BadRequest(f"unknown git service '{service}'")
        git = sources.require_git()
        declared = request.headers.get("content-length")
        limit = platform.settings.max_archive_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"the push is larger than the {limit}-byte limit")
    except AlgoraError as error:
        return _refusal(request, error)
    before = await asyncio.to_thread(sources.head, owner, name, branch) if pushing else None
    query_service = service if request.method == "GET" else None
    env = _cgi_environment(request, platform, caller, f"/{owner}/{name}.git/{path}", query_service)
    process = await asyncio.create_subprocess_exec(
        git,
        # The body limit counts what arrives; a gzip body inflates before receive-pack reads
        # it, so receive-pack enforces the limit on the pack it stores too.
        "-c",
        f"receive.maxInputSize={platform.settings.max_archive_bytes}",
        "http-backend",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        # Its own process group: `git` runs git-http-backend as a child, which a kill of `git`
        # alone would orphan (still reading a stalled request, spinning on its EOF).
        start_new_session=True,
        # No umask here (uvloop takes none): the repository's core.sharedRepository=0600 keeps
        # what git writes owner-only, inside the owner-only data folder.
    )
    assert process.stdin and process.stdout and process.stderr  # all three are pipes
    stdout = process.stdout
    errors = asyncio.create_task(_tail(process.stderr))
    early = bytearray()

    async def collect() -> None:
        # Read while the body goes in, so a backend that answers early never blocks on us.
        while chunk := await stdout.read(_CHUNK):
            early.extend(chunk)
            if len(early) > _MAX_EARLY_OUTPUT:
                raise Unavailable("git answered more than expected before reading the request")

    collector = asyncio.create_task(collect())
    timeout = platform.settings.git_request_timeout
    deadline = asyncio.get_running_loop().time() + timeout
    too_slow = f"the git request took longer than {timeout:g} s (ALGORA_GIT_REQUEST_TIMEOUT)"
    try:
        async with asyncio.timeout_at(deadline):
            await _feed(request, process.stdin, platform.settings.max_archive_bytes)
            if collector.done():
                collector.result()
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
            while (parts := _split_headers(bytes(early))) is None:
                if len(early) > _MAX_HEADER_BYTES:
                    raise Unavailable("git answered with malformed headers")
                chunk = await stdout.read(_CHUNK)
                if not chunk:
                    raise Unavailable("git ended without an answer")
                early.extend(chunk)
    except TimeoutError:
        collector.cancel()
        await _stop(process, errors, f"{owner}/{name}", kill=True)
        return _refusal(request, RequestTimeout(too_slow))
    except AlgoraError as error:
        collector.cancel()
        await _stop(process, errors, f"{owner}/{name}", kill=True)
        return _refusal(request, error)
    except BaseException:
        collector.cancel()
        await _stop(process, errors, f"{owner}/{name}", kill=True)
        raise
    block, rest = parts
    status, headers = _parse_headers(block)

    async def body() -> AsyncIterator[bytes]:
        finished = False
        try:
            if rest:
                yield rest
            while True:
                left = deadline - asyncio.get_running_loop().time()
                try:
                    chunk = await asyncio.wait_for(stdout.read(_CHUNK), max(left, 0))
                except TimeoutError:
                    logger.warning("%s: %s", f"{owner}/{name}", too_slow)
                    return  # the finally stops git; the client sees a cut answer and fails
                if not chunk:
                    break
                yield chunk
            finished = True
        finally:
            # A client that went away leaves git blocked on its output: stop it at once.
            code = await _stop(process, errors, f"{owner}/{name}", kill=not finished)
            if pushing and finished and code == 0:
                await _after_push(platform, caller, owner, name, branch, before)

    return StreamingResponse(body(), status_code=status, headers=headers)


async def _tail(stream: asyncio.StreamReader) -> bytes:
    """What the backend wrote to stderr (its last 8 KiB)."""
    kept = b""
    while chunk := await stream.read(_CHUNK):
        kept = (kept + chunk)[-8192:]
    return kept


async def _stop(
    process: asyncio.subprocess.Process, errors: asyncio.Task[bytes], repo: str, *, kill: bool
) -> int:
    """Wait for the backend to end (killing it first with ``kill``); its exit status."""
    if kill:
        _kill_group(process)
    if process.returncode is None:
        try:
            await asyncio.wait_for(process.wait(), timeout=5)
        except TimeoutError:
            _kill_group(process)
            await process.wait()
    _kill_group(process)  # anything git left behind in its group
    with contextlib.suppress(Exception):
        text = (await asyncio.wait_for(errors, timeout=5)).decode("utf-8", errors="replace")
        if text.strip():
            logger.info("git http-backend for %s: %s", repo, text.strip()[-2000:])
    return process.returncode if process.returncode is not None else -1


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def _after_push(
    platform: Platform, caller: Caller, owner: str, name: str, branch: str, before: str | None
) -> None:
    try:
        after = await asyncio.to_thread(platform.sources.head, owner, name, branch)
        build = await asyncio.to_thread(platform.builds.pushed, caller, owner, name, before, after)
        if build is not None:
            logger.info(
                "push to %s/%s moved %s to %s: build #%s", owner, name, branch, after, build
            )
    except Exception:
        logger.exception("could not start the build of a push to %s/%s", owner, name)


_NAME = "{owner}/{name}.git"


@router.get(
    f"/{_NAME}/info/refs",
    openapi_extra=declare("models:read", audit="source.refs"),
    summary="git: the repository's refs (smart HTTP; pushing needs models:publish)",
)
async def info_refs(
    request: Request,
    owner: str,
    name: str,
    service: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    return await _serve(request, owner, name, "info/refs", service)


def _pack_route(service: str, route_name: str, permission: str, action: str, summary: str) -> None:
    """The route of one of git's two pack services: a fetch (``git-upload-pack``) or a push
    (``git-receive-pack``), the same exchange in either direction."""

    async def pack(request: Request, owner: str, name: str) -> Response:
        return await _serve(request, owner, name, service, service)

    router.add_api_route(
        f"/{_NAME}/{service}",
        pack,
        methods=["POST"],
        name=route_name,
        summary=summary,
        openapi_extra=declare(permission, audit=action),
    )


_pack_route("git-upload-pack", "upload_pack", "models:read", "source.fetch", "git: fetch and clone")
_pack_route(
    "git-receive-pack",
    "receive_pack",
    "models:publish",
    "source.push",
    "git: push (a push to the default branch starts a build)",
)
