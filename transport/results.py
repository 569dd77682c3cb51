"""Results of the transport engine: arrays for a batch, a view per case, tidy tables."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nanosep.errors import InvalidInputError
from nanosep.units import m_s_to_lmh

from .newton import STRICT_RESIDUAL

#: flux-balance gap above which a converged case is flagged unresolved (:attr:`BatchResult.unresolved`)
UNRESOLVED_GAP = 1e-6
#: Chebyshev tail estimate above which a converged case is flagged unresolved
UNRESOLVED_TAIL = 1e-6

PARTITION_KEYS = ("steric", "born", "image", "donnan", "activity", "total")
#: fields shared by all cases of a batch (not indexed by case)
SHARED_FIELDS = ("ions", "charges", "x", "y_film", "meta")
FLUX_PARTS = ("diffusion", "convection", "migration")
#: per-case fields with an ion axis (axis 1)
ION_FIELDS = ("c_feed", "c_wall", "c_perm", "ion_flux", "flux_split", "c_layer", "c_film")


@dataclass
class BatchResult:
    """Solution of a batch of ``B`` cases with ``n`` ions.

    Concentrations are mol/m3, fluxes m/s (water) and mol/(m2 s) (ions), potentials
    are dimensionless ``F psi / (R T)`` unless the name ends in ``_V``.
    """

    ions: tuple[str, ...]
    charges: np.ndarray                 # (n,)
    flux_m_s: np.ndarray                # (B,) water flux J_v
    converged: np.ndarray               # (B,)
    iterations: np.ndarray              # (B,) Newton iterations (all continuation steps)
    residual: np.ndarray                # (B,) final scaled residual, max norm
    reason: np.ndarray                  # (B,) why a case failed ("" if converged)
    c_feed: np.ndarray                  # (B, n) bulk feed
    c_wall: np.ndarray                  # (B, n) feed solution at the membrane wall
    c_perm: np.ndarray                  # (B, n) permeate
    ion_flux: np.ndarray                # (B, n) J_i = J_v c_p,i, mol/(m2 s)
    partition_feed: dict                # key -> (B, n) partition coefficients, feed side (pore/wall)
    partition_perm: dict                # key -> (B, n) permeate side (pore/permeate)
    donnan_feed_V: np.ndarray           # (B,) psi_pore(0+) - psi_wall
    donnan_perm_V: np.ndarray           # (B,) psi_pore(L-) - psi_permeate
    flux_split: np.ndarray              # (B, n, 3) layer-averaged diffusion/convection/migration, mol/(m2 s)
    x: np.ndarray                       # (M,) Chebyshev nodes of the active layer (unmapped), x * thickness in m
    thickness_m: np.ndarray             # (B,)
    c_layer: np.ndarray                 # (B, n, M) pore concentrations
    phi_layer: np.ndarray               # (B, M) dimensionless potential
    y_film: np.ndarray | None = None     # (Mf,) normalized film coordinate
    c_film: np.ndarray | None = None     # (B, n, Mf)
    phi_film: np.ndarray | None = None   # (B, Mf)
    continuation_steps: np.ndarray | None = None  # (B,)
    solution: np.ndarray | None = None   # (B, m) raw unknowns (warm starts, Pyomo twin)
    x_layer: np.ndarray | None = None    # (B, M) node positions per case, fraction of the thickness
    #                                         (differ from ``x`` where the grid is mapped, see grid_map.py)
    nodes_used: np.ndarray | None = None      # (B,) layer intervals of the grid the answer was solved on
    #                                         (> len(x) - 1 where refined; profiles are sampled at ``x``)
    resolution_error: np.ndarray | None = None  # (B,) Chebyshev tail estimate of that grid (system.resolution)
    meta: dict = field(default_factory=dict)
    solver_path: np.ndarray | None = None     # (B,) str: "engine", "compiled" (transport/compiled.py),
    #                                         "compiled+refined" (then refined on finer grids), "compiled->engine"
    #                                         (the kernel failed, the engine solved it), "closed form"

    def __len__(self) -> int:
        return self.flux_m_s.shape[0]

    @property
    def loose(self) -> np.ndarray:
        """(B,) converged cases whose final scaled residual exceeds ``newton.STRICT_RESIDUAL`` (1e-6):
        accepted by Newton's precision-limit rule (correction at round-off, residual stalled above it).
        Their answers are flagged, not wrong by construction; see benchmarks/README.md (robustness)."""
        return np.asarray(self.converged, bool) & ~(np.asarray(self.residual, float) <= STRICT_RESIDUAL)

    @property
    def flux_balance_gap(self) -> np.ndarray:
        """(B,) max over present ions (absent ones, reported NaN, left out) of
        |diffusion + convection + migration - J_v c_p| / max |term|.

        The layer-averaged Nernst-Planck terms (``flux_split``) must add up to the ion flux; a converged
        case where they do not is under-resolved by the grid (e.g. sample 65 of benchmarks/robustness.py:
        residual 4e-9 but gap 1.4 and a Ca+2 rejection of 0.9999 / 0.094 / -0.048 at 24 / 64 / 96 nodes).
        Well-resolved cases sit at 1e-12 (median) to 1e-8 (p99.6).  NaN for failed cases."""
        parts = np.asarray(self.flux_split, float)
        with warnings.catch_warnings():   # all-NaN rows: blocked (pure-water) cases and absent ions
            warnings.simplefilter("ignore", RuntimeWarning)
            scale = np.nanmax(np.abs(parts), axis=-1)
        gap = np.abs(parts.sum(-1) - np.asarray(self.ion_flux, float)) / np.where(scale > 0, scale, 1.0)
        # absent ions (reported NaN; carried at a trace level) do not count
        gap = np.where(np.isfinite(gap) & np.isfinite(np.asarray(self.c_perm, float)), gap, -np.inf)
        out = gap.max(axis=1)
        return np.where(np.isfinite(out) & np.asarray(self.converged, bool), out, np.nan)

    @property
    def unresolved(self) -> np.ndarray:
        """(B,) converged cases whose :attr:`flux_balance_gap` exceeds ``UNRESOLVED_GAP`` (1e-6): the answer is not
        trustworthy on this grid (refine ``TransportOptions.nodes``); flagged, not failed.  Also flagged: a
        Chebyshev tail estimate (:attr:`resolution_error`) above ``UNRESOLVED_TAIL`` (1e-6), i.e. a case the
        automatic refinement (``TransportOptions.resolution_tol``, ``max_nodes``) could not resolve."""
        bad = np.nan_to_num(self.flux_balance_gap, nan=0.0) > UNRESOLVED_GAP
        if self.resolution_error is not None:
            bad |= np.nan_to_num(np.asarray(self.resolution_error, float), nan=0.0) > UNRESOLVED_TAIL
        return np.asarray(self.converged, bool) & bad

    @property
    def rejection_intrinsic(self) -> np.ndarray:
        """1 - c_perm / c_wall, (B, n)."""
        return 1.0 - self.c_perm / self.c_wall

    @property
    def rejection_observed(self) -> np.ndarray:
        """1 - c_perm / c_feed, (B, n)."""
        return 1.0 - self.c_perm / self.c_feed

    @property
    def rejection(self) -> np.ndarray:
        """Observed rejection (equal to intrinsic without polarization), (B, n)."""
        return self.rejection_observed

    def to_frame(self) -> pd.DataFrame:
        """One row per case and ion, SI values with units in the column names."""
        B, n = self.c_perm.shape
        rows = {
            "case": np.repeat(np.arange(B), n),
            "ion": np.tile(np.array(self.ions, dtype=object), B),
            "flux_L_m2_h": np.repeat(m_s_to_lmh(self.flux_m_s), n),
            "converged": np.repeat(self.converged, n),
            "c_feed_mol_m3": self.c_feed.ravel(),
            "c_wall_mol_m3": self.c_wall.ravel(),
            "c_perm_mol_m3": self.c_perm.ravel(),
            "rejection_observed": self.rejection_observed.ravel(),
            "rejection_intrinsic": self.rejection_intrinsic.ravel(),
            "ion_flux_mol_m2_s": self.ion_flux.ravel(),
        }
        for k in PARTITION_KEYS:
            rows[f"phi_{k}_feed"] = self.partition_feed[k].ravel()
            rows[f"phi_{k}_perm"] = self.partition_perm[k].ravel()
        for j, part in enumerate(FLUX_PARTS):
            rows[f"{part}_flux_mol_m2_s"] = self.flux_split[:, :, j].ravel()
        return pd.DataFrame(rows)

    def take(self, idx) -> BatchResult:
        """The cases ``idx`` (indices or boolean mask), in that order."""
        return self._map_cases(lambda name, get: get(self)[idx])

    @classmethod
    def concat(cls, parts: list[BatchResult]) -> BatchResult:
        """Stack results along the case axis (the ion lists must agree)."""
        parts = list(parts)
        if len(parts) == 1:
            return parts[0]
        for p in parts[1:]:
            if tuple(p.ions) != tuple(parts[0].ions):
                raise InvalidInputError(f"cannot concatenate results for ions {parts[0].ions} and {p.ions}")

        def stack(name, get):
            vals = [get(p) for p in parts]
            return None if any(v is None for v in vals) else np.concatenate(vals)
        return parts[0]._map_cases(stack)

    def put(self, idx, part: BatchResult) -> None:
        """Overwrite the cases ``idx`` (indices) with the cases of ``part`` (same ions, ``len(part) == len(idx)``),
        in place: the values ``concat`` + ``take`` would give, without copying the other cases (an array whose
        dtype cannot hold ``part``'s values is first promoted as ``concat`` would promote it; a field that is
        None in either becomes None)."""
        if tuple(part.ions) != tuple(self.ions):
            raise InvalidInputError(f"cannot put results for ions {part.ions} into {self.ions}")

        def write(dst, src):
            if dst is None or src is None:
                return None
            dtype = np.result_type(dst, src)
            if dtype != dst.dtype:
                dst = dst.astype(dtype)
            dst[idx] = src
            return dst
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            if name in SHARED_FIELDS or v is None:
                continue
            if isinstance(v, dict):
                setattr(self, name, {k: write(a, getattr(part, name)[k]) for k, a in v.items()})
            elif isinstance(v, np.ndarray):
                setattr(self, name, write(v, getattr(part, name)))

    def _map_cases(self, fn) -> BatchResult:
        """Apply ``fn(name, getter)`` to every per-case array (also inside dict fields)."""
        out = {}
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            if name in SHARED_FIELDS or v is None:
                out[name] = v
            elif isinstance(v, dict):
                out[name] = {k: fn(name, lambda r, n=name, k=k: getattr(r, n)[k]) for k in v}
            elif isinstance(v, np.ndarray):
                out[name] = fn(name, lambda r, n=name: getattr(r, n))
            else:
                out[name] = v
        return BatchResult(**out)

    def with_ions(self, ions: tuple[str, ...], charges: np.ndarray, keep: np.ndarray,
                  solution_size: int) -> BatchResult:
        """The same cases reported for a longer ion list ``ions``: ion ``j`` of this result is ion
        ``keep[j]`` there; the other ions get NaN (as absent ions do), and ``solution`` becomes
        NaN rows of ``solution_size`` (the unknowns of the longer list's system do not exist)."""
        B, n = len(self), len(ions)

        def widen(arr):
            out = np.full((B, n) + arr.shape[2:], np.nan)
            out[:, keep] = arr
            return out
        out = {}
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            if name in ION_FIELDS and v is not None:
                out[name] = widen(v)
            elif name in ("partition_feed", "partition_perm"):
                out[name] = {k: widen(a) for k, a in v.items()}
            else:
                out[name] = v
        out["ions"], out["charges"] = tuple(ions), charges
        out["solution"] = np.full((B, solution_size), np.nan)
        return BatchResult(**out)

    def case(self, b: int) -> CaseResult:
        """A per-case view."""
        return CaseResult(self, b)


class CaseResult:
    """One case of a :class:`BatchResult` with dictionaries keyed by ion name."""

    def __init__(self, batch: BatchResult, b: int):
        self._r, self._b = batch, b

    def _d(self, arr) -> dict:
        return {ion: float(v) for ion, v in zip(self._r.ions, arr[self._b])}

    @property
    def converged(self) -> bool:
        return bool(self._r.converged[self._b])

    @property
    def flux_m_s(self) -> float:
        return float(self._r.flux_m_s[self._b])

    @property
    def rejection(self) -> dict:
        """Observed rejection per ion."""
        return self._d(self._r.rejection_observed)

    @property
    def rejection_intrinsic(self) -> dict:
        return self._d(self._r.rejection_intrinsic)

    @property
    def permeate_mol_m3(self) -> dict:
        return self._d(self._r.c_perm)

    @property
    def wall_mol_m3(self) -> dict:
        return self._d(self._r.c_wall)

    def partition(self, side: str = "feed") -> dict:
        """``{mechanism: {ion: Phi}}`` at the feed or permeate interface."""
        src = self._r.partition_feed if side == "feed" else self._r.partition_perm
        return {k: self._d(v) for k, v in src.items()}

    @property
    def flux_split(self) -> dict:
        """``{ion: {diffusion, convection, migration}}`` layer-averaged, mol/(m2 s)."""
        s = self._r.flux_split[self._b]
        return {ion: dict(zip(FLUX_PARTS, map(float, s[i]))) for i, ion in enumerate(self._r.ions)}

    @property
    def diagnostics(self) -> dict:
        r, b = self._r, self._b
        return {"converged": bool(r.converged[b]), "iterations": int(r.iterations[b]),
                "residual": float(r.residual[b]), "loose": bool(r.loose[b]), "unresolved": bool(r.unresolved[b]),
                "flux_balance_gap": float(r.flux_balance_gap[b]), "reason": str(r.reason[b]),
                "continuation_steps": int(r.continuation_steps[b]) if r.continuation_steps is not None else 0,
                "solver_path": str(r.solver_path[b]) if r.solver_path is not None else ""}

    def profiles(self) -> pd.DataFrame:
        """Concentration (mol/m3) and potential (dimensionless) across the active layer."""
        r, b = self._r, self._b
        x = r.x if r.x_layer is None else r.x_layer[b]
        df = pd.DataFrame({"x_m": x * r.thickness_m[b], "phi": r.phi_layer[b]})
        for i, ion in enumerate(r.ions):
            df[f"c_{ion}_mol_m3"] = r.c_layer[b, i]
        return df
