"""Where the compiled kernel's time goes: the cost of each operation on each grid, and its share of a case.

The batch is benchmarks/throughput.py's (``make_batch``, ``CONFIGS``; default the 5-ion Pitzer + film target
case).  The kernel's inputs are taken from one ``solve_batch`` call (``compiled.solve_cases`` is wrapped for that
call only), so they are exactly what the product passes.  Then, in this process:

* ``kernel``: ``compiled.solve_cases`` on the whole grid sequence, median over ``--repeats`` (us per case), with
  the kernel's own counts per case on each grid: Newton iterations, Jacobian factorizations, residual
  evaluations (damping trials included) and Newton corrections;
* per grid (the sequence cut after that grid, so the states are the kernel's own converged ones), on
  ``--sample`` cases spread over the batch: the cost of one residual (``_residual``, with d ln gamma / d c), of
  its activity part alone (ln gamma and its Jacobian at the four interface points), of one factorization
  (``_factor``) and of one Newton correction through the factors (``_solve``); inside the factorization, one
  ion block's LU (``_lu_factor``) and its ``W = A^-1 E`` (``_lu_solve_mat``) on the case's own block
  (rebuilt from its factors), and the border's LU (``_getrf``, on a dense matrix of the border's size: the
  border is ~98 % dense);
* the work of those operations in multiply-adds (element updates the loops perform on the real blocks) and the
  rate they run at (GFMA/s);
* ``model``: per case, residual evaluations x residual + corrections x correction + factorizations x
  factorization on each grid (the counted operations at their hot-loop cost), against the measured kernel time
  (the rest: the start, prolongation, the per-call set-up and the operations running slower inside a whole
  solve than in a hot loop).

The kernel is profiled without its shooting start (``shooting=False``: the grid sequence alone, which is what the
per-grid model describes; benchmarks/throughput.py measures the product's default).

Timings are the best of 3 runs of a compiled loop of ``--reps`` calls.  The host's speed changes by up to ~1.8x
from minute to minute on the shared VMs this was written on: compare figures from one run only, and hosts by the
printed yardsticks.

    python benchmarks/kernel_profile.py [--configs pitzer_film davies_film ideal_none] [--sample 8]

Writes results/benchmarks/kernel_profile.json (``--out`` changes the stem).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import results_dir, start_run, write_json
from nanosep.transport import compiled, solve_batch
from nanosep.transport.compiled_activity import activity_parameters
from throughput import CONFIGS, IONS, make_batch

if not compiled.HAVE_NUMBA:  # pragma: no cover
    raise SystemExit("numba is not installed: the compiled kernel is not available")

from nanosep.transport.compiled_system import (
    F_INT_nptype,
    _factor,
    _getrf,
    _index_maps,
    _interface_activity,
    _lu_factor,
    _lu_solve_mat,
    _residual,
    _solve,
)
from numba import njit


@njit
def _loop_residual(reps, x, F, D, gi, Df, gf, z, P, X, cs, ion, pot, akind, ap, dlg):
    for _ in range(reps):
        _residual(x, F, D, gi, Df, gf, z, P, X, cs, ion, pot, akind, ap, dlg, True)


@njit
def _loop_activity(reps, x, ion, P, z, Mf, M, akind, ap, lg, dlg):
    for _ in range(reps):
        _interface_activity(x, ion, P, z, Mf, M, akind, ap, lg, dlg, True)


@njit
def _loop_factor(reps, x, D, gi, Df, gf, z, P, cs, ion, pot, akind, ap, LU, piv, W, Sc, spiv, Bx, cpf, dlg):
    for _ in range(reps):
        _factor(x, D, gi, Df, gf, z, P, cs, ion, pot, akind, ap, LU, piv, W, Sc, spiv, Bx, cpf, dlg, True)


@njit
def _loop_solve(reps, F, d, z, cs, cpf, ion, pot, Mf, LU, piv, W, Sc, spiv, Bx):
    for _ in range(reps):
        _solve(F, d, z, cs, cpf, ion, pot, Mf, LU, piv, W, Sc, spiv, Bx)


@njit
def _loop_lu(reps, A0, A, piv, lapack):
    """``reps`` LUs of a fresh copy of A0: ``_getrf`` (LAPACK, the border's) if ``lapack``, else ``_lu_factor``
    (``piv``: LAPACK's pivot integers for both, so one compiled loop serves both)."""
    for _ in range(reps):
        A[:, :] = A0
        if lapack:
            _getrf(A, piv)
        else:
            _lu_factor(A, piv)


@njit
def _loop_w(reps, A, piv, E0, E):
    for _ in range(reps):
        E[:, :] = E0
        _lu_solve_mat(A, piv, E)


@njit
def _loop_copy(reps, A0, A):
    for _ in range(reps):
        A[:, :] = A0


def _best_us(fn, args, reps: int) -> float:
    """Best of 3 runs of ``fn(reps, *args)``, in us per call (after one warm-up call)."""
    fn(1, *args)
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        fn(reps, *args)
        best = min(best, (time.perf_counter() - t0) / reps)
    return best * 1e6


def _unpack(lu: np.ndarray, piv: np.ndarray) -> np.ndarray:
    """The block A from its in-place LU factors and row interchanges (``_lu_factor``'s layout)."""
    K = lu.shape[0]
    A = (np.tril(lu, -1) + np.eye(K)) @ np.triu(lu)
    for k in range(K - 1, -1, -1):
        p = int(piv[k])
        if p != k:
            A[[k, p]] = A[[p, k]]
    return A


def _lu_updates(A: np.ndarray) -> tuple[int, np.ndarray]:
    """Element updates ``_lu_factor`` performs on A (it skips zero multipliers), and the factors' pattern."""
    A = A.copy()
    m = A.shape[0]
    ops = 0
    for k in range(m):
        p = k + int(np.argmax(np.abs(A[k:, k])))
        A[[k, p]] = A[[p, k]]
        for r in range(k + 1, m):
            f = A[r, k] / A[k, k]
            A[r, k] = f
            if f != 0.0:
                ops += m - k - 1
                A[r, k + 1:] -= f * A[k, k + 1:]
    return ops, A


def capture_inputs(config: str, B: int):
    """The arguments of the first ``compiled.solve_cases`` call of ``solve_batch`` on throughput.py's batch."""
    seen = {}
    original = compiled.solve_cases

    def spy(*args, **kw):
        seen.setdefault("call", (args, kw))
        return original(*args, **kw)

    compiled.solve_cases = spy
    try:
        solve_batch(IONS, options=CONFIGS[config], chunk_size=B, workers=1, **make_batch(B))
    finally:
        compiled.solve_cases = original
    if "call" not in seen:
        raise SystemExit(f"config {config!r}: solve_batch did not call the compiled kernel")
    return seen["call"]


def profile(config: str, B: int, repeats: int, sample: int, reps: int) -> dict:
    (prm, scale, phi0, _x0, grids, tol, budget, _threads, film_grids), _kw = capture_inputs(config, B)
    film = film_grids is not None
    times, counts = [], None
    for _ in range(repeats):
        cnt = np.zeros((B, len(grids), 4), np.int64)
        t0 = time.perf_counter()
        compiled.solve_cases(prm, scale, phi0, None, grids, tol, budget, 1, film_grids, counts=cnt,
                             shooting=False)
        times.append((time.perf_counter() - t0) / B * 1e6)
        counts = cnt
    kernel_us = statistics.median(times)
    Pion = compiled.ion_parameters(prm, scale, phi0)
    akind, AP = activity_parameters(prm)
    cscale = np.maximum(prm.c_feed @ np.abs(prm.z) + np.abs(prm.charge), 1e-300)
    z = np.ascontiguousarray(prm.z, float)
    n = z.size
    cases = np.linspace(0, B - 1, sample).astype(int)
    rows = []
    for g in range(len(grids)):
        fg = film_grids[:g + 1] if film else None
        x, status, *_ = compiled.solve_cases(prm, scale, phi0, None, grids[:g + 1], tol, budget, 1, fg,
                                             shooting=False)
        Ds, Dfs, _Ps, _Pfs, Ms, Mfs, Gi, _Xn, _Y0, _XL, _YL = compiled._grid_operators(prm, grids[:g + 1], fg)
        M, Mf = int(Ms[-1]), int(Mfs[-1])
        D = np.ascontiguousarray(Ds[-1, :M, :M])
        Df = np.ascontiguousarray(Dfs[-1, :Mf, :Mf])
        gf = np.ones(Mf)
        ion, pot = _index_maps(n, M, Mf)
        K = Mf + M + 1
        nt = 0 if akind == compiled.IDEAL else 2
        Kb = K + nt * n
        per = {k: [] for k in ("residual", "activity", "factor", "solve", "block_lu", "block_W", "lu_updates",
                               "W_updates")}
        for b in cases:
            if status[b] != compiled.OK:
                continue
            xb = np.ascontiguousarray(x[b])
            F, d = np.empty(xb.size), np.empty(xb.size)
            LU, W = np.empty((n, K, K)), np.empty((n, K, K + nt))
            piv = np.empty((n, K), np.int64)
            Sc, spiv = np.empty((Kb, Kb)), np.empty(Kb, F_INT_nptype)
            Bx, cpf, dlg, lg = np.zeros((4, n, n)), np.empty(n), np.zeros((4, n, n)), np.zeros((4, n))
            gi = np.ascontiguousarray(Gi[b, -1, :M])
            ap = np.ascontiguousarray(AP[b])
            P, X, cs = Pion[b], float(prm.charge[b]), float(cscale[b])
            per["residual"].append(_best_us(_loop_residual, (xb, F, D, gi, Df, gf, z, P, X, cs, ion, pot, akind,
                                                             ap, dlg), reps))
            per["activity"].append(_best_us(_loop_activity, (xb, ion, P, z, Mf, M, akind, ap, lg, dlg), reps)
                                   if nt else 0.0)
            fargs = (xb, D, gi, Df, gf, z, P, cs, ion, pot, akind, ap, LU, piv, W, Sc, spiv, Bx, cpf, dlg)
            per["factor"].append(_best_us(_loop_factor, fargs, reps))
            _factor(*fargs, False)
            per["solve"].append(_best_us(_loop_solve, (F, d, z, cs, cpf, ion, pot, Mf, LU, piv, W, Sc, spiv, Bx),
                                         reps))
            A0 = _unpack(LU[0], piv[0])            # the first ion's block (Na+ in the target case)
            updates, fac = _lu_updates(A0)
            pv = np.empty(K, np.int64)
            copy_us = _best_us(_loop_copy, (A0, A0.copy()), reps)
            per["block_lu"].append(_best_us(_loop_lu, (A0, A0.copy(), np.empty(K, F_INT_nptype), False), reps)
                                   - copy_us)
            A = A0.copy()
            _lu_factor(A, pv)
            E0 = np.random.default_rng(0).standard_normal((K, K + nt))
            ecopy_us = _best_us(_loop_copy, (E0, E0.copy()), reps)
            per["block_W"].append(_best_us(_loop_w, (A, pv, E0, E0.copy()), reps) - ecopy_us)
            per["lu_updates"].append(updates)
            per["W_updates"].append(int((np.count_nonzero(np.tril(fac, -1)) + np.count_nonzero(np.triu(fac, 1))
                                         + K) * (K + nt)))
        S0 = np.random.default_rng(1).standard_normal((Kb, Kb)) + Kb * np.eye(Kb)
        getrf_us = (_best_us(_loop_lu, (S0, S0.copy(), np.empty(Kb, F_INT_nptype), True), reps)
                    - _best_us(_loop_copy, (S0, S0.copy()), reps))
        med = {k: float(np.median(v)) for k, v in per.items()}
        its, facs, nres, ncor = counts[:, g].mean(axis=0)
        row = {
            "grid": g, "layer_intervals": grids[g], "film_intervals": film_grids[g] if film else 0,
            "unknowns": (n + 1) * (M + Mf) + n + 1, "K_block": K, "Kb_border": Kb,
            "iterations_per_case": float(its), "factorizations_per_case": float(facs),
            "residuals_per_case": float(nres), "corrections_per_case": float(ncor),
            "residual_us": med["residual"], "activity_us": med["activity"], "factor_us": med["factor"],
            "solve_us": med["solve"], "block_lu_us": med["block_lu"], "block_W_us": med["block_W"],
            "border_getrf_us": getrf_us,
            "block_lu_fma": med["lu_updates"], "block_W_fma": med["W_updates"], "border_fma": Kb ** 3 / 3,
        }
        row["block_lu_gfma_s"] = row["block_lu_fma"] / row["block_lu_us"] / 1e3
        row["block_W_gfma_s"] = row["block_W_fma"] / row["block_W_us"] / 1e3
        row["border_gfma_s"] = row["border_fma"] / getrf_us / 1e3
        row["factor_share_blocks"] = n * (med["block_lu"] + med["block_W"]) / med["factor"]
        row["factor_share_border"] = getrf_us / med["factor"]
        row["model_us_per_case"] = nres * med["residual"] + ncor * med["solve"] + facs * med["factor"]
        row["model_factor_us_per_case"] = facs * med["factor"]
        rows.append(row)
    model = sum(r["model_us_per_case"] for r in rows)
    return {"config": config, "batch": B, "ions": n, "kernel_us_per_case": kernel_us,
            "kernel_us_runs": times, "model_us_per_case": model,
            "factor_us_per_case": sum(r["model_factor_us_per_case"] for r in rows), "grids": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=["pitzer_film"])
    ap.add_argument("--batch", type=int, default=1000, help="cases in the batch (default 1000)")
    ap.add_argument("--repeats", type=int, default=5, help="whole-kernel solves, median reported (default 5)")
    ap.add_argument("--sample", type=int, default=8, help="cases whose operations are timed, per grid (default 8)")
    ap.add_argument("--reps", type=int, default=1000, help="calls per timed loop (default 1000)")
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--out", default="kernel_profile", help="output stem in results/benchmarks/")
    a = ap.parse_args(argv)
    meta = start_run(a.torch_threads)
    out = []
    for config in a.configs:
        res = profile(config, a.batch, a.repeats, a.sample, a.reps)
        out.append(res)
        print(f"\n{config}: kernel {res['kernel_us_per_case']:.0f} us per case (median of {a.repeats}); model "
              f"{res['model_us_per_case']:.0f} us ({res['model_us_per_case'] / res['kernel_us_per_case']:.0%}), of "
              f"which factorizations {res['factor_us_per_case']:.0f} us")
        print(f"{'grid':>10} {'K':>3} {'Kb':>3} {'its':>5} {'facs':>5} {'res':>5} {'cor':>5} {'resid':>6} "
              f"{'(act)':>6} {'factor':>7} "
              f"{'solve':>6} | {'LU/ion':>6} {'GF/s':>5} {'W/ion':>6} {'GF/s':>5} {'border':>6} {'GF/s':>5} | "
              f"{'us/case':>7}")
        for r in res["grids"]:
            print(f"{r['layer_intervals']:>5}/{r['film_intervals']:<4} {r['K_block']:>3} {r['Kb_border']:>3} "
                  f"{r['iterations_per_case']:>5.2f} {r['factorizations_per_case']:>5.2f} "
                  f"{r['residuals_per_case']:>5.2f} {r['corrections_per_case']:>5.2f} {r['residual_us']:>6.1f} "
                  f"{r['activity_us']:>6.1f} {r['factor_us']:>7.1f} {r['solve_us']:>6.1f} | "
                  f"{r['block_lu_us']:>6.1f} {r['block_lu_gfma_s']:>5.2f} {r['block_W_us']:>6.1f} "
                  f"{r['block_W_gfma_s']:>5.2f} {r['border_getrf_us']:>6.1f} {r['border_gfma_s']:>5.2f} | "
                  f"{r['model_us_per_case']:>7.1f}")
    path = results_dir() / f"{a.out}.json"
    write_json(path, {"meta": meta, "ions": IONS, "configs": out})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
