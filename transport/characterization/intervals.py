"""Uncertainty of a fit: Fisher (Gauss-Newton) covariance, profile likelihood, identifiability.

Fisher: with weighted residuals ``r(u)`` and Jacobian ``J = dr/du`` at the estimate, the
observed Fisher information of the Gaussian likelihood is ``J^T J / s^2``, so
``cov(u) = s^2 (J^T J)^-1`` with ``s^2 = 1`` (``sigma="known"``: the weights are 1/sd) or
``s^2 = RSS / (N - p)`` (``sigma="estimated"``: a common unknown sigma).  Intervals are
``u +- q se`` in transformed space (``q``: Student t with N - p degrees of freedom, or normal
when sigma is known) and mapped back, so log-transformed parameters get asymmetric intervals.

Profile likelihood: for each slot, ``Delta(u_k) = (min_{other} RSS - RSS_min) / s^2``; the
interval is where ``Delta <= q^2`` (for a linear model this equals the Fisher interval
exactly; for a non-linear one it follows the true shape of the likelihood).

Test inversion (:func:`profile_statistic`, :func:`joint_statistic`): whether a given value lies
inside the profile interval is the likelihood-ratio test ``Delta(value) <= q^2`` (one constrained
re-fit), and the joint ``confidence`` region of all slots is ``(RSS(u) - RSS_min) / s^2 <= p F(p, N - p)``
(``chi2(p)`` with known sigma); :func:`joint_threshold`.  The coverage benchmark uses these.

Which interval is reported (:func:`reported_intervals`): the profile-likelihood interval where it
was computed, else the Fisher one.  On a non-linear, weakly identified problem the Fisher
interval of a well-determined parameter under-covers when the estimate of a correlated one sits
on a curved ridge or on its bound (benchmarks/characterization.py: charge density 0.84 with
Fisher; the likelihood-ratio interval follows the ridge).

Identifiability: singular values of the column-normalized Jacobian; a ratio
``s_min / s_max`` below :data:`FLAT_RATIO` means a direction along which the data hardly
change the likelihood; the warning names the parameter combination.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from nanosep.errors import InvalidInputError

from .design import Observations
from .fit import FitResult, Progress, _local
from .likelihood import RejectionModel

log = logging.getLogger(__name__)

#: smallest / largest singular value of the column-normalized Jacobian below which a direction is "flat"
FLAT_RATIO = 1e-3
#: a log-transformed slot with a Fisher standard error above this (a factor e) is "poorly determined"
POOR_SE_LOG = 1.0


@dataclass
class FisherSummary:
    """Fisher covariance in transformed space, intervals in user units, correlation, identifiability."""

    names: list[str]
    estimate: dict[str, float]
    se_u: np.ndarray
    cov_u: np.ndarray
    correlation: np.ndarray
    lower: dict[str, float]
    upper: dict[str, float]
    se: dict[str, float]           # delta-method standard error in user units
    s2: float
    quantile: float
    singular_values: np.ndarray    # of the column-normalized Jacobian, descending
    flat_direction: dict[str, float] | None
    warnings: list[str] = field(default_factory=list)


def _quantile(confidence: float, dof: int, sigma: str) -> float:
    a = 0.5 * (1.0 + confidence)
    return float(stats.norm.ppf(a) if sigma == "known" else stats.t.ppf(a, dof))


def fisher_summary(fit: FitResult, model: RejectionModel, *, sigma: str = "estimated",
                   confidence: float = 0.95) -> FisherSummary:
    """Gauss-Newton covariance, intervals, correlation matrix and identifiability of ``fit``."""
    pmap = model.pmap
    J = fit.jacobian
    p = J.shape[1]
    s2 = 1.0 if sigma == "known" else fit.cost / fit.dof
    _, S, Vt = np.linalg.svd(J, full_matrices=False)
    tol = S.max(initial=0.0) * max(J.shape) * np.finfo(float).eps
    inv = np.where(S > tol, 1.0 / np.where(S > tol, S, 1.0) ** 2, np.inf)
    cov = s2 * (Vt.T * np.where(np.isfinite(inv), inv, 0.0)) @ Vt
    if not np.isfinite(inv).all():  # singular: infinite variance along the null directions
        null = Vt[~np.isfinite(inv)]
        cov = np.where(np.abs(null.T) @ np.abs(null) > 0, np.inf, cov)
    se_u = np.sqrt(np.diag(cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(se_u, se_u)
    q = _quantile(confidence, fit.dof, sigma)
    lower, upper, se, warnings = {}, {}, {}, []
    for k, s in enumerate(pmap.slots):
        lo_u, hi_u = fit.u[k] - q * se_u[k], fit.u[k] + q * se_u[k]
        lower[s.name] = float(s.to_value(lo_u)) if np.isfinite(lo_u) else -np.inf
        upper[s.name] = float(s.to_value(hi_u)) if np.isfinite(hi_u) else np.inf
        deriv = float(s.to_value(fit.u[k])) if s.transform == "log" else 1.0
        se[s.name] = float(abs(deriv) * se_u[k])
        if s.transform == "log" and se_u[k] > POOR_SE_LOG:
            warnings.append(f"{s.name} is poorly determined: Fisher standard error of ln value {se_u[k]:.3g} "
                            f"(more than a factor e)")
    norms = np.linalg.norm(J, axis=0)
    Js = J / np.where(norms > 0, norms, 1.0)
    _, Ss, Vts = np.linalg.svd(Js, full_matrices=False)
    flat = None
    if p and (norms == 0).any():
        k = int(np.flatnonzero(norms == 0)[0])
        flat = {pmap.names[k]: 1.0}
        warnings.append(f"not identifiable: the data do not depend on {pmap.names[k]} at the estimate")
    elif p > 1 and Ss[-1] < FLAT_RATIO * Ss[0]:
        v = Vts[-1]
        flat = {n: float(x) for n, x in zip(pmap.names, v) if abs(x) > 0.1}
        combo = " ".join(f"{x:+.2f}*{n}" for n, x in flat.items())
        warnings.append(f"flat direction (identifiability): singular-value ratio {Ss[-1] / Ss[0]:.2e} < {FLAT_RATIO:g}; "
                        f"the data barely constrain the combination {combo} of the (scaled, transformed) slots")
    for w in warnings:
        log.warning(w)
    return FisherSummary(pmap.names, dict(fit.values), se_u, cov, corr, lower, upper, se, s2, q, Ss, flat, warnings)


@dataclass
class ProfileSummary:
    """Profile-likelihood intervals (user units); ``*_reached`` False where a bound came first."""

    lower: dict[str, float]
    upper: dict[str, float]
    lower_reached: dict[str, bool]
    upper_reached: dict[str, bool]
    points: dict[str, list[tuple[float, float]]]   # slot -> [(user value, Delta)]
    threshold: float
    seconds: float = 0.0


#: relative tolerance of the re-fits along a profile (Delta is needed to ~1e-3, not to machine precision)
PROFILE_TOL = 1e-8


def _delta_at(model, obs, fit, k, value_u, warm, s2, max_iter):
    """(Delta, u) with slot k held at ``value_u``, the others re-fitted from ``warm``."""
    pmap = model.pmap
    u = warm.copy()
    u[k] = value_u
    free = np.ones(u.size, bool)
    free[k] = False
    if free.any():
        u, _ = _local(model, obs, u, pmap.lower, pmap.upper, max_iter, free=free, tol=PROFILE_TOL)
    cost = float(np.sum(model.residuals(obs, u) ** 2))
    return (cost - fit.cost) / s2, u


def profile_intervals(fit: FitResult, model: RejectionModel, obs: Observations, fisher: FisherSummary, *,
                      max_iter: int = 20, refine: int = 1, progress: Progress | None = None) -> ProfileSummary:
    """Profile-likelihood intervals at the confidence level of ``fisher`` (threshold ``q^2``).

    Walks out from the estimate in steps of the Fisher half-width (1, 1.6, 2.5, 4, 6.5 x), brackets
    the crossing of ``sqrt(Delta) = q`` and refines it by ``refine`` regula-falsi steps on
    ``sqrt(Delta)`` (linear in the parameter for a linear model).  Stops at the slot's bounds.
    """
    from time import perf_counter

    t0 = perf_counter()
    pmap = model.pmap
    thr = fisher.quantile ** 2
    lower, upper, lo_ok, hi_ok, points = {}, {}, {}, {}, {}
    total = 2 * len(pmap)
    for k, s in enumerate(pmap.slots):
        width = fisher.quantile * fisher.se_u[k]
        span = s.upper - s.lower
        width = span / 4 if not np.isfinite(width) or width <= 0 else min(width, span)
        points[s.name] = [(float(s.to_value(fit.u[k])), 0.0)]
        for side, d in enumerate((-1.0, 1.0)):
            bound = s.lower if d < 0 else s.upper
            a_t, a_root, a_u = 0.0, 0.0, fit.u.copy()
            b = None
            for mult in (1.0, 1.6, 2.5, 4.0, 6.5):
                val = fit.u[k] + d * mult * width
                at_bound = (val - bound) * d >= 0
                val = bound if at_bound else val
                dl, u = _delta_at(model, obs, fit, k, val, a_u, fisher.s2, max_iter)
                points[s.name].append((float(s.to_value(val)), dl))
                t = abs(val - fit.u[k])
                root = np.sqrt(max(dl, 0.0))
                if dl >= thr:
                    b = (t, root, u)
                    break
                a_t, a_root, a_u = t, root, u
                if at_bound:
                    break
            if b is None:
                reached, t_cross = False, abs(bound - fit.u[k])
            else:
                reached = True
                for _ in range(refine):
                    b_t, b_root, _ = b
                    frac = (np.sqrt(thr) - a_root) / max(b_root - a_root, 1e-300)
                    t_new = a_t + frac * (b_t - a_t)
                    dl, u = _delta_at(model, obs, fit, k, fit.u[k] + d * t_new, a_u, fisher.s2, max_iter)
                    points[s.name].append((float(s.to_value(fit.u[k] + d * t_new)), dl))
                    root = np.sqrt(max(dl, 0.0))
                    if dl >= thr:
                        b = (t_new, root, u)
                    else:
                        a_t, a_root, a_u = t_new, root, u
                b_t, b_root, _ = b
                frac = (np.sqrt(thr) - a_root) / max(b_root - a_root, 1e-300)
                t_cross = a_t + frac * (b_t - a_t)
            value = float(s.to_value(fit.u[k] + d * t_cross))
            if d < 0:
                lower[s.name], lo_ok[s.name] = value, reached
            else:
                upper[s.name], hi_ok[s.name] = value, reached
            if progress:
                progress("profile likelihood", (2 * k + side + 1) / total)
        points[s.name].sort()
        log.info("profile %s: [%.6g, %.6g]%s", s.name, lower[s.name], upper[s.name],
                 "" if lo_ok[s.name] and hi_ok[s.name] else " (a bound reached first)")
    return ProfileSummary(lower, upper, lo_ok, hi_ok, points, thr, perf_counter() - t0)


def profile_statistic(fit: FitResult, model: RejectionModel, obs: Observations, s2: float, name: str,
                      value: float, *, max_iter: int = 20) -> float:
    """``Delta`` of the profile likelihood at slot ``name`` = ``value`` (user units): the others re-fitted.

    ``value`` lies in the profile interval of :func:`profile_intervals` iff ``Delta <= q^2``
    (likelihood-ratio test inversion); one constrained local fit, warm-started at the estimate.

    Raises:
        InvalidInputError: unknown slot name, or a value outside the slot's bounds.
    """
    pmap = model.pmap
    if name not in pmap.names:
        raise InvalidInputError(f"profile_statistic: unknown slot {name!r} (slots: {pmap.names})")
    k = pmap.names.index(name)
    s = pmap.slots[k]
    v_u = float(s.to_u(value)) if (s.transform != "log" or value > 0) else -np.inf
    if not (s.lower - 1e-12 <= v_u <= s.upper + 1e-12):
        raise InvalidInputError(f"profile_statistic: {name} = {value!r} outside its bounds "
                                f"[{float(s.to_value(s.lower)):.6g}, {float(s.to_value(s.upper)):.6g}]")
    dl, _ = _delta_at(model, obs, fit, k, v_u, fit.u.copy(), s2, max_iter)
    return float(dl)


def joint_statistic(fit: FitResult, model: RejectionModel, obs: Observations, s2: float, u) -> float:
    """``(RSS(u) - RSS_min) / s^2`` of a full slot vector ``u`` (transformed space)."""
    return float((np.sum(model.residuals(obs, np.asarray(u, float)) ** 2) - fit.cost) / s2)


def joint_threshold(p: int, dof: int, *, confidence: float = 0.95, sigma: str = "estimated") -> float:
    """Threshold of :func:`joint_statistic` for the joint ``confidence`` region of ``p`` slots:
    ``p F_{p, dof}(confidence)`` with estimated sigma, ``chi2_p(confidence)`` with known sigma."""
    if sigma == "known":
        return float(stats.chi2.ppf(confidence, p))
    return float(p * stats.f.ppf(confidence, p, dof))


def reported_intervals(fisher: FisherSummary, profile: ProfileSummary | None = None) -> dict[str, dict]:
    """The interval the product reports per slot: ``{name: {"lower", "upper", "method"}}`` (user units).

    The profile-likelihood interval where ``profile`` has it (it follows the non-linear shape of the
    likelihood; an end that met the slot's bound is that bound), else the Fisher interval.
    """
    out = {}
    for name in fisher.names:
        if profile is not None and name in profile.lower:
            out[name] = {"lower": profile.lower[name], "upper": profile.upper[name], "method": "profile"}
        else:
            out[name] = {"lower": fisher.lower[name], "upper": fisher.upper[name], "method": "fisher"}
    return out
