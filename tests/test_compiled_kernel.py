"""The compiled (numba) Newton kernel (transport/compiled.py) against the engine on the same discrete equations.

Two implementations of one system: rejections, profiles and potentials must agree to the Newton
tolerance's reach, the answers must satisfy electroneutrality and the solute flux balance, and every case
must report the path that solved it (configurations the kernel does not cover, and kernel failures, go to
the engine).
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


@pytest.fixture(scope="module")
def pairs():
    """(ions, batch, engine result, kernel result) for 5 ion sets x 50 cases."""
    out = []
    for k, ions in enumerate(ION_SETS):
        b = wide_batch(ions, 50, seed=k)
        out.append((ions, b, solve_batch(ions, options=ENGINE, **b), solve_batch(ions, options=KERNEL, **b)))
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
        assert rk.residual.max() < 1e-6


def test_electroneutrality(pairs):
    """Permeate and every pore node electroneutral to 1e-10 of the feed's charge scale sum |z| c_b + |X|."""
    for ions, b, _, rk in pairs:
        z = rk.charges
        scale = rk.c_feed @ np.abs(z) + np.abs(b["charge_density_mol_m3"])
        assert np.max(np.abs(rk.c_perm @ z) / scale) <= 1e-10, ions
        pore = np.einsum("i,bik->bk", z, rk.c_layer) + b["charge_density_mol_m3"][:, None]
        assert np.max(np.abs(pore) / scale[:, None]) <= 1e-10, ions


def test_solute_mass_balance(pairs):
    """Layer-averaged diffusion + convection + migration equals J_v c_p for every ion (flux_balance_gap),
    and the ion fluxes are J_v c_p."""
    for ions, _, _, rk in pairs:
        assert np.nanmax(rk.flux_balance_gap) < 1e-7, ions
        assert np.allclose(rk.ion_flux, rk.flux_m_s[:, None] * rk.c_perm, rtol=1e-14, atol=0)


@pytest.mark.parametrize("opts, extra", [
    (TransportOptions(compiled=True, polarization="film", mass_transfer_m_s=2e-5), {}),
    (TransportOptions(compiled=True, activity="davies"), {}),
    (TransportOptions(compiled=True, image_forces=True), {}),
    (TransportOptions(compiled=True), {"pressure": True}),
    (TransportOptions(compiled=True, grid_map_peclet=1e-3), {}),     # every case on a mapped grid
    (TransportOptions(compiled=False), {}),
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


def test_unresolved_cases_go_to_the_engine_refinement():
    """A resolution tolerance no 24-interval solution meets: every kernel answer is refined by the engine."""
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

