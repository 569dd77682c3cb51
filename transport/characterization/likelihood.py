"""Weighted least-squares residuals of measured rejections and their Jacobian (seed 003 eq. 13).

With independent Gaussian errors of standard deviation ``sigma_j / w_j`` the negative
log-likelihood is, up to constants, ``sum_j w_j^2 (R_j^mod - R_j^exp)^2 / (2 sigma^2)``: the
maximum-likelihood estimate is the weighted least-squares one.  :class:`RejectionModel`
evaluates the residual vector ``r_j = w_j (R_j^mod(u) - R_j^exp)`` for one or many parameter
vectors ``u`` with a single batched :func:`nanosep.transport.solve_batch` call per request.

Derivatives: forward (default) or central finite differences in ``u``, all ``p`` (or ``2 p``)
perturbed parameter sets in one batch (with the base point unless it was just evaluated); a perturbation of a per-data-set slot re-solves only the cases of
that data set.  Engine failures never stop a fit: failed cases are retried once with more
coarse grids and Newton iterations, and a case that still fails gives its rows the residual
``w_j * PENALTY`` (one-sided or zero derivatives in the Jacobian).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np

from nanosep.errors import InvalidInputError
from nanosep.ions import IonDatabase

from ..options import TransportOptions
from ..solver import build_parameters, peclet_max, solve_batch
from .design import Cases, Observations
from .parameters import ParameterMap

log = logging.getLogger(__name__)

#: residual (in rejection units, times the row weight) of a row whose engine case failed
PENALTY = 1.0
#: finite-difference step in transformed space (relative to max(1, |u|)), forward and central
FD_STEP = {"forward": 1e-6, "central": 1e-5}


@dataclass
class EngineStats:
    """Counters of engine use."""

    calls: int = 0
    cases: int = 0
    failed: int = 0
    retried: int = 0


def _fingerprint(obs: Observations) -> bytes:
    """Digest of the rows' data and design: cache keys must not rely on ``id(obs)`` (ids of freed objects
    are reused, e.g. by the next synthetic replicate)."""
    h = hashlib.blake2b(digest_size=16)
    for a in (obs.rejection, obs.weight, obs.row_case, obs.row_ion, obs.intrinsic, obs.cases.c_feed,
              obs.cases.flux_m_s, obs.cases.temperature_K):
        h.update(np.ascontiguousarray(a).tobytes())
    for k in sorted(obs.cases.labels):
        h.update(k.encode() + "\x00".join(map(str, obs.cases.labels[k])).encode())
    return h.digest()


class RejectionModel:
    """Predicted rejections for observation rows (or any cases) as a function of the slot vector ``u``."""

    def __init__(self, pmap: ParameterMap, options: TransportOptions, ion_db: IonDatabase | None = None,
                 differences: str = "forward"):
        if differences not in FD_STEP:
            raise InvalidInputError(f"differences={differences!r}: choose one of {sorted(FD_STEP)}")
        self.differences = differences
        self.pmap = pmap
        self.options = options
        self.ion_db = ion_db or IonDatabase.default()
        self.retry_options = options.with_(coarse_grids=4, max_iter=max(2 * options.max_iter, 120))
        self.stats = EngineStats()
        self._cache: dict[bytes, np.ndarray] = {}
        self._rows: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}   # (predictions, ok) of cached points
        self._last_jacobian: tuple[bytes, np.ndarray] | None = None

    # ------------------------------------------------------------------ engine
    def _solve(self, cases: Cases, inputs: dict[str, np.ndarray], options: TransportOptions):
        """(intrinsic (B, n), observed (B, n), converged (B,)); engine exceptions count as failures."""
        B, n = len(cases), len(cases.ions)
        self.stats.calls += 1
        self.stats.cases += B
        try:
            res = solve_batch(cases.ions, cases.c_feed, flux_m_s=cases.flux_m_s, temperature_K=cases.temperature_K,
                              options=options, ion_db=self.ion_db, strict=False, **inputs)
        except Exception as exc:  # noqa: BLE001 - a fit must survive any engine failure; logged
            log.warning("engine batch of %d cases failed (%s: %s); penalized", B, type(exc).__name__, exc)
            nan = np.full((B, n), np.nan)
            return nan, nan.copy(), np.zeros(B, bool)
        with np.errstate(invalid="ignore", divide="ignore"):
            ri, ro = res.rejection_intrinsic, res.rejection_observed
        ok = res.converged & np.isfinite(np.where(cases.c_feed > 0, ri, 0.0)).all(axis=1)
        return ri, ro, ok

    def solve_sets(self, cases: Cases, U: np.ndarray, subsets: list[np.ndarray] | None = None, retry: bool = True):
        """Solve the cases ``subsets[k]`` at parameters ``U[k]`` for every k in one engine batch.

        ``retry``: re-solve failed cases once with :attr:`retry_options` (off in the global stage).

        Returns a list of ``(intrinsic, observed, converged)`` per set (rows = that set's cases).
        """
        U = np.atleast_2d(U)
        subsets = subsets if subsets is not None else [np.arange(len(cases))] * len(U)
        parts = [cases.take(s) for s in subsets]
        big = Cases.concat(parts)
        inputs = [self.pmap.engine_inputs(u, p) for u, p in zip(U, parts)]
        inputs = {k: np.concatenate([d[k] for d in inputs]) for k in inputs[0]}
        ri, ro, ok = self._solve(big, inputs, self.options)
        if retry and not ok.all():
            bad = np.flatnonzero(~ok)
            self.stats.retried += bad.size
            ri2, ro2, ok2 = self._solve(big.take(bad), {k: v[bad] for k, v in inputs.items()}, self.retry_options)
            ri[bad], ro[bad], ok[bad] = ri2, ro2, ok2
            self.stats.failed += int((~ok2).sum())
            if (~ok2).any():
                log.info("%d of %d engine cases failed after a retry; their rows are penalized", int((~ok2).sum()),
                         len(big))
        out, start = [], 0
        for s in subsets:
            stop = start + len(s)
            out.append((ri[start:stop], ro[start:stop], ok[start:stop]))
            start = stop
        return out

    def peclet_max(self, cases: Cases, u) -> np.ndarray:
        """Largest ion Peclet number ``K_c J_v dx_e / (K_d D_i)`` of each case (B,) at ``u`` (closed form, no solve).

        Present ions that fit into the pores only (as :func:`nanosep.transport.solver.peclet_max`).  A case
        with a large value has a boundary layer of width ~dx_e/Pe at the permeate end, which the engine
        resolves by flux continuation at a cost of seconds per case (see :func:`.fit.fit_parameters`).
        """
        inp = self.pmap.engine_inputs(np.asarray(u, float), cases)
        db = self.ion_db
        ions = [db.get(i).name for i in cases.ions]
        prm = build_parameters(
            ions, np.array([db.get(i).charge for i in ions], float), np.array([db.get(i).stokes_radius_m for i in ions]),
            np.array([db.get(i).diffusivity_m2_s for i in ions]), cases.c_feed, cases.flux_m_s,
            inp["pore_radius_m"], inp["thickness_m"], inp["pore_dielectric"], inp["charge_density_mol_m3"],
            cases.temperature_K, self.options.with_(grid_map_peclet=None))
        return peclet_max(prm, present=cases.c_feed > 0)

    # ------------------------------------------------------------------ rows
    def row_predictions(self, obs: Observations, U: np.ndarray, subsets: list[np.ndarray] | None = None,
                        retry: bool = True):
        """Predicted rejection of every row for each parameter vector: (K, N) values and (K, N) ok mask.

        Rows whose case is not in that vector's subset are NaN with ok False.
        """
        U = np.atleast_2d(U)
        K, N = len(U), len(obs)
        pred, good = np.full((K, N), np.nan), np.zeros((K, N), bool)
        subsets = subsets if subsets is not None else [np.arange(len(obs.cases))] * K
        for k, (s, (ri, ro, ok)) in enumerate(zip(subsets, self.solve_sets(obs.cases, U, subsets, retry))):
            pos = np.full(len(obs.cases), -1)
            pos[s] = np.arange(len(s))
            p = pos[obs.row_case]
            have = p >= 0
            rows = np.flatnonzero(have)
            vals = np.where(obs.intrinsic[rows], ri[p[rows], obs.row_ion[rows]], ro[p[rows], obs.row_ion[rows]])
            pred[k, rows] = vals
            good[k, rows] = ok[p[rows]] & np.isfinite(vals)
        return pred, good

    def residuals_many(self, obs: Observations, U: np.ndarray) -> np.ndarray:
        """Weighted residuals (K, N), failed rows at ``w * PENALTY``."""
        pred, good = self.row_predictions(obs, U)
        r = obs.weight * (pred - obs.rejection)
        return np.where(good, r, obs.weight * PENALTY)

    def residuals(self, obs: Observations, u) -> np.ndarray:
        """Weighted residual vector (N,) at ``u`` (cached per ``u``)."""
        u = np.asarray(u, dtype=float)
        key = u.tobytes() + _fingerprint(obs)
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
                self._rows.clear()
            pred, good = self.row_predictions(obs, u[None, :])
            self._rows[key] = (pred[0], good[0])
            self._cache[key] = np.where(good[0], obs.weight * (pred[0] - obs.rejection), obs.weight * PENALTY)
        return self._cache[key]

    def row_ok(self, obs: Observations, u) -> np.ndarray:
        """(N,) mask of the rows whose engine case converged at ``u`` (from the residual cache when possible)."""
        u = np.asarray(u, dtype=float)
        self.residuals(obs, u)
        return self._rows[u.tobytes() + _fingerprint(obs)][1].copy()

    def _perturbations(self, u, step):
        h = step * np.maximum(1.0, np.abs(u))
        signs = (1.0,) if self.differences == "forward" else (1.0, -1.0)
        U = []
        for k in range(u.size):
            for sgn in signs:
                v = u.copy()
                v[k] += sgn * h[k]
                U.append(v)
        return h, signs, U

    def jacobian(self, obs: Observations, u, step: float | None = None) -> np.ndarray:
        """d residuals / d u (N, p) by finite differences, base point and perturbations in one batch.

        A perturbed case that fails falls back to the other side (central) or gives a zero derivative.
        """
        u = np.asarray(u, dtype=float)
        key = u.tobytes() + _fingerprint(obs) + repr(step).encode()
        if self._last_jacobian is not None and self._last_jacobian[0] == key:
            return self._last_jacobian[1].copy()
        p = u.size
        h, signs, pert = self._perturbations(u, FD_STEP[self.differences] if step is None else step)
        base_key = u.tobytes() + _fingerprint(obs)
        known = self._rows.get(base_key)   # least_squares evaluates the residuals at u before the Jacobian
        if known is not None and not known[1].all():
            known = None                   # re-solve a base point with failed rows (a failure may be transient)
        subsets = [] if known is not None else [np.arange(len(obs.cases))]
        for k in range(p):
            subsets += [self.pmap.slot_cases(k, obs.cases)] * len(signs)
        U = np.array(pert) if known is not None else np.array([u, *pert])
        pred, good = self.row_predictions(obs, U, subsets)
        if known is not None:
            pred, good = np.vstack([known[0][None], pred]), np.vstack([known[1][None], good])
        base, gb = pred[0], good[0]
        self._rows[base_key] = (base, gb)
        self._cache[base_key] = np.where(gb, obs.weight * (base - obs.rejection), obs.weight * PENALTY)
        J = np.zeros((len(obs), p))
        m = len(signs)
        for k in range(p):
            pp, gp = pred[1 + m * k], good[1 + m * k]
            d = np.zeros(len(obs))
            if m == 2:
                pm, gm = pred[2 + m * k], good[2 + m * k]
                both = gp & gm
                d[both] = (pp[both] - pm[both]) / (2 * h[k])
                bwd = gm & ~gp & gb
                d[bwd] = (base[bwd] - pm[bwd]) / h[k]
                fwd = gp & ~gm & gb
            else:
                fwd = gp & gb
            d[fwd] = (pp[fwd] - base[fwd]) / h[k]
            J[:, k] = obs.weight * d
        self._last_jacobian = (key, J.copy())
        return J

    # ------------------------------------------------------------------ curves
    def predict_cases(self, cases: Cases, u, observed: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Rejection (B, n) of every ion at ``u`` and the converged mask (B,)."""
        ri, ro, ok = self.solve_sets(cases, np.asarray(u, float)[None, :])[0]
        return (ro if observed else ri), ok

    def case_jacobian(self, cases: Cases, u, step: float | None = None, observed: bool = False,
                      with_values: bool = False):
        """d rejection / d u, (B, n, p), finite differences in one batch (NaN where a case failed).

        ``with_values``: return ``(rejection (B, n), converged (B,), jacobian)`` (the base point is in the batch).
        """
        u = np.asarray(u, dtype=float)
        h, signs, pert = self._perturbations(u, FD_STEP[self.differences] if step is None else step)
        sets = self.solve_sets(cases, np.array([u, *pert]))
        pick = (lambda s: s[1]) if observed else (lambda s: s[0])
        base, okb = pick(sets[0]), sets[0][2]
        J = np.full((len(cases), len(cases.ions), u.size), np.nan)
        m = len(signs)
        for k in range(u.size):
            a, oka = pick(sets[1 + m * k]), sets[1 + m * k][2]
            b, okb2 = (pick(sets[2 + m * k]), sets[2 + m * k][2]) if m == 2 else (base, okb)
            d = (a - b) / (m * h[k])
            d[~(oka & okb2)] = np.nan
            J[:, :, k] = d
        return (base, okb, J) if with_values else J
