"""OMLT full-space vs reduced-space formulation of an embedded surrogate, solved with Ipopt.

Problem: choose the membrane charge X and layer thickness (inside the
surrogate's domain; feed concentrations fixed at 5 mol/m3, the flux at the
domain centre, or as given) to
minimize the predicted permeate concentration of every ion with both a
``c_<ion>_mol_m3`` input and a ``rejection_<ion>`` output,
``sum_i c_feed,i (1 - R_i)``, plus a cost-like term
``w_X |X| / 100 + w_dx dx / 100`` (more charge and thicker layers cost more).
Both formulations start from the same point (domain centre); build time, solve
time, Ipopt iterations and the optimum are reported, and the optima must agree
to 1e-6.

    python benchmarks/omlt_formulations.py [--card surrogates/shipped/seed002_na2so4_element.card.json]

Prints a table and writes results/benchmarks/omlt_formulations.json.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import metadata, results_dir

DEFAULT_CARD = Path(__file__).resolve().parents[1] / "surrogates" / "shipped" / "seed002_na2so4_element.card.json"
DECISIONS = ("charge_density_mol_m3", "thickness_nm")


def build(sur, formulation: str, fixed: dict[str, float], w_charge: float, w_thickness: float):
    import pyomo.environ as pyo
    from nanosep.surrogates.embedding import add_surrogate, initialize_from_inputs

    m = pyo.ConcreteModel()
    add_surrogate(m, sur, formulation)
    for name, v in fixed.items():
        m.inputs[name].fix(v)
    initialize_from_inputs(m, sur)
    perm = 0.0
    for out in sur.card.outputs:
        conc = f"c_{out.name.removeprefix('rejection_')}_mol_m3"
        if out.name.startswith("rejection_") and conc in fixed:
            perm = perm + fixed[conc] * (1.0 - m.outputs[out.name])
    m.obj = pyo.Objective(expr=perm + w_charge * (-m.inputs["charge_density_mol_m3"]) / 100.0
                          + w_thickness * m.inputs["thickness_nm"] / 100.0)
    return m


def solve(sur, formulation: str, fixed: dict, w_charge: float, w_thickness: float) -> dict:
    import pyomo.environ as pyo

    from nanosep.solvers import ipopt_solver

    t0 = time.perf_counter()
    m = build(sur, formulation, fixed, w_charge, w_thickness)
    t_build = time.perf_counter() - t0
    iters = []
    solver = ipopt_solver({"tol": 1e-10, "print_level": 0})
    solver.config.intermediate_callback = lambda *a: iters.append(a[2]) or True
    t0 = time.perf_counter()
    res = solver.solve(m)
    t_solve = time.perf_counter() - t0
    n_var = sum(1 for v in m.component_data_objects(pyo.Var, active=True) if not v.fixed)
    n_con = sum(1 for _ in m.component_data_objects(pyo.Constraint, active=True))
    return {
        "formulation": formulation, "status": str(res.solver.termination_condition),
        "build_s": t_build, "solve_s": t_solve, "iterations": (max(iters) if iters else None),
        "variables": n_var, "constraints": n_con, "objective": pyo.value(m.obj),
        "optimum": {n: pyo.value(m.inputs[n]) for n in DECISIONS},
        "outputs": {n: pyo.value(m.outputs[n]) for n in sur.card.output_names},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--card", type=Path, default=DEFAULT_CARD)
    ap.add_argument("--flux-um-s", type=float, default=None, help="fixed flux (default: domain centre)")
    ap.add_argument("--c-feed-mol-m3", type=float, default=5.0, help="fixed value of every c_<ion> input")
    ap.add_argument("--w-charge", type=float, default=0.5)
    ap.add_argument("--w-thickness", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=3, help="solves per formulation (best time reported)")
    args = ap.parse_args(argv)

    from nanosep.surrogates.onnx_io import load_surrogate

    sur = load_surrogate(args.card)
    fixed = {}
    for v in sur.card.inputs:
        if v.name in DECISIONS:
            continue
        fixed[v.name] = math.sqrt(v.low * v.high) if v.scale == "log" else 0.5 * (v.low + v.high)
        if v.name.startswith("c_") and v.low <= args.c_feed_mol_m3 <= v.high:
            fixed[v.name] = args.c_feed_mol_m3
    if args.flux_um_s is not None:
        fixed["flux_um_s"] = args.flux_um_s
    rows = []
    for form in ("full", "reduced"):
        runs = [solve(sur, form, fixed, args.w_charge, args.w_thickness) for _ in range(args.repeats)]
        best = min(runs, key=lambda r: r["solve_s"])
        best["build_s"] = min(r["build_s"] for r in runs)
        rows.append(best)
    diff = max(abs(rows[0]["optimum"][n] - rows[1]["optimum"][n]) for n in DECISIONS)
    diff_obj = abs(rows[0]["objective"] - rows[1]["objective"])
    print(f"surrogate {sur.card.name} ({sur.card.kind}, hidden {sur.card.architecture['hidden']}); fixed {fixed}")
    print(f"{'formulation':12s} {'status':8s} {'vars':>5s} {'cons':>5s} {'build s':>8s} {'solve s':>8s} {'iter':>5s} "
          f"{'objective':>14s}  optimum")
    for r in rows:
        print(f"{r['formulation']:12s} {r['status']:8s} {r['variables']:5d} {r['constraints']:5d} {r['build_s']:8.3f} "
              f"{r['solve_s']:8.3f} {r['iterations']!s:>5s} {r['objective']:14.10f}  "
              + ", ".join(f"{k}={v:.6f}" for k, v in r["optimum"].items()))
    ok = diff <= 1e-6 and diff_obj <= 1e-6
    print(f"max |optimum difference| {diff:.2e}, |objective difference| {diff_obj:.2e}: {'agree' if ok else 'DISAGREE'}")
    out = results_dir() / "omlt_formulations.json"
    out.write_text(json.dumps({"meta": metadata(), "card": str(args.card), "fixed": fixed,
                               "weights": {"charge": args.w_charge, "thickness": args.w_thickness}, "runs": rows,
                               "max_optimum_difference": diff, "objective_difference": diff_obj, "agree": bool(ok)},
                              indent=2))
    print(f"wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
