"""Affine scaling of surrogate inputs and outputs (the model card's ``*_scaling``).

Inputs:  ``z = (t(x) - offset) / factor`` with the per-input transform ``t``:

* ``linear``: ``t = x``;
* ``log``: ``t = log10(x)`` (``x > 0``);
* ``log_offset``: ``t = log10(x + c)`` with a per-variable offset ``c > 0`` in the variable's
  own units (e.g. 0.1 um/s for the transmembrane velocity): logarithmic resolution near
  ``x = 0`` while keeping ``x = 0`` in the domain;
* ``log_neg``: ``t = log10(-x)`` (``x < 0``), for negative-valued variables spanning decades
  (a membrane charge density of -1000..-10 mol/m3): each decade gets the same share of the
  network's input range.  ``t`` decreases with ``x``; the affine map is fitted to the sorted
  ends, so ``z = -1`` is the weakly charged end (``x = high``).

Outputs: ``u = offset + factor * y_net`` and ``y = g(u)`` with the per-output transform
``g``: ``identity`` (``y = u``, the default) or ``log10_transmission`` for a rejection
(``u = log10(1 - R)``, ``R = 1 - 10**u``): relative accuracy in the permeate concentration
``c_p = (1 - R) c_feed`` over decades, and rejections far below 0 (Donnan-enhanced co-ions,
R down to -9) without a huge linear range.
The network (and its ONNX file) only ever sees ``z`` and ``y_net``; the transforms
and the affine maps live here and in the card (DESIGN.md).  :class:`InputScale`
is the one definition of ``t`` and its inverse; :meth:`InputScale.forward` takes
the ``log10`` of the caller's algebra (numpy, Pyomo, CasADi), so the symbolic
embeddings evaluate the same expression as numpy.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator

from nanosep.errors import InvalidInputError

Scale = Literal["linear", "log", "log_offset", "log_neg"]
SCALES: tuple[str, ...] = ("linear", "log", "log_offset", "log_neg")


@dataclass(frozen=True)
class InputScale:
    """The transform ``t`` of one input: ``kind`` (linear / log / log_offset / log_neg) and
    ``offset`` (``log_offset`` only, > 0, in the variable's units).  ``t`` is finite on the open
    interval ``(smallest(), largest())``: ``x > 0`` (log), ``x > -offset`` (log_offset),
    ``x < 0`` (log_neg), all reals (linear)."""

    kind: str = "linear"
    offset: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SCALES:
            raise InvalidInputError(f"unknown input scale {self.kind!r}; choose one of {', '.join(SCALES)}")
        if self.kind == "log_offset":
            if not (math.isfinite(self.offset) and self.offset > 0):
                raise InvalidInputError(f"log_offset scale needs a finite offset > 0, got offset = {self.offset!r}")
        elif self.offset != 0.0:
            raise InvalidInputError(f"an offset ({self.offset!r}) is only meaningful with scale 'log_offset', "
                                    f"not {self.kind!r}")

    @property
    def is_log(self) -> bool:
        return self.kind != "linear"

    @property
    def increasing(self) -> bool:
        """Whether ``t`` increases with ``x`` (all kinds but ``log_neg``)."""
        return self.kind != "log_neg"

    def forward(self, x: Any, log10: Callable[[Any], Any] = np.log10) -> Any:
        """``t(x)``; ``log10`` is the caller's (``np.log10``, ``pyo.log10``, ``ca.log10``)."""
        if self.kind == "log":
            return log10(x)
        if self.kind == "log_offset":
            return log10(x + self.offset)
        if self.kind == "log_neg":
            return log10(-x)
        return x

    def inverse(self, t: Any) -> Any:
        """``x(t)`` (numpy / float)."""
        if self.kind == "log":
            return 10.0 ** t
        if self.kind == "log_offset":
            return 10.0 ** t - self.offset
        if self.kind == "log_neg":
            return -(10.0 ** t)
        return t

    def smallest(self) -> float:
        """The infimum of the admissible ``x`` (``t`` finite above it)."""
        return {"linear": -math.inf, "log": 0.0, "log_offset": -self.offset, "log_neg": -math.inf}[self.kind]

    def largest(self) -> float:
        """The supremum of the admissible ``x`` (``t`` finite below it)."""
        return 0.0 if self.kind == "log_neg" else math.inf

    def admissible(self, x: Any) -> Any:
        """Elementwise: ``x`` is not at or beyond a pole (``x <= smallest()`` or ``x >= largest()``);
        NaN is not refused here (numpy bool array or bool)."""
        x = np.asarray(x, dtype=np.float64)
        return ~((x <= self.smallest()) | (x >= self.largest()))

    def domain_error(self, low: float, high: float) -> str | None:
        """Why ``[low, high]`` is not a domain of this scale (the message names the offending
        bound and value), or ``None`` if it is one."""
        if self.kind == "log_neg" and high >= 0:
            return f"log_neg scale needs high < 0 (got high = {high:g})"
        if self.is_log and low <= self.smallest():
            return f"{self.kind} scale needs low > {self.smallest():g} (got low = {low:g})"
        return None


ScaleLike = str | InputScale | Any


def as_scale(s: ScaleLike) -> InputScale:
    """An :class:`InputScale` from a scale name (``"linear"``, ``"log"``), an ``InputScale``,
    or any object with ``scale`` (and ``offset``) attributes, e.g. a card's or a case's input."""
    if isinstance(s, InputScale):
        return s
    if isinstance(s, str):
        return InputScale(s)
    return InputScale(s.scale, float(getattr(s, "offset", 0.0) or 0.0))


class Affine(BaseModel):
    """``offset`` and ``factor`` per column; serialized as lists in the card."""

    model_config = ConfigDict(frozen=True)
    offset: list[float]
    factor: list[float]

    @field_validator("factor")
    @classmethod
    def _nonzero(cls, v: list[float]) -> list[float]:
        bad = [f for f in v if not np.isfinite(f) or f == 0.0]
        if bad:
            raise ValueError(f"scaling factors must be finite and non-zero, got {bad}")
        return v

    @property
    def offset_array(self) -> np.ndarray:
        return np.asarray(self.offset, dtype=np.float64)

    @property
    def factor_array(self) -> np.ndarray:
        return np.asarray(self.factor, dtype=np.float64)


def transform_inputs(x: np.ndarray, scales: Sequence[ScaleLike]) -> np.ndarray:
    """``t(x)`` column by column (see :class:`InputScale`); ``scales`` items are scale names,
    :class:`InputScale` objects or inputs with ``scale``/``offset`` attributes.  A value at or
    beyond the transform's pole (``x <= 0`` for log, ``x <= -offset`` for log_offset, ``x >= 0``
    for log_neg) raises, naming the value."""
    x = np.asarray(x, dtype=np.float64)
    t = x.copy()
    for j, s in enumerate(scales):
        sc = as_scale(s)
        if sc.is_log:
            col = x[..., j]
            bad = ~sc.admissible(col)
            if bad.any():
                v = float(col[bad].flat[0])
                side = f">= {sc.largest():g}" if v >= sc.largest() else f"<= {sc.smallest():g}"
                raise InvalidInputError(f"{sc.kind}-scale input column {j} has value {v!r} {side}")
            t[..., j] = sc.forward(col)
    return t


def fit_input_scaling(low: Sequence[float], high: Sequence[float], scales: Sequence[ScaleLike]) -> Affine:
    """Map the declared domain ``[low, high]`` (after ``t``) onto ``[-1, 1]``.

    Using the declared domain rather than data statistics makes the scaled
    bounds known exactly, which is what OMLT's input bounds need.  For a decreasing transform
    (``log_neg``) the ends are swapped, so every factor is positive.
    """
    lo = transform_inputs(np.asarray(low, dtype=float)[None, :], scales)[0]
    hi = transform_inputs(np.asarray(high, dtype=float)[None, :], scales)[0]
    if (np.asarray(high, dtype=float) <= np.asarray(low, dtype=float)).any() or (hi == lo).any():
        j = int(np.argmax((np.asarray(high, dtype=float) <= np.asarray(low, dtype=float)) | (hi == lo)))
        raise InvalidInputError(f"input {j}: high {high[j]!r} must exceed low {low[j]!r}")
    dec = np.array([not as_scale(s).increasing for s in scales], dtype=bool)
    lo, hi = np.where(dec, hi, lo), np.where(dec, lo, hi)
    return Affine(offset=((lo + hi) / 2).tolist(), factor=((hi - lo) / 2).tolist())


OutputTransform = Literal["identity", "log10_transmission"]
OUTPUT_TRANSFORMS: tuple[str, ...] = ("identity", "log10_transmission")


def _output_kinds(transforms: Sequence[str] | None, n: int) -> list[str]:
    kinds = ["identity"] * n if transforms is None else [getattr(t, "transform", t) for t in transforms]
    bad = [k for k in kinds if k not in OUTPUT_TRANSFORMS]
    if bad or len(kinds) != n:
        raise InvalidInputError(f"output transforms {kinds!r}: need {n} of {', '.join(OUTPUT_TRANSFORMS)}")
    return kinds


def output_forward(y: np.ndarray, transforms: Sequence[str] | None = None) -> np.ndarray:
    """Physical outputs -> ``u`` (``log10(1 - R)`` for log10_transmission columns, which need R < 1)."""
    y = np.asarray(y, dtype=np.float64)
    u = y.copy()
    for j, k in enumerate(_output_kinds(transforms, y.shape[-1])):
        if k == "log10_transmission":
            col = y[..., j]
            if (col >= 1).any():
                raise InvalidInputError(f"log10_transmission output column {j} has rejection "
                                        f"{float(col[col >= 1].flat[0])!r} >= 1")
            u[..., j] = np.log10(1.0 - col)
    return u


def output_inverse(u: Any, kind: str) -> Any:
    """``y = g(u)`` of one output, for numpy arrays and Pyomo / CasADi expressions alike."""
    return 1.0 - 10.0 ** u if kind == "log10_transmission" else u


def fit_output_scaling(y: np.ndarray, low: Sequence[float] | None = None, high: Sequence[float] | None = None) -> Affine:
    """Map outputs onto about ``[-1, 1]``: data min/max (so a tanh output layer reaches it),
    widened by 5 % to leave tanh some headroom; ``low``/``high`` only cap it."""
    y = np.asarray(y, dtype=np.float64)
    lo, hi = y.min(axis=0), y.max(axis=0)
    pad = 0.05 * np.maximum(hi - lo, 1e-12)
    lo, hi = lo - pad, hi + pad
    if low is not None:
        lo = np.maximum(lo, np.asarray(low, dtype=float))
    if high is not None:
        hi = np.minimum(hi, np.asarray(high, dtype=float))
    hi = np.maximum(hi, lo + 1e-12)
    return Affine(offset=((lo + hi) / 2).tolist(), factor=((hi - lo) / 2).tolist())


def scale_inputs(x: np.ndarray, scaling: Affine, scales: Sequence[ScaleLike]) -> np.ndarray:
    """Physical inputs -> network inputs ``z``."""
    return (transform_inputs(x, scales) - scaling.offset_array) / scaling.factor_array


def unscale_inputs(z: np.ndarray, scaling: Affine, scales: Sequence[ScaleLike]) -> np.ndarray:
    """Network inputs ``z`` -> physical inputs."""
    t = scaling.offset_array + scaling.factor_array * np.asarray(z, dtype=np.float64)
    for j, s in enumerate(scales):
        t[..., j] = as_scale(s).inverse(t[..., j])
    return t


def scale_outputs(y: np.ndarray, scaling: Affine, transforms: Sequence[str] | None = None) -> np.ndarray:
    """Physical outputs -> network outputs (``transforms``: per-output kinds, default identity)."""
    return (output_forward(y, transforms) - scaling.offset_array) / scaling.factor_array


def unscale_outputs(y_net: np.ndarray, scaling: Affine, transforms: Sequence[str] | None = None) -> np.ndarray:
    """Network outputs -> physical outputs ``y = g(offset + factor * y_net)``."""
    u = scaling.offset_array + scaling.factor_array * np.asarray(y_net, dtype=np.float64)
    kinds = _output_kinds(transforms, u.shape[-1])
    for j, k in enumerate(kinds):
        u[..., j] = output_inverse(u[..., j], k)
    return u
