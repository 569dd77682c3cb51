"""Dense vs block-bordered LU of the engine's Newton matrices, and whole solves with each.

Part 1 factorizes the engine's own Jacobians (built at a perturbed initial guess of a batch of B cases)
with :class:`nanosep.transport.newton.DenseLU` and :class:`nanosep.transport.bordered.BorderedLU`
(factorization + two solves, as one Newton iteration with one damping trial uses them), for 5 ions
(Pitzer + film + image forces) and 8 ions (Davies + film) on the coarse, default and refined grids,
and prints the time per case, the ratio and the largest difference of the Newton steps.  Part 2 solves
the throughput benchmark's 5-ion batch and an 8-ion batch end to end with the dense LU only, the
bordered LU only, and the default switch (``TransportOptions.bordered_min_unknowns``).  Also printed:
the floor that one dense factorization at the default grid puts on the batched throughput.

    python benchmarks/linear_solver.py [--quick] [--torch-threads 1]

Writes results/benchmarks/linear_solver.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import metadata, results_dir, start_run, write_json  # noqa: E402

from nanosep.ions import IonDatabase  # noqa: E402
from nanosep.transport import TransportOptions, solve_batch  # noqa: E402
from nanosep.transport.bordered import BorderedLU  # noqa: E402
from nanosep.transport.newton import DenseLU  # noqa: E402
from nanosep.transport.solver import build_parameters, feed_equilibrium  # noqa: E402
from nanosep.transport.system import DSPMDESystem  # noqa: E402

ION_SETS = {
    5: (["Na+", "Cl-", "Mg+2", "SO4-2", "Ca+2"],
        TransportOptions(activity="pitzer", polarization="film", mass_transfer_m_s=2e-5, image_forces=True)),
    8: (["Na+", "K+", "Cl-", "Mg+2", "SO4-2", "Ca+2", "NO3-", "HCO3-"],
        TransportOptions(activity="davies", polarization="film", mass_transfer_m_s=2e-5)),
}
GRIDS = [(12, 8), (24, 16), (48, 32)]


def random_feed(names: list[str], B: int, rng) -> np.ndarray:
    """Electroneutral feeds: log-uniform 1-100 mol/m3, anions scaled to balance the cations."""
    db = IonDatabase.default()
    z = np.array([db.get(i).charge for i in names], float)
    c = np.exp(rng.uniform(np.log(1.0), np.log(100.0), (B, len(names))))
    pos, neg = (c * np.where(z > 0, z, 0)).sum(1), (c * np.where(z < 0, -z, 0)).sum(1)
    return np.where(z < 0, c * (pos / neg)[:, None], c)


def spread(rng, B: int, lo: float, hi: float) -> np.ndarray:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), B))


def jacobians(names, options, B: int, nodes: int, film_nodes: int, seed: int = 0):
    db = IonDatabase.default()
    rng = np.random.default_rng(seed)
    z = np.array([db.get(i).charge for i in names], float)
    prm = build_parameters(names, z, np.array([db.get(i).stokes_radius_m for i in names]),
                           np.array([db.get(i).diffusivity_m2_s for i in names]), random_feed(names, B, rng),
                           1e-5 * spread(rng, B, 0.3, 3), 0.6e-9 * spread(rng, B, 0.8, 1.5),
                           1e-6 * spread(rng, B, 0.5, 2), rng.uniform(30, 60, B), -50 * spread(rng, B, 0.3, 3),
                           rng.uniform(288, 308, B), options)
    phi0, scale = feed_equilibrium(prm)
    sys_ = DSPMDESystem(prm, nodes, film_nodes, scale)
    x = sys_.initial_guess(phi0)
    x = x * (1.0 + 0.05 * rng.uniform(-1, 1, x.shape))
    F, J = sys_.evaluate(x)
    return sys_, F, J


def time_factorization(make, F: np.ndarray, reps: int) -> tuple[float, np.ndarray]:
    best, out = np.inf, None
    for _ in range(reps):
        t0 = time.perf_counter()
        fac = make()
        out = fac.solve(-F)
        fac.solve(F)
        best = min(best, time.perf_counter() - t0)
    return best, out


def whole_solves(names, options, B: int, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    kw = dict(flux_m_s=1e-5 * spread(rng, B, 0.3, 3), pore_radius_m=0.6e-9 * spread(rng, B, 0.8, 1.5),
              thickness_m=1e-6 * spread(rng, B, 0.5, 2), pore_dielectric=rng.uniform(30, 60, B),
              charge_density_mol_m3=-50 * spread(rng, B, 0.3, 3), temperature_K=rng.uniform(288, 308, B))
    feed = random_feed(names, B, rng)
    solve_batch(names, feed[:8], options=options, **{k: v[:8] for k, v in kw.items()})   # warm-up (tables, caches)
    rows, ref = [], None
    for label, thr in (("dense", None), ("bordered", 1), ("default", options.bordered_min_unknowns)):
        t0 = time.perf_counter()
        res = solve_batch(names, feed, options=options.with_(bordered_min_unknowns=thr), **kw)
        dt = time.perf_counter() - t0
        ref = res if ref is None else ref
        rows.append({"ions": len(names), "solver": label, "bordered_min_unknowns": thr, "batch": B,
                     "seconds": dt, "cases_per_s": B / dt, "converged": float(res.converged.mean()),
                     "mean_iterations": float(res.iterations.mean()),
                     "max_abs_rejection_diff_vs_dense": float(np.nanmax(np.abs(res.rejection - ref.rejection)))})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="B = 128 Jacobians, 200-case solves")
    ap.add_argument("--torch-threads", type=int, default=1)
    args = ap.parse_args(argv)
    meta = start_run(args.torch_threads)
    B = 128 if args.quick else 512
    reps = 2 if args.quick else 3
    part1 = []
    print(f"\nPart 1: factorization + 2 solves of B = {B} engine Jacobians (best of {reps})")
    print(f"{'ions':>4} {'grid':>7} {'m':>5} {'border':>6} {'dense ms/case':>14} {'bordered ms/case':>17} "
          f"{'ratio':>6} {'max step diff':>14}")
    for n, (names, options) in ION_SETS.items():
        for nodes, film_nodes in GRIDS:
            sys_, F, J = jacobians(names, options, B, nodes, film_nodes)
            st = sys_.bordered_structure()
            td, d1 = time_factorization(lambda: DenseLU(J), F, reps)
            tb, d2 = time_factorization(lambda: BorderedLU(J, st), F, reps)
            fin = np.all(np.isfinite(d1), axis=1)
            diff = float(np.max(np.abs(d1 - d2)[fin]) / np.max(np.abs(d1[fin])))
            row = {"ions": n, "nodes": nodes, "film_nodes": film_nodes, "unknowns": sys_.lay.size,
                   "border": int(st.border.size + st.coupled.size), "dense_ms_per_case": 1e3 * td / B,
                   "bordered_ms_per_case": 1e3 * tb / B, "ratio_dense_over_bordered": td / tb,
                   "max_rel_step_diff": diff}
            part1.append(row)
            print(f"{n:>4} {nodes:>3}/{film_nodes:<3} {row['unknowns']:>5} {row['border']:>6} "
                  f"{row['dense_ms_per_case']:>14.3f} {row['bordered_ms_per_case']:>17.3f} {td / tb:>6.2f} {diff:>14.1e}")
    default = next(r for r in part1 if r["ions"] == 5 and r["nodes"] == 24)
    floor = 2.0 / (default["dense_ms_per_case"] / 1e3)
    print(f"\nFloor: one dense factorization at the default grid (5 ions, film, {default['unknowns']} unknowns) "
          f"costs {default['dense_ms_per_case']:.2f} ms/case; even one Newton step per case and nothing else "
          f"caps 2 cores at {floor:,.0f} cases/s (bordered: "
          f"{2.0 / (default['bordered_ms_per_case'] / 1e3):,.0f}).")
    Bs = 200 if args.quick else 1000
    print(f"\nPart 2: whole solves, B = {Bs}")
    part2 = []
    for n, (names, options) in ION_SETS.items():
        for row in whole_solves(names, options, Bs):
            part2.append(row)
            print(f"  {n} ions {row['solver']:>9}: {row['seconds']:7.2f} s  {row['cases_per_s']:8.1f} cases/s  "
                  f"converged {row['converged']:.4f}  iterations {row['mean_iterations']:.2f}  "
                  f"max |dR| vs dense {row['max_abs_rejection_diff_vs_dense']:.1e}")
    meta["loadavg_end"] = metadata()["loadavg_1_5_15"]
    path = results_dir() / f"linear_solver{'_quick' if args.quick else ''}.json"
    write_json(path, {"meta": meta, "factorization": part1, "solves": part2,
                      "dense_floor_cases_per_s_2_cores": floor})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
