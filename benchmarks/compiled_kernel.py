"""Compiled (numba) kernel vs the engine: cases per second and agreement on the same batches, same run.

Throughput batch: the ``ideal_none`` case of benchmarks/throughput.py (5 ions Na+, Cl-, Mg+2, SO4-2,
Ca+2, ideal activity, no polarization, a +-x3 spread around a brackish-water NF case), solved by
``solve_batch`` with ``TransportOptions(compiled=False)`` (the engine) and ``compiled=True`` (the
kernel, with the engine's fallback and refinement), at batch sizes 1, 100, 1000, 10000 and 1 and 2
workers (``chunk_size = ceil(B / workers)``).  Agreement batch: the wide random spread of
tests/test_compiled_kernel.py (2-5 ions, feed 0.01-1000 mol/m3, pore radius 0.4-2 nm, X -1000..+500
mol/m3, flux 0.1-200 L/m2/h).  The kernel's compile time is measured in a fresh process with an empty
numba cache, and the time to load it from the cache in a second one.  Newton work per case (iterations and
Jacobian factorizations per grid, kernel CPU time) on the Pitzer + film throughput batch, the kernel against its
plain-Newton variant (a factorization every iteration, every grid to the final tolerance, the engine's start).  Writes
results/benchmarks/compiled_kernel.{csv,json}.

    nice -n 10 python benchmarks/compiled_kernel.py [--quick]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import metadata, print_metadata, results_dir, write_csv, write_json  # noqa: E402
from throughput import CONFIGS, IONS, make_batch  # noqa: E402
from test_compiled_chord import kernel_inputs  # noqa: E402
from test_compiled_kernel import ION_SETS, wide_batch  # noqa: E402

from nanosep.ions import IonDatabase  # noqa: E402
from nanosep.transport import TransportOptions, compiled, solve_batch  # noqa: E402

PATHS = {"engine": TransportOptions(compiled=False), "kernel": TransportOptions(compiled=True)}
_COMPILE = "import time; t = time.perf_counter(); from nanosep.transport import compiled; " \
           "t1 = time.perf_counter(); compiled.compile_kernels(); print(time.perf_counter() - t1)"


def compile_seconds() -> tuple[float, float]:
    """(compile from an empty numba cache, load from that cache) in fresh processes, seconds."""
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        out = [float(subprocess.run([sys.executable, "-c", _COMPILE], env=env, capture_output=True, text=True,
                                    check=True).stdout.split()[-1]) for _ in range(2)]
    return out[0], out[1]


def factorization_us(repeats: int = 300) -> tuple[float, float, int]:
    """Microseconds per Newton-matrix factorization of one 5-ion case on the 24-interval grid: the kernel's
    block elimination (assembly + per-ion LUs + Schur complement, ``compiled._factor``) and a dense LU of the
    engine's assembled Jacobian (assembly not counted) by the same numba LU routine (``compiled._lu_factor``);
    and the unknown count."""
    from nanosep.transport import solver
    from nanosep.transport.compiled_system import F_INT_nptype
    from nanosep.transport.system import DSPMDESystem

    b = make_batch(1, seed=3)
    res = solve_batch(IONS, options=PATHS["engine"], **b)
    db = IonDatabase.default()
    z = np.array([db.get(i).charge for i in IONS], float)
    prm = solver.build_parameters(IONS, z, np.array([db.get(i).stokes_radius_m for i in IONS]),
                                  np.array([db.get(i).diffusivity_m2_s for i in IONS]), b["c_feed"], b["flux_m_s"],
                                  b["pore_radius_m"], b["thickness_m"], b["pore_dielectric"],
                                  b["charge_density_mol_m3"], b["temperature_K"], PATHS["engine"])
    _, scale = solver.feed_equilibrium(prm)
    sys_ = DSPMDESystem(prm, 24, 16, scale)
    x = res.solution[0]
    J = sys_.evaluate(res.solution, True)[1][0]
    m, n, M = J.shape[0], len(IONS), 25
    phi0, _ = solver.feed_equilibrium(prm)
    P = compiled.ion_parameters(prm, scale, phi0)[0]
    ion, pot = compiled._index_maps(n, M, 0)
    K = M + 1
    args = (x, np.ascontiguousarray(sys_.D), np.ones(M), np.zeros((0, 0)), np.ones(0), z, P, float(sys_.cscale[0]),
            ion, pot, compiled.IDEAL, np.zeros(1), np.empty((n, K, K)), np.empty((n, K), np.int64),
            np.empty((n, K, K)), np.empty((K, K)), np.empty(K, F_INT_nptype), np.zeros((4, n, n)), np.empty(n),
            np.zeros((4, n, n)), False)
    piv = np.empty(m, np.int64)
    compiled._factor(*args)
    compiled._lu_factor(J.copy(), piv)
    t0 = time.perf_counter()
    for _ in range(repeats):
        compiled._factor(*args)
    t1 = time.perf_counter()
    for _ in range(repeats):
        compiled._lu_factor(J.copy(), piv)
    t2 = time.perf_counter()
    return 1e6 * (t1 - t0) / repeats, 1e6 * (t2 - t1) / repeats, m


def newton_counts(B: int, repeats: int = 3) -> list[dict]:
    """Per grid Newton iterations and Jacobian factorizations per case, and kernel CPU microseconds per case (best
    of ``repeats``, ``time.process_time``: robust to a loaded host), of the throughput benchmark's Pitzer + film
    batch (``compiled.solve_cases`` directly, one thread): ``plain`` = a factorization every iteration, every grid
    to the final tolerance, from the engine's ``initial_guess`` (the kernel before chord steps); ``kernel`` = the
    defaults (chord steps, ``COARSE_TOL``, the kernel's own start with the film floor)."""
    from nanosep.transport.system import DSPMDESystem

    opt = CONFIGS["pitzer_film"]
    prm, phi0, scale, grids, film = kernel_inputs(IONS, make_batch(B), opt)
    t0 = time.process_time()
    x0 = DSPMDESystem(prm, grids[0], film[0], scale).initial_guess(phi0, "shp")
    t_guess = time.process_time() - t0
    variants = {"plain": {"x0": x0, "chord": 0.0, "coarse_tol": opt.tol}, "kernel": {"x0": None}}
    out = []
    for name, kw in variants.items():
        best = np.inf
        for _ in range(repeats):
            cnt = np.zeros((B, len(grids), 2), np.int64)
            t0 = time.process_time()
            x, status, _, _, steps = compiled.solve_cases(prm, scale, phi0, kw["x0"], grids, opt.tol, None, 1, film,
                                                          counts=cnt, **{k: v for k, v in kw.items() if k != "x0"})
            best = min(best, time.process_time() - t0 + (t_guess if name == "plain" else 0.0))
        out.append({"variant": name, "grids": grids, "iterations": cnt[..., 0].mean(axis=0).round(2).tolist(),
                    "factorizations": cnt[..., 1].mean(axis=0).round(2).tolist(), "us_per_case": 1e6 * best / B,
                    "continuation_frac": float(np.mean(steps > 0)), "converged": float(np.mean(status == 0)), "x": x})
    ok = np.isfinite(out[0]["x"]).all(axis=1) & np.isfinite(out[1]["x"]).all(axis=1)
    n = len(IONS)
    d = float(np.max(np.abs(np.exp(out[1]["x"][ok, -(n + 1):-1]) - np.exp(out[0]["x"][ok, -(n + 1):-1]))
                     / prm.c_feed[ok]))
    for r in out:
        r.pop("x")
        r["max_abs_dR_vs_plain"] = d
    return out


def timed(ions, batch: dict, B: int, options, workers: int, min_time: float, one_chunk: bool = False):
    """Median seconds per ``solve_batch`` call, repeats, last result; ``one_chunk``: chunk_size = B (with
    workers > 1 the kernel then runs its cases on ``workers`` numba threads, prange)."""
    kw = {k: v[:B] for k, v in batch.items()}
    chunk = B if one_chunk else max(1, math.ceil(B / workers))
    dts, res = [], None
    while True:
        t0 = time.perf_counter()
        res = solve_batch(ions, options=options, chunk_size=chunk, workers=workers, **kw)
        dts.append(time.perf_counter() - t0)
        if sum(dts) >= min_time or len(dts) >= 50 or B >= 1000:
            return statistics.median(dts), len(dts), res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="batch sizes up to 1000, 200 agreement cases per ion set")
    ap.add_argument("--batch-sizes", type=int, nargs="+", help="override the batch sizes")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--wide", type=int, default=None, help="agreement cases per ion set (default 1000)")
    ap.add_argument("--min-time", type=float, default=1.0, help="repeat small batches for this many seconds")
    ap.add_argument("--out", default="compiled_kernel", help="output stem in results/benchmarks/")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    sizes = a.batch_sizes or ([1, 100, 1000] if a.quick else [1, 100, 1000, 10000])
    n_wide = a.wide or (200 if a.quick else 1000)
    meta = metadata()
    print_metadata(meta)

    t_compile, t_load = compile_seconds()
    print(f"kernel compile (empty numba cache, fresh process): {t_compile:.1f} s; load from cache: {t_load:.2f} s")

    f_block, f_dense, m = factorization_us()
    print(f"one Newton matrix ({m} unknowns, 5 ions, 24 intervals): block elimination {f_block:.0f} us, "
          f"dense LU {f_dense:.0f} us (same numba LU routine) -> {f_dense / f_block:.1f}x")

    compiled.compile_kernels()
    counts = newton_counts(300 if a.quick else 1000)
    print(f"\nNewton work per case, Pitzer + film throughput batch ({1000 if not a.quick else 300} cases, grids "
          f"{counts[0]['grids']}, one thread, kernel CPU time):")
    for r in counts:
        print(f"  {r['variant']:<7} iterations {r['iterations']}  factorizations {r['factorizations']}  "
              f"continuation {r['continuation_frac']:.3f}  {r['us_per_case']:.0f} us/case")
    print(f"  max |dR| kernel vs plain {counts[0]['max_abs_dR_vs_plain']:.1e}")

    batch = make_batch(max(sizes))
    compiled.compile_kernels()                       # warm-up: both kernel entry points from the cache
    for opt in PATHS.values():                       # imports, torch
        solve_batch(IONS, options=opt, **{k: v[:4] for k, v in batch.items()})
    rows = []
    print("\nkernel/s: workers chunks of ceil(B/workers) cases; prange/s: one chunk, cases on `workers` numba threads")
    print(f"{'B':>6} {'workers':>7} {'engine/s':>9} {'kernel/s':>9} {'prange/s':>9} {'ratio':>6} {'max|dR|':>9} "
          f"{'compiled':>8} {'refined':>7} {'fallback':>8}")
    for B in sizes:
        for w in a.workers:
            t_e, reps_e, re = timed(IONS, batch, B, PATHS["engine"], w, a.min_time)
            t_k, reps_k, rk = timed(IONS, batch, B, PATHS["kernel"], w, a.min_time)
            t_p = timed(IONS, batch, B, PATHS["kernel"], w, a.min_time, one_chunk=True)[0] if w > 1 else t_k
            dr = float(np.nanmax(np.abs(rk.rejection - re.rejection)))
            cnt = {p: int(np.sum(rk.solver_path == p)) for p in ("compiled", "compiled+refined", "compiled->engine")}
            row = dict(batch=B, workers=w, engine_cases_per_s=B / t_e, kernel_cases_per_s=B / t_k,
                       kernel_prange_cases_per_s=B / t_p, ratio=t_e / t_k, max_abs_dR=dr, engine_reps=reps_e, kernel_reps=reps_k,
                       n_compiled=cnt["compiled"], n_refined=cnt["compiled+refined"],
                       n_fallback=cnt["compiled->engine"], converged_frac=float(rk.converged.mean()),
                       loadavg_1min=round(os.getloadavg()[0], 2))
            rows.append(row)
            print(f"{B:>6} {w:>7} {B / t_e:>9.0f} {B / t_k:>9.0f} {B / t_p:>9.0f} {t_e / t_k:>6.1f} {dr:>9.1e} "
                  f"{cnt['compiled']:>8} {cnt['compiled+refined']:>7} {cnt['compiled->engine']:>8}")

    print(f"\nAgreement on the wide random spread ({n_wide} cases per ion set, workers 1):")
    wide = []
    for k, ions in enumerate(ION_SETS):
        b = wide_batch(ions, n_wide, seed=100 + k)
        t0 = time.perf_counter()
        re = solve_batch(ions, options=PATHS["engine"], **b)
        t1 = time.perf_counter()
        rk = solve_batch(ions, options=PATHS["kernel"], **b)
        t2 = time.perf_counter()
        z = rk.charges
        en = np.abs(rk.c_perm @ z) / (rk.c_feed @ np.abs(z) + np.abs(b["charge_density_mol_m3"]))
        both = re.converged & rk.converged
        row = dict(ions=" ".join(ions), cases=n_wide, max_abs_dR=float(np.nanmax(np.abs(rk.rejection - re.rejection)[both])),
                   max_perm_EN=float(en[rk.converged].max()), max_flux_gap=float(np.nanmax(rk.flux_balance_gap)),
                   converged_engine=int(re.converged.sum()), converged_kernel=int(rk.converged.sum()),
                   n_compiled=int(np.sum(rk.solver_path == "compiled")),
                   n_refined=int(np.sum(rk.solver_path == "compiled+refined")),
                   n_fallback=int(np.sum(rk.solver_path == "compiled->engine")),
                   engine_cases_per_s=n_wide / (t1 - t0), kernel_cases_per_s=n_wide / (t2 - t1))
        wide.append(row)
        print(f"  {row['ions']:<28} max|dR| {row['max_abs_dR']:.1e}  permeate EN {row['max_perm_EN']:.1e}  "
              f"flux gap {row['max_flux_gap']:.1e}  compiled/refined/fallback {row['n_compiled']}/"
              f"{row['n_refined']}/{row['n_fallback']}  converged {row['converged_kernel']}/{row['converged_engine']}"
              f"  cases/s {row['engine_cases_per_s']:.0f} -> {row['kernel_cases_per_s']:.0f}")

    best = max(rows, key=lambda r: r["kernel_cases_per_s"])
    print(f"\nBest kernel rate {best['kernel_cases_per_s']:.0f} cases/s (B={best['batch']}, workers={best['workers']}), "
          f"{best['ratio']:.1f}x the engine on the same batch; largest |dR| anywhere "
          f"{max(r['max_abs_dR'] for r in rows + wide):.1e}")
    meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"# load avg at end {meta['loadavg_end']}")
    out = results_dir()
    write_csv(out / f"{a.out}.csv", rows)
    write_json(out / f"{a.out}.json", dict(meta=meta, ions=IONS, compile_seconds=t_compile,
                                           cache_load_seconds=t_load, factorization_us_block=f_block,
                                           factorization_us_dense=f_dense, unknowns=m, newton_counts=counts,
                                           rows=rows, agreement=wide))
    print(f"wrote {out / (a.out + '.csv')} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
