"""The gateway through HTTP, in-process: publish, call, manage, and every error shape."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import time

import pytest

from algora.errors import BuildFailed, InvalidManifest, ModelError, VersionExists
from algora.modelfolder.packing import pack_directory
from algora.testing import write_model

from ...conftest import HELLO_MODEL, InProcess


def call(gw: InProcess, path: str, body: bytes | str, content_type: str = "application/json", **kw):
    data = body.encode() if isinstance(body, str) else body
    return gw.http.post(path, content=data, headers={**gw.auth, "Content-Type": content_type}, **kw)


def test_health_needs_no_key(gateway: InProcess) -> None:
    assert gateway.http.get("/healthz").json() == {"status": "ok"}
    ready = gateway.http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


@pytest.mark.parametrize(
    "path",
    ["/api/v1/models", "/api/v1/whoami", "/api/v1/keys", "/api/v1/models/admin/hello/versions"],
)
def test_every_other_endpoint_needs_a_key(gateway: InProcess, path: str) -> None:
    response = gateway.http.get(path)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    wrong = gateway.http.get(
        path, headers={"Authorization": "Simple simNOTAREALKEY000000000000000"}
    )
    assert wrong.status_code == 401


def test_calls_need_a_key(published: InProcess) -> None:
    response = published.http.post(
        "/v1/algo/admin/hello", content=b"x", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 401
    assert response.json() == {
        "error": {"message": response.json()["error"]["message"], "code": "unauthenticated"}
    }


@pytest.mark.parametrize("scheme", ["Simple {}", "Bearer {}", "{}"])
def test_call_text_function_with_each_auth_form(published: InProcess, scheme: str) -> None:
    response = published.http.post(
        "/v1/algo/admin/hello/1.0.0",
        content=b"world",
        headers={"Authorization": scheme.format(published.key), "Content-Type": "text/plain"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] == "Hello world"
    assert body["metadata"]["content_type"] == "text"
    assert isinstance(body["metadata"]["duration"], float)
    assert "error" not in body
    assert response.headers["x-algora-version"] == "1.0.0"


@pytest.mark.parametrize(
    "spec", ["", "/latest", "/1.0.0", "/1.0", "/1.0.x", "/1", "/1.x", "/1.0.0/"]
)
def test_version_specs(published: InProcess, spec: str) -> None:
    response = call(published, f"/v1/algo/admin/hello{spec}", "spec", "text/plain")
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "Hello spec"


def test_content_hash_names_a_version(published: InProcess) -> None:
    version = published.client.version("admin/hello", "1.0.0")
    response = call(
        published, f"/v1/algo/admin/hello/{version['content_hash'][:16]}", "h", "text/plain"
    )
    assert response.json()["result"] == "Hello h"


def test_json_binary_void_results(published: InProcess) -> None:
    as_json = call(published, "/v1/algo/admin/echo", json.dumps({"a": [1, 2]})).json()
    assert as_json["result"] == {"echo": {"a": [1, 2]}, "loads": 1}
    assert as_json["metadata"]["content_type"] == "json"
    binary = call(published, "/v1/algo/admin/echo", json.dumps("bytes")).json()
    assert binary["metadata"]["content_type"] == "binary"
    assert base64.b64decode(binary["result"]) == b"\x00\x01binary"
    text = call(published, "/v1/algo/admin/echo", json.dumps("text")).json()
    assert text == {
        "result": "plain text",
        "metadata": {"content_type": "text", "duration": text["metadata"]["duration"]},
    }
    void = call(published, "/v1/algo/admin/echo", json.dumps("void")).json()
    assert void["metadata"]["content_type"] == "void" and void["result"] is None


def test_binary_input_reaches_the_model_as_bytes(published: InProcess) -> None:
    response = call(published, "/v1/algo/admin/hello", b"\xff\x00", "application/octet-stream")
    body = response.json()
    # hello concatenates str + bytes: the model's own TypeError comes back as Algorithmia's error
    assert response.status_code == 200
    assert body["error"]["error_type"] == "TypeError"


def test_model_exception_is_algorithmias_error_envelope(published: InProcess) -> None:
    response = call(published, "/v1/algo/admin/echo", json.dumps("boom"))
    assert response.status_code == 200
    error = response.json()["error"]
    assert error["message"] == "boom happened"
    assert error["error_type"] == "ValueError"
    assert "raise ValueError" in error["stacktrace"]
    with pytest.raises(ModelError, match="boom happened"):
        published.client.model("admin/echo").call("boom")


def test_print_output_does_not_corrupt_the_protocol(published: InProcess) -> None:
    for i in range(5):
        assert published.client.model("admin/echo").call({"i": i})["echo"] == {"i": i}


def test_serving_never_writes_into_a_versions_folder(published: InProcess) -> None:
    published.client.model("admin/echo").call("warm")
    assert list((published.data_dir / "sources").rglob("__pycache__")) == []


def test_timeout_is_504_and_the_model_recovers(published: InProcess) -> None:
    started = time.monotonic()
    response = call(published, "/v1/algo/admin/echo", json.dumps("sleep"))
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    assert time.monotonic() - started < 15
    assert published.client.model("admin/echo").call("after")["echo"] == "after"


def test_caller_timeout_is_capped_and_checked(published: InProcess) -> None:
    response = call(published, "/v1/algo/admin/echo?timeout=0.5", json.dumps("sleep"))
    assert response.status_code == 504
    bad = call(published, "/v1/algo/admin/echo?timeout=soon", json.dumps("x"))
    assert bad.status_code == 400


def test_worker_death_is_503_and_the_worker_restarts(published: InProcess) -> None:
    response = call(published, "/v1/algo/admin/echo", json.dumps("die"))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "worker_died"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        again = call(published, "/v1/algo/admin/echo", json.dumps("alive"))
        if again.status_code == 200:
            break
        time.sleep(0.2)
    assert again.json()["result"]["echo"] == "alive"


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        ("application/x-python-pickle", b"\x80\x04K\x01.", 415, "unsupported_media_type"),
        ("application/x-www-form-urlencoded", b"a=1", 415, "unsupported_media_type"),
        ("application/yaml", b"!!python/object:os.system {}", 415, "unsupported_media_type"),
        ("application/json", b"{not json", 400, "invalid_input"),
        ("text/plain", b"\xff\xfe", 400, "invalid_input"),
        ("application/json", b"[" * 5000, 400, "invalid_input"),
        ("application/json", b"", 400, "invalid_input"),
        ("application/json", b"[" * 300_000, 400, "invalid_input"),
    ],
)
def test_bad_call_bodies_are_4xx(published: InProcess, content_type, body, status, code) -> None:
    response = call(published, "/v1/algo/admin/echo", body, content_type)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/algo/admin/nothing", 404, "model_not_found"),
        ("/v1/algo/nobody/hello", 404, "model_not_found"),
        ("/v1/algo/admin/hello/9.x", 404, "version_not_found"),
        ("/v1/algo/admin/hello/1.2.3.4", 400, "invalid_version_spec"),
        ("/v1/algo/admin/hello/..%2F..%2Fetc", 404, "not_found"),
        ("/v1/algo/admin/hello/v1.2", 400, "invalid_version_spec"),
    ],
)
def test_call_errors(published: InProcess, path, status, code) -> None:
    response = call(published, path, "x", "text/plain")
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert "Traceback" not in response.text


def test_management_api(published: InProcess) -> None:
    models = {m["full_name"]: m for m in published.client.models()}
    assert {"admin/hello", "admin/echo"} <= set(models)
    versions = published.client.versions("admin/echo")
    assert [v["version"] for v in versions] == ["1.0.0"]
    version = versions[0]
    assert version["status"] == "ready" and len(version["content_hash"]) == 64
    schema = published.http.get(
        "/api/v1/models/admin/hello/versions/1.0.0/schema", headers=published.auth
    ).json()
    assert schema["input"]["type"] == "string" and schema["output"]["type"] == "string"
    lock = published.http.get(
        "/api/v1/models/admin/hello/versions/1.0.0/lock", headers=published.auth
    )
    assert lock.status_code == 200
    log = published.client.build_log("admin/hello", "1.0.0")
    assert log["done"] and "==> ready" in log["text"]
    lineage = published.http.get(
        "/api/v1/models/admin/hello/versions/1.0.0/lineage", headers=published.auth
    ).json()
    assert (
        lineage["content_hash"] == published.client.version("admin/hello", "1.0.0")["content_hash"]
    )


def test_openapi_is_published_to_key_holders(gateway: InProcess) -> None:
    assert gateway.http.get("/api/v1/openapi.json").status_code == 401
    spec = gateway.http.get("/api/v1/openapi.json", headers=gateway.auth).json()
    assert "/api/v1/models/{owner}/{name}/versions" in spec["paths"]
    assert "/v1/algo/{owner}/{name}/{spec}" in spec["paths"]


def test_unknown_route_is_json_404(gateway: InProcess) -> None:
    response = gateway.http.get("/api/v1/nope", headers=gateway.auth)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_publish_bumps_and_deprecates(published: InProcess, tmp_path) -> None:
    folder = write_model(tmp_path / "greeter", "greeter", HELLO_MODEL, example='text = "a"')
    first = published.client.publish(folder)
    assert first["version"] == "1.0.0"
    second = published.client.publish(folder, bump="patch")
    assert second["version"] == "1.0.1"
    third = published.client.publish(folder, version="2.0.0")
    assert third["version"] == "2.0.0"
    # identical content, identical environment: the same content hash
    assert first["content_hash"] == second["content_hash"] == third["content_hash"]
    with pytest.raises(VersionExists):
        published.client.publish(folder, version="2.0.0")
    assert (
        call(published, "/v1/algo/admin/greeter/1.x", "x", "text/plain").headers["x-algora-version"]
        == "1.0.1"
    )
    published.client.deprecate("admin/greeter", "2.0.0")
    latest = call(published, "/v1/algo/admin/greeter", "x", "text/plain")
    assert latest.headers["x-algora-version"] == "1.0.1"
    exact = call(published, "/v1/algo/admin/greeter/2.0.0", "x", "text/plain")
    assert exact.headers["x-algora-version"] == "2.0.0"


def test_failed_build_keeps_other_versions_serving(published: InProcess, tmp_path) -> None:
    good = write_model(tmp_path / "fragile", "fragile", HELLO_MODEL, example='text = "a"')
    published.client.publish(good)
    bad = write_model(tmp_path / "fragile2", "fragile", "raise RuntimeError('cannot import me')\n")
    with pytest.raises(BuildFailed) as caught:
        published.client.publish(bad)
    failed = caught.value.details["version"]
    assert failed["status"] == "failed" and failed["failure_code"] == "model_load_failed"
    assert "RuntimeError" in failed["failure_reason"]
    assert "cannot import me" in failed["failure_reason"]
    log = published.client.build_log("admin/fragile", failed["version"])["text"]
    assert "--- stacktrace ---" in log and "line 1" in log and "cannot import me" in log
    assert (
        call(published, "/v1/algo/admin/fragile", "still", "text/plain").json()["result"]
        == "Hello still"
    )
    not_ready = call(published, f"/v1/algo/admin/fragile/{failed['version']}", "x", "text/plain")
    assert not_ready.status_code == 409


def test_bad_requirement_fails_the_build_with_uvs_reason(published: InProcess, tmp_path) -> None:
    folder = write_model(tmp_path / "deps", "deps", HELLO_MODEL, requirements="six==0.0.0.999\n")
    with pytest.raises(BuildFailed) as caught:
        published.client.publish(folder)
    version = caught.value.details["version"]
    assert version["failure_code"] == "build_failed"
    assert "six" in version["failure_reason"]


def test_index_options_in_requirements_are_refused(published: InProcess, tmp_path) -> None:
    folder = write_model(
        tmp_path / "sneaky",
        "sneaky",
        HELLO_MODEL,
        requirements="--extra-index-url https://evil.example/simple\nsix\n",
    )
    with pytest.raises(InvalidManifest):
        published.client.publish(folder)


def test_invalid_manifest_is_400(published: InProcess, tmp_path) -> None:
    folder = write_model(tmp_path / "broken", "broken", HELLO_MODEL)
    (folder / "algora.toml").write_text('[model]\nname = "Broken Name"\n')
    buffer = io.BytesIO()
    pack_directory(folder, buffer)
    response = published.http.post(
        "/api/v1/models/admin/broken/versions", content=buffer.getvalue(), headers=published.auth
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_manifest"


def test_manifest_name_must_match_the_url(published: InProcess, tmp_path) -> None:
    folder = write_model(tmp_path / "named", "named", HELLO_MODEL)
    buffer = io.BytesIO()
    pack_directory(folder, buffer)
    response = published.http.post(
        "/api/v1/models/admin/other/versions", content=buffer.getvalue(), headers=published.auth
    )
    assert response.status_code == 400


def test_malicious_archive_is_rejected_before_unpacking(published: InProcess, tmp_path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"owned"
        member = tarfile.TarInfo("../../escaped.txt")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    response = published.http.post(
        "/api/v1/models/admin/evil/versions", content=buffer.getvalue(), headers=published.auth
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_archive"
    assert not list(published.data_dir.parent.rglob("escaped.txt"))
    empty = published.http.post(
        "/api/v1/models/admin/evil/versions", content=b"", headers=published.auth
    )
    assert empty.status_code == 400


def test_private_models_are_invisible_to_other_users(published: InProcess) -> None:
    response = published.http.post(
        "/api/v1/principals", json={"name": "bob"}, headers=published.auth
    )
    assert response.status_code == 201
    bob = {"Authorization": f"Simple {response.json()['key']}"}
    for path in (
        "/v1/algo/admin/hello",
        "/v1/algo/admin/hello/1.0.0",
        "/v1/algo/admin/hello/9.x",
        "/v1/algo/admin/fragile/2.0.0",
        "/v1/algo/admin/no-such-model",
    ):
        denied = published.http.post(
            path, content=b"x", headers={**bob, "Content-Type": "text/plain"}
        )
        # a stranger cannot tell a private model, its versions or their failures from nothing
        assert denied.status_code == 404, (path, denied.text)
        assert denied.json()["error"]["code"] == "model_not_found"
    assert published.http.get("/api/v1/models/admin/hello", headers=bob).status_code == 404
    assert published.http.get("/api/v1/models", headers=bob).json() == []
    not_admin = published.http.post("/api/v1/principals", json={"name": "eve"}, headers=bob)
    assert not_admin.status_code == 403


def test_keys_can_be_created_and_revoked(published: InProcess) -> None:
    created = published.http.post(
        "/api/v1/keys", json={"name": "ci"}, headers=published.auth
    ).json()
    auth = {"Authorization": f"Bearer {created['key']}"}
    assert published.http.get("/api/v1/whoami", headers=auth).json()["name"] == "admin"
    listed = published.http.get("/api/v1/keys", headers=published.auth).json()
    assert created["key_id"] in {k["key_id"] for k in listed}
    assert all("key" not in k for k in listed)
    assert (
        published.http.delete(
            f"/api/v1/keys/{created['key_id']}", headers=published.auth
        ).status_code
        == 204
    )
    assert published.http.get("/api/v1/whoami", headers=auth).status_code == 401
