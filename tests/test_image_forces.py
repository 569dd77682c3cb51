"""Tests for transport/image_forces.py (image-force dielectric exclusion, seed 003 eqs. 5-8).

The references here are independent of the module's code path: an integrand written
with unscaled ``scipy.special.kv/iv`` integrated by ``scipy.integrate.quad``, and a
finite-volume solution of the axisymmetric Debye-Hueckel problem that never uses
Bessel functions.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.sparse as sps
import scipy.sparse.linalg as spla
from scipy import integrate, special

from nanosep.transport.image_forces import (
    ChebyshevImageIntegral,
    debye_mu,
    image_alpha,
    image_integral,
    image_integral_chebyshev,
    image_integrand,
    ln_phi_image,
    pyomo_clenshaw_hook,
)


# ---- independent references ---------------------------------------------------------------
def _integrand_unscaled(k, mu, r, beta_seed=False):
    """A(k) with unscaled Bessel functions; ``beta_seed`` uses the printed seed eq. 7."""
    eta = np.sqrt(k * k + mu * mu)
    b = (k / eta) * ((1 - r) / (1 + r) if beta_seed else r)
    num = special.kv(0, k) * special.kv(1, eta) - b * special.kv(0, eta) * special.kv(1, k)
    den = special.iv(1, eta) * special.kv(0, k) + b * special.iv(0, eta) * special.kv(1, k)
    return num / den


def _g_quad(mu, r, beta_seed=False):
    """G by adaptive quadrature, split at the scales of the integrand (epsabs 1e-13 relative to G)."""
    kmax = np.sqrt(80.0 * mu + 1600.0)  # e^{-2 (eta - mu)} < 1e-34 beyond
    pts = sorted({min(mu, 1.0) * 1e-6, mu * 1e-2, mu, 1.0, np.sqrt(mu), kmax})
    pts = [0.0] + [p for p in pts if 0 < p <= kmax]
    f = lambda k: _integrand_unscaled(k, mu, r, beta_seed)  # noqa: E731
    scale = abs(f(1e-3)) + abs(f(1.0)) + 1e-300
    return sum(integrate.quad(f, a, b, epsabs=1e-13 * scale * 1e-3, epsrel=1e-13, limit=400)[0]
               for a, b in zip(pts[:-1], pts[1:], strict=True) if b > a)


def _fv_reaction_potential(mu, r, n, length=1000.0, growth=1.08, core=3.0):
    """psi(0, 0) = (2/pi) G from a finite-volume Debye-Hueckel solve (no Bessel functions).

    Lengths in r_p, potential in z e / (4 pi eps0 eps_p r_p).  Unknowns: psi = phi -
    exp(-mu R)/R in the pore (rho < 1), total phi in the matrix.  Interface: two-point
    flux with harmonic weighting (continuity of phi and eps dphi/drho).  Grid uniform
    (1/n) up to ``core``, then stretched by ``growth`` to ``length``; phi = 0 on the far
    boundary, symmetry at z = 0.
    """
    def faces():
        f = list(np.linspace(0.0, core, int(round(core * n)) + 1))
        h = 1.0 / n
        while f[-1] < length:
            h *= growth
            f.append(f[-1] + h)
        return np.array(f)

    rf = zf = faces()
    rc = zc = 0.5 * (rf[1:] + rf[:-1])
    dr = dz = np.diff(rf)
    nr = nz = rc.size
    ni = n  # cells 0..n-1 inside, rf[n] == 1
    idx = np.arange(nr * nz).reshape(nr, nz)
    eps = np.where(np.arange(nr) < ni, 1.0, r)

    def phi0(rho, z):
        big_r = np.hypot(rho, z)
        return np.exp(-mu * big_r) / big_r

    def dphi0_drho(rho, z):
        big_r = np.hypot(rho, z)
        return -(1.0 + mu * big_r) * np.exp(-mu * big_r) / big_r**3 * rho

    rows, cols, vals = [], [], []

    def couple(p, q, c):
        rows.extend([p, p, q, q])
        cols.extend([p, q, q, p])
        vals.extend([c, -c, c, -c])

    diag = np.zeros((nr, nz))
    rhs = np.zeros((nr, nz))
    diag[:ni] += mu**2 * (rc * dr)[:ni, None] * dz[None, :]
    area_r = rf[1:-1, None] * dz[None, :]
    c_r = area_r * eps[:-1, None] / (rc[1:] - rc[:-1])[:, None]
    same = np.arange(nr - 1) != ni - 1
    couple(idx[:-1][same].ravel(), idx[1:][same].ravel(), c_r[same].ravel())
    c_if = area_r[ni - 1] / ((1.0 - rc[ni - 1]) + (rc[ni] - 1.0) / r)
    couple(idx[ni - 1], idx[ni], c_if)
    rhs[ni - 1] += -c_if * phi0(rc[ni - 1], zc) - dphi0_drho(1.0, zc) * area_r[ni - 1]
    rhs[ni] += c_if * phi0(rc[ni - 1], zc)
    c_z = (rc * dr * eps)[:, None] / (zc[1:] - zc[:-1])[None, :]
    couple(idx[:, :-1].ravel(), idx[:, 1:].ravel(), c_z.ravel())
    c_top = rc * dr * eps / (zf[-1] - zc[-1])
    diag[:, -1] += c_top
    rhs[:ni, -1] -= phi0(rc[:ni], zf[-1]) * c_top[:ni]
    diag[-1, :] += rf[-1] * dz * eps[-1] / (rf[-1] - rc[-1])
    a = sps.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(nr * nz, nr * nz)) + sps.diags(diag.ravel())
    u = spla.spsolve(a.tocsc(), rhs.ravel()).reshape(nr, nz)
    # psi is even in rho and z: psi ~ a0 + a1 rho^2 + a2 z^2 through the three corner cells
    m = np.array([[1, rc[0] ** 2, zc[0] ** 2], [1, rc[1] ** 2, zc[0] ** 2], [1, rc[0] ** 2, zc[1] ** 2]])
    return np.linalg.solve(m, [u[0, 0], u[1, 0], u[0, 1]])[0]


@functools.cache
def _g_fv(mu, r):
    """G from the finite-volume solve at 8 and 16 cells per r_p, Richardson-extrapolated (O(h^2)).

    Differs from image_integral by 5e-5 (mu = 0.7281, r = 0.1125) and 7e-4 (mu = 2, r = 4;
    2e-4 with 12/24 cells, 6e-5 with 16/32, so the residual is discretization error).
    """
    g8, g16 = (0.5 * np.pi * _fv_reaction_potential(mu, r, n) for n in (8, 16))
    return g16 + (g16 - g8) / 3.0


# ---- the corrected eq. 7 --------------------------------------------------------------------
def test_integrand_vanishes_for_equal_permittivity_without_screening():
    k = np.logspace(-12, 1.3, 60)
    assert np.all(image_integrand(k, 0.0, 1.0) == 0.0)
    g, dg = image_integral(0.0, 1.0)
    assert g == 0.0 and dg == pytest.approx(np.pi / 2)
    # the printed seed beta (eps_p - eps_m)/(eps_p + eps_m) vanishes here and leaves
    # A = K1(k)/I1(k) ~ 2/k^2: a non-integrable image energy for a homogeneous medium
    small = np.array([1e-4, 1e-3])
    assert np.allclose(_integrand_unscaled(small, 0.0, 1.0, beta_seed=True) * small**2, 2.0, rtol=1e-5)


def test_large_mu_reduces_to_flat_interface_reflection():
    """mu >> 1: A -> pi e^{-2 eta} (eta - r k)/(eta + r k), the flat-interface reflection coefficient."""
    for r in (0.1125, 0.5, 4.0):
        dev = []
        for mu in (50.0, 200.0):
            def flat_a(k, mu=mu, r=r):
                eta = np.hypot(k, mu)
                return np.pi * np.exp(-2 * (eta - mu)) * (eta - r * k) / (eta + r * k)

            flat = integrate.quad(flat_a, 0, np.inf, epsrel=1e-12)[0]
            dev.append(abs(image_integral(mu, r)[0] * np.exp(2 * mu) / flat - 1.0))
        assert dev[1] < 0.02 and dev[1] < dev[0] / 3  # O(1/mu) curvature correction


def test_matches_independent_finite_volume_poisson_solution():
    """G from a Bessel-free solve of the same electrostatics; the printed seed beta is far off."""
    for mu, r in ((0.7281, 4.5 / 40.0), (2.0, 4.0)):
        g_fv = _g_fv(mu, r)
        g = image_integral(mu, r)[0]
        assert g == pytest.approx(g_fv, rel=1e-3)
        assert abs(_g_quad(mu, r, beta_seed=True) - g_fv) > 0.5 * abs(g_fv)


# ---- quadrature accuracy --------------------------------------------------------------------
def test_quadrature_matches_scipy_quad():
    rng = np.random.default_rng(2024)
    mu = 10.0 ** rng.uniform(-3, np.log10(200.0), 20)
    r = rng.uniform(0.02, 1.0, 20)
    g, _ = image_integral(mu, r)
    ref = np.array([_g_quad(m, e) for m, e in zip(mu, r, strict=True)])
    np.testing.assert_allclose(g, ref, rtol=1e-9, atol=0)


def test_derivative_matches_central_difference():
    rng = np.random.default_rng(7)
    mu = 10.0 ** rng.uniform(-3, np.log10(200.0), 12)
    r = rng.uniform(0.02, 1.0, 12)
    _, dg = image_integral(mu, r)
    h = 1e-5 * mu
    fd = (image_integral(mu + h, r)[0] - image_integral(mu - h, r)[0]) / (2 * h)
    np.testing.assert_allclose(dg, fd, rtol=1e-6, atol=0)


def test_broadcasting_and_input_checks():
    mu = np.array([[0.1], [1.0], [10.0]])
    r = np.array([0.05, 0.5, 1.0, 2.0])
    g, dg = image_integral(mu, r)
    assert g.shape == dg.shape == (3, 4)
    g_scalar, _ = image_integral(1.0, 0.5)
    assert np.ndim(g_scalar) == 0 and g_scalar == pytest.approx(g[1, 1], rel=1e-15)
    with pytest.raises(ValueError):
        image_integral(-1e-3, 0.5)
    with pytest.raises(ValueError):
        image_integral(1.0, -0.1)


# ---- qualitative physics ---------------------------------------------------------------------
def test_decreases_with_mu_beyond_the_debye_loss_maximum():
    """Screening weakens the image repulsion: G decreases for mu above mu*(r) < 0.45 ..."""
    mu = np.logspace(np.log10(0.5), np.log10(200.0), 300)
    for r in (0.02, 0.1125, 0.5, 0.9):
        g, dg = image_integral(mu, r)
        assert np.all(np.diff(g) < 0) and np.all(dg < 0)


def test_small_mu_rise_is_the_debye_hueckel_self_energy_loss():
    """... but dG/dmu(0+) = pi/2 for every eps_ratio > 0 (loss of kappa z^2 e^2/(8 pi eps0 eps_p))."""
    for r in (0.02, 0.1125, 0.5, 1.0, 3.0):
        g0 = image_integral(0.0, r)[0]
        g1, dg1 = image_integral(1e-6, r)
        assert np.isfinite(g0)
        assert (g1 - g0) / 1e-6 == pytest.approx(np.pi / 2, rel=1e-3)
        if r > 0.1:  # for r = 0.02 the maximum is already at mu* = 5.3e-4
            assert dg1 == pytest.approx(np.pi / 2, rel=1e-3)
    g, dg = image_integral(1e-3, 0.1125)
    assert dg > 0 and g > image_integral(0.0, 0.1125)[0]
    assert np.all(image_integral(np.logspace(-3, 2, 50), 1.0)[0] > 0)


def test_increases_as_eps_ratio_decreases():
    mu = np.logspace(-3, np.log10(200.0), 40)[:, None]
    r = np.array([1.0, 0.8, 0.5, 0.3, 0.1125, 0.05, 0.02])[None, :]
    g, _ = image_integral(mu, r)
    assert np.all(np.diff(g, axis=1) > 0)
    # more polarizable wall: attraction while mu is small; for mu >> 1 the truncated
    # screening cloud wins (sign change at mu = 2.80 for eps_ratio = 3)
    assert np.all(image_integral(mu[mu < 2.7], 3.0)[0] < 0)
    assert np.all(image_integral(mu[mu > 2.9], 3.0)[0] > 0)


def test_insulating_wall_limit_confines_field_lines():
    """eps_m = 0: G ~ pi/mu (W = z^2 e^2 / (4 pi eps0 eps_p r_p^2 kappa)), infinite at mu = 0."""
    for mu in (1e-4, 1e-5):
        assert image_integral(mu, 0.0)[0] * mu / np.pi == pytest.approx(1.0, rel=20 * mu)
    g, dg = image_integral(0.0, 0.0)
    assert g == np.inf and dg == -np.inf
    assert ln_phi_image(1, 0.5e-9, 40.0, 0.0, 0.0, 298.15)[0] == -np.inf


# ---- ln Phi_im and mu -------------------------------------------------------------------------
def test_ln_phi_image_scales_as_z_squared_and_inverse_radius():
    mu = np.array([0.05, 0.5, 5.0])
    base, dbase = ln_phi_image(1, 0.5e-9, 40.0, 4.5, mu, 298.15)
    assert np.all(base < 0) and np.all(dbase > 0)
    for z in (-1, 2, -3):
        ln, dln = ln_phi_image(z, 0.5e-9, 40.0, 4.5, mu, 298.15)
        np.testing.assert_allclose(ln, z**2 * base, rtol=1e-14)
        np.testing.assert_allclose(dln, z**2 * dbase, rtol=1e-14)
    ln2, _ = ln_phi_image(1, 1.0e-9, 40.0, 4.5, mu, 298.15)
    np.testing.assert_allclose(ln2, base / 2.0, rtol=1e-14)
    zz = np.array([1, -1, 2])[:, None]
    assert ln_phi_image(zz, 0.5e-9, 40.0, 4.5, mu[None, :], 298.15)[0].shape == (3, 3)


def test_physical_magnitude_nf_pore():
    """r_p = 0.5 nm, eps_p = 40, eps_m = 4.5, 298.15 K, 100 mol/m3 NaCl screened with eps_p."""
    alpha = image_alpha(1, 0.5e-9, 40.0, 298.15)
    bjerrum_water_nm = 0.7135  # e^2/(4 pi eps0 78.54 k_B 298.15) in nm
    assert alpha == pytest.approx(bjerrum_water_nm * 78.54 / 40.0 / (2 * 0.5), rel=1e-3)
    mu = debye_mu(0.5e-9, [100.0, 100.0], [1, -1], 40.0, 298.15)
    assert mu == pytest.approx(0.7281, rel=1e-3)
    ln, _ = ln_phi_image(1, 0.5e-9, 40.0, 4.5, mu, 298.15)
    g_fv = _g_fv(0.7281, 4.5 / 40.0)
    assert ln == pytest.approx(-(2 * alpha / np.pi) * g_fv, rel=1e-3)
    assert -1.3 < ln < -1.1  # Phi_im ~ 0.29 for a monovalent ion


def test_debye_mu():
    # Debye length 0.304 nm / sqrt(I / M) in water at 25 C; 0.1 M NaCl -> 0.961 nm
    mu = debye_mu(1e-9, [100.0, 100.0], [1, -1], 78.54, 298.15)
    assert 1e-9 / mu == pytest.approx(0.304e-9 / np.sqrt(0.1), rel=3e-3)
    c = np.array([[10.0, 10.0, 0.0], [10.0, 0.0, 5.0]])  # Na+, Cl-, SO4^2-
    out = debye_mu(np.array([0.5e-9, 1e-9]), c, [1, -1, -2], 40.0, 298.15)
    assert out.shape == (2,)
    assert out[1] / out[0] == pytest.approx(2.0 * np.sqrt(30.0 / 20.0), rel=1e-12)


# ---- Chebyshev surrogate ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def cheb() -> ChebyshevImageIntegral:
    return image_integral_chebyshev(4.5 / 40.0, 1e-3, 200.0)


def test_chebyshev_matches_quadrature(cheb):
    assert cheb.max_abs_error < 1e-10
    mu = 10.0 ** np.random.default_rng(3).uniform(-3, np.log10(200.0), 500)
    g, dg = image_integral(mu, 4.5 / 40.0)
    np.testing.assert_allclose(cheb(mu), g, rtol=0, atol=1e-9)
    np.testing.assert_allclose(cheb.derivative(mu), dg, rtol=1e-6, atol=1e-8)
    x = np.log(mu)
    np.testing.assert_allclose(cheb.of_log_mu(x), cheb(mu), rtol=0, atol=1e-13)
    assert cheb.of_log_mu(float(x[0])) == pytest.approx(float(cheb(mu[0])), abs=1e-13)
    assert image_integral_chebyshev(0.5, 0.1, 10.0, degree=40).max_abs_error < 1e-10


def test_chebyshev_on_pyomo_expression(cheb):
    pyo = pytest.importorskip("pyomo.environ")
    m = pyo.ConcreteModel()
    m.ln_mu = pyo.Var(initialize=np.log(0.37))
    with pytest.raises(ValueError):
        cheb.of_log_mu(m.ln_mu)  # plain Clenshaw tree would grow exponentially
    expr = cheb.of_log_mu(m.ln_mu, subexpression=pyomo_clenshaw_hook(m))
    assert len(m.image_clenshaw_b) == cheb.degree - 1
    assert pyo.value(expr) == pytest.approx(float(image_integral(0.37, 4.5 / 40.0)[0]), abs=1e-10)
    for con in m.image_clenshaw_eq.values():  # auxiliary equalities hold at the initial point
        assert abs(pyo.value(con.body) - pyo.value(con.upper)) < 1e-12
    m.mu = pyo.Var(initialize=3.0)  # caller applies the log; degree <= 20 needs no hook
    small = image_integral_chebyshev(4.5 / 40.0, 0.1, 10.0, degree=12)
    assert pyo.value(small.of_log_mu(pyo.log(m.mu))) == pytest.approx(float(small(3.0)), abs=1e-13)
