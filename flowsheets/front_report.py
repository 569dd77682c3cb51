"""Tables and figures of a Pareto front, and ``nanosep optimize CASE.yaml``.

:func:`front_frame` flattens a :class:`.pareto.ParetoFront` into one row per point (objectives,
design, solver status and gap, exact-model check); :func:`plot_front` draws the front (surrogate
and exact product concentration) and the design variables along it on a matplotlib ``Figure``
(Agg canvas, no pyplot); :func:`write_front` writes ``front.csv`` and ``front.png`` next to the
``front.json`` of :func:`.pareto.run_pareto`.  :func:`run_optimize_cli` is the command.
"""
from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["front_frame", "plot_front", "run_optimize_cli", "write_front"]

DEFAULT_RESULTS = Path("results/design")


def _exact(p, ion: str, key: str) -> float:
    ec = p.exact_check or {}
    v = (ec.get("product_conc_mol_m3") or {}).get(ion, {}).get(key) if key != "cost" else \
        (ec.get("cost_usd_per_year") or {}).get("exact")
    return math.nan if v is None else float(v)


def front_frame(front) -> pd.DataFrame:
    """One row per point (sorted by epsilon); units in the column names."""
    ion = front.problem.limit_ion
    rows = []
    for k, p in enumerate(front.points):
        row: dict[str, Any] = {"point": k, "epsilon_mol_m3": p.epsilon_mol_m3, "feasible": p.feasible,
                               "solver": p.solver, "status": p.status,
                               "cost_usd_per_year": p.objective_usd_per_year, "cost_usd_per_m3": p.cost_usd_per_m3,
                               f"product_{ion}_mol_m3": p.product_conc_mol_m3.get(ion, math.nan),
                               "globally_optimal": p.globally_optimal, "relative_gap": p.relative_gap,
                               "lower_bound_usd_per_year": p.lower_bound_usd_per_year}
        for key, v in p.design.items():
            if isinstance(v, (int, float, bool, np.floating)):
                row[key] = v
        row[f"exact_product_{ion}_mol_m3"] = _exact(p, ion, "exact")
        row[f"exact_rel_error_{ion}"] = _exact(p, ion, "rel_error")
        row["exact_cost_usd_per_year"] = _exact(p, ion, "cost")
        row["exact_n_elements"] = (p.exact_check or {}).get("n_elements")
        row["repaired"] = bool(p.extra.get("repaired", False))
        row["seconds"] = p.times_s.get("task", p.times_s.get("total", math.nan))
        row["message"] = p.message
        rows.append(row)
    return pd.DataFrame(rows)


def n_stage_label(front) -> str:
    n = int(front.problem.spec.n_stages)
    osm = "with" if front.problem.spec.osmotic else "without"
    return f"{n} stage{'s' if n > 1 else ''}, {osm} osmotic pressure"


def plot_front(front, path: Path) -> Path:
    """Front (cost vs product concentration, surrogate and exact) and the design along it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    df = front_frame(front)
    ion = front.problem.limit_ion
    ok = df[df["feasible"]]
    fig = Figure(figsize=(12.0, 7.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3)
    ax = axes[0, 0]
    ax.plot(ok[f"product_{ion}_mol_m3"], ok["cost_usd_per_year"] / 1e3, "o-", label="surrogate (optimized)")
    ex = ok[np.isfinite(ok[f"exact_product_{ion}_mol_m3"])]
    if len(ex):
        ax.plot(ex[f"exact_product_{ion}_mol_m3"], ex["exact_cost_usd_per_year"] / 1e3, "s--", mfc="none",
                label="same designs, exact engine")
    bad = df[~df["feasible"]]
    for e in bad["epsilon_mol_m3"]:
        ax.axvline(e, color="r", lw=0.6, alpha=0.5)
    ax.set_xscale("log")
    ax.set(xlabel=f"product {ion} [mol/m3]", ylabel="annual operating cost [kUSD/yr]", title="Pareto front")
    fig.suptitle(f"{front.problem.name}: {front.problem.rejection.label}, {n_stage_label(front)}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    n = int(front.problem.spec.n_stages)
    panels = [("stage N modules [-]", [f"stage{i}_n_modules" for i in range(1, n + 1)], None),
              ("pump dP [bar]", [f"pump{i}_dp_bar" for i in range(1, n + 1)], None),
              ("membrane thickness dx [nm]", ["thickness_nm"], (70.0, 155.0)),
              ("layer charge X [mol/m3]", ["charge_mol_m3"], (-520.0, -80.0)),
              ("recycle fraction [-] / recovery gamma [-]",
               ["recycle_fraction", *[f"stage{i}_gamma" for i in range(1, n + 1)]], (-0.02, 1.0))]
    for ax, (label, cols, ylim) in zip(axes.flat[1:], panels):
        if ylim is not None:
            ax.set_ylim(*ylim)
        for c in cols:
            if c in ok:
                ax.plot(ok["epsilon_mol_m3"], ok[c], "o-", ms=3, label=c)
        ax.set_xscale("log")
        ax.set(xlabel=f"epsilon ({ion} limit) [mol/m3]", ylabel=label)
        ax.grid(alpha=0.3)
        if len(cols) > 1:
            ax.legend(fontsize=7)
    fig.get_layout_engine().set(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    return path


def write_front(front, out: Path | None = None) -> list[Path]:
    """``front.csv`` and ``front.png`` (``front.json`` is written by :func:`.pareto.run_pareto`)."""
    out = Path(out or front.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "front.csv"
    front_frame(front).to_csv(csv, index=False)
    png = plot_front(front, out / "front.png")
    return [out / "front.json", csv, png]


def run_optimize_cli(case_path: Path, as_json: bool = False, out: Path | None = None, points: int | None = None,
                     solver: str | None = None, scheduler: str | None = None, workers: int = 2,
                     overwrite: bool = False) -> int:
    """``nanosep optimize``: load the design case, solve/resume the front with a progress bar, write the results.

    Exit codes: 0 every point feasible, 1 some point failed (reported in the outputs) or no plant at all,
    2 invalid input (the message names the value).
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from nanosep.errors import InvalidInputError, UnknownIonError

    from .design_case import load_design_case
    from .pareto import (
        GlobalSolverUnavailableError,
        InfeasibleSpecificationError,
        run_pareto,
    )

    console = Console(stderr=True)
    try:
        case = load_design_case(case_path)
        problem = case.to_problem(points=points, solver=solver)
    except (InvalidInputError, UnknownIonError) as exc:
        print(f"nanosep optimize: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    out = Path(out) if out is not None else DEFAULT_RESULTS / case.name
    sched = None if scheduler in (None, "local") else scheduler
    try:
        with Progress(TextColumn("{task.description:<48}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console, transient=False) as progress:
            task = progress.add_task("anchors", total=problem.n_points + 2)

            def on(done: int, total: int, label: str) -> None:
                progress.update(task, completed=done, total=total, description=label[:48])

            front = run_pareto(problem, out, scheduler=sched, n_workers=workers, overwrite=overwrite, progress=on)
    except (InvalidInputError, UnknownIonError, GlobalSolverUnavailableError) as exc:
        print(f"nanosep optimize: error: {case_path}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except InfeasibleSpecificationError as exc:
        print(f"nanosep optimize: infeasible: {case_path}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        console.print(f"interrupted; finished points are kept in {out}/points (rerun to resume)", markup=False)
        return 130
    files = write_front(front, out)
    if as_json:
        print(json.dumps(front.to_dict(), indent=1))
    n_bad = len(front.points) - len(front.feasible)
    console.print(f"{len(front.feasible)} of {len(front.points)} points feasible ({front.n_solved} solved in this run, "
                  f"{len(front.repaired)} repaired) in {front.seconds:.1f} s; purest product "
                  f"{front.purity_limit.get('c_min_mol_m3', math.nan):.4g} mol/m3; wrote "
                  + ", ".join(str(f) for f in files), markup=False, soft_wrap=True)
    return 0 if n_bad == 0 else 1
