"""``nanosep uq``: run the studies of a UQ case file, with checkpoints, tables and figures.

Outputs in the results folder: ``<study>_samples.parquet`` (tidy, one row per sample,
flux and ion), ``<study>_summary.csv``, ``<study>_violins.png`` for the propagation
studies ``psd`` and ``covariance``; ``ablation_<parameter>.csv/.png``; ``ph_<a>_<b>.csv/.png``;
``summary.json`` (inputs, timings, failures, headline numbers).

Checkpoints: propagation samples solved one engine case each (``psd`` with ``engine: direct``,
``covariance``) go in chunks; each finished chunk is written to
``checkpoint/<study>_<key>_chunk<k>.npz`` (``key`` hashes the study inputs), so an
interrupted run (Ctrl-C, crash) resumes with the chunks still missing; the other studies
are short and rerun.  Engine failures are recorded in the tables (NaN + reason), never fatal.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nanosep.errors import NanosepError
from nanosep.units import lmh_to_m_s

from .ablation import ablation_sweep
from .ph_optimization import optimize_ph
from .propagation import PARAMETERS, PropagationResult, propagate, propagate_radii
from .sampling import normal_samples, radius_samples
from .uq_case import USER_PARAMETERS, UQCase, load_uq_case

log = logging.getLogger(__name__)

__all__ = ["run_uq", "run_uq_cli"]

CHUNK_SAMPLES = 256


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _save_chunk(path: Path, r: PropagationResult) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, samples=r.samples, rejection=r.rejection, flux_split=r.flux_split, converged=r.converged,
             reason=r.reason.astype(str), **{f"phi_{k}": v for k, v in r.partition.items()})
    tmp.replace(path)


def _load_chunk(path: Path, ions: tuple[str, ...], J: np.ndarray) -> PropagationResult:
    z = np.load(path, allow_pickle=False)
    part = {k[4:]: z[k] for k in z.files if k.startswith("phi_")}
    return PropagationResult(ions, J, z["samples"], z["rejection"], part, z["flux_split"], z["converged"],
                             z["reason"].astype(object))


def _run_chunks(name: str, key: str, samples: np.ndarray, solve, ckpt: Path, progress, task) -> PropagationResult:
    """Solve ``samples`` in chunks with ``solve(chunk) -> PropagationResult``; reuse saved chunks."""
    parts = []
    for k, start in enumerate(range(0, samples.shape[0], CHUNK_SAMPLES)):
        chunk = samples[start:start + CHUNK_SAMPLES]
        path = ckpt / f"{name}_{key}_chunk{k:04d}.npz"
        if path.exists():
            r = solve.load(path)
            if np.array_equal(r.samples, chunk):
                parts.append(r)
                progress.advance(task, chunk.shape[0])
                continue
        r = solve(chunk)
        _save_chunk(path, r)
        parts.append(r)
        progress.advance(task, chunk.shape[0])
    return PropagationResult.concat(parts)


class _Solver:
    def __init__(self, fn, ions, J):
        self.fn, self.ions, self.J = fn, ions, J

    def __call__(self, chunk):
        return self.fn(chunk)

    def load(self, path):
        return _load_chunk(path, self.ions, self.J)


def _nearest(J_lmh: np.ndarray, target: float | None) -> int:
    return 0 if target is None else int(np.argmin(np.abs(J_lmh - target)))


def _write_propagation(out: Path, name: str, res: PropagationResult, pairs, plot_flux, seconds: float) -> dict:
    from .plots import violin_figure

    frame = res.to_frame()
    frame.to_parquet(out / f"{name}_samples.parquet", index=False)
    summ = res.summary(pairs)
    summ.to_csv(out / f"{name}_summary.csv", index=False)
    f = _nearest(res.flux_m_s * 3.6e6, plot_flux)
    violin_figure(res, f, pairs, title=f"{name}: {len(res)} samples at {res.flux_m_s[f] * 3.6e6:.3g} L m-2 h-1"
                  ).savefig(out / f"{name}_violins.png")
    failed = ~res.converged
    reasons = pd.Series(res.reason[failed]).value_counts().head(5).to_dict() if failed.any() else {}
    sel = summ[summ["quantity"] == "selectivity"]
    return {"samples": len(res), "seconds": round(seconds, 2), "failed_cases": int(failed.sum()),
            "failure_reasons": reasons,
            "selectivity_median_by_flux": {f"{r.species}@{r.flux_L_m2_h:g}": r.q50 for r in sel.itertuples()}}


def run_uq(case: UQCase, out: Path, samples: int | None = None, progress=None) -> dict:
    """Run every study of ``case`` into ``out``; returns the summary written to ``summary.json``."""
    from nanosep.transport.charge import IonizableGroups

    from .plots import ablation_figure, ph_figure

    eng = case.to_engine()
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint"
    ckpt.mkdir(exist_ok=True)
    ions = tuple(eng.feed)
    c = np.array([eng.feed[i] for i in ions])
    J = np.asarray(eng.drive["flux_m_s"], dtype=float)
    mem = {p: getattr(eng.membrane, p) for p in PARAMETERS}
    common = {"temperature_K": eng.temperature_K, "options": eng.options, "ion_db": eng.ion_db}
    pairs = case.canonical_pairs()
    uq = case.uq
    summary: dict = {"case": case.name, "ions": list(ions), "flux_L_m2_h": (J * 3.6e6).round(6).tolist(),
                     "membrane": mem, "studies": {}}
    if progress is None:
        from rich.progress import Progress
        progress = Progress(transient=False)
    with progress:
        if uq.psd is not None:
            s = uq.psd
            n = samples or s.samples
            t0 = time.perf_counter()
            r = radius_samples(mem["pore_radius_m"], s.std_radius_nm * 1e-9, n, s.method, s.seed)
            task = progress.add_task(f"psd ({s.engine})", total=n)
            if s.engine == "table":
                res = propagate_radii(ions, c, J, r, thickness_m=mem["thickness_m"],
                                      pore_dielectric=mem["pore_dielectric"],
                                      charge_density_mol_m3=mem["charge_density_mol_m3"], n_table=s.n_table, **common)
                progress.advance(task, n)
            else:
                X = np.column_stack([r] + [np.full(n, mem[p]) for p in PARAMETERS[1:]])
                key = _key("psd", case.model_dump(mode="json"), n)
                res = _run_chunks("psd", key, X, _Solver(lambda x: propagate(ions, c, J, x, **common), ions, J),
                                  ckpt, progress, task)
            summary["studies"]["psd"] = {"std_radius_nm": s.std_radius_nm, "engine": s.engine, "method": s.method,
                                         **_write_propagation(out, "psd", res, pairs, s.plot_flux_L_m2_h,
                                                              time.perf_counter() - t0)}
        if uq.covariance is not None:
            s = uq.covariance
            n = samples or s.samples
            t0 = time.perf_counter()
            user_mean = {k: v for k, v in case.membrane.model_dump().items()}
            mean = np.array(s.mean if s.mean is not None else [user_mean[p] for p in s.parameters], float)
            fac = np.array([USER_PARAMETERS[p][1] for p in s.parameters])
            Z = normal_samples(mean * fac, np.asarray(s.cov) * np.outer(fac, fac), n, s.method, s.seed)
            X = np.tile([mem[p] for p in PARAMETERS], (n, 1))
            for j, p in enumerate(s.parameters):
                X[:, PARAMETERS.index(USER_PARAMETERS[p][0])] = Z[:, j]
            task = progress.add_task("covariance", total=n)
            key = _key("cov", case.model_dump(mode="json"), n)
            res = _run_chunks("covariance", key, X, _Solver(lambda x: propagate(ions, c, J, x, **common), ions, J),
                              ckpt, progress, task)
            summary["studies"]["covariance"] = {"parameters": s.parameters, **_write_propagation(
                out, "covariance", res, pairs, s.plot_flux_L_m2_h, time.perf_counter() - t0)}
        if uq.ablation is not None:
            s = uq.ablation
            sweeps = s.sweeps()
            task = progress.add_task("ablation", total=len(sweeps))
            summary["studies"]["ablation"] = {}
            for user_name, values in sweeps.items():
                si, fac = USER_PARAMETERS[user_name]
                tab = ablation_sweep(ions, c, lmh_to_m_s(s.flux_L_m2_h), mem, si, np.asarray(values) * fac, pairs,
                                     std_radius_m=(uq.psd.std_radius_nm * 1e-9 if uq.psd else 0.0),
                                     psd_samples=s.psd_samples, **common)
                tab.insert(2, user_name, tab["value"] / fac)
                tab.to_csv(out / f"ablation_{user_name}.csv", index=False)
                ablation_figure(tab.assign(value=tab[user_name], parameter=user_name)).savefig(
                    out / f"ablation_{user_name}.png")
                summary["studies"]["ablation"][user_name] = {
                    "values": list(values), "failed": int(tab["reason"].astype(bool).sum())}
                progress.advance(task)
        if uq.ph is not None:
            s = uq.ph
            groups = IonizableGroups(**s.groups.model_dump())
            ph_pairs = case.canonical_pairs(s.pairs) if s.pairs else pairs
            task = progress.add_task("pH optimization", total=len(ph_pairs))
            summary["studies"]["ph"] = {}
            for a, b in ph_pairs:
                try:
                    opt = optimize_ph(ions, c, lmh_to_m_s(s.flux_L_m2_h), groups, (a, b),
                                      pore_radius_m=mem["pore_radius_m"], thickness_m=mem["thickness_m"],
                                      pore_dielectric=mem["pore_dielectric"], ph_range=s.range, n_grid=s.n_grid,
                                      reference_pH=s.reference_pH, **common)
                except NanosepError as exc:      # recorded, the other studies go on
                    summary["studies"]["ph"][f"{a}/{b}"] = {"error": str(exc)}
                    progress.advance(task)
                    continue
                tag = f"{a}_{b}".replace("+", "p").replace("-", "m")
                pd.DataFrame({"pH": opt.grid_pH, "selectivity": opt.grid_selectivity}).to_csv(
                    out / f"ph_{tag}.csv", index=False)
                ph_figure(opt).savefig(out / f"ph_{tag}.png")
                summary["studies"]["ph"][f"{a}/{b}"] = opt.summary()
                progress.advance(task)
    with open(out / "summary.json", "w") as fh:
        json.dump(summary, fh, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    return summary


def run_uq_cli(case_path: Path, out: Path | None, samples: int | None) -> int:
    """CLI body: 0 on success, 2 for invalid input, 130 if interrupted (chunks are kept; rerun to resume)."""
    from rich.console import Console

    console = Console()
    try:
        case = load_uq_case(case_path)
        if samples is not None and samples < 2:
            raise NanosepError(f"--samples must be >= 2, got {samples}")
        folder = out or Path("results") / "uq" / Path(case_path).stem
        summary = run_uq(case, folder, samples)
    except NanosepError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: finished chunks are saved; rerun the same command to resume")
        return 130
    console.print(f"[green]wrote[/green] {folder} ({', '.join(summary['studies'])})")
    return 0
