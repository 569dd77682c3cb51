"""One characterization, end to end: data + fit case -> estimate, intervals, predictions, deviations.

:func:`characterize` is what ``nanosep fit`` and the demo step run: build the engine cases
from the data, fit (:mod:`.fit`), Fisher summary and (optionally) profile intervals
(:mod:`.intervals`), predictions with delta-method bands on flux curves, and the deviation
metrics (mean absolute deviation in R and in f = 1/(1-R)).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nanosep.errors import InvalidInputError
from nanosep.units import m_s_to_lmh

from .design import Cases, Observations, observations_from_table
from .fit import FitResult, Progress, fit_parameters
from .intervals import FisherSummary, ProfileSummary, fisher_summary, profile_intervals
from .likelihood import RejectionModel
from .parameters import ParameterMap
from .spec import FitCase

log = logging.getLogger(__name__)

CURVE_POINTS = 25


@dataclass
class Characterization:
    """Everything :func:`characterize` computed (tables have units in their column names)."""

    case: FitCase
    obs: Observations
    model: RejectionModel
    fit: FitResult
    fisher: FisherSummary
    profile: ProfileSummary | None
    predictions: pd.DataFrame      # the data rows + rejection_model, residual
    curves: pd.DataFrame           # group, ion, flux_L_m2_h, rejection_model, band_sd
    metrics: dict = field(default_factory=dict)


def deviation_metrics(measured, model) -> dict[str, float]:
    """Mean absolute deviation in R, and in f = 1/(1-R) (absolute, and relative to f_measured: mean and median).

    Rows with R >= 1 (f undefined) are left out of the f metrics.  A model rejection near 1 makes f_mod
    huge, so the mean in f is dominated by such rows; the median is the robust summary.
    """
    r_e, r_m = np.asarray(measured, float), np.asarray(model, float)
    ok = np.isfinite(r_e) & np.isfinite(r_m)
    fin = ok & (r_e < 1) & (r_m < 1)
    f_e, f_m = 1.0 / (1.0 - r_e[fin]), 1.0 / (1.0 - r_m[fin])
    return {"mad_rejection": float(np.mean(np.abs(r_m[ok] - r_e[ok]))),
            "mad_f": float(np.mean(np.abs(f_m - f_e))),
            "mad_f_relative": float(np.mean(np.abs(f_m / f_e - 1.0))),
            "median_f_relative": float(np.median(np.abs(f_m / f_e - 1.0))),
            "within_15pct_f": float(np.mean(np.abs(f_m / f_e - 1.0) <= 0.15)),
            "n": int(ok.sum())}


def deviation_by_group(table: pd.DataFrame, model, column: str = "dominant_salt",
                       basis_column: str = "rejection_basis") -> pd.DataFrame:
    """:func:`deviation_metrics` per value of ``column`` (rows ``group``) and overall (``"all"``).

    ``table`` has ``rejection`` (measured) and ``column``; ``model`` the model rejections, same rows.
    With a ``basis_column`` (``"salt"`` rows = the dominant salt's rejection, ``"ion"`` rows = trace
    ions, see :func:`nanosep.measured.load_fdl2021`) the MAD in R of each kind is added
    (``mad_rejection_salt``, ``mad_rejection_ion``; NaN when a group has no row of that kind).

    Raises:
        InvalidInputError: ``column`` is not in ``table`` or ``model`` has another length.
    """
    if column not in table.columns:
        raise InvalidInputError(f"deviation_by_group: column {column!r} not in the table ({list(table.columns)})")
    model = np.asarray(model, dtype=float)
    if model.shape != (len(table),):
        raise InvalidInputError(f"deviation_by_group: {model.size} model values for {len(table)} rows")
    meas = table["rejection"].to_numpy(float)
    labels = table[column].astype(str).to_numpy()
    basis = table[basis_column].astype(str).to_numpy() if basis_column in table.columns else None
    rows = []
    for g in [*sorted(set(labels)), "all"]:
        k = np.ones(len(table), bool) if g == "all" else labels == g
        row = {"group": g, **deviation_metrics(meas[k], model[k])}
        if basis is not None:
            for kind in ("salt", "ion"):
                kk = k & (basis == kind)
                row[f"mad_rejection_{kind}"] = float(np.mean(np.abs(model[kk] - meas[kk]))) if kk.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def plot_groups(obs: Observations, pmap: ParameterMap) -> pd.Series:
    """Label of each row's data set for plots: the per-data-set columns, else ``dominant_salt``, else the feed."""
    t = obs.table
    cols = sorted(set(pmap.per.values())) or (["dominant_salt"] if "dominant_salt" in t.columns else [])
    if cols:
        return t[cols].astype(str).agg(" / ".join, axis=1)
    return pd.Series([f"feed {c}" for c in obs.row_case], index=t.index)


def _curve_cases(obs: Observations, groups: pd.Series, points: int) -> tuple[Cases, np.ndarray]:
    parts, names = [], []
    for g in dict.fromkeys(groups):
        rows = np.flatnonzero((groups == g).to_numpy())
        c0 = obs.row_case[rows[0]]
        flux = obs.cases.flux_m_s[obs.row_case[rows]]
        grid = np.linspace(0.5 * flux.min(), 1.1 * flux.max(), points)
        one = obs.cases.take(np.full(points, c0))
        one.flux_m_s = grid
        parts.append(one)
        names += [g] * points
    return Cases.concat(parts), np.array(names, dtype=object)


def characterize(table: pd.DataFrame, case: FitCase, *, profile: bool | None = None, curves: bool = True,
                 curve_points: int = CURVE_POINTS, progress: Progress | None = None) -> Characterization:
    """Fit ``case`` to a validated measured-data ``table`` and quantify the uncertainty."""
    opt = case.fit
    per = tuple(sorted({p.per for p in case.parameters.values() if p.per is not None and not p.fixed}))
    obs = observations_from_table(table, per_columns=per, use_rejection_sd=opt.use_rejection_sd,
                                  salt_rows_once=opt.salt_rows_once)
    options, db = case.engine_setup()
    pmap = ParameterMap(case, obs.cases.labels)
    model = RejectionModel(pmap, options, db)
    log.info("fitting %d slots %s to %d rows (%d engine cases)", len(pmap), pmap.names, len(obs), len(obs.cases))
    if pmap.per and opt.pooled_start:
        pooled = ParameterMap(case.pooled(), obs.cases.labels)
        pfit = fit_parameters(RejectionModel(pooled, options, db), obs, starts=opt.starts,
                              local_starts=opt.local_starts, seed=opt.seed, max_iterations=opt.max_iterations,
                              tol=opt.tol, progress=progress)
        log.info("pooled fit (per-data-set parameters shared): cost %.6g, %s", pfit.cost, pfit.values)
        shared = dict(zip(pooled.names, pfit.u))
        broadcast = np.array([shared[s.parameter] for s in pmap.slots])
        fit = fit_parameters(model, obs, starts=0, extra_starts=[broadcast], max_iterations=opt.max_iterations,
                             tol=opt.tol, progress=progress)
    else:
        fit = fit_parameters(model, obs, starts=opt.starts, local_starts=opt.local_starts, seed=opt.seed,
                             max_iterations=opt.max_iterations, tol=opt.tol, progress=progress)
    fisher = fisher_summary(fit, model, sigma=opt.sigma, confidence=opt.confidence)
    do_profile = opt.profile if profile is None else profile
    prof, interrupted = None, False
    if do_profile:
        try:
            prof = profile_intervals(fit, model, obs, fisher, progress=progress)
        except KeyboardInterrupt:  # keep the finished fit: report it with Fisher intervals only
            log.warning("profile likelihood interrupted; reporting Fisher intervals only")
            interrupted = True
    pred = obs.rejection + fit.residuals / obs.weight
    predictions = obs.table.copy()
    predictions["rejection_model"] = pred
    predictions["residual"] = pred - obs.rejection
    groups = plot_groups(obs, pmap)
    predictions["group"] = groups.to_numpy()
    metrics = deviation_metrics(obs.rejection, pred)
    if "dominant_salt" in obs.table.columns:
        by = deviation_by_group(obs.table, pred)
        metrics["by_dominant_salt"] = {r.pop("group"): r for r in by.to_dict("records")}
    metrics["failed_rows"] = fit.failed_rows
    metrics["profile_interrupted"] = interrupted
    curve_df = pd.DataFrame()
    if curves:
        cc, names = _curve_cases(obs, groups, curve_points)
        R, ok, G = model.case_jacobian(cc, fit.u, with_values=True)
        cov = np.where(np.isfinite(fisher.cov_u), fisher.cov_u, 0.0)
        var = np.einsum("bnp,pq,bnq->bn", np.nan_to_num(G), cov, np.nan_to_num(G))
        rows = []
        present = cc.c_feed > 0
        for b in range(len(cc)):
            for j, ion in enumerate(cc.ions):
                if present[b, j]:
                    rows.append({"group": names[b], "ion": ion, "flux_L_m2_h": float(m_s_to_lmh(cc.flux_m_s[b])),
                                 "rejection_model": R[b, j] if ok[b] else np.nan,
                                 "band_sd": float(np.sqrt(max(var[b, j], 0.0))) if ok[b] else np.nan})
        curve_df = pd.DataFrame(rows)
        if progress:
            progress("rejection-vs-flux curves", 1.0)
    return Characterization(case, obs, model, fit, fisher, prof, predictions, curve_df, metrics)


__all__ = ["Characterization", "characterize", "deviation_by_group", "deviation_metrics"]
