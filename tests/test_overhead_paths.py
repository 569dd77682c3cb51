"""The cheaper Python paths around the compiled kernel give the answers of the paths they replaced, to the bit.

What can be wrong: the Donnan bisection stopping early at a different last bit; ln gamma without the Jacobian
(Pitzer's real path, the complex-step models' first probe alone, four interface points stacked in one call)
differing from ``ln_gamma_and_jacobian(c)[0]`` point by point; the refinement's splice into the batch
(``BatchResult.put``) differing from concat + take (order, dtypes, fields); the plain grid's nodes differing from
the identity map.  (The rewritten ``_collect`` / ``_refine`` were compared with the replaced code, every field of
``solve_batch``'s result to the bit on the throughput batches, when they changed; that frozen copy is not kept.)
"""
from __future__ import annotations

import numpy as np
import pytest
from nanosep.transport import chebyshev, solve_batch, solver, system
from nanosep.transport.activity import make_activity_model
from nanosep.transport.partitioning import donnan_potential
from nanosep.transport.results import BatchResult

from benchmarks.throughput import CONFIGS, IONS, make_batch

# cases of make_batch(4000) that the 24-interval grid leaves under-resolved (refined to 48), and some that it does not
REFINED = [2560, 2752, 3635]
ROWS = list(range(12)) + REFINED


# ---------------------------------------------------------------------- reference: the full bisection
def donnan_reference(z, c_bulk, ln_phi, charge):
    if np.all(np.asarray(z) == 0):
        return np.zeros(c_bulk.shape[0])
    a = c_bulk * np.exp(ln_phi)
    lo = np.full(c_bulk.shape[0], -60.0)
    hi = np.full(c_bulk.shape[0], 60.0)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        f = np.einsum("bi,i->b", a * np.exp(-np.outer(mid, z).clip(-700, 700)), z) + charge
        lo = np.where(f > 0, mid, lo)
        hi = np.where(f > 0, hi, mid)
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------------- comparison
def assert_identical(a: BatchResult, b: BatchResult) -> None:
    """Every field equal to the bit (NaN where NaN), same dtypes and shapes."""
    for name in a.__dataclass_fields__:
        if name == "meta":
            continue
        u, v = getattr(a, name), getattr(b, name)
        if isinstance(u, dict):
            assert u.keys() == v.keys(), name
            for k in u:
                assert u[k].dtype == v[k].dtype and np.array_equal(u[k], v[k], equal_nan=True), (name, k)
        elif u is None or v is None:
            assert u is None and v is None, name
        elif isinstance(u, tuple):
            assert u == v, name
        else:
            u, v = np.asarray(u), np.asarray(v)
            assert u.dtype == v.dtype and u.shape == v.shape, (name, u.dtype, v.dtype, u.shape, v.shape)
            same = (u == v).all() if u.dtype == object else np.array_equal(u, v, equal_nan=True)
            assert same, (name, np.nanmax(np.abs(u - v)) if u.dtype != object else "")


@pytest.fixture(scope="module")
def batch():
    full = make_batch(4000)
    return {k: v[ROWS] for k, v in full.items()}


def test_donnan_bisection_with_early_stop_equals_the_full_bisection():
    rng = np.random.default_rng(3)
    z = np.array([1.0, -1.0, 2.0, -2.0, 2.0])
    B = 3000
    c = np.exp(rng.uniform(np.log(1e-6), np.log(3000.0), (B, 5)))
    ln_phi = rng.uniform(-25.0, 0.5, (B, 5))
    X = rng.choice([-1.0, 1.0], B) * np.exp(rng.uniform(np.log(1e-3), np.log(3000.0), B))
    X[:5] = 0.0                       # potential at or near zero: the bisection needs all its halvings
    new, old = donnan_potential(z, c, ln_phi, X), donnan_reference(z, c, ln_phi, X)
    assert np.array_equal(new, old)
    # and per case: a subset (the refinement's) gets the values of the whole batch
    sub = np.array([7, 3, 2999, 0])
    assert np.array_equal(donnan_potential(z, c[sub], ln_phi[sub], X[sub]), new[sub])


@pytest.mark.parametrize("kind", ["davies", "pitzer"])
def test_ln_gamma_without_jacobian_equals_the_jacobian_call_point_by_point(kind):
    rng = np.random.default_rng(5)
    ions, z = ["Na+", "Cl-", "Mg+2", "SO4-2", "Ca+2"], [1, -1, 2, -2, 2]
    B = 400
    for T in (298.15, rng.uniform(280.0, 340.0, B)):   # one temperature, and one per case
        fn = solver._ActivityFn(kind, ions, np.broadcast_to(T, (B,)).copy(), z)
        pts = np.exp(rng.uniform(np.log(1e-9), np.log(2000.0), (4, B, 5)))
        stacked = fn.values_as_called(pts)
        for k in range(4):
            assert np.array_equal(stacked[k], fn(pts[k])[0]), (kind, k)
    # a model without an exact shortcut is called as before (the caller falls back to fn(c)[0])
    fn.model = make_activity_model("ideal", ions, z)
    fn.model.__class__ = type("Other", (type(fn.model),), {"ln_gamma_and_jacobian": lambda self, c: (c, c)})
    assert fn.values_as_called(pts) is None


def test_put_equals_concat_and_take():
    full = make_batch(4000)
    rows = [0, 1, 2, 3, 4, 5, REFINED[0]]
    res = solve_batch(IONS, options=CONFIGS["pitzer_film"], **{k: v[rows] for k, v in full.items()})
    other = solve_batch(IONS, options=CONFIGS["pitzer_film"].with_(nodes=24),
                        **{k: v[[6, 7, 8]] for k, v in full.items()})
    other.iterations = other.iterations.astype(np.int32)       # a narrower dtype in the part: promoted as concat
    idx = np.array([5, 1, 3])
    rest = np.setdiff1d(np.arange(len(res)), idx)
    ref = BatchResult.concat([res.take(rest), other]).take(np.argsort(np.concatenate([rest, idx])))
    res.put(idx, other)
    assert_identical(res, ref)
    with pytest.raises(ValueError, match="cannot put"):
        res.put(idx, other.with_ions(("Na+",) + tuple(other.ions), np.append(1.0, other.charges),
                                     np.arange(1, 6), other.solution.shape[1]))


def test_plain_grid_nodes_are_the_identity_map_of_grid_map():
    from nanosep.transport import grid_map
    full = make_batch(4000)
    kw = {k: v[:6] for k, v in full.items()}
    prm = solver.build_parameters(IONS, np.array([1.0, -1.0, 2.0, -2.0, 2.0]), np.full(5, 2e-10), np.full(5, 1e-9),
                                  kw["c_feed"], kw["flux_m_s"], kw["pore_radius_m"], kw["thickness_m"],
                                  kw["pore_dielectric"], kw["charge_density_mol_m3"], kw["temperature_K"],
                                  CONFIGS["ideal_none"])
    for a in (None, np.zeros(6)):
        prm.grid_map = a
        for N in (6, 24, 48):
            sys_ = system.DSPMDESystem(prm, N, 16)
            x, d = grid_map.positions(chebyshev.nodes(N), np.zeros(6))
            assert np.array_equal(sys_.x_nodes, x) and np.array_equal(sys_.dxdxi, d) and sys_.ginv is None
            assert sys_.x_nodes.dtype == x.dtype and sys_.x_nodes.flags.writeable
