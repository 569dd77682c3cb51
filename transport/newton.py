"""Batched damped Newton method for square nonlinear systems.

Each case of the batch iterates independently (converged cases leave the active
set).  Globalization is Deuflhard's error-oriented damping (natural monotonicity
test, as in NLEQ-ERR; P. Deuflhard, *Newton Methods for Nonlinear Problems*,
Springer 2004, sec. 3.3): a damped step ``x + a dx`` is accepted when the
simplified Newton correction ``dxbar = -J(x)^{-1} F(x + a dx)`` shrinks,
``||dxbar|| <= (1 - a/4) ||dx||`` in a scaled norm.  This test is invariant to the
scaling of the equations, unlike a residual line search, and lets the method take
the full steps a strongly nonlinear Donnan problem needs.  The step is also
scaled so that no potential-like unknown moves by more than its cap.  The batched
LU factorizations (:class:`DenseLU`: :func:`torch.linalg.lu_factor`, LAPACK ``getrf``;
or a caller's structured one) are reused for the simplified corrections.

Convergence: ``||F||_inf < tol`` on the (dimensionless, scaled) residuals (tested
on the residual of the accepted trial point, so a converged case costs no further
Jacobian), or, for
ill-conditioned cases whose residual stalls at round-off, a scaled Newton correction
below 1e-10 (the error estimate of error-oriented Newton methods) with ``||F||_inf < 1e-6``; and
("precision limit") when the first damped trial of an iterate fails the monotonicity test although
its Newton correction is at the round-off floor -- rms below 1e-6 and every unknown's below
``LIMIT_CORRECTION`` = 1e-6 of its typical magnitude (max norm, added 2026-11-22; the rms alone
would let a correction concentrated in a few unknowns, e.g. the permeate, through) -- with
``||F||_inf < 1e-3``.  Such residuals stall on rows with large scales whose round-off floor
exceeds 1e-6 (and grows with the number of nodes); the correction, not the residual, bounds the
error.  ``NewtonReport.rule`` records which test accepted each case; a converged case with
``||F||_inf > STRICT_RESIDUAL`` is reported as loose (``BatchResult.loose``).  Measured over the
1024 ``robustness.py --quick`` samples (benchmarks/attainable_precision.py): 6 loose cases,
final residuals 1e-6..2e-4, rejections equal to 5e-15 to solves with the max-norm cap tightened
to 1e-8 and to 2e-9 (the discretization error) to node-doubled solves.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

log = logging.getLogger(__name__)

EvalFn = Callable[[np.ndarray, np.ndarray, bool], object]


@dataclass
class NewtonReport:
    """Per-case outcome of :func:`newton`."""

    converged: np.ndarray   # (B,) bool
    iterations: np.ndarray  # (B,) int
    residual: np.ndarray    # (B,) ||F||_inf at exit
    reason: np.ndarray      # (B,) str: "" or why it stopped
    rule: np.ndarray | None = None  # (B,) str: the test that accepted a converged case (see RULES)


#: the convergence tests of :func:`newton`, in the order they are tried
RULES = ("residual", "correction", "precision limit")
#: scaled residual (max norm) above which a converged case is reported as loosely converged
#: (``BatchResult.loose``): the bound of the "correction" rule; only the precision-limit rule exceeds it
STRICT_RESIDUAL = 1e-6
#: the precision-limit rule accepts only when every unknown's Newton correction (the error estimate)
#: is below this fraction of its typical magnitude (max norm; ln c_p and potentials absolute)
LIMIT_CORRECTION = 1e-6


class single_thread_torch:
    """Run torch's LAPACK calls on one thread (restored on exit).

    The batched LU factorizations are small; with several torch threads on a
    2-core machine that is busy with other work they thrash (measured: 0.4 ms vs
    300 ms for one 258x258 factorization).  Parallelism comes from chunks instead.
    """

    def __enter__(self):
        self._n = torch.get_num_threads()
        torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self._n)
        return False


class DenseLU:
    """Batched LU factorization of dense Jacobians ``J`` (B, m, m) (LAPACK ``getrf`` through torch).

    The interface every factorization passed to :func:`newton` has: ``ok`` (B,) bool (regular),
    ``take(idx)`` (a subset of the cases) and ``solve(rhs)`` (``J^-1 rhs`` for rhs (B, m))."""

    def __init__(self, J: np.ndarray):
        self.lu, self.piv, info = torch.linalg.lu_factor_ex(torch.from_numpy(J))
        self.ok = info.numpy() == 0

    def take(self, idx: np.ndarray) -> "DenseLU":
        out = object.__new__(DenseLU)
        out.lu, out.piv, out.ok = self.lu[idx], self.piv[idx], self.ok[idx]
        return out

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        return torch.linalg.lu_solve(self.lu, self.piv, torch.from_numpy(rhs)[..., None]).numpy()[..., 0]


def scaled_rms(e: np.ndarray, emax: np.ndarray | None = None) -> np.ndarray:
    """Row-wise root mean square of the scaled corrections ``e`` (B, m), without overflow.

    The rows are divided by their largest magnitude (``emax``, (B,), if the caller has it) before squaring, so a
    finite correction of any size (up to 1.8e308) has a finite norm and the monotonicity test compares two finite
    numbers; only a non-finite entry gives inf."""
    mx = np.max(np.abs(e), axis=1) if emax is None else emax
    fin = np.isfinite(mx)
    scale = np.where(fin & (mx > 0.0), mx, 1.0)
    q = np.where(fin[:, None], e / scale[:, None], 0.0)   # rows with a non-finite entry are not squared (their
    rms = scale * np.sqrt(np.mean(q * q, axis=1))           # other entries may be huge): no overflow warning
    return np.where(fin, rms, np.inf)


def newton(evaluate: EvalFn, x0: np.ndarray, caps: np.ndarray, tol: float = 1e-11,
           max_iter: int = 60, weights: np.ndarray | None = None,
           min_damping: float = 1e-6, limit_residual: float = 1e-3,
           limit_correction: float | None = None,
           factorize: Callable[[np.ndarray], object] = DenseLU) -> tuple[np.ndarray, NewtonReport]:
    """Solve ``F(x) = 0`` for a batch.

    ``evaluate(x, idx, jacobian)`` returns ``(F, J)`` (or ``F`` if ``jacobian`` is
    False) for the cases ``idx`` at the points ``x`` (rows matching ``idx``).
    ``caps`` (m,) bounds the change of each unknown per step; ``weights`` (B, m)
    are the typical magnitudes used in the norm of the monotonicity test.
    ``limit_residual`` bounds ``||F||_inf`` of a case accepted by the precision-limit rule and
    ``limit_correction`` (default: the module's ``LIMIT_CORRECTION`` at call time) the max norm
    of its scaled Newton correction ``|dx_j| / weight_j``.  ``factorize(J)`` returns the factorization
    of the Jacobians (:class:`DenseLU`, or e.g. :class:`.bordered.BorderedLU` for large block-structured
    systems); it is reused for the simplified corrections of the damping test.
    """
    if limit_correction is None:
        limit_correction = LIMIT_CORRECTION
    x = x0.copy()
    B, m = x.shape
    wts = np.ones((B, m)) if weights is None else weights
    it = np.zeros(B, int)
    res = np.full(B, np.inf)
    reason = np.full(B, "", dtype=object)
    rule = np.full(B, "", dtype=object)
    done = np.zeros(B, bool)
    damp = np.ones(B)
    active = np.arange(B)
    while active.size:
        F, J = evaluate(x[active], active, True)
        # a non-finite Jacobian shows up as a non-finite Newton step below (cheaper than scanning J)
        fin = np.all(np.isfinite(F), axis=1)
        r = np.where(fin, np.abs(np.where(np.isfinite(F), F, 0.0)).max(axis=1), np.inf)
        res[active] = r
        conv = fin & (r < tol)
        done[active[conv]] = True
        rule[active[conv]] = "residual"
        reason[active[~fin]] = "non-finite residual or Jacobian"
        over = (it[active] >= max_iter) & ~conv & fin
        reason[active[over]] = "iteration limit"
        keep = ~conv & fin & ~over
        if not keep.all():
            active, F, J = active[keep], F[keep], J[keep]
        if active.size == 0:
            break
        fac = factorize(J)
        ok = fac.ok.copy()
        dx = fac.solve(-F)
        ok &= np.all(np.isfinite(dx), axis=1)
        reason[active[~ok]] = "singular or non-finite Jacobian"
        # the caps limit the largest damping factor: lam <= 1 / max_j(|dx_j| / cap_j)
        lam_max = 1.0 / np.maximum(np.max(np.abs(np.where(np.isfinite(dx), dx, 0.0)) / caps[None, :], axis=1), 1.0)
        w = wts[active]
        e = dx / w
        edx = np.max(np.abs(e), axis=1)             # max-norm error estimate (precision-limit rule)
        ndx = scaled_rms(e, edx)
        # error-oriented convergence (NLEQ-ERR): the Newton correction estimates the error of x;
        # when it is negligible in the scaled norm the residual is at its round-off floor
        floor = ok & (ndx < 1e-10) & (r[keep] < 1e-6)
        if floor.any():
            done[active[floor]] = True
            rule[active[floor]] = "correction"
            x[active[floor]] += dx[floor]          # the (negligible) correction is at hand: take it
            ok &= ~floor
        a = np.minimum(1.0, 2.0 * damp[active])      # optimistic restart from the last damping
        accepted = ~ok                               # singular / finished ones leave the loop below
        xa = x[active].copy()
        while not accepted.all():
            pend = np.flatnonzero(~accepted)
            lam = a[pend] * lam_max[pend]
            trial = xa[pend] + lam[:, None] * dx[pend]
            Ft = evaluate(trial, active[pend], False)
            good = np.all(np.isfinite(Ft), axis=1)
            dbar = np.full_like(trial, np.inf)
            if good.any():
                dbar[good] = fac.take(pend[good]).solve(-Ft[good])
            nbar = scaled_rms(dbar / w[pend])
            acc = good & (nbar <= (1.0 - lam / 4.0) * ndx[pend]) | (ndx[pend] < 1e-13)
            xa[pend[acc]] = trial[acc]
            accepted[pend[acc]] = True
            # the residual at the accepted point is at hand: converged ones need no further evaluation
            rt = np.where(good, np.abs(np.where(np.isfinite(Ft), Ft, 0.0)).max(axis=1), np.inf)
            fin_conv = acc & (rt < tol)
            if fin_conv.any():
                # NLEQ-ERR's final update x* = x + dxbar: the simplified correction is already at hand
                xa[pend[fin_conv]] = trial[fin_conv] + dbar[fin_conv]
                done[active[pend[fin_conv]]] = True
                rule[active[pend[fin_conv]]] = "residual"
                res[active[pend[fin_conv]]] = rt[fin_conv]
                ok[pend[fin_conv]] = False
            rej = pend[~acc]
            a[rej] *= 0.5
            # precision limit: the first damped trial of an iterate whose correction (rms and max norm)
            # is already at the round-off floor fails the monotonicity test -> attainable precision
            limit = rej[(ndx[rej] < 1e-6) & (edx[rej] < limit_correction) & (r[keep][rej] < limit_residual)]
            if limit.size:
                done[active[limit]] = True
                rule[active[limit]] = "precision limit"
                for j in limit[:5] if log.isEnabledFor(logging.DEBUG) else ():
                    log.debug("precision limit: ||F||=%.3g, scaled correction rms %.3g, max %.3g",
                              r[keep][j], ndx[j], edx[j])
                accepted[limit] = True
                ok[limit] = False
                rej = np.setdiff1d(rej, limit)
            tiny = rej[a[rej] < min_damping]
            if tiny.size:
                reason[active[tiny]] = "damping below minimum"
                accepted[tiny] = True
                ok[tiny] = False
        x[active] = xa
        damp[active] = a
        it[active] += 1
        drop = ~ok
        active = active[~drop]
    return x, NewtonReport(done, it, res, reason, rule)
