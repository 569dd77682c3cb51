"""The model card: everything needed to use a surrogate besides its weights (DESIGN.md).

``<name>.card.json`` sits next to ``<name>.onnx``. It declares the physical
inputs (order, units, domain, linear / log / log_offset / log_neg scale, log_offset's offset),
the outputs (order, units, physical range), the affine scalings, the architecture,
the ONNX file and its sha256, the data it was trained on and the test metrics.

``kind`` is ``shallow_mlp`` / ``deep_mlp`` (element MLPs, seed 002), ``module_mlp``
(an MLP of a whole module, inputs incl. ``gamma``) or ``neural_ode`` (seed 001; its
weights are a torch state dict named in ``weights``, ``onnx`` may be null).
"""
from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from nanosep.surrogates.scaling import Affine, InputScale
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nanosep.errors import InvalidInputError

CARD_SUFFIX = ".card.json"

class InputVar(BaseModel):
    """A declared input: name from the DESIGN.md vocabulary, domain ``[low, high]``."""

    model_config = ConfigDict(extra="forbid")
    name: str
    unit: str = ""
    low: float
    high: float
    scale: Literal["linear", "log", "log_offset", "log_neg"] = "linear"
    offset: float = 0.0

    @model_validator(mode="after")
    def _check_scale(self) -> InputVar:
        try:
            sc = self.transform
        except InvalidInputError as exc:
            raise ValueError(f"{self.name}: {exc}") from None
        bad = sc.domain_error(self.low, self.high)
        if bad:
            raise ValueError(f"{self.name}: {bad}")
        return self

    @property
    def transform(self) -> InputScale:
        """The input transform ``t`` (:class:`nanosep.surrogates.scaling.InputScale`)."""
        return InputScale(self.scale, self.offset)


class OutputVar(BaseModel):
    """A network output with its physical range (bounds for embedding) and its transform:
    ``identity`` (``y = u``) or ``log10_transmission`` (``u = log10(1 - R)``, ``R = 1 - 10**u``),
    where ``u = offset + factor * network_output`` (``output_scaling``)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    unit: str = ""
    low: float
    high: float
    transform: Literal["identity", "log10_transmission"] = "identity"

    @model_validator(mode="after")
    def _check_transform(self) -> OutputVar:
        if self.transform == "log10_transmission" and not self.name.startswith("rejection_"):
            raise ValueError(f"{self.name}: log10_transmission applies to rejection_<ion> outputs only")
        return self


class OnnxInfo(BaseModel):
    file: str
    sha256: str = ""
    opset: int = 18
    input_name: str = "x_scaled"
    output_name: str = "y_scaled"


class WeightsInfo(BaseModel):
    """Weights stored outside ONNX (a neural ODE's torch state dict)."""

    model_config = ConfigDict(extra="allow")
    file: str
    sha256: str = ""
    format: str = "torch state_dict"


class DataInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    manifest_hash: str = ""
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    n_failed_dropped: int = 0


class OutputMetrics(BaseModel):
    mae: float
    max_abs: float
    rmse: float


class TrainingInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    restarts: int = 0
    epochs: int = 0
    cv_hidden_sizes: list[int] = Field(default_factory=list)
    cv_mse: list[float] = Field(default_factory=list)


class ModelCard(BaseModel):
    """The JSON model card (DESIGN.md, "Model card")."""

    model_config = ConfigDict(extra="forbid")
    name: str
    kind: Literal["shallow_mlp", "deep_mlp", "module_mlp", "neural_ode"]
    description: str = ""
    created: str = Field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    nanosep_version: str = ""
    inputs: list[InputVar]
    outputs: list[OutputVar]
    input_scaling: Affine
    output_scaling: Affine
    architecture: dict
    onnx: OnnxInfo | None = None
    weights: WeightsInfo | None = None
    data: DataInfo = Field(default_factory=DataInfo)
    metrics: dict[str, dict[str, OutputMetrics]] = Field(default_factory=dict)
    training: TrainingInfo = Field(default_factory=TrainingInfo)

    @model_validator(mode="after")
    def _check_files(self) -> ModelCard:
        if self.onnx is None and self.kind != "neural_ode":
            raise ValueError(f"kind {self.kind!r} needs an 'onnx' section (only neural_ode cards may omit it)")
        if self.kind == "neural_ode" and self.onnx is None and self.weights is None:
            raise ValueError("a neural_ode card without ONNX must name its 'weights' file")
        return self

    @property
    def input_names(self) -> list[str]:
        return [v.name for v in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [v.name for v in self.outputs]

    @property
    def output_transforms(self) -> list[str]:
        """Per-output transforms, for :func:`nanosep.surrogates.scaling.unscale_outputs`."""
        return [v.transform for v in self.outputs]

    @property
    def input_scales(self) -> list[InputScale]:
        """Per-input transforms, for :func:`nanosep.surrogates.scaling.scale_inputs`."""
        return [v.transform for v in self.inputs]

    def save(self, path: str | Path) -> Path:
        """Write the card as indented JSON (atomically); returns the path."""
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.model_dump_json(indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        """Read a card; a missing file or invalid content raises InvalidInputError naming the field."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise InvalidInputError(f"model card not found: {path}") from exc
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"model card {path} is not valid JSON: {exc}") from exc
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise InvalidInputError(f"model card {path} is invalid: {exc}") from exc


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def nanosep_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nanosep")
    except PackageNotFoundError:  # pragma: no cover - not installed
        return ""
