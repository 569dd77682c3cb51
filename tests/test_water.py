"""Water properties against published values (nanosep.water)."""
from __future__ import annotations

import numpy as np
import pytest

from nanosep import water
from nanosep.errors import InvalidInputError


def test_iapws_2008_verification_values():
    # IAPWS R12-08, Table 4 (verification values without critical enhancement), mu in uPa s
    assert water.viscosity_iapws(298.15, 998.0) * 1e6 == pytest.approx(889.735100, rel=1e-8)
    assert water.viscosity_iapws(298.15, 1200.0) * 1e6 == pytest.approx(1437.649467, rel=1e-8)
    assert water.viscosity_iapws(373.15, 1000.0) * 1e6 == pytest.approx(307.883622, rel=1e-8)


@pytest.mark.parametrize(
    ("T", "mu_mPa_s"),
    [
        (298.15, 0.8900),  # CRC Handbook 'Viscosity of water': 0.890 mPa s at 25 C
        (293.15, 1.0016),  # 1.002 mPa s at 20 C (CRC); IAPWS gives 1.0016
        (273.15, 1.792),   # 1.792 mPa s at 0 C (CRC)
        (373.15, 0.2816),  # 0.282 mPa s at 100 C (CRC)
    ],
)
def test_viscosity_published(T, mu_mPa_s):
    assert water.viscosity(T) * 1e3 == pytest.approx(mu_mPa_s, rel=1e-3)


def test_viscosity_20C_is_1002():
    assert water.viscosity(293.15) * 1e3 == pytest.approx(1.002, abs=0.001)


@pytest.mark.parametrize(
    ("T", "rho"),
    [(298.15, 997.05), (277.13, 999.97), (273.15, 999.84), (373.15, 958.36)],  # Kell (1975), Table of densities
)
def test_density_published(T, rho):
    assert water.density(T) == pytest.approx(rho, abs=0.02)


def test_relative_permittivity():
    # Malmberg & Maryott (1956): 87.74 at 0 C, 78.30 at 25 C; accepted 25 C range 78.3-78.5
    assert water.relative_permittivity(273.15) == pytest.approx(87.740, abs=1e-9)
    assert 78.3 <= water.relative_permittivity(298.15) <= 78.5
    assert water.relative_permittivity(373.15) == pytest.approx(55.72, abs=0.01)


def test_debye_huckel_aphi():
    a = water.debye_huckel_aphi(298.15)
    # Archer & Wang (1990): 0.3915; PHREEQC pitzer.cpp: 0.392 at 25 C
    assert 0.3910 <= a <= 0.3925
    # ln-based Debye-Hueckel slope 3 A_phi vs 0.509 ln(10) = 1.172
    assert 3 * a == pytest.approx(0.509 * np.log(10.0), rel=5e-3)
    # A_phi increases monotonically with temperature over 0-100 C
    T = np.linspace(273.15, 373.15, 21)
    assert np.all(np.diff(water.debye_huckel_aphi(T)) > 0)


def test_diffusivity_at_is_stokes_einstein_scaling():
    D25 = 1.334e-9
    assert water.diffusivity_at(D25, 298.15) == pytest.approx(D25, rel=1e-14)
    T = np.array([283.15, 310.15, 333.15])
    expected = D25 * (T / 298.15) * water.viscosity(298.15) / water.viscosity(T)
    np.testing.assert_allclose(water.diffusivity_at(D25, T), expected, rtol=1e-14)
    assert np.all(np.diff(water.diffusivity_at(D25, T)) > 0)


def test_stokes_einstein_radius_round_trip():
    r = water.stokes_einstein_radius(2.032e-9, 298.15, mu=0.8900e-3)
    assert r * 1e9 == pytest.approx(0.1208, abs=1e-4)  # Cl- radius of the NF literature


def test_molality_dilute_approximation():
    rho = water.density(298.15)
    assert water.molality_from_concentration(rho, 298.15) == pytest.approx(1.0)
    np.testing.assert_allclose(water.molality_from_concentration(np.array([0.0, 997.0]), 298.15), [0.0, 997.0 / rho])


@pytest.mark.parametrize("T", [25.0, 200.0, 400.0, float("nan")])
def test_temperature_out_of_range_names_value(T):
    with pytest.raises(InvalidInputError, match="kelvin"):
        water.viscosity(T)
