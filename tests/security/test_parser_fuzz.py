"""Fuzzing of the parsers that face the network beyond JSON and credentials: the frame decoder
(what a worker, which runs untrusted model code, sends the gateway), version specs (every call's
URL) and hosted-data paths (collections, model spaces, S3 connectors). Whatever arrives, each
answers with a value or its own documented error, never another exception (which the gateway
would turn into a 500, or which would take down the pool reading a worker)."""

from __future__ import annotations

import json
import string
import struct
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from algora.auth.principals import Caller
from algora.errors import AlgoraError, InvalidVersionSpec
from algora.platform import Platform
from algora.registry.specs import is_alias_name, parse_spec
from algora.runtime.frames import (
    MAGIC,
    PREFIX,
    FrameError,
    decode_frame,
    decode_header,
    decode_prefix,
    encode_frame,
)
from algora.settings import Settings
from algora.store.connector_space import parse_location

from ..conftest import InProcess, in_process

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CALLER = Caller(principal_id=1, name="ann", is_admin=False, key_id="k", scopes=("*",))
# Paths as a client could send them: segments of any text, including the tricky characters.
SEGMENTS = st.lists(
    st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("./\\%:\x00\x7f "), max_size=12)
    | st.sampled_from(["", ".", "..", ".my", ".algo", ".session", "temp", "perm", "~", "%2e%2e"]),
    max_size=6,
)


# frames ----------------------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=64))
@example(PREFIX.pack(MAGIC, 2**32 - 1, 0))
@example(PREFIX.pack(MAGIC, 0, 2**64 - 1))
@example(PREFIX.pack(b"ALG2", 2, 0) + b"{}")
def test_any_prefix_decodes_or_is_a_frame_error(data: bytes) -> None:
    try:
        header_len, payload_len = decode_prefix(data[: PREFIX.size])
    except FrameError:
        return
    assert header_len >= 0 and payload_len >= 0


@FUZZ
@given(st.binary(max_size=256) | st.text(max_size=64).map(lambda t: t.encode("utf-8", "replace")))
@example(b"[" * 100_000)
@example(b'{"a": NaN}')
@example(b"\xff\xfe")
@example(b'"\\ud800"')
def test_any_header_is_an_object_or_a_frame_error(raw: bytes) -> None:
    try:
        header = decode_header(raw)
    except FrameError:
        return
    except RecursionError:  # pragma: no cover - the assertion below says what went wrong
        pytest.fail("a deeply nested header must be a FrameError, not a RecursionError")
    assert isinstance(header, dict)


@FUZZ
@given(
    st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4),
    st.binary(max_size=64),
    st.integers(min_value=-3, max_value=3),
)
def test_a_frame_cut_or_padded_anywhere_is_a_frame_error(
    header: dict[str, object], payload: bytes, change: int
) -> None:
    frame = encode_frame(header, payload)
    assert decode_frame(frame) == (header, payload)
    damaged = frame[:change] if change < 0 else frame + b"\0" * change
    if change == 0:
        return
    with pytest.raises(FrameError):
        decode_frame(damaged)


def test_a_header_nested_past_the_recursion_limit_is_a_frame_error() -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(FrameError):
        decode_header(deep)
    frame = struct.pack(">4sIQ", MAGIC, len(deep), 0) + deep
    with pytest.raises(FrameError):
        decode_frame(frame)


# version specs ---------------------------------------------------------------------------------
@FUZZ
@given(st.text(max_size=80) | st.from_regex(r"\A[0-9.vx]{1,40}\Z"))
@example("9" * 5000)
@example("1." + "9" * 5000)
@example("1.2.3.4")
@example("latest\n")
def test_any_version_spec_parses_or_is_refused_with_a_400(text: str) -> None:
    try:
        spec = parse_spec(text)
    except InvalidVersionSpec as error:
        assert int(error.status) == 400
        return
    assert str(spec)  # renders back
    assert isinstance(is_alias_name(text), bool)


# hosted-data paths -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The platform's parts, unopened: locating a path reads nothing."""
    yield Platform(Settings(data_dir=tmp_path_factory.mktemp("data")))


def _located_or_refused(locate: object, path: str) -> None:
    assert callable(locate)
    try:
        locate(CALLER, path)
    except AlgoraError as error:
        assert 400 <= int(error.status) < 500, f"{path!r}: {error.code} {error.status}"


@SLOW_FUZZ
@given(SEGMENTS)
def test_any_data_path_is_located_or_refused_with_a_4xx(
    platform: Platform, segments: list[str]
) -> None:
    path = "/".join(segments)
    spaces = platform.data_spaces
    for space in (spaces.collections, spaces.algo, spaces.session):
        _located_or_refused(space.locate, path)
    try:
        parse_location("s3://" + path)
        parse_location(path)
    except AlgoraError as error:
        assert 400 <= int(error.status) < 500


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    with in_process(tmp_path_factory.mktemp("gateway")) as gateway:
        yield gateway


@SLOW_FUZZ
@given(SEGMENTS, st.sampled_from(["GET", "HEAD", "DELETE", "PATCH"]))
@example(["..", "..", "etc", "passwd"], "GET")
@example([".my", "c", "%00"], "GET")
def test_any_data_url_is_answered_without_a_server_error(
    gateway: InProcess, segments: list[str], method: str
) -> None:
    """Through the real routes: every segment percent-encoded as a client would send it."""
    path = "/".join(quote(s, safe="") for s in segments)
    for prefix in ("/v1/data/", "/v1/data/.algo/", "/v1/connector/s3/"):
        answer = gateway.http.request(
            method,
            prefix + path,
            headers=gateway.auth,
            content=b"{}" if method == "PATCH" else None,
        )
        assert answer.status_code < 500, (method, prefix + path, answer.text)
        if answer.status_code >= 400 and method != "HEAD":
            body = answer.json()
            assert "error" in body, body


@SLOW_FUZZ
@given(st.text(alphabet=string.printable, max_size=40))
def test_any_version_in_a_call_url_is_answered_without_a_server_error(
    gateway: InProcess, spec: str
) -> None:
    url = "/v1/algo/admin/nothing/" + quote(spec, safe="")
    answer = gateway.http.post(url, headers=gateway.auth, content=json.dumps("x"))
    assert answer.status_code < 500, (url, answer.text)
