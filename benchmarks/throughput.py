"""Throughput of the transport engine: single-case latency and batched cases per second.

Case: 5 ions (Na+, Cl-, Mg+2, SO4-2, Ca+2), film polarization (k = 2e-5 m/s) and
Pitzer activity; ideal activity without polarization for comparison.  The batch
is a fixed random spread around a typical NF case (not identical copies), so the
Newton iteration counts are representative.  ``workers=2`` splits the batch in two
chunks (``chunk_size = ceil(B/2)``) because the engine only parallelizes across
chunks.  Prints the figures; writes results/benchmarks/throughput.{csv,json}.

    python benchmarks/throughput.py [--quick] [--no-compiled | --with-engine]

``TransportOptions.compiled`` is "auto" (the compiled kernel where it covers the configuration);
``--no-compiled`` measures the engine alone (compiled=False), ``--with-engine`` both in the same run
(the engine's rows labelled ``<config>:engine``).  The ``compiled`` column is the share of cases the
kernel solved (``BatchResult.solver_path``).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import results_dir, start_run, write_csv, write_json  # noqa: E402

from nanosep.transport import TransportOptions, solve_batch  # noqa: E402

IONS = ["Na+", "Cl-", "Mg+2", "SO4-2", "Ca+2"]
TARGET_CASES_PER_S = 10_000.0

CONFIGS = {
    "pitzer_film": TransportOptions(activity="pitzer", polarization="film", mass_transfer_m_s=2e-5),
    "ideal_none": TransportOptions(activity="ideal", polarization="none"),
    # the target's film with the Davies activity: the compiled kernel's closest configuration while Pitzer is not in it
    "davies_film": TransportOptions(activity="davies", polarization="film", mass_transfer_m_s=2e-5),
}


def make_batch(B: int, seed: int = 0) -> dict:
    """B electroneutral cases spread (log-uniformly, +-x3) around a brackish-water NF case."""
    rng = np.random.default_rng(seed)
    spread = lambda lo, hi: np.exp(rng.uniform(np.log(lo), np.log(hi), B))  # noqa: E731
    na, mg, ca = 50 * spread(1 / 3, 3), 10 * spread(1 / 3, 3), 5 * spread(1 / 3, 3)
    so4 = 20 * spread(1 / 3, 3)
    cation_eq = na + 2 * mg + 2 * ca
    so4 = np.minimum(so4, 0.45 * cation_eq)          # Cl- closes the balance and stays >= 10 % of it
    cl = cation_eq - 2 * so4
    c = np.column_stack([na, cl, mg, so4, ca])
    return dict(c_feed=c, flux_m_s=1e-5 * spread(0.3, 3), pore_radius_m=0.5e-9 * spread(0.8, 1.5),
                thickness_m=1e-6 * spread(0.5, 2), pore_dielectric=rng.uniform(30, 60, B),
                charge_density_mol_m3=-50 * spread(0.3, 3), temperature_K=rng.uniform(288, 308, B))


def run(batch: dict, B: int, options, workers: int):
    kw = {k: v[:B] for k, v in batch.items()}
    chunk = max(1, math.ceil(B / workers))
    t0 = time.perf_counter()
    res = solve_batch(IONS, options=options, chunk_size=chunk, workers=workers, **kw)
    return time.perf_counter() - t0, res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="batch sizes up to 1000, fewer repeats")
    ap.add_argument("--batch-sizes", type=int, nargs="+", help="override the batch sizes")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    ap.add_argument("--large-repeats", type=int, default=1,
                    help="solves per point for B >= 1000 (median reported, best in best_cases_per_s; default 1); "
                         "on a noisy host, 3-5")
    ap.add_argument("--latency-repeats", type=int, help="single-case solves for the median (default 20, quick 7)")
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    ap.add_argument("--min-time", type=float, default=1.0,
                    help="repeat small batches until this many seconds are spent (default 1)")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's own choice); 1 avoids BLAS thread thrashing on a loaded host")
    ap.add_argument("--budget", type=float, default=60.0,
                    help="skip a (batch, workers) point whose projected time exceeds this many seconds (default 60)")
    ap.add_argument("--out", default="throughput", help="output stem in results/benchmarks/")
    ap.add_argument("--coarse-grids", type=int, default=None,
                    help="TransportOptions.coarse_grids for every config (default: the engine's; 0 = no "
                         "coarse-grid start, for before/after ratios in one session)")
    ap.add_argument("--no-compiled", action="store_true",
                    help="TransportOptions(compiled=False) for every config: the engine without the compiled kernel")
    ap.add_argument("--with-engine", action="store_true",
                    help="also run every config with compiled=False in the same run (rows '<config>:engine')")
    a = ap.parse_args(argv)

    sizes = a.batch_sizes or ([1, 10, 100, 1000] if a.quick else [1, 10, 100, 1000, 4000])
    nlat = a.latency_repeats or (7 if a.quick else 20)
    meta = start_run(a.torch_threads)
    batch = make_batch(max(sizes))
    rows, latency = [], {}

    variants = []
    for cname in a.configs:
        opt = CONFIGS[cname] if a.coarse_grids is None else CONFIGS[cname].with_(coarse_grids=a.coarse_grids)
        if not a.no_compiled:
            variants.append((cname, opt))
        if a.no_compiled or a.with_engine:
            variants.append((cname if a.no_compiled else f"{cname}:engine", opt.with_(compiled=False)))
    for cname, opt in variants:
        run(batch, 1, opt, 1)                      # warm-up (imports, torch init)
        times = [run(batch, 1, opt, 1)[0] for _ in range(nlat)]
        latency[cname] = 1e3 * statistics.median(times)
        print(f"\n[{cname}] single-case latency: median {latency[cname]:.1f} ms "
              f"(min {1e3 * min(times):.1f}, max {1e3 * max(times):.1f}; {nlat} solves)")
        print(f"{'B':>6} {'workers':>7} {'reps':>4} {'s/batch':>9} {'cases/s':>9} {'best/s':>9} {'ratio':>7} "
              f"{'conv':>6} {'mean it':>7} {'cont.frac':>9} {'compiled':>8}")
        rate = {}
        for B in sizes:
            for w in a.workers:
                if w in rate and B / rate[w] > a.budget:
                    print(f"{B:>6} {w:>7}  skipped: projected {B / rate[w]:.0f} s > budget {a.budget:.0f} s")
                    rows.append(dict(config=cname, batch=B, workers=w, skipped=True,
                                     projected_seconds=B / rate[w]))
                    continue
                dts, spent, res = [], 0.0, None
                while True:
                    dt, res = run(batch, B, opt, w)
                    dts.append(dt)
                    spent += dt
                    if (spent >= a.min_time or len(dts) >= 20) if B < 1000 else len(dts) >= a.large_repeats:
                        break
                dt = statistics.median(dts)
                cps = B / dt
                rate[w] = cps
                cont = res.continuation_steps if res.continuation_steps is not None else np.zeros(B)
                row = dict(config=cname, batch=B, workers=w, reps=len(dts), seconds_per_batch=dt, cases_per_s=cps,
                           best_cases_per_s=B / min(dts),
                           target_ratio=cps / TARGET_CASES_PER_S, converged_frac=float(res.converged.mean()),
                           mean_newton_iterations=float(np.mean(res.iterations)),
                           continuation_frac=float(np.mean(cont > 0)), latency_ms=latency[cname],
                           compiled_frac=float(np.mean(np.char.startswith(res.solver_path.astype(str), "compiled"))),
                           loadavg_1min=round(__import__("os").getloadavg()[0], 2))
                rows.append(row)
                print(f"{B:>6} {w:>7} {len(dts):>4} {dt:>9.3f} {cps:>9.1f} {row['best_cases_per_s']:>9.1f} "
                      f"{cps / TARGET_CASES_PER_S:>7.4f} "
                      f"{row['converged_frac']:>6.3f} {row['mean_newton_iterations']:>7.2f} "
                      f"{row['continuation_frac']:>9.3f} {row['compiled_frac']:>8.3f}")

    print(f"\nTarget: >= {TARGET_CASES_PER_S:,.0f} cases/s batched on 2 cores.")
    for cname, _ in variants:
        best = max((r for r in rows if r["config"] == cname and not r.get("skipped")), key=lambda r: r["cases_per_s"])
        print(f"  {cname}: best {best['cases_per_s']:.1f} cases/s (B={best['batch']}, workers={best['workers']}) "
              f"= {best['target_ratio']:.4f} x target "
              f"({'met' if best['cases_per_s'] >= TARGET_CASES_PER_S else 'missed'}: median of the repeats); "
              f"latency {latency[cname]:.1f} ms; best single solve {best['best_cases_per_s']:.1f} cases/s")
    meta["loadavg_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
    print(f"# load avg at end {meta['loadavg_end']}")
    out = results_dir()
    write_csv(out / f"{a.out}.csv", rows)
    write_json(out / f"{a.out}.json", dict(meta=meta, ions=IONS, target_cases_per_s=TARGET_CASES_PER_S,
                                           latency_ms=latency, rows=rows))
    print(f"wrote {out / (a.out + '.csv')} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
