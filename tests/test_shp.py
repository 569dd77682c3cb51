"""Tests for transport/shp.py (steric hindered pore model, seed 003 App. D)."""
from __future__ import annotations

import numpy as np
import pytest
from nanosep.transport import TransportOptions, solve_batch
from nanosep.transport.shp import (
    hagen_poiseuille_flux,
    peclet,
    pore_radius_from_rejection,
    shp_limiting_rejection,
    shp_rejection,
)

from nanosep import water
from nanosep.errors import InvalidInputError
from nanosep.ions import IonDatabase

T = 298.15
L = 1e-6
GLU = IonDatabase.default().get("glucose")
D_GLU = float(water.diffusivity_at(GLU.diffusivity_m2_s, T))
FLUXES = np.array([1e-7, 1e-6, 5e-6, 1e-5])
RADII = np.array([0.45e-9, 0.6e-9, 0.9e-9])


def _grid():
    J, rp = np.meshgrid(FLUXES, RADII, indexing="ij")
    return J.ravel(), rp.ravel()


@pytest.mark.parametrize("model", ["dechadilok_deen", "bungay_brenner"])
def test_equals_engine_for_glucose_alone(model):
    J, rp = _grid()
    res = solve_batch(["glucose"], np.full((J.size, 1), 10.0), flux_m_s=J, pore_radius_m=rp, thickness_m=L,
                      pore_dielectric=40.0, charge_density_mol_m3=0.0, temperature_K=T,
                      options=TransportOptions(activity="ideal", polarization="none", hindrance=model))
    ref = shp_rejection(GLU.stokes_radius_m, D_GLU, rp, L, J, model)
    np.testing.assert_allclose(res.rejection_observed[:, 0], ref, rtol=0, atol=1e-8)


def test_engine_flags_glucose_alone_converged():
    res = solve_batch(["glucose"], [[10.0]], flux_m_s=1e-6, pore_radius_m=0.6e-9, thickness_m=L,
                      pore_dielectric=40.0, charge_density_mol_m3=0.0)
    assert res.converged.all()


def test_equals_engine_newton_with_background_electrolyte():
    """At X = 0 with ideal activity a neutral solute is decoupled from the ions: a converged
    Newton solve with NaCl present gives the SHP rejection (up to the collocation error)."""
    J, rp = _grid()
    res = solve_batch(["glucose", "Na+", "Cl-"], np.tile([10.0, 1.0, 1.0], (J.size, 1)), flux_m_s=J,
                      pore_radius_m=rp, thickness_m=L, pore_dielectric=40.0, charge_density_mol_m3=0.0,
                      temperature_K=T, options=TransportOptions(nodes=32))
    assert res.converged.all()
    ref = shp_rejection(GLU.stokes_radius_m, D_GLU, rp, L, J)
    np.testing.assert_allclose(res.rejection_observed[:, 0], ref, rtol=0, atol=1e-8)


def test_peclet_limits():
    rs, rp = GLU.stokes_radius_m, 0.6e-9
    assert shp_rejection(rs, D_GLU, rp, L, 0.0) == 0.0
    lim = shp_limiting_rejection(rs, rp)
    assert shp_rejection(rs, D_GLU, rp, L, 1.0) == pytest.approx(lim, abs=1e-14)
    J = np.logspace(-9, -1, 60)
    R = shp_rejection(rs, D_GLU, rp, L, J)
    assert np.all(np.diff(R) >= 0) and np.all(R <= lim + 1e-15)
    assert R[-1] == pytest.approx(lim, abs=1e-15) and R[0] < 1e-2 * lim


def test_small_peclet_slope():
    """dR/dPe at Pe = 0 is (1 - K_c Phi) / (K_c Phi), from expanding eq. D.8."""
    rs, rp = GLU.stokes_radius_m, 0.6e-9
    lim = shp_limiting_rejection(rs, rp)
    kcphi = 1.0 - lim
    pe = peclet(rs, D_GLU, rp, L, 1e-16)
    assert shp_rejection(rs, D_GLU, rp, L, 1e-16) == pytest.approx(lim / kcphi * pe, rel=1e-9)


def test_excluded_solute_fully_rejected():
    assert shp_rejection(0.5e-9, 1e-9, 0.4e-9, L, 1e-6) == pytest.approx(1.0, abs=1e-15)
    assert shp_limiting_rejection(0.5e-9, 0.5e-9) == pytest.approx(1.0, abs=1e-15)


def test_hagen_poiseuille():
    J = hagen_poiseuille_flux(0.5e-9, 1e-6, 1e6, T)
    assert J == pytest.approx(0.25e-18 * 1e6 / (8 * water.viscosity(T) * 1e-6), rel=1e-15)


@pytest.mark.parametrize("rp_true", [0.42e-9, 0.55e-9, 1.3e-9])
def test_fit_recovers_radius_from_flux_data(rp_true):
    db = IonDatabase.default()
    sol = [db.get(n) for n in ("glycerol", "glucose", "sucrose")]
    rs = np.array([s.stokes_radius_m for s in sol])[None, :]
    D = np.array([s.diffusivity_m2_s for s in sol])[None, :]
    J = np.array([2e-6, 5e-6, 1e-5, 2e-5])[:, None]
    R = shp_rejection(rs, D, rp_true, L, J)
    rp = pore_radius_from_rejection(R, rs, D, flux_m_s=J, thickness_m=L)
    assert rp == pytest.approx(rp_true, rel=1e-8)


def test_fit_recovers_radius_from_pressure_data():
    rs, rp_true = GLU.stokes_radius_m, 0.6e-9
    P = np.array([3e5, 6e5, 1e6, 1.5e6])
    J = hagen_poiseuille_flux(rp_true, L, P, T)
    R = shp_rejection(rs, D_GLU, rp_true, L, J)
    rp = pore_radius_from_rejection(R, rs, D_GLU, pressure_pa=P, temperature_K=T)
    assert rp == pytest.approx(rp_true, rel=1e-8)


def test_bad_inputs_named():
    with pytest.raises(InvalidInputError, match="pore_radius_m"):
        shp_rejection(0.3e-9, 1e-9, -1e-9, L, 1e-6)
    with pytest.raises(InvalidInputError, match="flux_m_s"):
        shp_rejection(0.3e-9, 1e-9, 1e-9, L, np.nan)
    with pytest.raises(InvalidInputError, match="hindrance"):
        shp_rejection(0.3e-9, 1e-9, 1e-9, L, 1e-6, hindrance="renkin")
    with pytest.raises(InvalidInputError, match="exactly one"):
        pore_radius_from_rejection([0.5], 0.3e-9, 1e-9)
