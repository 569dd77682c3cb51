"""Global optimization of the seed 002 plant: explicit network expressions, reduced-space plant, MAiNGO.

References: onnxruntime (network values), the full-space plant of ``superstructure.build_plant``
solved square with cyipopt (same physics), a cyipopt multistart on the same reduced model
(MAiNGO's certified optimum must not be worse), OMLT's full-space formulation (toy design).
"""
from __future__ import annotations

import math

import numpy as np
import pyomo.environ as pyo
import pytest
from nanosep.flowsheets import (
    ElementChain,
    ElementSurrogate,
    ModuleSurrogate,
    PlantSpec,
    build_plant,
    solve_plant,
)
from nanosep.flowsheets.global_opt import maingo_solve, solve_global
from nanosep.flowsheets.reduced_plant import (
    apply_design_to_full_plant,
    build_reduced_plant,
    evaluate_design,
)
from nanosep.surrogates.embedding import add_surrogate, network_definition
from nanosep.surrogates.explicit import (
    ExplicitSmoothNNFormulation,
    dag_values,
    surrogate_expressions,
)
from nanosep.surrogates.onnx_io import load_shipped, random_domain_points

from nanosep.solvers import ipopt_solver

SHIPPED = ("seed002_na2so4_element", "seed002_na2so4_module", "nf270_multi_ion_element")
FEED = {"Na+": 20.0, "SO4-2": 10.0}
TIGHT = {"tol": 1e-12}


@pytest.mark.parametrize("name", SHIPPED)
def test_explicit_expressions_equal_onnxruntime(name):
    sur = load_shipped(name)
    X = random_domain_points(sur.card, 60, seed=7)
    m = pyo.ConcreteModel()
    m.x = pyo.Var(range(X.shape[1]))
    y = surrogate_expressions(sur, [m.x[j] for j in range(X.shape[1])])
    ref = sur.predict(X)
    err = 0.0
    for r in range(len(X)):
        for j in range(X.shape[1]):
            m.x[j].set_value(X[r, j])
        got = dag_values(list(y.values()))
        err = max(err, float(np.max(np.abs(np.array(got) - ref[r]))))
        if r < 5:  # Pyomo's own evaluator agrees with the DAG evaluator
            assert [pyo.value(e) for e in y.values()] == pytest.approx(got, abs=1e-15)
    assert err <= 1e-12


def test_explicit_formulation_has_no_auxiliary_variables_or_constraints():
    from omlt import OmltBlock

    sur = load_shipped("seed002_na2so4_module")
    n_in, n_out = len(sur.card.inputs), len(sur.card.outputs)
    m = pyo.ConcreteModel()
    add_surrogate(m, sur, "explicit")
    assert m.nvariables() == n_in and m.nconstraints() == 0
    full = pyo.ConcreteModel()
    add_surrogate(full, sur, "full")
    assert full.nvariables() > n_in + n_out + 20  # one variable per neuron
    # the OMLT formulation: OmltBlock's own inputs/outputs and one equality per output, nothing per neuron
    b = pyo.ConcreteModel()
    b.nn = OmltBlock()
    b.nn.build_formulation(ExplicitSmoothNNFormulation(network_definition(sur)))
    assert b.nvariables() == n_in + n_out and b.nconstraints() == n_out
    x = random_domain_points(sur.card, 1, seed=3)[0]
    for k, v in enumerate(x):
        m.inputs[sur.card.input_names[k]].set_value(float(v))
    assert pyo.value(m.outputs["rejection_SO4-2"]) == pytest.approx(sur.predict(x[None])[0, 0], abs=1e-12)


def _full_plant(spec, kind, sur):
    def factory(_i):
        if kind == "element":
            return ElementSurrogate(sur, "full", balance_with="Na+")
        if kind == "chain":
            return ElementChain(sur, 3, "full", balance_with="Na+")
        return ModuleSurrogate(sur, "full", balance_with="Na+")
    return build_plant(spec, factory)


CASES = [("element", 1, True, True, "seed002_printed"), ("element", 1, False, False, "seed002_printed"),
         ("element", 2, True, True, "seed002_printed"), ("element", 2, False, True, "seed002_printed"),
         ("chain", 1, True, False, "seed002_printed"), ("module", 1, True, True, "seed002_printed"),
         ("element", 1, True, True, "seed002_decreasing")]


@pytest.mark.parametrize("kind,stages,recirculation,osmotic,permeability", CASES)
def test_reduced_plant_equals_full_space_plant_at_a_fixed_design(kind, stages, recirculation, osmotic, permeability):
    sur = load_shipped("seed002_na2so4_module" if kind == "module" else "seed002_na2so4_element")
    spec = PlantSpec(feed_conc_mol_m3=FEED, n_stages=stages, recirculation=recirculation, osmotic=osmotic,
                     permeability_relation=permeability)
    red = build_reduced_plant(spec, kind, surrogate=sur, epsilon_mol_m3=1e3)
    values = {"flux_um_s[1]": 30.0 if stages == 1 else 25.0, "thickness_nm": 100.0, "charge_mol_m3": -350.0,
              "gamma[1]": 0.6}
    if recirculation:
        values["recycle_fraction"] = 0.2
    if stages == 2:
        values.update({"flux_um_s[2]": 20.0, "gamma[2]": 0.8})
    ev = evaluate_design(red, values)
    assert ev["max_violation"] <= 1e-9
    full = _full_plant(spec, kind, sur)
    fix = ("feed", "recycle", "modules", "membrane") + (("pump1",) if stages == 2 else ())
    apply_design_to_full_plant(full, ev["design"], fix=fix)
    res = solve_plant(full, permeate_limit_mol_m3=1e3, fix_modules=True, check=False, solver_options=TIGHT)
    assert res.optimal, res.termination
    assert res.objective_usd_per_year == pytest.approx(ev["objective_usd_per_year"], rel=1e-6)
    for ion in FEED:
        assert res.product_conc_mol_m3[ion] == pytest.approx(ev["product_conc_mol_m3"][ion], rel=1e-6)
    # the pressure the full model needs for the product flow is the reduced model's explicit dP
    last = stages
    assert res.decisions[f"pump{last}_dp_bar"] == pytest.approx(ev["design"][f"pump{last}_dp_bar"], rel=1e-6)


def _local_multistart(m, n_starts: int, seed: int = 0) -> float:
    """Best cyipopt objective over Sobol starts in the decision box (tears closed at each start)."""
    from pyomo.common.errors import ApplicationError
    from scipy.stats import qmc

    dec = m.decision_vars
    lo = np.array([v.lb for v in dec])
    hi = np.array([v.ub for v in dec])
    pts = qmc.scale(qmc.Sobol(len(dec), seed=seed).random(n_starts), lo, hi)
    solver = ipopt_solver({"print_level": 0, "tol": 1e-9, "max_iter": 500})
    best = math.inf
    for p in pts:
        for v, x in zip(dec, p):
            v.set_value(float(x))
        try:
            evaluate_design(m)
            res = solver.solve(m)
        except (ValueError, ArithmeticError, RuntimeError, ApplicationError):  # a failed start (e.g. log of a negative) is skipped
            continue
        if res.solver.termination_condition == pyo.TerminationCondition.optimal and evaluate_design(m)["max_violation"] < 1e-6:
            best = min(best, pyo.value(m.objective))
    return best


@pytest.fixture(scope="module")
def k1_global():
    spec = PlantSpec(feed_conc_mol_m3=FEED)
    return spec, solve_global(spec, "element", 1.0, rel_gap=1e-4, abs_gap=1e-3, time_limit_s=60)


def test_maingo_certified_optimum_is_not_worse_than_a_local_multistart(k1_global):
    spec, dp = k1_global
    assert dp.feasible and dp.globally_optimal and dp.status == "optimal"
    assert dp.relative_gap <= 1e-4 and dp.lower_bound_usd_per_year <= dp.objective_usd_per_year
    assert dp.product_conc_mol_m3["SO4-2"] <= 1.0 * (1 + 1e-5)
    m = build_reduced_plant(spec, "element", epsilon_mol_m3=1.0)
    best_local = _local_multistart(m, 8)
    assert math.isfinite(best_local)
    # global <= every local optimum (up to the certified gap) ...
    assert dp.objective_usd_per_year <= best_local * (1 + 1e-4) + 1e-3
    # ... and no local optimum lies below MAiNGO's lower bound
    assert best_local >= dp.lower_bound_usd_per_year * (1 - 1e-9)


def test_full_space_local_solve_from_maingo_design_returns_the_same_point(k1_global):
    spec, dp = k1_global
    full = _full_plant(spec, "element", load_shipped("seed002_na2so4_element"))
    apply_design_to_full_plant(full, dp.design)  # started at MAiNGO's design (the osmotic term is on here)
    res = solve_plant(full, permeate_limit_mol_m3=1.0, initialize=True, solver_options={"tol": 1e-10})
    assert res.optimal, res.termination
    assert res.objective_usd_per_year == pytest.approx(dp.objective_usd_per_year, rel=2e-4)
    for key in ("thickness_nm", "charge_mol_m3", "feed_m3_h", "stage1_n_modules", "pump1_dp_bar"):
        assert res.decisions[key] == pytest.approx(dp.design[key], rel=2e-3, abs=1e-3), key


def test_explicit_toy_design_matches_omlt_full_space():
    """Toy of benchmarks/omlt_formulations.py: min c_feed (1 - R) + 0.5 |X|/100 + 0.5 dx/100 over X, dx."""
    sur = load_shipped("seed002_na2so4_element")
    fixed = {"flux_um_s": 20.0, "c_SO4-2_mol_m3": 5.0}

    def build(form):
        m = pyo.ConcreteModel()
        add_surrogate(m, sur, form)
        for k, v in fixed.items():
            m.inputs[k].fix(v)
        m.obj = pyo.Objective(expr=5.0 * (1.0 - m.outputs["rejection_SO4-2"]) + 0.5 * (-m.inputs["charge_density_mol_m3"]) / 100
                              + 0.5 * m.inputs["thickness_nm"] / 100)
        return m

    full = build("full")
    assert ipopt_solver({"print_level": 0, "tol": 1e-12}).solve(full).solver.termination_condition == pyo.TerminationCondition.optimal
    expl = build("explicit")
    res = maingo_solve(expl, rel_gap=1e-9, abs_gap=1e-9, time_limit_s=30)
    assert res["globally_optimal"]
    assert res["objective"] == pytest.approx(pyo.value(full.obj), abs=1e-6)
    for n in ("charge_density_mol_m3", "thickness_nm"):
        assert expl.inputs[n].value == pytest.approx(full.inputs[n].value, abs=1e-3)


def test_infeasible_epsilon_is_reported_with_the_binding_constraint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = PlantSpec(feed_conc_mol_m3=FEED, recirculation=False)
    dp = solve_global(spec, "element", 1e-4, time_limit_s=30)
    assert dp.status == "infeasible" and dp.feasible is False and dp.globally_optimal is False
    assert "permeate_limit" in dp.message
    assert dp.extra["min_product_conc_lower_bound"] > 1e-4
    assert math.isnan(dp.objective_usd_per_year)
    assert list(tmp_path.iterdir()) == []  # MAiNGO wrote nothing into the working directory


def test_integer_module_counts(k1_global):
    _, relaxed = k1_global
    spec = PlantSpec(feed_conc_mol_m3=FEED, integer_modules=True)
    dp = solve_global(spec, "element", 1.0, time_limit_s=60)
    assert dp.globally_optimal
    n = dp.design["stage1_n_modules"]
    assert n == pytest.approx(round(n), abs=1e-6)
    assert dp.objective_usd_per_year >= relaxed.lower_bound_usd_per_year * (1 - 1e-9)


def test_time_limited_result_is_not_reported_as_certified():
    spec = PlantSpec(feed_conc_mol_m3=FEED)
    dp = solve_global(spec, "module", 0.5, time_limit_s=1.0)
    assert dp.globally_optimal is False
    if dp.feasible:
        assert dp.status == "time_limit" and dp.relative_gap > 1e-3 and "not certified" in dp.message
        assert dp.lower_bound_usd_per_year < dp.objective_usd_per_year
    else:
        assert dp.status == "no_feasible_point"



def test_full_space_plant_accepts_the_explicit_formulation():
    from nanosep.flowsheets import drinking_water_plant

    res = {}
    for form in ("explicit", "full"):
        m = drinking_water_plant(10.0, formulation=form, permeate_limit_mol_m3=2.0)
        res[form] = solve_plant(m, solver_options={"tol": 1e-10})
        assert res[form].optimal, (form, res[form].termination)
        if form == "explicit":  # only the surrogate inputs are added: no neuron variables, no network constraints
            assert len(list(m.stage1.surrogate.component_data_objects(pyo.Var))) == 4
    assert res["explicit"].objective_usd_per_year == pytest.approx(res["full"].objective_usd_per_year, rel=1e-8)
