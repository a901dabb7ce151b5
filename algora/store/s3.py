"""Content-addressed blobs in an S3-compatible bucket: the store several gateways share.

The layout under the configured prefix mirrors the local store: ``blobs/ab/cdef...`` for a blob
whose SHA-256 is ``abcdef...``, and ``trees/CONTENT_HASH.tar.gz`` for the files a version's
workers run from (see :mod:`algora.store.version_files`). An S3 object appears whole or not at
all, so no half-written object is ever visible under its digest: a small blob is one PUT that S3
checks against the digest (``x-amz-checksum-sha256``), a large one a multipart upload (each
part checked against its MD5) that appears when it completes and is aborted when it fails.

S3 is reached through a :class:`~algora.store.connectors.S3Connector`, the one place that speaks
to boto3, so its failures become the same errors as hosted data's.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from pathlib import Path
from typing import Any, BinaryIO, cast

from algora.errors import NotFound, Unavailable
from algora.store.base import check_object_key
from algora.store.connectors import S3Connector
from algora.store.local import sha256_file

__all__ = ["S3BlobStore"]

_PART_BYTES = 64 * 1024 * 1024
"""Blobs up to this size are one PUT; larger ones go in parts of this size (S3's minimum is
5 MiB, its maximum 5 GiB; 10,000 parts of 64 MiB is 625 GiB)."""
_CHUNK = 1024 * 1024
_DIGEST = re.compile(r"^[0-9a-f]{64}\Z")


def _check(digest: str) -> None:
    if not _DIGEST.match(digest):
        raise NotFound(f"no blob '{digest[:80]}'")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class S3BlobStore:
    """Blobs under ``s3://BUCKET/PREFIX/blobs/``; written once, each checked by S3 on its way in."""

    def __init__(
        self, connector: S3Connector, bucket: str, prefix: str, *, part_bytes: int = _PART_BYTES
    ) -> None:
        self.connector = connector
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.part_bytes = part_bytes

    def __repr__(self) -> str:
        return f"S3BlobStore('s3://{self.bucket}/{self.prefix}')"

    def _call(self, operation: str, **args: Any) -> Any:
        return self.connector.call(self.bucket, operation, **args)

    def _key(self, digest: str) -> str:
        _check(digest)
        return f"{self.prefix}blobs/{digest[:2]}/{digest[2:]}"

    def tree_key(self, content_hash: str) -> str:
        """The key of the packed files of the version whose content hash is ``content_hash``."""
        _check(content_hash)
        return f"{self.prefix}trees/{content_hash}.tar.gz"

    # The BlobStore interface ---------------------------------------------------------------
    def put_file(self, path: Path) -> str:
        digest = sha256_file(path)
        key = self._key(digest)
        if not self._has(key):
            self.upload(path, key, bytes.fromhex(digest))
        return digest

    def open(self, digest: str) -> BinaryIO:
        got = self._call("get_object", Key=self._key(digest), missing_ok=True)
        if got is None:
            raise NotFound(f"no blob '{digest}'")
        return cast(BinaryIO, got["Body"])

    def exists(self, digest: str) -> bool:
        return self._has(self._key(digest))

    def put_object(self, key: str, data: bytes) -> None:
        self._call("put_object", Key=f"{self.prefix}objects/{check_object_key(key)}", Body=data)

    def get_object(self, key: str) -> bytes:
        got = self._call(
            "get_object", Key=f"{self.prefix}objects/{check_object_key(key)}", missing_ok=True
        )
        if got is None:
            raise NotFound(f"no object '{key}'")
        body = got["Body"]
        try:
            return cast(bytes, body.read())
        finally:
            body.close()

    def delete_object(self, key: str) -> None:
        self._call("delete_object", Key=f"{self.prefix}objects/{check_object_key(key)}")

    def ping(self) -> None:
        probe = f"{self.prefix}.ping-{uuid.uuid4().hex}"
        self._call("put_object", Key=probe, Body=b"ok")
        self._call("delete_object", Key=probe)

    # Objects by key --------------------------------------------------------------------------
    def _has(self, key: str) -> bool:
        return self._call("head_object", Key=key, missing_ok=True) is not None

    def has(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        return self._has(key)

    def upload(self, path: Path, key: str, sha256: bytes | None = None) -> None:
        """Store ``path``'s bytes as ``key``, whole or not at all. With ``sha256`` (the file's
        digest), a single PUT is refused by S3 unless the bytes it got have that digest."""
        size = path.stat().st_size
        if size <= self.part_bytes:
            checked = {}
            if sha256 is not None:
                checked = {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": _b64(sha256)}
            with path.open("rb") as body:
                answer = self._call("put_object", Key=key, Body=body, **checked)
            stored = answer.get("ChecksumSHA256")
            if checked and stored is not None and stored != checked["ChecksumSHA256"]:
                self._call("delete_object", Key=key)
                raise Unavailable(f"the store kept other bytes than it was sent for '{key}'")
            return
        upload_id = self._call("create_multipart_upload", Key=key)["UploadId"]
        try:
            parts = []
            with path.open("rb") as source:
                number = 1
                while part := source.read(self.part_bytes):
                    answer = self._call(
                        "upload_part",
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=part,
                        ContentMD5=_b64(hashlib.md5(part, usedforsecurity=False).digest()),
                    )
                    parts.append({"ETag": answer["ETag"], "PartNumber": number})
                    number += 1
            self._call(
                "complete_multipart_upload",
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            self._call("abort_multipart_upload", Key=key, UploadId=upload_id, missing_ok=True)
            raise

    def download(self, key: str, target: Path) -> bool:
        """Write the object ``key`` to the new file ``target``; False when there is none."""
        got = self._call("get_object", Key=key, missing_ok=True)
        if got is None:
            return False
        body = got["Body"]
        try:
            with target.open("xb") as out:
                while chunk := body.read(_CHUNK):
                    out.write(chunk)
        finally:
            body.close()
        return True
