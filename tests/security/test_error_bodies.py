"""Every error body is scanned for absolute paths, socket names, tracebacks and secrets.

The errors are provoked on purpose: model exceptions at call and at load, syntax errors,
worker deaths, timeouts, failed builds and the versions they leave behind, bad archives and
manifests, bad JSON, unknown routes and methods, missing and wrong keys.
"""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from algora.errors import AlgoraError
from algora.testing import write_model

from .conftest import Response, World, leaks


def scan(world: World, response: Response, label: str) -> None:
    found = leaks(world, response)
    assert not found, f"{label}: {found}: {response.text[:800]}"


@pytest.fixture(scope="module")
def broken(world: World) -> list[str]:
    """Publish models that fail in each way a build can fail; their refs."""
    root = world.root / "broken"
    cases = {
        "loadfail": ("import json\njson.loads('{')\n", "model:apply"),
        "syntax": ("def apply(x:\n    return x\n", "model:apply"),
        "missing": ("def apply(x):\n    return x\n", "model:nothing"),
        "opens": ("open('/nonexistent/weights.bin')\n", "model:apply"),
    }
    refs = []
    for name, (code, entrypoint) in cases.items():
        folder = write_model(root / name, name, code, entrypoint=entrypoint, example="input = 1")
        with pytest.raises(AlgoraError):
            world.client.publish(folder)
        refs.append(f"admin/{name}")
    folder = write_model(
        root / "badreq",
        "badreq",
        "def apply(x):\n    return x\n",
        requirements="this is not a requirement !!\n",
    )
    with pytest.raises(AlgoraError) as refused:
        world.client.publish(folder)
    assert str(world.root) not in str(refused.value.message), refused.value.message
    return refs


def test_error_bodies_name_no_server_path_socket_traceback_or_secret(
    world: World, broken: list[str]
) -> None:
    post = {"content-type": "application/json"}
    cases: list[tuple[str, Response]] = []
    for value in ("boom", "die", "bytes"):
        cases.append(
            (
                f"model {value}",
                world.raw(
                    "POST", "/v1/algo/admin/echo", body=json.dumps(value).encode(), headers=post
                ),
            )
        )
    cases.append(
        (
            "timeout",
            world.raw(
                "POST", "/v1/algo/admin/echo", body=b'"sleep"', headers=post, query="timeout=0.3"
            ),
        )
    )
    for ref in broken:
        cases.append(
            (f"call {ref}", world.raw("POST", f"/v1/algo/{ref}/1.0.0", body=b"1", headers=post))
        )
        cases.append((f"version {ref}", world.raw("GET", f"/api/v1/models/{ref}/versions/1.0.0")))
        cases.append((f"lock {ref}", world.raw("GET", f"/api/v1/models/{ref}/versions/1.0.0/lock")))
        cases.append((f"sbom {ref}", world.raw("GET", f"/api/v1/models/{ref}/versions/1.0.0/sbom")))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("algora.toml")
        data = b"[model\nname = 1"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    cases.append(
        (
            "bad manifest",
            world.raw("POST", "/api/v1/models/admin/echo/versions", body=raw.getvalue()),
        )
    )
    cases.append(
        (
            "not an archive",
            world.raw("POST", "/api/v1/models/admin/echo/versions", body=b"PK\x03\x04junk"),
        )
    )
    cases.append(
        (
            "truncated gzip",
            world.raw(
                "POST", "/api/v1/models/admin/echo/versions", body=b"\x1f\x8b\x08\x00" + b"\0" * 20
            ),
        )
    )
    cases.append(
        ("bad json", world.raw("POST", "/v1/algo/admin/echo", body=b"{nope", headers=post))
    )
    cases.append(
        ("deep json", world.raw("POST", "/v1/algo/admin/echo", body=b"[" * 100_000, headers=post))
    )
    cases.append(
        (
            "bad patch",
            world.raw(
                "PATCH", "/api/v1/models/admin/echo", body=b'{"visibility": 3}', headers=post
            ),
        )
    )
    cases.append(("no route", world.raw("GET", "/nowhere")))
    cases.append(("bad method", world.raw("PUT", "/api/v1/models")))
    cases.append(("no key", world.raw("GET", "/api/v1/models", headers={"authorization": ""})))
    cases.append(
        (
            "wrong key",
            world.raw(
                "GET",
                "/api/v1/models",
                headers={"authorization": "Simple simNOPE000000000000000000"},
            ),
        )
    )
    cases.append(("bad version", world.raw("GET", "/api/v1/models/admin/echo/versions/9.9.9/log")))
    cases.append(
        ("bad spec", world.raw("POST", "/v1/algo/admin/echo/not-a-spec", body=b"1", headers=post))
    )
    cases.append(
        (
            "bad timeout",
            world.raw("POST", "/v1/algo/admin/echo", body=b"1", headers=post, query="timeout=nan"),
        )
    )
    cases.append(
        ("bad cursor", world.raw("GET", "/api/v1/audit", query="cursor=-1&since=yesterday"))
    )
    for label, response in cases:
        scan(world, response, label)
    statuses = {label: response.status for label, response in cases}
    assert sum(status >= 400 for status in statuses.values()) >= 20, statuses
    assert len(cases) >= 28
    # The model's own trace is kept (Algorithmia's clients show it), but relative.
    boom = cases[0][1].json()["error"]["stacktrace"]
    assert 'File "model.py"' in boom and "raise ValueError" in boom, boom
    for ref in broken:
        reason = world.client.version(ref, "1.0.0")["failure_reason"] or ""
        assert str(world.data_dir) not in reason and "/tmp/" not in reason, reason
