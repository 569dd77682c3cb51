"""The kernel's shooting start (transport/compiled_shooting.py).

The Taylor-series integration is checked against the closed-form solution of a binary 1:1 electrolyte (where the
layer equations reduce to one linear equation and the potential to a quadrature), its tangents against finite
differences, and the whole path (shooting, profiles written on the last grid, Newton there) against the kernel's
grid sequence without shooting: the same collocation answers on the wide random spread and at high flux, in every
activity model with and without the film; cases it cannot take (an excluded ion) or fails on go to the grid
sequence and still get that answer.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from nanosep.errors import InvalidInputError
from nanosep.transport import TransportOptions, compiled
from nanosep.transport.compiled_shooting import TAYLOR_ORDER, integrate
from test_compiled_chord import CONFIGS, SETS, high_flux, kernel_inputs
from test_compiled_kernel import wide_batch


def binary_closed_form(c1, cp, pe, q, xi):
    """Binary 1:1 electrolyte, c+ = c- = c: c' = P c - Q cp (P, Q the ions' means), c(1) = c1, so
    ``c = a + b exp(P (xi - 1))``; phi' = (dP c - dQ cp) / (2 c) integrated in closed form (dP, dQ the
    differences).  Returns c(xi) and phi(xi) - phi(1)."""
    P, Q = pe.mean(), q.mean()
    dP, dQ = pe[0] - pe[1], q[0] - q[1]
    a = Q * cp / P
    b = c1 - a
    c = a + b * np.exp(P * (xi - 1.0))

    def inv_c_integral(x0, x1):       # int_x0^x1 dxi / c
        u = lambda x: np.exp(P * (x - 1.0))  # noqa: E731
        return (np.log(u(x1) / (a + b * u(x1))) - np.log(u(x0) / (a + b * u(x0)))) / (P * a)

    phi = -(dP / 2.0 * (1.0 - xi) - dQ * cp / 2.0 * inv_c_integral(xi, 1.0))
    return c, phi


@pytest.mark.parametrize("scale", [0.3, 4.0, 40.0])
def test_taylor_integration_equals_the_binary_closed_form(scale):
    """Concentrations and potential at every node (dense output) and at xi = 0 to 1e-12, one step or many."""
    pe = np.array([1.3, 0.7]) * scale           # unequal ions: E and phi are not zero
    q = pe / np.array([0.8, 0.6])
    z = np.array([1.0, -1.0])
    cp = np.array([3.0, 3.0])
    c1 = 7.0
    nodes = 0.5 * (1.0 - np.cos(np.pi * np.arange(25) / 24))
    c = np.array([c1, c1])
    oc, ophi = np.empty((2, 25)), np.empty(25)
    ok, dphi = integrate(c, np.zeros((2, 0)), cp, pe, q, z, 1e-14, TAYLOR_ORDER, nodes, oc, ophi)
    assert ok
    cx, phix = binary_closed_form(c1, cp[0], pe, q, nodes)
    assert np.max(np.abs(oc - cx) / cx) < 1e-12
    assert np.max(np.abs(ophi - phix)) < 1e-12 * max(1.0, np.max(np.abs(phix)))
    c0, phi0 = binary_closed_form(c1, cp[0], pe, q, np.array([0.0]))
    assert np.max(np.abs(c - c0[0]) / c0[0]) < 1e-12
    assert abs(dphi - phi0[0]) < 1e-12 * max(1.0, abs(phi0[0]))
    # the concentrations stay electroneutral along the profile
    assert np.max(np.abs(oc[0] - oc[1]) / oc[0]) < 1e-13


def test_taylor_tangents_equal_finite_differences():
    """dc(0)/dv of a 4-ion mixture (v = ln c_p enters the equations and, here, the start) by the differentiated
    recurrences against central differences of the integration itself."""
    z = np.array([1.0, -1.0, 2.0, -2.0])
    pe = np.array([0.9, 0.6, 2.5, 1.8])
    q = pe / np.array([0.7, 0.8, 0.3, 0.4])
    v0 = np.log(np.array([4.0, 6.0, 2.0, 1.0]))
    c_start = lambda v: np.array([30.0, 20.0, 10.0, 15.0]) * np.exp(0.5 * (v - v0))  # noqa: E731  (electroneutral at v0)
    c = c_start(v0)
    T = np.diag(0.5 * c)
    ok, _ = integrate(c, T, np.exp(v0), pe, q, z, 1e-14, TAYLOR_ORDER, np.zeros(0), np.zeros((4, 0)), np.zeros(0))
    assert ok
    h = 1e-6
    for d in range(4):
        e = np.zeros(4)
        e[d] = h
        ends = []
        for s in (1.0, -1.0):
            cc = c_start(v0 + s * e)
            ok, _ = integrate(cc, np.zeros((4, 0)), np.exp(v0 + s * e), pe, q, z, 1e-14, TAYLOR_ORDER, np.zeros(0),
                              np.zeros((4, 0)), np.zeros(0))
            assert ok
            ends.append(cc)
        fd = (ends[0] - ends[1]) / (2 * h)
        assert np.max(np.abs(fd - T[:, d]) / (np.abs(T[:, d]) + np.abs(c))) < 1e-7, d


@pytest.mark.parametrize("name", list(CONFIGS))
def test_shooting_gives_the_grid_sequence_answer(name):
    """Shooting + Newton on the last grid against the grid sequence (shooting off), on the 5-ion wide spread and
    at high flux: every case converged both ways, the same unknowns (both meet the residual tolerance 1e-11:
    rejections to 1e-10), and the shooting takes (nearly) every case."""
    opt = TransportOptions(**CONFIGS[name])
    ions = SETS[1]
    b = {key: np.concatenate([wide_batch(ions, 30, seed=70)[key], high_flux(ions, 10, seed=71)[key]])
         for key in wide_batch(ions, 1, 0)}
    prm, phi0, scale, grids, film = kernel_inputs(ions, b, opt)
    B, n = prm.c_feed.shape
    shots = np.zeros((B, 2), np.int64)
    xs, ss, *_ = compiled.solve_cases(prm, scale, phi0, None, grids, opt.tol, None, 1, film,
                                               shooting=True, shots=shots)
    xg, sg, *_ = compiled.solve_cases(prm, scale, phi0, None, grids, opt.tol, None, 1, film, shooting=False)
    both = (ss == compiled.OK) & (sg == compiled.OK)
    assert both.mean() >= 0.95, name
    assert np.all(ss[sg == compiled.OK] == compiled.OK), name      # shooting loses no case the sequence solves
    o = (n + 1) * (grids[-1] + 1 + (film[-1] + 1 if film else 0))
    dr = np.max(np.abs(np.exp(xs[:, o:o + n]) - np.exp(xg[:, o:o + n])) / prm.c_feed, axis=1)[both]
    # two answers that both pass Newton's convergence test differ by about the test's tolerance times the
    # problem's condition: 1e-10 for most cases, 1e-8 for all (a case the grid sequence accepts by the
    # precision-limit rule at high flux, as in test_compiled_chord.py)
    assert np.median(dr) <= 1e-12, name
    assert np.mean(dr <= 1e-10) >= 0.9, name
    assert np.max(dr) <= 1e-8, name
    took = shots[:, 0] > 0
    assert took.mean() >= 0.9, (name, shots[:, 0])
    assert np.all(shots[took, 1] >= 1) and np.all(shots[took, 1] <= shots[took, 0])   # Jacobians <= iterations


def test_cases_the_shooting_does_not_take_get_the_grid_sequence_answer():
    """An ion too large for the pores (excluded) is not shot (-1); a layer Peclet number beyond the Taylor step
    budget fails the shooting (-2); both are solved by the grid sequence, as with shooting off."""
    opt = TransportOptions(**CONFIGS["davies_film"])
    ions = SETS[1]
    b = wide_batch(ions, 6, seed=72)
    b["pore_radius_m"][:2] = 0.33e-9                # Mg+2 (Stokes radius 0.348 nm) excluded
    b["thickness_m"][2:4] = 5e-2                    # Pe ~1e5 or more: more steps than TAYLOR_MAX_STEPS
    b["flux_m_s"][2:4] = 5e-5
    prm, phi0, scale, grids, film = kernel_inputs(ions, b, opt)
    assert prm.excluded[:2].any(axis=1).all() and not prm.excluded[2:].any()
    shots = np.zeros((6, 2), np.int64)
    xs, ss, *_ = compiled.solve_cases(prm, scale, phi0, None, grids, opt.tol, None, 1, film, shots=shots)
    xg, sg, *_ = compiled.solve_cases(prm, scale, phi0, None, grids, opt.tol, None, 1, film, shooting=False)
    assert np.all(shots[:2, 0] == -1)
    assert np.all(shots[2:4, 0] == -2), shots
    assert np.all(shots[4:, 0] > 0)
    np.testing.assert_array_equal(ss, sg)
    np.testing.assert_array_equal(xs[:4], xg[:4])     # the same path as without shooting: bit-identical


def test_shots_array_of_the_wrong_shape_is_refused():
    opt = TransportOptions(**CONFIGS["ideal_none"])
    ions = SETS[0]
    prm, phi0, scale, grids, film = kernel_inputs(ions, wide_batch(ions, 3, seed=73), opt)
    with pytest.raises(InvalidInputError, match=r"shots has shape \(3,\)"):
        compiled.solve_cases(prm, scale, phi0, None, grids, opt.tol, None, 1, film, shots=np.zeros(3, np.int64))
