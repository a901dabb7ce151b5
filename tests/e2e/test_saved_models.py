"""Saved models with no code, published as their frameworks saved them (a folder or a single
file, by the SDK and the CLI) to a running server, and called over the native client, the
Algorithmia API and Algorithmia's own client: their answers are the frameworks' own.

Environments stay few: the joblib and skops models share one (their requirements.txt pins the
test's own scikit-learn and skops), the XGBoost models another; the pickle, LightGBM and ONNX
get the formats' own requirements (the pickle's scikit-learn pinned to the version it records).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import Algorithmia
import httpx
import numpy as np
import pytest

from algora.errors import InvalidInput, UnsupportedModelFormat
from algora.modelfolder.formats import FORMATS
from algora.testing import RunningServer

from ..helpers import algora, infer_v2, saved_models

pytestmark = pytest.mark.slow

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [6.0, 2.2, 5.0, 1.5], [5.9, 3.0, 4.2, 1.5]]


class Published:
    def __init__(self, server: RunningServer, root: Path) -> None:
        self.server = server
        self.root = root
        self.paths: dict[str, Path] = {}

    def version(self, name: str) -> dict[str, Any]:
        with self.server.client() as client:
            (version,) = client.versions(f"admin/{name}")
            return version

    def call(self, name: str, data: Any) -> Any:
        with self.server.client() as client:
            return client.model(f"admin/{name}").call(data)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    import sklearn
    import skops

    script = saved_models()
    root = tmp_path_factory.mktemp("saved-models")
    pinned = f"scikit-learn=={sklearn.__version__}\nskops=={skops.__version__}\n"
    with RunningServer(root / "data") as server:
        world = Published(server, root)
        world.paths["iris-joblib"] = script.make_sklearn(root / "iris-joblib")
        (root / "iris-joblib" / "requirements.txt").write_text(pinned)
        # No requirements.txt: the environment pins the scikit-learn the pickle records.
        world.paths["iris-pickle"] = script.make_sklearn(root / "iris-pickle", pickled=True)
        world.paths["iris-skops"] = script.make_sklearn(root / "iris-skops", skops=True)
        (root / "iris-skops" / "requirements.txt").write_text(pinned)
        made = script.make_xgboost(root / "xgb")
        world.paths["iris-xgb"] = made.rename(root / "iris-xgb.json")
        made = script.make_xgboost(root / "ubj", ubj=True)
        world.paths["iris-ubj"] = made.rename(root / "iris-ubj.ubj")
        world.paths["iris-lightgbm"] = script.make_lightgbm(root / "iris-lightgbm")
        world.paths["tiny-onnx"] = script.make_onnx(root / "tiny-onnx")
        with server.client() as client:  # the SDK: a folder, and a single file
            client.publish(root / "iris-joblib")
            client.publish(world.paths["iris-ubj"])
        for path in (root / "iris-pickle", root / "iris-skops", world.paths["iris-xgb"],
                     root / "iris-lightgbm", root / "tiny-onnx"):  # fmt: skip
            done = algora("publish", str(path), "--quiet", server=server)
            assert done.returncode == 0, done.stdout + done.stderr + server.log()
        yield world


def _sklearn_reference(path: Path) -> tuple[list[int], np.ndarray]:
    import joblib
    import skops.io

    model = skops.io.load(path) if path.suffix == ".skops" else joblib.load(path)
    return model.predict(np.array(ROWS)).tolist(), model.predict_proba(np.array(ROWS))


def _xgboost_reference(path: Path) -> tuple[list[int], np.ndarray]:
    import xgboost

    classifier = xgboost.XGBClassifier()
    classifier.load_model(path)
    rows = np.array(ROWS, dtype=np.float32)
    return classifier.predict(rows).tolist(), classifier.predict_proba(rows)


def _lightgbm_reference(path: Path) -> tuple[list[int], np.ndarray]:
    import lightgbm

    probabilities = lightgbm.Booster(model_file=str(path)).predict(np.array(ROWS))
    return np.argmax(probabilities, axis=1).tolist(), probabilities


REFERENCES = {
    "iris-joblib": ("joblib", _sklearn_reference),
    "iris-pickle": ("pickle", _sklearn_reference),
    "iris-skops": ("skops", _sklearn_reference),
    "iris-xgb": ("xgboost-json", _xgboost_reference),
    "iris-ubj": ("xgboost-ubj", _xgboost_reference),
    "iris-lightgbm": ("lightgbm", _lightgbm_reference),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_tabular_models_answer_as_their_frameworks_do(published: Published, name: str) -> None:
    model_format, reference = REFERENCES[name]
    predicted, probabilities = reference(published.paths[name])
    version = published.version(name)
    assert version["status"] == "ready"
    assert version["lineage"]["saved_model"] == {
        "file": published.paths[name].name,
        "format": model_format,
        "safe": FORMATS[model_format].safe,
    }
    assert version["entrypoint"] == f"saved:{model_format}:{published.paths[name].name}"
    answer = published.call(name, ROWS)  # the native client
    assert answer["predictions"] == predicted
    assert np.allclose(answer["probabilities"], probabilities)
    algorithmia = Algorithmia.client(published.server.key, published.server.url)
    one = algorithmia.algo(f"admin/{name}").pipe(ROWS[1]).result
    assert one["prediction"] == predicted[1]
    assert np.allclose(one["probabilities"], probabilities[1])
    v2 = infer_v2(published.server, f"admin/{name}", ROWS)  # the Open Inference Protocol
    assert v2["predictions"].tolist() == predicted
    assert np.allclose(v2["probabilities"], probabilities)
    with published.server.client() as client:
        schema = client.get_json(
            f"/api/v1/models/admin/{name}/versions/{version['version']}/schema"
        )
    rows = schema["input"]["anyOf"][0]
    assert rows["items"]["minItems"] == rows["items"]["maxItems"] == 4


def test_a_pickles_environment_pins_the_scikit_learn_it_records(published: Published) -> None:
    import sklearn

    with published.server.client() as client:
        version = published.version("iris-pickle")["version"]
        log = client.build_log("admin/iris-pickle", version)["text"]
    assert f"the pickle records scikit-learn {sklearn.__version__}" in log
    assert f"scikit-learn=={sklearn.__version__}" in log


def test_concurrent_calls_are_answered_each_with_its_own_rows(published: Published) -> None:
    predicted, _ = _sklearn_reference(published.paths["iris-joblib"])
    url = f"{published.server.url}/v1/algo/admin/iris-joblib"
    headers = {"Authorization": f"Simple {published.server.key}"}

    def call(index: int) -> Any:
        body = ROWS[index % 4] if index % 2 else [ROWS[index % 4], ROWS[(index + 1) % 4]]
        response = httpx.post(url, json=body, headers=headers, timeout=60)
        assert response.status_code == 200, response.text
        return index, response.json()["result"]

    with ThreadPoolExecutor(8) as pool:
        for index, result in pool.map(call, range(24)):
            if index % 2:
                assert result["prediction"] == predicted[index % 4]
            else:
                assert result["predictions"] == [predicted[index % 4], predicted[(index + 1) % 4]]


def test_named_features_and_bad_rows(published: Published) -> None:
    script = saved_models()
    named = dict(zip(script.FEATURES, ROWS[1], strict=True))
    assert published.call("iris-lightgbm", named)["prediction"] == 2
    with pytest.raises(InvalidInput, match=r"input\[0\] must have at least 4 item\(s\)"):
        published.call("iris-pickle", [[1.0, 2.0, 3.0]])
    response = httpx.post(
        f"{published.server.url}/v1/algo/admin/iris-xgb",
        json={"petals": 3},
        headers={"Authorization": f"Simple {published.server.key}"},
    )
    assert response.status_code == 400, response.text


def test_an_onnx_graph_answers_its_outputs_by_name(published: Published) -> None:
    script = saved_models()
    expected = script.onnx_reference(np.array(ROWS))
    version = published.version("tiny-onnx")
    assert version["lineage"]["saved_model"]["safe"] is True
    answer = published.call("tiny-onnx", ROWS)
    assert np.allclose(answer["probabilities"], expected, atol=1e-6)
    one = published.call("tiny-onnx", {"features": [ROWS[2]]})
    assert np.allclose(one["probabilities"], expected[2:3], atol=1e-6)
    v2 = infer_v2(published.server, "admin/tiny-onnx", ROWS)
    assert np.allclose(v2["probabilities"], expected, atol=1e-6)
    with published.server.client() as client:
        schema = client.get_json(
            f"/api/v1/models/admin/tiny-onnx/versions/{version['version']}/schema"
        )
    output = schema["output"]["properties"]["probabilities"]
    assert output["items"]["maxItems"] == 3
    assert "float32 tensor of shape [?, 3]" in output["description"]


def test_a_file_in_no_known_format_is_refused_listing_the_formats(
    published: Published, tmp_path: Path
) -> None:
    junk = tmp_path / "weights.bin"
    junk.write_bytes(b"\x00\x01not a model" * 100)
    with published.server.client() as client, pytest.raises(UnsupportedModelFormat):
        client.publish(junk)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(junk, arcname="weights.bin")
    response = httpx.post(
        f"{published.server.url}/api/v1/models/admin/weights/versions",
        content=buffer.getvalue(),
        headers={
            "Authorization": f"Simple {published.server.key}",
            "Content-Type": "application/gzip",
        },
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unsupported_model_format"
    assert error["details"]["formats"] == list(FORMATS)
    assert "ONNX" in error["message"] and "LightGBM" in error["message"]
