"""A call whose input the version's schema does not take is a 400 ``invalid_input`` that names
the field and the rule, before the model runs; a model may opt out."""

from __future__ import annotations

from pathlib import Path

from algora.testing import write_model

from ..conftest import in_process

MODEL = """
from typing import TypedDict


class Request(TypedDict):
    text: str
    times: int


def apply(input: Request) -> str:
    return input["text"] * input["times"]
"""


def test_an_input_the_schema_refuses_never_reaches_the_model(tmp_path: Path) -> None:
    with in_process(tmp_path / "data") as gw:
        gw.client.publish(write_model(tmp_path / "typed", "typed", MODEL))
        opt_out = "\n[serving]\ncheck_inputs = false\n"
        gw.client.publish(write_model(tmp_path / "loose", "loose", MODEL, extra_manifest=opt_out))
        typed = "/v1/algo/admin/typed"
        good = gw.http.post(typed, json={"text": "ab", "times": 2}, headers=gw.auth)
        assert good.json()["result"] == "abab"
        bad = gw.http.post(typed, json={"text": 5, "times": 2}, headers=gw.auth)
        assert bad.status_code == 400, bad.text
        assert bad.json()["error"] == {
            "message": "input.text must be a string, not an integer (5)",
            "code": "invalid_input",
        }
        missing = gw.http.post(typed, json={"text": "a"}, headers=gw.auth)
        assert missing.status_code == 400
        assert missing.json()["error"]["message"] == "input is missing the field 'times'"
        # the model that opted out gets what it is sent
        loose = gw.http.post("/v1/algo/admin/loose", json={"text": 5, "times": 2}, headers=gw.auth)
        assert loose.json()["result"] == 10
