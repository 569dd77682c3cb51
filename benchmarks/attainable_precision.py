"""Audit of Newton's precision-limit acceptance: final scaled residuals over the robustness design.

Solves the first N samples of ``robustness.py``'s scrambled-Sobol design (Davies + film,
k = 2e-5 m/s; default N = 1024 = its ``--quick`` set), prints the distribution of the final
scaled residual ``BatchResult.residual`` and, for every converged case with residual > 1e-8,
compares the observed rejection with a node-doubled reference (``nodes`` 24 -> 48), with a
same-grid solve whose precision-limit rule is tightened (``newton.LIMIT_CORRECTION`` 1e-6 -> 1e-8,
in process) and evaluates independent checks (pore electroneutrality, permeate electroneutrality, and the
layer-averaged diffusion + convection + migration = J_v c_p).  The same node-doubling error of
the strictly converged cases (residual <= 1e-8, first ``--baseline`` of them) is the yardstick.
Writes results/benchmarks/attainable_precision.json and .csv (one row per examined case).

    python benchmarks/attainable_precision.py [-n N] [--workers 2] [--torch-threads 1]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import results_dir, start_run, write_csv, write_json  # noqa: E402
from robustness import IONS, sample  # noqa: E402

from nanosep.transport import newton  # noqa: E402
from nanosep.transport import TransportOptions, solve_batch  # noqa: E402

OPTIONS = TransportOptions(activity="davies", polarization="film", mass_transfer_m_s=2e-5)
EXAMINE = 1e-8   # residual above which a converged case is examined


def solve(s: dict, idx: np.ndarray, options: TransportOptions, workers: int):
    kw = {k: v[idx] for k, v in s.items()}
    return solve_batch(IONS, options=options, strict=False, workers=workers,
                       chunk_size=max(1, int(np.ceil(len(idx) / workers))), **kw)


def checks(r, X: np.ndarray) -> dict:
    """Independent checks of a result: relative electroneutrality defects and flux-split closure."""
    z = r.charges
    c = np.nan_to_num(r.c_layer)
    en_pore = np.max(np.abs(np.einsum("i,bim->bm", z, c) + X[:, None])
                     / (np.einsum("i,bim->bm", np.abs(z), c) + np.abs(X)[:, None]), axis=1)
    cp = np.nan_to_num(r.c_perm)
    en_perm = np.abs(cp @ z) / (cp @ np.abs(z))
    # relative to the largest of the three layer-averaged parts (they can cancel to a tiny J_v c_p)
    parts = np.nan_to_num(r.flux_split)
    jf = np.nan_to_num(r.ion_flux)
    size = np.maximum(np.abs(parts).max(-1), np.abs(jf))
    flux_split = np.max(np.abs(parts.sum(-1) - jf) / np.where(size > 0, size, 1.0), axis=1)
    return dict(en_pore=en_pore, en_perm=en_perm, flux_split=flux_split)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=1024, help="number of robustness samples (default 1024)")
    ap.add_argument("--baseline", type=int, default=64, help="strictly converged cases for the yardstick")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--torch-threads", type=int, default=None)
    a = ap.parse_args(argv)
    meta = start_run(a.torch_threads)
    s = sample(a.n)
    idx = np.arange(a.n)
    r = solve(s, idx, OPTIONS, a.workers)
    res = np.asarray(r.residual, float)
    conv = r.converged.astype(bool)
    print(f"converged {conv.sum()}/{a.n}; loose (residual > 1e-6) {int(r.loose.sum())}")
    edges = [0, 1e-14, 1e-12, 1e-11, 1e-10, 1e-8, 1e-6, 1e-4, 1e-3, np.inf]
    hist = np.histogram(res[conv], edges)[0]
    print("final scaled residual of the converged cases:")
    for lo, hi, k in zip(edges[:-1], edges[1:], hist):
        print(f"  [{lo:.0e}, {hi:.0e})  {k:5d}")
    exam = np.flatnonzero(conv & (res > EXAMINE))
    base = np.flatnonzero(conv & (res <= EXAMINE))[: a.baseline]
    sel = np.concatenate([exam, base])
    ref = solve(s, sel, OPTIONS.with_(nodes=2 * OPTIONS.nodes, film_nodes=2 * OPTIONS.film_nodes), a.workers)
    default = newton.LIMIT_CORRECTION
    newton.LIMIT_CORRECTION = 1e-8
    try:
        tight = solve(s, sel, OPTIONS, 1)
    finally:
        newton.LIMIT_CORRECTION = default
    sub = r.take(sel)
    dR = np.nanmax(np.abs(sub.rejection - ref.rejection), axis=1)
    dT = np.where(tight.converged, np.nanmax(np.abs(sub.rejection - tight.rejection), axis=1), np.nan)
    ch = checks(sub, s["charge_density_mol_m3"][sel])
    rows = []
    for j, b in enumerate(sel):
        rows.append(dict(sample=int(b), examined=bool(j < exam.size), residual=float(res[b]),
                         loose=bool(r.loose[b]), ref_converged=bool(ref.converged[j]), ref_residual=float(ref.residual[j]),
                         dR_node_doubling=float(dR[j]), tight_converged=bool(tight.converged[j]),
                         tight_residual=float(tight.residual[j]), dR_tight=float(dT[j]), **{k: float(v[j]) for k, v in ch.items()}))
    ok_ref = ref.converged.astype(bool)
    e, bmask = np.arange(sel.size) < exam.size, np.arange(sel.size) >= exam.size
    summary = {}
    for name, m in (("examined (residual > 1e-8)", e), ("loose (residual > 1e-6)", e & sub.loose),
                    ("baseline (residual <= 1e-8)", bmask)):
        mm = m & ok_ref
        summary[name] = dict(n=int(m.sum()), ref_converged=int(mm.sum()),
                             dR_max=float(np.max(dR[mm])) if mm.any() else None,
                             dR_median=float(np.median(dR[mm])) if mm.any() else None,
                             tight_converged=int((m & tight.converged).sum()),
                             dR_tight_max=float(np.nanmax(dT[m])) if (m & tight.converged).any() else None,
                             en_pore_max=float(np.max(ch["en_pore"][m])) if m.any() else None,
                             en_perm_max=float(np.max(ch["en_perm"][m])) if m.any() else None,
                             flux_split_max=float(np.max(ch["flux_split"][m])) if m.any() else None)
        print(f"{name}: {summary[name]}")
    out = results_dir()
    write_csv(out / "attainable_precision.csv", rows)
    write_json(out / "attainable_precision.json", dict(meta=meta, n=a.n, converged=int(conv.sum()),
                                                       loose=int(r.loose.sum()), histogram_edges=[str(x) for x in edges],
                                                       histogram=hist.tolist(), summary=summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
