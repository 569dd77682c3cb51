"""DSPM-DE fit quality on FdL 2021 NF270: thickness profile, per-salt deviations, the Cl-/NO3- limit.

Evidence for issue 5 ("real data"): why the joint fit of cases/characterization/fdl2021_nf270.yaml
stays near a mean absolute deviation (MAD) of 0.11 in R while the authors' SDEM lines reach 0.025.

1. Profile over the effective thickness dx_e by a *separable grid*: the charge density is a
   per-salt parameter, so for fixed shared (r_p, eps_p, dx_e) each salt's best X is found
   independently; the grid is r_p x eps_p x X (per salt) at 4 flux levels (10, 20, 35,
   50 um/s; the data interpolated in flux), MAD over that salt's rows.  Printed per dx_e: the best
   shared (r_p, eps_p), the per-salt X and MADs.  Cheap (one engine batch per dx_e) and global,
   unlike local least-squares profiles, which stall in this landscape (tiny |X| matters when
   dielectric exclusion empties the pores).
2. ``--refine``: the fit case's local stage (all rows, engine Jacobians) started from the best grid
   points, with dx_e free; MAD overall and per dominant salt, salt rows vs trace-ion rows,
   next to the authors' SDEM lines on the same rows.
3. The Cl-/NO3- split: both are monovalent anions with Stokes radii 0.121 / 0.129 nm, so DSPM-DE
   partitions them almost alike, while the data (and the authors' permeances, Table 1: NO3- 1.8-3.5x
   more permeable than Cl-) separate them by 0.07-0.79 in R.  Printed: mean |R_Cl - R_NO3| in the data
   and in the model; half the data split is a lower bound on the MAD of a model that puts both at
   the same rejection.

    python benchmarks/fdl2021_fit_quality.py [--dx 0.02,0.1,0.3,1] [--refine K] [--case PATH]

Writes results/benchmarks/fdl2021_fit_quality.json.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import REPO, metadata, print_metadata, results_dir

R_NM = (0.4, 0.5, 0.6, 0.8, 1.0, 1.3)
EPS = (25.0, 30.0, 35.0, 40.0, 50.0, 65.0)
X_MOL_M3 = (-30.0, -10.0, -3.0, -1.0, -0.3, -0.1, 0.0, 0.1, 0.3, 1.0, 3.0, 10.0)
FLUX_UM_S = (10.0, 20.0, 35.0, 50.0)
SALTS = ("NaCl", "MgCl2", "Na2SO4", "MgSO4")


def _targets(table) -> dict:
    """(salt, ion, species) -> measured R interpolated at FLUX_UM_S (salt rows once per ion, as in the MAD)."""
    out = {}
    lmh = np.asarray(FLUX_UM_S) * 3.6
    for (salt, ion, sp), g in table.groupby(["dominant_salt", "ion", "species"]):
        g = g.sort_values("flux_L_m2_h")
        out[(salt, ion, sp)] = np.interp(lmh, g["flux_L_m2_h"], g["rejection"])
    return out


def separable_grid(dx_um: float, table, ions: list[str], db) -> dict:
    """Best shared (r_p, eps_p) with per-salt X at fixed ``dx_um`` on the grid (see module docstring)."""
    from nanosep.measured import fdl2021_feed_mol_m3
    from nanosep.transport import TransportOptions, solve_batch

    targets = _targets(table)
    combos = list(itertools.product(R_NM, EPS, X_MOL_M3, SALTS))
    J = np.asarray(FLUX_UM_S) * 1e-6
    n, P = len(combos), J.size
    feed = np.array([[fdl2021_feed_mol_m3(k[3])[i] for i in ions] for k in combos])
    t0 = time.perf_counter()
    res = solve_batch(ions, np.repeat(feed, P, axis=0), flux_m_s=np.tile(J, n),
                      pore_radius_m=np.repeat([k[0] * 1e-9 for k in combos], P), thickness_m=dx_um * 1e-6,
                      pore_dielectric=np.repeat([k[1] for k in combos], P),
                      charge_density_mol_m3=np.repeat([k[2] for k in combos], P), temperature_K=293.15,
                      options=TransportOptions(activity="davies"), ion_db=db)
    R = res.rejection_intrinsic.reshape(n, P, len(ions))
    ok = res.converged.reshape(n, P).all(axis=1)
    mad = np.full(n, np.nan)
    for a, k in enumerate(combos):
        if ok[a]:
            mad[a] = np.mean(np.concatenate([np.abs(R[a, :, ions.index(ion)] - v)
                                             for (s, ion, _), v in targets.items() if s == k[3]]))
    M = mad.reshape(len(R_NM), len(EPS), len(X_MOL_M3), len(SALTS))
    rows = np.array([sum(v.size for (s, _, _), v in targets.items() if s == salt) for salt in SALTS], float)
    best_x = np.nanmin(np.where(np.isnan(M), np.inf, M), axis=2)          # (r, eps, salt)
    total = best_x @ (rows / rows.sum())
    i, j = np.unravel_index(np.argmin(total), total.shape)
    xi = np.argmin(np.where(np.isnan(M[i, j]), np.inf, M[i, j]), axis=0)
    return {"dx_um": dx_um, "seconds": time.perf_counter() - t0, "failed_cases": int((~res.converged).sum()),
            "mad": float(total[i, j]), "pore_radius_nm": R_NM[i], "pore_dielectric": EPS[j],
            "charge_mol_m3": {s: X_MOL_M3[xi[q]] for q, s in enumerate(SALTS)},
            "mad_per_salt": {s: float(best_x[i, j, q]) for q, s in enumerate(SALTS)}}


def cl_no3_split(pred) -> list[dict]:
    """Mean |R_Cl - R_NO3| per dominant salt in the data and in ``pred`` (a predictions table)."""
    out = []
    for salt in SALTS:
        s = pred[pred["dominant_salt"] == salt]
        cl, no3 = s[s["ion"] == "Cl-"].sort_values("flux_L_m2_h"), s[s["ion"] == "NO3-"].sort_values("flux_L_m2_h")
        row = {"dominant_salt": salt}
        for col, label in (("rejection", "data"), ("rejection_model", "model")):
            if col in s.columns:
                r_cl = np.interp(no3["flux_L_m2_h"], cl["flux_L_m2_h"], cl[col])
                row[label] = float(np.mean(np.abs(r_cl - no3[col].to_numpy())))
        out.append(row)
    return out


def refine(case_path: Path, starts: list[dict], max_iterations: int) -> dict:
    """The case's local stage from grid points (dx_e free); metrics of the best run."""
    from nanosep.measured import load_fdl2021
    from nanosep.transport.characterization import load_fit_case
    from nanosep.transport.characterization.demo_step import authors_fit_metrics
    from nanosep.transport.characterization.workflow import characterize, deviation_by_group

    base = load_fit_case(case_path)
    table = load_fdl2021()
    best = None
    for g in starts:
        params = {k: v.model_copy() for k, v in base.parameters.items()}
        params["pore_radius_nm"] = params["pore_radius_nm"].model_copy(update={"initial": g["pore_radius_nm"]})
        params["thickness_um"] = params["thickness_um"].model_copy(update={"initial": g["dx_um"]})
        params["pore_dielectric"] = params["pore_dielectric"].model_copy(update={"initial": g["pore_dielectric"]})
        params["charge_density_mol_m3"] = params["charge_density_mol_m3"].model_copy(
            update={"initial_per": dict(g["charge_mol_m3"])})
        fit_opts = base.fit.model_copy(update={"starts": 0, "pooled_start": False, "profile": False,
                                               "max_iterations": max_iterations})
        case = base.model_copy(update={"parameters": params, "fit": fit_opts})
        t0 = time.perf_counter()
        ch = characterize(table, case, profile=False, curves=False)
        m = {"start": g, "seconds": time.perf_counter() - t0, "cost": ch.fit.cost, "values": ch.fit.values,
             "metrics": {k: v for k, v in ch.metrics.items() if k != "by_dominant_salt"},
             "by_dominant_salt": ch.metrics["by_dominant_salt"], "cl_no3": cl_no3_split(ch.predictions)}
        print(f"  refine from dx {g['dx_um']} um, r {g['pore_radius_nm']} nm, eps {g['pore_dielectric']}: "
              f"MAD {ch.metrics['mad_rejection']:.4f}, cost {ch.fit.cost:.4f}, {m['seconds']:.0f} s, "
              + ", ".join(f"{k} {v:.4g}" for k, v in ch.fit.values.items()), flush=True)
        if best is None or ch.fit.cost < best["cost"]:
            best = m
    authors, both = authors_fit_metrics()
    best["authors"] = authors
    best["authors_by_dominant_salt"] = {r.pop("group"): r for r in
                                        deviation_by_group(both, both["rejection_model"].to_numpy()).to_dict("records")}
    best["authors_cl_no3"] = cl_no3_split(both)
    return best


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--dx", default="0.02,0.1,0.3,1",
                    help="effective thicknesses of the profile, um (3 um and more are slow: > 10 min each at "
                         "load 7, the engine's long flux continuation at high Peclet numbers)")
    ap.add_argument("--refine", type=int, default=2, help="local fits from the K best grid points (0: none)")
    ap.add_argument("--max-iterations", type=int, default=40)
    ap.add_argument("--case", type=Path, default=REPO / "cases/characterization/fdl2021_nf270.yaml")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from nanosep.ions import IonDatabase
    from nanosep.measured import FDL2021_IONS, load_fdl2021

    meta = metadata()
    print_metadata(meta)
    table = load_fdl2021()
    ions, db = list(FDL2021_IONS), IonDatabase.default()
    profile = []
    print("separable grid profile over dx_e (best shared r_p, eps_p; X per salt; MAD on 4 flux levels):")
    for dx in [float(x) for x in args.dx.split(",")]:
        g = separable_grid(dx, table, ions, db)
        profile.append(g)
        print(f"  dx_e {dx:7.3g} um: MAD {g['mad']:.4f} at r_p {g['pore_radius_nm']} nm, eps_p {g['pore_dielectric']}, "
              f"X {g['charge_mol_m3']}; per salt " + ", ".join(f"{k} {v:.3f}" for k, v in g["mad_per_salt"].items())
              + f" ({g['seconds']:.0f} s)", flush=True)
    out = {"meta": meta, "profile": profile}
    if args.refine > 0:
        starts = sorted(profile, key=lambda g: g["mad"])[:args.refine]
        best = refine(args.case, starts, args.max_iterations)
        out["refined"] = best
        print("best refined fit, MAD in R (all | dominant-salt rows | trace-ion rows) vs the authors' SDEM lines:")
        for salt, m in [*best["by_dominant_salt"].items()]:
            a = best["authors_by_dominant_salt"].get(salt, {})
            print(f"  {salt:>7}: DSPM-DE {m['mad_rejection']:.3f} | {m['mad_rejection_salt']:.3f} | "
                  f"{m['mad_rejection_ion']:.3f}   SDEM {a.get('mad_rejection', np.nan):.3f} | "
                  f"{a.get('mad_rejection_salt', np.nan):.3f} | {a.get('mad_rejection_ion', np.nan):.3f}")
        m = best["metrics"]
        print(f"  overall: MAD R {m['mad_rejection']:.4f}, median |f_mod/f_exp - 1| {m['median_f_relative']:.3f}, "
              f"within +-15 % in f {100 * m['within_15pct_f']:.0f} %  (authors: {best['authors']['mad_rejection']:.4f}, "
              f"{best['authors']['median_f_relative']:.3f}, {100 * best['authors']['within_15pct_f']:.0f} %)")
        print("  mean |R_Cl - R_NO3| (data / DSPM-DE / SDEM): " + "; ".join(
            f"{a['dominant_salt']} {a['data']:.2f} / {a['model']:.2f} / {b['model']:.2f}"
            for a, b in zip(best["cl_no3"], best["authors_cl_no3"])))
    path = results_dir() / "fdl2021_fit_quality.json"
    path.write_text(json.dumps(out, indent=2, default=float))
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
