"""The seed 002 single-stage drinking-water plant with the shipped element surrogate, solved with cyipopt."""
from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
import pytest
from idaes.core.util.model_statistics import degrees_of_freedom
from nanosep.flowsheets import (
    ChargeThicknessRelation,
    ConstantRejection,
    PlantSpec,
    build_plant,
    drinking_water_plant,
    expected_degrees_of_freedom,
    solve_plant,
)
from nanosep.surrogates.onnx_io import load_shipped

TIGHT = {"tol": 1e-10, "constr_viol_tol": 1e-10, "acceptable_constr_viol_tol": 1e-10}
LIMIT = 2.0


@pytest.fixture(scope="module")
def solved():
    m = drinking_water_plant(10.0, permeate_limit_mol_m3=LIMIT)
    res = solve_plant(m, solver_options=TIGHT)
    assert res.optimal, res.termination
    return m, res


def test_degrees_of_freedom_of_the_single_stage_plant():
    # feed flow, pump dP, N_module, X, dx, recirculation fraction - product-flow equality (seed 002 sec. 3.2)
    m = drinking_water_plant(10.0)
    assert degrees_of_freedom(m) == expected_degrees_of_freedom(m.spec) == 5
    m = drinking_water_plant(10.0, recirculation=False)
    assert degrees_of_freedom(m) == 4
    rel = ChargeThicknessRelation(slope_mol_m3_per_nm=2.0, magnitude_at_ref_mol_m3=300.0)
    m = drinking_water_plant(10.0, charge_relation=rel)
    assert degrees_of_freedom(m) == 4
    two = build_plant(PlantSpec(n_stages=2), lambda i: ConstantRejection({"Na+": 0.8, "SO4-2": 0.8}))
    # 7 - 1: with constant rejections the layer charge X appears in no equation
    assert expected_degrees_of_freedom(two.spec) == 7 and degrees_of_freedom(two) == 6


def _rel(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-30)


def test_every_unit_conserves_water_and_ions(solved):
    m, _ = solved
    ions = m.product.inlet.ion_names
    v = pyo.value
    units = {"mixer": ([m.mixer.inlet[0].state, m.mixer.inlet[1].state], [m.mixer.outlet]),
             "pump1": ([m.pump1.inlet], [m.pump1.outlet]),
             "stage1": ([m.stage1.feed], [m.stage1.retentate, m.stage1.permeate]),
             "splitter": ([m.splitter.inlet], [m.splitter.outlet[0].state, m.splitter.outlet[1].state]),
             "plant": ([m.feed.outlet], [m.product.inlet, m.retentate.inlet])}
    for name, (ins, outs) in units.items():
        assert _rel(sum(v(s.flow_vol) for s in ins), sum(v(s.flow_vol) for s in outs)) < 1e-10, name
        for i in ions:
            assert _rel(sum(v(s.flow_mol[i]) for s in ins), sum(v(s.flow_mol[i]) for s in outs)) < 1e-10, (name, i)


def test_pump_work_is_flow_times_pressure_over_efficiency(solved):
    m, _ = solved
    p = m.pump1
    assert p.work.value == pytest.approx(p.inlet.flow_vol.value * p.deltaP.value / 0.8, rel=1e-10)
    assert p.outlet.pressure.value - p.inlet.pressure.value == pytest.approx(p.deltaP.value, rel=1e-10)


def test_stage_rejection_equals_the_onnx_surrogate_at_the_solved_inputs(solved):
    m, _ = solved
    s = m.stage1
    x = {"charge_density_mol_m3": m.membrane.charge_mol_m3.value, "thickness_nm": m.membrane.thickness_nm.value,
         "flux_um_s": s.flux.value * 1e6, "c_SO4-2_mol_m3": s.feed.conc["SO4-2"].value}
    r = load_shipped("seed002_na2so4_element").predict(x)[0, 0]
    assert s.rejection["SO4-2"].value == pytest.approx(r, abs=1e-6)
    # one salt: the electroneutral permeate has the same rejection for Na+
    assert s.rejection["Na+"].value == pytest.approx(r, abs=1e-9)


def test_optimum_is_feasible_and_costed_consistently(solved):
    m, res = solved
    assert res.product_conc_mol_m3["SO4-2"] <= LIMIT + 1e-8
    assert m.product.inlet.flow_vol.value * 3600 == pytest.approx(224.0, rel=1e-10)
    assert 5.0 <= m.membrane.permeability.value <= 35.0
    assert m.membrane.permeability.value == pytest.approx(0.4 * m.membrane.thickness_nm.value - 25.0, rel=1e-10)
    c = m.costing
    assert pyo.value(c.operation) == pytest.approx(pyo.value(c.depreciation + c.energy + c.maintenance + c.specific),
                                                   rel=1e-12)
    assert res.cost_usd_per_m3 > 0


def test_full_and_reduced_space_reach_the_same_optimum(solved):
    _, full = solved
    m = drinking_water_plant(10.0, formulation="reduced", permeate_limit_mol_m3=LIMIT)
    red = solve_plant(m, solver_options=TIGHT)
    assert red.optimal
    assert red.objective_usd_per_year == pytest.approx(full.objective_usd_per_year, rel=1e-6)


def test_element_chain_matches_the_numpy_module_chain():
    from nanosep.surrogates.module import PredictorElement, run_module

    sur = load_shipped("seed002_na2so4_element")
    m = drinking_water_plant(10.0, n_elements=3, recirculation=False, permeate_limit_mol_m3=3.0)
    res = solve_plant(m, solver_options=TIGHT)
    assert res.optimal
    s = m.stage1
    el = PredictorElement.from_surrogate(sur, ["Na+", "SO4-2"], [1, -2], balance_with="Na+")
    params = {"charge_density_mol_m3": m.membrane.charge_mol_m3.value, "thickness_nm": m.membrane.thickness_nm.value,
              "flux_um_s": s.flux.value * 1e6}
    ref = run_module(el, params, np.array([s.feed.conc[i].value for i in ("Na+", "SO4-2")]), s.gamma.value, 3)
    np.testing.assert_allclose([s.permeate.conc[i].value for i in ("Na+", "SO4-2")], ref.c_permeate[0], rtol=1e-8)
    np.testing.assert_allclose([s.retentate.conc[i].value for i in ("Na+", "SO4-2")], ref.c_retentate[0], rtol=1e-8)


def test_fixed_integer_module_count_costs_no_less_than_the_relaxation(solved):
    m0, relaxed = solved
    n = float(np.ceil(m0.stage1.n_modules.value))
    m = drinking_water_plant(10.0, permeate_limit_mol_m3=LIMIT, n_modules=n)
    fixed = solve_plant(m, fix_modules=True, solver_options=TIGHT)
    assert fixed.optimal
    assert m.stage1.n_modules.value == n and not m.stage1.n_modules.fixed  # restored after the solve
    assert fixed.objective_usd_per_year >= relaxed.objective_usd_per_year * (1 - 1e-9)


@pytest.mark.parametrize("osmotic", [True, False])
def test_structural_check_passes_with_and_without_the_osmotic_term(osmotic):
    """Without the osmotic term the product flow does not see the feed flow: the structural check swaps
    the last pump's dP for the feed flow (a square choice) instead of reporting a false singularity;
    with the term the design decisions themselves are square.  Fixing all design decisions without the
    swap is genuinely singular when the osmotic term is off (the check must see that)."""
    from nanosep.flowsheets import check_structure
    from nanosep.flowsheets.errors import FlowsheetError
    from nanosep.flowsheets.superstructure import initialize_plant, structural_decisions

    m = drinking_water_plant(10.0, osmotic=osmotic)
    initialize_plant(m)
    check_structure(m, structural_decisions(m))
    if not osmotic:
        with pytest.raises(FlowsheetError):
            check_structure(m, m.design_decisions)


@pytest.mark.parametrize("feed, error, pattern", [
    ({"Na+": float("nan"), "SO4-2": 10.0}, "InvalidInputError", "nan"),
    ({"Na+": -20.0, "SO4-2": -10.0}, "InvalidInputError", "-20"),
    ({"Na+": 25.0, "SO4-2": 10.0}, "ElectroneutralityError", "sum\\(z c\\) = 5"),
])
def test_plant_spec_refuses_bad_feeds(feed, error, pattern):
    """NaN, negative and non-electroneutral feeds are refused before any model is built (they used to give an
    'optimal' design from the global solver or a bare math domain error)."""
    import nanosep.errors as errors

    with pytest.raises(getattr(errors, error), match=pattern):
        PlantSpec(feed_conc_mol_m3=feed)
