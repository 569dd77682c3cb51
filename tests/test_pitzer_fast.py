"""Vectorized Pitzer path with analytic Jacobian: against the pre-vectorization values, the
complex-step reference, finite differences; per-case temperatures and ``take``."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from nanosep.transport.activity import make_activity_model
from nanosep.transport.mathops import NumpyOps
from nanosep.transport.pitzer import (
    PitzerParameters,
    etheta_terms,
    etheta_terms_d2,
    phreeqc_temperature_function,
    phreeqc_temperature_functions,
)

# values of the previous implementation (generic formula + complex-step Jacobian, parameters through
# phreeqc_temperature_function pair by pair), frozen before the vectorized path replaced it: random
# mixtures, 4 x B concentrations log-uniform in 1e-3..2500 mol/m3 with 10 % of them set to 1e-300,
# per-case temperatures uniform in 278-333 K
REFERENCE = Path(__file__).parent / "data" / "pitzer_reference_values.npz"
CONFIGS = {
    "five": (["Na+", "Cl-", "Mg+2", "SO4-2", "Ca+2"], "phreeqc2025"),
    "mixture": (["Na+", "K+", "Mg+2", "Ca+2", "Cl-", "SO4-2", "glucose"], "phreeqc2025"),
    "wide": (["Na+", "K+", "Li+", "NH4+", "H+", "Ca+2", "Mg+2", "Cl-", "NO3-", "HCO3-", "OH-", "SO4-2"],
             ("phreeqc2025", "may2011")),
    "hmw": (["Na+", "Cl-", "Mg+2", "SO4-2"], "phreeqc2012"),
}
FIVE = CONFIGS["five"][0]
REL = 1e-13


def assert_close_rowwise(new, ref, rel=REL, floor=0.05):
    """``|new - ref| <= rel * max(|ref|, floor * max_row |ref|)``: relative per entry, except entries
    far below the largest of their row (sums with cancellation), which get ``rel * floor`` of it."""
    scale = np.maximum(np.abs(ref), floor * np.max(np.abs(ref), axis=-1, keepdims=True))
    err = np.abs(new - ref)
    bad = err > rel * scale
    assert not bad.any(), f"{bad.sum()} entries off; worst {np.max(err / np.where(scale > 0, scale, 1.0)):.2e}"


@pytest.fixture(scope="module")
def reference():
    return np.load(REFERENCE)


@pytest.fixture(autouse=True)
def _quiet(caplog):
    caplog.set_level(logging.ERROR, logger="nanosep.transport.pitzer")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_values_and_jacobian_unchanged_vs_previous_implementation(reference, name):
    ions, params = CONFIGS[name]
    c, T = reference[f"{name}_c"], reference[f"{name}_T"]
    model = make_activity_model("pitzer", ions, T=T, parameters=params)
    lng, jac = model.ln_gamma_and_jacobian(c)
    assert_close_rowwise(lng, reference[f"{name}_lng"])
    assert_close_rowwise(jac, reference[f"{name}_jac"])
    assert_close_rowwise(model.ln_gamma(c), reference[f"{name}_lng_only"])
    np.testing.assert_allclose(model.osmotic_coefficient(c), reference[f"{name}_osmotic"], rtol=REL)
    for b in range(0, len(T), max(1, len(T) // 4)):  # scalar-temperature models
        one = make_activity_model("pitzer", ions, T=float(T[b]), parameters=params)
        lng1, jac1 = one.ln_gamma_and_jacobian(c[0, b])
        assert_close_rowwise(lng1, reference[f"{name}_lng_scalarT"][b])
        assert_close_rowwise(jac1, reference[f"{name}_jac_scalarT"][b])


CORNERS = {
    "dilute (series branch of g)": np.array([1e-3, 1.2e-3, 2e-4, 1e-4, 3e-4]),
    "all ions at the engine's floor (I floored)": np.full(5, 1e-300),
    "one salt, the rest at the floor": np.array([100.0, 100.0, 1e-300, 1e-300, 1e-300]),
    "divalent only": np.array([1e-300, 1e-300, 400.0, 600.0, 200.0]),
    "brine": np.array([2000.0, 2300.0, 150.0, 200.0, 50.0]),
}


@pytest.mark.parametrize("corner", list(CORNERS))
@pytest.mark.parametrize("T", [278.15, 333.15])
def test_corner_cases_match_complex_step_reference(corner, T):
    model = make_activity_model("pitzer", FIVE, T=T)
    c = CORNERS[corner]
    lng, jac = model.ln_gamma_and_jacobian(c)
    ref_lng, ref_jac = model.ln_gamma_and_jacobian_complex_step(c)
    assert np.all(np.isfinite(jac))
    assert_close_rowwise(lng, ref_lng)
    assert_close_rowwise(jac, ref_jac)


def test_analytic_jacobian_vs_finite_differences_per_case_temperature():
    rng = np.random.default_rng(5)
    B = 6
    T = rng.uniform(278.0, 333.0, B)
    c = np.exp(rng.uniform(np.log(0.5), np.log(1500.0), (4, B, 5)))
    model = make_activity_model("pitzer", FIVE, T=T)
    _, jac = model.ln_gamma_and_jacobian(c)
    fd = np.empty_like(jac)
    for j in range(5):
        h = 1e-5 * c[..., j : j + 1]
        e = np.eye(5)[j]
        fd[..., j] = (model.ln_gamma(c + h * e) - model.ln_gamma(c - h * e)) / (2 * h)
    np.testing.assert_allclose(jac, fd, rtol=2e-6, atol=1e-8 * np.abs(jac).max())
    assert np.abs(np.diagonal(jac, axis1=-2, axis2=-1)).min() > 0  # every diagonal entry is non-trivial


def test_take_equals_model_built_for_the_subset():
    rng = np.random.default_rng(2)
    T = rng.uniform(278.0, 333.0, 9)
    c = np.exp(rng.uniform(np.log(1.0), np.log(800.0), (4, 9, 5)))
    model = make_activity_model("pitzer", FIVE, T=T)
    for idx in (np.array([7, 0, 3]), T > 300.0):
        sub, built = model.take(idx), make_activity_model("pitzer", FIVE, T=T[idx])
        a, b = sub.ln_gamma_and_jacobian(c[:, idx]), built.ln_gamma_and_jacobian(c[:, idx])
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(sub.T, T[idx])
    # the parent is untouched, and a single-temperature model serves any subset as it is
    np.testing.assert_array_equal(model.ln_gamma(c), make_activity_model("pitzer", FIVE, T=T).ln_gamma(c))
    one = make_activity_model("pitzer", FIVE, T=300.0)
    assert one.take(np.array([0, 1])) is one
    davies = make_activity_model("davies", FIVE, T=T)
    idx = np.array([8, 2])
    np.testing.assert_array_equal(davies.take(idx).ln_gamma(c[:, idx]),
                                  make_activity_model("davies", FIVE, T=T[idx]).ln_gamma(c[:, idx]))


def test_etheta_second_derivative_vs_complex_step():
    x = np.array([1e-4, 0.02, 0.3, 2.0, 30.0, 400.0])
    j, k, dk = etheta_terms_d2(x)
    j0, k0 = etheta_terms(x, NumpyOps)
    np.testing.assert_array_equal(j, j0)
    np.testing.assert_array_equal(k, k0)
    h = 1e-30
    cs = np.imag(etheta_terms(x * (1 + 1j * h), NumpyOps)[1]) / h  # x dK/dx
    np.testing.assert_allclose(dk, cs, rtol=1e-13)


def test_batched_temperature_functions_equal_scalar_function():
    p = PitzerParameters.load("phreeqc2025")
    rows = [tuple(v) + (0.0,) * (6 - len(v)) for rec in p.binary.values() for v in rec.values()]
    coeffs = np.array(rows)
    T = np.array([278.15, 298.15, 310.0, 333.15])
    batched = phreeqc_temperature_functions(coeffs, T)
    assert batched.shape == (4, len(rows))
    scalar = np.array([[phreeqc_temperature_function(r, float(t)) for r in rows] for t in T])
    np.testing.assert_allclose(batched, scalar, rtol=1e-14, atol=1e-15 * np.abs(scalar).max())
    one = phreeqc_temperature_functions(coeffs, 305.0)
    assert one.shape == (len(rows),)
    np.testing.assert_array_equal(one, phreeqc_temperature_functions(coeffs, np.array([305.0]))[0])
