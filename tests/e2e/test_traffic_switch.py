"""Traffic moves to a new version only once it is loaded: a publish and an alias move under
steady load fail no call, and no call waits for a cold start."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from algora.testing import RunningServer, write_model

MODEL = """
import time


class Model:
    def load(self):
        time.sleep(2.5)  # a model that takes a while to load

    def predict(self, input):
        return "{answer}"
"""
CALLERS = 4


def test_a_publish_and_an_alias_move_under_load_fail_no_call(tmp_path: Path) -> None:
    env = {"ALGORA_WARM_ON_PUBLISH": "true"}
    with RunningServer(tmp_path / "data", env=env) as server, server.client() as admin:
        folder = tmp_path / "model"

        def publish(answer: str, version: str) -> None:
            code = MODEL.replace("{answer}", answer)
            write_model(folder, "switch", code, entrypoint="model:Model", example='input = "x"')
            admin.publish(folder, version=version)

        publish("one", "1.0.0")
        admin.set_alias("admin/switch", "production", "1.0.0")
        statuses: Counter[int] = Counter()
        answers: dict[str, list[str]] = {"latest": [], "production": []}
        slowest = [0.0]
        stop = threading.Event()

        def caller(spec: str) -> None:
            with httpx.Client(headers={"Authorization": f"Simple {server.key}"}) as http:
                while not stop.is_set():
                    started = time.monotonic()
                    answer = http.post(f"{server.url}/v1/algo/admin/switch/{spec}", json="x")
                    slowest[0] = max(slowest[0], time.monotonic() - started)
                    statuses[answer.status_code] += 1
                    if answer.status_code == 200:
                        answers[spec].append(answer.json()["result"])

        threads = [
            threading.Thread(target=caller, args=(spec,))
            for spec in ("latest", "production")
            for _ in range(CALLERS // 2)
        ]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)
            publish("two", "2.0.0")  # traffic on "latest" moves once 2.0.0 is loaded
            time.sleep(1.0)
            admin.set_alias("admin/switch", "production", "2.0.0")
            time.sleep(1.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        assert set(statuses) == {200}, statuses
        for spec, seen in answers.items():
            assert seen[0] == "one" and seen[-1] == "two", (spec, Counter(seen))
            switched = seen.index("two")
            assert set(seen[switched:]) == {"two"}, spec  # no flapping back
        # nobody waited for the 2.5 s load of the new version
        assert slowest[0] < 2.5, f"a call took {slowest[0]:.2f} s"
