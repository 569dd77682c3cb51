"""Parity of the Pyomo twin (transport/pyomo_twin.py) with the fast transport engine."""
from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
import pytest
from idaes.core.util import DiagnosticsToolbox
from idaes.core.util.model_statistics import degrees_of_freedom
from nanosep.transport import TransportOptions, solve_batch
from nanosep.transport.pyomo_twin import (
    build_twin,
    initialize_from_engine,
    solve_block,
    solve_twin,
)

from nanosep.errors import InvalidInputError


def _solver_ready() -> bool:
    try:
        from nanosep.solvers import ensure_pynumero
        ensure_pynumero()
    except Exception:  # noqa: BLE001 - any set-up problem means "skip"
        return False
    return True


pytestmark = pytest.mark.skipif(not _solver_ready(), reason="cyipopt / PyNumero ASL not available")

MEMBRANE = {"pore_radius_m": 0.5e-9, "thickness_m": 1e-6, "pore_dielectric": 40.0, "charge_density_mol_m3": -50.0,
            "temperature_K": 298.15}
THREE = (["Na+", "Cl-", "SO4-2"], [120.0, 100.0, 10.0])
FIVE = (["Na+", "Cl-", "Mg+2", "SO4-2", "Ca+2"], [100.0, 120.0, 20.0, 15.0, 5.0])
K = 2e-5  # mass-transfer coefficient, m/s
CASES = {
    "ideal-none": (*THREE, {"flux_m_s": 1e-5, "options": TransportOptions()}),
    "davies-film": (*FIVE, {"flux_m_s": 1e-5, "options": TransportOptions(
        activity="davies", polarization="film", mass_transfer_m_s=K)}),
    "pitzer-linear": (*FIVE, {"flux_m_s": 1e-5, "options": TransportOptions(
        activity="pitzer", polarization="linear", mass_transfer_m_s=K)}),
    "image-davies": (*THREE, {"flux_m_s": 1e-5, "options": TransportOptions(activity="davies", image_forces=True),
                              "pore_radius_m": 0.7e-9, "pore_dielectric": 70.0}),
    "pressure-film": (*THREE, {"pressure_pa": 5e5, "options": TransportOptions(
        polarization="film", mass_transfer_m_s=K)}),
}


def _inputs(name):
    ions, c, extra = CASES[name]
    return ions, c, {**MEMBRANE, **extra}


def _engine(ions, c, kw):
    res = solve_batch(ions, np.array([c]), strict=True, **kw)
    assert res.converged[0]
    return res


def _assert_agree(twin, eng):
    for j, ion in enumerate(eng.ions):
        assert twin.rejection[ion] == pytest.approx(eng.rejection[0, j], abs=1e-6), ion
        assert twin.c_perm[ion] == pytest.approx(eng.c_perm[0, j], rel=1e-6), ion
        assert twin.c_wall[ion] == pytest.approx(eng.c_wall[0, j], rel=1e-6), ion
    assert twin.flux_m_s == pytest.approx(eng.flux_m_s[0], rel=1e-6)


def _assert_permeate_neutral(block):
    zc = [block.charge[i] * block.conc_perm[i].value for i in block.ions]
    assert abs(sum(zc)) <= 1e-10 * sum(abs(v) for v in zc)


def perturb(blk, seed: int = 42) -> None:
    """Every free concentration x U(1.0, 1.4) (x1.2 on average), every potential + U(-0.1, 0.1), J_v x1.2."""
    rng = np.random.default_rng(seed)
    for var in blk.component_objects(pyo.Var, descend_into=False):
        for v in var.values():
            if v.fixed:
                continue
            if var.local_name.startswith("conc_"):
                v.set_value(v.value * rng.uniform(1.0, 1.4))
            elif var.local_name.startswith("phi_"):
                v.set_value(v.value + rng.uniform(-0.1, 0.1))
            elif var.local_name == "flux_vol":
                v.set_value(1.2 * v.value)


@pytest.mark.parametrize("name", list(CASES))
def test_twin_matches_engine(name):
    ions, c, kw = _inputs(name)
    eng = _engine(ions, c, kw)
    twin = solve_twin(ions, c, engine_result=eng, **kw)
    assert twin.converged, twin.termination
    _assert_agree(twin, eng)
    _assert_permeate_neutral(twin.model.twin)
    assert degrees_of_freedom(twin.model.twin) == 0


@pytest.mark.parametrize("name", ["ideal-none", "davies-film", "image-davies", "pressure-film"])
def test_twin_converges_from_perturbed_start(name):
    """From a randomly perturbed engine solution the twin finds the engine's solution again."""
    ions, c, kw = _inputs(name)
    eng = _engine(ions, c, kw)
    blk = build_twin(ions, c, **kw).twin
    initialize_from_engine(blk, eng)
    perturb(blk)
    assert degrees_of_freedom(blk) == 0
    twin = solve_block(blk)
    assert twin.converged, twin.termination
    assert twin.iterations > 2  # it really had to solve
    _assert_agree(twin, eng)
    _assert_permeate_neutral(blk)


@pytest.mark.parametrize("name", list(CASES))
def test_structure(name):
    """Square and structurally sound; Pitzer's g(x) = 2[1-(1+x)e^-x]/x^2 is a removable 0/0 at I = 0."""
    ions, c, kw = _inputs(name)
    blk = build_twin(ions, c, **kw).twin
    DiagnosticsToolbox(blk, warn_for_evaluation_error_at_bounds=False).assert_no_structural_warnings(
        ignore_evaluation_errors=name.startswith("pitzer"))


def test_block_is_square_and_linkable():
    """Feed and flux are fixed Vars (unfix to link in a flowsheet); permeate concentrations are Vars."""
    ions, c, kw = _inputs("davies-film")
    blk = build_twin(ions, c, **kw).twin
    assert degrees_of_freedom(blk) == 0
    assert all(blk.conc_feed[i].fixed for i in blk.ions) and blk.flux_vol.fixed
    assert isinstance(blk.conc_perm, pyo.Var) and not any(blk.conc_perm[i].fixed for i in blk.ions)
    blk.flux_vol.unfix()
    assert degrees_of_freedom(blk) == 1


def test_initialization_rejects_a_mismatched_engine_result():
    ions, c, kw = _inputs("ideal-none")
    eng = _engine(ions, c, kw)
    other = build_twin(ions, c, **{**kw, "options": TransportOptions(activity="davies")}).twin
    with pytest.raises(InvalidInputError, match="does not match"):
        initialize_from_engine(other, eng)
    assert degrees_of_freedom(other) == 0  # a refused initialization leaves nothing fixed or unfixed
