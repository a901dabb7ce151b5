"""The runtime of saved models, in-process with the test environment's own frameworks: rows
in, the framework's own predictions out, and a batch of calls run as one stacked array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from algora.runtime.loader import load_model
from algora.runtime.saved import InvalidRows

from ..helpers import saved_models

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [6.0, 2.2, 5.0, 1.5]]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("runtime-saved")
    script = saved_models()
    files = {
        "joblib": script.make_sklearn(root / "j"),
        "pickle": script.make_sklearn(root / "p", pickled=True),
        "skops": script.make_sklearn(root / "s", skops=True),
        "xgboost-json": script.make_xgboost(root / "x"),
        "xgboost-ubj": script.make_xgboost(root / "u", ubj=True),
        "lightgbm": script.make_lightgbm(root / "l"),
    }
    return root, {kind: path.relative_to(root).as_posix() for kind, path in files.items()}


def _reference(kind: str, path: Path) -> tuple[list[int], np.ndarray]:
    if kind in ("joblib", "pickle", "skops"):
        import joblib
        import skops.io

        model = skops.io.load(path) if kind == "skops" else joblib.load(path)
        return model.predict(np.array(ROWS)).tolist(), model.predict_proba(np.array(ROWS))
    if kind.startswith("xgboost"):
        import xgboost

        classifier = xgboost.XGBClassifier()
        classifier.load_model(path)
        rows = np.array(ROWS, dtype=np.float32)
        return classifier.predict(rows).tolist(), classifier.predict_proba(rows)
    import lightgbm

    probabilities = lightgbm.Booster(model_file=str(path)).predict(np.array(ROWS))
    return np.argmax(probabilities, axis=1).tolist(), probabilities


@pytest.mark.parametrize(
    "kind", ["joblib", "pickle", "skops", "xgboost-json", "xgboost-ubj", "lightgbm"]
)
def test_rows_get_the_frameworks_own_predictions(
    made: tuple[Path, dict[str, str]], kind: str
) -> None:
    root, files = made
    model = load_model(root, f"saved:{kind}:{files[kind]}")
    predicted, probabilities = _reference(kind, root / files[kind])
    answer = model.predict(ROWS)
    assert answer["predictions"] == predicted
    assert np.allclose(answer["probabilities"], probabilities)
    assert answer["classes"] == [0, 1, 2]
    one = model.predict(ROWS[1])
    assert one["prediction"] == predicted[1]
    assert np.allclose(one["probabilities"], probabilities[1])
    row = model.input_schema["anyOf"][1]
    assert (row["minItems"], row["maxItems"]) == (4, 4)
    assert model.predict_batch is not None
    batch = model.predict_batch([ROWS[:2], ROWS[2]])
    assert batch[0]["predictions"] == predicted[:2]
    assert batch[1]["prediction"] == predicted[2]


def test_named_features_where_the_model_knows_them(made: tuple[Path, dict[str, str]]) -> None:
    root, files = made
    script = saved_models()
    for kind in ("xgboost-json", "lightgbm"):
        model = load_model(root, f"saved:{kind}:{files[kind]}")
        named = dict(zip(script.FEATURES, ROWS[1], strict=True))
        assert model.predict(named)["prediction"] == model.predict(ROWS[1])["prediction"]
        assert model.predict([named, named])["predictions"] == [2, 2]
        with pytest.raises(InvalidRows, match="missing"):
            model.predict({"sepal_length": 1.0})
    sklearn = load_model(root, f"saved:joblib:{files['joblib']}")
    with pytest.raises(InvalidRows, match="does not know its features' names"):
        sklearn.predict({"sepal_length": 1.0})


def test_a_batch_is_stacked_into_one_array(made: tuple[Path, dict[str, str]]) -> None:
    root, files = made
    model = load_model(root, f"saved:joblib:{files['joblib']}")
    estimator = model.predict.__self__.model  # the pipeline the runtime loaded
    seen: list[int] = []
    original = estimator.predict

    def counting(rows: np.ndarray) -> np.ndarray:
        seen.append(len(rows))
        return original(rows)

    estimator.predict = counting
    assert model.predict_batch is not None
    model.predict_batch([ROWS[:2], ROWS[2], [ROWS[0]]])
    assert seen == [4]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([[1.0, 2.0]], "row 0 has 2 features; the model takes 4"),
        ("text", "send a list of feature rows"),
        ([], "send a list of feature rows"),
        ([[1.0, 2.0, 3.0, 4.0], {"a": 1}], "rows must all be lists"),
    ],
)
def test_what_is_not_rows_is_the_callers_error(
    made: tuple[Path, dict[str, str]], value: object, message: str
) -> None:
    root, files = made
    model = load_model(root, f"saved:pickle:{files['pickle']}")
    with pytest.raises(InvalidRows, match=message):
        model.predict(value)


def test_an_unknown_format_or_a_file_outside_does_not_load(
    made: tuple[Path, dict[str, str]],
) -> None:
    root, files = made
    with pytest.raises(ValueError, match="not one this runtime serves"):
        load_model(root, f"saved:keras:{files['joblib']}")
    with pytest.raises(ValueError, match="not a file inside the model folder"):
        load_model(root / "j", "saved:joblib:../p/model.pkl")


def test_a_skops_file_with_untrusted_types_does_not_load(tmp_path: Path) -> None:
    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    def double(rows: np.ndarray) -> np.ndarray:
        return rows * 2

    skops.io.dump(FunctionTransformer(double).fit(np.array(ROWS)), tmp_path / "model.skops")
    with pytest.raises(ValueError, match="types skops does not trust"):
        load_model(tmp_path, "saved:skops:model.skops")


@pytest.mark.parametrize("kind", ["xgboost-json", "lightgbm"])
def test_binary_classifiers_and_regressors(tmp_path: Path, kind: str) -> None:
    import lightgbm
    import xgboost

    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 3))
    labels = (x[:, 0] + x[:, 1] > 0).astype(int)
    target = x @ np.array([1.0, -2.0, 0.5])
    if kind == "lightgbm":
        classifier = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(x, labels)
        regressor = lightgbm.LGBMRegressor(n_estimators=10, verbose=-1).fit(x, target)
        classifier.booster_.save_model(tmp_path / "classifier")
        regressor.booster_.save_model(tmp_path / "regressor")
    else:
        classifier = xgboost.XGBClassifier(n_estimators=10).fit(x, labels)
        regressor = xgboost.XGBRegressor(n_estimators=10).fit(x, target)
        classifier.save_model(tmp_path / "classifier.json")
        regressor.save_model(tmp_path / "regressor.json")
        (tmp_path / "classifier.json").rename(tmp_path / "classifier")
        (tmp_path / "regressor.json").rename(tmp_path / "regressor")
    rows = x[:5].astype(np.float32 if kind != "lightgbm" else np.float64)
    served = load_model(tmp_path, f"saved:{kind}:classifier")
    answer = served.predict(rows.tolist())
    assert answer["predictions"] == classifier.predict(rows).tolist()
    assert np.allclose(answer["probabilities"], classifier.predict_proba(rows))
    assert answer["classes"] == [0, 1]
    served = load_model(tmp_path, f"saved:{kind}:regressor")
    answer = served.predict(rows.tolist())
    assert np.allclose(answer["predictions"], regressor.predict(rows), rtol=1e-5)
    assert "probabilities" not in answer and "classes" not in answer


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_models().make_onnx(tmp_path_factory.mktemp("onnx"))


def test_onnx_rows_one_row_and_named_inputs(onnx_model: Path) -> None:
    expected = saved_models().onnx_reference(np.array(ROWS))
    model = load_model(onnx_model.parent, f"saved:onnx:{onnx_model.name}")
    assert np.allclose(model.predict(ROWS)["probabilities"], expected, atol=1e-6)
    assert np.allclose(model.predict(ROWS[1])["probabilities"], expected[1], atol=1e-6)
    named = model.predict({"features": ROWS[:2]})
    assert np.allclose(named["probabilities"], expected[:2], atol=1e-6)
    assert model.predict_batch is not None
    batch = model.predict_batch([ROWS[:2], ROWS[2]])
    assert np.allclose(batch[0]["probabilities"], expected[:2], atol=1e-6)
    assert np.allclose(batch[1]["probabilities"], expected[2], atol=1e-6)
    with pytest.raises(InvalidRows, match="the model's inputs are"):
        model.predict({"x": ROWS})
    with pytest.raises(InvalidRows, match="rank 2"):
        model.predict([[ROWS]])


def test_onnx_schema_names_datatypes_and_shapes(onnx_model: Path) -> None:
    model = load_model(onnx_model.parent, f"saved:onnx:{onnx_model.name}")
    tensor, named, row = model.input_schema["anyOf"]
    assert tensor["items"]["items"] == {"type": "number"}
    assert (tensor["items"]["minItems"], tensor["items"]["maxItems"]) == (4, 4)
    assert tensor["description"] == "features: float32 tensor of shape [?, 4]"
    assert named["required"] == ["features"]
    assert row["maxItems"] == 4 and row["description"].endswith("one row")
    output = model.output_schema["properties"]["probabilities"]
    assert output["description"] == "probabilities: float32 tensor of shape [?, 3]"
