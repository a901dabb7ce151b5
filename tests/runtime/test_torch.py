"""The PyTorch runtime, in-process with the test environment's torch: TorchScript and a
state_dict answer as the network itself does, batches run once, and bad input is the caller's."""

from __future__ import annotations

from pathlib import Path

import pytest

from algora.runtime.loader import load_model
from algora.runtime.saved import InvalidRows

from ..helpers import saved_models

torch = pytest.importorskip("torch")

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [6.0, 2.2, 5.0, 1.5]]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runtime-torch")
    script = saved_models()
    script.make_torchscript(root / "ts")
    script.make_state_dict(root / "sd")
    return {"torchscript": root / "ts", "torch-state-dict": root / "sd"}


ENTRYPOINTS = {
    "torchscript": "saved:torchscript:model.pt",
    "torch-state-dict": "saved:torch-state-dict:model:Net:model.pt",
}


def _reference(folders: dict[str, Path], rows: list[list[float]]) -> list[list[float]]:
    scripted = torch.jit.load(str(folders["torchscript"] / "model.pt"))
    with torch.no_grad():
        return scripted(torch.tensor(rows, dtype=torch.float32)).tolist()  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", sorted(ENTRYPOINTS))
def test_answers_are_the_networks_own(folders: dict[str, Path], kind: str) -> None:
    model = load_model(folders[kind], ENTRYPOINTS[kind])
    expected = _reference(folders, ROWS)  # both folders hold the same trained network
    assert model.predict(ROWS) == expected
    assert model.predict([ROWS[1]]) == expected[1:2]
    assert "float32 tensor" in model.input_schema["description"]


def test_a_batch_of_calls_runs_the_network_once(folders: dict[str, Path]) -> None:
    model = load_model(folders["torchscript"], ENTRYPOINTS["torchscript"])
    assert model.predict_batch is not None
    expected = _reference(folders, ROWS)
    answers = model.predict_batch([ROWS[:2], [ROWS[2]]])
    assert answers == [expected[:2], expected[2:]]


def test_what_is_not_a_tensor_is_the_callers_error(folders: dict[str, Path]) -> None:
    model = load_model(folders["torchscript"], ENTRYPOINTS["torchscript"])
    with pytest.raises(InvalidRows, match="nested lists of numbers"):
        model.predict("five")
    with pytest.raises(InvalidRows, match="not a tensor of numbers of one shape"):
        model.predict([[1.0, 2.0], [3.0]])


def test_a_state_dict_loads_tensors_only(folders: dict[str, Path], tmp_path: Path) -> None:
    for name in ("model.py", "algora.toml"):
        (tmp_path / name).write_bytes((folders["torch-state-dict"] / name).read_bytes())
    torch.save({"hidden.weight": torch.nn.Linear(4, 8)}, tmp_path / "model.pt")  # a module
    with pytest.raises(Exception, match="Weights only load failed"):
        load_model(tmp_path, ENTRYPOINTS["torch-state-dict"])
    with pytest.raises(ValueError, match="defines no 'Missing'"):
        load_model(folders["torch-state-dict"], "saved:torch-state-dict:model:Missing:model.pt")
