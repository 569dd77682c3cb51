"""Engine numerics: coarse-grid start (exactness on the full grid), interpolation, residual-only evaluation."""
import warnings

import numpy as np
import pytest
from nanosep.transport import Membrane, TransportOptions, chebyshev, solve, solve_batch
from nanosep.transport.partitioning import donnan_potential
from nanosep.transport.solver import build_parameters, coarse_grids, ion_scale
from nanosep.transport.system import DSPMDESystem

from nanosep.errors import InvalidInputError
from nanosep.ions import IonDatabase

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
    # the layer halves; the film keeps its intervals on the first coarse grid, then follows the layer (>= 4)
    assert coarse_grids(TransportOptions()) == [(6, 6), (12, 16)]
    assert coarse_grids(TransportOptions(nodes=48, coarse_grids=3)) == [(6, 6), (12, 12), (24, 16)]
    assert coarse_grids(TransportOptions(nodes=48, film_nodes=8, coarse_grids=3)) == [(6, 6), (12, 8), (24, 8)]
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


# ---------------------------------------------------------------------- recorded hard cases
# Samples of the 10^4-point robustness run (benchmarks/robustness.py, seed 20240611, Davies + film k = 2e-5 m/s)
# that failed before the robust fallbacks (results/benchmarks/robustness_n10000_2026-11-22_before-fallback_failures.csv).
DAVIES_FILM = TransportOptions(activity="davies", polarization="film", mass_transfer_m_s=2e-5)
S8411 = dict(ions=["Na+", "Mg+2", "SO4-2"], c=[86.01883128647816, 14.339245180126358, 57.348660823365435],
             flux_m_s=3.0233019599183574e-05, pore_radius_m=1.470921447314322e-9, thickness_m=5.370370623693173e-6,
             pore_dielectric=20.4162129573524, charge_density_mol_m3=-495.27590814977884,
             temperature_K=273.15 + 8.126314571127295)
ROBUSTNESS_IONS = ["Na+", "K+", "Li+", "Ca+2", "Mg+2", "Cl-", "NO3-", "SO4-2"]
S6750 = dict(c=[0.0, 0.010228528391061444, 1.0823929447261977, 28.12069939812535, 5.525831241540177, 0.0,
                68.3856827524483, 0.0],
             flux_m_s=4.18553574645978e-05, pore_radius_m=0.6726497277617454e-9, thickness_m=0.13909764644770617e-6,
             pore_dielectric=20.64648786559701, charge_density_mol_m3=-878.6632008850574,
             temperature_K=273.15 + 6.944261807948351)


def _solve_case(case, ions, **opt):
    kw = {k: v for k, v in case.items() if k not in ("ions", "c")}
    return solve_batch(ions, [case["c"]], options=DAVIES_FILM.with_(**opt), strict=False, **kw)


@pytest.fixture(scope="module")
def hard_8411():
    return {N: _solve_case(S8411, S8411["ions"], nodes=N) for N in (24, 48)}


def test_hard_case_with_a_vanishing_exit_co_ion_converges(hard_8411):
    """8411: wall ~20x the feed, SO4-2 pore concentration falls to ~1e-15 (1e-26 at 80 % of the flux) of its entrance value at the
    permeate end (exit Donnan jump ~15 thermal voltages): needs the log exit unknowns + row rescaling."""
    r = hard_8411[24]
    assert r.converged.all()
    so4 = r.c_layer[0, 2]
    assert so4[-1] / so4[0] < 1e-12 and np.all(so4 > 0)
    assert np.nanmax(r.c_wall[0] / r.c_feed[0]) > 10.0


def test_hard_case_conservation_and_electroneutrality(hard_8411):
    r = hard_8411[24]
    z = r.charges
    X = S8411["charge_density_mol_m3"]
    assert np.max(np.abs(z @ r.c_layer[0] + X) / (np.abs(z) @ r.c_layer[0] + abs(X))) < 1e-10
    assert abs(z @ r.c_perm[0]) / (np.abs(z) @ r.c_perm[0]) < 1e-10
    # layer-averaged diffusion + convection + migration = J_v c_p (constant ion flux across the layer)
    np.testing.assert_allclose(r.flux_split[0].sum(-1), r.ion_flux[0], rtol=1e-10)


def test_hard_case_rejection_converges_under_node_doubling(hard_8411):
    assert hard_8411[48].converged.all()
    np.testing.assert_allclose(hard_8411[48].rejection, hard_8411[24].rejection, rtol=0, atol=1e-8)


S2519 = dict(c=[0.010186993415937772, 5.371054884236261, 0.0, 0.0, 0.0, 5.3812418776522, 0.0, 0.0],
             flux_m_s=2.4094639894437334e-05, pore_radius_m=0.36473736371845006e-9,
             thickness_m=5.3335059412776324e-6, pore_dielectric=39.870667830109596,
             charge_density_mol_m3=-453.6638450808823, temperature_K=273.15 + 9.843866266310215)


def test_absent_ion_fallback_solves_with_the_present_ions(monkeypatch):
    """A case with absent ions that (forced here) fails on the full ion list is re-solved with its present
    ions only: absent ions NaN, solution row NaN, present ions as with the trace level to ~1e-12."""
    from nanosep.transport import solver
    ions = ["Na+", "K+", "Ca+2", "Mg+2", "Cl-", "SO4-2"]
    c = [[40.0, 0.0, 5.0, 4.0, 48.0, 5.0], [10.0, 2.0, 0.0, 1.0, 14.0, 0.0]]
    kw = dict(flux_m_s=[2e-6, 3e-5], pore_radius_m=[0.5e-9, 0.45e-9], thickness_m=[1.3e-6, 0.4e-6],
              pore_dielectric=[40.0, 30.0], charge_density_mol_m3=[-40.0, 60.0], temperature_K=[298.15, 283.15],
              options=DAVIES_FILM.with_(compiled=False))   # the engine's fallback (the kernel bypasses _solve_chunk)
    normal = solve_batch(ions, c, **kw)
    original = solver._solve_chunk
    calls = []

    def fail_on_full_list(prm, options):
        out = original(prm, options)
        calls.append(prm.n_ions)
        if prm.n_ions == len(ions):
            out[2][:] = False          # pretend the full ion list failed
        return out

    monkeypatch.setattr(solver, "_solve_chunk", fail_on_full_list)
    r = solve_batch(ions, c, **kw)
    assert r.converged.all() and sorted(calls) == [4, 5, 6]
    present = np.array(c) > 0
    assert np.isnan(r.solution).all() and np.isnan(r.c_perm[~present]).all()
    np.testing.assert_allclose(r.c_perm[present], normal.c_perm[present], rtol=1e-9)
    assert np.nanmax(np.abs(r.rejection - normal.rejection)) < 1e-9
    z = r.charges
    assert np.all(np.abs(np.nansum(z * r.c_perm, axis=1)) / np.nansum(np.abs(z) * r.c_perm, axis=1) < 1e-10)


def test_an_absent_ion_too_large_for_the_pores_is_reported_absent():
    """An absent ion (c = 0) that would also be sterically excluded (lambda >= 1) is reported as absent: permeate and
    rejection NaN, as for every absent ion, not the excluded ion's c_p = 0 (whose rejection was 0/0, a RuntimeWarning
    and an error under -W error); the same ion present is fully rejected (c_p = 0, rejection 1)."""
    ions = ["Na+", "Cl-", "Mg+2"]                     # Mg+2: Stokes radius 0.35 nm > r_p = 0.30 nm
    kw = dict(flux_m_s=[1e-5] * 2, pore_radius_m=[0.3e-9] * 2, thickness_m=[1e-6] * 2, pore_dielectric=[40.0] * 2,
              charge_density_mol_m3=[-20.0] * 2, temperature_K=[298.15] * 2)
    r = solve_batch(ions, [[10.0, 10.0, 0.0], [10.0, 30.0, 10.0]], **kw)
    assert r.converged.all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rej, rej_i, frame = r.rejection, r.rejection_intrinsic, r.to_frame()
    assert np.isnan(r.c_perm[0, 2]) and np.isnan(rej[0, 2]) and np.isnan(rej_i[0, 2])
    assert r.c_perm[1, 2] == 0.0 and rej[1, 2] == 1.0 and r.ion_flux[1, 2] == 0.0
    assert np.isnan(frame.loc[(frame.case == 0) & (frame.ion == "Mg+2"), "rejection_observed"]).all()
    assert np.all(np.isfinite(rej[:, :2])) and np.all((rej[:, :2] > 0) & (rej[:, :2] < 1))


@pytest.mark.slow
def test_recorded_failures_with_absent_ions_converge():
    """6750 (robust continuation on the 8-ion list) and 2519 (needs the present-ion fallback): converge,
    electroneutral permeate; the present-ion solve agrees under node doubling."""
    for case in (S6750, S2519):
        full = _solve_case(case, ROBUSTNESS_IONS)
        assert full.converged.all()
        present = np.array(case["c"]) > 0
        z = full.charges
        assert abs(np.nansum(z * full.c_perm[0])) / np.nansum(np.abs(z) * full.c_perm[0]) < 1e-10
        ions_p = [i for i, p in zip(ROBUSTNESS_IONS, present) if p]
        direct = {N: _solve_case(dict(case, c=list(np.array(case["c"])[present])), ions_p, nodes=N) for N in (24, 48)}
        assert direct[24].converged.all() and direct[48].converged.all()
        np.testing.assert_allclose(direct[48].rejection, direct[24].rejection, rtol=0, atol=1e-8)
        # 6750 converges on the 8-ion list (trace ions at 1e-12 of the feed): ~1e-9 from the present-ion answer
        np.testing.assert_allclose(full.rejection[0, present], direct[24].rejection[0], rtol=0, atol=1e-8)


#: robustness.py --quick --pitzer samples 672 and 503 (Pitzer + image forces + film): image forces keep a co-ion out
#: of the pore (Li+ at ~1e-31, SO4-2 at ~1e-27 of the feed), so the zero-flux start of the flux continuation holds
#: only below ~1e-33 / ~1e-29 of the flux; from the ordinary passes' floor (1e-14) no step converged
PITZER_IMAGE = TransportOptions(activity="pitzer", image_forces=True, polarization="film", mass_transfer_m_s=2e-5)
S672 = dict(c=[0.0021659661312496865, 0.0, 0.6383959729538504, 0.003022970145118414, 0.0, 0.6466078793753369, 0.0,
               0.0],
            flux_m_s=1.6636691628405915e-05, pore_radius_m=3.7416013767942785e-10, thickness_m=7.546465991937847e-06,
            pore_dielectric=24.566473923623562, charge_density_mol_m3=33.71145483106375,
            temperature_K=318.39089703336356)
S503 = dict(c=[1.1569081744913747, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5784540872456874],
            flux_m_s=5.421633755873562e-06, pore_radius_m=3.0233460739254953e-10, thickness_m=9.883014264968789e-06,
            pore_dielectric=49.84197497367859, charge_density_mol_m3=-25.15509957447648,
            temperature_K=323.6500355420634)


def _solve_pitzer_image(case, **opt):
    kw = {k: v for k, v in case.items() if k != "c"}
    return solve_batch(ROBUSTNESS_IONS, [case["c"]], options=PITZER_IMAGE.with_(**opt), strict=False, **kw)


def test_image_force_excluded_co_ion_converges_from_the_deep_start():
    """Sample 672 (X = +34 mol/m3, 0.37 nm, eps_p 25): the last continuation pass starts where the zero-flux solution
    holds; the answer is resolved, its permeate electroneutral, and the permeate equal under node doubling."""
    res = {N: _solve_pitzer_image(S672, nodes=N, film_nodes=Nf) for N, Nf in ((24, 16), (48, 32))}
    present = np.array(S672["c"]) > 0
    for r in res.values():
        assert r.converged[0] and not r.unresolved[0] and r.reason[0] == "" and r.continuation_steps[0] > 0
        cp, z = r.c_perm[0, present], r.charges[present]
        assert abs(z @ cp) / (np.abs(z) @ cp) < 1e-10
        assert np.all((r.rejection[0, present] > 1 - 1e-9) & (r.rejection[0, present] <= 1.0))
    np.testing.assert_allclose(res[48].c_perm[0, present], res[24].c_perm[0, present], rtol=1e-9, atol=0)


@pytest.mark.slow
def test_deep_start_is_what_converges_the_image_force_cases(monkeypatch):
    """Without the last pass (its floor at the ordinary passes' 1e-14) sample 672 fails with the robust pass's reason;
    with it, sample 503 (Na2SO4, 0.30 nm) converges with both ions fully rejected (SO4-2 at ~1e-27 mol/m3 in the
    pore) and a permeate electroneutral on the feed's scale (the rows' scale)."""
    from nanosep.transport import solver
    r = _solve_pitzer_image(S503)
    assert r.converged[0] and not r.unresolved[0]
    np.testing.assert_array_equal(r.rejection[0, [0, 7]], [1.0, 1.0])
    assert abs(r.charges @ np.nan_to_num(r.c_perm[0])) / (np.abs(r.charges) @ np.array(S503["c"])) < 1e-10
    monkeypatch.setattr(solver, "DEEP_START_FLOOR", solver.START_FLOOR)
    r = _solve_pitzer_image(S672)
    assert not r.converged[0] and r.reason[0].endswith("from the flux where the zero-flux start holds)")


def test_ordinary_cases_are_unchanged_by_the_fallbacks(monkeypatch):
    """Cases that converge without the fallbacks keep the engine's previous answers bit for bit (reference
    values from the engine before the fallbacks existed).  From the unfloored film start (``system.FILM_FLOOR = 0``)
    the third case needs the flux continuation; the floored start (the default) converges without it, to the same
    answer."""
    ions = ["Na+", "K+", "Ca+2", "Mg+2", "Cl-", "SO4-2"]
    c = [[40.0, 0.0, 5.0, 4.0, 48.0, 5.0], [10.0, 2.0, 0.0, 1.0, 14.0, 0.0], [100.0, 0.0, 0.0, 0.0, 100.0, 0.0]]
    kw = {"flux_m_s": [2e-6, 3e-5, 6e-5], "pore_radius_m": [0.5e-9, 0.45e-9, 0.6e-9],
          "thickness_m": [1.3e-6, 0.4e-6, 3e-6], "pore_dielectric": [40.0, 30.0, 50.0],
          "charge_density_mol_m3": [-40.0, 60.0, -200.0], "temperature_K": [298.15, 283.15, 318.15]}
    # the engine's path (its iteration counts are pinned); the compiled kernel (chord Newton, its own start:
    # other counts) must give the same answers
    r = solve_batch(ions, c, options=DAVIES_FILM.with_(compiled=False), **kw)
    rk = solve_batch(ions, c, options=DAVIES_FILM, **kw)
    nan = np.nan
    before = [[22.47596602750111, nan, 1.4449447260207202, 1.1880335982648944, 27.739037344621252,
               0.0014426657536261123],
              [0.12360290556312103, 0.006961418850450288, nan, 1.0144521121825568e-07, 0.13056452730399123, nan],
              [78.58932203380365, nan, nan, nan, 78.58932203459011, nan]]
    # the start's interface activity pass (system.ACTIVITY_PASSES) saves the first case 2 of its 7 iterations
    assert r.converged.all() and list(r.iterations) == [5, 13, 13] and list(r.continuation_steps) == [0, 0, 0]
    np.testing.assert_allclose(r.c_perm, before, rtol=1e-12, equal_nan=True)
    from nanosep.transport import system
    monkeypatch.setattr(system, "FILM_FLOOR", 0.0)
    r0 = solve_batch(ions, c, options=DAVIES_FILM.with_(compiled=False), **kw)
    assert r0.converged.all() and list(r0.iterations) == [5, 13, 26] and list(r0.continuation_steps) == [0, 0, 4]
    np.testing.assert_allclose(r0.c_perm, before, rtol=1e-12, equal_nan=True)
    monkeypatch.setattr(system, "FILM_FLOOR", 0.1)
    monkeypatch.setattr(system, "ACTIVITY_PASSES", 0)      # the ideal start: the engine's earlier counts
    r1 = solve_batch(ions, c, options=DAVIES_FILM.with_(compiled=False), **kw)
    assert r1.converged.all() and list(r1.iterations) == [7, 13, 13] and list(r1.continuation_steps) == [0, 0, 0]
    np.testing.assert_allclose(r1.c_perm, before, rtol=1e-12, equal_nan=True)
    assert rk.converged.all() and (rk.solver_path == "compiled").all()
    np.testing.assert_allclose(rk.c_perm, before, rtol=1e-12, equal_nan=True)


# ---------------------------------------------------------------------- precision-limit acceptance (loose cases)
from nanosep.transport import newton as newton_rules


def _stalling_problem():
    """F = A (x^3 - 3) with A = 1e12 (plus an unscaled twin, A = 1): the round-off floor of the scaled case,
    A * ulp(3) ~ 4.4e-4, lies above every strict tolerance, while x is accurate to an ulp."""
    A = np.array([1e12, 1.0])

    def ev(x, idx, jac):
        F = A[idx, None] * (x**3 - 3.0)
        return (F, (A[idx, None] * 3.0 * x**2)[:, :, None]) if jac else F
    return ev


def test_precision_limit_rule_is_recorded_and_capped():
    ev, x0, w = _stalling_problem(), np.ones((2, 1)), np.full((2, 1), 1e-7)
    x, rep = newton_rules.newton(ev, x0, np.array([1.0]), weights=w)
    assert rep.converged.all() and list(rep.rule) == ["precision limit", "residual"]
    assert rep.residual[0] > newton_rules.STRICT_RESIDUAL and rep.residual[1] < 1e-11
    np.testing.assert_allclose(x[:, 0], 3.0 ** (1 / 3), rtol=4e-16)     # accurate: the residual is round-off
    # the caps are enforced: a tighter correction or residual bound turns the stalled case into a failure
    for kw in (dict(limit_correction=1e-12), dict(limit_residual=1e-9)):
        _, rep2 = newton_rules.newton(ev, x0, np.array([1.0]), weights=w, **kw)
        assert list(rep2.converged) == [False, True] and rep2.reason[0] == "damping below minimum"


def test_newton_norms_of_a_huge_correction_do_not_overflow():
    """A Jacobian of 1e-200 on a step residual gives corrections of 1e200, whose squares in the scaled norms overflowed
    (RuntimeWarnings; seen in robustness.py -n 10000).  The norms are then inf without a warning, that case ends
    unconverged with finite unknowns, and the other case of the batch converges as alone."""
    import warnings
    cube = _stalling_problem()

    def ev(x, idx, jac):
        F = np.where(idx[:, None] == 0, np.where(x < 1.0, -1.0, 1.0), x**3 - 3.0)
        if not jac:
            return F
        J = np.where(idx[:, None, None] == 0, 1e-200, 3.0 * x[:, :, None] ** 2)
        return F, J

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, rep = newton_rules.newton(ev, np.ones((2, 1)) * [[0.0], [1.0]], np.array([10.0]), max_iter=20)
        x1, rep1 = newton_rules.newton(cube, np.ones((2, 1)), np.array([10.0]), max_iter=20)
    assert list(rep.converged) == [False, True] and rep.reason[0] and np.isfinite(x).all()
    assert x[1, 0] == x1[1, 0] and rep.iterations[1] == rep1.iterations[1]


def test_newton_rejects_a_step_whose_correction_grows_beyond_the_overflow_range():
    """The monotonicity test compares two huge norms: a correction of 1e200 at x and a simplified correction of
    1e250 at the trial point.  Their squares overflowed, both norms were inf, and ``inf <= inf`` accepted the step,
    which cycled to the iteration limit.  The norms are now finite, the step is rejected and the damping shrinks."""
    def ev(x, idx, jac):
        F = np.where(x < 1.0, -1.0, 1e50)
        return (F, np.full(x.shape + (1,), 1e-200)) if jac else F

    x, rep = newton_rules.newton(ev, np.zeros((1, 1)), np.array([10.0]), max_iter=20)
    assert rep.reason[0] == "damping below minimum" and rep.iterations[0] < 20
    assert 0.9 < x[0, 0] < 1.0            # the accepted (small) steps walk up to the jump, never across it


def test_scaled_norms_are_exact_and_finite_for_huge_finite_corrections():
    """The engine's and the kernel's overflow-safe scaled rms norms equal the plain formula where it does not
    overflow, stay finite (not inf) for corrections of 1e200, and are inf only for a non-finite entry."""
    pytest.importorskip("numba")
    from nanosep.transport.compiled_newton import _scaled_rms, _step_norms
    rng = np.random.default_rng(3)
    e = rng.normal(size=(4, 7)) * np.array([[1.0], [1e-150], [1e100], [0.0]])
    w = rng.uniform(0.5, 2.0, size=7)
    plain = np.sqrt(np.mean((e / w) ** 2, axis=1))
    np.testing.assert_allclose(newton_rules.scaled_rms(e / w), plain, rtol=1e-14)
    for row, ref in zip(e, plain):
        assert _scaled_rms(row, w, np.max(np.abs(row / w))) == pytest.approx(ref, rel=1e-14, abs=0.0)
    huge = np.array([[1e200, -3e200, 2e200]])
    ref = 1e200 * np.sqrt(np.mean(np.array([1.0, 9.0, 4.0])))
    assert newton_rules.scaled_rms(huge)[0] == pytest.approx(ref, rel=1e-14)
    finite, _big, ndx, edx = _step_norms(huge[0], np.full(3, np.inf), np.ones(3))
    assert finite and ndx == pytest.approx(ref, rel=1e-14) and edx == 3e200
    assert newton_rules.scaled_rms(np.array([[1.0, np.inf]]))[0] == np.inf
    assert newton_rules.scaled_rms(np.array([[1.0, np.nan]]))[0] == np.inf
    with warnings.catch_warnings():       # a non-finite entry next to a huge finite one: inf, and no overflow warning
        warnings.simplefilter("error")
        mixed = newton_rules.scaled_rms(np.array([[1e300, np.inf], [-1e200, np.nan], [1e300, 2e300]]))
    assert mixed[0] == np.inf and mixed[1] == np.inf
    assert mixed[2] == pytest.approx(1e300 * np.sqrt(2.5), rel=1e-14)


# (these tests check Newton's precision-limit rule on the 24-node grid, so the automatic refinement, which
# re-solves this case on 48 nodes where it converges strictly, is switched off: resolution_tol=None)
# sample 620 of benchmarks/robustness.py (seed 20240611): converges with a stalled residual ~2e-4 (rows with
# large scales); the correction-based error estimate, not the residual, bounds its error
S620 = dict(c=[0.004416334009771014, 6.417156676012609, 0.010235047773821077, 0.0050770507485536015,
               4.856864937818118, 16.155692034929544, 0.0, 0.0],
            flux_m_s=5.431830483082469e-05, pore_radius_m=0.34072878267616034e-9, thickness_m=2.164632163592787e-06,
            pore_dielectric=45.82524370402098, charge_density_mol_m3=388.4462243877351,
            temperature_K=280.36942105330525)


def test_loosely_converged_case_is_flagged_and_accurate(monkeypatch):
    r = _solve_case(S620, ROBUSTNESS_IONS, resolution_tol=None)
    assert r.converged.all()
    # exposed: the final residual, the flag (= residual above the strict tolerance) and the per-case view
    assert np.all(np.isfinite(r.residual)) and r.loose.shape == (1,)
    assert bool(r.loose[0]) == bool(r.residual[0] > newton_rules.STRICT_RESIDUAL)
    assert r.case(0).diagnostics["loose"] == bool(r.loose[0])
    assert r.loose[0], "sample 620 is expected to stop at the precision limit (residual ~2e-4)"
    # ... and accurate: same rejection with the precision-limit rule tightened 100x (same grid) ...
    monkeypatch.setattr(newton_rules, "LIMIT_CORRECTION", 1e-8)
    tight = _solve_case(S620, ROBUSTNESS_IONS, resolution_tol=None)
    monkeypatch.undo()
    assert tight.converged.all()
    np.testing.assert_allclose(r.rejection, tight.rejection, rtol=0, atol=1e-12)
    # independent checks: electroneutral layer and closed flux split
    z, X = r.charges, S620["charge_density_mol_m3"]
    c = np.nan_to_num(r.c_layer[0])
    assert np.max(np.abs(z @ c + X) / (np.abs(z) @ c + abs(X))) < 1e-10
    present = np.array(S620["c"]) > 0
    np.testing.assert_allclose(r.flux_split[0, present].sum(-1), r.ion_flux[0, present], rtol=1e-8)


def test_strictly_converged_cases_are_not_loose_and_continuation_reports_its_residual(hard_8411):
    r = solve(NF, FEED, flux_m_s=FLUXES, options=TransportOptions(activity="davies"))
    assert r.converged.all() and not r.loose.any() and (r.residual <= newton_rules.STRICT_RESIDUAL).all()
    # a case solved by the flux continuation reports the residual of its final Newton solve (was 0.0)
    h = hard_8411[24]
    assert h.continuation_steps[0] > 0 and 0.0 < h.residual[0] < 1e-3 and h.loose[0] == (h.residual[0] > 1e-6)


@pytest.mark.slow
def test_loosely_converged_case_agrees_under_node_doubling():
    """~12 s: the loose answer of sample 620 differs from the 48-node one by the discretization error (~2e-9)."""
    r = _solve_case(S620, ROBUSTNESS_IONS, resolution_tol=None)
    fine = _solve_case(S620, ROBUSTNESS_IONS, nodes=48, film_nodes=32, resolution_tol=None)
    assert r.loose[0] and fine.converged.all()
    np.testing.assert_allclose(r.rejection, fine.rejection, rtol=0, atol=1e-8)


# sample 65 of benchmarks/robustness.py (seed 20240611): converges strictly (residual ~4e-9) on 24 nodes but the
# layer is under-resolved: the Nernst-Planck terms do not add up to the ion flux, and the Ca+2 rejection changes
# by O(1) under refinement (0.9999 / 0.094 / -0.048 at 24 / 64 / 96 nodes)
S65 = dict(c=[0.0, 0.0, 2.051807693674487, 0.05719180301663801, 30.52591285905625, 32.94005282296358,
              9.704029231210765, 10.286967481822956],
           flux_m_s=2.4721447137611743e-05, pore_radius_m=3.211830906569958e-10, thickness_m=7.852367023849587e-06,
           pore_dielectric=74.04625281691551, charge_density_mol_m3=-747.2163010388613,
           temperature_K=320.76633256915954)


def test_under_resolved_case_is_flagged_by_its_flux_balance():
    bad = _solve_case(S65, ROBUSTNESS_IONS)
    good = _solve_case(S620, ROBUSTNESS_IONS, resolution_tol=None)
    assert bad.converged.all() and good.converged.all()
    assert bad.flux_balance_gap[0] > 1e-2 and bad.unresolved[0] and bad.case(0).diagnostics["unresolved"]
    assert good.flux_balance_gap[0] < 1e-8 and not good.unresolved[0]


# ---------------------------------------------------------------------- the closed-form start
BRACKISH_IONS = ["Na+", "Cl-", "Mg+2", "SO4-2", "Ca+2"]


def _brackish(B: int, seed: int) -> dict:
    """B electroneutral cases spread x1/3..x3 around a brackish NF case (benchmarks/throughput.py's make_batch)."""
    rng = np.random.default_rng(seed)

    def spread(lo, hi):
        return np.exp(rng.uniform(np.log(lo), np.log(hi), B))
    na, mg, ca, so4 = 50 * spread(1 / 3, 3), 10 * spread(1 / 3, 3), 5 * spread(1 / 3, 3), 20 * spread(1 / 3, 3)
    so4 = np.minimum(so4, 0.45 * (na + 2 * mg + 2 * ca))
    c = np.column_stack([na, na + 2 * mg + 2 * ca - 2 * so4, mg, so4, ca])
    return {"c_feed": c, "flux_m_s": 1e-5 * spread(0.3, 3), "pore_radius_m": 0.5e-9 * spread(0.8, 1.5),
            "thickness_m": 1e-6 * spread(0.5, 2), "pore_dielectric": rng.uniform(30, 60, B),
            "charge_density_mol_m3": -50 * spread(0.3, 3), "temperature_K": rng.uniform(288, 308, B)}


def test_start_keeps_the_exit_value_of_a_co_ion_excluded_by_image_forces():
    """The closed-form pore profile ``c_p/K_c (1 - e) + Phi' c_p e`` keeps its exit value ``Phi' c_p`` where that is
    far below ``c_p / K_c`` (SO4-2 under image forces: ~1e-11 of it here).  With ideal activity the start then meets
    the exit partitioning rows (seed 003 eq. 9 at the permeate side) to round-off; the difference form it replaced
    rounded the exit node to 0 (started at 1e-300), those rows were off by ~600 and Newton, with ln c_p capped at 3
    per step, ran out of iterations on half of such cases."""
    opt = TransportOptions(image_forces=True, polarization="film", mass_transfer_m_s=2e-5)
    db = IonDatabase.default()
    ions = BRACKISH_IONS
    z = np.array([db.get(i).charge for i in ions], float)
    c = np.array([[20.117723080135328, 6.5809416993175205, 20.643915785114707, 29.614237646928835,
                   2.201931171405223]])
    c[0, 1] = c[0] @ np.maximum(z, 0) - 2 * c[0, 3]          # exactly electroneutral
    prm = build_parameters(ions, z, np.array([db.get(i).stokes_radius_m for i in ions]),
                           np.array([db.get(i).diffusivity_m2_s for i in ions]), c, np.array([3.39e-6]),
                           np.array([0.656e-9]), np.array([1.72e-6]), np.array([30.6]), np.array([-15.1]),
                           np.array([307.2]), opt)
    phi0 = donnan_potential(prm.z, prm.c_feed, prm.ln_phi_fixed, prm.charge)
    sys_ = DSPMDESystem(prm, 6, 6, ion_scale(prm, phi0))
    x = sys_.initial_guess(phi0, "shp")
    s = sys_.unpack(x)
    cp, c_exit = np.exp(s["v"][0]), s["c"][0, :, -1]
    assert np.min(c_exit / (cp / prm.kc[0])) < 1e-10         # the regime where the difference form cancelled
    assert np.all(c_exit > 1e-100)
    F = sys_.evaluate(x, False)
    F = F[0] if isinstance(F, tuple) else F
    assert np.max(np.abs(F[0, sys_.lay["v"]])) < 1e-12


def test_image_force_cases_converge_from_the_closed_form_start():
    """Pitzer + image forces + film around the brackish case: every case converges from the closed-form start, with
    no flux continuation (before the exit-value fix 19 of 40 such cases needed it, 42 Newton iterations per case on
    the robustness design against 21 now)."""
    opt = TransportOptions(activity="pitzer", image_forces=True, polarization="film", mass_transfer_m_s=2e-5)
    r = solve_batch(BRACKISH_IONS, options=opt, **_brackish(16, seed=3))
    assert r.converged.all() and (r.continuation_steps == 0).all()
    assert r.iterations.mean() <= 12


def test_activity_start_saves_engine_iterations_and_keeps_the_answer(monkeypatch):
    """The engine's start with the interface activity coefficients (system.ACTIVITY_PASSES, as the compiled
    kernel's): Pitzer + film, engine path, fewer Newton iterations (measured 8.0 -> 6.1 per case on 400 cases) and the
    same rejections to the residual tolerance."""
    from nanosep.transport import system
    opt = TransportOptions(activity="pitzer", polarization="film", mass_transfer_m_s=2e-5, compiled=False)
    b = _brackish(40, seed=5)
    r1 = solve_batch(BRACKISH_IONS, options=opt, **b)
    monkeypatch.setattr(system, "ACTIVITY_PASSES", 0)
    r0 = solve_batch(BRACKISH_IONS, options=opt, **b)
    assert r0.converged.all() and r1.converged.all()
    assert r1.iterations.mean() <= 0.85 * r0.iterations.mean()
    assert np.max(np.abs(r1.rejection - r0.rejection)) <= opt.tol


#: robustness.py --quick sample 790 (Davies + film; X = -642 mol/m3, 0.35 nm, 8.7 um, 4.8 L/m2/h)
S790 = {"c": [1.2873372224435933, 0.0013271458270629703, 17.97790015562478, 0.0003540975782918602,
              0.17080858648378824, 0.0, 0.5321695898460482, 9.538360151086774],
        "flux_m_s": 1.336940037530606e-06, "charge_density_mol_m3": -642.2036341391504,
        "pore_radius_m": 3.547969593666494e-10, "pore_dielectric": 52.50511180609465,
        "thickness_m": 8.715134850031949e-06, "temperature_K": 315.7155181799084}


def test_ideal_start_is_tried_before_the_continuation(monkeypatch):
    """Sample 790: from the activity-pass start Newton fails on the first coarse grid, and the flux continuation from
    there reaches a coarse solution that does not continue to the full grid.  The ideal start, tried before the
    continuation, converges: its permeate is electroneutral and the answer equal to the one from the ideal start alone
    (flagged under-resolved as that one is)."""
    from nanosep.transport import system
    kw = {k: [v] for k, v in S790.items() if k != "c"}
    r = solve_batch(ROBUSTNESS_IONS, [S790["c"]], options=DAVIES_FILM, strict=False, **kw)
    assert r.converged[0]
    present = np.array(S790["c"]) > 0
    cp = r.c_perm[0, present]
    assert abs(r.charges[present] @ cp) / (np.abs(r.charges[present]) @ cp) < 1e-10
    monkeypatch.setattr(system, "ACTIVITY_PASSES", 0)
    r0 = solve_batch(ROBUSTNESS_IONS, [S790["c"]], options=DAVIES_FILM.with_(compiled=False), strict=False, **kw)
    np.testing.assert_allclose(r.rejection[0, present], r0.rejection[0, present], rtol=0, atol=1e-10)
    assert r.unresolved[0] == r0.unresolved[0]     # flagged as before (its flux-balance gap)


def test_activity_pass_that_is_not_finite_keeps_the_last_pass():
    """robustness.py --quick --pitzer sample 208 (CaCl2 at 0.24 mol/m3, X = -310 mol/m3, 0.34 nm; absent ions carried
    at 1e-12 of the total, as solve_batch does): Pitzer's ln gamma at the first pass's interfaces gives a start that is
    not finite.  That case keeps the ideal pass (the same start bit for bit), without warnings; the others take the
    activity pass."""
    import warnings
    opt = TransportOptions(activity="pitzer", image_forces=True, polarization="film", mass_transfer_m_s=2e-5)
    db = IonDatabase.default()
    ions = ROBUSTNESS_IONS
    z = np.array([db.get(i).charge for i in ions], float)
    c = np.array([[0.0, 0.0, 0.0, 0.23905424026886235, 0.0, 0.47810848053772464, 0.0, 0.0],
                  [0.0, 0.0, 0.0, 0.23905424026886235, 0.0, 0.47810848053772464, 0.0, 0.0]])
    c = np.where(c > 0, c, 1e-12 * c.sum(axis=1, keepdims=True))
    one = lambda a, b: np.array([a, b])
    prm = build_parameters(ions, z, np.array([db.get(i).stokes_radius_m for i in ions]),
                           np.array([db.get(i).diffusivity_m2_s for i in ions]), c,
                           one(5.379389341724243e-06, 5.379389341724243e-06), one(3.3977196076884866e-10, 0.6e-9),
                           one(2.4413069544442542e-06, 1e-6), one(30.707350224256516, 40.0),
                           one(-310.4165834374726, -50.0), one(290.95831640586255, 298.15), opt)
    phi0 = donnan_potential(prm.z, prm.c_feed, prm.ln_phi_fixed, prm.charge)
    sys_ = DSPMDESystem(prm, 6, 6, ion_scale(prm, phi0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = sys_.initial_guess(phi0, "shp")
    x0 = sys_.initial_guess(phi0, "shp", activity_passes=0)
    assert np.isfinite(x).all()
    assert np.array_equal(x[0], x0[0])             # sample 208: the ideal pass kept
    assert not np.array_equal(x[1], x0[1])         # an ordinary case (0.6 nm, X = -50): the activity pass taken


def test_vanishing_pore_end_concentration_keeps_the_jacobian_finite():
    """Case 983 of benchmarks/throughput.py's Pitzer + film batch (0.41 nm, X = -132 mol/m3, 101 L/m2/h): on the way
    to its answer Newton visits a pore exit where SO4-2 is below 1e-308, where d ln c / dc = 1 / c overflowed to inf
    (a RuntimeWarning, an inf in the Jacobian).  With the derivative taken at max(c, system.TINY_C) the engine solves it
    without any warning, electroneutral, to the kernel's answer; the kernel, whose Jacobian takes the same floor
    (compiled_system), solves it itself (213 -> 207 Newton iterations with that floor)."""
    import warnings
    ions = ["Na+", "Cl-", "Mg+2", "SO4-2", "Ca+2"]
    kw = {"c_feed": np.array([[21.07663784, 32.69924117, 10.9888425, 7.46143249, 2.28389165]]),
          "flux_m_s": 2.8029984289867343e-05, "pore_radius_m": 4.0647352991211046e-10,
          "thickness_m": 1.9968996500577576e-06, "pore_dielectric": 43.431616086900384,
          "charge_density_mol_m3": -131.6366882304326, "temperature_K": 293.30113352478224}
    opt = TransportOptions(activity="pitzer", polarization="film", mass_transfer_m_s=2e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = solve_batch(ions, options=opt.with_(compiled=False), **kw)
    assert r.converged[0]
    z = np.array([1.0, -1.0, 2.0, -2.0, 2.0])
    assert abs(r.c_perm[0] @ z) <= 1e-10 * (np.abs(z) * r.c_perm[0]).sum()
    rk = solve_batch(ions, options=opt, **kw)
    assert np.max(np.abs(r.rejection - rk.rejection)) <= 1e-8
    assert rk.solver_path[0] == "compiled+refined"     # solved by the kernel, not handed over to the engine
    assert r.rejection[0, 3] > 0.999                   # SO4-2 nearly fully rejected
