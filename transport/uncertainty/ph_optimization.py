"""pH that maximizes a selectivity through the ionizable-group charge model (seed 003 sec. 3.3, Fig. 4A-B).

The membrane charge density follows the pH by :func:`nanosep.transport.charge.charge_density`
(amphoteric acid/base groups); everything else is held.  ``S_a/b(pH) = (1 - R_a)/(1 - R_b)``
at a given flux is first scanned on a coarse pH grid (one batch), then the best grid point's
neighbours bracket a bounded scalar search (:func:`scipy.optimize.minimize_scalar`, method
``"bounded"``, on ``-ln S``).  If the grid maximum is at an end of the range the bracket is
the end interval, so a boundary optimum is found too.  Engine failures make a grid point NaN
(skipped) or the objective +inf at that pH.  The feed pH itself is not changed (H+/OH- are
not transported species); only the membrane charge responds to it.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from nanosep.transport import TransportOptions
from nanosep.transport.charge import IonizableGroups, charge_density
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar

from nanosep.errors import InvalidInputError
from nanosep.ions import IonDatabase

from .propagation import propagate

log = logging.getLogger(__name__)

__all__ = ["PHOptimum", "optimize_ph", "selectivity_vs_ph"]


@dataclass
class PHOptimum:
    """Best pH for ``S_a/b``: pH, selectivity and charge density there; the coarse scan (grid_pH, grid_S);
    evaluations of the bounded search; selectivity_ratio = S(pH*) / S(reference_pH)."""

    pair: tuple[str, str]
    pH: float
    selectivity: float
    charge_density_mol_m3: float
    grid_pH: NDArray[np.float64]
    grid_selectivity: NDArray[np.float64]
    evaluations: int
    reference_pH: float
    reference_selectivity: float

    @property
    def selectivity_ratio(self) -> float:
        return self.selectivity / self.reference_selectivity

    def summary(self) -> dict:
        return {"pair": "/".join(self.pair), "pH": self.pH, "selectivity": self.selectivity,
                "charge_density_mol_m3": self.charge_density_mol_m3, "evaluations": self.evaluations,
                "reference_pH": self.reference_pH, "reference_selectivity": self.reference_selectivity,
                "selectivity_ratio": self.selectivity_ratio}


def selectivity_vs_ph(ions: Sequence[str], c_feed: ArrayLike, flux_m_s: float, groups: IonizableGroups,
                      pH: ArrayLike, pair: tuple[str, str], *, pore_radius_m: float, thickness_m: float,
                      pore_dielectric: float, temperature_K: float = 298.15, options: TransportOptions | None = None,
                      ion_db: IonDatabase | None = None) -> NDArray[np.float64]:
    """``S_a/b`` at each pH (one batched solve); NaN where the engine failed."""
    p = np.atleast_1d(np.asarray(pH, dtype=float))
    X = np.atleast_1d(charge_density(groups, p))
    samples = np.column_stack([np.full(p.size, pore_radius_m), np.full(p.size, thickness_m),
                               np.full(p.size, pore_dielectric), X])
    res = propagate(ions, c_feed, [flux_m_s], samples, temperature_K=temperature_K, options=options, ion_db=ion_db)
    return res.selectivity(*pair)[:, 0]


def optimize_ph(ions: Sequence[str], c_feed: ArrayLike, flux_m_s: float, groups: IonizableGroups,
                pair: tuple[str, str], *, pore_radius_m: float, thickness_m: float, pore_dielectric: float,
                ph_range: tuple[float, float] = (2.0, 10.0), n_grid: int = 17, reference_pH: float = 7.0,
                xatol: float = 1e-3, temperature_K: float = 298.15, options: TransportOptions | None = None,
                ion_db: IonDatabase | None = None) -> PHOptimum:
    """Maximize ``S_a/b`` over pH in ``ph_range`` (grid scan + bounded Brent search, module docstring)."""
    lo, hi = map(float, ph_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InvalidInputError(f"ph_range must be (low, high) with low < high, got {ph_range!r}")
    if n_grid < 3:
        raise InvalidInputError(f"n_grid must be >= 3, got {n_grid!r}")
    kw = {"pore_radius_m": pore_radius_m, "thickness_m": thickness_m, "pore_dielectric": pore_dielectric,
              "temperature_K": temperature_K, "options": options, "ion_db": ion_db}
    grid = np.linspace(lo, hi, int(n_grid))
    s_grid = selectivity_vs_ph(ions, c_feed, flux_m_s, groups, grid, pair, **kw)
    ok = np.isfinite(s_grid) & (s_grid > 0)
    if not ok.any():
        raise InvalidInputError(f"selectivity {pair} is not finite and positive anywhere on pH {lo}-{hi}")
    k = int(np.nanargmax(np.where(ok, s_grid, -np.inf)))
    a, b = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    n_eval = 0

    def neg_log_s(ph: float) -> float:
        nonlocal n_eval
        n_eval += 1
        s = float(selectivity_vs_ph(ions, c_feed, flux_m_s, groups, [ph], pair, **kw)[0])
        return -np.log(s) if np.isfinite(s) and s > 0 else np.inf

    res = minimize_scalar(neg_log_s, bounds=(a, b), method="bounded", options={"xatol": xatol})
    best_ph, best_s = float(res.x), float(np.exp(-res.fun)) if np.isfinite(res.fun) else np.nan
    if not (best_s >= s_grid[k]):                # the search can only improve on the grid point
        best_ph, best_s = float(grid[k]), float(s_grid[k])
    ref = float(selectivity_vs_ph(ions, c_feed, flux_m_s, groups, [reference_pH], pair, **kw)[0])
    return PHOptimum(pair=tuple(pair), pH=best_ph, selectivity=best_s,
                     charge_density_mol_m3=float(charge_density(groups, best_ph)), grid_pH=grid,
                     grid_selectivity=s_grid, evaluations=n_eval, reference_pH=float(reference_pH),
                     reference_selectivity=ref)
