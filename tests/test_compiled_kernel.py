"""The compiled (numba) Newton kernel (transport/compiled.py) against the engine on the same discrete equations.

Two implementations of one system: rejections, profiles and potentials must agree to the Newton
tolerance's reach, the answers must satisfy electroneutrality and the solute flux balance, and every case
must report the path that solved it (configurations the kernel does not cover, and kernel failures, go to
the engine).  Each configuration the kernel covers is checked on its own random batch: ideal without
polarization (plain grids), the film on mapped grids (every case mapped), Davies without and with the film,
Pitzer with the film; the kernel's activity models against transport/activity.py and transport/pitzer.py.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from nanosep.transport import TransportOptions, compiled, solve_batch  # noqa: E402

from nanosep.errors import InvalidInputError  # noqa: E402
from nanosep.ions import IonDatabase  # noqa: E402

ION_SETS = (("Na+", "Cl-"), ("Mg+2", "Cl-", "Na+"), ("K+", "NO3-", "SO4-2", "glucose"),
            ("Na+", "SO4-2", "Cl-", "Mg+2"), ("Na+", "Cl-", "Mg+2", "SO4-2", "Ca+2"))   # glucose: a neutral solute
LMH = 1.0 / 3.6e6      # 1 L m-2 h-1 in m/s
ENGINE = TransportOptions(compiled=False)
KERNEL = TransportOptions(compiled=True)
FILM = dict(polarization="film", mass_transfer_m_s=2e-5)
#: the configurations the kernel covers (TransportOptions fields), each checked against the engine
CONFIGS = {"ideal": {}, "film_mapped": dict(FILM, grid_map_peclet=1e-3), "davies": dict(activity="davies"),
           "davies_film": dict(FILM, activity="davies"), "pitzer_film": dict(FILM, activity="pitzer")}
FIELDS = ("c_perm", "c_wall", "ion_flux", "flux_split", "c_layer", "phi_layer", "donnan_feed_V", "donnan_perm_V")


def wide_batch(ions, B: int, seed: int) -> dict:
    """B electroneutral cases: feed 0.01-1000 mol/m3 per ion (log-uniform; the side with the larger
    charge is scaled down to balance), pore radius 0.4-2 nm, X -1000..+500 mol/m3, flux 0.1-200 L/m2/h."""
    rng = np.random.default_rng(seed)
    db = IonDatabase.default()
    z = np.array([db.get(i).charge for i in ions], float)
    c = 10.0 ** rng.uniform(-2, 3, (B, len(ions)))
    qp, qn = c @ np.maximum(z, 0), c @ np.maximum(-z, 0)
    c = np.where((z > 0) & (qp > qn)[:, None], c * (qn / qp)[:, None], c)
    c = np.where((z < 0) & (qn > qp)[:, None], c * (qp / qn)[:, None], c)
    logu = lambda lo, hi: np.exp(rng.uniform(np.log(lo), np.log(hi), B))  # noqa: E731
    return dict(c_feed=c, flux_m_s=logu(0.1, 200) * LMH, pore_radius_m=rng.uniform(0.4e-9, 2e-9, B),
                thickness_m=logu(0.3e-6, 3e-6), pore_dielectric=rng.uniform(30, 80, B),
                charge_density_mol_m3=rng.uniform(-1000, 500, B), temperature_K=rng.uniform(283, 313, B))


@pytest.fixture(scope="module", params=list(CONFIGS))
def pairs(request):
    """(ions, batch, engine result, kernel result) for 5 ion sets x 50 cases of one configuration."""
    cfg = CONFIGS[request.param]
    out = []
    for k, ions in enumerate(ION_SETS):
        b = wide_batch(ions, 50, seed=k)
        out.append((ions, b, solve_batch(ions, options=ENGINE.with_(**cfg), **b),
                    solve_batch(ions, options=KERNEL.with_(**cfg), **b)))
    return out


def test_kernel_solves_the_eligible_batch(pairs):
    paths = np.concatenate([rk.solver_path for *_, rk in pairs])
    assert np.isin(paths, ("compiled", "compiled+refined", "compiled->engine")).all()
    assert np.mean(paths == "compiled") > 0.95
    assert all((re.solver_path == "engine").all() for *_, re, _ in pairs)
    assert all(rk.converged.all() and re.converged.all() for *_, re, rk in pairs)


def test_rejections_and_profiles_agree_with_engine(pairs):
    for ions, _, re, rk in pairs:
        assert np.max(np.abs(rk.rejection - re.rejection)) <= 1e-9, ions
        assert np.max(np.abs(rk.phi_layer - re.phi_layer)) <= 1e-8, ions
        rel = np.abs(rk.c_layer - re.c_layer) / np.max(np.abs(re.c_layer), axis=2, keepdims=True)
        assert np.max(rel) <= 1e-8, ions
        assert np.array_equal(rk.nodes_used, re.nodes_used)


def test_same_result_fields(pairs):
    for *_, re, rk in pairs:
        for name in re.__dataclass_fields__:
            a, b = getattr(re, name), getattr(rk, name)
            assert (a is None) == (b is None), name
            if isinstance(a, np.ndarray):
                assert a.shape == b.shape and a.dtype.kind == b.dtype.kind, name
            elif isinstance(a, dict):
                assert a.keys() == b.keys(), name
        # converged: below tol = 1e-11, or accepted by the engine's precision-limit rule (Newton correction at
        # round-off, residual < 1e-3), whose final residual is round-off dominated and chaotic: for one such case of
        # this batch (4 ions, X = -767 mol/m3, 150 L/m2/h) the engine ends at 4.4e-8 or 2.7e-10 for fluxes 1e-12
        # apart, the kernel at 3e-6 or 4e-8 for inputs an ulp apart, the rejections equal to 1.4e-11 either way
        # (test_rejections_and_profiles_agree_with_engine bounds every answer); few cases may end there
        assert rk.residual.max() < 1e-3 and np.mean(rk.residual < 1e-6) >= 0.97


def test_electroneutrality(pairs):
    """Permeate and every pore node electroneutral to 1e-10 of the feed's charge scale sum |z| c_b + |X|."""
    for ions, b, _, rk in pairs:
        z = rk.charges
        scale = rk.c_feed @ np.abs(z) + np.abs(b["charge_density_mol_m3"])
        assert np.max(np.abs(rk.c_perm @ z) / scale) <= 1e-10, ions
        pore = np.einsum("i,bik->bk", z, rk.c_layer) + b["charge_density_mol_m3"][:, None]
        assert np.max(np.abs(pore) / scale[:, None]) <= 1e-10, ions
        if rk.c_film is not None:
            film = np.einsum("i,bik->bk", z, rk.c_film)
            assert np.max(np.abs(film) / scale[:, None]) <= 1e-10, ions


def test_solute_mass_balance(pairs):
    """Layer-averaged diffusion + convection + migration equals J_v c_p for every ion (flux_balance_gap),
    and the ion fluxes are J_v c_p."""
    for ions, _, _, rk in pairs:
        assert np.nanmax(rk.flux_balance_gap) < 1e-7, ions
        assert np.allclose(rk.ion_flux, rk.flux_m_s[:, None] * rk.c_perm, rtol=1e-14, atol=0)


@pytest.mark.parametrize("opts, extra", [
    (TransportOptions(compiled=True, polarization="linear", mass_transfer_m_s=2e-5), {}),
    (TransportOptions(compiled=True, image_forces=True), {}),
    (TransportOptions(compiled=True), {"pressure": True}),
    (TransportOptions(compiled=False, **FILM), {}),
])
def test_ineligible_configurations_use_the_engine(opts, extra):
    ions = ("Na+", "Cl-", "Mg+2")
    b = wide_batch(ions, 3, seed=7)
    if extra.get("pressure"):
        b.pop("flux_m_s")
        b["pressure_pa"] = np.array([5e5, 8e5, 1e6])
    res = solve_batch(ions, options=opts, **b)
    assert (res.solver_path == "engine").all()
    assert res.case(0).diagnostics["solver_path"] == "engine"


def test_kernel_failures_fall_back_to_the_engine(monkeypatch):
    """With no Newton iterations allowed the kernel fails every case: all are flagged and solved by the engine."""
    ions = ION_SETS[-1]
    b = wide_batch(ions, 12, seed=3)
    ref = solve_batch(ions, options=ENGINE, **b)
    monkeypatch.setattr(compiled, "KERNEL_MAX_ITER", 0)
    res = solve_batch(ions, options=KERNEL, **b)
    assert (res.solver_path == "compiled->engine").all()
    assert res.converged.all()
    assert np.max(np.abs(res.rejection - ref.rejection)) <= 1e-14


def test_unresolved_cases_are_refined_like_the_engine_does():
    """A resolution tolerance no 24-interval solution meets: every kernel answer is refined on doubled grids
    (by the kernel, the engine only for cases it fails), to the same node count and answers as the engine."""
    ions = ION_SETS[1]
    b = wide_batch(ions, 6, seed=11)
    opt = dict(resolution_tol=1e-17, max_nodes=48)
    ref = solve_batch(ions, options=ENGINE.with_(**opt), **b)
    res = solve_batch(ions, options=KERNEL.with_(**opt), **b)
    assert (res.solver_path == "compiled+refined").all()
    assert (res.nodes_used == 48).all() and np.array_equal(res.nodes_used, ref.nodes_used)
    assert np.max(np.abs(res.rejection - ref.rejection)) <= 1e-9


def test_parallel_kernel_equals_serial():
    """workers=2 on one chunk runs the prange kernel: per-case arithmetic identical to the serial one."""
    ions = ION_SETS[3]
    b = wide_batch(ions, 40, seed=5)
    one = solve_batch(ions, options=KERNEL, **b)
    two = solve_batch(ions, options=KERNEL, workers=2, chunk_size=10_000, **b)
    assert np.array_equal(one.c_perm, two.c_perm) and np.array_equal(one.solver_path, two.solver_path)


def test_option_validation_and_missing_numba(monkeypatch):
    with pytest.raises(InvalidInputError, match="compiled='yes'"):
        TransportOptions(compiled="yes")
    monkeypatch.setattr(compiled, "HAVE_NUMBA", False)
    b = wide_batch(ION_SETS[0], 2, seed=1)
    with pytest.raises(InvalidInputError, match="numba"):
        solve_batch(ION_SETS[0], options=KERNEL, **b)
    res = solve_batch(ION_SETS[0], options=TransportOptions(compiled="auto"), **b)
    assert (res.solver_path == "engine").all()



def test_davies_kernel_equals_activity_model():
    """The kernel's Davies ln gamma and Jacobian against activity.DaviesActivity (complex-step Jacobian) on
    random mixtures, including a neutral solute and near-zero concentrations."""
    from nanosep.transport.activity import DaviesActivity
    from nanosep.transport.compiled_activity import DAVIES, ln_gamma

    rng = np.random.default_rng(4)
    z = np.array([1.0, -1.0, 2.0, -2.0, 0.0, 3.0])
    for T in (283.15, 298.15, 318.15):
        model = DaviesActivity(["a", "b", "c", "d", "e", "f"], z.astype(int).tolist(), T)
        ap = np.array([model.A_gamma, model.rho_w])
        for _ in range(20):
            c = 10.0 ** rng.uniform(-6, 3.5, z.size)
            ref, dref = model.ln_gamma_and_jacobian(c)
            lg, dlg = np.empty(z.size), np.empty((z.size, z.size))
            ln_gamma(DAVIES, ap, z, c, lg, dlg, True)
            assert np.max(np.abs(lg - ref)) <= 1e-13
            assert np.max(np.abs(dlg - dref)) <= 1e-12 * np.max(np.abs(dref))


def test_doctor_reports_the_kernel():
    from nanosep import doctor

    r = doctor.check_numba()
    assert r.status == "ok", r.detail
    assert r.value <= 1e-9
    assert doctor.check_numba in doctor.CHECKS


@pytest.mark.parametrize("T", [283.15, 298.15, np.array([288.0, 310.0, 298.15])])
def test_pitzer_kernel_equals_pitzer_model(T):
    """The kernel's Pitzer ln gamma and Jacobian (compiled_activity) against PitzerActivity's analytic path on
    random mixtures of 8 species (cation-anion pairs with and without beta2, like pairs with E-theta, psi
    triplets, a neutral solute), one and per-case temperatures, to 1e-12."""
    from nanosep.transport.activity import make_activity_model
    from nanosep.transport.compiled_activity import PITZER, ln_gamma, pitzer_record

    ions = ["Na+", "Cl-", "Mg+2", "SO4-2", "Ca+2", "K+", "HCO3-", "glucose"]
    z = np.array([1, -1, 2, -2, 2, 1, -1, 0])
    model = make_activity_model("pitzer", ions, z.tolist(), T=T)
    rec = pitzer_record(model)
    t = model._tables
    assert len(t.ca) and len(t.like) and len(t.psi) and any(t.beta2) and not all(t.beta2)
    rng = np.random.default_rng(8)
    for _ in range(25):
        c = 10.0 ** rng.uniform(-5, 3.5, (rec.shape[0], z.size))
        ref, dref = model.ln_gamma_and_jacobian(c)
        for b in range(rec.shape[0]):
            lg, dlg = np.empty(z.size), np.empty((z.size, z.size))
            ln_gamma(PITZER, rec[b], z.astype(float), c[b], lg, dlg, True)
            assert np.max(np.abs(lg - ref[b])) <= 1e-12
            assert np.max(np.abs(dlg - dref[b])) <= 1e-12 * np.max(np.abs(dref[b]))


@pytest.mark.parametrize("cfg, sets", [("ideal", (2, 4)), ("pitzer_film", (2,))])   # (the engine is slow on
def test_sterically_excluded_ions_agree_with_engine(cfg, sets):                      # the 5-ion Pitzer ones)
    """Pores of 0.25-0.4 nm exclude Mg+2, Ca+2 or glucose in many cases: the kernel carries them as the engine
    does (no pore concentration, permeate 1e-30 of the feed) and agrees with it."""
    for k in sets:
        ions = ION_SETS[k]
        b = wide_batch(ions, 30, seed=20 + k)
        b["pore_radius_m"] = np.random.default_rng(k).uniform(0.25e-9, 0.4e-9, 30)
        re = solve_batch(ions, options=ENGINE.with_(**CONFIGS[cfg]), **b)
        rk = solve_batch(ions, options=KERNEL.with_(**CONFIGS[cfg]), **b)
        excluded = (rk.rejection == 1.0).any(axis=1)
        assert excluded.sum() >= 10
        assert np.isin(rk.solver_path[excluded], ("compiled", "compiled+refined")).mean() > 0.9
        both = re.converged & rk.converged     # the engine itself fails a rare one of these extreme cases
        assert both.mean() > 0.9 and np.array_equal(re.converged, rk.converged)
        assert np.max(np.abs(rk.rejection - re.rejection)[both]) <= 1e-9
        assert np.max((np.abs(rk.c_perm @ rk.charges) / (rk.c_feed @ np.abs(rk.charges)))[both]) <= 1e-10


def test_border_lu_solves_like_numpy():
    """The border's LAPACK factorization (compiled._getrf / _getrs: getrf of the row-major matrix, i.e. of its
    transpose, solved as x = P L^-T U^-T b) against numpy.linalg.solve on random matrices of the kernel's border
    sizes, one needing row interchanges at every step; a singular matrix is refused."""
    from nanosep.transport.compiled_system import F_INT_nptype, _getrf, _getrs

    rng = np.random.default_rng(5)
    for m in (3, 13, 23, 53, 70):
        A = rng.standard_normal((m, m))
        A[np.arange(m), np.arange(m)] *= 1e-3                 # small diagonal: pivoting is needed
        b = rng.standard_normal(m)
        F, piv, x = A.copy(), np.empty(m, F_INT_nptype), b.copy()
        assert _getrf(F, piv)
        _getrs(F, piv, x)
        ref = np.linalg.solve(A, b)
        assert np.max(np.abs(x - ref)) <= 1e-15 * np.linalg.cond(A) * np.max(np.abs(ref))
        assert np.max(np.abs(A @ x - b)) <= 1e-14 * m * np.max(np.abs(A)) * np.max(np.abs(x))
    Z = np.zeros((4, 4))
    assert not _getrf(Z, np.empty(4, F_INT_nptype))
