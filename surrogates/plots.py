"""Figures for surrogate training: CV bias/variance curve, parity, error histograms (Agg, no pyplot)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _save(fig: Figure, path: str | Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    return Path(path)


def cv_curve_figure(cv: pd.DataFrame, chosen: int | None = None) -> Figure:
    """k-fold CV MSE (and training MSE) vs hidden size: the bias/variance "bathtub" of seed 002 sec. 2.2."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.add_subplot()
    ax.errorbar(cv["hidden"], cv["cv_mse"], yerr=cv["cv_mse_std"], marker="o", capsize=3, label="k-fold CV MSE")
    ax.plot(cv["hidden"], cv["train_mse"], "s--", color="grey", label="training MSE")
    if chosen is not None:
        ax.axvline(chosen, color="tab:red", lw=1, ls=":", label=f"minimum: n = {chosen}")
    ax.set_yscale("log")
    ax.set_xlabel("hidden neurons n")
    ax.set_ylabel("MSE (scaled outputs)")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return fig


def parity_figure(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str]) -> Figure:
    """Predicted vs engine value on the test set, one colour per output."""
    fig = Figure(figsize=(4.8, 4.6))
    ax = fig.add_subplot()
    lo = float(min(y_true.min(), y_pred.min()))
    hi = float(max(y_true.max(), y_pred.max()))
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    for j, n in enumerate(names):
        ax.scatter(y_true[:, j], y_pred[:, j], s=5, alpha=0.6, color=_COLOURS[j % len(_COLOURS)], label=n)
    ax.set_xlabel("transport engine")
    ax.set_ylabel("surrogate")
    ax.set_aspect("equal")
    ax.legend(frameon=False, markerscale=3)
    ax.grid(alpha=0.3)
    return fig


def error_histogram_figure(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str]) -> Figure:
    """Histogram of test-set errors (surrogate - engine), one colour per output."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.add_subplot()
    err = y_pred - y_true
    bins = np.linspace(err.min(), err.max(), 60) if err.max() > err.min() else 10
    for j, n in enumerate(names):
        ax.hist(err[:, j], bins=bins, alpha=0.55, color=_COLOURS[j % len(_COLOURS)], label=n)
    ax.set_xlabel("error (surrogate - engine)")
    ax.set_ylabel("test cases")
    ax.set_yscale("log")
    ax.legend(frameon=False)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write a figure as PNG."""
    return _save(fig, path)
