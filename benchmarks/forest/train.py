"""Train the heavy benchmark model (``model.joblib``): 200 trees, 32 synthetic features."""

from __future__ import annotations

from pathlib import Path

import joblib
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

HERE = Path(__file__).resolve().parent


def main() -> None:
    x, y = make_classification(n_samples=2000, n_features=32, n_informative=12, random_state=0)
    model = RandomForestClassifier(n_estimators=200, max_depth=12, random_state=0, n_jobs=1)
    model.fit(x, y)
    joblib.dump(model, HERE / "model.joblib")
    print("trained", model)


if __name__ == "__main__":
    main()
