"""Membrane characterization: fit time on FdL 2021, interval coverage and four-step vs joint error propagation.

1. Timing: joint fit of the 4 shared DSPM-DE parameters to the FdL 2021 NF270 data (134 rows, 6 ions,
   87 operating points), (a) local stage only from the case's initial values and (b) two-stage
   (16 Sobol points on the screening cases + 1 local run); then the per-salt-charge fit of
   cases/characterization/fdl2021_nf270.yaml without profiles (real-data deviation vs the authors' SDEM lines).
2. Coverage: noisy synthetic data (NaCl, MgSO4 and a Na/Mg/Cl/SO4 mix, 6 fluxes 5-100 L/m2/h, 48 rows,
   noise sd 0.01) from known parameters, fitted R times from the truth; fraction of replicates whose
   95 % Fisher interval contains the truth, per parameter (target >= 0.90), and for a subset the
   profile-likelihood intervals.
3. Error propagation: App. D four-step procedure vs the joint fit on the same noisy experiments
   (spread of the recovered parameters, transport.characterization.four_step.propagation_study),
   once with the procedure's assumptions true and once violated (residual charge at the "IEP",
   pure-water flux 20 % below Hagen-Poiseuille).

Writes results/benchmarks/characterization*.json/csv and prints the figures.

    python benchmarks/characterization.py [--quick] [--replicates R] [--skip-timing] [--skip-coverage]
                                          [--skip-propagation] [--tag TAG]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, metadata, print_metadata, results_dir, write_csv, write_json

TRUTH = {"pore_radius_nm": 0.55, "thickness_um": 1.5, "pore_dielectric": 42.0, "charge_density_mol_m3": -40.0}
BOUNDS = {"pore_radius_nm": [0.35, 1.0], "thickness_um": [0.2, 10.0], "pore_dielectric": [25.0, 78.0],
          "charge_density_mol_m3": [-150.0, 50.0]}


def timing(quick: bool) -> dict:
    from nanosep.transport.characterization import (
        ParameterMap,
        RejectionModel,
        fit_parameters,
        load_fit_case,
        observations_from_table,
    )
    from nanosep.transport.characterization.demo_step import authors_fit_metrics
    from nanosep.transport.characterization.workflow import characterize

    from nanosep.measured import load_fdl2021

    case = load_fit_case(REPO / "cases/characterization/fdl2021_nf270.yaml").pooled()
    table = load_fdl2021()
    options, db = case.engine_setup()
    obs = observations_from_table(table)
    out = {"rows": len(obs), "cases": len(obs.cases), "ions": len(obs.cases.ions)}
    for label, starts in (("local only", 0), ("Sobol 16 + local", 16)):
        model = RejectionModel(ParameterMap(case, obs.cases.labels), options, db)
        t0 = time.perf_counter()
        fit = fit_parameters(model, obs, starts=starts, local_starts=1)
        dt = time.perf_counter() - t0
        out[label] = {"seconds": dt, "cost": fit.cost, "values": fit.values, "nfev": fit.nfev,
                      "engine_cases": model.stats.cases}
        print(f"4-parameter FdL fit ({label}): {dt:.1f} s, cost {fit.cost:.4f}, {fit.nfev} evaluations, "
              f"{model.stats.cases} engine cases, {fit.values}")
        if quick:
            break
    if not quick:
        full = load_fit_case(REPO / "cases/characterization/fdl2021_nf270.yaml")
        t0 = time.perf_counter()
        ch = characterize(table, full, profile=False, curves=False)
        dt = time.perf_counter() - t0
        authors, _ = authors_fit_metrics()
        out["per-salt charge"] = {"seconds": dt, "values": ch.fit.values, "metrics": ch.metrics,
                                  "authors_sdem": authors, "warnings": ch.fisher.warnings}
        print(f"per-salt-charge fit: {dt:.1f} s; MAD R {ch.metrics['mad_rejection']:.4f}, mean |f_mod/f_exp-1| "
              f"{ch.metrics['mad_f_relative']:.3f} (authors' SDEM lines: {authors['mad_rejection']:.4f}, "
              f"{authors['mad_f_relative']:.3f}); {ch.fit.values}")
    return out


def coverage(replicates: int, profile_every: int) -> dict:
    from nanosep.transport.characterization import (
        ParameterMap,
        RejectionModel,
        fit_case_from_dict,
        fit_parameters,
        observations_from_table,
    )
    from nanosep.transport.characterization.intervals import (
        fisher_summary,
        profile_intervals,
    )
    from nanosep.transport.characterization.synthetic import (
        design_table,
        synthetic_rejections,
    )

    case = fit_case_from_dict({"model": {"activity": "davies"}, "parameters": {
        n: {"initial": TRUTH[n], "bounds": BOUNDS[n]} for n in TRUTH}})
    options, db = case.engine_setup()
    feeds = {"NaCl": {"Na+": 10.0, "Cl-": 10.0}, "MgSO4": {"Mg+2": 10.0, "SO4-2": 10.0},
             "mix": {"Na+": 20.0, "Mg+2": 5.0, "Cl-": 20.0, "SO4-2": 5.0}}
    obs = observations_from_table(design_table(feeds, [5.0, 10.0, 20.0, 35.0, 60.0, 100.0]))
    model = RejectionModel(ParameterMap(case, obs.cases.labels), options, db)
    u_true = model.pmap.u0.copy()
    rng = np.random.default_rng(12345)
    rows, t0 = [], time.perf_counter()
    for rep in range(replicates):
        data = synthetic_rejections(model, obs, u_true, noise_sd=0.01, rng=rng)
        fit = fit_parameters(model, data, starts=0, tol=1e-9)
        fs = fisher_summary(fit, model)
        row = {"replicate": rep, "cost": fit.cost}
        for n in TRUTH:
            row[f"{n}_estimate"] = fit.values[n]
            row[f"{n}_fisher_covers"] = bool(fs.lower[n] <= TRUTH[n] <= fs.upper[n])
        if profile_every and rep % profile_every == 0:
            pr = profile_intervals(fit, model, data, fs)
            for n in TRUTH:
                row[f"{n}_profile_covers"] = bool(pr.lower[n] <= TRUTH[n] <= pr.upper[n])
        rows.append(row)
        if (rep + 1) % 5 == 0:   # partial results survive an interrupted run
            write_csv(results_dir() / "characterization_coverage.csv", rows)
            cov = {n: np.mean([r[f"{n}_fisher_covers"] for r in rows]) for n in TRUTH}
            print(f"  coverage: {rep + 1}/{replicates} replicates, {time.perf_counter() - t0:.0f} s, Fisher "
                  + ", ".join(f"{n} {v:.2f}" for n, v in cov.items()), flush=True)
    summary = {"replicates": replicates, "rows_per_fit": len(obs), "noise_sd": 0.01,
               "seconds": time.perf_counter() - t0}
    for n in TRUTH:
        summary[f"{n}_fisher"] = float(np.mean([r[f"{n}_fisher_covers"] for r in rows]))
        prof = [r[f"{n}_profile_covers"] for r in rows if f"{n}_profile_covers" in r]
        summary[f"{n}_profile"] = float(np.mean(prof)) if prof else None
    summary["all_four_fisher"] = float(np.mean([all(r[f"{n}_fisher_covers"] for n in TRUTH) for r in rows]))
    summary["profile_replicates"] = sum(1 for r in rows if f"{next(iter(TRUTH))}_profile_covers" in r)
    write_csv(results_dir() / "characterization_coverage.csv", rows)
    print("coverage of the 95 % intervals (fraction of replicates containing the truth):")
    for n in TRUTH:
        p = summary[f"{n}_profile"]
        print(f"  {n:>24}: Fisher {summary[f'{n}_fisher']:.2f}" + (f", profile {p:.2f}" if p is not None else ""))
    return summary


SCENARIOS = {"assumptions hold": {}, "assumptions violated (X_iep = -5 mol/m3, J_w = 0.8 J_HP)":
             {"iep_charge_mol_m3": -5.0, "hp_factor": 0.8}}


def propagation(replicates: int) -> dict:
    from nanosep.transport.characterization.four_step import propagation_study

    out = {}
    for name, kw in SCENARIOS.items():
        t0 = time.perf_counter()
        study = propagation_study(TRUTH, replicates=replicates, noise_sd=0.01, flux_rel_sd=0.02, seed=7, **kw)
        dt = time.perf_counter() - t0
        tag = "violated" if kw else "ideal"
        study.summary.to_csv(results_dir() / f"characterization_propagation_{tag}.csv", index=False)
        print(f"four-step vs joint, {name} ({replicates} replicates, {dt:.0f} s):")
        for r in study.summary.to_dict("records"):
            print(f"  {r['method']:>9} {r['parameter']:>22}: rel sd {r['rel_sd']:.3f}, rel bias {r['rel_bias']:+.3f}, "
                  f"5-95 % [{r['p05']:.4g}, {r['p95']:.4g}]")
        out[name] = {"seconds": dt, "summary": study.summary.to_dict("records"), "settings": study.settings}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few replicates, local-stage timing only")
    ap.add_argument("--replicates", type=int, default=None, help="coverage replicates (default 100, quick 10)")
    ap.add_argument("--propagation-replicates", type=int, default=None, help="default 20, quick 3")
    ap.add_argument("--profile-every", type=int, default=None,
                    help="profile intervals on every k-th coverage replicate (default 5, quick 0 = never)")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--skip-coverage", action="store_true")
    ap.add_argument("--skip-propagation", action="store_true")
    ap.add_argument("--tag", default="", help="suffix of the JSON file name (characterization[_quick][_TAG].json)")
    args = ap.parse_args()
    try:
        import torch
        torch.set_num_threads(1)
    except Exception:  # pragma: no cover
        pass
    meta = metadata()
    print_metadata(meta)
    out = {"meta": meta}
    if not args.skip_timing:
        out["timing"] = timing(args.quick)
    if not args.skip_coverage:
        reps = args.replicates or (10 if args.quick else 100)
        every = args.profile_every if args.profile_every is not None else (0 if args.quick else 5)
        out["coverage"] = coverage(reps, every)
    if not args.skip_propagation:
        out["propagation"] = propagation(args.propagation_replicates or (3 if args.quick else 20))
    tag = ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    write_json(results_dir() / f"characterization{tag}.json", out)
    print(f"wrote {results_dir() / f'characterization{tag}.json'}")


if __name__ == "__main__":
    main()
