"""Tests for transport/psd.py (log-normal pore-size distribution, seed 003 eqs. 21-22)."""
from __future__ import annotations

import numpy as np
import pytest
from nanosep.transport import TransportOptions, solve_batch
from nanosep.transport.psd import lognormal_parameters, psd_nodes, solve_with_psd
from nanosep.transport.shp import shp_rejection
from scipy import integrate

from nanosep import water
from nanosep.errors import InvalidInputError
from nanosep.ions import IonDatabase

L, EPS, T = 1e-6, 40.0, 298.15
J = np.array([2e-6, 8e-6])
NACL = (["Na+", "Cl-"], [50.0, 50.0])


def test_lognormal_parameters_eq22_moments():
    mu_x, s = lognormal_parameters(0.7e-9, 0.2e-9)
    assert np.exp(mu_x + s * s / 2) == pytest.approx(0.7e-9, rel=1e-14)
    assert np.sqrt((np.exp(s * s) - 1) * np.exp(2 * mu_x + s * s)) == pytest.approx(0.2e-9, rel=1e-12)


def test_node_flux_averages_to_jbar():
    """Open-area-weighted node flux equals Jbar: sum w_k j_k / r_k^2 / sum w_k / r_k^2 (flow weights / r^4 * r^2)."""
    r, w, f = psd_nodes(0.7e-9, 0.2e-9, 24)
    area_w = w / r**2          # flow weight ∝ p r^4  ->  area weight ∝ p r^2
    assert np.sum(area_w * f) / np.sum(area_w) == pytest.approx(1.0, rel=1e-12)


def test_sigma_to_zero_is_single_radius():
    ions, c = NACL
    rp = 0.8e-9
    psd = solve_with_psd(ions, c, J, rp, 1e-6 * rp, L, EPS, -20.0, T)
    one = solve_batch(ions, np.tile(c, (J.size, 1)), flux_m_s=J, pore_radius_m=rp, thickness_m=L,
                      pore_dielectric=EPS, charge_density_mol_m3=-20.0, temperature_K=T)
    assert psd.converged.all() and one.converged.all()
    np.testing.assert_allclose(psd.rejection, one.rejection_observed, rtol=0, atol=1e-6)


def test_quadrature_converged_16_to_32():
    ions, c = NACL
    r16 = solve_with_psd(ions, c, J, 0.8e-9, 0.1e-9, L, EPS, -20.0, T, n_nodes=16)
    r32 = solve_with_psd(ions, c, J, 0.8e-9, 0.1e-9, L, EPS, -20.0, T, n_nodes=32)
    assert r16.converged.all() and r32.converged.all()
    np.testing.assert_allclose(r16.rejection, r32.rejection, rtol=0, atol=1e-6)


def test_mixed_permeate_electroneutral_and_between_nodes():
    ions, c = NACL
    res = solve_with_psd(ions, c, J, 0.8e-9, 0.1e-9, L, EPS, -20.0, T, return_nodes=True)
    assert res.converged.all()
    assert np.abs(res.c_perm @ res.charges).max() < 1e-10 * np.max(c)
    lo, hi = res.node_c_perm.min(axis=1), res.node_c_perm.max(axis=1)
    assert np.all((res.c_perm >= lo) & (res.c_perm <= hi))
    assert res.nodes is not None and len(res.nodes) == J.size * res.radii_m.size


def test_neutral_solute_matches_independent_quad():
    """Glucose alone at X = 0 vs eq. D.8 integrated by scipy.integrate.quad over the eq. 21 density with the r^4 flow weighting."""
    mean, std, Jbar = 1.0e-9, 0.12e-9, 5e-6
    res = solve_with_psd(["glucose"], [10.0], Jbar, mean, std, L, EPS, 0.0, T,
                         options=TransportOptions(activity="ideal", polarization="none"))
    assert res.converged.all()
    glu = IonDatabase.default().get("glucose")
    D = float(water.diffusivity_at(glu.diffusivity_m2_s, T))
    mu_x = np.log(mean**2 / np.sqrt(mean**2 + std**2))          # eq. 22, written out again
    s = np.sqrt(np.log(1 + std**2 / mean**2))

    def pdf_u(u):                                                 # density of u = ln r (eq. 21 times r)
        return np.exp(-(u - mu_x) ** 2 / (2 * s * s)) / (s * np.sqrt(2 * np.pi))

    span = (mu_x - 12 * s, mu_x + 12 * s)
    kink = [np.log(glu.stokes_radius_m), np.log(glu.stokes_radius_m / 0.99)]
    m2 = integrate.quad(lambda u: pdf_u(u) * np.exp(2 * u), *span, epsabs=0, epsrel=1e-13)[0]
    m4 = integrate.quad(lambda u: pdf_u(u) * np.exp(4 * u), *span, epsabs=0, epsrel=1e-13)[0]

    def cp_over_cf(u):
        r = np.exp(u)
        if r <= glu.stokes_radius_m:
            return 0.0
        return 1.0 - float(shp_rejection(glu.stokes_radius_m, D, r, L, Jbar * r * r * m2 / m4))

    num = integrate.quad(lambda u: pdf_u(u) * np.exp(4 * u) * cp_over_cf(u), *span, points=kink,
                         epsabs=0, epsrel=1e-12, limit=200)[0]
    assert res.rejection[0, 0] == pytest.approx(1.0 - num / m4, abs=1e-6)


def test_blocked_nodes_are_pure_water():
    """Nodes smaller than every cation pass no salt: they are not sent to the engine."""
    ions, c = NACL
    na = IonDatabase.default().get("Na+").stokes_radius_m
    r, _, _ = psd_nodes(0.3e-9, 0.1e-9, 16)
    res = solve_with_psd(ions, c, 2e-6, 0.3e-9, 0.1e-9, L, EPS, -20.0, T)
    blocked = r <= na
    assert blocked.any()
    assert np.all(res.node_c_perm[:, blocked] == 0.0)
    assert not np.isin(np.flatnonzero(blocked), res.solved_nodes).any()


def test_bad_inputs():
    with pytest.raises(InvalidInputError, match="std_radius_m"):
        solve_with_psd(*NACL, J, 0.8e-9, -1e-10, L, EPS, -20.0)
    with pytest.raises(InvalidInputError, match="n_nodes"):
        solve_with_psd(*NACL, J, 0.8e-9, 1e-10, L, EPS, -20.0, n_nodes=0)
    with pytest.raises(InvalidInputError, match="thickness_m"):
        solve_with_psd(*NACL, J, 0.8e-9, 1e-10, [L, L], EPS, -20.0)
