"""Figures of the uncertainty studies (matplotlib ``Figure`` on the Agg canvas, never pyplot).

* :func:`violin_figure` - distributions over samples per ion (seed 003 Fig. 3B: rejection;
  Fig. 5A-D: partition coefficients; Fig. 5E-F: flux fractions) at one flux.
* :func:`ablation_figure` - rejection and selectivity vs the swept parameter with bands (Fig. 4).
* :func:`ph_figure` - selectivity vs pH with the optimum marked.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .ph_optimization import PHOptimum
from .propagation import PropagationResult

__all__ = ["ablation_figure", "ph_figure", "violin_figure"]


def _figure(w: float, h: float) -> Figure:
    fig = Figure(figsize=(w, h), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def _violins(ax, data: list[np.ndarray], labels: Sequence[str], ylabel: str, log10: bool = False) -> None:
    """Violins of finite values (log10 of the positive ones if ``log10``: the densities of heavy-tailed
    quantities such as selectivities are estimated in log space); constant series as a marker."""
    if log10:
        with np.errstate(divide="ignore", invalid="ignore"):
            data = [np.log10(np.where(np.asarray(d) > 0, d, np.nan)) for d in data]
        ylabel = f"log10 {ylabel}"
    keep = [(d[np.isfinite(d)], lab) for d, lab in zip(data, labels)]
    keep = [(d, lab) for d, lab in keep if d.size > 1 and np.ptp(d) > 0] + \
           [(d, lab) for d, lab in keep if d.size >= 1 and (d.size == 1 or np.ptp(d) == 0)]
    pos = np.arange(1, len(keep) + 1)
    var = [(p, d) for p, (d, _) in zip(pos, keep) if d.size > 1 and np.ptp(d) > 0]
    if var:
        ax.violinplot([d for _, d in var], positions=[p for p, _ in var], showmedians=True, widths=0.8)
    for p, (d, _) in zip(pos, keep):
        if not (d.size > 1 and np.ptp(d) > 0):
            ax.plot([p], [d[0]], "k_", ms=14)
    ax.set_xticks(pos, [lab for _, lab in keep], rotation=0)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")


def violin_figure(result: PropagationResult, flux_index: int = 0, pairs: Sequence[tuple[str, str]] = (),
                  title: str = "") -> Figure:
    """Rejection, selectivity, Donnan/Born/steric partition and flux fractions per ion at one flux."""
    f = int(flux_index)
    ions = list(result.ions)
    fig = _figure(12, 7.5)
    axs = fig.subplots(2, 3)
    _violins(axs[0, 0], [result.rejection[:, f, i] for i in range(len(ions))], ions, "rejection R")
    if pairs:
        _violins(axs[0, 1], [result.selectivity(a, b)[:, f] for a, b in pairs], [f"{a}/{b}" for a, b in pairs],
                 "selectivity (1-R_a)/(1-R_b)", log10=True)
    else:
        axs[0, 1].axis("off")
    for ax, key in ((axs[0, 2], "donnan"), (axs[1, 0], "born"), (axs[1, 1], "steric")):
        _violins(ax, [result.partition[key][:, f, i] for i in range(len(ions))], ions, f"phi_{key} (feed side)",
                 log10=key == "donnan")
    frac = result.flux_fractions()[:, f]                               # (S, n, 3)
    data, labels = [], []
    for i, ion in enumerate(ions):
        for j, part in enumerate(("diff", "conv", "migr")):
            data.append(frac[:, i, j])
            labels.append(f"{ion}\n{part}")
    _violins(axs[1, 2], data, labels, "flux share part / sum|parts|")
    axs[1, 2].tick_params(axis="x", labelsize=6)
    J = result.flux_m_s[f] * 3.6e6
    fig.suptitle(title or f"{len(result)} samples at J_v = {J:.3g} L m-2 h-1")
    fig.tight_layout()
    return fig


def ablation_figure(table: pd.DataFrame, flux_L_m2_h: float | None = None) -> Figure:
    """Rejection (left) and selectivity (right, log) vs the swept parameter, with 5-95 % bands if present."""
    t = table if flux_L_m2_h is None else table[np.isclose(table["flux_L_m2_h"], flux_L_m2_h)]
    if flux_L_m2_h is None and t["flux_L_m2_h"].nunique() > 1:
        t = t[t["flux_L_m2_h"] == t["flux_L_m2_h"].iloc[0]]
    fig = _figure(11, 4.2)
    axs = fig.subplots(1, 2)
    for ax, quantity in zip(axs, ("rejection", "selectivity")):
        sub = t[t["quantity"] == quantity]
        for species, g in sub.groupby("species", sort=False):
            g = g.sort_values("value")
            line, = ax.plot(g["value"], g["value_base"], "-o", ms=3, label=species)
            if "q05" in g and g["q05"].notna().any():
                ax.fill_between(g["value"], g["q05"], g["q95"], color=line.get_color(), alpha=0.2)
        ax.set_xlabel(str(t["parameter"].iloc[0]) if len(t) else "")
        ax.set_ylabel(quantity)
        ax.grid(alpha=0.3)
        if len(sub):
            ax.legend(fontsize=7)
    if (t["quantity"] == "selectivity").any():
        axs[1].set_yscale("log")
    fig.tight_layout()
    return fig


def ph_figure(opt: PHOptimum) -> Figure:
    """Selectivity on the pH grid with the optimum and the reference pH."""
    fig = _figure(6, 4)
    ax = fig.subplots()
    ax.plot(opt.grid_pH, opt.grid_selectivity, "-o", ms=3, label="grid scan")
    ax.plot([opt.pH], [opt.selectivity], "r*", ms=12, label=f"optimum pH {opt.pH:.2f}: S = {opt.selectivity:.3g}")
    ax.axvline(opt.reference_pH, color="k", ls=":", label=f"reference pH {opt.reference_pH:g}")
    ax.set_xlabel("pH")
    ax.set_ylabel(f"S {opt.pair[0]}/{opt.pair[1]}")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
