"""Membrane characterization: fit time on FdL 2021, interval coverage and four-step vs joint error propagation.

1. Timing: joint fit of the 4 shared DSPM-DE parameters to the FdL 2021 NF270 data (134 rows, 6 ions,
   87 operating points), (a) local stage only from the case's initial values, (b) two-stage with the
   case's settings (16 Sobol points on the screening cases + 2 local runs) and (c) with the FitOptions
   defaults (32 + 2), each with the 1-min load average; then the per-salt-charge fit of
   cases/characterization/fdl2021_nf270.yaml without profiles (real-data deviation vs the authors' SDEM lines).
2. Coverage: noisy synthetic data (NaCl, MgSO4 and a Na/Mg/Cl/SO4 mix, 6 fluxes 5-100 L/m2/h, 48 rows,
   noise sd 0.01) from known parameters, fitted R times from the truth; fraction of replicates whose
   95 % interval contains the truth, per parameter (target >= 0.90) and for all four at once: the
   reported profile-likelihood intervals (exactly, by likelihood-ratio test inversion at the truth),
   the Fisher intervals, and the joint likelihood-ratio region; optionally (--profile-every) the
   bracketing profile_intervals() on a subset.  Resumable and shardable (--shard i/n).
3. Error propagation: App. D four-step procedure vs the joint fit on the same noisy experiments
   (spread of the recovered parameters, transport.characterization.four_step.propagation_study),
   once with the procedure's assumptions true and once violated (residual charge at the "IEP",
   pure-water flux 20 % below Hagen-Poiseuille).

Writes results/benchmarks/characterization*.json/csv and prints the figures.

    python benchmarks/characterization.py [--quick] [--replicates R] [--skip-timing] [--skip-per-salt]
                                          [--skip-coverage] [--skip-propagation] [--shard i/n]
                                          [--coverage-summary] [--profile-every k] [--tag TAG]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, results_dir, start_run, write_csv, write_json

TRUTH = {"pore_radius_nm": 0.55, "thickness_um": 1.5, "pore_dielectric": 42.0, "charge_density_mol_m3": -40.0}
BOUNDS = {"pore_radius_nm": [0.35, 1.0], "thickness_um": [0.2, 10.0], "pore_dielectric": [25.0, 78.0],
          "charge_density_mol_m3": [-150.0, 50.0]}


def timing(quick: bool, per_salt: bool = True) -> dict:
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
    runs = (("local only", 0, 1), (f"Sobol {case.fit.starts} + {case.fit.local_starts} local (the case's settings)",
                                    case.fit.starts, case.fit.local_starts),
            ("Sobol 32 + 2 local (FitOptions defaults)", 32, 2))
    for label, starts, local in runs:
        model = RejectionModel(ParameterMap(case, obs.cases.labels), options, db)
        load0 = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        fit = fit_parameters(model, obs, starts=starts, local_starts=local)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        load = (load0 + os.getloadavg()[0]) / 2
        out[label] = {"seconds": dt, "cpu_seconds": cpu, "load_1min": load, "cost": fit.cost, "values": fit.values, "nfev": fit.nfev,
                      "engine_calls": model.stats.calls, "engine_cases": model.stats.cases,
                      "local_runs": len(fit.starts)}
        print(f"4-parameter FdL fit ({label}): {dt:.1f} s wall at 1-min load {load:.1f}, {cpu:.1f} s CPU (target "
              f"<= 60 s), cost "
              f"{fit.cost:.4f}, {fit.nfev} local evaluations, {model.stats.calls} engine calls with "
              f"{model.stats.cases} cases, {fit.values}", flush=True)
        if quick:
            break
    if not quick and per_salt:
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


COVERAGE_FEEDS = {"NaCl": {"Na+": 10.0, "Cl-": 10.0}, "MgSO4": {"Mg+2": 10.0, "SO4-2": 10.0},
                  "mix": {"Na+": 20.0, "Mg+2": 5.0, "Cl-": 20.0, "SO4-2": 5.0}}
COVERAGE_FLUX = [5.0, 10.0, 20.0, 35.0, 60.0, 100.0]
COVERAGE_NOISE = 0.01
COVERAGE_SEED = 12345


def coverage_problem():
    """(model, observations, u_true) of the coverage study (the product's default engine options)."""
    from nanosep.transport.characterization import (
        ParameterMap,
        RejectionModel,
        fit_case_from_dict,
        observations_from_table,
    )
    from nanosep.transport.characterization.synthetic import design_table

    case = fit_case_from_dict({"model": {"activity": "davies"}, "parameters": {
        n: {"initial": TRUTH[n], "bounds": BOUNDS[n]} for n in TRUTH}})
    options, db = case.engine_setup()
    obs = observations_from_table(design_table(COVERAGE_FEEDS, COVERAGE_FLUX))
    model = RejectionModel(ParameterMap(case, obs.cases.labels), options, db)
    return model, obs, model.pmap.u0.copy()


def coverage_replicate(model, obs, u_true, rep: int, full_profile: bool) -> dict:
    """One noisy replicate: fit from the truth, Fisher intervals, likelihood-ratio (profile) tests at the truth."""
    from nanosep.transport.characterization import fit_parameters
    from nanosep.transport.characterization.intervals import (
        fisher_summary,
        joint_statistic,
        joint_threshold,
        profile_intervals,
        profile_statistic,
    )
    from nanosep.transport.characterization.synthetic import synthetic_rejections

    rng = np.random.default_rng([COVERAGE_SEED, rep])   # replicate k's data do not depend on the others
    data = synthetic_rejections(model, obs, u_true, noise_sd=COVERAGE_NOISE, rng=rng)
    t0 = time.perf_counter()
    fit = fit_parameters(model, data, starts=0, tol=1e-9)
    fs = fisher_summary(fit, model)
    thr = fs.quantile ** 2
    joint = joint_statistic(fit, model, data, fs.s2, u_true)
    row = {"replicate": rep, "cost": fit.cost, "s2": fs.s2, "joint_statistic": joint,
           "joint_threshold": joint_threshold(len(TRUTH), fit.dof),
           "fit_below_truth": bool(joint >= -1e-9)}   # False: the local fit stopped above the truth's cost
    for n in TRUTH:
        row[f"{n}_estimate"] = fit.values[n]
        row[f"{n}_at_bound"] = bool(np.isclose(fit.values[n], BOUNDS[n][0], rtol=1e-6) or
                                    np.isclose(fit.values[n], BOUNDS[n][1], rtol=1e-6))
        row[f"{n}_fisher_covers"] = bool(fs.lower[n] <= TRUTH[n] <= fs.upper[n])
        dl = profile_statistic(fit, model, data, fs.s2, n, TRUTH[n])
        row[f"{n}_profile_delta"] = dl
        row[f"{n}_profile_covers"] = bool(dl <= thr)
    if full_profile:   # the product's profile_intervals (bracketing + regula falsi), for comparison
        pr = profile_intervals(fit, model, data, fs)
        for n in TRUTH:
            row[f"{n}_profile_interval_covers"] = bool(pr.lower[n] <= TRUTH[n] <= pr.upper[n])
    row["seconds"] = time.perf_counter() - t0
    return row


def coverage_summary(rows: list[dict]) -> dict:
    """Coverage per parameter and joint, of Fisher and of profile-likelihood (the reported) intervals."""
    out = {"replicates": len(rows)}
    for n in TRUTH:
        out[f"{n}_fisher"] = float(np.mean([r[f"{n}_fisher_covers"] for r in rows]))
        out[f"{n}_profile"] = float(np.mean([r[f"{n}_profile_covers"] for r in rows]))
        full = [r[f"{n}_profile_interval_covers"] for r in rows if f"{n}_profile_interval_covers" in r]
        out[f"{n}_profile_interval"] = float(np.mean(full)) if full else None
    out["all_four_fisher"] = float(np.mean([all(r[f"{n}_fisher_covers"] for n in TRUTH) for r in rows]))
    out["all_four_profile"] = float(np.mean([all(r[f"{n}_profile_covers"] for n in TRUTH) for r in rows]))
    out["joint_region"] = float(np.mean([r["joint_statistic"] <= r["joint_threshold"] for r in rows]))
    out["fit_below_truth"] = float(np.mean([r["fit_below_truth"] for r in rows]))
    out["radius_at_bound"] = float(np.mean([r["pore_radius_nm_at_bound"] for r in rows]))
    return out


def coverage(replicates: int, profile_every: int, shard: tuple[int, int] = (0, 1)) -> dict:
    """Coverage of the 95 % intervals over ``replicates`` noisy synthetic data sets (resumable).

    Per replicate the reported (profile-likelihood) interval's coverage is measured exactly by test
    inversion: the truth is inside iff the constrained re-fit at the true value gives Delta <= q^2.
    Rows go to characterization_coverage[_shard].csv after each replicate; a rerun skips finished
    replicates; ``shard = (i, n)`` runs the replicates with rep % n == i (run n processes, then one
    with ``--coverage-summary``).
    """
    import pandas as pd

    i, n_sh = shard
    path = results_dir() / ("characterization_coverage.csv" if n_sh == 1 else
                            f"characterization_coverage_shard{i}of{n_sh}.csv")
    rows = pd.read_csv(path).to_dict("records") if path.exists() else []
    done = {int(r["replicate"]) for r in rows}
    model, obs, u_true = coverage_problem()
    t0 = time.perf_counter()
    todo = [r for r in range(replicates) if r % n_sh == i and r not in done]
    for count, rep in enumerate(todo):
        rows.append(coverage_replicate(model, obs, u_true, rep, bool(profile_every) and rep % profile_every == 0))
        write_csv(path, rows)
        if (count + 1) % 5 == 0 or count + 1 == len(todo):
            s = coverage_summary(rows)
            print(f"  coverage: {len(rows)} replicates ({time.perf_counter() - t0:.0f} s this run): profile "
                  + ", ".join(f"{n} {s[f'{n}_profile']:.2f}" for n in TRUTH) + "; Fisher "
                  + ", ".join(f"{n} {s[f'{n}_fisher']:.2f}" for n in TRUTH), flush=True)
    return print_coverage(rows)


def print_coverage(rows: list[dict]) -> dict:
    summary = coverage_summary(rows)
    summary.update({"rows_per_fit": 48, "noise_sd": COVERAGE_NOISE, "seed": COVERAGE_SEED})
    print(f"coverage of the 95 % intervals ({summary['replicates']} replicates; fraction containing the truth):")
    for n in TRUTH:
        full = summary[f"{n}_profile_interval"]
        print(f"  {n:>24}: profile likelihood (reported) {summary[f'{n}_profile']:.2f}, Fisher "
              f"{summary[f'{n}_fisher']:.2f}" + (f", profile_intervals() subset {full:.2f}" if full is not None else ""))
    print(f"  all four intervals at once: profile {summary['all_four_profile']:.2f}, Fisher "
          f"{summary['all_four_fisher']:.2f} (four independent exact 95 % intervals: 0.81)")
    print(f"  joint 95 % likelihood-ratio region (p F(p, N-p)): {summary['joint_region']:.2f}; fits at or below "
          f"the truth's cost {summary['fit_below_truth']:.2f}; radius at a bound {summary['radius_at_bound']:.2f}")
    return summary


def merged_coverage() -> dict:
    import pandas as pd

    files = sorted(results_dir().glob("characterization_coverage*.csv"))
    rows = pd.concat([pd.read_csv(f) for f in files]).drop_duplicates("replicate").sort_values("replicate")
    return print_coverage(rows.to_dict("records"))


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
                    help="also run profile_intervals() on every k-th coverage replicate (default 0 = never; costly)")
    ap.add_argument("--shard", default="0/1", help="coverage replicates rep %% n == i of 'i/n' (parallel runs)")
    ap.add_argument("--coverage-summary", action="store_true", help="merge the coverage CSV files and print")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--skip-per-salt", action="store_true", help="timing: skip the per-salt-charge FdL fit")
    ap.add_argument("--skip-coverage", action="store_true")
    ap.add_argument("--skip-propagation", action="store_true")
    ap.add_argument("--tag", default="", help="suffix of the JSON file name (characterization[_quick][_TAG].json)")
    args = ap.parse_args()
    meta = start_run(1)
    out = {"meta": meta}
    if not args.skip_timing:
        out["timing"] = timing(args.quick, not args.skip_per_salt)
    if not args.skip_coverage:
        reps = args.replicates or (10 if args.quick else 100)
        every = args.profile_every if args.profile_every is not None else 0
        i, n = (int(x) for x in args.shard.split("/"))
        out["coverage"] = merged_coverage() if args.coverage_summary else coverage(reps, every, (i, n))
    if not args.skip_propagation:
        out["propagation"] = propagation(args.propagation_replicates or (3 if args.quick else 20))
    tag = ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    write_json(results_dir() / f"characterization{tag}.json", out)
    print(f"wrote {results_dir() / f'characterization{tag}.json'}")


if __name__ == "__main__":
    main()
