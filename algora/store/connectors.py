"""Data connectors: hosted data kept in S3-compatible stores, reached through boto3.

The only module that imports boto3 (lazily: a platform without connectors never loads it).
An admin configures each connector (:class:`~algora.settings.DataConnector`) with its own
endpoint, credentials and buckets; who may use it is decided by the caller of this module.

S3 has no folders: a "folder" is a key prefix ending in ``/``. ``mkdir`` writes an empty marker
object ``prefix/`` so that an empty folder exists; a prefix with any object under it is a folder
too. Names are checked segment by segment before they reach S3 (no empty, ``.`` or ``..``
segments, no control characters or backslashes, keys of at most 1024 bytes), so a key is
always what its path says. Uploads are streamed: small ones become one ``PutObject``, larger
ones a multipart upload of fixed-size parts, aborted on any failure or past the size cap; an
object appears only when complete, so a reader never sees half of one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from algora.errors import (
    AlgoraError,
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    Unavailable,
)
from algora.settings import BUCKET_PATTERN, DataConnector
from algora.store.collections import PAGE_SIZE, Entry, Listing

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

__all__ = [
    "MAX_KEY_BYTES",
    "Connectors",
    "S3Connector",
    "S3Upload",
    "check_bucket",
    "check_key_segment",
]

logger = logging.getLogger(__name__)

MAX_KEY_BYTES = 1024
"""S3's longest key."""
MIN_PART_BYTES = 8 * 1024 * 1024
"""Uploads larger than this go up in parts of at least this size (S3's minimum is 5 MiB)."""
_MAX_PARTS = 10_000
_DELETE_BATCH = 1000
_EPOCH = datetime.fromtimestamp(0, UTC)
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_NO_BUCKET = frozenset({"NoSuchBucket"})
_REFUSED = frozenset(
    {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
)

Kind = Literal["file", "directory"]


class _Body(Protocol):
    def read(self, size: int = ...) -> bytes: ...
    def close(self) -> None: ...


def check_bucket(name: str) -> str:
    """An S3 bucket name, or BadRequest."""
    if not BUCKET_PATTERN.match(name):
        raise BadRequest(
            f"'{name[:70]}' is not a bucket name: 3-63 lowercase letters, digits, '.' or '-'"
        )
    return name


def check_key_segment(segment: str) -> str:
    """One segment of an object key (between slashes), or BadRequest."""
    if segment in ("", ".", ".."):
        raise BadRequest("an S3 path has no empty, '.' or '..' segments")
    if any(ord(c) < 0x20 or c in "\x7f\\/" for c in segment):
        raise BadRequest("an S3 name holds no control characters, slashes or backslashes")
    try:
        segment.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("an S3 path is valid UTF-8") from None
    return segment


def _key(parts: tuple[str, ...]) -> str:
    for part in parts:
        check_key_segment(part)
    key = "/".join(parts)
    if len(key.encode("utf-8")) + 1 > MAX_KEY_BYTES:  # + 1: a folder's marker ends in '/'
        raise BadRequest(f"an S3 key is at most {MAX_KEY_BYTES - 1} bytes")
    return key


def _encode_marker(tail: str) -> str:
    return base64.urlsafe_b64encode(tail.encode("utf-8")).decode("ascii").rstrip("=")


def _decode_marker(marker: str) -> str:
    try:
        padded = marker + "=" * (-len(marker) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        tail = raw.decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise BadRequest("the marker is not one this server gave out") from None
    if len(tail.encode("utf-8")) > MAX_KEY_BYTES:
        raise BadRequest("the marker is not one this server gave out")
    return tail


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3Connector:
    """One configured connector: a boto3 client (made on first use) and the operations."""

    def __init__(self, name: str, config: DataConnector, max_file_bytes: int) -> None:
        self.name = name
        self.config = config
        self.max_file_bytes = max_file_bytes
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def buckets(self) -> tuple[str, ...]:
        return tuple(self.config.buckets)

    def _s3(self) -> Any:
        """The boto3 client (thread-safe, shared by every request)."""
        with self._lock:
            if self._client is None:
                import boto3  # here: only platforms with connectors load boto3
                from botocore.config import Config

                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.config.endpoint_url,
                    region_name=self.config.region,
                    aws_access_key_id=self.config.access_key_id,
                    aws_secret_access_key=self.config.secret_access_key.get_secret_value(),
                    config=Config(
                        s3={"addressing_style": self.config.addressing_style},
                        connect_timeout=10,
                        read_timeout=60,
                        retries={"max_attempts": 3, "mode": "standard"},
                        # Checksums only where S3 requires them: many S3-compatible servers
                        # reject the newer default trailers.
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required",
                    ),
                )
            return self._client

    def call(self, bucket: str, operation: str, *, missing_ok: bool = False, **args: Any) -> Any:
        """Run one S3 operation on ``bucket``; S3's and the network's failures become Algora's
        errors. With ``missing_ok``, a missing key answers None."""
        try:
            from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
        except ModuleNotFoundError:
            raise Unavailable(
                f"connector '{self.name}' needs boto3, which this server lacks: "
                "pip install 'algora[s3]'"
            ) from None
        try:
            return getattr(self._s3(), operation)(Bucket=bucket, **args)
        except ClientError as error:
            code = _code(error)
            if missing_ok and code in _MISSING:
                return None
            if code in _NO_BUCKET:
                raise NotFound(f"bucket '{bucket}' does not exist") from None
            if code in _REFUSED:
                raise PermissionDenied(
                    f"connector '{self.name}' was refused by S3 ({code}): its credentials may "
                    "not do this; ask an admin to check the connector"
                ) from None
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            logger.warning(
                "connector %s: S3 %s answered %s (%s)", self.name, operation, code, status
            )
            if 400 <= status < 500:
                raise BadRequest(
                    f"connector '{self.name}': S3 refused the request ({code})"
                ) from None
            raise Unavailable(
                f"connector '{self.name}': S3 answered {code or 'an error'}; try again later"
            ) from None
        except EndpointConnectionError:
            logger.warning("connector %s: its S3 endpoint cannot be reached", self.name)
            raise Unavailable(
                f"connector '{self.name}': its S3 endpoint cannot be reached; try again later"
            ) from None
        except BotoCoreError as error:
            logger.warning("connector %s: S3 %s failed: %s", self.name, operation, type(error))
            raise Unavailable(
                f"connector '{self.name}': S3 failed ({type(error).__name__}); try again later"
            ) from None

    # Reading -------------------------------------------------------------------------------
    def check_bucket_exists(self, bucket: str) -> None:
        self.call(bucket, "list_objects_v2", MaxKeys=1)

    def _file_size(self, bucket: str, key: str) -> int | None:
        """The size of the object ``key``, or None when there is none."""
        head = self.call(bucket, "head_object", Key=key, missing_ok=True)
        return None if head is None else int(head["ContentLength"])

    def _has_prefix(self, bucket: str, prefix: str) -> bool:
        listed = self.call(bucket, "list_objects_v2", Prefix=prefix, MaxKeys=1)
        return int(listed.get("KeyCount", 0)) > 0

    def kind(self, bucket: str, parts: tuple[str, ...]) -> Kind | None:
        """``file``, ``directory`` or None when nothing is there (a bucket is a directory)."""
        key = _key(parts)
        if not key:
            self.check_bucket_exists(bucket)
            return "directory"
        if self._file_size(bucket, key) is not None:
            return "file"
        return "directory" if self._has_prefix(bucket, key + "/") else None

    def open(self, bucket: str, parts: tuple[str, ...]) -> tuple[_Body, int] | None:
        """The object's streaming body and size, or None when there is no such object."""
        key = _key(parts)
        if not key:
            return None
        got = self.call(bucket, "get_object", Key=key, missing_ok=True)
        return None if got is None else (cast(_Body, got["Body"]), int(got["ContentLength"]))

    def list_folder(
        self,
        bucket: str,
        parts: tuple[str, ...],
        marker: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> Listing | None:
        """One page of a folder's entries, or None when the folder does not exist.

        The marker (opaque to the caller) names the last key S3 returned, below the folder;
        the next page starts after it. S3 sorts keys by their UTF-8 bytes, which is code point
        order, so Python's comparisons agree with it.
        """
        key = _key(parts)
        prefix = key + "/" if key else ""
        after = _decode_marker(marker) if marker else None
        paging: dict[str, Any] = {"StartAfter": prefix + after} if after is not None else {}
        listed = self.call(
            bucket, "list_objects_v2", Prefix=prefix, Delimiter="/", MaxKeys=limit, **paging
        )
        if key and after is None and int(listed.get("KeyCount", 0)) == 0:
            return None
        entries: list[Entry] = []
        last: str | None = None
        # A folder is its common prefix: its tail ends in "/". Starting after one of its keys,
        # S3 names the folder again, so what is not past the marker is dropped.
        for common in listed.get("CommonPrefixes", []):
            tail = str(common["Prefix"])[len(prefix) :]
            last = max(last or tail, tail)
            if tail[:-1] and (after is None or tail > after):
                entries.append(Entry(tail[:-1], True, 0, _EPOCH))
        for item in listed.get("Contents", []):
            tail = str(item["Key"])[len(prefix) :]
            last = max(last or tail, tail)
            if not tail or (after is not None and tail <= after):
                continue  # the folder's own marker object
            modified = item["LastModified"]
            if not isinstance(modified, datetime):
                modified = _EPOCH
            entries.append(Entry(tail, False, int(item.get("Size", 0)), modified))
        entries.sort(key=lambda e: e.name)
        more = bool(listed.get("IsTruncated")) and last is not None
        return Listing(entries, _encode_marker(last) if more and last is not None else None)

    # Writing -------------------------------------------------------------------------------
    def mkdir(self, bucket: str, parts: tuple[str, ...]) -> None:
        """An empty folder: the marker object ``key/``."""
        key = _key(parts)
        if not key:
            raise BadRequest("name the folder to create inside the bucket")
        if self.kind(bucket, parts) is not None:
            raise Conflict(f"'{key}' already exists in bucket '{bucket}'")
        self.call(bucket, "put_object", Key=key + "/", Body=b"")

    def start_upload(self, bucket: str, parts: tuple[str, ...]) -> S3Upload:
        key = _key(parts)
        if not key:
            raise BadRequest("name a file inside the bucket: s3://bucket/key")
        if self._has_prefix(bucket, key + "/"):
            raise Conflict(f"'{key}' is a folder in bucket '{bucket}'")
        return S3Upload(self, bucket, key)

    def delete(self, bucket: str, parts: tuple[str, ...], *, force: bool = False) -> int:
        """Delete a file, or a folder (a non-empty one only with ``force``); files deleted."""
        key = _key(parts)
        if not key:
            raise BadRequest("a connector's bucket is not deleted through the data API")
        if self._file_size(bucket, key) is not None:
            self.call(bucket, "delete_object", Key=key)
            return 1
        keys = list(self._keys(bucket, key + "/"))
        if not keys:
            raise NotFound(f"nothing at '{key}' in bucket '{bucket}'")
        files = sum(1 for k in keys if not k.endswith("/"))
        if any(k != key + "/" for k in keys) and not force:
            raise BadRequest("the folder is not empty: delete it with force=true")
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": k} for k in keys[start : start + _DELETE_BATCH]]
            answer = self.call(bucket, "delete_objects", Delete={"Objects": batch, "Quiet": True})
            if answer.get("Errors"):
                failed = answer["Errors"][0]
                raise Unavailable(
                    f"connector '{self.name}': S3 kept '{failed.get('Key')}' "
                    f"({failed.get('Code')}); try again"
                )
        return files

    def _keys(self, bucket: str, prefix: str) -> Iterator[str]:
        token: str | None = None
        while True:
            paging: dict[str, Any] = {"ContinuationToken": token} if token else {}
            listed = self.call(bucket, "list_objects_v2", Prefix=prefix, **paging)
            for item in listed.get("Contents", []):
                yield str(item["Key"])
            token = listed.get("NextContinuationToken") if listed.get("IsTruncated") else None
            if not token:
                return


class S3Upload:
    """An object being written: parts go up as they fill; ``commit`` makes it visible.

    Up to one part is buffered in memory. Past ``max_file_bytes`` the upload is aborted and
    :class:`PayloadTooLarge` raised; S3 keeps nothing of it.
    """

    def __init__(self, connector: S3Connector, bucket: str, key: str) -> None:
        self.connector = connector
        self.bucket = bucket
        self.key = key
        self.limit = connector.max_file_bytes
        # Enough parts for the largest file allowed, each at least the minimum size.
        self.part_bytes = max(MIN_PART_BYTES, -(-self.limit // (_MAX_PARTS - 1)))
        self.size = 0
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._done = False

    @property
    def multipart(self) -> bool:
        return self._upload_id is not None

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            self.abort()
            raise PayloadTooLarge(f"a data file is at most {self.limit} bytes")
        self._buffer += chunk
        while len(self._buffer) >= self.part_bytes:
            part = bytes(self._buffer[: self.part_bytes])
            del self._buffer[: self.part_bytes]
            self._send_part(part)

    def _send_part(self, data: bytes) -> None:
        bucket, key = self.bucket, self.key
        try:
            if self._upload_id is None:
                started = self.connector.call(bucket, "create_multipart_upload", Key=key)
                self._upload_id = str(started["UploadId"])
            number = len(self._parts) + 1
            sent = self.connector.call(
                bucket,
                "upload_part",
                Key=key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,
            )
        except AlgoraError:
            self.abort()
            raise
        self._parts.append({"ETag": sent["ETag"], "PartNumber": number})

    def commit(self) -> int:
        """Make the object visible under its key; return its size."""
        bucket, key = self.bucket, self.key
        try:
            if self._upload_id is None:
                self.connector.call(bucket, "put_object", Key=key, Body=bytes(self._buffer))
            else:
                if self._buffer or not self._parts:
                    self._send_part(bytes(self._buffer))
                self.connector.call(
                    bucket,
                    "complete_multipart_upload",
                    Key=key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": list(self._parts)},
                )
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._buffer.clear()
        return self.size

    def abort(self) -> None:
        """Drop what was sent; safe to call more than once."""
        self._buffer.clear()
        if self._upload_id is None or self._done:
            return
        upload_id, bucket, key = self._upload_id, self.bucket, self.key
        self._done = True
        with contextlib.suppress(AlgoraError):
            self.connector.call(bucket, "abort_multipart_upload", Key=key, UploadId=upload_id)


class Connectors:
    """Every configured connector, by name, in the order the admin listed them."""

    def __init__(self, configs: dict[str, DataConnector], max_file_bytes: int) -> None:
        self._by_name = {
            name: S3Connector(name, config, max_file_bytes) for name, config in configs.items()
        }

    def __bool__(self) -> bool:
        return bool(self._by_name)

    def get(self, name: str) -> S3Connector | None:
        return self._by_name.get(name)

    def all(self) -> list[S3Connector]:
        return list(self._by_name.values())

    def serving(self, bucket: str) -> list[S3Connector]:
        """The connectors that list ``bucket``, in order."""
        return [c for c in self._by_name.values() if bucket in c.config.buckets]
