"""The worker runtime: frames, schemas, and real worker processes speaking the protocol."""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
import json
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Optional, TypedDict, Union

import pytest

from algora.runtime import codec, frames
from algora.runtime.schema import callable_schemas, schema_of
from algora.workers.runtime_files import install_runtime, runtime_command

from ..helpers import REPO, encode

RUNTIME_DIR = REPO / "algora" / "runtime"


# -- frames -------------------------------------------------------------------------------


def test_frame_round_trip() -> None:
    header = {"type": "call", "id": "r1", "content_type": "binary", "text": "héllo ✓"}
    payload = bytes(range(256)) * 3
    data = frames.encode_frame(header, payload)
    magic, header_len, payload_len = struct.unpack(">4sIQ", data[:16])
    assert magic == b"ALG1"
    assert payload_len == len(payload)
    assert len(data) == 16 + header_len + payload_len
    assert frames.decode_frame(data) == (header, payload)


def test_read_frame_reads_a_stream_of_frames() -> None:
    stream = io.BytesIO(frames.encode_frame({"n": 1}) + frames.encode_frame({"n": 2}, b"xy") + b"")
    assert frames.read_frame(stream) == ({"n": 1}, b"")
    assert frames.read_frame(stream) == ({"n": 2}, b"xy")
    assert frames.read_frame(stream) is None


def test_read_frame_truncated_is_eof_error() -> None:
    data = frames.encode_frame({"n": 1}, b"payload")
    with pytest.raises(EOFError):
        frames.read_frame(io.BytesIO(data[:-3]))
    with pytest.raises(EOFError):
        frames.read_frame(io.BytesIO(data[:10]))


@pytest.mark.parametrize(
    "data",
    [
        struct.pack(">4sIQ", b"HTTP", 2, 0) + b"{}",
        struct.pack(">4sIQ", b"ALG1", frames.MAX_HEADER + 1, 0),
        struct.pack(">4sIQ", b"ALG1", 2, frames.MAX_PAYLOAD + 1) + b"{}",
        struct.pack(">4sIQ", b"ALG1", 2, 0) + b"[]",
        struct.pack(">4sIQ", b"ALG1", 3, 0) + b"{\xff}",
        struct.pack(">4sIQ", b"ALG1", 4, 0) + b"nope",
    ],
    ids=["magic", "header-too-big", "payload-too-big", "not-object", "not-utf8", "not-json"],
)
def test_bad_frames_are_rejected(data: bytes) -> None:
    with pytest.raises(frames.FrameError):
        frames.read_frame(io.BytesIO(data))


def test_decode_frame_rejects_trailing_bytes() -> None:
    with pytest.raises(frames.FrameError):
        frames.decode_frame(frames.encode_frame({}) + b"x")


# -- result encoding ----------------------------------------------------------------------


class _FakeArray:
    def tolist(self) -> list[int]:
        return [1, 2]


class _FakeScalar:
    def item(self) -> float:
        return 0.5


@dataclasses.dataclass
class _Point:
    x: int
    y: int


def test_encode_result_content_types() -> None:
    assert codec.encode_result(None) == ("void", b"")
    assert codec.encode_result("hé") == ("text", "hé".encode())
    assert codec.encode_result(b"\x00\x01") == ("binary", b"\x00\x01")
    assert codec.encode_result(bytearray(b"ab")) == ("binary", b"ab")
    kind, body = codec.encode_result(
        {"a": _FakeArray(), "b": _FakeScalar(), "p": _Point(1, 2), "raw": b"hi"}
    )
    assert kind == "json"
    assert json.loads(body) == {"a": [1, 2], "b": 0.5, "p": {"x": 1, "y": 2}, "raw": "aGk="}


@pytest.mark.parametrize("value", [object(), {"x": float("nan")}, {1j}])
def test_encode_result_refuses_what_json_cannot_hold(value: Any) -> None:
    with pytest.raises(codec.ResultNotSerializable):
        codec.encode_result(value)


def test_captured_output_is_capped() -> None:
    out = codec.CapturedOutput(limit=5)
    out.write("abc")
    out.write("defgh")
    assert out.getvalue().startswith("abcde")
    assert "truncated" in out.getvalue()


# -- schema -------------------------------------------------------------------------------


class Features(TypedDict):
    name: str
    scores: list[float]


@dataclasses.dataclass
class Request:
    text: str
    top_k: int = 3


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (str, {"type": "string"}),
        (bool, {"type": "boolean"}),
        (None, {"type": "null"}),
        (bytes, {"type": "string", "contentEncoding": "base64"}),
        (Any, {}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}}),
        (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
        (
            tuple[int, str],
            {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "string"}],
                "items": False,
                "minItems": 2,
                "maxItems": 2,
            },
        ),
        (Optional[int], {"anyOf": [{"type": "integer"}, {"type": "null"}]}),  # noqa: UP045
        (Union[int, str], {"anyOf": [{"type": "integer"}, {"type": "string"}]}),  # noqa: UP007
        (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
        (Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}),
        (
            Features,
            {
                "type": "object",
                "title": "Features",
                "properties": {
                    "name": {"type": "string"},
                    "scores": {"type": "array", "items": {"type": "number"}},
                },
                "required": ["name", "scores"],
            },
        ),
        (
            Request,
            {
                "type": "object",
                "title": "Request",
                "properties": {"text": {"type": "string"}, "top_k": {"type": "integer"}},
                "required": ["text"],
            },
        ),
        (object(), {}),
        ("NotAType", {}),
    ],
)
def test_schema_of(hint: Any, expected: dict[str, Any]) -> None:
    assert schema_of(hint) == expected


def test_callable_schemas_resolve_string_hints_and_survive_bad_ones() -> None:
    namespace: dict[str, Any] = {}
    exec(
        "from __future__ import annotations\n"
        "def apply(x: list[int]) -> dict[str, int]: ...\n"
        "def broken(x: DoesNotExist) -> int: ...\n"
        "def bare(x): ...\n",
        namespace,
    )
    assert callable_schemas(namespace["apply"]) == (
        {"type": "array", "items": {"type": "integer"}},
        {"type": "object", "additionalProperties": {"type": "integer"}},
    )
    assert callable_schemas(namespace["broken"]) == ({}, {})
    assert callable_schemas(namespace["bare"]) == ({}, {})


# -- standard library only ----------------------------------------------------------------


def test_runtime_imports_only_the_standard_library() -> None:
    modules = sorted(RUNTIME_DIR.glob("*.py"))
    assert {p.name for p in modules} >= {"frames.py", "main.py", "loader.py", "schema.py"}
    for path in modules:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top == "__future__", (
                    f"{path.name} imports {name}"
                )


def test_install_runtime_is_content_addressed_and_reused(tmp_path: Path) -> None:
    first = install_runtime(tmp_path)
    assert install_runtime(tmp_path) == first
    assert (first / "algora_runtime" / "main.py").is_file()
    assert first.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in first.parent.iterdir()] == [first.name]


# -- real workers -------------------------------------------------------------------------


class Worker:
    """A worker subprocess driven synchronously, the way the gateway drives it."""

    def __init__(self, tmp_path: Path, source: str, entrypoint: str = "model:apply") -> None:
        src = tmp_path / "src"
        src.mkdir(exist_ok=True)
        (src / "model.py").write_text(textwrap.dedent(source), encoding="utf-8")
        argv = runtime_command(tmp_path / "data", Path(sys.executable), src, entrypoint)
        self.log = (tmp_path / "worker.log").open("wb")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.stdout = self.proc.stdout
        self.first = self.read()

    def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        self.stdin.write(frames.encode_frame(header, payload))
        self.stdin.flush()

    def read(self) -> tuple[dict[str, Any], bytes]:
        frame = frames.read_frame(self.stdout)
        assert frame is not None, "worker closed its output"
        return frame

    def call(self, value: Any, content_type: str = "json") -> tuple[dict[str, Any], bytes]:
        self.send(
            {"type": "call", "id": "c1", "content_type": content_type}, encode(value, content_type)
        )
        return self.read()

    def close(self) -> int:
        try:
            if self.proc.poll() is None:
                self.send({"type": "shutdown"})
        except BrokenPipeError:
            pass
        with contextlib.suppress(BrokenPipeError):
            self.stdin.close()
        code = self.proc.wait(timeout=10)
        self.stdout.close()
        self.log.close()
        return code


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Any]:
    started: list[Worker] = []

    def start(source: str, entrypoint: str = "model:apply") -> Worker:
        worker = Worker(tmp_path, source, entrypoint)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.proc.returncode is None:
            worker.proc.kill()
            worker.close()


FUNCTION_MODEL = """
    import os

    def apply(input: dict[str, int]) -> list[int]:
        print("sorting", len(input), "values")
        os.write(1, b"C-level noise on fd 1\\n")
        return sorted(input.values())
"""


def test_function_model(start_worker: Any, tmp_path: Path) -> None:
    worker = start_worker(FUNCTION_MODEL)
    ready, _ = worker.first
    assert ready["type"] == "ready"
    assert ready["protocol"] == 1
    assert ready["pid"] == worker.proc.pid
    assert ready["model"] == {
        "kind": "function",
        "batch": False,
        "input_schema": {"type": "object", "additionalProperties": {"type": "integer"}},
        "output_schema": {"type": "array", "items": {"type": "integer"}},
    }
    header, payload = worker.call({"b": 2, "a": 3, "c": 1})
    assert header["type"] == "result"
    assert header["id"] == "c1"
    assert header["content_type"] == "json"
    assert header["stdout"] == "sorting 3 values\n"
    assert header["duration"] >= 0
    assert json.loads(payload) == [1, 2, 3]
    # fd-level writes went to the log, and the protocol survived them.
    header, payload = worker.call({"x": 9})
    assert json.loads(payload) == [9]
    assert worker.close() == 0
    assert b"C-level noise on fd 1" in (tmp_path / "worker.log").read_bytes()


def test_text_binary_and_void_results(start_worker: Any) -> None:
    worker = start_worker(
        """
        def apply(input):
            if isinstance(input, bytes):
                return input[::-1]
            if input == "nothing":
                return None
            return input.upper()
        """
    )
    header, payload = worker.call("héllo", "text")
    assert (header["content_type"], payload.decode()) == ("text", "HÉLLO")
    header, payload = worker.call(b"\x00\x01\x02", "binary")
    assert (header["content_type"], payload) == ("binary", b"\x02\x01\x00")
    header, payload = worker.call("nothing", "text")
    assert (header["content_type"], payload) == ("void", b"")


CLASS_MODEL = """
    from dataclasses import dataclass

    @dataclass
    class Out:
        label: str
        size: int

    class Model:
        def __init__(self):
            self.loaded = False

        def load(self):
            print("loading weights")
            self.loaded = True

        def predict(self, input: str) -> Out:
            assert self.loaded
            return Out(label=input, size=len(input))

        def predict_batch(self, inputs: list[str]) -> list[Out]:
            print("batch of", len(inputs))
            if "boom" in inputs:
                raise RuntimeError("batch exploded")
            return [Out(label=f"batch:{x}", size=len(inputs)) for x in inputs]
"""


def test_class_model_with_load_predict_and_batch(start_worker: Any) -> None:
    worker = start_worker(CLASS_MODEL, "model:Model")
    ready, _ = worker.first
    assert ready["model"]["kind"] == "class"
    assert ready["model"]["batch"] is True
    assert ready["model"]["input_schema"] == {"type": "string"}
    assert ready["model"]["output_schema"]["title"] == "Out"

    header, payload = worker.call("abc")
    assert json.loads(payload) == {"label": "abc", "size": 3}
    assert header["stdout"] == ""

    items = [
        {"id": "a", "content_type": "json", "length": 5},
        {"id": "b", "content_type": "text", "length": 2},
        {"id": "c", "content_type": "json", "length": 3},
    ]
    worker.send({"type": "call_batch", "items": items}, b'"one"xy{{{')
    header, payload = worker.read()
    assert header["type"] == "batch_result"
    by_id = {item["id"]: item for item in header["items"]}
    assert by_id["c"]["error"]["code"] == "invalid_input"
    assert [i["id"] for i in header["items"]] == ["a", "b", "c"]
    first, second = by_id["a"]["length"], by_id["b"]["length"]
    assert json.loads(payload[:first]) == {"label": "batch:one", "size": 2}
    assert json.loads(payload[first : first + second]) == {"label": "batch:xy", "size": 2}
    assert len(payload) == first + second

    items = [
        {"id": "a", "content_type": "text", "length": 2},
        {"id": "b", "content_type": "text", "length": 4},
    ]
    worker.send({"type": "call_batch", "items": items}, b"okboom")
    header, payload = worker.read()
    # predict_batch raised: each input is tried on its own with predict, which takes both.
    assert [item["content_type"] for item in header["items"]] == ["json", "json"]
    first = header["items"][0]["length"]
    assert json.loads(payload[:first]) == {"label": "ok", "size": 2}
    assert json.loads(payload[first:]) == {"label": "boom", "size": 4}
    assert worker.close() == 0


def test_model_exception_is_an_error_message(start_worker: Any) -> None:
    worker = start_worker(
        """
        def apply(input):
            print("about to fail")
            raise ValueError(f"cannot handle {input!r}")
        """
    )
    header, _ = worker.call(42)
    assert header["type"] == "error"
    assert header["id"] == "c1"
    assert header["stdout"] == "about to fail\n"
    error = header["error"]
    assert error["code"] == "model_error"
    assert error["message"] == "cannot handle 42"
    assert error["error_type"] == "ValueError"
    assert 'model.py", line 4, in apply' in error["stacktrace"]
    assert "algora_runtime" not in error["stacktrace"]
    # The worker keeps serving after a model error.
    header, _ = worker.call(1)
    assert header["type"] == "error"
    assert worker.close() == 0


def test_unserializable_result_and_bad_input(start_worker: Any) -> None:
    worker = start_worker("def apply(input):\n    return object() if input else {'ok': True}\n")
    header, _ = worker.call(1)
    assert header["error"]["code"] == "result_not_serializable"
    worker.send({"type": "call", "id": "c2", "content_type": "json"}, b"{not json")
    header, _ = worker.read()
    assert (header["id"], header["error"]["code"]) == ("c2", "invalid_input")
    worker.send({"type": "mystery", "id": "c3"})
    header, _ = worker.read()
    assert header["error"]["code"] == "protocol_error"
    header, payload = worker.call(0)
    assert json.loads(payload) == {"ok": True}
    assert worker.close() == 0


def test_load_failure_reports_and_exits(start_worker: Any) -> None:
    worker = start_worker(
        """
        import os
        os.write(1, b"noise before failing\\n")
        raise ImportError("missing weights file")
        """
    )
    header, _ = worker.first
    assert header["type"] == "load_error"
    error = header["error"]
    assert error["code"] == "model_load_failed"
    assert error["message"] == "missing weights file"
    assert error["error_type"] == "ImportError"
    assert "model.py" in error["stacktrace"]
    assert worker.proc.wait(timeout=10) == 1
    worker.close()


def test_missing_entrypoint_is_a_load_error(start_worker: Any) -> None:
    worker = start_worker("def other(x):\n    return x\n", "model:apply")
    header, _ = worker.first
    assert header["type"] == "load_error"
    assert header["error"]["error_type"] == "AttributeError"
    worker.close()


def test_end_of_input_stops_the_worker(start_worker: Any) -> None:
    worker = start_worker("def apply(x):\n    return x\n")
    worker.stdin.close()
    assert worker.proc.wait(timeout=10) == 0
    worker.stdout.close()
    worker.log.close()


def test_a_huge_exception_message_is_truncated_not_fatal(tmp_path: Path) -> None:
    from algora.runtime.failures import error_object

    try:
        raise ValueError("x" * 5_000_000)
    except ValueError as exc:
        error = error_object("model_error", exc, skip_frames=0)
    assert error["message"].endswith("(truncated)")
    assert len(error["message"]) < 70_000 and len(error["stacktrace"]) < 70_000
    assert error["error_type"] == "ValueError"


def test_algorithmia_layout_imports_its_sibling_files_every_way(tmp_path: Path) -> None:
    package = tmp_path / "src" / "src"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "helpers.py").write_text("def twice(x):\n    return 2 * x\n", encoding="utf-8")
    (package / "Algo.py").write_text(
        "import helpers\n"
        "from .helpers import twice as relative\n"
        "from src.helpers import twice as absolute\n\n\n"
        "def apply(input):\n"
        "    return [helpers.twice(input), relative(input), absolute(input)]\n",
        encoding="utf-8",
    )
    worker = Worker(tmp_path, "", "src.Algo:apply")
    try:
        assert worker.first[0]["type"] == "ready", worker.first
        header, payload = worker.call(21)
        assert header["type"] == "result", header
        assert json.loads(payload) == [42, 42, 42]
    finally:
        assert worker.close() == 0
