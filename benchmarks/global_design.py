"""Deterministic global optimization per Pareto point (seed 002 Table 4) with MAiNGO, reduced space.

One-stage drinking-water plant of seed 002 sec. 3.1-3.3 (224 m3/h product, Na2SO4 10 mol/m3 feed,
permeate recirculation allowed, osmotic pressure in the driving force, module counts relaxed
unless --integer), relative gap 1e-3, for three rejection models:

* ``element`` (case A, k = 1): shipped ``seed002_na2so4_element`` at the stage feed;
* ``chain`` (case B1): three element surrogates in series, embedded directly;
* ``module`` (case B2): shipped ``seed002_na2so4_module`` (with gamma).

For each, ``--n-eps`` epsilons (product SO4 2- limits, log-spaced between --eps-min and --eps-max)
are solved one after the other by :func:`nanosep.flowsheets.global_opt.solve_global`; per point the
wall time, MAiNGO's CPU time, status, bound and gap are kept; the script prints median / max per
variant side by side with seed 002 Table 4 (CPU s summed over cores) and the targets of issue 4,
and writes ``results/benchmarks/global_design[_quick].json``.

    python benchmarks/global_design.py [--quick] [--variants element,chain,module] [--time-limit 300]
                                       [--module-surrogate seed002_na2so4_module_small]

``--module-surrogate`` names another shipped module MLP for the ``module`` variant (e.g. the compact
``seed002_na2so4_module_small``); the figures then go to ``global_design_<name>[_quick].json``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import metadata, results_dir

#: seed 002 Table 4: average CPU s per Pareto point (summed over cores), cores
PAPER = {"element": (2.1e1, 4), "chain": (9.1e4, 48), "module": (2.4e2, 48)}
#: issue 4 targets: median wall s per point on 2 cores
TARGET = {"element": None, "chain": 30.0, "module": 2.0}
LABEL = {"element": "A   k = 1 element", "chain": "B1  3 elements embedded", "module": "B2  module surrogate"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 epsilons per variant, 60 s time limit")
    ap.add_argument("--variants", default="element,chain,module")
    ap.add_argument("--n-eps", type=int, default=10)
    ap.add_argument("--eps-min", type=float, default=0.3, help="smallest product SO4 2- limit [mol/m3]")
    ap.add_argument("--eps-max", type=float, default=5.0, help="largest product SO4 2- limit [mol/m3]")
    ap.add_argument("--c-feed", type=float, default=10.0, help="Na2SO4 feed [mol/m3]")
    ap.add_argument("--rel-gap", type=float, default=1e-3)
    ap.add_argument("--time-limit", type=float, default=300.0, help="per point [s]")
    ap.add_argument("--integer", action="store_true", help="integer module counts (MINLP)")
    ap.add_argument("--no-recirculation", action="store_true")
    ap.add_argument("--module-surrogate", default=None,
                    help="shipped surrogate for the module variant (default seed002_na2so4_module)")
    args = ap.parse_args(argv)
    if args.quick:
        args.n_eps, args.time_limit = 3, min(args.time_limit, 60.0)

    import numpy as np
    from nanosep.flowsheets import PlantSpec
    from nanosep.flowsheets.global_opt import solve_global

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    eps = np.geomspace(args.eps_min, args.eps_max, args.n_eps) if args.n_eps > 1 else np.array([args.eps_max])
    spec = PlantSpec(feed_conc_mol_m3={"Na+": 2 * args.c_feed, "SO4-2": args.c_feed}, n_stages=1,
                     recirculation=not args.no_recirculation, integer_modules=args.integer)
    meta = metadata()
    print(f"load average {meta.get('loadavg_1_5_15')}; feed Na2SO4 {args.c_feed} mol/m3; epsilons {np.round(eps, 4).tolist()}; "
          f"rel. gap {args.rel_gap}; time limit {args.time_limit} s; integer modules {args.integer}")
    rows = []
    stem = "global_design" + (f"_{args.module_surrogate}" if args.module_surrogate else "")
    out = results_dir() / f"{stem}{'_quick' if args.quick else ''}.json"

    def save(summary: dict) -> None:  # after every point: an interrupted run keeps what it measured
        out.write_text(json.dumps({"meta": meta, "args": vars(args), "summary": summary, "points": rows}, indent=2,
                                  default=str))

    for v in variants:
        for e in eps:
            t0 = time.perf_counter()
            sur = args.module_surrogate if v == "module" else None
            dp = solve_global(spec, v, float(e), surrogate=sur, rel_gap=args.rel_gap, time_limit_s=args.time_limit)
            wall = time.perf_counter() - t0
            row = {"variant": v, "epsilon": float(e), "status": dp.status, "globally_optimal": dp.globally_optimal,
                   "wall_s": wall, "maingo_cpu_s": dp.times_s.get("solve_cpu", float("nan")),
                   "objective": dp.objective_usd_per_year, "lower_bound": dp.lower_bound_usd_per_year,
                   "relative_gap": dp.relative_gap, "product": dp.product_conc_mol_m3.get("SO4-2"),
                   "design": dp.design, "message": dp.message}
            rows.append(row)
            save({})
            print(f"  {v:8s} eps {e:8.4f}  {dp.status:11s} wall {wall:7.2f} s  cpu {row['maingo_cpu_s']:7.2f} s  "
                  f"cost {dp.objective_usd_per_year:10.1f} USD/yr  gap {dp.relative_gap:.1e}", flush=True)
    summary = {}
    print(f"\n{'variant':26s} {'median wall':>11s} {'max wall':>9s} {'median CPU':>10s} {'max CPU':>8s} "
          f"{'certified':>9s} | {'seed 002 CPU s (cores)':>22s} | target median wall")
    for v in variants:
        rs = [r for r in rows if r["variant"] == v]
        w = [r["wall_s"] for r in rs]
        c = [r["maingo_cpu_s"] for r in rs]
        ok = sum(bool(r["globally_optimal"]) for r in rs) + sum(r["status"] == "infeasible" for r in rs)
        s = {"median_wall_s": statistics.median(w), "max_wall_s": max(w), "median_cpu_s": statistics.median(c),
             "max_cpu_s": max(c), "certified_or_infeasible": ok, "points": len(rs),
             "paper_avg_cpu_s": PAPER[v][0], "paper_cores": PAPER[v][1], "target_median_wall_s": TARGET[v]}
        s["target_met"] = None if TARGET[v] is None else bool(s["median_wall_s"] <= TARGET[v])
        summary[v] = s
        tgt = "-" if TARGET[v] is None else f"<= {TARGET[v]:g} s: {'met' if s['target_met'] else 'NOT met'}"
        print(f"{LABEL[v]:26s} {s['median_wall_s']:11.2f} {s['max_wall_s']:9.2f} {s['median_cpu_s']:10.2f} "
              f"{s['max_cpu_s']:8.2f} {ok:>4d}/{len(rs):<4d} | {PAPER[v][0]:12.2g} ({PAPER[v][1]:2d} cores) | {tgt}")
    save(summary)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
