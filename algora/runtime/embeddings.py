"""Sentence embeddings served with no code: a sentence-transformers model folder, its
weights in safetensors, loaded with ``sentence_transformers.SentenceTransformer``.

The input is a string or a list of strings; the answer is the embedding (a list of floats) or
a list of them. Calls batched together are encoded in one pass. Nothing is downloaded: the
Hugging Face libraries run offline, with the folder's own files only, and no remote code.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from .saved import InvalidRows, _Served

__all__ = ["load_sentence_transformers"]


def load_sentence_transformers(modules_json: str) -> _Served:
    return _Embeddings(os.path.dirname(modules_json))  # noqa: PTH120 - stdlib-only runtime


class _Embeddings(_Served):
    def __init__(self, folder: str) -> None:
        # Read by huggingface_hub when it is imported: set before, in this worker process only.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        library = importlib.import_module("sentence_transformers")
        self.model = library.SentenceTransformer(
            folder, device="cpu", local_files_only=True, trust_remote_code=False
        )
        dimension = getattr(self.model, "get_embedding_dimension", None) or getattr(
            self.model, "get_sentence_embedding_dimension", None
        )  # renamed in sentence-transformers 5
        self.dimension = dimension() if callable(dimension) else None

    def split(self, value: Any) -> tuple[list[str], bool]:
        if isinstance(value, str):
            return [value], True
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value, False
        raise InvalidRows("send a string, or a list of strings, to embed")

    def run(self, rows: list[Any]) -> dict[str, Any]:
        # float32 as the model makes them: tensors go out as they are, JSON as numbers.
        embeddings = self.model.encode(rows, convert_to_numpy=True, show_progress_bar=False)
        return {"embeddings": embeddings}

    def answer(self, outputs: dict[str, Any], start: int, end: int, single: bool) -> Any:
        return outputs["embeddings"][start] if single else outputs["embeddings"][start:end]

    def input_schema(self) -> dict[str, Any]:
        text = {"type": "string"}
        return {"anyOf": [text, {"type": "array", "items": text, "minItems": 1}]}

    def output_schema(self) -> dict[str, Any]:
        vector: dict[str, Any] = {"type": "array", "items": {"type": "number"}, "x-tensor": "FP32"}
        if isinstance(self.dimension, int):
            vector.update(minItems=self.dimension, maxItems=self.dimension)
        vector["description"] = f"an embedding of {self.dimension or 'fixed'} dimensions"
        return {"anyOf": [vector, {"type": "array", "items": vector}]}
