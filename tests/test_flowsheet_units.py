"""Flowsheet building blocks: osmotic pressure, pump, constant-rejection stage (closed form), costing,
structural checks, initialization that restores fixed flags after a failure."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyomo.environ as pyo
import pytest
from nanosep.flowsheets import (
    ConstantRejection,
    DegreesOfFreedomError,
    InitializationError,
    StructuralSingularityError,
    add_feed,
    add_membrane,
    add_nf_stage,
    add_pump,
    add_sink,
    check_degrees_of_freedom,
    check_structure,
    connect,
    expand_arcs,
    initialize_sequential,
    load_cost_parameters,
    verberne_costs,
)
from nanosep.flowsheets.properties import GAS_CONSTANT, AqueousStream
from pyomo.util.check_units import assert_units_consistent

from nanosep.solvers import ipopt_solver

IONS = ["Na+", "SO4-2"]
TIGHT = {"tol": 1e-12, "constr_viol_tol": 1e-12, "acceptable_constr_viol_tol": 1e-12, "print_level": 0}


def test_van_t_hoff_osmotic_pressure_of_na2so4_is_3RTc():
    m = pyo.ConcreteModel()
    m.s = AqueousStream(ions=IONS)
    m.s.set_state(conc_mol_m3={"Na+": 20.0, "SO4-2": 10.0}, temperature_K=298.15)
    assert pyo.value(m.s.osmotic_pressure) == pytest.approx(3 * GAS_CONSTANT * 298.15 * 10.0, rel=1e-14)
    assert_units_consistent(m)


def test_pitzer_osmotic_coefficient_matches_the_activity_model():
    from nanosep.transport.activity import make_activity_model

    m = pyo.ConcreteModel()
    m.s = AqueousStream(ions=["Na+", "SO4-2"], osmotic="pitzer")
    m.s.set_state(conc_mol_m3={"Na+": 200.0, "SO4-2": 100.0})
    phi = make_activity_model("pitzer", IONS, T=298.15).osmotic_coefficient(np.array([200.0, 100.0]))
    assert pyo.value(m.s.osmotic_coefficient) == pytest.approx(float(phi), rel=1e-12)
    assert 0.5 < float(phi) < 0.95  # non-ideal: clearly below van 't Hoff at 0.1 mol/kg


def _line(R=(0.9, 0.9), osmotic=True, n_modules=10.0, dp_bar=6.0, flow=0.02, rejection=None):
    """feed -> pump -> stage (constant rejection ``R`` unless a ``rejection`` model is given) -> two sinks,
    square with the decisions fixed."""
    m = pyo.ConcreteModel(name="line")
    add_membrane(m, thickness_nm=100.0, charge_mol_m3=-300.0)
    add_feed(m, "feed", IONS, flow_m3_s=flow, conc_mol_m3={"Na+": 20.0, "SO4-2": 10.0})
    add_pump(m, "pump", IONS, efficiency=0.75)
    add_nf_stage(m, "stage", IONS, m.membrane, rejection or ConstantRejection(dict(zip(IONS, R))), osmotic_drive=osmotic)
    add_sink(m, "perm", IONS)
    add_sink(m, "ret", IONS)
    connect(m, "a1", m.feed.outlet, m.pump.inlet)
    connect(m, "a2", m.pump.outlet, m.stage.feed)
    connect(m, "a3", m.stage.permeate, m.perm.inlet)
    connect(m, "a4", m.stage.retentate, m.ret.inlet)
    expand_arcs(m)
    m.pump.deltaP.fix(dp_bar * 1e5)
    m.stage.n_modules.fix(n_modules)
    m.membrane.thickness_nm.fix()
    m.membrane.charge_mol_m3.fix()
    m.order = [m.feed, m.pump, m.stage]
    return m


def _solve_square(m):
    m.dummy = pyo.Objective(expr=0.0)
    res = ipopt_solver(TIGHT).solve(m)
    m.del_component(m.dummy)
    assert res.solver.termination_condition == pyo.TerminationCondition.optimal


@pytest.mark.parametrize("osmotic", [True, False])
def test_constant_rejection_stage_matches_closed_form(osmotic):
    R = (0.9, 0.9)  # one salt: equal rejections keep the permeate electroneutral
    m = _line(R, osmotic)
    from pyomo.util.calc_var_value import calculate_variable_from_constraint

    calculate_variable_from_constraint(m.membrane.permeability, m.membrane.eq_permeability)
    check_degrees_of_freedom(m, 0)
    check_structure(m)
    initialize_sequential(m, m.order, passes=1)
    _solve_square(m)
    # closed form
    T, c = 298.15, np.array([20.0, 10.0])
    Q = (0.4 * 100.0 - 25.0) * 1e-3 / 3600 / 1e5
    dpi = GAS_CONSTANT * T * float(np.sum(np.array(R) * c)) if osmotic else 0.0
    flux = Q * (6e5 + 101325.0 - 101325.0 - dpi)
    f_perm = flux * 10 * 60.0
    cp = (1 - np.array(R)) * c
    cr = (0.02 * c - f_perm * cp) / (0.02 - f_perm)
    s = m.stage
    assert s.permeate.flow_vol.value == pytest.approx(f_perm, rel=1e-10)
    assert s.flux.value == pytest.approx(flux, rel=1e-10)
    for j, ion in enumerate(IONS):
        assert s.permeate.conc[ion].value == pytest.approx(cp[j], rel=1e-10)
        assert s.retentate.conc[ion].value == pytest.approx(cr[j], rel=1e-10)
    # pump work = Q dP / eta
    assert m.pump.work.value == pytest.approx(0.02 * 6e5 / 0.75, rel=1e-12)
    assert m.stage.feed.pressure.value == pytest.approx(101325.0 + 6e5, rel=1e-14)


def test_costing_reproduces_a_hand_computation_from_the_csv():
    df = pd.read_csv(__import__("importlib.resources").resources.files("nanosep.flowsheets") / "data" /
                     "verberne_costs.csv", comment="#").set_index("name")
    v = df["value"].astype(float)
    assert df["source"].str.len().min() > 10  # every parameter has a source
    assert all(s.startswith("assumed") for s in df["source"])  # none could be found (see the CSV header)
    area, power, q = 3000.0, 25_000.0, 224.0 / 3600
    mem, el = v.membrane_cost_per_m2 * area, v.pump_cost_per_W * power
    civ, mech = v.civil_factor * (mem + el), v.mechanical_factor * (mem + el)
    inv = civ + mech + el + mem
    hours = 8760 * v.utilization_factor
    dep = civ / v.depreciation_years_civil + mech / v.depreciation_years_mechanical + \
        el / v.depreciation_years_electro + v.membrane_replacement_per_year * mem
    energy = v.electricity_price_per_kWh * power / 1000 * hours
    op = dep + energy + v.maintenance_factor * inv + v.specific_cost_per_m3 * q * 3600 * hours
    got = verberne_costs(load_cost_parameters(), area, power, q)
    assert got["investment"] == pytest.approx(inv, rel=1e-14)
    assert got["operation"] == pytest.approx(op, rel=1e-14)
    assert got["per_m3"] == pytest.approx(op / (q * 3600 * hours), rel=1e-14)
    assert math.isclose(got["operation"], got["depreciation"] + got["energy"] + got["maintenance"] + got["specific"])


def test_degrees_of_freedom_error_names_free_variables():
    m = _line()
    m.pump.deltaP.unfix()
    with pytest.raises(DegreesOfFreedomError, match="deltaP"):
        check_degrees_of_freedom(m, 0)


def test_singular_model_is_refused_naming_its_parts():
    m = _line()
    # a duplicate water balance and two new variables tied by one equation: square by count,
    # but the balance is over-determined and the new pair under-determined
    m.duplicate_water_balance = pyo.Constraint(
        expr=m.stage.feed.flow_vol == m.stage.retentate.flow_vol + m.stage.permeate.flow_vol)
    m.loose = pyo.Var([1, 2], initialize=0.5)
    m.loose_sum = pyo.Constraint(expr=m.loose[1] + m.loose[2] == 1.0)
    assert check_degrees_of_freedom(m, 0) == 0
    with pytest.raises(StructuralSingularityError) as err:
        check_structure(m)
    msg = str(err.value)
    assert "loose[" in msg and ("duplicate_water_balance" in msg or "eq_water" in msg)


def test_initialization_restores_fixed_flags_after_an_induced_failure():
    m = _line(n_modules=5000.0)  # pure-water permeate far above the feed: the stage cannot be initialized
    m.stage.n_modules.setub(None)
    from pyomo.util.calc_var_value import calculate_variable_from_constraint

    calculate_variable_from_constraint(m.membrane.permeability, m.membrane.eq_permeability)
    before = {id(v): v.fixed for v in m.component_data_objects(pyo.Var)}
    with pytest.raises(InitializationError, match="stage"):
        initialize_sequential(m, m.order, passes=1)
    after = {id(v): v.fixed for v in m.component_data_objects(pyo.Var)}
    assert after == before
    assert not m.stage.feed.flow_vol.fixed and not m.pump.inlet.pressure.fixed


def test_twin_stage_rejection_equals_the_transport_engine():
    from nanosep.flowsheets import TwinRejection
    from nanosep.transport.solver import solve_batch

    mem = {"pore_radius_m": 0.7e-9, "thickness_m": 1e-6, "pore_dielectric": 70.0, "charge_density_mol_m3": -50.0}
    m = _line(n_modules=10, dp_bar=6.0, flow=0.02, rejection=TwinRejection(**mem))
    from pyomo.util.calc_var_value import calculate_variable_from_constraint

    calculate_variable_from_constraint(m.membrane.permeability, m.membrane.eq_permeability)
    check_degrees_of_freedom(m, 0)
    initialize_sequential(m, [m.feed, m.pump, m.stage], passes=1)
    _solve_square(m)
    s = m.stage
    c = np.array([[s.feed.conc[i].value for i in IONS]])
    ref = solve_batch(IONS, c, flux_m_s=s.flux.value, strict=True, **mem).rejection[0]
    got = np.array([s.rejection[i].value for i in IONS])
    assert 0.05 < got[1] < 0.999
    np.testing.assert_allclose(got, ref, atol=1e-8)


def test_module_surrogate_needs_a_gamma_input():
    from nanosep.flowsheets import ModuleSurrogate
    from nanosep.flowsheets.errors import InvalidInputError
    from nanosep.surrogates.onnx_io import load_shipped

    m = pyo.ConcreteModel()
    add_membrane(m)
    with pytest.raises(InvalidInputError, match="gamma"):
        add_nf_stage(m, "stage", IONS, m.membrane, ModuleSurrogate(load_shipped("seed002_na2so4_element")))


def test_permeability_relations_of_seed002_eq4():
    """Eq. 4 as printed (Q = 0.4 dx - 25) and the decreasing trend of the text (Q = 65 - 0.4 dx) map
    dx in [75, 150] nm onto Q in [5, 35] L/m2/h/bar in opposite directions; a range where Q <= 0 is refused."""
    from nanosep.errors import InvalidInputError
    from nanosep.flowsheets.membrane import SEED002_DECREASING, SEED002_PRINTED, permeability_relation

    assert [SEED002_PRINTED.q_lmh_bar(d) for d in (75.0, 150.0)] == pytest.approx([5.0, 35.0], abs=1e-12)
    assert [SEED002_DECREASING.q_lmh_bar(d) for d in (75.0, 150.0)] == pytest.approx([35.0, 5.0], abs=1e-12)
    assert SEED002_DECREASING.q_si(100.0) == pytest.approx(25.0 * 1e-3 / 3600 / 1e5, rel=1e-12)
    m = pyo.ConcreteModel()
    add_membrane(m, thickness_nm=100.0, permeability="seed002_decreasing")
    from pyomo.util.calc_var_value import calculate_variable_from_constraint
    calculate_variable_from_constraint(m.membrane.permeability, m.membrane.eq_permeability)
    assert m.membrane.permeability.value == pytest.approx(25.0, rel=1e-12)
    with pytest.raises(InvalidInputError, match="170"):
        add_membrane(pyo.ConcreteModel(), thickness_bounds_nm=(75.0, 170.0), permeability="seed002_decreasing")
    with pytest.raises(InvalidInputError, match="seed002_thicker"):
        permeability_relation("seed002_thicker")
