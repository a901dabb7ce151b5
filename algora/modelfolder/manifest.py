"""``algora.toml``: the manifest every model folder carries."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from algora.errors import InvalidManifest
from algora.modelfolder.pipeline import PipelineSpec

__all__ = [
    "MANIFEST_NAME",
    "Manifest",
    "TensorSection",
    "load_manifest",
    "parse_manifest",
    "validate_manifest",
]

MANIFEST_NAME = "algora.toml"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")  # \Z: "$" allows a final newline
_ENTRYPOINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


TensorDatatype = Literal[
    "BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip


class TensorSection(_Strict):
    """One declared input or output tensor (``[[model.inputs]]``, ``[[model.outputs]]``): the
    Open Inference Protocol's metadata, and how the worker hands tensors to the model."""

    name: str = Field(min_length=1, max_length=256)
    datatype: TensorDatatype
    shape: list[int] = Field(default_factory=lambda: [-1])
    """Dimensions; -1 for one of variable size."""

    @field_validator("shape")
    @classmethod
    def _shape(cls, value: list[int]) -> list[int]:
        if any(dim < -1 for dim in value):
            raise ValueError("dimensions must be -1 (variable) or at least 0")
        return value


class ModelSection(_Strict):
    name: str
    entrypoint: str = "model:apply"
    """Python: ``module:attr``. Node: ``file.js:attr`` (or ``file:attr``), a file in the model
    folder and one of its exports."""
    runtime: Literal["python", "node", "pipeline"] = "python"
    """Which worker serves the model: Python, or Node.js (dependencies from ``package.json``
    installed with npm; docs/models.md); none for a pipeline (its steps are other models:
    docs/pipelines.md)."""
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    inputs: list[TensorSection] = Field(default_factory=list)
    """Declared input tensors; none: callers' tensors are passed on as they are named."""
    outputs: list[TensorSection] = Field(default_factory=list)
    """Declared output tensors; they name the results the model returns unnamed."""

    @field_validator("inputs", "outputs")
    @classmethod
    def _unique(cls, value: list[TensorSection]) -> list[TensorSection]:
        names = [tensor.name for tensor in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"tensor names must be unique: {', '.join(repeated)} repeated")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(
                "must be 1-64 lowercase letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: str) -> str:
        if not _ENTRYPOINT.match(value):
            raise ValueError("must look like 'module:attribute', for example 'model:apply'")
        return value


class EnvironmentSection(_Strict):
    requirements: str = "requirements.txt"


class BuildSection(_Strict):
    command: list[str] = Field(default_factory=list)


class ExampleSection(_Strict):
    input: Any = None
    text: str | None = None

    def as_call(self) -> tuple[str, bytes] | None:
        """The example as (content type, payload), or None when there is none."""
        if self.text is not None:
            return ("text", self.text.encode())
        if self.input is not None:
            return ("json", json.dumps(self.input).encode())
        return None


class ServingSection(_Strict):
    timeout: float = Field(default=60.0, gt=0)
    replicas: int = Field(default=1, ge=1, le=64)
    """Replicas started when the version is first called."""
    min_replicas: int | None = Field(default=None, ge=0, le=64)
    """The fewest replicas kept (0: none after ``scale_down_after_s`` idle); unset: the
    platform's idle timeout stops the version's replicas."""
    max_replicas: int | None = Field(default=None, ge=1, le=64)
    """The most replicas the autoscaler may run; unset: ``replicas``."""
    target_in_flight: float = Field(default=1.0, gt=0, le=1000)
    """Calls per replica (waiting or running) above which another replica starts."""
    scale_down_after_s: float = Field(default=30.0, gt=0, le=86400)
    """Idle seconds before a replica above the floor stops."""
    network: bool = False
    """Grant the workers network access (without it they reach only their own loopback)."""
    memory_mb: int | None = Field(default=None, ge=32)
    """Memory limit per worker in MiB; None: the platform's ``worker_memory_mb``."""
    cpu_seconds: float | None = Field(default=None, gt=0)
    """CPU seconds one call may use; None: the platform's ``worker_cpu_seconds``."""
    max_batch_size: int | None = Field(default=None, ge=1, le=1024)
    """Most calls one dispatch carries: unset, up to 32 for a model with ``predict_batch`` and
    one for the others; set above one, a model without ``predict_batch`` gets batches too,
    which its worker answers by calling ``predict`` for each."""
    max_wait_ms: float = Field(default=0.0, ge=0, le=1000)
    """How long a batch may wait after its first call for more to fill it."""
    target_p99_ms: float | None = Field(default=None, gt=0, le=600_000)
    """A latency target: the batch size then adapts (up to ``max_batch_size``) to keep it."""
    check_inputs: bool = True
    """Refuse (400 ``invalid_input``) a JSON or text input that the version's input schema
    does not take, before the model runs; false: the model sees whatever it is sent."""

    @model_validator(mode="after")
    def _replica_bounds(self) -> ServingSection:
        low = self.min_replicas if self.min_replicas is not None else 0
        high = self.max_replicas if self.max_replicas is not None else self.replicas
        if not low <= self.replicas <= high:
            raise ValueError("min_replicas <= replicas <= max_replicas must hold")
        return self


class MonitoringSection(_Strict):
    feedback: bool = False
    """Record what the version answers each call (its JSON output, up to 4 KiB), so that ground
    truth sent later (``POST /api/v1/feedback``) scores it and an alias's versions can be
    compared; off by default."""
    drift: bool = False
    """Profile the version's inputs and outputs and score their drift (docs/statistics.md)."""
    drift_reference: str | None = Field(default=None, min_length=1, max_length=256)
    """The reference: a JSON-lines file in the model folder, one input (or ``{"input": ...,
    "output": ...}``) a line."""
    drift_reference_calls: int | None = Field(default=None, ge=10, le=100_000)
    """Or the reference: the version's first calls, this many."""
    drift_warn: float = Field(default=0.1, gt=0, le=10)
    """The population stability index from which a feature's drift is ``warn``."""
    drift_alert: float = Field(default=0.25, gt=0, le=10)
    """... and ``alert``."""

    @model_validator(mode="after")
    def _drift(self) -> MonitoringSection:
        references = (self.drift_reference is not None) + (self.drift_reference_calls is not None)
        if self.drift and references != 1:
            raise ValueError(
                "drift = true needs one reference: drift_reference (a JSON-lines file in the "
                "model folder) or drift_reference_calls (the first N calls)"
            )
        if not self.drift and references:
            raise ValueError("drift_reference and drift_reference_calls need drift = true")
        if self.drift_warn >= self.drift_alert:
            raise ValueError("drift_warn must be below drift_alert")
        return self


class SavedSection(_Strict):
    """A saved model served without code (:mod:`algora.modelfolder.saved`)."""

    file: str
    """The model file, relative to the model folder."""
    format: str | None = None
    """Its format (:data:`algora.modelfolder.formats.FORMATS`): detected from the file's
    content at publish, which must agree with a format written here."""
    model_class: str | None = Field(
        default=None, validation_alias=AliasChoices("class", "model_class")
    )
    """For a PyTorch ``state_dict``: the model's class in the folder's code, ``module:Class``
    (written ``class = "model:Net"`` in ``algora.toml``)."""

    @field_validator("model_class")
    @classmethod
    def _model_class(cls, value: str | None) -> str | None:
        if value is not None and not _ENTRYPOINT.match(value):
            raise ValueError("must look like 'module:Class', for example 'model:Net'")
        return value


class Manifest(_Strict):
    model: ModelSection
    environment: EnvironmentSection = Field(default_factory=EnvironmentSection)
    build: BuildSection = Field(default_factory=BuildSection)
    example: ExampleSection = Field(default_factory=ExampleSection)
    serving: ServingSection = Field(default_factory=ServingSection)
    monitoring: MonitoringSection = Field(default_factory=MonitoringSection)
    saved: SavedSection | None = None
    pipeline: PipelineSpec | None = None
    """A pipeline's steps (``pipeline.toml``: :mod:`algora.modelfolder.pipeline`)."""

    @model_validator(mode="after")
    def _saved_is_python(self) -> Manifest:
        if self.saved is not None and self.model.runtime != "python":
            raise ValueError("a saved model is served by the Python runtime: remove runtime")
        if (self.pipeline is not None) != (self.model.runtime == "pipeline"):
            raise ValueError("a pipeline is declared in pipeline.toml, with no code beside it")
        return self

    @property
    def worker_entrypoint(self) -> str:
        """What the worker loads: the entrypoint, or ``saved:FORMAT:FILE`` for a saved model
        (``algora.runtime.saved``), ``saved:FORMAT:MODULE:CLASS:FILE`` when it names a class."""
        if self.saved is not None and self.saved.format is not None:
            if self.saved.model_class is not None:  # FILE stays last: it may hold a colon
                return f"saved:{self.saved.format}:{self.saved.model_class}:{self.saved.file}"
            return f"saved:{self.saved.format}:{self.saved.file}"
        return self.model.entrypoint


def parse_manifest(text: str) -> Manifest:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidManifest(f"{MANIFEST_NAME} is not valid TOML: {exc}") from None
    return validate_manifest(data)


def validate_manifest(data: dict[str, Any], what: str = MANIFEST_NAME) -> Manifest:
    """``data`` as a manifest; else :class:`InvalidManifest` saying "``what`` is invalid" and
    naming every problem (also as ``details["problems"]``)."""
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise InvalidManifest(
            f"{what} is invalid: " + "; ".join(problems), details={"problems": problems}
        ) from None


def load_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise InvalidManifest(
            f"no {MANIFEST_NAME} in the model folder: run 'algora init NAME' to create one"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidManifest(f"{MANIFEST_NAME} is not UTF-8 text: save it as UTF-8") from None
    return parse_manifest(text)
