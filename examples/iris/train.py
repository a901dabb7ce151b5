"""Train the iris classifier and write ``model.joblib`` (and ``metrics.json``).

Algora runs this at publish time (``[build]`` in algora.toml) inside the version's own
environment, with this folder as the working directory, so the trained artifact is built
with exactly the scikit-learn that serves it. Run it yourself with ``python train.py``.

The iris data set ships with scikit-learn: nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
import sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
SEED = 0


def make_model() -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def train(out_dir: str | Path = HERE) -> dict[str, float]:
    """Fit on the iris data, write ``model.joblib`` and ``metrics.json`` to out_dir."""
    out_dir = Path(out_dir)
    data = load_iris()
    x, y = data.data, data.target
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=SEED, stratify=y
    )
    held_out = make_model().fit(x_train, y_train)
    metrics = {
        "test_accuracy": float(held_out.score(x_test, y_test)),
        "n_train": len(y_train),
        "n_test": len(y_test),
    }

    # The served model sees all 150 samples; the held-out score above describes the recipe.
    model = make_model().fit(x, y)
    artifact = {
        "model": model,
        "classes": [str(name) for name in data.target_names],
        "features": list(FEATURES),
        "sklearn_version": sklearn.__version__,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(artifact, out_dir / "model.joblib")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else HERE
    result = train(target)
    print(f"wrote {Path(target) / 'model.joblib'}: {json.dumps(result)}")
