"""Robustness of the transport engine: convergence rate over a scrambled-Sobol sample of the domain.

Domain (per sample): flux 0.1-200 LMH (log), 2-8 ions drawn from Na+, K+, Li+, Ca+2,
Mg+2, Cl-, NO3-, SO4-2 (>= 1 cation and >= 1 anion), each 0.01-1000 mol/m3 (log),
X -1000..+500 mol/m3, pore radius 0.3-2 nm, pore dielectric 20-80, thickness
0.05-10 um, temperature 5-60 C.  Electroneutrality: the sampled cation charge Qc and
anion charge Qa are brought to their geometric mean (cations x sqrt(Qa/Qc), anions x
sqrt(Qc/Qa)), so the ratios within each sign follow the sample.  All samples use the
full 8-ion list with absent ions at c = 0 (the engine carries them at a trace level and
reports NaN).  Options: Davies activity, film polarization k = 2e-5 m/s (``--pitzer``:
Pitzer + image forces).  Writes results/benchmarks/robustness[_tag].json and ALL
failures (inputs + reason) to robustness[_tag]_failures.csv.

    python benchmarks/robustness.py [--quick] [-n N] [--time-limit S] [--pitzer]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import qmc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LMH, metadata, print_metadata, results_dir, write_csv, write_json  # noqa: E402

from nanosep.ions import IonDatabase  # noqa: E402
from nanosep.transport import TransportOptions, solve_batch  # noqa: E402

IONS = ["Na+", "K+", "Li+", "Ca+2", "Mg+2", "Cl-", "NO3-", "SO4-2"]
TARGET = 0.999
SEED = 20240611
DIMS = 8 + 1 + 8 + 7   # ion priorities, ion count, concentrations, 7 continuous inputs


def log_scale(u, lo, hi):
    return np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))


def sample(N: int, seed: int = SEED) -> dict:
    z = np.array([IonDatabase.default().get(i).charge for i in IONS], float)
    u = qmc.Sobol(d=DIMS, scramble=True, seed=seed).random(N)
    prio, ucount, uconc, ucont = u[:, :8], u[:, 8], u[:, 9:17], u[:, 17:]
    k = np.minimum(2 + np.floor(ucount * 7).astype(int), 8)            # 2..8 ions
    cat, an = np.flatnonzero(z > 0), np.flatnonzero(z < 0)
    c = np.zeros((N, 8))
    conc = log_scale(uconc, 0.01, 1000.0)
    for b in range(N):
        first = [cat[np.argmin(prio[b, cat])], an[np.argmin(prio[b, an])]]
        rest = [i for i in np.argsort(prio[b]) if i not in first][: k[b] - 2]
        sel = first + rest
        c[b, sel] = conc[b, sel]
    qc = (c * np.clip(z, 0, None)).sum(1)
    qa = (c * np.clip(-z, 0, None)).sum(1)
    c[:, z > 0] *= np.sqrt(qa / qc)[:, None]
    c[:, z < 0] *= np.sqrt(qc / qa)[:, None]
    return dict(
        c_feed=c,
        flux_m_s=log_scale(ucont[:, 0], 0.1, 200.0) * LMH,
        charge_density_mol_m3=-1000.0 + 1500.0 * ucont[:, 1],
        pore_radius_m=(0.3 + 1.7 * ucont[:, 2]) * 1e-9,
        pore_dielectric=20.0 + 60.0 * ucont[:, 3],
        thickness_m=log_scale(ucont[:, 4], 0.05, 10.0) * 1e-6,
        temperature_K=273.15 + 5.0 + 55.0 * ucont[:, 5],
    )


def solve_block(s: dict, idx: np.ndarray, options, workers: int):
    """Solve samples ``idx``; an exception marks every case of the call failed (then retried one by one)."""
    kw = {k: v[idx] for k, v in s.items()}
    try:
        r = solve_batch(IONS, options=options, strict=False, workers=workers,
                        chunk_size=max(1, int(np.ceil(len(idx) / workers))), **kw)
        cont = r.continuation_steps if r.continuation_steps is not None else np.zeros(len(idx))
        return (r.converged.astype(bool), np.asarray(r.reason, dtype=object), r.iterations, r.residual, cont,
                r.unresolved.astype(bool), np.asarray(r.nodes_used, int))
    except Exception as e:  # noqa: BLE001 - a benchmark records every failure
        if len(idx) == 1:
            return (np.array([False]), np.array([f"exception {type(e).__name__}: {e}"[:300]], dtype=object),
                    np.array([-1]), np.array([np.nan]), np.array([0]), np.array([False]), np.array([0]))
        parts = [solve_block(s, idx[i:i + 1], options, 1) for i in range(len(idx))]
        return tuple(np.concatenate([p[j] for p in parts]) for j in range(7))


def breakdown(name, values, edges, failed, labels=None):
    print(f"\n  by {name}:")
    print(f"  {'bin':>22} {'n':>6} {'fail':>5} {'conv %':>8}")
    out = []
    bins = np.digitize(values, edges[1:-1])
    for j in range(len(edges) - 1):
        m = bins == j
        n, f = int(m.sum()), int((failed & m).sum())
        lab = labels[j] if labels else f"[{edges[j]:.3g}, {edges[j + 1]:.3g})"
        rate = 100 * (1 - f / n) if n else float("nan")
        print(f"  {lab:>22} {n:>6} {f:>5} {rate:>8.2f}")
        out.append(dict(region=name, bin=lab, n=n, failures=f, conv_pct=rate))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N = 1024")
    ap.add_argument("-n", type=int, help="number of Sobol samples (default 10000; quick 1024)")
    ap.add_argument("--time-limit", type=float, default=900.0,
                    help="stop after the block that passes this many seconds (default 900)")
    ap.add_argument("--block", type=int, default=256, help="samples per solve_batch call (default 256)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--torch-threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--pitzer", action="store_true", help="Pitzer activity + image forces instead of Davies")
    ap.add_argument("--seed", type=int, default=SEED)
    a = ap.parse_args(argv)
    if a.torch_threads:
        import torch
        torch.set_num_threads(a.torch_threads)

    N = a.n or (1024 if a.quick else 10_000)
    tag = "_pitzer_image" if a.pitzer else ""
    options = (TransportOptions(activity="pitzer", image_forces=True, polarization="film", mass_transfer_m_s=2e-5)
               if a.pitzer else TransportOptions(activity="davies", polarization="film", mass_transfer_m_s=2e-5))
    meta = metadata()
    print_metadata(meta)
    print(f"# options {options}")
    s = sample(N, a.seed)
    db = IonDatabase.default()
    rs = np.array([db.get(i).stokes_radius_m for i in IONS])

    conv = np.zeros(N, bool)
    reason = np.full(N, "", dtype=object)
    iters = np.zeros(N, int)
    resid = np.full(N, np.nan)
    cont = np.zeros(N)
    unres = np.zeros(N, bool)  # converged but under-resolved after the automatic refinement (BatchResult.unresolved)
    nodes_used = np.zeros(N, int)  # layer intervals of the grid each answer comes from (refined: > options.nodes)
    t0 = time.perf_counter()
    done = 0
    while done < N:
        idx = np.arange(done, min(done + a.block, N))
        (conv[idx], reason[idx], iters[idx], resid[idx], cont[idx], unres[idx],
         nodes_used[idx]) = solve_block(s, idx, options, a.workers)
        done = idx[-1] + 1
        el = time.perf_counter() - t0
        print(f"  {done:>6}/{N} samples  {el:7.1f} s  failures so far {int((~conv[:done]).sum())}", flush=True)
        if el > a.time_limit and done < N:
            print(f"# time limit {a.time_limit:.0f} s reached: stopping at {done} of {N} samples")
            break
    elapsed = time.perf_counter() - t0
    n = done
    sl = slice(0, n)
    c = s["c_feed"][sl]
    failed = ~conv[sl]
    rate = conv[sl].mean()
    present = c > 0
    lam_max = np.where(present, rs[None, :] / s["pore_radius_m"][sl, None], 0).max(1)
    zz = np.array([db.get(i).charge for i in IONS])
    ionic = 0.5 * (c * zz**2).sum(1)
    flux_lmh = s["flux_m_s"][sl] / LMH
    print(f"\nConvergence: {int(conv[sl].sum())}/{n} = {100 * rate:.3f} %  (target {100 * TARGET:.1f} %: "
          f"{'MET' if rate >= TARGET else 'NOT met'}); {int(failed.sum())} failures; "
          f"{elapsed:.1f} s ({n / elapsed:.1f} cases/s); mean Newton iterations {iters[sl][conv[sl]].mean():.1f}; "
          f"continuation used in {100 * np.mean(cont[sl] > 0):.1f} %")
    n_unres = int(unres[sl].sum())
    n_ref = int((conv[sl] & (nodes_used[sl] > options.nodes)).sum())
    print(f"Refined automatically (Chebyshev tail > {options.resolution_tol}): {n_ref} cases, up to "
          f"{int(nodes_used[sl].max())} layer intervals")
    print(f"Converged but under-resolved after refinement (flux-balance gap or Chebyshev tail > 1e-6, flagged in "
          f"BatchResult.unresolved): {n_unres}; converged and resolved: {100 * (conv[sl] & ~unres[sl]).mean():.3f} %"
          + (f"; samples {np.flatnonzero(unres[sl]).tolist()[:20]}" if n_unres else ""))
    reasons, counts = np.unique(reason[sl][failed].astype(str), return_counts=True)
    print("\nFailure reasons:")
    for r_, k_ in sorted(zip(reasons, counts), key=lambda t: -t[1]):
        print(f"  {k_:>5}  {r_}")
    bd = []
    bd += breakdown("pore radius nm", s["pore_radius_m"][sl] * 1e9, [0.3, 0.5, 0.8, 1.2, 2.0001], failed)
    bd += breakdown("lambda_max", lam_max, [0, 0.3, 0.5, 0.7, 0.9, 1.0, 1e9], failed)
    fdec = np.quantile(flux_lmh, np.linspace(0, 1, 11))
    fdec[-1] += 1e-9
    bd += breakdown("flux LMH decile", flux_lmh, fdec, failed)
    bd += breakdown("|X| mol/m3", np.abs(s["charge_density_mol_m3"][sl]), [0, 10, 100, 300, 600, 1000.001], failed)
    bd += breakdown("sign X", np.sign(s["charge_density_mol_m3"][sl]), [-2, 0, 2], failed, ["X<0", "X>0"])
    bd += breakdown("ionic strength mol/m3", ionic, [0, 1, 10, 100, 1000, 1e4, 1e9], failed)
    bd += breakdown("n ions", present.sum(1), [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5], failed,
                    [str(i) for i in range(2, 9)])
    bd += breakdown("thickness um", s["thickness_m"][sl] * 1e6, [0, 0.2, 1, 3, 10.001], failed)
    bd += breakdown("T C", s["temperature_K"][sl] - 273.15, [5, 20, 40, 60.001], failed)

    rows = []
    for b in np.flatnonzero(failed):
        row = dict(sample=int(b), reason=str(reason[b]), iterations=int(iters[b]), residual=float(resid[b]),
                   continuation_steps=float(cont[b]), flux_LMH=flux_lmh[b], flux_m_s=s["flux_m_s"][b],
                   pore_radius_nm=s["pore_radius_m"][b] * 1e9, lambda_max=lam_max[b],
                   thickness_um=s["thickness_m"][b] * 1e6, pore_dielectric=s["pore_dielectric"][b],
                   X_mol_m3=s["charge_density_mol_m3"][b], T_C=s["temperature_K"][b] - 273.15,
                   ionic_strength=ionic[b])
        row.update({f"c_{i}": c[b, j] for j, i in enumerate(IONS)})
        rows.append(row)
    out = results_dir()
    write_csv(out / f"robustness{tag}_failures.csv", rows if rows else [dict(sample="", reason="no failures")])
    meta["loadavg_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
    print(f"# load avg at end {meta['loadavg_end']}")
    write_json(out / f"robustness{tag}.json", dict(
        meta=meta, options=str(options), seed=a.seed, n_requested=N, n_solved=n, converged=int(conv[sl].sum()),
        rate=rate, target=TARGET, seconds=elapsed, cases_per_s=n / elapsed,
        unresolved=n_unres, unresolved_samples=np.flatnonzero(unres[sl]).tolist(), refined=n_ref,
        refined_samples=np.flatnonzero(conv[sl] & (nodes_used[sl] > options.nodes)).tolist(),
        reasons=dict(zip(reasons.tolist(), counts.tolist())), breakdown=bd))
    print(f"wrote {out / f'robustness{tag}_failures.csv'} ({len(rows)} rows) and robustness{tag}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
