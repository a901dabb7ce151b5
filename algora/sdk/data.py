"""Hosted data from Python, over the ``/v1/data`` API: ``client.data(uri)``.

client = algora.Client()
coll = client.data("data://.my/images")
coll.mkdir(acl="private")                        # a collection (or, deeper, a folder)
coll.child("cat.png").upload("cat.png")          # streamed from the file, atomic on the server
[e.name for e in coll.list()]                    # every page, following the server's marker
coll.child("cat.png").download("copy.png")       # streamed to the file; .read() returns bytes

URIs are written as Algorithmia writes them: ``data://owner/collection/path``,
``data://.my/...`` (the caller), ``data://.algo/...``, ``s3://bucket/key`` and
``s3+CONNECTOR://bucket/key``; ``owner/collection/path`` without a scheme means ``data://``.
Errors raise the classes of :mod:`algora.errors` that the server raised.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote

import httpx

from algora.errors import InvalidInput, NotFound, Unavailable, error_from_body
from algora.sdk._closing import Closing

if TYPE_CHECKING:
    from algora.sdk.client import Client

__all__ = [
    "ACLS",
    "DataEntry",
    "DataHandle",
    "DataReader",
    "DataUri",
    "Progress",
    "acl_entries",
    "acl_name",
    "check_name",
    "is_remote",
]

Progress = Callable[[int], None]
"""Called with the number of bytes just sent or received (an increment, as boto3 does)."""

ACLS: dict[str, list[str]] = {
    "private": [],
    "my-models": ["algo://.my/*"],
    "public": ["user://*"],
}
"""A collection's read ACL by name: only its owner; also the owner's models; any user."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)$", re.DOTALL)
_CONNECTOR = re.compile(r"^s3(\+[A-Za-z0-9_\-]+)?\Z")
_CHUNK = 1024 * 1024
_TRANSFER_TIMEOUT = httpx.Timeout(60.0, read=600.0)
"""Each read or write may wait this long; a large upload's answer comes after the server syncs."""


def check_name(name: str) -> str:
    """One segment of a data path: no empty, ``.`` or ``..`` names, slashes, backslashes or
    control characters. Also the test a listed name passes before it names a local file."""
    if name in ("", ".", ".."):
        raise InvalidInput(f"'{name}' is not a file or folder name: no empty, '.' or '..' names")
    if any(ord(c) < 0x20 or c in "\x7f\\/" for c in name):
        raise InvalidInput(
            f"{name!r} is not a file or folder name: no slashes, backslashes or control characters"
        )
    return name


def is_remote(text: str) -> bool:
    """Whether ``text`` is written with a scheme (``data://``, ``s3://``...), not a local path."""
    return _SCHEME.match(text) is not None


def acl_name(read: list[str]) -> str:
    """``private``, ``my-models`` or ``public`` for a collection's read list."""
    if "user://*" in read:
        return "public"
    return "my-models" if "algo://.my/*" in read else "private"


def acl_entries(acl: str | list[str]) -> list[str]:
    """The read list for an ACL name, or a read list as given."""
    if isinstance(acl, list):
        return list(acl)
    if acl not in ACLS:
        raise InvalidInput(f"'{acl}' is not an ACL: use {', '.join(ACLS)}")
    return list(ACLS[acl])


@dataclass(frozen=True)
class DataUri:
    """A parsed data URI: ``scheme`` is ``data``, ``s3`` or ``s3+NAME``; ``parts`` its names."""

    scheme: str
    parts: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> DataUri:
        match = _SCHEME.match(text)
        if match is None:
            if text.startswith("/"):
                raise InvalidInput(
                    f"'{text}' looks like a local path: name hosted data as data://owner/..."
                )
            scheme, rest = "data", text
        else:
            scheme, rest = match.group(1).lower(), match.group(2)
            if scheme != "data" and not _CONNECTOR.match(scheme):
                raise InvalidInput(
                    f"'{scheme}://' is not served here: use data://owner/collection/path, "
                    "s3://bucket/key or s3+CONNECTOR://bucket/key"
                )
        rest = rest[:-1] if rest.endswith("/") else rest
        parts = tuple(check_name(p) for p in rest.split("/")) if rest else ()
        return cls(scheme, parts)

    def __str__(self) -> str:
        return f"{self.scheme}://" + "/".join(self.parts)

    @property
    def api_path(self) -> str:
        """The path of this URI under the gateway."""
        quoted = "/".join(quote(p, safe="") for p in self.parts)
        if self.scheme == "data":
            return "/v1/data/" + quoted
        return f"/v1/connector/{quote(self.scheme, safe='+')}/{quoted}"

    @property
    def name(self) -> str:
        """The last part of the path (empty for a root)."""
        return self.parts[-1] if self.parts else ""

    @property
    def parent(self) -> DataUri | None:
        """The URI one folder up; None for a root."""
        return DataUri(self.scheme, self.parts[:-1]) if self.parts else None

    def child(self, name: str) -> DataUri:
        """The URI of ``name`` inside this folder (``name`` is checked: no ``/``, ``..``)."""
        return DataUri(self.scheme, (*self.parts, check_name(name)))

    @property
    def is_collection(self) -> bool:
        """Whether this names a collection (``data://owner/collection``), the holder of ACLs."""
        special = (".algo", ".session")
        return self.scheme == "data" and len(self.parts) == 2 and self.parts[0] not in special


@dataclass(frozen=True)
class DataEntry:
    """One entry of a listing. ``acl`` is set for collections listed under their owner."""

    uri: str
    name: str
    kind: str
    size: int | None = None
    last_modified: str | None = None
    acl: list[str] | None = None

    @property
    def is_dir(self) -> bool:
        """Whether the entry is a folder."""
        return self.kind == "directory"

    def as_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready fields (name, type, uri; size and time for files)."""
        out: dict[str, Any] = {"name": self.name, "type": self.kind, "uri": self.uri}
        if self.kind == "file":
            out |= {"size": self.size, "last_modified": self.last_modified}
        if self.acl is not None:
            out["acl"] = {"read": self.acl, "name": acl_name(self.acl)}
        return out


_HEAD_MESSAGES = {
    401: "the key was not accepted: check --key, ALGORA_KEY or `algora login`",
    403: "the key may not read this data (it lacks the data:read scope)",
    429: "too many requests for this key: try again shortly",
}
"""What a bodiless HEAD answer without ``X-Error-Message`` (refused before the route) meant."""


def _raise_for_error(response: httpx.Response) -> None:
    """Raise the server's error; HEAD answers carry their message in ``X-Error-Message``."""
    if response.status_code < 400:
        return
    if response.request.method == "HEAD":
        message = response.headers.get("x-error-message") or _HEAD_MESSAGES.get(
            response.status_code, f"HTTP {response.status_code}"
        )
        raise error_from_body(response.status_code, {"error": {"message": message}})
    response.read()
    try:
        body = response.json()
    except ValueError:
        body = {"error": {"message": response.text[:500] or f"HTTP {response.status_code}"}}
    raise error_from_body(response.status_code, body)


class DataReader(Closing):
    """A file being read from the server: ``size`` bytes, iterated in chunks; close it."""

    def __init__(self, uri: DataUri, response: httpx.Response, stack: contextlib.ExitStack) -> None:
        self.uri = uri
        self._response = response
        self._stack = stack
        length = response.headers.get("content-length", "")
        self.size: int | None = int(length) if length.isdigit() else None
        self.received = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._response.iter_bytes(_CHUNK):
            self.received += len(chunk)
            yield chunk
        if self.size is not None and self.received != self.size:
            raise Unavailable(
                f"the download of {self.uri} stopped after {self.received} of {self.size} "
                "bytes: try again"
            )

    def save(self, path: str | Path, *, progress: Progress | None = None) -> int:
        """Write the rest of the file to ``path``, replaced atomically (a failed download
        leaves what was there, and a link at ``path`` is replaced, not followed); returns the
        bytes received. The new file is readable by its owner only."""
        target = Path(path)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=".algora-download-", suffix=".part")
        temp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in _counted(self, progress):
                    out.write(chunk)
            temp.replace(target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return self.received

    def close(self) -> None:
        """Close the download."""
        self._stack.close()


def _counted(chunks: Iterable[bytes], progress: Progress | None) -> Iterator[bytes]:
    for chunk in chunks:
        if chunk:
            yield chunk
            if progress is not None:
                progress(len(chunk))


def _file_chunks(handle: BinaryIO, size: int, name: str) -> Iterator[bytes]:
    """Exactly ``size`` bytes of the file, or an error when it shrank while being sent."""
    left = size
    while left > 0:
        chunk = handle.read(min(_CHUNK, left))
        if not chunk:
            raise InvalidInput(f"'{name}' shrank while it was being uploaded: nothing was written")
        left -= len(chunk)
        yield chunk


class DataHandle:
    """A file, folder or collection of hosted data, bound to a client."""

    def __init__(self, client: Client, uri: str | DataUri) -> None:
        self._client = client
        self.uri = uri if isinstance(uri, DataUri) else DataUri.parse(uri)

    def __str__(self) -> str:
        return str(self.uri)

    def __repr__(self) -> str:
        return f"DataHandle({str(self.uri)!r})"

    @property
    def name(self) -> str:
        """The last part of the path (empty for a root)."""
        return self.uri.name

    def child(self, name: str) -> DataHandle:
        """A handle on ``name`` inside this folder (``name`` is checked: no ``/``, ``..``)."""
        return DataHandle(self._client, self.uri.child(name))

    @property
    def parent(self) -> DataHandle | None:
        """A handle one folder up; None for a root."""
        parent = self.uri.parent
        return DataHandle(self._client, parent) if parent is not None else None

    def _send(self, method: str, **kwargs: Any) -> httpx.Response:
        response = self._client.request(method, self.uri.api_path, **kwargs)
        _raise_for_error(response)
        return response

    # reading ---------------------------------------------------------------------------------
    def kind(self) -> str | None:
        """``file``, ``directory``, or None when nothing is there (or you may not see it)."""
        try:
            response = self._send("HEAD")
        except NotFound:
            return None
        return response.headers.get("x-data-type") or "directory"

    def exists(self) -> bool:
        """Whether a file or folder is at this path (one HEAD request)."""
        return self.kind() is not None

    def list(self, *, page_size: int | None = None) -> Iterator[DataEntry]:
        """The entries of this folder (or collection, owner, bucket), every page of them."""
        marker: str | None = None
        while True:
            params: dict[str, str] = {}
            if page_size is not None:
                params["limit"] = str(page_size)
            if marker:
                params["marker"] = marker
            with self._client.stream("GET", self.uri.api_path, params=params or None) as page:
                _raise_for_error(page)
                if page.headers.get("x-data-type") == "file":  # not read: it may be large
                    raise InvalidInput(f"{self.uri} is a file, not a folder")
                page.read()
            body = page.json()
            for folder in body.get("folders", []):
                acl = folder.get("acl")
                read = acl.get("read") if isinstance(acl, dict) else None
                yield DataEntry(
                    self._entry_uri(str(folder["name"])),
                    str(folder["name"]),
                    "directory",
                    acl=list(read) if isinstance(read, list) else None,
                )
            for file in body.get("files", []):
                yield DataEntry(
                    self._entry_uri(str(file["filename"])),
                    str(file["filename"]),
                    "file",
                    size=int(file.get("size") or 0),
                    last_modified=file.get("last_modified"),
                )
            following = body.get("marker")
            if not following:
                return
            if following == marker:
                raise Unavailable(f"the listing of {self.uri} repeats its page: try again")
            marker = str(following)

    def _entry_uri(self, name: str) -> str:
        base = str(self.uri)
        return base + name if base.endswith("/") else f"{base}/{name}"

    def open(self) -> DataReader:
        """Stream the file: ``with handle.open() as reader: for chunk in reader: ...``."""
        stack = contextlib.ExitStack()
        try:
            response = stack.enter_context(
                self._client.stream("GET", self.uri.api_path, timeout=_TRANSFER_TIMEOUT)
            )
            _raise_for_error(response)
            if response.headers.get("x-data-type") != "file":
                raise InvalidInput(f"{self.uri} is a folder, not a file")
        except BaseException:
            stack.close()
            raise
        return DataReader(self.uri, response, stack)

    def read(self) -> bytes:
        """The file's bytes."""
        with self.open() as reader:
            return b"".join(reader)

    def download(self, path: str | Path, *, progress: Progress | None = None) -> int:
        """Stream the file to ``path`` (see :meth:`DataReader.save`); returns its size."""
        with self.open() as reader:
            return reader.save(path, progress=progress)

    # writing ---------------------------------------------------------------------------------
    def write(
        self,
        data: bytes | str | Iterable[bytes],
        *,
        size: int | None = None,
        progress: Progress | None = None,
    ) -> str:
        """Write the file from bytes, text (UTF-8) or an iterable of chunks (``size`` bytes,
        when known). The server writes atomically: a failed write leaves what was there."""
        headers = {"Content-Type": "application/octet-stream"}
        content: bytes | Iterator[bytes]
        if isinstance(data, str | bytes):
            raw = data.encode("utf-8") if isinstance(data, str) else data
            content = _counted([raw], progress)
            size = len(raw)
        else:
            content = _counted(data, progress)
        if size is not None:
            headers["Content-Length"] = str(size)
        response = self._send("PUT", content=content, headers=headers, timeout=_TRANSFER_TIMEOUT)
        return str(response.json().get("result", self.uri))

    def upload(self, path: str | Path, *, progress: Progress | None = None) -> str:
        """Write the file from a local file, streamed."""
        source = Path(path)
        with source.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            return self.write(_file_chunks(handle, size, str(source)), size=size, progress=progress)

    def mkdir(
        self,
        *,
        acl: str | builtins.list[str] | None = None,
        parents: bool = False,
        exist_ok: bool = False,
    ) -> str:
        """Create this collection (with ``acl``: private, my-models, public or a read list;
        the server's default is my-models) or folder. ``parents`` creates the folders on the
        way; ``exist_ok`` accepts a folder that is already there."""
        parent = self.uri.parent
        if parent is None or (parent.scheme == "data" and not parent.parts):
            raise InvalidInput(
                f"{self.uri} is not something to create: name a collection or folder"
            )
        if acl is not None and not self.uri.is_collection:
            raise InvalidInput(
                f"ACLs belong to collections (data://owner/collection), not to {self.uri}"
            )
        if parents and len(parent.parts) > 1 and DataHandle(self._client, parent).kind() is None:
            DataHandle(self._client, parent).mkdir(parents=True, exist_ok=True)
        body: dict[str, Any] = {"name": self.uri.name}
        if acl is not None:
            body["acl"] = {"read": acl_entries(acl)}
        response = self._client.request("POST", parent.api_path, json=body)
        already = response.status_code == 409 and (exist_ok or parents)
        if already and self.kind() == "directory":
            return str(self.uri)
        _raise_for_error(response)
        return str(response.json().get("result", self.uri))

    def _check_collection(self) -> None:
        """ACLs belong to collections: refuse a folder or file of one (connectors and the
        special collections answer for themselves)."""
        special = self.uri.parts[:1] in ((".algo",), (".session",))
        if self.uri.scheme == "data" and not special and not self.uri.is_collection:
            raise InvalidInput(
                f"ACLs belong to collections (data://owner/collection), not to {self.uri}"
            )

    def acl(self) -> builtins.list[str] | None:
        """A collection's read list; None where there is no ACL (connectors, .algo)."""
        self._check_collection()
        body = self._send("GET", params={"acl": "true"}).json()
        acl = body.get("acl") if isinstance(body, dict) else None
        read = acl.get("read") if isinstance(acl, dict) else None
        return list(read) if isinstance(read, list) else None

    def set_acl(self, acl: str | builtins.list[str]) -> builtins.list[str]:
        """Set a collection's read ACL: private, my-models, public or a read list."""
        self._check_collection()
        body = {"acl": {"read": acl_entries(acl)}}
        return list(self._send("PATCH", json=body).json()["acl"]["read"])

    def delete(self, *, force: bool = False) -> int:
        """Delete the file, folder or collection (a non-empty one only with ``force``);
        returns how many files went."""
        params = {"force": "true"} if force else None
        result = self._send("DELETE", params=params).json().get("result", {})
        return int(result.get("deleted", 0)) if isinstance(result, dict) else 0
