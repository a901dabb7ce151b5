"""Calls from inside models: a model calls models and reads data with the credential it is given.

Everything goes through real processes: ``algora serve`` on a free port, workers in their
sandbox where bubblewrap works, and Algorithmia's own client (``algorithmia==2.0.5``) inside the
models, created once when the model loads, as ADK algorithms do, and in the test, outside.

The cast: alice owns ``alice/caller`` (an ADK algorithm that runs the steps it is sent) and
``alice/child``; bob owns two private models, ``bob/secret`` (alice may call it, carol may not)
and ``bob/other`` (carol may call it, alice may not); carol may call alice's two models.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import Algorithmia
import httpx
import pytest
from Algorithmia.acl import ReadAcl

from algora.auth.delegation import INSIDE_SCOPES, narrow_scopes
from algora.testing import RunningServer, write_model
from algora.workers.sandbox import sandbox_status

from ..conftest import in_process
from ..helpers import ADK_REQUIREMENTS, new_users

CALLER = textwrap.dedent(
    """
    import json
    import os
    import socket
    import urllib.error
    import urllib.request

    import Algorithmia
    from Algorithmia import ADK

    client = Algorithmia.client()  # once, when the model loads: kept for every call


    def load():
        state = {}
        try:  # alice's "my models" collection: readable by her models while they load
            state["weights"] = client.file("data://alice/weights/w.txt").getString()
        except Exception as exc:
            state["weights"] = "error: " + str(exc)
        try:  # no call has a caller yet: nothing to call models for
            state["call"] = client.algo("alice/child").pipe("at load").result
        except Exception as exc:
            state["call"] = "error: " + str(exc)
        return state


    def http(method, path, body=None):
        request = urllib.request.Request(
            os.environ["ALGORITHMIA_API"] + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": os.environ["ALGORITHMIA_API_KEY"]},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return [response.status, json.loads(response.read())]
        except urllib.error.HTTPError as exc:
            return [exc.code, json.loads(exc.read())]


    def step(state, kind, *args):
        if kind == "call":
            return client.algo(args[0]).pipe(args[1]).result
        if kind == "call_with_key":  # a key of the model's own, not its credential
            return Algorithmia.client(args[0]).algo(args[1]).pipe(args[2]).result
        if kind == "put":
            client.file(args[0]).put(args[1])
            return "written"
        if kind == "get":
            return client.file(args[0]).getString()
        if kind == "list":
            return sorted(f.getName() for f in client.dir(args[0]).files())
        if kind == "connect":
            socket.create_connection(("127.0.0.1", args[0]), timeout=3).close()
            return "connected"
        if kind == "credential":
            return os.environ["ALGORITHMIA_API_KEY"]
        if kind == "env":
            names = ("ALGORITHMIA_API", "ALGORITHMIA_API_KEY", "ALGORA_URL", "ALGORA_KEY")
            return {name: bool(os.environ.get(name)) for name in names}
        if kind == "loaded":
            return [state["weights"], state["call"]]
        if kind == "http":
            return http(*args)
        raise ValueError("unknown step " + kind)


    def apply(input, state):
        results = []
        for item in input:
            try:
                results.append({"ok": step(state, *item)})
            except Exception as exc:
                results.append({"error": type(exc).__name__ + ": " + str(exc)})
        return results


    ADK(apply, load).init()
    """
)

CHILD = textwrap.dedent(
    """
    import Algorithmia

    client = Algorithmia.client()


    def apply(input):
        if isinstance(input, dict) and "read" in input:
            return client.file(input["read"]).getString()
        return {"child": input}
    """
)

SECRET = 'def apply(input):\n    return {"secret": input}\n'


@dataclass
class World:
    server: RunningServer
    keys: dict[str, str]
    sandboxed: bool

    def client(self, who: str) -> Any:
        return Algorithmia.client(self.keys[who], self.server.url)

    def run(self, who: str, *steps: list[Any]) -> tuple[list[dict[str, Any]], str]:
        """alice/caller's step results for ``who``, and the call's request id."""
        response = httpx.post(
            f"{self.server.url}/v1/algo/alice/caller",
            json=[list(s) for s in steps],
            headers={"Authorization": f"Simple {self.keys[who]}"},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "error" not in body, body
        return body["result"], response.headers["x-request-id"]

    def audit(self, model: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.server.url}/api/v1/audit",
            params={"model": model, "limit": 1000},
            headers={"Authorization": f"Simple {self.keys['admin']}"},
        )
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()
        return rows


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("model-calls")
    sandboxed = sandbox_status().available
    env = {"ALGORA_SANDBOX": "required" if sandboxed else "off"}
    with RunningServer(root / "data", env=env) as server, server.client() as admin:
        keys = {"admin": server.key, **new_users(admin, "alice", "bob", "carol")}
        alice = Algorithmia.client(keys["alice"], server.url)
        alice.dir("data://.my/weights").create()  # the default ACL: alice's models read it
        alice.file("data://.my/weights/w.txt").put("w1")
        alice.dir("data://.my/private").create(ReadAcl.private)
        alice.file("data://.my/private/p.txt").put("only alice")
        models = [
            ("alice", "caller", CALLER, ADK_REQUIREMENTS),
            ("alice", "child", CHILD, ADK_REQUIREMENTS),
            ("bob", "secret", SECRET, ""),
            ("bob", "other", SECRET, ""),
        ]
        for owner, name, code, requirements in models:
            folder = write_model(root / name, name, code, requirements=requirements)
            admin.publish(folder, owner=owner)
        grants = [("alice/caller", "carol"), ("alice/child", "carol"), ("bob/secret", "alice")]
        grants.append(("bob/other", "carol"))
        for model, grantee in grants:
            granted = admin.request(
                "PUT", f"/api/v1/models/{model}/grants/{grantee}", json={"right": "call"}
            )
            assert granted.status_code == 200, granted.text
        yield World(server, keys, sandboxed)


def test_the_client_made_at_load_acts_for_each_caller(world: World) -> None:
    results, _ = world.run("alice", ["env"], ["loaded"], ["call", "alice/child", "x"])
    assert results[0] == {"ok": dict.fromkeys(results[0]["ok"], True)}
    weights, call = results[1]["ok"]
    assert weights == "w1"  # read while loading, from alice's "my models" data
    assert call.startswith("error") and "403" in call  # and no calls while loading
    assert results[2] == {"ok": {"child": "x"}}
    results, _ = world.run("carol", ["call", "alice/child", "y"])
    assert results == [{"ok": {"child": "y"}}]


def test_the_child_call_is_audited_under_its_parent(world: World) -> None:
    results, parent = world.run("alice", ["call", "bob/secret", 1])
    assert results == [{"ok": {"secret": 1}}]
    children = [r for r in world.audit("bob/secret") if r["parent_request_id"] == parent]
    assert len(children) == 1, children
    child = children[0]
    assert child["action"] == "model.call"
    assert child["principal"] == "alice"
    assert child["decision"] == "allow"
    assert child["status"] == 200
    assert child["request_id"] != parent
    assert child["peer"] == "model:alice/caller"
    own = [r for r in world.audit("alice/caller") if r["request_id"] == parent]
    assert [r["parent_request_id"] for r in own] == [None]


def test_the_credential_acts_for_the_caller_and_manages_nothing(world: World) -> None:
    results, _ = world.run(
        "carol",
        ["http", "GET", "/api/v1/whoami"],
        ["http", "POST", "/api/v1/keys", {"name": "escape"}],
        ["http", "PATCH", "/api/v1/models/alice/caller", {"description": "mine now"}],
    )
    status, body = results[0]["ok"]
    assert (status, body["name"], body["is_admin"]) == (200, "carol", False)
    assert [r["ok"][0] for r in results[1:]] == [403, 403], results
    # Even for alice, who may do both herself: a credential from inside a model never
    # creates keys or changes models.
    results, _ = world.run(
        "alice",
        ["http", "POST", "/api/v1/keys", {"name": "escape"}],
        ["http", "PATCH", "/api/v1/models/alice/caller", {"description": "mine now"}],
    )
    assert [r["ok"][0] for r in results] == [403, 403], results
    assert "keys:manage" in results[0]["ok"][1]["error"]["message"]


def test_rights_are_the_intersection_of_caller_and_model(world: World) -> None:
    # bob/secret: its owner's model may call it (alice has a grant), carol may not.
    results, parent = world.run("carol", ["call", "bob/secret", 2])
    assert "error" in results[0], results
    assert "404" in results[0]["error"]  # a private model it may not see: missing
    denied = [r for r in world.audit("bob/secret") if r["parent_request_id"] == parent]
    assert [(r["principal"], r["decision"]) for r in denied] == [("carol", "deny")]
    # bob/other: carol may call it herself, but alice's model may not.
    assert world.client("carol").algo("bob/other").pipe(3).result == {"secret": 3}
    results, _ = world.run("carol", ["call", "bob/other", 3])
    assert "error" in results[0], results
    # Data: carol's call reads alice's "my models" collection (the model's own right), not
    # alice's private one; alice's own call reads both.
    results, _ = world.run(
        "carol", ["get", "data://alice/weights/w.txt"], ["get", "data://alice/private/p.txt"]
    )
    assert results[0] == {"ok": "w1"}
    assert "error" in results[1], results
    results, _ = world.run("alice", ["get", "data://alice/private/p.txt"])
    assert results == [{"ok": "only alice"}]


def test_a_model_keeps_its_own_data_in_algo(world: World) -> None:
    results, _ = world.run(
        "carol",
        ["put", "data://.algo/temp/t.txt", "scratch"],
        ["put", "data://.algo/perm/p.txt", "kept"],
        ["get", "data://.algo/alice/caller/perm/p.txt"],
        ["list", "data://.algo/perm"],
    )
    assert results == [
        {"ok": "written"},
        {"ok": "written"},
        {"ok": "kept"},
        {"ok": ["p.txt"]},
    ]
    results, _ = world.run("alice", ["get", "data://.algo/temp/t.txt"])
    assert results == [{"ok": "scratch"}]  # whoever calls, the model's own collection
    # From outside: the model's owner reads it; carol, who only calls the model, does not.
    assert world.client("alice").file("data://.algo/alice/caller/perm/p.txt").getString() == "kept"
    with pytest.raises(Exception, match="no collection"):
        world.client("carol").file("data://.algo/alice/caller/perm/p.txt").getString()
    # Another model's collection is not the child's own: alice/child reads it only for a
    # caller who may manage alice/caller.
    other = ["call", "alice/child", {"read": "data://.algo/alice/caller/perm/p.txt"}]
    results, _ = world.run("carol", other)
    assert "error" in results[0], results
    results, _ = world.run("alice", other)
    assert results == [{"ok": "kept"}]


def test_a_call_tree_shares_its_session_and_it_ends_with_the_call(world: World) -> None:
    results, _ = world.run(
        "carol",
        ["put", "data://.session/s.txt", "shared"],
        ["call", "alice/child", {"read": "data://.session/s.txt"}],
        ["list", "data://.session"],
    )
    assert results == [{"ok": "written"}, {"ok": "shared"}, {"ok": ["s.txt"]}]
    sessions = world.server.data_dir / "sessions"
    assert not sessions.exists() or list(sessions.iterdir()) == []
    results, _ = world.run("carol", ["get", "data://.session/s.txt"])
    assert "error" in results[0], results  # a new call, a new session
    with pytest.raises(Exception, match="only model code"):
        world.client("carol").file("data://.session/s.txt").getString()


def test_a_model_calls_only_key_works_only_from_inside_a_model(world: World) -> None:
    made = httpx.post(
        f"{world.server.url}/api/v1/keys",
        json={"name": "inside", "model_calls_only": True},
        headers={"Authorization": f"Simple {world.keys['alice']}"},
    )
    assert made.status_code == 201, made.text
    key, key_id = made.json()["key"], made.json()["key_id"]
    outside = httpx.post(
        f"{world.server.url}/v1/algo/alice/child", json="x", headers={"Authorization": key}
    )
    assert outside.status_code == 403, outside.text
    assert "inside models" in outside.json()["error"]["message"]
    results, parent = world.run("carol", ["call_with_key", key, "alice/child", "z"])
    assert results == [{"ok": {"child": "z"}}]
    rows = [r for r in world.audit("alice/child") if r["parent_request_id"] == parent]
    assert [(r["principal"], r["key_id"], r["status"]) for r in rows] == [("alice", key_id, 200)]


def test_the_credential_is_refused_outside_its_call(world: World) -> None:
    results, _ = world.run("carol", ["credential"])
    credential = results[0]["ok"]
    assert credential.startswith("sim")
    headers = {"Authorization": credential}
    # Over the gateway's port it is no key at all.
    assert httpx.get(f"{world.server.url}/api/v1/whoami", headers=headers).status_code == 401
    # On the workers' own sockets (which only the workers reach) it is refused once the call
    # has ended.
    sockets = sorted((world.server.data_dir / "channels").glob("*/gateway.sock"))
    assert sockets, "no worker sockets"
    messages = []
    for path in sockets:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as http:
            response = http.get("http://127.0.0.1/api/v1/whoami", headers=headers)
        assert response.status_code == 401, response.text
        messages.append(response.json()["error"]["message"])
    assert any("only while the model serves a call" in m for m in messages), messages


def test_a_sandboxed_model_reaches_the_gateway_and_nothing_else(world: World) -> None:
    if not world.sandboxed:
        pytest.skip("no working bubblewrap here: the sandbox is off")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        results, _ = world.run(
            "alice",
            ["connect", port],
            ["connect", world.server.port],
            ["call", "alice/child", "still"],
        )
    assert "error" in results[0], results
    assert "error" in results[1], results  # not even the gateway's own port
    assert results[2] == {"ok": {"child": "still"}}


WHOAMI = textwrap.dedent(
    """
    import json
    import os
    import urllib.request

    URL, KEY = os.environ["ALGORA_URL"], os.environ["ALGORA_KEY"]  # read once, at load


    def apply(input):
        request = urllib.request.Request(URL + "/api/v1/whoami", headers={"Authorization": KEY})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["name"]
    """
)


def test_without_the_sandbox_the_channel_works_the_same(tmp_path: Path) -> None:
    """In-process gateway, unsandboxed worker, a model with no dependencies: the socket is
    reached at its own path and Algora's variables are set. The Host check (for browsers)
    does not stand in the way of a model's requests, whatever the allowed hosts."""
    with in_process(
        tmp_path / "data",
        sandbox="off",
        default_call_timeout=30,
        host="0.0.0.0",
        allowed_hosts=["api.example.com", "testserver"],
    ) as gateway:
        http = gateway.http
        gateway.client.publish(write_model(tmp_path / "whoami", "whoami", WHOAMI))
        for _ in range(2):  # the same worker, call after call
            response = http.post("/v1/algo/admin/whoami", json="x", headers={**gateway.auth})
            assert response.status_code == 200, response.text
            assert response.json()["result"] == "admin"


LOADER = textwrap.dedent(
    """
    import Algorithmia

    client = Algorithmia.client()
    WEIGHTS = client.file("data://alice/weights/w.txt").getString()  # no fallback


    def apply(input):
        return {"weights": WEIGHTS, "child": client.algo("alice/child").pipe(input).result}
    """
)


def test_the_publish_smoke_test_loads_and_calls_like_a_served_model(
    world: World, tmp_path: Path
) -> None:
    """An algorithm that reads hosted data while loading and calls a model in its example
    publishes: its smoke test gets a channel too, the example acting for the publisher."""
    folder = write_model(
        tmp_path / "loader",
        "loader",
        LOADER,
        requirements=ADK_REQUIREMENTS,
        example='input = "ex"',
    )
    with world.server.client(world.keys["alice"]) as alice:
        final = alice.publish(folder)
    assert final["status"] == "ready", final
    answer = world.client("alice").algo("alice/loader").pipe("go").result
    assert answer == {"weights": "w1", "child": {"child": "go"}}
    parents = [r["parent_request_id"] or "" for r in world.audit("alice/child")]
    assert any(p.startswith("smoke-") for p in parents), parents  # the example's child call


# -- the parts on their own -------------------------------------------------------------------


def test_a_credential_inside_a_model_keeps_only_call_read_and_data_scopes() -> None:
    assert narrow_scopes(["*"]) == list(INSIDE_SCOPES)
    held = ["call:acme/*", "keys:manage", "data:read:.algo/x/y", "data:write:coll/*", "bogus"]
    assert narrow_scopes(held) == ["call:acme/*", "data:write:coll/*"]


def test_the_forwarder_copies_large_bodies_both_ways(tmp_path: Path) -> None:
    """The runtime's forwarder (stdlib only) between a TCP client and an echoing Unix socket."""
    path = tmp_path / "echo.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(4)

    def echo() -> None:
        connection, _ = server.accept()
        with connection:
            while data := connection.recv(1 << 16):
                connection.sendall(data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    program = (
        "import sys; from algora.runtime import gateway; "
        "print(gateway.start(sys.argv[1]), flush=True); sys.stdin.read()"
    )
    with subprocess.Popen(
        [sys.executable, "-c", program, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as worker:
        try:
            assert worker.stdout is not None
            url = worker.stdout.readline().strip()
            port = int(url.rsplit(":", 1)[1])
            payload = os.urandom(4 << 20)
            received = bytearray()
            with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
                sender = threading.Thread(target=client.sendall, args=(payload,))
                sender.start()
                while len(received) < len(payload):
                    chunk = client.recv(1 << 16)
                    assert chunk, "the forwarder closed early"
                    received += chunk
                sender.join()
            assert bytes(received) == payload
        finally:
            worker.kill()
            server.close()
