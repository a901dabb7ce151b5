"""The hand-written baseline: the iris model in a minimal FastAPI app, one uvicorn worker.

    python benchmarks/fastapi_baseline.py --model-dir DIR --port PORT

DIR holds model.py and model.joblib (examples/iris after `python train.py`). The model is
loaded in-process; `POST /predict` takes the JSON input and returns the prediction as JSON.
This is what a data scientist would write by hand, kept lean on purpose (async handler,
predict inline, no access log) so that it is a demanding baseline for Algora.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def create_app(model_dir: Path, class_name: str = "IrisClassifier") -> FastAPI:
    os.chdir(model_dir)
    sys.path.insert(0, str(model_dir))
    import model  # model_dir is on sys.path now

    classifier = getattr(model, class_name)()
    classifier.load()
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        features = await request.json()
        try:
            return JSONResponse(classifier.predict(features))
        except (TypeError, ValueError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--class", dest="class_name", default="IrisClassifier")
    args = parser.parse_args()
    app = create_app(args.model_dir.resolve(), args.class_name)
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, workers=1, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
