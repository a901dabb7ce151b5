"""The S3 store (``ALGORA_STORE_URL=s3://bucket/prefix``) against a real S3-compatible server
(moto, its own process): blobs written once and checked on their way in, clear start-up errors,
and two gateways with their own data folders on one registry and one bucket, publishing
through one and calling through the other."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from algora.errors import AlgoraError, NotFound
from algora.modelfolder.packing import pack_directory
from algora.platform import Platform
from algora.settings import DataConnector, S3Endpoint, Settings
from algora.store.connectors import S3Connector
from algora.store.factory import open_store
from algora.store.s3 import S3BlobStore
from algora.store.version_files import VersionFiles
from algora.testing import write_model

from ..conftest import DATABASES, HELLO_MODEL, InProcess, database_url, in_process
from ..helpers import algora
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


def test_algora_serve_says_in_one_line_why_the_store_cannot_work(
    s3: S3Server, tmp_path: Path
) -> None:
    settings = {**store_settings(s3, ""), "store_url": "s3://no-such-bucket/x"}
    env = {"ALGORA_STORE_URL": settings["store_url"], "ALGORA_STORE_S3": json.dumps(endpoint(s3))}
    ran = algora("serve", "--data-dir", str(tmp_path / "data"), "--port", "1", env=env)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "bucket 'no-such-bucket' does not exist" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert SECRET_KEY not in ran.stdout + ran.stderr


@pytest.mark.parametrize("url", ["https://bucket/x", "s3://Not_A_Bucket", "s3://bucket/a/../b"])
def test_a_store_url_is_checked(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="store_url"):
        Settings(data_dir=tmp_path, store_url=url)


# --------------------------------------------------------------------------- two gateways


def call(gateway: InProcess, text: str) -> httpx.Response:
    headers = {**gateway.auth, "Content-Type": "text/plain"}
    return gateway.http.post("/v1/algo/admin/hello/latest", content=text.encode(), headers=headers)


def wait_for_object(s3: S3Server, key: str) -> bytes:
    """The object's bytes once it is there: the publishing gateway shares a version's files
    right after the version turns ready."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return bytes(s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read())
        except s3.client().exceptions.NoSuchKey:
            assert time.monotonic() < deadline, f"{key} never reached the bucket"
            time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("kind", DATABASES)
def test_publish_through_one_gateway_and_call_through_another(
    kind: str, s3: S3Server, tmp_path: Path
) -> None:
    prefix = f"two-{kind}"
    boto = s3.client()
    with database_url(kind) as url:
        url = url or f"sqlite:///{tmp_path / 'shared.db'}"
        a_dir, b_dir = tmp_path / "a", tmp_path / "b"
        with in_process(a_dir, **store_settings(s3, prefix, database_url=url)) as a:
            published = a.client.publish(write_model(tmp_path / "src", "hello", HELLO_MODEL))
            assert published["status"] == "ready", published
            lineage = a.http.get(
                f"/api/v1/models/admin/hello/versions/{published['version']}/lineage",
                headers=a.auth,
            ).json()
            archive, content = lineage["archive_hash"], lineage["content_hash"]
            tree = f"{prefix}/trees/{content}.tar.gz"
            packed = wait_for_object(s3, tree)
            keys = {
                o["Key"] for o in boto.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
            }
            assert f"{prefix}/blobs/{archive[:2]}/{archive[2:]}" in keys
            assert not (a_dir / "blobs").exists()  # nothing in a local store

            # Files changed in the bucket are refused, with a coded 503 that says why.
            (tmp_path / "other").mkdir()
            (tmp_path / "other" / "model.py").write_text("def apply(x):\n    return 'evil'\n")
            pack_directory(tmp_path / "other", tmp_path / "other.tar.gz")
            boto.put_object(Bucket=BUCKET, Key=tree, Body=(tmp_path / "other.tar.gz").read_bytes())
            b_dir.mkdir()
            (b_dir / "admin.key").write_text(a.key)  # one registry, one admin
            with in_process(b_dir, **store_settings(s3, prefix, database_url=url)) as b:
                refused = call(b, "b")
                assert refused.status_code == 503, refused.text
                assert "do not hash to its content hash" in refused.json()["error"]["message"]
                assert not (b_dir / "sources" / content).exists()

                boto.put_object(Bucket=BUCKET, Key=tree, Body=packed)
                answer = call(b, "b")
                assert answer.status_code == 200, answer.text
                assert answer.json()["result"] == "Hello b"
                assert (b_dir / "sources" / content).is_dir()  # fetched from the bucket
            assert call(a, "a").json()["result"] == "Hello a"

            # A build from git names no version when it is published: what it calls then
            # shares every ready version's files this gateway holds and has not shared.
            boto.delete_object(Bucket=BUCKET, Key=tree)
            platform = a.http.app.state.platform  # type: ignore[attr-defined]
            files = VersionFiles(
                platform.store,
                platform.sessions,
                platform.builder,
                a_dir,
                only_binary=lambda: False,
            )
            files.share_ready()
            assert wait_for_object(s3, tree) == packed  # packed the same, byte for byte
