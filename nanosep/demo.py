"""``nanosep demo``: run one case through the transport engine and write a small report.

The demo is an ordered list of steps, :data:`STEPS`.  A step is a function
``step(out_dir, state) -> str``: it reads what earlier steps left in the
:class:`DemoState`, writes its own files (PNG, CSV) into ``out_dir`` and returns a
Markdown fragment; :func:`run_demo` times each step and joins the fragments into
``report.md``.  A later capability (surrogates, design, characterization) adds a
step by writing such a function in its own module and appending
``DemoStep("name", "Section title", function)`` to :data:`STEPS`; data it shares
with later steps goes into ``state.extras``.

Figures are drawn on Agg canvases (``matplotlib.figure.Figure``, no pyplot), so the
demo never touches the interactive backend.  Library code here logs; the
progress bar and console output belong to :func:`run_demo_cli`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np

from nanosep.casefile import CaseFile, load_case
from nanosep.flowsheets.demo_step import step_design
from nanosep.predict import (
    EXIT_NOT_CONVERGED,
    EXIT_OK,
    INPUT_ERRORS,
    report_input_error,
    run_case,
)
from nanosep.surrogates.demo_step import step_surrogate
from nanosep.units import m_s_to_lmh

log = logging.getLogger(__name__)

DEFAULT_CASE = Path("cases/nf270_brackish.yaml")
DEFAULT_OUT = Path("results/demo")
#: Partition coefficients and flux contributions are reported at the swept flux nearest this value.
REFERENCE_FLUX_LMH = 20.0
MECHANISMS = ("steric", "born", "image", "donnan", "activity", "total")
FLUX_PARTS = ("diffusion", "convection", "migration")


@dataclass
class DemoState:
    """What the steps share: the case, the flux-sweep result and free-form ``extras``."""

    case: CaseFile
    case_path: Path
    result: Any = None  # nanosep.transport.BatchResult, set by step_sweep
    solve_seconds: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def fluxes_lmh(self) -> np.ndarray:
        return m_s_to_lmh(self.result.flux_m_s)

    @property
    def reference_index(self) -> int:
        """Index of the swept flux nearest :data:`REFERENCE_FLUX_LMH`."""
        return int(np.argmin(np.abs(self.fluxes_lmh - REFERENCE_FLUX_LMH)))

    @property
    def colors(self) -> dict[str, Any]:
        """One colour per ion, the same in every figure."""
        from matplotlib import colormaps

        cmap = colormaps["tab10"]
        return {ion: cmap(i % 10) for i, ion in enumerate(self.result.ions)}


@dataclass(frozen=True)
class DemoStep:
    """One section of the demo: ``run(out_dir, state)`` writes files and returns Markdown."""

    name: str
    title: str
    run: Callable[[Path, DemoState], str]


@dataclass
class DemoRun:
    """Outcome of :func:`run_demo`."""

    state: DemoState
    out_dir: Path
    report: Path
    files: list[Path]  # files written by this run, report included
    seconds: dict[str, float]


# ---------------------------------------------------------------------- helpers
def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _figure(ncols: int = 1, size: tuple[float, float] = (7.0, 4.5)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def _save(fig, path: Path) -> str:
    fig.savefig(path, dpi=120)
    log.info("wrote %s", path)
    return path.name


def _masked(values: np.ndarray, converged: np.ndarray) -> np.ndarray:
    """Values of non-converged cases (rows) replaced by NaN, so plots leave gaps."""
    out = np.array(values, dtype=float)
    out[~converged] = np.nan
    return out


def _pct(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{100 * v:.2f}"


# ---------------------------------------------------------------------- steps
def step_inputs(out_dir: Path, state: DemoState) -> str:
    """Membrane, feed (mol/m3 and mg/L), operation and model options."""
    case = state.case
    m, db = case.membrane, case.ion_db
    parts = [case.description or "", f"Case file: `{state.case_path}`"]
    parts.append(_md_table(["membrane parameter", "value"], [
        ["pore radius r_p [nm]", f"{m.pore_radius_nm:g}"], ["effective thickness dx_e [um]", f"{m.thickness_um:g}"],
        ["pore dielectric constant eps_p [-]", f"{m.pore_dielectric:g}"],
        ["charge density X [mol/m3]", f"{m.charge_density_mol_m3:g}"]]))
    rows, tds = [], 0.0
    for ion, c in case.feed_mol_m3.items():
        rec = db.get(ion)
        mg_l = c * rec.molar_mass_kg_mol * 1e3
        tds += mg_l
        rows.append([ion, f"{rec.charge:+d}", f"{c:g}", f"{mg_l:.1f}", f"{rec.stokes_radius_m * 1e9:.3f}"])
    parts.append(_md_table(["ion", "z", "feed [mol/m3]", "feed [mg/L]", "Stokes radius [nm]"], rows))
    t = case.feed.temperature_K
    parts.append(f"Sum of ions {tds:.0f} mg/L; temperature {t:g} K ({t - 273.15:.1f} C)."
                 + (f" Charge balance closed with {case.balance_ion}." if case.balance_ion else ""))
    op = case.operation
    drive = (f"water flux {', '.join(f'{v:g}' for v in op.flux_L_m2_h)} L/m2/h" if op.flux_L_m2_h is not None
             else f"applied pressure {', '.join(f'{v:g}' for v in op.pressure_bar)} bar")
    opts = case.model.model_dump()
    parts.append(f"Operation: {drive}.  \nModel: " + ", ".join(f"{k} = {v}" for k, v in opts.items()) + ".")
    if case.ions:
        parts.append("Ion properties from the case file: " + ", ".join(case.ions) + ".")
    return "\n\n".join(p for p in parts if p)


def step_sweep(out_dir: Path, state: DemoState) -> str:
    """Solve every operating point; rejection table, CSV and figure."""
    start = perf_counter()
    state.result = res = run_case(state.case)
    state.solve_seconds = perf_counter() - start
    frame = res.to_frame()
    cols = ["flux_L_m2_h", "ion", "c_feed_mol_m3", "c_wall_mol_m3", "c_perm_mol_m3",
            "rejection_observed", "rejection_intrinsic", "converged"]
    csv_table = frame[cols].copy()
    if state.case.operation.pressure_bar is not None:
        csv_table.insert(1, "pressure_bar", np.asarray(state.case.operation.pressure_bar)[frame["case"]])
    csv_table.to_csv(out_dir / "rejection_vs_flux.csv", index=False)
    flux, conv = state.fluxes_lmh, res.converged
    fig, ax = _figure(size=(8.0, 4.5))
    obs, intr = _masked(res.rejection_observed, conv), _masked(res.rejection_intrinsic, conv)
    for i, ion in enumerate(res.ions):
        color = state.colors[ion]
        ax.plot(flux, 100 * obs[:, i], "-o", ms=3, color=color, label=ion)
        ax.plot(flux, 100 * intr[:, i], "--", color=color)
    ax.plot([], [], "k-", label="observed")
    ax.plot([], [], "k--", label="intrinsic")
    ax.set(xlabel="water flux J_v [L/m2/h]", ylabel="rejection [%]", title=state.case.name or "rejection vs flux")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    png = _save(fig, out_dir / "rejection_vs_flux.png")
    rows = [[f"{flux[b]:.1f}"] + [_pct(r) for r in res.rejection_observed[b]] for b in range(len(res))]
    table = _md_table(["J_v [L/m2/h]"] + [f"R {ion} [%]" for ion in res.ions], rows)
    return ("Observed rejection 1 - c_perm/c_feed. The intrinsic rejection 1 - c_perm/c_wall is dashed in the "
            f"figure and tabulated with the concentrations in `rejection_vs_flux.csv`.\n\n{table}\n\n![Rejection vs flux]({png})")


def step_partitioning(out_dir: Path, state: DemoState) -> str:
    """Partition coefficients split by mechanism: CSV (all fluxes, both interfaces) and figure (one flux)."""
    res, b = state.result, state.reference_index
    frame = res.to_frame()
    cols = ["flux_L_m2_h", "ion"] + [f"phi_{k}_{side}" for side in ("feed", "perm") for k in MECHANISMS]
    frame[cols].to_csv(out_dir / "partition_coefficients.csv", index=False)
    part = res.case(b).partition("feed")
    ions = list(res.ions)
    fig, ax = _figure(size=(8.0, 4.5))
    width = 0.8 / len(MECHANISMS)
    x = np.arange(len(ions))
    for k, mech in enumerate(MECHANISMS):
        vals = np.array([part[mech][ion] for ion in ions])
        ax.bar(x + (k - (len(MECHANISMS) - 1) / 2) * width, vals - 1.0, width, bottom=1.0, label=mech)
    ax.set_yscale("log")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(x, ions)
    flux = state.fluxes_lmh[b]
    ax.set(ylabel="partition coefficient, feed side [-]", title=f"Partitioning at J_v = {flux:.1f} L/m2/h")
    ax.legend(fontsize=8, ncol=3)
    png = _save(fig, out_dir / "partition_coefficients.png")
    rows = [[ion] + [f"{part[mech][ion]:.3g}" for mech in MECHANISMS] for ion in ions]
    note = "" if state.case.model.image_forces else " Image forces are off in this case (factor 1)."
    return (f"Feed-side partition coefficients (pore/wall) at J_v = {flux:.1f} L/m2/h; the total is the product "
            f"of the factors.{note} Both interfaces and all fluxes: `partition_coefficients.csv`.\n\n"
            + _md_table(["ion"] + list(MECHANISMS), rows) + f"\n\n![Partition coefficients]({png})")


def step_flux_split(out_dir: Path, state: DemoState) -> str:
    """Diffusion / convection / migration shares of each ion's flux (layer averages)."""
    res, b = state.result, state.reference_index
    frame = res.to_frame()
    parts = [f"{p}_flux_mol_m2_s" for p in FLUX_PARTS]
    gross = frame[parts].abs().sum(axis=1)
    out = frame[["flux_L_m2_h", "ion"] + parts + ["ion_flux_mol_m2_s"]].copy()
    for p in FLUX_PARTS:
        out[f"{p}_fraction"] = frame[f"{p}_flux_mol_m2_s"] / gross
    out.to_csv(out_dir / "flux_contributions.csv", index=False)
    split = res.case(b).flux_split
    ions = list(res.ions)
    share = {ion: {p: split[ion][p] / sum(abs(v) for v in split[ion].values()) for p in FLUX_PARTS}
             for ion in ions}
    fig, ax = _figure()
    width, x = 0.8 / len(FLUX_PARTS), np.arange(len(ions))
    for k, p in enumerate(FLUX_PARTS):
        ax.bar(x + (k - 1) * width, [share[ion][p] for ion in ions], width, label=p)
    ax.axhline(0.0, color="k", lw=0.8)
    flux = state.fluxes_lmh[b]
    ax.set_xticks(x, ions)
    ax.set(ylabel="signed fraction of |diff.| + |conv.| + |migr.| [-]", title=f"Flux contributions at J_v = {flux:.1f} L/m2/h")
    ax.legend(fontsize=8)
    png = _save(fig, out_dir / "flux_contributions.png")
    rows = [[ion] + [f"{share[ion][p]:+.3f}" for p in FLUX_PARTS] + [f"{sum(split[ion].values()):.3g}"]
            for ion in ions]
    return (f"Layer-averaged terms of the extended Nernst-Planck flux at J_v = {flux:.1f} L/m2/h, each as a "
            "signed fraction of the sum of their magnitudes (a negative term opposes the permeation; the net "
            "flux is their sum, J_v c_perm).\n\n"
            + _md_table(["ion"] + list(FLUX_PARTS) + ["net [mol/m2/s]"], rows)
            + f"\n\n![Flux contributions]({png})")


def step_profiles(out_dir: Path, state: DemoState) -> str:
    """Pore concentrations and potential across the active layer at the highest flux."""
    res = state.result
    b = int(np.argmax(res.flux_m_s))
    prof = res.case(b).profiles()
    prof.insert(0, "x_um", prof.pop("x_m") * 1e6)
    prof.to_csv(out_dir / "profiles.csv", index=False)
    fig, (ax_c, ax_p) = _figure(ncols=2, size=(10.0, 4.2))
    for ion in res.ions:
        ax_c.plot(prof["x_um"], prof[f"c_{ion}_mol_m3"], "-", color=state.colors[ion], label=ion)
    ax_c.set_yscale("log")
    ax_c.set(xlabel="position in the active layer x [um]", ylabel="pore concentration [mol/m3]")
    ax_c.legend(fontsize=8, ncol=2)
    ax_p.plot(prof["x_um"], prof["phi"], "k-")
    ax_p.set(xlabel="position in the active layer x [um]", ylabel="potential F psi / RT [-]")
    flux = state.fluxes_lmh[b]
    fig.suptitle(f"Inside the pores at J_v = {flux:.1f} L/m2/h (feed side at x = 0)")
    png = _save(fig, out_dir / "profiles.png")
    return (f"Pore concentrations and electric potential across the active layer at the highest flux, "
            f"{flux:.1f} L/m2/h (`profiles.csv`). Donnan potential jumps: feed side "
            f"{1e3 * res.donnan_feed_V[b]:.1f} mV, permeate side {1e3 * res.donnan_perm_V[b]:.1f} mV."
            f"\n\n![Profiles]({png})")


def step_diagnostics(out_dir: Path, state: DemoState) -> str:
    """Convergence of every operating point."""
    res = state.result
    rows = []
    for b in range(len(res)):
        d = res.case(b).diagnostics
        rows.append([f"{state.fluxes_lmh[b]:.1f}", "yes" if d["converged"] else "**no**", d["iterations"],
                     f"{d['residual']:.1e}", d["continuation_steps"], d["reason"] or "-"])
    opts = res.meta.get("options")
    numerics = f" Collocation nodes {opts.nodes}, Newton tolerance {opts.tol:g}." if opts is not None else ""
    return (f"{int(res.converged.sum())} of {len(res)} operating points converged; the batched solve took "
            f"{state.solve_seconds:.2f} s.{numerics}\n\n"
            + _md_table(["J_v [L/m2/h]", "converged", "Newton iterations", "residual", "continuation steps",
                         "reason"], rows))


def _step_characterization(out_dir: Path, state: DemoState) -> str:
    """Fit NF270 to the shipped FdL 2021 data (imported lazily: nanosep.transport.characterization.demo_step)."""
    from nanosep.transport.characterization.demo_step import step_characterization

    return step_characterization(out_dir, state)


STEPS: tuple[DemoStep, ...] = (
    DemoStep("inputs", "Inputs", step_inputs),
    DemoStep("sweep", "Rejection vs flux", step_sweep),
    DemoStep("partitioning", "Partitioning at the pore entrance", step_partitioning),
    DemoStep("flux_split", "Flux contributions", step_flux_split),
    DemoStep("profiles", "Profiles in the active layer", step_profiles),
    DemoStep("diagnostics", "Solver diagnostics", step_diagnostics),
    DemoStep("surrogate", "Shipped ONNX surrogate vs the engine", step_surrogate),
    DemoStep("design", "Plant design: Pareto front with the exact-model check", step_design),
    DemoStep("characterization", "Membrane characterization from FdL 2021 data", _step_characterization),
)


# ---------------------------------------------------------------------- running
def resolve_case_path(path: Path) -> Path:
    """``path`` as given, or relative to the source tree (so the default case works from any folder)."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    candidate = Path(__file__).resolve().parents[1] / path
    return candidate if candidate.exists() else path


def _snapshot(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}


def run_demo(case_path: Path = DEFAULT_CASE, out_dir: Path = DEFAULT_OUT,
             steps: Sequence[DemoStep] = STEPS,
             on_step: Callable[[int, DemoStep], None] | None = None) -> DemoRun:
    """Run ``steps`` on a case, write their files and ``report.md`` into ``out_dir``.

    ``on_step(i, step)`` is called before each step (progress display).

    Raises:
        InvalidInputError: the case file is invalid (message names the field).
    """
    case_path = resolve_case_path(case_path)
    case = load_case(case_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = DemoState(case=case, case_path=case_path)
    before = _snapshot(out_dir)
    sections, seconds = [], {}
    for i, step in enumerate(steps):
        if on_step is not None:
            on_step(i, step)
        start = perf_counter()
        fragment = step.run(out_dir, state)
        seconds[step.name] = perf_counter() - start
        log.info("demo step %s done in %.2f s", step.name, seconds[step.name])
        sections.append(f"## {step.title}\n\n{fragment.strip()}\n")
    from nanosep import __version__

    timing = _md_table(["step", "seconds"], [[k, f"{v:.2f}"] for k, v in seconds.items()])
    text = (f"# nanosep demo: {case.name or case_path.stem}\n\nnanosep {__version__}. Files in this folder: "
            "figures (PNG) and tables (CSV; units in the column names, dimensionless where none is given).\n\n"
            + "\n".join(sections) + f"\n## Timings\n\n{timing}\n")
    report = out_dir / "report.md"
    report.write_text(text, encoding="utf-8")
    after = _snapshot(out_dir)
    files = sorted(p for p, mtime in after.items() if before.get(p) != mtime)
    return DemoRun(state, out_dir, report, files, seconds)


def run_demo_cli(case_path: Path = DEFAULT_CASE, out_dir: Path = DEFAULT_OUT) -> int:
    """``nanosep demo``: :func:`run_demo` with a rich progress bar; returns the exit code."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    start = perf_counter()
    with Progress(TextColumn("{task.description:<40}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task("loading case", total=len(STEPS))

        def on_step(i: int, step: DemoStep) -> None:
            progress.update(task, completed=i, description=step.title)

        try:
            run = run_demo(case_path, out_dir, STEPS, on_step)
        except INPUT_ERRORS as exc:
            progress.stop()
            return report_input_error("demo", exc, resolve_case_path(case_path))
        progress.update(task, completed=len(STEPS), description="done")
    names = ", ".join(p.name for p in run.files)
    console.print(f"wrote {len(run.files)} files to {run.out_dir} in {perf_counter() - start:.1f} s: {names}",
                  markup=False, soft_wrap=True)
    console.print(f"report: {run.report}", markup=False, soft_wrap=True)
    return EXIT_OK if run.state.result is None or run.state.result.converged.all() else EXIT_NOT_CONVERGED
