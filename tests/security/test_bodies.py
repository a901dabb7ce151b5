"""Pickle, joblib and YAML object bodies: 415 or 400, never deserialized anywhere.

Each payload, if it were ever unpickled or YAML-loaded (gateway or worker), would create a
witness file; the test proves it never appears, whatever the route and content type.
"""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path
from typing import Any

from .conftest import World, leaks

OBJECT_TYPES = (
    "application/python-pickle",
    "application/x-python-pickle",
    "application/pickle",
    "application/x-pickle",
    "application/vnd.python.pickle",
    "application/x-joblib",
    "application/joblib",
    "application/x-yaml",
    "application/yaml",
    "text/yaml",
    "text/x-yaml",
    "application/x-python-serialize",
    "application/x-marshal",
    "application/x-dill",
)
WITH_PARAMS = ("", "; charset=utf-8", "; protocol=5")


class _Witness:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def object_payloads(witness: Path) -> dict[str, bytes]:
    found = {
        f"pickle protocol {p}": pickle.dumps(_Witness(str(witness)), protocol=p)
        for p in range(pickle.HIGHEST_PROTOCOL + 1)
    }
    found["joblib (zlib-wrapped pickle header)"] = b"ZF0x" + found["pickle protocol 4"]
    yaml = f'!!python/object/apply:builtins.open ["{witness}", "w"]\n'
    found["yaml python/object"] = yaml.encode()
    found["yaml python/name"] = f"!!python/name:os.system\n--- {witness}\n".encode()
    return found


def test_object_bodies_are_refused_on_every_route_that_takes_a_body(
    world: World, tmp_path: Path
) -> None:
    witness = tmp_path / "deserialized"
    payloads = object_payloads(witness)
    routes = [
        ("POST", "/v1/algo/admin/echo"),
        ("POST", "/v1/algo/admin/echo/1.0.0"),
        ("POST", "/v1/algo/admin/echo/1.0.0/"),
        ("PATCH", "/api/v1/models/admin/echo"),
        ("PATCH", "/api/v1/models/admin/echo/versions/1.0.0"),
        ("POST", "/api/v1/keys"),
        ("POST", "/api/v1/principals"),
        ("POST", "/api/v1/models/admin/echo/versions"),
    ]
    cases = 0
    for (method, path), (label, body), media, params in itertools.product(
        routes, payloads.items(), OBJECT_TYPES, WITH_PARAMS
    ):
        response = world.raw(method, path, body=body, headers={"content-type": media + params})
        assert response.status in (400, 415), f"{method} {path} {label} as {media}: {response.text}"
        assert not leaks(world, response)
        cases += 1
    # As JSON they are not JSON; as text or bytes they reach the model as a str or bytes.
    for (label, body), media in itertools.product(payloads.items(), ("application/json",)):
        response = world.raw(
            "POST", "/v1/algo/admin/echo", body=body, headers={"content-type": media}
        )
        assert response.status == 400, label
        cases += 1
    for label, body in payloads.items():
        response = world.raw(
            "POST",
            "/v1/algo/admin/echo",
            body=body,
            headers={"content-type": "application/octet-stream"},
        )
        assert response.status == 200, f"{label}: {response.text}"
        cases += 1
    assert cases >= 1000
    assert not witness.exists(), "a serialized object was deserialized"
