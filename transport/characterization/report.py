"""Files of a characterization: parameters with intervals (JSON), tables (CSV), figures (PNG), report (Markdown).

Figures are matplotlib :class:`~matplotlib.figure.Figure` objects on Agg canvases (no pyplot).

``parameters.json`` (keys; user units: nm, um, -, mol/m3; ``null`` for a non-finite number):

* ``parameters``: per fitted slot (``pore_radius_nm``, ``charge_density_mol_m3[NaCl]`` for a per-data-set
  slot): ``estimate``, ``se`` (delta method), ``fisher_lower/upper``, ``profile_lower/upper`` (+ ``_reached``)
  when profiles ran, ``lower``/``upper``/``interval_method``: the reported interval (profile likelihood
  where computed, else Fisher; :func:`.intervals.reported_intervals`), ``at_bound``.
* ``covariance``: the Fisher covariance for propagation studies: ``parameters`` (slot names, the order of
  the matrices), ``mean`` (estimates) and ``cov`` in user units (delta method ``D C_u D``, ``D`` =
  d value / d u), and ``transformed``: ``transform`` per slot (``log``: u = ln value; ``linear``: u = value),
  ``mean_u``, ``cov_u`` (where the fit is Gaussian; sample there and map back for positive parameters).
  A ``covariance`` study of ``nanosep uq`` takes ``parameters``, ``mean`` and ``cov`` as they are (slot
  names with ``[label]`` must be mapped to the plain parameter name by choosing one data set).
* ``correlation`` (names, matrix), ``identifiability``, ``fit`` (cost, dof, s2, timing, engine use),
  ``fixed``, ``metrics``, ``confidence``, ``sigma``.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .intervals import reported_intervals
from .workflow import Characterization

log = logging.getLogger(__name__)

#: relative band of the parity plot (seed 003 Fig. 2A: +-15 %)
PARITY_BAND = 0.15


def _figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (6.0, 5.0)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _num(v):
    v = float(v)
    return v if math.isfinite(v) else None


def parameter_table(ch: Characterization) -> pd.DataFrame:
    """One row per fitted slot: estimate, Fisher se and interval, profile interval (user units)."""
    rows = []
    f, pr = ch.fisher, ch.profile
    for k, name in enumerate(f.names):
        row = {"parameter": name, "estimate": f.estimate[name], "se": f.se[name],
               "fisher_lower": f.lower[name], "fisher_upper": f.upper[name]}
        if pr is not None:
            row.update({"profile_lower": pr.lower[name], "profile_upper": pr.upper[name],
                        "profile_lower_reached": pr.lower_reached[name],
                        "profile_upper_reached": pr.upper_reached[name]})
        rep = reported_intervals(f, pr)[name]
        row.update({"lower": rep["lower"], "upper": rep["upper"], "interval_method": rep["method"]})
        slot = ch.model.pmap.slots[k]
        row["at_bound"] = bool(np.isclose(ch.fit.u[k], slot.lower, atol=1e-6) or
                               np.isclose(ch.fit.u[k], slot.upper, atol=1e-6))
        rows.append(row)
    return pd.DataFrame(rows)


def covariance_json(ch: Characterization) -> dict:
    """The ``covariance`` block of parameters.json (see the module docstring)."""
    f, slots = ch.fisher, ch.model.pmap.slots
    u = np.asarray(ch.fit.u, float)
    d = np.array([float(s.to_value(x)) if s.transform == "log" else 1.0 for s, x in zip(slots, u)])
    with np.errstate(invalid="ignore"):
        cov = f.cov_u * np.outer(d, d)

    def mat(m):
        return [[_num(x) for x in row] for row in m]

    return {"parameters": list(f.names), "mean": [f.estimate[n] for n in f.names], "cov": mat(cov),
            "transformed": {"transform": [s.transform for s in slots], "mean_u": [float(x) for x in u],
                            "cov_u": mat(f.cov_u)}}


def parameters_json(ch: Characterization) -> dict:
    """The JSON document of ``parameters.json``."""
    tab = parameter_table(ch)
    fixed = dict(ch.model.pmap.fixed)
    return {
        "name": ch.case.name,
        "confidence": ch.case.fit.confidence,
        "sigma": ch.case.fit.sigma,
        "parameters": {r["parameter"]: {k: (_num(v) if isinstance(v, (float, np.floating)) else v)
                                        for k, v in r.items() if k != "parameter"} for r in tab.to_dict("records")},
        "fixed": fixed,
        "covariance": covariance_json(ch),
        "correlation": {"names": ch.fisher.names,
                        "matrix": [[_num(x) for x in row] for row in ch.fisher.correlation]},
        "identifiability": {"scaled_singular_values": [float(s) for s in ch.fisher.singular_values],
                            "flat_direction": ch.fisher.flat_direction, "warnings": ch.fisher.warnings},
        "fit": {"cost": ch.fit.cost, "n_obs": ch.fit.n_obs, "dof": ch.fit.dof, "s2": ch.fisher.s2,
                "seconds": ch.fit.seconds, "local_runs": ch.fit.starts, "failed_rows": ch.fit.failed_rows,
                "engine_calls": ch.model.stats.calls, "engine_cases": ch.model.stats.cases,
                "profile_seconds": ch.profile.seconds if ch.profile else None},
        "metrics": ch.metrics,
    }


def parity_figure(ch: Characterization, path: Path, *, other: pd.DataFrame | None = None, other_label: str = ""):
    """Model vs measured f = 1/(1-R) (log axes) and R, with +-15 % bands; ``other`` = extra (measured, model) pairs."""
    fig, ax = _figure(1, 2, (11.0, 5.0))
    t = ch.predictions
    groups = list(dict.fromkeys(t["group"]))
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    markers = "osD^v<>ph*"
    for gi, g in enumerate(groups):
        sel = t[t["group"] == g]
        for ii, ion in enumerate(dict.fromkeys(sel["ion"])):
            s = sel[sel["ion"] == ion]
            kw = {"color": cmap(gi % 10), "marker": markers[ii % len(markers)], "s": 22, "alpha": 0.8,
                  "label": f"{g}: {ion}"}
            fe, fm = 1 / (1 - s["rejection"]), 1 / (1 - s["rejection_model"])
            ax[0, 0].scatter(fe, fm, **kw)
            ax[0, 1].scatter(s["rejection"], s["rejection_model"], **kw)
    if other is not None and len(other):
        ax[0, 0].scatter(1 / (1 - other["rejection"]), 1 / (1 - other["rejection_model"]), marker="x", color="k",
                         s=14, alpha=0.6, label=other_label)
    f_all = 1 / (1 - np.concatenate([t["rejection"], t["rejection_model"]]))
    f_all = f_all[np.isfinite(f_all) & (f_all > 0)]
    lo, hi = f_all.min() / 1.2, f_all.max() * 1.2
    x = np.geomspace(lo, hi, 50)
    for a, xs, lab in ((ax[0, 0], x, "f = 1/(1-R)"), (ax[0, 1], np.linspace(min(t["rejection"].min(), 0) - 0.05, 1, 50),
                                                       "rejection R")):
        a.plot(xs, xs, "k-", lw=1)
        a.plot(xs, xs * (1 + PARITY_BAND), "k--", lw=0.8, label="+-15 %")
        a.plot(xs, xs * (1 - PARITY_BAND), "k--", lw=0.8)
        a.set_xlabel(f"measured {lab}")
        a.set_ylabel(f"model {lab}")
    ax[0, 0].set_xscale("log")
    ax[0, 0].set_yscale("log")
    ax[0, 0].set_xlim(lo, hi)
    ax[0, 0].set_ylim(lo, hi)
    ax[0, 1].legend(fontsize=6, ncol=2, loc="upper left")
    m = ch.metrics
    fig.suptitle(f"parity: MAD(R) = {m['mad_rejection']:.3f}; |f_mod/f_exp - 1|: mean {m['mad_f_relative']:.3f}, "
                 f"median {m['median_f_relative']:.3f}")
    fig.savefig(path, dpi=120)
    log.info("wrote %s", path)


def curves_figure(ch: Characterization, path: Path, q: float):
    """Rejection vs flux per data set: model curves with +-q sd delta-method bands and the data."""
    from matplotlib import colormaps

    groups = list(dict.fromkeys(ch.curves["group"]))
    ncols = min(2, len(groups))
    nrows = int(np.ceil(len(groups) / ncols))
    fig, ax = _figure(nrows, ncols, (5.5 * ncols, 4.0 * nrows))
    cmap = colormaps["tab10"]
    t = ch.predictions
    for gi, g in enumerate(groups):
        a = ax[gi // ncols, gi % ncols]
        c = ch.curves[ch.curves["group"] == g]
        for ii, ion in enumerate(dict.fromkeys(c["ion"])):
            ci = c[c["ion"] == ion]
            col = cmap(ii % 10)
            a.plot(ci["flux_L_m2_h"], ci["rejection_model"], color=col, lw=1.2, label=ion)
            a.fill_between(ci["flux_L_m2_h"], ci["rejection_model"] - q * ci["band_sd"],
                           ci["rejection_model"] + q * ci["band_sd"], color=col, alpha=0.2, lw=0)
            d = t[(t["group"] == g) & (t["ion"] == ion)]
            if len(d):
                a.scatter(d["flux_L_m2_h"], d["rejection"], color=col, s=16)
        a.set_title(str(g))
        a.set_xlabel("water flux J_v [L/m2/h]")
        a.set_ylabel("rejection [-]")
        a.legend(fontsize=7)
    for k in range(len(groups), nrows * ncols):
        ax[k // ncols, k % ncols].set_visible(False)
    fig.suptitle(f"fitted model (lines), {100 * ch.case.fit.confidence:.0f} % bands (Fisher, delta method), data")
    fig.savefig(path, dpi=120)
    log.info("wrote %s", path)


def md_table(header, rows) -> str:
    """A Markdown table (pandas' to_markdown needs the optional tabulate package)."""
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(ch: Characterization, files: dict[str, str], extra: str = "") -> str:
    """A short report of the fit."""
    tab = parameter_table(ch)
    conf = f"{100 * ch.case.fit.confidence:.0f} %"
    head = ["parameter", "estimate", f"Fisher {conf}"] + ([f"profile {conf}"] if ch.profile else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in tab.to_dict("records"):
        cells = [r["parameter"] + (" (at bound)" if r["at_bound"] else ""), f"{r['estimate']:.4g}",
                 f"[{r['fisher_lower']:.4g}, {r['fisher_upper']:.4g}]"]
        if ch.profile:
            lo = f"{r['profile_lower']:.4g}" + ("" if r["profile_lower_reached"] else " (bound)")
            hi = f"{r['profile_upper']:.4g}" + ("" if r["profile_upper_reached"] else " (bound)")
            cells.append(f"[{lo}, {hi}]")
        lines.append("| " + " | ".join(cells) + " |")
    fixed = ", ".join(f"{k} = {v:g}" for k, v in ch.model.pmap.fixed.items()) or "none"
    m = ch.metrics
    warn = "\n".join(f"- WARNING: {w}" for w in ch.fisher.warnings) or "- none"
    corr = md_table(["", *ch.fisher.names], [[n, *(f"{x:+.3f}" for x in row)]
                                             for n, row in zip(ch.fisher.names, ch.fisher.correlation)])
    return (f"# Membrane characterization: {ch.case.name or 'fit'}\n\n"
            f"Maximum-likelihood fit (weighted least squares, seed 003 eq. 13) of {len(tab)} parameter(s) to "
            f"{ch.fit.n_obs} measured rejections ({len(ch.obs.cases)} engine operating points); sigma "
            f"{ch.case.fit.sigma} (s^2 = {ch.fisher.s2:.3g}); fit time {ch.fit.seconds:.1f} s"
            + (f", profiles {ch.profile.seconds:.1f} s" if ch.profile else "") + ".\n\n"
            + "\n".join(lines) + f"\n\nFixed: {fixed}.\n\n"
            f"Deviation: mean |R_mod - R_exp| = {m['mad_rejection']:.4f}; mean |f_mod - f_exp| = {m['mad_f']:.3f} "
            f"with f = 1/(1-R); mean |f_mod/f_exp - 1| = {m['mad_f_relative']:.3f} (median "
            f"{m['median_f_relative']:.3f}); "
            f"{100 * m['within_15pct_f']:.0f} % of points within +-15 % in f.\n\n"
            f"Identifiability:\n{warn}\n\nCorrelation matrix (transformed parameters):\n\n"
            + corr + "\n\n" + extra
            + "\n\nFiles: " + ", ".join(f"`{v}`" for v in files.values()) + "\n")


def write_outputs(ch: Characterization, out_dir: Path, *, extra_markdown: str = "",
                  other: pd.DataFrame | None = None, other_label: str = "") -> dict[str, str]:
    """Write parameters.json, parameters.csv, correlation.csv, predictions.csv, curves.csv, parity.png,
    rejection_vs_flux.png and report.md into ``out_dir``; returns {kind: file name}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"parameters": "parameters.json", "table": "parameters.csv", "correlation": "correlation.csv",
             "predictions": "predictions.csv", "parity": "parity.png", "report": "report.md"}
    (out_dir / files["parameters"]).write_text(json.dumps(parameters_json(ch), indent=2, default=_num),
                                              encoding="utf-8")
    parameter_table(ch).to_csv(out_dir / files["table"], index=False)
    pd.DataFrame(ch.fisher.correlation, index=ch.fisher.names, columns=ch.fisher.names).to_csv(
        out_dir / files["correlation"])
    ch.predictions.to_csv(out_dir / files["predictions"], index=False)
    parity_figure(ch, out_dir / files["parity"], other=other, other_label=other_label)
    if len(ch.curves):
        files["curves"] = "rejection_vs_flux.png"
        files["curves_table"] = "curves.csv"
        ch.curves.to_csv(out_dir / files["curves_table"], index=False)
        curves_figure(ch, out_dir / files["curves"], ch.fisher.quantile)
    (out_dir / files["report"]).write_text(markdown(ch, files, extra_markdown), encoding="utf-8")
    return files
