"""Algorithmia ADK algorithms run as they are (algora/runtime/adk.py).

The fast tests use a fake ``Algorithmia`` package whose ``ADK.init`` would serve forever, as
ADK's own does: the worker must adapt it while importing the script and serve the algorithm
itself. The slow tests publish real ADK algorithms (algorithmia-adk 1.2.4 from PyPI) and call
them through the in-process gateway.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from algora.runtime import adk
from algora.runtime.loader import load_model
from algora.testing import write_model

from ..conftest import InProcess, in_process
from ..helpers import ADK_REQUIREMENTS, REPO
from .test_runtime import Worker

EXAMPLE = REPO / "examples" / "adk-hello"

FAKE_ALGORITHMIA = textwrap.dedent(
    """
    import threading


    class ADK:
        def __init__(self, apply_func, load_func=None, client=None):
            pass  # keeps nothing: the runtime records what it was handed

        def init(self, local_payload=None, pprint=print):
            threading.Event().wait()  # ADK's serve loop: never returns
    """
)

ADK_SCRIPT = """
    from Algorithmia import ADK

    loads = []


    class Unsupported(Exception):
        error_type = "UnsupportedError"


    def load():
        loads.append(1)
        return {"loads": loads}


    def apply(input, state):
        if input == "boom":
            raise ValueError("boom happened")
        if input == "typed":
            raise Unsupported("not supported")
        print("applying", input)
        return {"echo": input, "loads": len(state["loads"])}


    algorithm = ADK(apply, load)
    algorithm.init("Algorithmia")
    """


def fake_worker(tmp_path: Path, source: str, entrypoint: str) -> Worker:
    package = tmp_path / "src" / "Algorithmia"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(FAKE_ALGORITHMIA, encoding="utf-8")
    return Worker(tmp_path, source, entrypoint)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.proc.returncode is None:
            worker.proc.kill()
        worker.close()


# -- fast: a fake ADK whose init() would block forever ------------------------------------


@pytest.mark.parametrize("entrypoint", ["model:apply", "model:algorithm", "model"])
def test_adk_script_is_served_by_the_worker(
    tmp_path: Path, workers: list[Worker], entrypoint: str
) -> None:
    worker = fake_worker(tmp_path, ADK_SCRIPT, entrypoint)
    workers.append(worker)
    assert worker.first[0]["type"] == "ready", worker.first
    for value in ("a", "b", "c"):
        reply, body = worker.call(value, "text")
        assert reply["type"] == "result", reply
        assert json.loads(body) == {"echo": value, "loads": 1}  # load ran once
        assert reply["stdout"] == f"applying {value}\n"
    reply, _ = worker.call("boom", "text")
    assert reply["type"] == "error"
    error = reply["error"]
    assert error["code"] == "model_error"
    assert error["message"] == "boom happened"
    assert error["error_type"] == "AlgorithmError"  # what ADK reports, not the class name
    assert 'raise ValueError("boom happened")' in error["stacktrace"]
    assert "algora_runtime" not in error["stacktrace"]
    reply, _ = worker.call("typed", "text")
    assert reply["error"]["error_type"] == "UnsupportedError"  # the exception's error_type
    assert worker.close() == 0


def test_bare_module_without_apply_serves_what_it_handed_to_adk(
    tmp_path: Path, workers: list[Worker]
) -> None:
    source = """
        from Algorithmia import ADK

        def greet(input):
            return "hello " + input

        ADK(greet).init()
        """
    worker = fake_worker(tmp_path, source, "model")
    workers.append(worker)
    assert worker.first[0]["type"] == "ready", worker.first
    assert worker.call("world", "text")[1] == b"hello world"


def test_load_failure_of_an_adk_script_is_a_load_error(
    tmp_path: Path, workers: list[Worker]
) -> None:
    source = """
        from Algorithmia import ADK

        def load():
            raise FileNotFoundError("no weights here")

        def apply(input):
            return input

        ADK(apply, load).init()
        """
    worker = fake_worker(tmp_path, source, "model:apply")
    workers.append(worker)
    header, _ = worker.first
    assert header["type"] == "load_error"
    assert header["error"]["message"] == "no weights here"
    assert header["error"]["error_type"] == "FileNotFoundError"
    assert worker.proc.wait(timeout=10) == 1


def test_other_entrypoints_of_an_adk_script_keep_their_convention(
    tmp_path: Path, workers: list[Worker]
) -> None:
    source = """
        from Algorithmia import ADK

        def apply(input):
            return "adk " + input

        def plain(input):
            return "plain " + input

        ADK(apply).init()
        """
    worker = fake_worker(tmp_path, source, "model:plain")
    workers.append(worker)
    body = worker.call("x", "text")[1]
    assert body == b"plain x"
    error = worker.call(3)[0]["error"]
    assert error["error_type"] == "TypeError"  # not an ADK algorithm: the class name


def test_capture_adapts_init_without_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "Algorithmia"
    package.mkdir()
    (package / "__init__.py").write_text(FAKE_ALGORITHMIA, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "Algorithmia", raising=False)
    try:
        with adk.capture() as record:
            import Algorithmia  # type: ignore[import-not-found]

            def apply(input: str, state: dict[str, str]) -> str:
                return state["greeting"] + " " + input

            algorithm = Algorithmia.ADK(apply, lambda: {"greeting": "hi"})
            assert algorithm.init("Algorithmia") is None  # returned instead of serving
        assert record.initialized == [algorithm]
        captured = record.algorithm()
        assert captured is not None and captured.instance is algorithm
        captured.load()
        assert captured.predict("there") == "hi there"
        assert Algorithmia.ADK.init.__wrapped__ is not None
        assert adk.adk_error_type(ValueError("x")) == "AlgorithmError"
    finally:
        sys.modules.pop("Algorithmia", None)
    assert not any(isinstance(f, adk._AdkFinder) for f in sys.meta_path)


def test_modules_without_adk_load_as_before(tmp_path: Path) -> None:
    (tmp_path / "algora_adk_plain_model.py").write_text(
        "def apply(input: int) -> int:\n    return input + 1\n", encoding="utf-8"
    )
    try:
        model = load_model(tmp_path, "algora_adk_plain_model:apply")
    finally:
        sys.modules.pop("algora_adk_plain_model", None)
        sys.path.remove(str(tmp_path.resolve()))
    assert model.predict(1) == 2
    assert model.error_type is None
    assert model.input_schema == {"type": "integer"}


# -- slow: real ADK algorithms published and called through the gateway -------------------

COUNTER_SCRIPT = textwrap.dedent(ADK_SCRIPT)
OLD_STYLE = 'def apply(input):\n    return "old " + input\n'


@pytest.fixture(scope="module")
def adk_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    data_dir = tmp_path_factory.mktemp("adk-data")
    with in_process(data_dir, default_call_timeout=20) as gateway:
        root = tmp_path_factory.mktemp("adk-models")
        gateway.client.publish(shutil.copytree(EXAMPLE, root / "adk-hello"))
        counter = write_model(
            root / "adk-counter",
            "adk-counter",
            COUNTER_SCRIPT,
            entrypoint="model:apply",
            requirements=ADK_REQUIREMENTS,
            example='text = "ping"',
        )
        gateway.client.publish(counter)
        gateway.client.publish(write_model(root / "old-style", "old-style", OLD_STYLE))
        yield gateway


def algo(gateway: InProcess, name: str, text: str) -> httpx.Response:
    headers = {**gateway.auth, "Content-Type": "text/plain"}
    return gateway.http.post(f"/v1/algo/admin/{name}", content=text.encode(), headers=headers)


@pytest.mark.slow
def test_adk_example_with_a_model_manifest_answers(adk_gateway: InProcess) -> None:
    response = algo(adk_gateway, "adk-hello", "world")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["result"] == "hello world"
    assert body["metadata"]["content_type"] == "text"


@pytest.mark.slow
def test_adk_load_runs_once(adk_gateway: InProcess) -> None:
    for value in ("a", "b", "c"):
        response = algo(adk_gateway, "adk-counter", value)
        assert response.json()["result"] == {"echo": value, "loads": 1}


@pytest.mark.slow
def test_adk_exception_is_algorithmias_error_envelope(adk_gateway: InProcess) -> None:
    response = algo(adk_gateway, "adk-counter", "boom")
    assert response.status_code == 200
    error = response.json()["error"]
    assert set(error) == {"message", "error_type", "stacktrace"}
    assert error["message"] == "boom happened"
    assert error["error_type"] == "AlgorithmError"
    assert 'raise ValueError("boom happened")' in error["stacktrace"]
    typed = algo(adk_gateway, "adk-counter", "typed").json()["error"]
    assert typed["error_type"] == "UnsupportedError"
    # the worker survived both
    assert algo(adk_gateway, "adk-counter", "d").json()["result"] == {"echo": "d", "loads": 1}


@pytest.mark.slow
def test_old_style_apply_still_works(adk_gateway: InProcess) -> None:
    assert algo(adk_gateway, "old-style", "school").json()["result"] == "old school"
