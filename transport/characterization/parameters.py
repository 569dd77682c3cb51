"""The fitted parameter vector: free slots in transformed space, mapped to engine inputs per case.

A *slot* is one scalar the optimizer moves: a global parameter (``pore_radius_nm``) or one
value of a per-data-set parameter (``charge_density_mol_m3[MgSO4]``).  Slots live in
transformed space ``u`` (``ln`` of the user-unit value for positive parameters, the value
itself for the signed charge density), with box bounds; :meth:`ParameterMap.engine_inputs`
turns ``u`` into the SI arrays of :func:`nanosep.transport.solve_batch` for any set of cases.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nanosep.errors import InvalidInputError

from .design import Cases
from .spec import PARAMETERS, FitCase


@dataclass(frozen=True)
class Slot:
    """One free scalar: parameter name (user units), data-set label (None if global), transform, bounds in u."""

    parameter: str
    label: str | None
    transform: str
    lower: float
    upper: float

    @property
    def name(self) -> str:
        return self.parameter if self.label is None else f"{self.parameter}[{self.label}]"

    def to_value(self, u):
        """User-unit value of ``u`` (nm, um, -, mol/m3)."""
        return np.exp(u) if self.transform == "log" else np.asarray(u, dtype=float)

    def to_u(self, value):
        return np.log(value) if self.transform == "log" else np.asarray(value, dtype=float)


class ParameterMap:
    """Free slots and fixed values of a fit case, for the data-set labels present in the data."""

    def __init__(self, case: FitCase, labels: dict[str, np.ndarray]):
        self.case = case
        self.slots: list[Slot] = []
        self.fixed: dict[str, float] = {}
        self.per: dict[str, str] = {}
        for name, spec in case.parameters.items():
            if spec.fixed:
                self.fixed[name] = spec.initial
                continue
            lo, hi = case.bounds(name)
            tr = case.transform(name)
            lo_u, hi_u = (np.log(lo), np.log(hi)) if tr == "log" else (lo, hi)
            if spec.per is None:
                self.slots.append(Slot(name, None, tr, float(lo_u), float(hi_u)))
            else:
                if spec.per not in labels:
                    raise InvalidInputError(f"parameters.{name}.per: column {spec.per!r} not among the data labels "
                                            f"{sorted(labels)}")
                self.per[name] = spec.per
                for lab in sorted(set(labels[spec.per].tolist())):
                    self.slots.append(Slot(name, lab, tr, float(lo_u), float(hi_u)))
        self.u0 = np.array([s.to_u(case.parameters[s.parameter].initial_per.get(s.label,
                                                                              case.parameters[s.parameter].initial))
                            for s in self.slots], dtype=float)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.slots]

    @property
    def lower(self) -> np.ndarray:
        return np.array([s.lower for s in self.slots])

    @property
    def upper(self) -> np.ndarray:
        return np.array([s.upper for s in self.slots])

    def __len__(self) -> int:
        return len(self.slots)

    def values(self, u) -> dict[str, float]:
        """User-unit value of every slot, keyed by slot name."""
        return {s.name: float(s.to_value(v)) for s, v in zip(self.slots, u)}

    def slot_cases(self, k: int, cases: Cases) -> np.ndarray:
        """Indices of the cases whose engine inputs depend on slot ``k``."""
        s = self.slots[k]
        if s.label is None:
            return np.arange(len(cases))
        return np.flatnonzero(cases.labels[self.per[s.parameter]] == s.label)

    def user_values(self, u, cases: Cases) -> dict[str, np.ndarray]:
        """Per-case user-unit values of the four parameters, (B,) each.

        Raises:
            InvalidInputError: a case carries a data-set label that has no slot (e.g. curves for a salt
                that was not in the fitted data).
        """
        B = len(cases)
        out = {name: np.full(B, value, dtype=float) for name, value in self.fixed.items()}
        for name in self.case.parameters:
            if name in out:
                continue
            out[name] = np.full(B, np.nan)
        for s, v in zip(self.slots, u):
            val = float(s.to_value(v))
            if s.label is None:
                out[s.parameter][:] = val
            else:
                out[s.parameter][cases.labels[self.per[s.parameter]] == s.label] = val
        for name, arr in out.items():
            if np.isnan(arr).any():
                b = int(np.flatnonzero(np.isnan(arr))[0])
                lab = {c: cases.labels[c][b] for c in cases.labels}
                raise InvalidInputError(f"{name}: no fitted value for the data set {lab} (case {b})")
        return out

    def engine_inputs(self, u, cases: Cases) -> dict[str, np.ndarray]:
        """SI keyword arrays ``pore_radius_m``, ``thickness_m``, ``pore_dielectric``, ``charge_density_mol_m3``."""
        return {PARAMETERS[k]["si"]: v * PARAMETERS[k]["factor"] for k, v in self.user_values(u, cases).items()}
