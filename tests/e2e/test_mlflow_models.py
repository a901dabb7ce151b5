"""An MLflow model folder, as ``mlflow.sklearn.save_model`` wrote it, published to a running
server with nothing added: its own requirements become the version's environment, and its
answers over the native client and Algorithmia's API are the pyfunc model's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from algora.errors import InvalidInput
from algora.testing import RunningServer

from ..helpers import infer_v2, saved_models

pytestmark = pytest.mark.slow
mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [6.0, 2.2, 5.0, 1.5]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    root = tmp_path_factory.mktemp("mlflow-models")
    saved_models().make_mlflow(root / "iris-mlflow")
    with RunningServer(root / "data") as running:
        with running.client() as client:
            client.publish(root / "iris-mlflow")
        yield running, root / "iris-mlflow"


def test_an_mlflow_model_deploys_as_it_is(server: tuple[RunningServer, Path]) -> None:
    import pandas as pd

    running, folder = server
    script = saved_models()
    frame = pd.DataFrame(ROWS, columns=script.FEATURES)
    expected = mlflow_pyfunc.load_model(str(folder)).predict(frame).tolist()
    own = (folder / "requirements.txt").read_text().split()
    with running.client() as client:
        (version,) = client.versions("admin/iris-mlflow")
        assert version["status"] == "ready"
        assert version["entrypoint"] == "saved:mlflow:MLmodel"
        assert version["lineage"]["saved_model"]["safe"] is False
        log = client.build_log("admin/iris-mlflow", version["version"])["text"]
        assert all(requirement in log for requirement in own), log
        model = client.model("admin/iris-mlflow")
        assert model.call(ROWS) == {"predictions": expected}
        v2 = infer_v2(running, "admin/iris-mlflow", ROWS)  # the Open Inference Protocol
        assert v2["predictions"].tolist() == expected
        columns = {name: [row[i] for row in ROWS] for i, name in enumerate(script.FEATURES)}
        assert model.call(columns) == {"predictions": expected}
        with pytest.raises(InvalidInput, match="the model's 4 columns"):
            model.call([[1.0, 2.0]])
    response = httpx.post(
        f"{running.url}/v1/algo/admin/iris-mlflow",
        json=ROWS[1],
        headers={"Authorization": f"Simple {running.key}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"prediction": expected[1]}
