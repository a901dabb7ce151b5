"""Algorithmia's own Python client (PyPI ``algorithmia``), unchanged, against a real server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import Algorithmia
import httpx
import pytest
from Algorithmia import algorithm, errors

from algora.testing import RunningServer, write_model

from ...helpers import new_users

MODELS = {
    "hello": 'def apply(input: str) -> str:\n    return "Hello " + input\n',
    "printer": ('def apply(input):\n    print("seen", input)\n    return {"got": input}\n'),
    "raiser": 'def apply(input):\n    raise ValueError("the input was refused: " + str(input))\n',
    "reverse": "def apply(input):\n    return bytes(reversed(input))\n",
    "slow": (
        'import time\n\n\ndef apply(input):\n    time.sleep(float(input))\n    return "done"\n'
    ),
}
HELLO_2 = 'def apply(input: str) -> str:\n    return "Hi " + input\n'


@dataclass
class Setup:
    server: RunningServer
    guest_key: str
    """A second user's key: a ``call`` grant on admin/printer and admin/hello, no more."""
    hello_hash: str
    """The content hash of admin/hello 1.0.0."""

    def client(self, key: str | None = None) -> Any:
        return Algorithmia.client(key or self.server.key, self.server.url)

    def http(self, path: str, data: bytes, key: str | None = None, **params: Any) -> Any:
        headers = {"Authorization": key or self.server.key, "Content-Type": "application/json"}
        return httpx.post(self.server.url + path, content=data, headers=headers, params=params)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("algorithmia-client")
    with RunningServer(root / "data") as server, server.client() as admin:
        for name, code in MODELS.items():
            admin.publish(write_model(root / name, name, code))
        hello = admin.versions("admin/hello")[0]
        # 1.1.0, then deprecated: `latest` stays on 1.0.0, `latestPrivate` sees 1.1.0.
        admin.publish(write_model(root / "hello2", "hello", HELLO_2), version="1.1.0")
        admin.deprecate("admin/hello", "1.1.0")
        guest_key = new_users(admin, "guest")["guest"]
        for model in ("printer", "hello"):
            granted = admin.request(
                "PUT", f"/api/v1/models/admin/{model}/grants/guest", json={"right": "call"}
            )
            assert granted.status_code == 200, granted.text
        yield Setup(server, guest_key, str(hello["content_hash"]))


def test_pipe_text_json_and_bytes(setup: Setup) -> None:
    client = setup.client()
    text = client.algo("admin/hello/1.0.0").pipe("world")
    assert text.result == "Hello world"
    assert text.metadata.content_type == "text"
    assert isinstance(text.metadata.duration, float)
    assert text.metadata.stdout is None

    data = client.algo("admin/printer").pipe({"a": [1, 2]})
    assert data.result == {"got": {"a": [1, 2]}}
    assert data.metadata.content_type == "json"

    binary = client.algo("admin/reverse").pipe(b"\x00\x01\x02\xff")
    assert binary.result == b"\xff\x02\x01\x00"
    assert binary.metadata.content_type == "binary"


def test_a_model_exception_is_an_algorithm_exception(setup: Setup) -> None:
    with pytest.raises(errors.AlgorithmException) as caught:
        setup.client().algo("admin/raiser").pipe("nope")
    assert "the input was refused: nope" in caught.value.message
    assert caught.value.error_type == "ValueError"
    raw = setup.http("/v1/algo/admin/raiser", b'"x"')
    assert raw.status_code == 200
    assert set(raw.json()["error"]) >= {"message", "error_type", "stacktrace"}


def test_the_timeout_option_ends_a_slow_call(setup: Setup) -> None:
    algo = setup.client().algo("admin/slow").set_options(timeout=1)
    started = time.monotonic()
    with pytest.raises(Exception, match="504"):
        algo.pipe("5")
    assert time.monotonic() - started < 4.5
    done = setup.client().algo("admin/slow").set_options(timeout=30).pipe("0")
    assert done.result == "done"


def test_stdout_only_for_those_who_may_manage_the_model(setup: Setup) -> None:
    owner = setup.client().algo("admin/printer").set_options(stdout=True).pipe("x")
    assert owner.result == {"got": "x"}
    assert owner.metadata.stdout is not None
    assert "seen x" in owner.metadata.stdout
    not_asked = setup.client().algo("admin/printer").set_options(stdout=False).pipe("x")
    assert "stdout" not in not_asked.metadata.full_metadata

    guest = setup.client(setup.guest_key).algo("admin/printer").set_options(stdout=True)
    answer = guest.pipe("y")
    assert answer.result == {"got": "y"}
    assert "stdout" not in answer.metadata.full_metadata
    for flag in ("true", "1", "True"):
        body = setup.http("/v1/algo/admin/printer", b'"z"', stdout=flag).json()
        assert "seen z" in body["metadata"]["stdout"]


def test_output_raw_returns_the_bare_result(setup: Setup) -> None:
    raw = algorithm.OutputType.raw
    text = setup.client().algo("admin/hello").set_options(output=raw).pipe("raw")
    assert text == "Hello raw"
    data = setup.http("/v1/algo/admin/printer", b"[1, 2]", output="raw")
    assert data.headers["content-type"].startswith("application/json")
    assert data.json() == {"got": [1, 2]}
    binary = httpx.post(
        setup.server.url + "/v1/algo/admin/reverse",
        content=b"ab",
        params={"output": "raw"},
        headers={"Authorization": setup.server.key, "Content-Type": "application/octet-stream"},
    )
    assert binary.headers["content-type"] == "application/octet-stream"
    assert binary.content == b"ba"


def test_output_void_answers_at_once_and_audits_the_outcome(setup: Setup) -> None:
    void = algorithm.OutputType.void
    started = time.monotonic()
    answer = setup.client().algo("admin/slow").set_options(output=void).pipe("1")
    assert time.monotonic() - started < 1.0
    assert answer.async_protocol == "void"
    assert answer.request_id.startswith("req-")
    with setup.server.client() as admin:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = admin.get_json("/api/v1/audit", request_id=answer.request_id)
            ours = [r for r in rows if r["action"] == "model.call.void"]
            if ours:
                break
            time.sleep(0.2)
        assert ours, "the background call's outcome was not audited"
    assert ours[0]["status"] == 200
    assert ours[0]["resource"] == "admin/slow"
    # Platform errors still come back at once, as errors.
    missing = setup.http("/v1/algo/admin/nothing-here", b"1", output="void")
    assert missing.status_code == 404
    assert "message" in missing.json()["error"]


def test_wrong_key_and_unknown_model_are_errors(setup: Setup) -> None:
    with pytest.raises(Exception, match="401"):
        setup.client("simNOTAREALKEY000000000000000").algo("admin/hello").pipe("x")
    with pytest.raises(Exception, match="404"):
        setup.client().algo("admin/no-such-model").pipe("x")
    body = setup.http("/v1/algo/admin/no-such-model", b"1").json()
    assert set(body) == {"error"}
    assert body["error"]["message"]


@pytest.mark.parametrize("scheme", ["{}", "Simple {}", "Bearer {}"])
def test_each_authorization_form(setup: Setup, scheme: str) -> None:
    response = httpx.post(
        setup.server.url + "/v1/algo/admin/hello/1.0.0/",
        content=b"auth",
        params={"unknown": "ignored", "timeout": "300"},
        headers={"Authorization": scheme.format(setup.server.key), "Content-Type": "text/plain"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "Hello auth"
    assert set(response.json()) == {"result", "metadata"}


@pytest.mark.parametrize(
    ("spec", "greeting"),
    [
        ("1.0.0", "Hello"),
        ("1.1.0", "Hi"),  # an exact version names a deprecated one too
        ("1.0.x", "Hello"),
        ("1.x", "Hello"),
        ("latest", "Hello"),
        ("latestPrivate", "Hi"),
    ],
)
def test_version_specs(setup: Setup, spec: str, greeting: str) -> None:
    response = setup.client().algo(f"admin/hello/{spec}").pipe("v")
    assert response.result == f"{greeting} v"


def test_version_by_content_hash_and_latest_private_needs_manage(setup: Setup) -> None:
    by_hash = setup.client().algo(f"admin/hello/{setup.hello_hash[:16]}").pipe("h")
    assert by_hash.result == "Hello h"
    guest = setup.client(setup.guest_key)
    assert guest.algo("admin/hello/latest").pipe("g").result == "Hello g"
    with pytest.raises(Exception, match="403"):
        guest.algo("admin/hello/latestPrivate").pipe("g")


def test_exists_info_and_versions(setup: Setup) -> None:
    client = setup.client()
    assert client.algo("admin/hello").exists() is True
    assert client.algo("admin/no-such-model").exists() is False
    # Another user's private model is hidden: it does not exist for a stranger.
    with setup.server.client() as admin:
        made = admin.request("POST", "/api/v1/principals", json={"name": "stranger"})
        assert made.status_code == 201, made.text
    assert setup.client(made.json()["key"]).algo("admin/hello").exists() is False

    described = client.getJsonHelper("/v1/algorithms/admin/hello")
    assert described["resource_type"] == "algorithm"
    assert described["name"] == "hello"
    assert described["version_info"]["semantic_version"] == "1.0.0"
    assert {"details", "settings", "build", "compilation"} <= set(described)

    listed = client.algo("admin/hello").versions()
    assert [v["version_info"]["semantic_version"] for v in listed["results"]] == [
        "1.1.0",
        "1.0.0",
    ]
    assert listed["marker"] is None and listed["next_link"] is None
    assert listed["results"][0]["build"]["status"] == "succeeded"
    callable_only = client.algo("admin/hello").versions(callable=True)["results"]
    assert [v["version_info"]["semantic_version"] for v in callable_only] == ["1.0.0"]
    first = client.algo("admin/hello").versions(limit=1)
    assert len(first["results"]) == 1 and first["marker"] == "1.1.0"
    second = client.algo("admin/hello").versions(limit=1, marker=first["marker"])
    assert second["results"][0]["version_info"]["semantic_version"] == "1.0.0"

    info = client.algo("admin/hello").info(setup.hello_hash)
    assert info["version_info"]["semantic_version"] == "1.0.0"
    assert info["version_info"]["git_hash"] == setup.hello_hash
    assert client.algo("admin/hello").info()["results"]
    with pytest.raises(errors.AlgorithmException):
        client.algo("admin/hello").info("0" * 40)
