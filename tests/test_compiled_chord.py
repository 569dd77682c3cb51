"""The compiled kernel's chord Newton and nopython starting guess (transport/compiled*.py).

The kernel keeps the Jacobian's factors across Newton iterations while the steps contract (chord steps) and builds
the engine's closed-form start itself (film profile floored).  Neither may change an answer: each is checked
against an independent solve -- the engine (compiled=False), the same kernel with plain Newton (a factorization
every iteration, from the engine's own start) -- across ideal / Davies / Pitzer activity without and with the
film, including cases that need the flux continuation, and on the wide random spread of test_compiled_kernel.py
(rejections to 1e-12 of the plain kernel); and the iteration and factorization counts the kernel reports must be
consistent with the algorithm (plain Newton: one factorization per iteration; chord: fewer).
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from nanosep.transport import (
    TransportOptions,
    chebyshev,
    compiled,
    solve_batch,
    solver,
    system,
)
from nanosep.transport.compiled_activity import activity_parameters
from nanosep.transport.compiled_guess import guess_parameters, shp_guess
from nanosep.transport.newton import STRICT_RESIDUAL
from nanosep.transport.system import ACTIVITY_PASSES, FILM_FLOOR, DSPMDESystem
from test_compiled_kernel import ION_SETS, wide_batch

from nanosep.ions import IonDatabase

FILM = {"polarization": "film", "mass_transfer_m_s": 2e-5}
CONFIGS = {f"{act}_{pol}": dict(activity=act, **(FILM if pol == "film" else {}))
           for act in ("ideal", "davies", "pitzer") for pol in ("none", "film")}
#: the 3-ion and 5-ion sets (a 2:1 electrolyte mixture; the issue-2 throughput ions)
SETS = (ION_SETS[1], ION_SETS[4])


@pytest.fixture(autouse=True)
def grid_sequence_only(monkeypatch):
    """These tests are about the grid sequence (chord steps, coarse tolerances, the start's passes): the kernel's
    shooting start, which solves most cases before it (tests/test_compiled_shooting.py), is off unless a test
    turns it on."""
    monkeypatch.setattr(compiled, "SHOOTING", False)


def high_flux(ions, B: int, seed: int) -> dict:
    """A wide batch (tests/test_compiled_kernel.py) pushed to 50-400 L/m2/h: many cases need the continuation."""
    b = wide_batch(ions, B, seed)
    b["flux_m_s"] = np.exp(np.random.default_rng(seed).uniform(np.log(50), np.log(400), B)) / 3.6e6
    return b


def kernel_inputs(ions, b: dict, options: TransportOptions):
    """(prm, phi0, scale, grids, film grids) of a batch, as the engine's kernel path prepares them."""
    db = IonDatabase.default()
    z = np.array([db.get(i).charge for i in ions], float)
    prm = solver.build_parameters(ions, z, np.array([db.get(i).stokes_radius_m for i in ions]),
                                  np.array([db.get(i).diffusivity_m2_s for i in ions]), b["c_feed"], b["flux_m_s"],
                                  b["pore_radius_m"], b["thickness_m"], b["pore_dielectric"],
                                  b["charge_density_mol_m3"], b["temperature_K"], options)
    phi0, scale = solver.feed_equilibrium(prm)
    both = solver.coarse_grids(options) + [(options.nodes, options.film_nodes)]
    film = [f for _, f in both] if options.polarization == "film" else None
    return prm, phi0, scale, [g for g, _ in both], film


@pytest.fixture(scope="module", params=list(CONFIGS))
def agreement(request):
    """Engine and kernel results (solve_batch) of 2 ion sets x (20 wide + 20 high-flux cases) of one config: the
    kernel with its shooting start (the default) and without it (the grid sequence alone, which is where the
    kernel's flux continuation runs)."""
    opt = TransportOptions(**CONFIGS[request.param])
    out = []
    for k, ions in enumerate(SETS):
        b = {key: np.concatenate([wide_batch(ions, 20, seed=40 + k)[key], high_flux(ions, 20, seed=50 + k)[key]])
             for key in wide_batch(ions, 1, 0)}
        re = solve_batch(ions, options=opt.with_(compiled=False), **b)
        for shooting in (True, False):
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(compiled, "SHOOTING", shooting)
                out.append((ions, re, solve_batch(ions, options=opt.with_(compiled=True), **b)))
    return request.param, out


def test_kernel_rejections_equal_engine(agreement):
    name, out = agreement
    n_cont = 0
    for ions, re, rk in out:
        both = re.converged & rk.converged
        assert both.mean() >= 0.95, (name, ions)
        # strictly converged in both: 1e-10; a case one of them accepts by the precision-limit rule (BatchResult.loose,
        # its answer as good as its error estimate, 1e-6 of each unknown): 1e-8, as in the chord test below
        strict = both & ~re.loose & ~rk.loose
        assert np.max(np.abs(rk.rejection - re.rejection)[strict]) <= 1e-10, (name, ions)
        assert np.max(np.abs(rk.rejection - re.rejection)[both & ~strict], initial=0.0) <= 1e-8, (name, ions)
        kern = both & np.char.startswith(rk.solver_path.astype(str), "compiled") & (rk.solver_path != "compiled->engine")
        assert kern.mean() >= 0.9, (name, ions)
        n_cont += int(np.sum(kern & (rk.continuation_steps > 0)))
    assert n_cont >= 1, name          # the continuation path of the kernel is exercised in every configuration


@pytest.mark.parametrize("name", ["ideal_none", "davies_film", "pitzer_film"])
def test_chord_equals_plain_newton_and_factors_less(name):
    """Chord Newton + loose coarse grids + the kernel's start against plain Newton on every grid to the final
    tolerance from the engine's start: the same answers (<= 1e-12), and the reported counts consistent."""
    opt = TransportOptions(**CONFIGS[name])
    ions = SETS[1]
    b = {key: np.concatenate([wide_batch(ions, 30, seed=60)[key], high_flux(ions, 10, seed=61)[key]])
         for key in wide_batch(ions, 1, 0)}
    prm, phi0, scale, grids, film = kernel_inputs(ions, b, opt)
    x0 = DSPMDESystem(prm, grids[0], film[0] if film else opt.film_nodes, scale).initial_guess(phi0, "shp")
    B, G = prm.batch, len(grids)
    c_plain, c_chord = np.zeros((B, G, 4), np.int64), np.zeros((B, G, 4), np.int64)
    xp, sp, ip, rp, steps_p = compiled.solve_cases(prm, scale, phi0, x0, grids, opt.tol, None, 1, film, chord=0.0,
                                            coarse_tol=opt.tol, film_floor=0.0, counts=c_plain)
    xc, sc, ic, rc, steps_c = compiled.solve_cases(prm, scale, phi0, None, grids, opt.tol, None, 1, film, counts=c_chord)
    ok = (sp == compiled.OK) & (sc == compiled.OK)
    assert ok.mean() >= 0.9
    n = len(ions)
    # cases converged strictly in both solves (final residual <= STRICT_RESIDUAL; the others stop on the engine's
    # precision-limit rule, whose answers are as good as its error estimate, 1e-6 of each unknown):
    # ln c_p and phi_p (the engine layout's last n + 1 unknowns) absolute, concentrations relative to each profile
    strict = ok & (rp <= STRICT_RESIDUAL) & (rc <= STRICT_RESIDUAL)
    assert strict.mean() >= 0.8
    assert np.max(np.abs(xc[strict, -(n + 1):] - xp[strict, -(n + 1):])) <= 1e-12
    c = slice(0, -(n + 1))
    scale_x = np.maximum(np.abs(xp[strict, c]).max(axis=1, keepdims=True), 1e-300)
    assert np.max(np.abs(xc[strict, c] - xp[strict, c]) / scale_x) <= 1e-10
    loose = ok & ~strict
    cp = lambda x: np.exp(x[loose, -(n + 1):-1]) / prm.c_feed[loose]
    assert np.max(np.abs(cp(xc) - cp(xp)), initial=0.0) <= 1e-8       # rejections of the loose ones
    # the counts: plain Newton factors once per iteration (and once more where a Newton solve -- the first attempt
    # or a continuation step -- stops at a fresh factorization); chord at most that, and in total fewer
    solves = G + steps_p
    fp, fc = c_plain[..., 1].sum(axis=1), c_chord[..., 1].sum(axis=1)
    assert np.all(c_plain[..., 1] >= c_plain[..., 0]) and np.all(fp <= ip + solves)
    assert np.all(ip == c_plain[..., 0].sum(axis=1)) and np.all(ic == c_chord[..., 0].sum(axis=1))
    assert np.all(fc <= ic + G + steps_c)
    assert np.all(c_chord[ok, -1, 1] >= 1 * (c_chord[ok, -1, 0] > 0))      # a Newton step needs one factorization
    assert fc[ok].sum() < fp[ok].sum()
    # residual evaluations and corrections (columns 2, 3).  Plain Newton, where no continuation ran (one Newton
    # solve per grid): each factorization is followed by exactly one correction dx, each trial point by one
    # residual and, where that residual is finite, one simplified correction; so corrections - factorizations =
    # finite trials <= trials = residuals - 1 (the start's), with equality where every trial was finite (a damped
    # trial from a far start can leave the domain: ~5 % of the first grid's solves here, ~1 % of the later grids')
    one = ok & (steps_p == 0)
    its_p, fac_p, res_p, cor_p = (c_plain[one, :, k] for k in range(4))
    assert np.all(res_p >= np.maximum(its_p, 1)) and np.all(cor_p - fac_p <= res_p - 1)
    exact = cor_p - fac_p == res_p - 1
    assert exact.mean() >= 0.85 and exact[:, 1:].mean() >= 0.95
    assert np.all((cor_p - fac_p >= its_p - 1) & (cor_p >= 2 * its_p - 1))   # >= 1 trial per iteration but a last
    # chord: every factorization is followed by a correction; a chord step's correction is the last simplified one
    assert np.all(c_chord[ok, :, 3] >= c_chord[ok, :, 1]) and np.all(c_chord[ok, :, 2] >= 1)
    # the two extra columns change nothing: a 2-column run gives the same answers and the same first columns
    c2 = np.zeros((B, G, 2), np.int64)
    x2, *_ = compiled.solve_cases(prm, scale, phi0, None, grids, opt.tol, None, 1, film, counts=c2)
    assert np.array_equal(c2, c_chord[..., :2]) and np.array_equal(x2, xc, equal_nan=True)
    # the coarsest grid, where most iterations are (median: a rare hard case may take another path)
    assert np.median(c_chord[ok, 0, 1]) <= 0.85 * np.median(c_plain[ok, 0, 1])
    assert c_chord[ok, -1, 1].mean() <= 1.5                                 # the 24-interval grid: ~1 per case


@pytest.mark.parametrize("name, passes", [("ideal_none", None), ("pitzer_film", 0), ("pitzer_film", None),
                                          ("davies_film", None)])
def test_kernel_start_equals_engine_initial_guess(name, passes):
    """shp_guess (nopython, per case) against DSPMDESystem.initial_guess(phi0, "shp"), mapped grids and excluded
    ions included: equal to it with the film floor (the engine's, system.FILM_FLOOR); without, the unfloored profile;
    with the interface activity pass (system.ACTIVITY_PASSES, passes=None) and without it (0)."""
    opt = TransportOptions(**CONFIGS[name], grid_map_peclet=1e-3)
    for k, ions in enumerate(ION_SETS):
        b = wide_batch(ions, 40, seed=70 + k)
        b["pore_radius_m"][:10] = 0.3e-9                    # excluded ions (Mg+2, SO4-2, Ca+2, glucose)
        prm, phi0, scale, grids, film = kernel_inputs(ions, b, opt)
        Nf = film[0] if film else opt.film_nodes
        sys_ = DSPMDESystem(prm, grids[0], Nf, scale)
        ref = sys_.initial_guess(phi0, "shp", activity_passes=passes)
        akind, ap = activity_parameters(prm)
        act = ACTIVITY_PASSES if passes is None else passes
        n, M, Mf = len(ions), grids[0] + 1, (Nf + 1) if film else 0
        ion, pot = compiled._index_maps(n, M, Mf)
        y = chebyshev.nodes(Nf) if film else np.zeros(0)
        gp = guess_parameters(prm)
        exc = prm.excluded if prm.excluded is not None else np.zeros(prm.c_feed.shape, bool)
        for floor in (0.0, FILM_FLOOR):
            x = np.zeros_like(ref)
            for i in range(prm.batch):
                shp_guess(x[i], prm.z, prm.c_feed[i], prm.ln_phi_fixed[i], float(prm.charge[i]), exc[i], gp[i],
                          float(phi0[i]), sys_.x_nodes[i], y, ion, pot, floor, akind, ap[i], act)
            uf = np.zeros(x.shape[1], bool)
            uf[ion[:, :Mf].ravel()] = True
            rest = ~uf if not floor else np.ones(x.shape[1], bool)    # the engine's start has the floor
            rel = np.abs(x[:, rest] - ref[:, rest]) / np.maximum(np.abs(ref[:, rest]), 1e-300)
            assert np.max(rel) <= 1e-8, (name, ions, floor)
            if film:
                cf, cref = x[:, ion[:, :Mf]], ref[:, ion[:, :Mf]]    # (B, n, Mf)
                lim = FILM_FLOOR * prm.c_feed[:, :, None]
                assert np.all(cref >= lim * (1 - 1e-15))
                if not floor:   # the unfloored profile: the engine's wherever that is above the floor
                    above = cf > lim
                    assert np.allclose(cf[above], cref[above], rtol=1e-8, atol=0) and np.all(cf <= cref * (1 + 1e-8))


def sample_208_inputs():
    """robustness.py --quick --pitzer sample 208 without image forces (a kernel case; CaCl2 at 0.24 mol/m3, X = -310
    mol/m3, 0.34 nm, absent ions at 1e-12 of the total as solve_batch carries them), beside an ordinary case."""
    ions = ["Na+", "K+", "Li+", "Ca+2", "Mg+2", "Cl-", "NO3-", "SO4-2"]
    c = np.zeros((2, 8))
    c[:, 3], c[:, 5] = 0.23905424026886235, 0.47810848053772464
    c = np.where(c > 0, c, 1e-12 * c.sum(axis=1, keepdims=True))
    two = lambda a, b: np.array([a, b])
    b = {"c_feed": c, "flux_m_s": two(5.379389341724243e-06, 5.379389341724243e-06),
         "pore_radius_m": two(3.3977196076884866e-10, 0.6e-9), "thickness_m": two(2.4413069544442542e-06, 1e-6),
         "pore_dielectric": two(30.707350224256516, 40.0), "charge_density_mol_m3": two(-310.4165834374726, -50.0),
         "temperature_K": two(290.95831640586255, 298.15)}
    return ions, b


def test_kernel_start_keeps_the_last_pass_when_the_activity_pass_is_not_finite():
    """Sample 208 (no image forces): Pitzer's ln gamma at the first pass's interfaces gives a pass that is not finite.
    The kernel's start keeps the ideal pass, as the engine's does, and equals the engine's start; the ordinary case
    takes the activity pass in both.  Without the guard the kernel's start of case 0 is not finite."""
    import warnings
    opt = TransportOptions(activity="pitzer", **FILM)
    ions, b = sample_208_inputs()
    prm, phi0, scale, grids, film = kernel_inputs(ions, b, opt)
    sys_ = DSPMDESystem(prm, grids[0], film[0], scale)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref = sys_.initial_guess(phi0, "shp")
    ideal = sys_.initial_guess(phi0, "shp", activity_passes=0)
    assert np.array_equal(ref[0], ideal[0]) and not np.array_equal(ref[1], ideal[1])
    akind, ap = activity_parameters(prm)
    ion, pot = compiled._index_maps(len(ions), grids[0] + 1, film[0] + 1)
    gp = guess_parameters(prm)
    exc = prm.excluded if prm.excluded is not None else np.zeros(prm.c_feed.shape, bool)   # SO4-2 at 0.34 nm
    x = np.zeros_like(ref)
    for i in range(2):
        shp_guess(x[i], prm.z, prm.c_feed[i], prm.ln_phi_fixed[i], float(prm.charge[i]), exc[i], gp[i],
                  float(phi0[i]), sys_.x_nodes[i], chebyshev.nodes(film[0]), ion, pot, FILM_FLOOR, akind, ap[i], 1)
    assert np.isfinite(x).all()
    rel = np.abs(x - ref) / np.maximum(np.abs(ref), 1e-300)
    assert np.max(rel) <= 1e-12


def test_kernel_reads_the_start_settings_at_call_time(monkeypatch):
    """system.ACTIVITY_PASSES and system.FILM_FLOOR set at run time change the kernel as they change the engine: the
    kernel's counts and answers then equal those of the explicit arguments, and differ from the defaults'."""
    opt = TransportOptions(**CONFIGS["pitzer_film"])
    ions = ION_SETS[4]
    prm, phi0, scale, grids, film = kernel_inputs(ions, wide_batch(ions, 30, seed=211), opt)

    def run(**kw):
        counts = np.zeros((prm.batch, len(grids), 2), np.int64)
        x, st, *_ = compiled.solve_cases(prm, scale, phi0, None, grids, opt.tol, None, 1, film, counts=counts, **kw)
        return x, st, counts

    _, _, c_def = run()
    x_arg, _, c_arg = run(activity_passes=0, film_floor=0.5)
    monkeypatch.setattr(system, "ACTIVITY_PASSES", 0)
    monkeypatch.setattr(system, "FILM_FLOOR", 0.5)
    x_set, _, c_set = run()
    assert np.array_equal(c_set, c_arg) and np.array_equal(x_set, x_arg, equal_nan=True)
    assert not np.array_equal(c_set, c_def)


@pytest.mark.parametrize("name, k", [("ideal_none", 3), ("ideal_none", 1), ("pitzer_film", 3)])
def test_kernel_defaults_equal_plain_newton_on_the_wide_spread(name, k):
    """The kernel's defaults against plain Newton from the engine's start (every grid to ``tol``) on 150 cases of the
    wide random spread: with every grid to ``tol`` as well, chord steps and the kernel's start change rejections by
    <= 1e-12; with the looser coarse-grid tolerance (compiled.COARSE_TOL, measured up to 2.7e-12) by <= tol = 1e-11,
    what two solves that both meet the residual tolerance may differ by."""
    opt = TransportOptions(**CONFIGS[name])
    ions = ION_SETS[k]
    prm, phi0, scale, grids, film = kernel_inputs(ions, wide_batch(ions, 150, seed=100 + k), opt)
    x0 = DSPMDESystem(prm, grids[0], film[0] if film else opt.film_nodes, scale).initial_guess(phi0, "shp")
    xp, sp, *_ = compiled.solve_cases(prm, scale, phi0, x0, grids, opt.tol, None, 1, film, chord=0.0,
                                      film_floor=0.0, coarse_tol=opt.tol)
    n = len(ions)
    for coarse_tol, bound in ((opt.tol, 1e-12), (None, opt.tol)):
        xk, sk, *_ = compiled.solve_cases(prm, scale, phi0, None, grids, opt.tol, None, 1, film, coarse_tol=coarse_tol)
        ok = (sp == compiled.OK) & (sk == compiled.OK)
        assert ok.mean() >= 0.95
        dR = np.abs(np.exp(xk[ok, -(n + 1):-1]) - np.exp(xp[ok, -(n + 1):-1])) / prm.c_feed[ok]
        assert np.max(dR) <= bound, coarse_tol


@pytest.mark.parametrize("name", ["ideal_film", "pitzer_film"])
def test_activity_start_cuts_coarse_factorizations_and_keeps_the_answer(name):
    """The start with the interface activity coefficients (system.ACTIVITY_PASSES): for Pitzer, fewer
    factorizations on the first grid (the engine's ideal start leaves the entry/exit rows off by ~ln(g_w / g_0)) and
    the same answer to tol; for ideal activity the pass does nothing (bit-identical solutions and counts)."""
    opt = TransportOptions(**CONFIGS[name])
    ions = ION_SETS[4]
    prm, phi0, scale, grids, film = kernel_inputs(ions, wide_batch(ions, 150, seed=400), opt)
    runs = {}
    for passes in (0, 1):
        counts = np.zeros((prm.batch, len(grids), 2), np.int64)
        runs[passes] = compiled.solve_cases(prm, scale, phi0, None, grids, opt.tol, None, 1, film, counts=counts,
                                            activity_passes=passes), counts
    (x0, s0, *_), c0 = runs[0]
    (x1, s1, *_), c1 = runs[1]
    ok = (s0 == compiled.OK) & (s1 == compiled.OK)
    assert ok.mean() >= 0.95
    n = len(ions)
    if name == "ideal_film":
        assert np.array_equal(x0, x1, equal_nan=True) and np.array_equal(c0, c1)
        return
    dR = np.abs(np.exp(x1[ok, -(n + 1):-1]) - np.exp(x0[ok, -(n + 1):-1])) / prm.c_feed[ok]
    assert np.max(dR) <= opt.tol
    assert c1[ok, 0, 1].mean() <= 0.8 * c0[ok, 0, 1].mean()


def test_start_root_searches_find_the_bisection_roots():
    """The start's safeguarded Newton searches (compiled_guess.donnan_phi, _exit_jump) against the engine's bisection
    (partitioning.donnan_potential) and the root's defining equation: random 2-6 ion solutions with z in
    {+-1, +-2, +-3}, c over 8 decades, X -1000..+500 mol/m3, ln Phi -12..0; roots beyond [-60, 60] end at the
    bracket's edge as the bisection's do."""
    from nanosep.transport.compiled_guess import _exit_jump, donnan_phi
    from nanosep.transport.partitioning import donnan_potential

    rng = np.random.default_rng(11)
    zs = np.array([1.0, -1.0, 2.0, -2.0, 3.0, -3.0])
    for k in range(400):
        n = rng.integers(2, 7)
        z = zs[:n].copy()
        c = 10 ** rng.uniform(-4, 4, n)
        ln_phi = rng.uniform(-12, 0, n)
        X = -1000.0 + 1500.0 * rng.random() if k % 50 else (1e9 if k % 100 else -1e9)   # and two outside roots
        ref = donnan_potential(z, c[None], ln_phi[None], np.array([X]))[0]
        phi = donnan_phi(z, c, ln_phi, X)
        assert abs(phi - ref) <= 1e-12 * max(1.0, abs(ref)), (k, phi, ref)
        # the exit jump: sum_i z_i cp_i(delta) = 0 at the returned delta (or the bracket's edge)
        kc, ex = rng.uniform(0.5, 1.5, n), np.exp(-rng.uniform(0, 5, n))
        c0 = c * np.exp(ln_phi - z * phi)
        cp, kphi = np.empty(n), np.empty(n)
        d = _exit_jump(z, c0, ln_phi, kc, ex, phi, cp, kphi)
        assert phi - 6.0 <= d <= phi + 6.0

        def ncharge(delta):
            kp = np.exp(ln_phi - z * delta)
            cpd = kc * c0 / np.maximum(1.0 - (1.0 - kc * kp) * ex, 1e-300)
            return np.sum(z * cpd) / np.sum(np.abs(z) * cpd)

        if min(d - (phi - 6.0), phi + 6.0 - d) > 1e-9:
            assert abs(ncharge(d)) <= 1e-12, (k, d)
        else:                                          # no root inside: the edge where the charge is closest to 0
            assert np.sign(ncharge(phi - 6.0)) == np.sign(ncharge(phi + 6.0))


def test_film_kept_on_the_first_coarse_grid_skips_the_full_grid_newton():
    """solver.coarse_grids keeps the film's intervals on the first coarse grid: a resolved 12-interval solution then
    meets the 24-interval grid's convergence test as interpolated (no Newton step, no factorization there).  On a
    brackish 5-ion Pitzer + film spread (the throughput benchmark's kind of batch) most cases do, far more than with
    the film halved with the layer, and the answers are the same to the residual tolerance."""
    ions = ION_SETS[4]
    rng = np.random.default_rng(5)
    B = 200
    spread = lambda lo, hi: np.exp(rng.uniform(np.log(lo), np.log(hi), B))   # noqa: E731
    na, mg, ca, so4 = 50 * spread(1 / 3, 3), 10 * spread(1 / 3, 3), 5 * spread(1 / 3, 3), 20 * spread(1 / 3, 3)
    cat = na + 2 * mg + 2 * ca
    so4 = np.minimum(so4, 0.45 * cat)
    conc = dict(zip(["Na+", "Mg+2", "Ca+2", "SO4-2"], [na, mg, ca, so4]))
    conc["Cl-"] = cat - 2 * so4
    b = dict(c_feed=np.column_stack([conc[i] for i in ions]), flux_m_s=1e-5 * spread(0.3, 3),
             pore_radius_m=0.5e-9 * spread(0.8, 1.5), thickness_m=1e-6 * spread(0.5, 2),
             pore_dielectric=rng.uniform(30, 60, B), charge_density_mol_m3=-50 * spread(0.3, 3),
             temperature_K=rng.uniform(288, 308, B))
    opt = TransportOptions(**CONFIGS["pitzer_film"])
    prm, phi0, scale, grids, film = kernel_inputs(ions, b, opt)
    assert grids == [6, 12, 24] and film == [6, 16, 16]
    out = {}
    for name, f in (("kept", film), ("halved", [4, 8, 16])):
        counts = np.zeros((B, 3, 2), np.int64)
        x, st, *_ = compiled.solve_cases(prm, scale, phi0, None, grids, opt.tol, None, 1, f, counts=counts)
        assert (st == compiled.OK).all()
        out[name] = x, np.mean(counts[:, -1, 0] == 0), counts[:, -1, 1].mean()
    assert out["kept"][1] >= 0.7 and out["halved"][1] <= 0.4            # no Newton step on the 24-interval grid
    assert out["kept"][2] <= 0.5 * out["halved"][2]                     # its factorizations per case
    n = len(ions)
    cp = [np.exp(out[k][0][:, -(n + 1):-1]) / prm.c_feed for k in ("kept", "halved")]
    assert np.max(np.abs(cp[0] - cp[1])) <= 1e-10


def test_counts_of_a_wrong_shape_are_refused_by_name():
    """``counts`` must be (B, grids, 2) or (B, grids, 4) int64: anything else is a typed error naming its shape."""
    from nanosep.errors import InvalidInputError

    opt = TransportOptions(**CONFIGS["ideal_none"])
    ions = SETS[0]
    prm, phi0, scale, grids, film = kernel_inputs(ions, wide_batch(ions, 3, seed=5), opt)
    for bad in (np.zeros((3, len(grids), 3), np.int64), np.zeros((3, len(grids), 4), np.int32)):
        with pytest.raises(InvalidInputError, match=r"counts has shape \(3, 3, (3|4)\)"):
            compiled.solve_cases(prm, scale, phi0, None, grids, opt.tol, None, 1, film, counts=bad)
