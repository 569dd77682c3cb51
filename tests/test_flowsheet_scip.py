"""SCIP (pyscipopt) as a second global solver: cross-check of MAiNGO on the k = 1 element plant.

Two independent branch-and-bound codes on the same reduced-space model (SCIP sees tanh written as
2/(1 + exp(-2x)) - 1): neither may find a point below the other's valid lower bound, and the
written tanh form must equal Pyomo's tanh.
"""
from __future__ import annotations

import math

import pytest

pytest.importorskip("pyscipopt")
pytest.importorskip("maingopy")

import pyomo.environ as pyo
from nanosep.flowsheets.global_opt import maingo_solve, solve_global
from nanosep.flowsheets.reduced_plant import build_reduced_plant, evaluate_design
from nanosep.flowsheets.scip_check import scip_model_of, solve_scip
from nanosep.flowsheets.superstructure import PlantSpec

SPEC = PlantSpec(feed_conc_mol_m3={"Na+": 20.0, "SO4-2": 10.0})
TOL_USD = 1.0  # abs tolerance [USD/yr] on ~5e4-7e4 USD/yr objectives (feasibility tolerances 1e-6)


def test_exp_form_of_tanh_matches_pyomo_tanh():
    """The plant built with tanh = 2/(1+exp(-2x))-1 evaluates to the same cost as with pyo.tanh."""
    a = build_reduced_plant(SPEC, "element", epsilon_mol_m3=1.0)
    b = build_reduced_plant(SPEC, "element", epsilon_mol_m3=1.0, tanh="exp")
    ea, eb = evaluate_design(a), evaluate_design(b)
    assert math.isclose(ea["objective_usd_per_year"], eb["objective_usd_per_year"], rel_tol=1e-12)
    for ion, c in ea["product_conc_mol_m3"].items():
        assert math.isclose(c, eb["product_conc_mol_m3"][ion], rel_tol=1e-10, abs_tol=1e-13)


def test_scip_translation_is_silent_and_accepts_maingo_optimum(capfd):
    """MAiNGO's optimum is a feasible point of our SCIP model (translation check), no output."""
    m = build_reduced_plant(SPEC, "element", epsilon_mol_m3=1.0, tanh="exp")
    evaluate_design(m)
    assert maingo_solve(m, time_limit_s=30)["globally_optimal"]  # loads MAiNGO's point into m
    s, pvars, svars, sign = scip_model_of(m)
    sol = s.createSol()
    for v, x in zip(pvars, svars):
        s.setSolVal(sol, x, float(v.value))
    t = next(x for x in s.getVars() if x.name == "objective")
    s.setSolVal(sol, t, sign * pyo.value(m.objective) + 1e-6)
    assert s.checkSol(sol, printreason=False, original=True)
    out = capfd.readouterr()
    assert "SCIP" not in out.out and "presolving" not in out.out


@pytest.mark.parametrize("eps", [1.0, 0.3])
def test_scip_and_maingo_bounds_are_consistent(eps):
    """k = 1, one stage, recirculation: each solver's point >= the other's lower bound."""
    mg = solve_global(SPEC, "element", eps, time_limit_s=30)
    sc = solve_scip(SPEC, "element", eps, time_limit_s=12)
    assert mg.globally_optimal and mg.relative_gap <= 1e-3
    assert sc.feasible and sc.status in ("optimal", "time_limit")
    assert sc.extra["max_violation"] < 1e-5
    assert sc.product_conc_mol_m3["SO4-2"] <= eps * (1 + 1e-5)
    assert sc.objective_usd_per_year >= mg.lower_bound_usd_per_year - TOL_USD
    assert mg.objective_usd_per_year >= sc.lower_bound_usd_per_year - TOL_USD
    # SCIP's incumbent is MAiNGO's certified optimum (within MAiNGO's gap)
    assert sc.objective_usd_per_year <= mg.objective_usd_per_year * (1 + 1e-3) + TOL_USD
    if sc.globally_optimal:
        assert sc.relative_gap <= 1e-3


@pytest.mark.slow
def test_scip_certifies_k1_point():
    """SCIP certifies epsilon = 1 to a 1 % gap and agrees with MAiNGO's 1e-3 certificate.  With the
    element surrogate whose flux input is log10(J + 1e-6 um/s) (2026-11-22) SCIP needed 383 s at load 3
    (gap 1.75 % at 300 s): the plants' fluxes span a narrower slice of the scaled input than with the
    earlier 0.01 um/s offset, so its relaxations are looser; MAiNGO still certifies in < 1 s.  On 2026-11-23 the
    same solve took 824 s alone on the machine (a slow phase of the shared host) and stopped at the former 900 s
    limit with a 1.14 % gap while another test run shared the two cores: SCIP's limit is wall-clock time, so it
    has twice that margin."""
    mg = solve_global(SPEC, "element", 1.0, time_limit_s=60)
    sc = solve_scip(SPEC, "element", 1.0, rel_gap=1e-2, time_limit_s=1800)
    assert sc.globally_optimal, sc.message
    assert sc.relative_gap <= 1e-2
    assert sc.objective_usd_per_year >= mg.lower_bound_usd_per_year - TOL_USD
    assert mg.objective_usd_per_year >= sc.lower_bound_usd_per_year - TOL_USD
