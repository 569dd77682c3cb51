"""Automatic p-refinement of under-resolved cases (TransportOptions.resolution_tol / max_nodes).

What can be wrong: the Chebyshev tail estimate (wrong transform, wrong scaling), the exact sampling of a
fine grid at the base nodes, the splice of refined cases back into the batch (order, fields), and a
refined answer that is not the fine grid's answer.  The under-resolved case is sample 65 of
benchmarks/robustness.py (Davies, film k = 2e-5 m/s) shows how wrong an under-resolved answer can be (Ca+2
rejection 0.9999 / 0.094 at 24 / 64 nodes); it is not resolved by 48 nodes either and stays flagged.  The
test case is sample 657, under-resolved at 24 nodes (rejections off by 3e-6) and resolved at 48.
"""
from __future__ import annotations

import numpy as np
import pytest
from nanosep.transport import TransportOptions, chebyshev, solve_batch
from nanosep.transport.solver import build_parameters
from nanosep.transport.system import DSPMDESystem

from nanosep.ions import IonDatabase

IONS = ["Mg+2", "Cl-", "NO3-", "SO4-2"]
# sample 657 of benchmarks/robustness.py with its present ions: its rejections move by 3e-6 from 24 to 48 nodes
SAMPLE_657 = dict(
    c_feed=np.array([[0.9647833138318391, 0.0006386263068372597, 1.927535067878113, 0.000696466739364116]]),
    flux_m_s=9.995642986055482e-06, charge_density_mol_m3=-234.74764497950673, pore_radius_m=3.5027268147096036e-10,
    pore_dielectric=46.62501361221075, thickness_m=4.78356518911761e-07, temperature_K=323.61522041782735)
DAVIES_FILM = TransportOptions(activity="davies", polarization="film", mass_transfer_m_s=2e-5)


def test_tail_is_round_off_for_a_polynomial_and_large_for_an_unresolved_exponential():
    x = chebyshev.nodes(16)
    t = 2 * x - 1
    assert chebyshev.tail(3 - 2 * t + 0.5 * (2 * t**2 - 1)) < 1e-15
    assert chebyshev.coefficient_matrix(16) @ t == pytest.approx(np.eye(17)[1], abs=1e-14)  # T_1 on our ordering
    assert chebyshev.tail(np.exp(5 * x)) < 1e-10          # resolved on 16 intervals
    assert chebyshev.tail(np.exp(40 * x)) > 1e-3          # not
    assert chebyshev.tail(np.zeros(17)) == 0.0
    # with floor = 1 the estimate is absolute for profiles below one: a 1e-3 profile gets 1e-3 of its tail
    g = np.exp(40 * (x - 1))
    last = np.abs(chebyshev.coefficient_matrix(16) @ g)[-2:].max()
    assert chebyshev.tail(1e-3 * g, floor=1.0) == pytest.approx(1e-3 * last, rel=1e-10)
    assert chebyshev.tail(1e-3 * g) == pytest.approx(chebyshev.tail(g), rel=1e-10)


def test_sampling_a_fine_grid_at_the_base_nodes_undoes_prolongation_exactly():
    db = IonDatabase.default()
    ions = ["Na+", "Cl-", "SO4-2"]
    z = np.array([db.get(i).charge for i in ions], float)
    prm = build_parameters(ions, z, np.array([db.get(i).stokes_radius_m for i in ions]),
                           np.array([db.get(i).diffusivity_m2_s for i in ions]), np.array([[30.0, 10.0, 10.0]]),
                           np.array([1e-5]), np.array([0.5e-9]), np.array([1e-6]), np.array([40.0]),
                           np.array([-50.0]), np.array([298.15]), DAVIES_FILM)
    base, fine = DSPMDESystem(prm, 12, 8), DSPMDESystem(prm, 48, 32)
    x = np.random.default_rng(0).normal(size=(1, base.lay.size))
    assert np.array_equal(base.restrict(fine.prolong(x, base), fine), x) or \
        np.allclose(base.restrict(fine.prolong(x, base), fine), x, rtol=0, atol=1e-13)


@pytest.fixture(scope="module")
def sample_657():
    on = solve_batch(IONS, options=DAVIES_FILM, strict=False, **SAMPLE_657)
    off = solve_batch(IONS, options=DAVIES_FILM.with_(resolution_tol=None), strict=False, **SAMPLE_657)
    return on, off


def test_unrefined_answer_is_flagged_and_refined_one_is_resolved(sample_657):
    on, off = sample_657
    assert off.nodes_used[0] == 24 and off.resolution_error[0] > DAVIES_FILM.resolution_tol
    assert np.max(np.abs(off.rejection_observed - on.rejection_observed)) > 1e-7   # the refinement mattered
    assert on.converged[0] and not on.unresolved[0]
    assert on.nodes_used[0] > 24 and on.resolution_error[0] <= DAVIES_FILM.resolution_tol
    # the profiles are reported on the base grid, sampled from the fine one
    assert on.c_layer.shape == off.c_layer.shape and on.solution.shape == off.solution.shape
    assert np.array_equal(on.x, chebyshev.nodes(24))


def test_refined_answer_is_the_fine_grid_answer(sample_657):
    on, _ = sample_657
    N = int(on.nodes_used[0])
    direct = solve_batch(IONS, options=DAVIES_FILM.with_(nodes=N, film_nodes=16 * N // 24, resolution_tol=None,
                                                         coarse_grids=3), strict=False, **SAMPLE_657)
    assert direct.converged[0]
    np.testing.assert_allclose(on.rejection_observed[0], direct.rejection_observed[0],
                               rtol=0, atol=1e-9)
    np.testing.assert_allclose(on.c_layer[0], direct.c_layer[0][:, :: N // 24], rtol=1e-8)
    # and it is converged in the node count: one more doubling moves no rejection by more than 1e-9
    finer = solve_batch(IONS, options=DAVIES_FILM.with_(nodes=2 * N, film_nodes=32 * N // 24, resolution_tol=None,
                                                        coarse_grids=3), strict=False, **SAMPLE_657)
    np.testing.assert_allclose(on.rejection_observed[0], finer.rejection_observed[0],
                               rtol=0, atol=1e-9)


def test_resolved_cases_are_not_touched():
    rng = np.random.default_rng(3)
    c = np.column_stack([rng.uniform(10, 100, 6), np.zeros(6)])
    c[:, 1] = c[:, 0]
    kw = dict(flux_m_s=rng.uniform(2e-6, 3e-5, 6), pore_radius_m=0.5e-9, thickness_m=1e-6, pore_dielectric=40.0,
              charge_density_mol_m3=-60.0)
    a = solve_batch(["Na+", "Cl-"], c, options=DAVIES_FILM, **kw)
    b = solve_batch(["Na+", "Cl-"], c, options=DAVIES_FILM.with_(resolution_tol=None), **kw)
    assert (a.nodes_used == 24).all() and (a.resolution_error < 1e-9).all()
    assert np.array_equal(a.c_perm, b.c_perm) and np.array_equal(a.solution, b.solution)


def test_grid_map_switch_is_continuous_to_the_resolution_tolerance():
    """At Pe = 30 (grid_map.THRESHOLD) the layer grid switches from plain to mapped; answers on both sides are
    discretizations of the same equations, so with the refinement they agree to the resolution tolerance
    (without it, this case jumps by 5.5e-9: its 24-node tails are 2-4e-7)."""
    from nanosep.transport.solver import peclet_max
    db = IonDatabase.default()
    ions = ["Na+", "Mg+2", "Cl-", "SO4-2"]
    c = np.array([[20.0, 10.0, 30.0, 5.0]])
    z = np.array([db.get(i).charge for i in ions], float)
    kw = dict(pore_radius_m=0.45e-9, thickness_m=4e-6, pore_dielectric=40.0, charge_density_mol_m3=-80.0)
    prm = build_parameters(ions, z, np.array([db.get(i).stokes_radius_m for i in ions]),
                           np.array([db.get(i).diffusivity_m2_s for i in ions]), c, np.array([1e-5]),
                           np.array([0.45e-9]), np.array([4e-6]), np.array([40.0]), np.array([-80.0]),
                           np.array([298.15]), DAVIES_FILM)
    j30 = 1e-5 * DAVIES_FILM.grid_map_peclet / peclet_max(prm)[0]
    r = solve_batch(ions, np.repeat(c, 2, 0), flux_m_s=[j30 * (1 - 1e-9), j30 * (1 + 1e-9)], options=DAVIES_FILM,
                    **kw)
    assert r.x_layer[0, -2] == pytest.approx(chebyshev.nodes(24)[-2]) and r.x_layer[1, -2] > r.x_layer[0, -2]
    assert np.abs(np.diff(r.rejection_observed, axis=0)).max() < 1e-9
