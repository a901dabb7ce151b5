"""The hand-written baseline for the embedding benchmark: all-MiniLM-L6-v2 in a minimal FastAPI
app, the way one would write it by hand (one uvicorn worker, ``POST /embed`` with
``{"text": "..."}`` answering ``{"embedding": [...]}``; encoding runs in FastAPI's thread pool).

    python benchmarks/embeddings_fastapi.py --model-dir DIR --port 8001
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from fastapi import FastAPI
from sentence_transformers import SentenceTransformer


def build(model_dir: str) -> FastAPI:
    model = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/embed")
    def embed(body: dict[str, Any]) -> dict[str, Any]:
        vector = model.encode(body["text"], convert_to_numpy=True, show_progress_bar=False)
        return {"embedding": vector.tolist()}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build(args.model_dir), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)  # fmt: skip


if __name__ == "__main__":
    main()
