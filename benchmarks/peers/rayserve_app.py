"""The benchmark model as a Ray Serve deployment, the way Ray Serve documents one.

    python rayserve_app.py --model-dir DIR --class IrisClassifier --port PORT [--batch]

A local Ray instance (one CPU, no dashboard), one replica, HTTP on 127.0.0.1:PORT at
``/predict``. With ``--batch``, ``@serve.batch`` gathers concurrent requests into one call of the
model's ``predict_batch``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from typing import Any

import ray
from ray import serve
from starlette.requests import Request


@serve.deployment(num_replicas=1, max_ongoing_requests=256)
class Model:
    def __init__(self, model_dir: str, class_name: str, batch: bool) -> None:
        os.chdir(model_dir)
        sys.path.insert(0, model_dir)
        self.model = getattr(importlib.import_module("model"), class_name)()
        self.model.load()
        self.batch = batch

    async def __call__(self, request: Request) -> Any:
        body = await request.json()
        if self.batch:
            return await self.batched(body)
        return self.model.predict(body)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def batched(self, inputs: list[Any]) -> list[Any]:
        return list(self.model.predict_batch(inputs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--class", dest="class_name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--batch", action="store_true")
    args = parser.parse_args()
    ray.init(num_cpus=1, include_dashboard=False, logging_level="warning")
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    app = Model.bind(args.model_dir, args.class_name, args.batch)  # type: ignore[attr-defined]
    serve.run(app, route_prefix="/predict")
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
