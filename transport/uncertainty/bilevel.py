"""Bilevel estimation of the membrane parameters with the pore-size EM inside (seed 003 sec. 2.5, eq. 28).

Upper level: the remaining latent parameters ``{dx_e, zeta_p, X_d}`` (effective thickness,
pore dielectric constant, charge density) are optimized by scipy (bounded Nelder-Mead,
as derivative-free as seed 003's global stage; ``x_atol`` on scaled variables); lower
level: for each candidate the engine is tabulated over the pore radius
(:mod:`.radius_table`) and the EM of :mod:`.em_psd` finds the most likely pore-size
distribution, started from the previous candidate's (the "informed initial guess" of
seed 003).  The upper objective is the negative marginal log likelihood at the EM
optimum - the profile likelihood of the pore-size parameters, which reduces to the
weighted least squares of eq. 13 for a point mass.  A candidate where the engine fails
(too few radii converge) gets the objective ``+inf`` and is recorded, never raised.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from nanosep.transport import TransportOptions
from scipy.optimize import minimize

from nanosep.errors import InvalidInputError, NanosepError
from nanosep.ions import IonDatabase

from .em_psd import PSDFit, em_psd, likelihood_grid, stokes_radii
from .radius_table import radius_grid, tabulate_radius
from .rejection_data import RejectionData

log = logging.getLogger(__name__)

__all__ = ["UPPER_PARAMETERS", "BilevelResult", "bilevel_fit"]

#: upper-level parameters and the scale that makes them O(1) for the simplex
UPPER_PARAMETERS: dict[str, float] = {"thickness_m": 1e-6, "pore_dielectric": 40.0, "charge_density_mol_m3": 50.0}


@dataclass
class BilevelResult:
    """Upper-level optimum and the lower-level pore-size fit there.

    parameters: ``{thickness_m, pore_dielectric, charge_density_mol_m3}``; psd: the EM fit;
    loglik: marginal log likelihood; evaluations: upper-level evaluations (each = one engine
    table + one EM); em_iterations: EM iterations summed over all evaluations; failures:
    candidates where the engine failed, with the reason; history: rows of
    (thickness, eps, X, mu_r, sigma_r, loglik).
    """

    parameters: dict[str, float]
    psd: PSDFit
    loglik: float
    evaluations: int
    em_iterations: int
    seconds: float
    converged: bool
    message: str
    failures: list[dict] = field(default_factory=list)
    history: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))

    def summary(self) -> dict:
        return {"parameters": self.parameters, "psd": self.psd.summary(), "loglik": self.loglik,
                "evaluations": self.evaluations, "em_iterations": self.em_iterations, "seconds": self.seconds,
                "converged": self.converged, "message": self.message, "failures": self.failures}


def bilevel_fit(data: RejectionData, start: dict[str, float], bounds: dict[str, tuple[float, float]], *,
                mean_radius_m: float = 0.5e-9, std_radius_m: float = 0.1e-9,
                radius_range_m: tuple[float, float] = (0.25e-9, 1.6e-9), n_table: int = 24,
                refinement: tuple[float, ...] = (0.01, 0.05),
                n_grid: int = 1024, em_tol: float = 1e-4, x_atol: float = 1e-3, f_atol: float = 1e-3,
                max_evaluations: int = 300,
                options: TransportOptions | None = None, ion_db: IonDatabase | None = None,
                callback: Callable[[int, dict], None] | None = None) -> BilevelResult:
    """Maximize the marginal likelihood over the upper parameters with the EM inside (eq. 28).

    start, bounds: values / (low, high) for every key of :data:`UPPER_PARAMETERS` (SI).
    radius_range_m, n_table, refinement: the radius table of every candidate (log-spaced nodes plus
    nodes at these relative offsets around each Stokes radius); the same radii for every candidate,
    so the upper objective is a deterministic function of the parameters.
    x_atol: simplex tolerance on the scaled variables (value / scale: 1e-3 is 1e-9 m,
    0.04 in eps_p, 0.05 mol/m3); f_atol on the log likelihood.
    callback(evaluation, info) is called after every upper-level evaluation.
    """
    names = list(UPPER_PARAMETERS)
    missing = [k for k in names if k not in start or k not in bounds]
    if missing:
        raise InvalidInputError(f"bilevel_fit needs start and bounds for {missing}")
    scale = np.array([UPPER_PARAMETERS[k] for k in names])
    x0 = np.array([start[k] for k in names]) / scale
    bnds = [(bounds[k][0] / s, bounds[k][1] / s) for k, s in zip(names, scale)]
    for k, (lo, hi), v in zip(names, bnds, x0):
        if not lo <= v <= hi:
            raise InvalidInputError(f"start {k}={v * UPPER_PARAMETERS[k]!r} outside its bounds {bounds[k]!r}")
    radii = radius_grid(*radius_range_m, n_table, stokes_radii(data.ions, ion_db), refinement=refinement)
    state = {"mean": mean_radius_m, "std": std_radius_m, "em_it": 0, "n": 0, "best": (np.inf, None, None)}
    hist: list = []
    failures: list[dict] = []
    t0 = time.perf_counter()

    def objective(x: np.ndarray) -> float:
        p = dict(zip(names, (x * scale).tolist()))
        state["n"] += 1
        try:
            table = tabulate_radius(data.ions, data.c_feed_mol_m3, data.flux_m_s, radii, options=options,
                                    temperature_K=data.temperature_K, ion_db=ion_db, **p)
        except NanosepError as exc:
            failures.append({**p, "reason": str(exc)})
            log.warning("bilevel: engine failed at %s: %s", p, exc)
            return np.inf
        grid = likelihood_grid(table, data, n_grid)
        # EM from the previous candidate's PSD (seed 003's informed guess), the best so far and the
        # user's start; the best of the three (EM is cheap next to the table) keeps the upper
        # objective from depending on the path through a poor local mode of the marginal likelihood
        starts = {(state["mean"], state["std"]), (mean_radius_m, std_radius_m)}
        if state["best"][2] is not None:
            starts.add((state["best"][2].mean_radius_m, state["best"][2].std_radius_m))
        fits = [em_psd(grid, m, sd, em_tol) for m, sd in sorted(starts)]
        fit = max(fits, key=lambda f: f.loglik)
        state["em_it"] += sum(f.iterations for f in fits)
        state["mean"], state["std"] = fit.mean_radius_m, fit.std_radius_m   # informed start of the next EM
        hist.append((*[p[k] for k in names], fit.mean_radius_m, fit.std_radius_m, fit.loglik))
        if -fit.loglik < state["best"][0]:
            state["best"] = (-fit.loglik, p, fit)
        if callback is not None:
            callback(state["n"], {**p, "mean_radius_m": fit.mean_radius_m, "std_radius_m": fit.std_radius_m,
                                  "loglik": fit.loglik})
        return -fit.loglik

    res = minimize(objective, x0, method="Nelder-Mead", bounds=bnds,
                   options={"xatol": x_atol, "fatol": f_atol, "maxfev": max_evaluations, "adaptive": False})
    best_f, best_p, best_fit = state["best"]
    if best_p is None:
        raise InvalidInputError(f"bilevel_fit: the engine failed at every candidate ({len(failures)} tried)")
    return BilevelResult(parameters=best_p, psd=best_fit, loglik=-best_f, evaluations=state["n"],
                         em_iterations=state["em_it"], seconds=time.perf_counter() - t0, converged=bool(res.success),
                         message=str(res.message), failures=failures, history=np.asarray(hist))
