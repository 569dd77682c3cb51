"""Maximum-likelihood fit of the latent membrane parameters (seed 003 eq. 13): global, then local.

Global stage: a scrambled Sobol design (:class:`scipy.stats.qmc.Sobol`) over the box of the
free slots in transformed space, all points solved in batched engine calls; the best
``local_starts`` points (and the case's initial values) start the local stage.
Sobol points at which some ion's Peclet number ``K_c J_v dx_e / (K_d D)`` on the screening cases
exceeds ``screen_peclet_max`` are ranked last without a solve: there the engine needs flux
continuation through a permeate-end boundary layer (seconds per case instead of milliseconds;
measured on FdL 2021: 2 of 16 points, Pe 143 and 2110, took 40 of the stage's 43 s; Pe <= 13 took
< 1 s).  A heuristic: an optimum with such Peclet numbers is not excluded (the local stage is not
restricted and can still reach it), only not started from.
Local stage: :func:`scipy.optimize.least_squares` (trust-region reflective, bounds) on the
weighted residuals with the engine Jacobian of :meth:`RejectionModel.jacobian`.  The best
local optimum is the estimate.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import qmc

from nanosep.errors import ConvergenceError

from .design import Observations
from .likelihood import PENALTY, RejectionModel

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]  # (stage description, fraction done)

#: global-stage points with a larger ion Peclet number on the screening cases are not solved (see above)
SCREEN_PECLET_MAX = 50.0
#: xtol/ftol of the local runs when there are several starts; the best one is then polished to ``tol``
LOOSE_TOL = 1e-6


@dataclass
class FitResult:
    """Outcome of :func:`fit_parameters`.

    u: estimate in transformed space; values: user-unit values by slot name;
    residuals, jacobian: weighted residuals (N,) and d r / d u (N, p) at ``u``;
    cost: sum of squared weighted residuals; starts: table of local runs (start u, end cost).
    """

    names: list[str]
    u: np.ndarray
    values: dict[str, float]
    residuals: np.ndarray
    jacobian: np.ndarray
    cost: float
    n_obs: int
    seconds: float
    starts: list[dict] = field(default_factory=list)
    nfev: int = 0
    message: str = ""
    failed_rows: int = 0

    @property
    def dof(self) -> int:
        return max(self.n_obs - len(self.u), 1)


def screening_cases(obs: Observations, per_feed: int = 3) -> np.ndarray:
    """Cases for the global stage: per distinct feed (and data-set label), the lowest, a middle and the
    highest flux (``per_feed`` evenly spaced ranks).  The ranking of Sobol points needs the shape of
    each rejection-vs-flux curve, not every point on it."""
    keys = [tuple(np.round(c, 12)) + tuple(obs.cases.labels[k][b] for k in sorted(obs.cases.labels))
            for b, c in enumerate(obs.cases.c_feed)]
    groups: dict = {}
    for b, key in enumerate(keys):
        groups.setdefault(key, []).append(b)
    keep = []
    for members in groups.values():
        members = np.array(members)[np.argsort(obs.cases.flux_m_s[members])]
        ranks = np.unique(np.round(np.linspace(0, members.size - 1, min(per_feed, members.size))).astype(int))
        keep.extend(members[ranks].tolist())
    return np.array(sorted(keep), dtype=int)


def _local(model: RejectionModel, obs: Observations, u0, lower, upper, max_iter: int, free=None, tol: float = 1e-12):
    """least_squares from ``u0``; ``free`` (bool mask) restricts the moving slots (profiles)."""
    free = np.ones(u0.size, bool) if free is None else np.asarray(free, bool)
    full = np.array(u0, dtype=float)

    def expand(v):
        w = full.copy()
        w[free] = v
        return w

    def fun(v):
        return model.residuals(obs, expand(v))

    def jac(v):
        return model.jacobian(obs, expand(v))[:, free]

    x0 = np.clip(full[free], lower[free] + 1e-12, upper[free] - 1e-12)
    res = least_squares(fun, x0, jac=jac, bounds=(lower[free], upper[free]), method="trf", x_scale="jac",
                        xtol=tol, ftol=tol, gtol=1e-10, max_nfev=max_iter)
    return expand(res.x), res


def fit_parameters(model: RejectionModel, obs: Observations, *, starts: int = 32, local_starts: int = 2,
                   seed: int = 0, max_iterations: int = 60, u0: np.ndarray | None = None,
                   extra_starts: list[np.ndarray] = (), tol: float = 1e-12,
                   screen_peclet_max: float | None = SCREEN_PECLET_MAX,
                   progress: Progress | None = None) -> FitResult:
    """Fit the free slots of ``model.pmap`` to ``obs``.

    starts: Sobol points of the global stage (0: start only from ``u0``/the case's initial values).
    local_starts: local runs from the best global points (the initial values are always one start).
    extra_starts: further local starts (e.g. a pooled fit broadcast to per-data-set slots).
    tol: ``xtol`` and ``ftol`` of the local stage (relative); with several starts each run stops at
        :data:`LOOSE_TOL` and the best is then continued to ``tol``.
    screen_peclet_max: global-stage points above this largest ion Peclet number are ranked last
        unsolved (``None``: solve every point).
    Returns the best local optimum; raises :class:`ConvergenceError` only if every local run ends
    with every row penalized (no parameter set the engine can solve).
    """
    t0 = perf_counter()
    pmap = model.pmap
    lo, hi = pmap.lower, pmap.upper
    p = len(pmap)
    first = np.array(pmap.u0 if u0 is None else u0, dtype=float)
    candidates = [first] + [np.clip(np.asarray(e, float), lo, hi) for e in extra_starts]
    if starts > 0:
        sob = qmc.Sobol(p, scramble=True, seed=seed)
        m = int(np.ceil(np.log2(max(starts, 1))))
        pts = qmc.scale(sob.random_base2(m), lo, hi)[:starts] if p > 0 else np.zeros((starts, 0))
        costs = np.full(len(pts), np.inf)
        screen = screening_cases(obs)
        sub = obs.subset(np.isin(obs.row_case, screen))
        pe = np.array([model.peclet_max(obs.cases.take(screen), U).max(initial=0.0) for U in pts])
        solve = np.flatnonzero(pe <= screen_peclet_max) if screen_peclet_max is not None else np.arange(len(pts))
        chunk = max(1, 1024 // max(screen.size, 1))
        for i in range(0, solve.size, chunk):
            idx = solve[i:i + chunk]
            pred, good = model.row_predictions(sub, pts[idx], [screen] * idx.size, retry=False)
            r = np.where(good, sub.weight * (pred - sub.rejection), sub.weight * PENALTY)
            costs[idx] = np.sum(r**2, axis=1) * len(obs) / max(len(sub), 1)
            if progress:
                progress("global stage (Sobol)", min(1.0, (i + chunk) / max(solve.size, 1)))
        order = np.argsort(costs, kind="stable")
        candidates += [pts[j] for j in order[:local_starts] if np.isfinite(costs[j])]
        log.info("global stage: %d Sobol points (%d not solved: ion Peclet number > %g) on %d of %d cases, best "
                 "screening cost %.4g", len(pts), len(pts) - solve.size, screen_peclet_max or np.inf, screen.size,
                 len(obs.cases), costs[order[0]])
    # several starts: each to a loose tolerance, then only the best one on to ``tol`` (runs from different
    # starts that end in the same optimum do not each pay for the last digits)
    loose = max(tol, LOOSE_TOL) if len(candidates) > 1 else tol
    best, runs, nfev = None, [], 0
    for i, c in enumerate(candidates):
        u, res = _local(model, obs, c, lo, hi, max_iterations, tol=loose)
        nfev += res.nfev
        cost = float(np.sum(model.residuals(obs, u) ** 2))
        runs.append({"start": pmap.values(c), "end": pmap.values(u), "cost": cost, "nfev": int(res.nfev),
                     "status": int(res.status)})
        log.info("local run %d/%d: cost %.6g (%s)", i + 1, len(candidates), cost, res.message)
        if best is None or cost < best[2]:
            best = (u, res, cost, i)
        if progress:
            progress("local stage (least squares)", (i + 1) / len(candidates))
    u, res, cost, i_best = best
    if loose > tol:
        u, res = _local(model, obs, u, lo, hi, max_iterations, tol=tol)
        nfev += res.nfev
        cost = float(np.sum(model.residuals(obs, u) ** 2))
        runs[i_best].update({"end": pmap.values(u), "cost": cost, "polish_nfev": int(res.nfev),
                             "status": int(res.status)})
        log.info("polished local run %d: cost %.8g (%s)", i_best + 1, cost, res.message)
    r = model.residuals(obs, u)
    good = model.row_ok(obs, u)
    if not good.any():
        raise ConvergenceError(f"no local run reached parameters the engine can solve: {pmap.values(u)}")
    J = model.jacobian(obs, u)
    return FitResult(pmap.names, u, pmap.values(u), r, J, cost, len(obs), perf_counter() - t0, runs, nfev,
                     str(res.message), int((~good).sum()))
