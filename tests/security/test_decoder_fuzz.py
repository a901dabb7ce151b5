"""Fuzzing of the decoders that face the network: JSON bodies, numbers in queries, integer
queries and HTTP Basic credentials. Whatever arrives, they answer with a value or the product's
own 4xx error, never another exception (which the server would turn into a 500)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from algora.app import create_app
from algora.auth.keys import basic_authorization, parse_authorization_scheme
from algora.errors import AlgoraError, InvalidInput
from algora.gateway.inputs import MAX_DEPTH, decode_json, finite_float
from algora.settings import Settings

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_JSON_ATOMS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
JSON_VALUES = st.recursive(
    _JSON_ATOMS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
_JSON_PIECES = st.sampled_from(
    ["[", "]", "{", "}", ",", ":", '"', "\\", "\\u", "d800", "NaN", "Infinity", "-", "1e999",
     "0", "9" * 30, "true", "null", " ", "\ud800", "\x00", "é"]
)  # fmt: skip


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogatepass")


def _is_4xx(error: AlgoraError) -> bool:
    return 400 <= int(error.status) < 500


def _decodes_or_refuses(raw: bytes | str) -> Any:
    try:
        return decode_json(raw)
    except AlgoraError as error:
        assert isinstance(error, InvalidInput) and _is_4xx(error)
        return None


@FUZZ
@given(st.binary(max_size=512))
@example(b"[" * 5000 + b"]" * 5000)
@example(b"1e999999")
@example(b'"\\ud800"')
@example(b"\xed\xa0\x80")
@example(b"9" * 5000)
def test_any_bytes_decode_or_are_refused(raw: bytes) -> None:
    _decodes_or_refuses(raw)


@FUZZ
@given(st.lists(_JSON_PIECES, max_size=60).map("".join))
def test_json_like_text_decodes_or_is_refused(text: str) -> None:
    _decodes_or_refuses(text)
    _decodes_or_refuses(_utf8(text))


@FUZZ
@given(JSON_VALUES)
def test_what_is_accepted_is_portable_json(value: Any) -> None:
    """Python's own encoder writes NaN, Infinity and lone surrogates; the decoder takes back
    exactly what a strict encoder could have written."""
    raw = json.dumps(value)
    decoded = _decodes_or_refuses(_utf8(raw))
    try:
        strict = json.dumps(value, allow_nan=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        strict = None
    if strict is not None:
        assert decoded == json.loads(strict)


def test_depth_is_bounded_whatever_the_stack() -> None:
    assert decode_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    with pytest.raises(InvalidInput, match="nested"):
        decode_json(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))


@FUZZ
@given(st.text(max_size=40) | st.sampled_from(["nan", "-inf", "Infinity", "1e309", "1_0", "0x1"]))
def test_finite_float_is_finite_or_refused(text: str) -> None:
    try:
        value = finite_float(text, "timeout")
    except InvalidInput as error:
        assert "timeout" in error.message
        return
    assert math.isfinite(value)


_HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80)


@FUZZ
@given(
    st.one_of(
        _HEADER_TEXT,
        _HEADER_TEXT.map(lambda rest: "Basic " + rest),
        st.binary(max_size=60).map(lambda raw: "Basic " + base64.b64encode(raw).decode()),
        st.binary(max_size=60).map(lambda raw: "basic " + raw.decode("latin-1")),
    )
)
@example("Basic \xff\xff")
@example("Basic ====")
@example("Basic Og==")  # ":" alone: no user, no password
def test_basic_credentials_never_raise(header: str) -> None:
    authorization, basic = basic_authorization(header)
    assert basic == header.strip().lower().startswith("basic")
    if authorization is not None:
        parse_authorization_scheme(authorization)  # what the authenticator reads next


@FUZZ
@given(st.text(max_size=30) | st.integers(min_value=-(2**80), max_value=2**80).map(str))
@example("99999999999999999999999")
@example("9223372036854775808")
def test_integer_queries_answer_below_500(client: TestClient, cursor: str) -> None:
    response = client.get("/api/v1/audit", params={"cursor": cursor})
    assert response.status_code < 500, response.text


@FUZZ
@given(st.binary(max_size=256) | st.lists(_JSON_PIECES, max_size=40).map("".join).map(_utf8))
@example(b"[" * 5000 + b"]" * 5000)
@example(b'{"name": "x", "rate_per_second": NaN}')
@example(b'{"rate_per_second": 1e999999}')
def test_json_bodies_answer_below_500(client: TestClient, body: bytes) -> None:
    for path in ("/api/v1/keys", "/v1/users", "/v1/data/.my"):
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code < 500, (path, response.text)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The gateway in process, with the admin's key."""
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    app = create_app(Settings(data_dir=data_dir))
    with TestClient(app, base_url="http://localhost") as http:
        key = (data_dir / "admin.key").read_text(encoding="utf-8").strip()
        http.headers["Authorization"] = f"Simple {key}"
        yield http
