"""Node map toward the permeate end at high Peclet numbers (transport/grid_map.py).

Checks: identity (bit for bit) below the threshold, the mapped derivative, the neutral
steric case against the analytical SHP rejection (seed 003 eq. D.8) where the plain grid is
wrong, and a charged MgCl2 case at Pe ~ 1e3 against an independent stiff ODE shooting solution
of the same ENP equations, with node-doubling convergence, mass balance and electroneutrality.
"""
import numpy as np
import pytest
from nanosep.transport import TransportOptions, chebyshev, grid_map, solve_batch
from nanosep.transport.shp import peclet, shp_rejection
from nanosep.transport.solver import build_parameters, peclet_max
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from nanosep import water
from nanosep.errors import InvalidInputError
from nanosep.ions import IonDatabase

DB = IonDatabase.default()


def test_map_is_the_identity_below_the_threshold_and_analytic_above():
    a = grid_map.strength(np.array([0.0, 29.9, 30.0, 1e3]))
    assert a[0] == 0.0 and a[1] == 0.0 and a[2] > 0 and a[3] == pytest.approx(np.log1p(1e3 / grid_map.BETA))
    xi = chebyshev.nodes(24)
    x, g = grid_map.positions(xi, a)
    assert np.array_equal(x[0], xi) and np.array_equal(g[0], np.ones_like(xi))
    assert np.all(np.diff(x, axis=1) > 0) and np.all(x[:, 0] == 0.0) and np.all(x[:, -1] == 1.0)
    # g' against a central difference of g, and clustering at the permeate end (x = 1)
    h = 1e-6
    xp, _ = grid_map.positions(xi + h, a)
    xm, _ = grid_map.positions(xi - h, a)
    np.testing.assert_allclose(g[:, 1:-1], ((xp - xm) / (2 * h))[:, 1:-1], rtol=1e-7)
    assert (1.0 - x[3, -2]) < 0.05 * (1.0 - xi[-2])   # a / (e^a - 1) = 0.022 at Pe = 1e3
    with pytest.raises(InvalidInputError, match="grid_map_peclet"):
        TransportOptions(grid_map_peclet=0.0)


def test_mapped_derivative_resolves_a_permeate_boundary_layer():
    """d/dx = diag(1/g') D_xi applied to exp(Pe (x - 1)) at Pe = 1000 (plain grid: O(1) error)."""
    pe, N = 1000.0, 48
    xi = chebyshev.nodes(N)
    x, g = grid_map.positions(xi, grid_map.strength(np.array([pe])))
    f = np.exp(pe * (x[0] - 1.0))
    df = (chebyshev.diff_matrix(N) @ f) / g[0]
    assert np.max(np.abs(df - pe * f)) / pe < 1e-8
    f0 = np.exp(pe * (xi - 1.0))
    assert np.max(np.abs(chebyshev.diff_matrix(N) @ f0 - pe * f0)) / pe > 1e-2


def test_low_peclet_cases_are_unchanged_bit_for_bit():
    """Below the threshold the grid is the plain Chebyshev one: same numbers as without the map option,
    also when the batch holds a mapped case."""
    ions = ["Na+", "Mg+2", "Cl-", "SO4-2"]
    c = np.array([[40.0, 5.0, 40.0, 5.0], [40.0, 5.0, 40.0, 5.0], [10.0, 1.0, 10.0, 1.0]])
    kw = {"flux_m_s": np.array([1e-5, 3e-5, 5e-5]), "pore_radius_m": np.array([0.5e-9, 0.5e-9, 0.42e-9]),
              "thickness_m": np.array([1e-6, 2e-6, 8e-6]), "pore_dielectric": 40.0, "charge_density_mol_m3": -30.0}
    opts = TransportOptions(activity="davies", polarization="film", mass_transfer_m_s=2e-5)
    on = solve_batch(ions, c, options=opts, **kw)
    off = solve_batch(ions, c, options=opts.with_(grid_map_peclet=None), **kw)
    assert on.converged.all() and off.converged.all()
    assert on.x_layer[2, -2] > on.x[-2] and np.array_equal(on.x_layer[:2], np.tile(on.x, (2, 1)))  # case 2 mapped
    for a, b in ((on.c_perm[:2], off.c_perm[:2]), (on.c_layer[:2], off.c_layer[:2]),
                 (on.flux_split[:2], off.flux_split[:2]), (on.iterations[:2], off.iterations[:2])):
        assert np.array_equal(a, b)
    assert not np.array_equal(on.c_perm[2], off.c_perm[2])
    # a batch of unmapped cases only: the same numbers with and without the option
    two = {k: (v[:2] if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    a, b = solve_batch(ions, c[:2], options=opts, **two), solve_batch(ions, c[:2], options=opts.with_(
        grid_map_peclet=None), **two)
    assert np.array_equal(a.c_perm, b.c_perm) and np.array_equal(a.solution, b.solution)


def test_neutral_solute_at_high_peclet_matches_the_shp_solution():
    """Uncharged steric case (glucose) at Pe ~ 100-900: eq. D.8 exactly, where the plain grid is off."""
    glu = DB.get("glucose")
    rp, L = 0.42e-9, 10e-6
    J = np.array([5e-5, 2e-4, 4e-4])
    D = water.diffusivity_at(glu.diffusivity_m2_s, 298.15)
    pe = peclet(glu.stokes_radius_m, D, rp, L, J)
    assert pe.min() > 100 and pe.max() > 800
    ref = shp_rejection(glu.stokes_radius_m, D, rp, L, J)
    kw = {"flux_m_s": J, "pore_radius_m": rp, "thickness_m": L, "pore_dielectric": 40.0, "charge_density_mol_m3": 0.0}
    mapped = solve_batch(["glucose"], np.full((3, 1), 10.0), options=TransportOptions(nodes=48), **kw)
    assert mapped.converged.all()
    np.testing.assert_allclose(mapped.rejection[:, 0], ref, rtol=0, atol=1e-10)
    plain = solve_batch(["glucose"], np.full((3, 1), 10.0), options=TransportOptions(nodes=48, grid_map_peclet=None),
                        strict=False, **kw)
    err = np.where(plain.converged, np.abs(plain.rejection[:, 0] - ref), np.inf)
    assert err.max() > 1e-4     # what the map fixes


# ---------------------------------------------------------------------- MgCl2 at Pe ~ 1e3 vs a shooting solution
SALT = ["Mg+2", "Cl-"]
Z = np.array([2.0, -1.0])
C_FEED = np.array([10.0, 20.0])
CASE = {"pore_radius_m": 0.37e-9, "thickness_m": 10e-6, "pore_dielectric": 40.0, "charge_density_mol_m3": -50.0,
            "temperature_K": 298.15}
FLUX = 5e-5


def _parameters():
    return build_parameters(SALT, Z, np.array([DB.get(i).stokes_radius_m for i in SALT]),
                            np.array([DB.get(i).diffusivity_m2_s for i in SALT]), C_FEED[None, :], np.array([FLUX]),
                            *(np.array([CASE[k]]) for k in ("pore_radius_m", "thickness_m", "pore_dielectric",
                                                             "charge_density_mol_m3", "temperature_K")),
                            TransportOptions())


def _shooting_permeate() -> np.ndarray:
    """Permeate (2,) of MgCl2 (ideal, no polarization) from the ENP ODEs integrated from the permeate side.

    Same property numbers as the engine (``build_parameters``), independent discretization: for a
    trial ``c_p`` the permeate Donnan condition with electroneutrality gives the pore state at x = 1;
    the two ENP equations with ``dphi/dx`` from electroneutrality (``sum z_i dc_i/dx = 0``) are
    integrated to x = 0 (Radau; backwards the boundary-layer mode decays); both ions must then see the
    same feed-side Donnan potential, the equation for ``c_p``.
    """
    prm = _parameters()
    phi = np.exp(prm.ln_phi_fixed[0])
    q = FLUX * CASE["thickness_m"] / (prm.kd[0] * prm.diff[0])
    pe = prm.kc[0] * q
    X = CASE["charge_density_mol_m3"]

    def rhs(_, c, cp):
        dphi = (Z @ (pe * c - q * cp)) / (Z**2 @ c)
        return pe * c - q * cp - Z * c * dphi

    def mismatch(ln_cp1):
        cp = np.exp(ln_cp1) * np.array([1.0, -Z[0] / Z[1]])
        ln_u = brentq(lambda lu: Z @ (phi * cp * np.exp(-Z * lu)) + X, -60.0, 60.0, xtol=1e-15, rtol=1e-15)
        c1 = phi * cp * np.exp(-Z * ln_u)
        sol = solve_ivp(rhs, (1.0, 0.0), c1, method="Radau", rtol=1e-13, atol=1e-14 * c1.min(), args=(cp,))
        ratio = np.log(sol.y[:, -1] / (phi * C_FEED))
        return ratio[0] / Z[0] - ratio[1] / Z[1]

    ln_cp1 = brentq(mismatch, np.log(1e-9 * C_FEED[0]), np.log(C_FEED[0]), xtol=1e-15, rtol=1e-15)
    return np.exp(ln_cp1) * np.array([1.0, -Z[0] / Z[1]])


@pytest.fixture(scope="module")
def salt_high_pe():
    # fixed grids (no automatic refinement): convergence under node doubling is what is tested
    return {N: solve_batch(SALT, [C_FEED], flux_m_s=FLUX, options=TransportOptions(nodes=N, resolution_tol=None),
                           **CASE) for N in (24, 48, 96)}


def test_salt_high_peclet_case_is_mapped(salt_high_pe):
    assert 500 < peclet_max(_parameters())[0] < 5000
    r = salt_high_pe[48]
    assert r.converged.all() and r.x_layer[0, -2] > 0.9999


def test_salt_high_peclet_rejection_converges_under_node_doubling(salt_high_pe):
    R = {N: r.rejection[0] for N, r in salt_high_pe.items()}
    assert np.max(np.abs(R[96] - R[48])) < 1e-8
    assert np.max(np.abs(R[48] - R[24])) < 1e-4


def test_salt_high_peclet_mass_balance_and_electroneutrality(salt_high_pe):
    r = salt_high_pe[48]
    # layer-averaged diffusion + convection + migration = J_v c_p (the ion flux is constant across the layer)
    np.testing.assert_allclose(r.flux_split[0].sum(-1), r.ion_flux[0], rtol=1e-10)
    X = CASE["charge_density_mol_m3"]
    scale = np.abs(Z) @ r.c_layer[0] + abs(X)
    assert np.max(np.abs(Z @ r.c_layer[0] + X) / scale) < 1e-10
    assert abs(Z @ r.c_perm[0]) / r.c_perm[0].sum() < 1e-10


def test_salt_high_peclet_agrees_with_the_shooting_reference(salt_high_pe):
    cp = _shooting_permeate()
    np.testing.assert_allclose(salt_high_pe[48].c_perm[0], cp, rtol=1e-8)
    plain = solve_batch(SALT, [C_FEED], flux_m_s=FLUX, strict=False,
                        options=TransportOptions(nodes=48, grid_map_peclet=None), **CASE)
    assert not plain.converged[0] or abs(plain.c_perm[0, 0] / cp[0] - 1.0) > 1e-6


def test_pyomo_twin_uses_the_same_map(salt_high_pe):
    """The twin of a mapped case holds the same mapped equations: the engine's solution satisfies them to
    1e-8 in the twin's scaled residuals (with the plain-grid derivative the residual would be O(1))."""
    try:
        import pyomo.environ as pyo
        from nanosep.transport.pyomo_twin import build_twin, initialize_from_engine
    except Exception:  # noqa: BLE001 - any set-up problem means "skip"
        pytest.skip("pyomo / idaes not available")
    eng = salt_high_pe[24]
    blk = build_twin(SALT, C_FEED, flux_m_s=FLUX, options=TransportOptions(), **CASE).twin
    initialize_from_engine(blk, eng, 0)
    sf = blk.scaling_factor
    worst = max(abs(pyo.value(c.body) - pyo.value(c.lower)) * sf.get(c, 1.0)
                for c in blk.component_data_objects(pyo.Constraint, active=True))
    assert worst < 1e-8
    # the plain-grid derivative at the same state: the ENP rows near the permeate end are far off
    D = chebyshev.diff_matrix(24)
    c_mg = np.array([blk.conc_pore["Mg+2", k].value for k in range(25)])
    x = eng.x_layer[0]
    assert np.max(np.abs(D @ c_mg - np.gradient(c_mg, x))) > 1e-3 * np.max(np.abs(np.gradient(c_mg, x)))
    # a case solved on another grid than the twin's is refused
    eng.x_layer[0] = eng.x
    with pytest.raises(InvalidInputError, match="other nodes"):
        initialize_from_engine(blk, eng, 0)
    eng.x_layer[0] = x
