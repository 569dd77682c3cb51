"""Activity models: published activity coefficients, Jacobians, Pyomo parity."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from nanosep.transport import pitzer
from nanosep.transport.activity import (
    ActivityModel,
    make_activity_model,
    mean_activity_coefficient,
    salt_stoichiometry,
)
from nanosep.transport.mathops import NumpyOps
from nanosep.transport.pitzer import (
    PitzerParameters,
    etheta_J,
    etheta_xJprime,
    phreeqc_temperature_function,
    pitzer_g,
    pitzer_gprime,
)
from scipy.integrate import quad

from nanosep import water
from nanosep.errors import InvalidInputError

MIXTURE = ["Na+", "K+", "Mg+2", "Ca+2", "Cl-", "SO4-2", "glucose"]

# Mean molal activity coefficients at 25 C: Robinson & Stokes, Electrolyte Solutions, 2nd ed.
# (1959), Appendix 8.10, as transcribed in pyEQL src/pyEQL/database/CRC_activity_coefficient.csv.
# Cross-check, CRC Handbook 92nd ed. p. 5-106 (Hamer & Wu 1972; Goldberg & Nuttall 1978):
# NaCl 0.778/0.681/0.657, CaCl2 0.517/0.444/0.495 at 0.1/0.5/1.0 mol/kg.
ROBINSON_STOKES = {
    ("Na+", "Cl-"): {0.1: 0.778, 0.5: 0.681, 1.0: 0.657},
    ("Na+", "SO4-2"): {0.1: 0.445, 0.5: 0.266, 1.0: 0.201},
    ("Mg+2", "Cl-"): {0.1: 0.529, 0.5: 0.481, 1.0: 0.570},
    ("Ca+2", "Cl-"): {0.1: 0.518, 0.5: 0.448, 1.0: 0.500},
}
# Default (PHREEQC pitzer.dat 2025, Appelo 2015) MgCl2 parameters give 0.4746 at 0.5 mol/kg,
# 1.33 % below Robinson & Stokes; every other point is within 1 %.  See
# test_mgcl2_hmw_parameters_within_1_percent for the HMW-lineage set.
TOLERANCE = {(("Mg+2", "Cl-"), 0.5): 0.015}

CASES = [(salt, m, ref) for salt, table in ROBINSON_STOKES.items() for m, ref in table.items()]


@pytest.mark.parametrize(("salt", "molality", "reference"), CASES)
def test_pitzer_mean_activity_vs_robinson_stokes(salt, molality, reference):
    gamma = mean_activity_coefficient(salt, molality)
    assert gamma == pytest.approx(reference, rel=TOLERANCE.get((salt, molality), 0.01))


@pytest.mark.parametrize("molality", [0.1, 0.5, 1.0])
def test_mgcl2_hmw_parameters_within_1_percent(molality):
    gamma = mean_activity_coefficient(("Mg+2", "Cl-"), molality, parameters="phreeqc2012")
    assert gamma == pytest.approx(ROBINSON_STOKES[("Mg+2", "Cl-")][molality], rel=0.01)


def test_osmotic_coefficient_nacl_1_molal():
    model = make_activity_model("pitzer", ["Na+", "Cl-"])
    # Robinson & Stokes (1959), Appendix 8.3: phi = 0.936 for NaCl at 1 mol/kg, 25 C
    assert model.osmotic_coefficient_molal([1.0, 1.0]) == pytest.approx(0.936, abs=0.002)
    c = water.density(298.15) * np.array([1.0, 1.0])  # same molality through the mol/m3 interface
    assert model.osmotic_coefficient(c) == pytest.approx(model.osmotic_coefficient_molal([1.0, 1.0]))


def _pitzer_mayorga(m, zc, za, nc, na, b0, b1, b2, cphi, a1, a2, A):
    """Closed-form single-salt Pitzer equations (Pitzer & Mayorga, J. Phys. Chem. 77 (1973) 2300)."""
    I = 0.5 * m * (nc * zc**2 + na * za**2)
    s, b, nu = np.sqrt(I), 1.2, nc + na

    def h(a):
        return 2 / (a * a * I) * (1 - (1 + a * s - a * a * I / 2) * np.exp(-a * s))

    fg = -A * (s / (1 + b * s) + 2 / b * np.log(1 + b * s))
    lng = abs(zc * za) * fg + m * 2 * nc * na / nu * (2 * b0 + b1 * h(a1) + b2 * h(a2)) \
        + m * m * 2 * (nc * na) ** 1.5 / nu * 1.5 * cphi
    phi = 1 - abs(zc * za) * A * s / (1 + b * s) \
        + m * 2 * nc * na / nu * (b0 + b1 * np.exp(-a1 * s) + b2 * np.exp(-a2 * s)) \
        + m * m * 2 * (nc * na) ** 1.5 / nu * cphi
    return np.exp(lng / 1.0), phi


@pytest.mark.parametrize(
    ("ions", "z", "nu", "params"),
    [
        (["Na+", "Cl-"], (1, -1), (1, 1), (0.07534, 0.2769, 0.0, 0.00148, 2.0, 12.0)),
        (["Na+", "SO4-2"], (1, -2), (2, 1), (0.0273, 0.956, 0.0, 0.003418, 2.0, 12.0)),
        (["Ca+2", "Cl-"], (2, -1), (1, 2), (0.3159, 1.614, -1.13, 0.00014, 2.0, 12.0)),
        (["Mg+2", "SO4-2"], (2, -2), (1, 1), (0.2135, 3.367, -32.45, 0.02875, 1.4, 12.0)),
    ],
)
def test_multicomponent_code_reduces_to_single_salt_formula(ions, z, nu, params):
    model = make_activity_model("pitzer", ions)
    for m in (0.01, 0.3, 2.0):
        g_ref, phi_ref = _pitzer_mayorga(m, *z, *nu, *params, model.A_phi)
        assert model.mean_activity_coefficient(ions, m) == pytest.approx(g_ref, rel=1e-12)
        assert model.osmotic_coefficient_molal([nu[0] * m, nu[1] * m]) == pytest.approx(phi_ref, rel=1e-12)


@pytest.mark.parametrize("salt", list(ROBINSON_STOKES))
def test_davies_matches_pitzer_when_dilute(salt):
    g_p = mean_activity_coefficient(salt, 1e-3)
    g_d = mean_activity_coefficient(salt, 1e-3, kind="davies")
    assert g_d == pytest.approx(g_p, rel=5e-3)


def test_davies_slope_and_limits():
    model = make_activity_model("davies", ["Na+", "SO4-2", "glucose"])
    assert model.A_gamma == pytest.approx(1.172, rel=5e-3)  # 0.509 ln 10
    lng = model.ln_gamma_molal([0.2, 0.1, 0.5])
    I = 0.3
    f = np.sqrt(I) / (1 + np.sqrt(I)) - 0.3 * I
    np.testing.assert_allclose(lng, [-model.A_gamma * f, -4 * model.A_gamma * f, 0.0], rtol=1e-14)
    # osmotic coefficient from Gibbs-Duhem: 1 - A_phi sqrt(I) + 1.95 A_phi I + O(I^1.5) for a 1-1 salt
    nacl = make_activity_model("davies", ["Na+", "Cl-"])
    m = 1e-6
    limit = 1 - nacl.A_phi * np.sqrt(m) + 1.95 * nacl.A_phi * m
    assert nacl.osmotic_coefficient_molal([m, m]) == pytest.approx(limit, abs=1e-8)


@pytest.mark.parametrize("kind", ["ideal", "davies", "pitzer"])
def test_shapes_protocol_and_neutral_solutes(kind):
    model = make_activity_model(kind, MIXTURE)
    assert isinstance(model, ActivityModel)
    c = np.random.default_rng(3).uniform(1, 500, size=(2, 3, len(MIXTURE)))
    lng = model.ln_gamma(c)
    assert lng.shape == c.shape
    assert np.all(lng[..., MIXTURE.index("glucose")] == 0.0)
    lng2, jac = model.ln_gamma_and_jacobian(c)
    assert jac.shape == c.shape + (len(MIXTURE),)
    np.testing.assert_allclose(lng2, lng, rtol=1e-14, atol=1e-15)
    assert model.osmotic_coefficient(c).shape == c.shape[:-1]
    if kind == "ideal":
        assert np.all(lng == 0.0) and np.all(jac == 0.0)


@pytest.mark.parametrize("kind", ["davies", "pitzer"])
def test_jacobian_matches_finite_differences(kind):
    model = make_activity_model(kind, MIXTURE)
    c = np.random.default_rng(7).uniform(5, 800, size=(4, len(MIXTURE)))
    _, jac = model.ln_gamma_and_jacobian(c)
    fd = np.empty_like(jac)
    for j in range(len(MIXTURE)):
        h = 1e-4 * c[:, j : j + 1]
        e = np.zeros(len(MIXTURE))
        e[j] = 1.0
        fd[..., j] = (model.ln_gamma(c + h * e) - model.ln_gamma(c - h * e)) / (2 * h)
    np.testing.assert_allclose(jac, fd, rtol=1e-6, atol=1e-9 * np.abs(jac).max())
    assert np.abs(jac).max() > 1e-4  # not trivially zero


@pytest.mark.parametrize("kind", ["ideal", "davies", "pitzer"])
def test_pyomo_expressions_equal_numpy(kind):
    pyo = pytest.importorskip("pyomo.environ")
    model = make_activity_model(kind, MIXTURE)
    m = pyo.ConcreteModel()
    m.c = pyo.Var(range(len(MIXTURE)))
    exprs = model.ln_gamma_pyomo([m.c[i] for i in range(len(MIXTURE))])
    rng = np.random.default_rng(11)
    for _ in range(5):
        c = rng.uniform(1.0, 2000.0, len(MIXTURE))
        for i, ci in enumerate(c):
            m.c[i].set_value(float(ci))
        values = np.array([pyo.value(e) for e in exprs], dtype=float)
        np.testing.assert_allclose(values, model.ln_gamma(c), rtol=1e-12, atol=1e-12)


def test_etheta_J_closed_form_vs_integral():
    """Pitzer (1975) J(x) against the defining integral; derivative exact."""

    def J0(x):
        v, _ = quad(lambda y: (1 - np.exp(-(x / y) * np.exp(-y))) * y * y, 0, np.inf, limit=400)
        return x / 4 - 1 + v / x

    for x in (0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 50.0):
        assert etheta_J(x, NumpyOps) == pytest.approx(J0(x), rel=0.015)
        h = 1e-30
        cs = np.imag(etheta_J(np.array(x + 1j * h), NumpyOps)) / h
        assert etheta_xJprime(x, NumpyOps) == pytest.approx(x * cs, rel=1e-13)


def test_g_functions_series_and_closed_form_agree():
    x = np.array([0.0199999, 0.0200001, 0.05, 1.0])
    closed_g = 2 * (1 - (1 + x) * np.exp(-x)) / x**2
    closed_gp = -2 * (1 - (1 + x + x**2 / 2) * np.exp(-x)) / x**2
    np.testing.assert_allclose(pitzer_g(x, NumpyOps), closed_g, rtol=1e-11)
    np.testing.assert_allclose(pitzer_gprime(x, NumpyOps), closed_gp, rtol=1e-9)
    assert pitzer_g(np.array(0.0), NumpyOps) == 1.0 and pitzer_gprime(np.array(0.0), NumpyOps) == 0.0


def test_g_functions_at_huge_arguments_beside_small_ones_do_not_overflow():
    """Newton's excursions put ``x = alpha sqrt(I)`` far out (I up to ~1e40 mol/kg in robustness --pitzer) in the same
    array as small x: the series branch, which only small x use, must not be evaluated (and overflow) at the others."""
    import warnings
    x = np.array([1e-3, 1e25, 1e100])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g, gp = pitzer_g(x, NumpyOps), pitzer_gprime(x, NumpyOps)
    assert g[0] == pitzer_g(x[:1], NumpyOps)[0] and gp[0] == pitzer_gprime(x[:1], NumpyOps)[0]   # series, alone
    np.testing.assert_allclose(g[1:], 2 / x[1:] ** 2, rtol=1e-12)      # g -> 2 / x^2, g' -> -2 / x^2
    np.testing.assert_allclose(gp[1:], -2 / x[1:] ** 2, rtol=1e-12)


def test_temperature_function_and_extreme_temperatures():
    coeffs = (0.07534, 9598.4, 35.48, -0.058731, 1.798e-05, -500000.0)  # NaCl beta0, PHREEQC 2025
    assert phreeqc_temperature_function(coeffs, 298.15) == 0.07534
    T, Tr = 323.15, 298.15
    expected = (0.07534 + 9598.4 * (1 / T - 1 / Tr) + 35.48 * np.log(T / Tr) - 0.058731 * (T - Tr)
                + 1.798e-05 * (T**2 - Tr**2) - 500000.0 * (1 / T**2 - 1 / Tr**2))
    assert phreeqc_temperature_function(coeffs, T) == pytest.approx(expected, rel=1e-14)
    for temp in (273.15, 323.15, 373.15):
        g = mean_activity_coefficient(("Na+", "Cl-"), 1.0, T=temp)
        assert 0.55 < g < 0.70  # NaCl gamma at 1 mol/kg changes by only a few % over 0-100 C


def test_missing_pair_warns_once(monkeypatch, caplog):
    monkeypatch.setattr(pitzer, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="nanosep.transport.pitzer"):
        make_activity_model("pitzer", ["Na+", "NO3-"], parameters="phreeqc2025")
        make_activity_model("pitzer", ["Na+", "NO3-"], parameters="phreeqc2025")
    hits = [r for r in caplog.records if "Na+-NO3-" in r.getMessage()]
    assert len(hits) == 1
    # with the May (2011) set as fallback the pair has parameters: NaNO3 is not ideal
    g = mean_activity_coefficient(("Na+", "NO3-"), 0.5, parameters=("phreeqc2025", "may2011"))
    assert g < 0.7


def test_parameter_sets_load():
    p = PitzerParameters.load("phreeqc2025")
    assert frozenset({"Na+", "Cl-"}) in p.binary
    assert (frozenset({"Ca+2", "Na+"}), "SO4-2") in p.psi
    may = PitzerParameters.load("may2011")
    assert may.binary[frozenset({"Mg+2", "NO3-"})]["beta0"] == (0.3405,)
    with pytest.raises(InvalidInputError, match="'bogus'"):
        PitzerParameters.load("bogus")


def test_bad_inputs():
    with pytest.raises(InvalidInputError, match="'huckel'"):
        make_activity_model("huckel", ["Na+", "Cl-"])
    with pytest.raises(InvalidInputError, match="kelvin"):
        make_activity_model("davies", ["Na+", "Cl-"], T=25.0)
    model = make_activity_model("davies", ["Na+", "Cl-"])
    with pytest.raises(InvalidInputError, match="last dimension 2"):
        model.ln_gamma(np.ones((4, 3)))
    with pytest.raises(InvalidInputError, match="charge"):
        make_activity_model("ideal", ["Na+"], charges=[1.5])
    with pytest.raises(InvalidInputError, match=r"T=298\.15"):
        make_activity_model("pitzer", ["Na+", "Cl-"], 298.15)  # temperature in the charges slot


def test_salt_stoichiometry():
    z = {"Na+": 1, "SO4-2": -2, "Ca+2": 2, "Cl-": -1}
    assert salt_stoichiometry(("Na+", "SO4-2"), z) == {"Na+": 2, "SO4-2": 1}
    assert salt_stoichiometry(("Ca+2", "Cl-"), z) == {"Ca+2": 1, "Cl-": 2}
    with pytest.raises(InvalidInputError, match="electroneutral"):
        salt_stoichiometry({"Na+": 1, "SO4-2": 1}, z)


@pytest.mark.parametrize("kind", ["davies", "pitzer"])
def test_per_case_temperature_equals_separate_models(kind):
    """One model with T of shape (B,) gives the same ln gamma and Jacobian as B scalar-T models."""
    ions = ["Na+", "Cl-", "Mg+2", "SO4-2", "Ca+2"]
    T = np.array([283.0, 298.15, 320.0])
    c = np.array([[50, 60, 5, 10, 5], [500, 600, 50, 100, 50], [5, 6, 0.5, 1, 0.5]], float)
    lng, jac = make_activity_model(kind, ions, T=T).ln_gamma_and_jacobian(c)
    for b in range(3):
        ref, refj = make_activity_model(kind, ions, T=float(T[b])).ln_gamma_and_jacobian(c[b])
        np.testing.assert_allclose(lng[b], ref, atol=1e-14)
        np.testing.assert_allclose(jac[b], refj, atol=1e-14)


def _pitzer_1_1_closed_form(beta0, beta1, cphi, m, a_phi):
    """ln gamma+- of a 1:1 salt (Pitzer 1973; alpha = 2, b = 1.2), written out independently of pitzer.py."""
    b, alpha = 1.2, 2.0
    sI = np.sqrt(m)
    f = -a_phi * (sI / (1 + b * sI) + 2.0 / b * np.log(1 + b * sI))
    bg = 2 * beta0 + 2 * beta1 / (alpha**2 * m) * (1 - (1 + alpha * sI - alpha**2 * m / 2) * np.exp(-alpha * sI))
    return f + m * bg + m**2 * 1.5 * cphi


@pytest.mark.parametrize(("salt", "cation"), [("NaNO3", "Na+"), ("KNO3", "K+"), ("LiNO3", "Li+")])
def test_default_set_fills_nitrates_from_may2011(salt, cation, caplog):
    """The default parameters are PHREEQC 2025 with the pairs it lacks taken from May et al. (2011): a nitrate
    gets May's 25 C values (no 'missing pair' warning) and matches the closed-form 1:1 Pitzer equation."""
    may = PitzerParameters.load("may2011").binary[frozenset({cation, "NO3-"})]
    model = make_activity_model("pitzer", [cation, "NO3-"])
    with caplog.at_level(logging.WARNING, logger="nanosep.transport.pitzer"):
        for m in (0.1, 0.5, 1.0):
            g = mean_activity_coefficient((cation, "NO3-"), m)
            ref = _pitzer_1_1_closed_form(may["beta0"][0], may["beta1"][0], may["Cphi"][0], m, float(model.A_phi))
            assert np.log(g) == pytest.approx(ref, rel=1e-10, abs=1e-12)
    assert not [r for r in caplog.records if "no Pitzer parameters" in r.getMessage()]
    # away from 25 C the fallback pair's 25 C values are named in a warning; PHREEQC pairs keep their T dependence
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nanosep.transport.pitzer"):
        make_activity_model("pitzer", [cation, "Cl-", "NO3-"], [1, -1, -1], T=318.15)
    msgs = " ".join(r.getMessage() for r in caplog.records)
    assert f"{'-'.join(sorted([cation, 'NO3-']))}" in msgs and "Cl-" not in msgs.split("(set")[0]
