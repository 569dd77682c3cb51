"""Engine numerics: coarse-grid start (exactness on the full grid), interpolation, residual-only evaluation."""
import numpy as np
import pytest

from nanosep.errors import InvalidInputError
from nanosep.transport import Membrane, TransportOptions, solve, solve_batch
from nanosep.transport import chebyshev
from nanosep.transport.solver import build_parameters, coarse_grids, ion_scale
from nanosep.transport.partitioning import donnan_potential
from nanosep.transport.system import DSPMDESystem

NF = Membrane(0.5e-9, 1.3e-6, 40.0, -40.0)
FEED = {"Na+": 40.0, "Ca+2": 5.0, "Mg+2": 4.0, "Cl-": 48.0, "SO4-2": 5.0}
FLUXES = [2e-6, 1e-5, 4e-5, 8e-5]


@pytest.mark.parametrize("n_from,n_to", [(6, 12), (12, 24), (8, 8), (24, 12)])
def test_interpolation_matrix_is_exact_for_polynomials(n_from, n_to):
    x, y = chebyshev.nodes(n_from), chebyshev.nodes(n_to)
    P = chebyshev.interp_matrix(n_from, n_to)
    for deg in range(n_from + 1):
        np.testing.assert_allclose(P @ x**deg, y**deg, atol=1e-13)
    assert np.allclose(P.sum(axis=1), 1.0, atol=1e-14)


@pytest.mark.parametrize("kw", [dict(activity="davies", polarization="film", mass_transfer_m_s=2e-5),
                                dict(activity="pitzer", polarization="linear", mass_transfer_m_s=6e-5),
                                dict(activity="davies", image_forces=True)])
def test_coarse_grid_start_gives_the_full_grid_solution(kw):
    """The coarse grids only change the starting point: same answer as a direct solve on the full grid."""
    direct = solve(NF, FEED, flux_m_s=FLUXES[:3] if kw.get("polarization") == "linear" else FLUXES,
                   options=TransportOptions(coarse_grids=0, **kw))
    staged = solve(NF, FEED, flux_m_s=direct.flux_m_s, options=TransportOptions(**kw))
    assert staged.converged.all() and direct.converged.all()
    np.testing.assert_allclose(staged.rejection, direct.rejection, rtol=0, atol=1e-9)
    np.testing.assert_allclose(staged.c_layer, direct.c_layer, rtol=1e-8, atol=1e-12 * max(FEED.values()))
    # and it is the solution of the full-grid equations (not an interpolated coarse one)
    assert staged.c_layer.shape[-1] == TransportOptions().nodes + 1 and (staged.residual < 1e-6).all()


def test_coarse_grid_sequence_and_validation():
    assert coarse_grids(TransportOptions()) == [(6, 4), (12, 8)]
    assert coarse_grids(TransportOptions(coarse_grids=0)) == []
    assert coarse_grids(TransportOptions(nodes=10)) == []          # 10 // 2 < 6: nothing coarser
    with pytest.raises(InvalidInputError, match="coarse_grids=7"):
        TransportOptions(coarse_grids=7)


def test_prolongation_keeps_a_polynomial_profile_and_the_scalars():
    opts = TransportOptions(activity="davies", polarization="film", mass_transfer_m_s=2e-5)
    ions = ["Na+", "Cl-"]
    z = np.array([1.0, -1.0])
    prm = build_parameters(ions, z, np.array([1.8e-10, 1.2e-10]), np.array([1.33e-9, 2.03e-9]),
                           np.array([[10.0, 10.0]]), np.array([1e-5]), np.array([0.5e-9]), np.array([1e-6]),
                           np.array([40.0]), np.array([-20.0]), np.array([298.15]), opts)
    phi0 = donnan_potential(prm.z, prm.c_feed, prm.ln_phi_fixed, prm.charge)
    s = ion_scale(prm, phi0)
    coarse, fine = DSPMDESystem(prm, 6, 4, s), DSPMDESystem(prm, 24, 16, s)
    rng = np.random.default_rng(1)
    xc = rng.normal(size=(1, coarse.lay.size))
    xc[:, coarse.lay["u"]] = np.concatenate([1 + chebyshev.nodes(6) ** 3, 2 - chebyshev.nodes(6) ** 6])[None]
    xf = fine.prolong(xc, coarse)
    np.testing.assert_allclose(xf[0, fine.lay["u"]], np.concatenate([1 + chebyshev.nodes(24) ** 3,
                                                                      2 - chebyshev.nodes(24) ** 6]), atol=1e-13)
    for name in ("v", "pp"):
        np.testing.assert_array_equal(xf[:, fine.lay[name]], xc[:, coarse.lay[name]])


@pytest.mark.parametrize("activity", ["davies", "pitzer"])
def test_residual_only_evaluation_equals_the_full_one(activity):
    res = solve(NF, FEED, flux_m_s=[1e-5, 3e-5], options=TransportOptions(
        activity=activity, polarization="film", mass_transfer_m_s=2e-5))
    from nanosep.ions import IonDatabase
    db = IonDatabase.default()
    names = list(res.ions)
    z = np.array([db.get(i).charge for i in names], float)
    opts = res.meta["options"]
    prm = build_parameters(names, z, np.array([db.get(i).stokes_radius_m for i in names]),
                           np.array([db.get(i).diffusivity_m2_s for i in names]), res.c_feed, res.flux_m_s,
                           np.full(2, NF.pore_radius_m), np.full(2, NF.thickness_m), np.full(2, NF.pore_dielectric),
                           np.full(2, NF.charge_density_mol_m3), np.full(2, 298.15), opts)
    phi0 = donnan_potential(prm.z, prm.c_feed, prm.ln_phi_fixed, prm.charge)
    sy = DSPMDESystem(prm, opts.nodes, opts.film_nodes, ion_scale(prm, phi0))
    x = res.solution * (1 + 1e-3 * np.random.default_rng(0).normal(size=res.solution.shape))
    F_full, _ = sy.evaluate(x, True)
    np.testing.assert_allclose(sy.evaluate(x, False), F_full, rtol=1e-12, atol=1e-14)
    assert np.abs(sy.evaluate(res.solution, False)).max() < 1e-6   # converged (the floor test accepts < 1e-6)


def test_mixed_batch_with_a_case_the_coarse_grids_cannot_solve_still_converges():
    """A high-Peclet case (thick layer, high flux) next to easy ones: every case converges on the full grid."""
    c = np.array([[40.0, 48.0, 5.0, 4.0, 5.0]])
    r = solve_batch(["Na+", "Cl-", "Ca+2", "Mg+2", "SO4-2"], np.repeat(c, 3, axis=0),
                    flux_m_s=[1e-5, 5e-5, 5e-5], pore_radius_m=[0.5e-9, 0.5e-9, 0.4e-9],
                    thickness_m=[1e-6, 1e-6, 8e-6], pore_dielectric=40.0, charge_density_mol_m3=-40.0,
                    options=TransportOptions(activity="davies", polarization="film", mass_transfer_m_s=2e-5))
    ref = solve_batch(["Na+", "Cl-", "Ca+2", "Mg+2", "SO4-2"], np.repeat(c, 3, axis=0),
                      flux_m_s=[1e-5, 5e-5, 5e-5], pore_radius_m=[0.5e-9, 0.5e-9, 0.4e-9],
                      thickness_m=[1e-6, 1e-6, 8e-6], pore_dielectric=40.0, charge_density_mol_m3=-40.0,
                      options=TransportOptions(activity="davies", polarization="film", mass_transfer_m_s=2e-5,
                                               coarse_grids=0))
    assert r.converged.all()
    np.testing.assert_allclose(r.rejection, ref.rejection, atol=1e-9)
