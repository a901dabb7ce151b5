"""The S3 store (``ALGORA_STORE_URL=s3://bucket/prefix``) against a real S3-compatible server
(moto, its own process): blobs written once and checked on their way in, clear start-up errors,
and two gateways with their own data folders on one registry and one bucket, publishing
through one and calling through the other."""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from algora.errors import AlgoraError, NotFound
from algora.platform import Platform
from algora.settings import DataConnector, S3Endpoint, Settings
from algora.store.connectors import S3Connector
from algora.store.factory import open_store
from algora.store.s3 import S3BlobStore
from algora.testing import write_model

from ..conftest import DATABASES, HELLO_MODEL, database_url, in_process
from ..s3server import ACCESS_KEY, SECRET_KEY, S3Server

BUCKET = "algora-store"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("moto")) as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


def endpoint(s3: S3Server) -> dict[str, Any]:
    return {
        "endpoint_url": s3.url,
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "addressing_style": "path",
    }


def store_settings(s3: S3Server, prefix: str, **more: Any) -> dict[str, Any]:
    return {
        "store_url": f"s3://{BUCKET}/{prefix}",
        "store_s3": endpoint(s3),
        **more,
    }


def blob_store(s3: S3Server, prefix: str, **options: Any) -> S3BlobStore:
    config = DataConnector(**endpoint(s3), buckets=[BUCKET])
    return S3BlobStore(S3Connector("store", config, 1 << 30), BUCKET, prefix, **options)


# --------------------------------------------------------------------------- the blob store


def test_a_blob_is_stored_once_under_its_digest_and_checked_by_s3(
    s3: S3Server, tmp_path: Path
) -> None:
    store = blob_store(s3, "unit/one")
    source = tmp_path / "blob"
    source.write_bytes(b"artifact bytes")
    digest = store.put_file(source)
    assert digest == hashlib.sha256(b"artifact bytes").hexdigest()
    assert store.exists(digest) and not store.exists("0" * 64)
    with store.open(digest) as blob:
        assert blob.read() == b"artifact bytes"
    key = f"unit/one/blobs/{digest[:2]}/{digest[2:]}"
    head = s3.client().head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(digest)).decode()
    modified = head["LastModified"]
    assert store.put_file(source) == digest  # already there: not written again
    assert s3.client().head_object(Bucket=BUCKET, Key=key)["LastModified"] == modified
    with pytest.raises(NotFound):
        store.open("0" * 64)
    with pytest.raises(NotFound):
        store.open("../../etc/passwd")
    store.ping()


def test_a_large_blob_goes_in_parts_and_leaves_no_upload_behind(
    s3: S3Server, tmp_path: Path
) -> None:
    store = blob_store(s3, "unit/parts", part_bytes=5 * 1024 * 1024)
    source = tmp_path / "large"
    data = os.urandom(11 * 1024 * 1024)
    source.write_bytes(data)
    digest = store.put_file(source)
    with store.open(digest) as blob:
        assert hashlib.sha256(blob.read()).hexdigest() == digest
    uploads = s3.client().list_multipart_uploads(Bucket=BUCKET, Prefix="unit/parts/")
    assert uploads.get("Uploads", []) == []


# --------------------------------------------------------------------------- start-up errors


def test_an_s3_store_without_its_endpoint_says_what_to_set(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, store_url=f"s3://{BUCKET}/x")
    with pytest.raises(AlgoraError, match="set ALGORA_STORE_S3 to its endpoint"):
        open_store(settings)


def test_without_the_s3_extra_the_store_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # None in sys.modules: not installed
    settings = Settings(
        data_dir=tmp_path,
        store_url=f"s3://{BUCKET}",
        store_s3=S3Endpoint(access_key_id="k", secret_access_key="s"),  # type: ignore[arg-type]
    )
    with pytest.raises(AlgoraError, match=r"needs boto3.*pip install 'algora\[s3\]'"):
        open_store(settings)


def test_a_missing_bucket_stops_the_start_with_what_to_do(s3: S3Server, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, **{**store_settings(s3, ""), "store_url": "s3://no-such-bucket/x"}
    )
    with pytest.raises(AlgoraError, match=r"bucket 'no-such-bucket' does not exist.*create it"):
        Platform.open(settings)


@pytest.mark.parametrize("url", ["https://bucket/x", "s3://Not_A_Bucket", "s3://bucket/a/../b"])
def test_a_store_url_is_checked(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="store_url"):
        Settings(data_dir=tmp_path, store_url=url)


# --------------------------------------------------------------------------- two gateways


@pytest.mark.slow
@pytest.mark.parametrize("kind", DATABASES)
def test_publish_through_one_gateway_and_call_through_another(
    kind: str, s3: S3Server, tmp_path: Path
) -> None:
    prefix = f"two-{kind}"
    with database_url(kind) as url:
        url = url or f"sqlite:///{tmp_path / 'shared.db'}"
        a_dir, b_dir = tmp_path / "a", tmp_path / "b"
        with in_process(a_dir, **store_settings(s3, prefix, database_url=url)) as a:
            published = a.client.publish(write_model(tmp_path / "src", "hello", HELLO_MODEL))
            assert published["status"] == "ready", published
            b_dir.mkdir()
            (b_dir / "admin.key").write_text(a.key)  # one registry, one admin
            with in_process(b_dir, **store_settings(s3, prefix, database_url=url)) as b:
                headers = {**b.auth, "Content-Type": "text/plain"}
                answer = b.http.post("/v1/algo/admin/hello/latest", content=b"b", headers=headers)
                assert answer.status_code == 200, answer.text
                assert answer.json()["result"] == "Hello b"
            headers = {**a.auth, "Content-Type": "text/plain"}
            answer = a.http.post("/v1/algo/admin/hello/latest", content=b"a", headers=headers)
            assert answer.json()["result"] == "Hello a"
            semver = published["version"]
            version = a.http.get(
                f"/api/v1/models/admin/hello/versions/{semver}/lineage", headers=a.auth
            )
            assert version.status_code == 200, version.text
    archive, content = version.json()["archive_hash"], version.json()["content_hash"]
    listed = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")["Contents"]
    keys = {item["Key"] for item in listed}
    assert f"{prefix}/blobs/{archive[:2]}/{archive[2:]}" in keys
    assert f"{prefix}/trees/{content}.tar.gz" in keys
    assert not (a_dir / "blobs").exists()  # nothing in the local store
    assert (b_dir / "sources" / content).is_dir()  # fetched from the bucket
