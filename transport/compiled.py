"""Compiled (numba) Newton kernel: the fast path of the DSPM-DE engine.

Eligible: ideal, Davies or Pitzer activity (:mod:`.compiled_activity`), no polarization or the film
(``polarization="film"``), no image forces, the water flux given (not the pressure), at least one charged
ion; plain or mapped layer grids (:mod:`.grid_map`); sterically excluded ions (their layer and permeate rows
as :meth:`.system.DSPMDESystem._exclude`: ``c_ik / s_i = 0``, ``v_i = ln(1e-30 c_b,i)``).  For such a case the
discrete system of :class:`.system.DSPMDESystem` on ``N`` layer intervals (``M = N + 1`` nodes) and
``N_f`` film intervals (``M_f = N_f + 1``; ``M_f = 0`` without a film) has the unknowns ``cf_ik``, ``phi_f,k``
(film), ``c_ik`` [mol/m3], ``phi_k`` (layer), ``v_i = ln c_p,i`` and ``phi_p``, and the rows (seed 003
eqs. 1, 3-4, 9, 12)::

    film y=0:  (cf_i0 - c_b,i) / c_b,i = 0,   phi_f,0 = 0
    film k>=1: [(D_f cf_i)_k + z_i cf_ik (D_f phi_f)_k - Pe_f,i cf_ik + q_f,i c_p,i] / c_b,i = 0
    node 0:    ln c_i0 - ln c_w,i - ln Phi_i - ln g_w,i + ln g_0,i + z_i (phi_0 - phi_w) = 0
    k >= 1:    [g_k (D c_i)_k + z_i c_ik g_k (D phi)_k - Pe_i c_ik + q_i c_p,i] / s_i = 0
    permeate:  ln c_iN - v_i - ln Phi_i - ln g_p,i + ln g_N,i + z_i (phi_N - phi_p) = 0
    EN:        (sum_i z_i c_ik + X) / cscale = 0 (every layer node), sum_i z_i cf_ik / cscale = 0 (film
               nodes k >= 1),  sum_i z_i c_p,i / cscale = 0

the same equations, row scales and unknown layout as the engine (``q_i = J_v dx_e / (K_d D_i)``,
``Pe_i = K_c q_i``, ``q_f,i = Pe_f,i = J_v delta / D_i``, ``s_i`` the feed-Donnan pore concentration,
``cscale = sum |z_i| c_b,i + |X|``; ``g_k = 1/g'(xi_k)`` of the case's grid map, 1 on a plain grid; the wall
``c_w, phi_w`` is the film's last node, or the bulk feed and 0 without a film; ``ln g`` the activity
coefficients at the wall, pore entrance, pore exit and permeate).

Structure used by the linear algebra: with the potentials and the interface activity coefficients fixed,
the rows of ion ``i`` (its film rows, its layer rows and its permeate row) involve only its own
``K = M_f + M + 1`` unknowns, a block ``A_i``; electroneutrality couples the ions, and so do the activity
coefficients, which are torn: the Newton step gets the extra unknowns ``d ln g_p,i`` (each interface point
``p``, ion ``i``) with the rows ``d ln g_p,i - sum_j (d ln g_i / d c_j)_p dc_j,p = 0``, so that ion ``i``'s
block sees only its own ``ln g`` (as :mod:`.bordered` tears the coupled rows).  The border (the ``K``
potentials ``phi_f``, ``phi``, ``phi_p``, then ``3 n`` or, with a film, ``4 n`` tears) has ``Kb`` unknowns.
Each Newton step factors every ``A_i`` (LU, partial pivoting), forms ``W_i = A_i^-1 E_i`` (``E_i``: the
block's columns on the border), the Schur complement ``S = C - sum_i B_i W_i`` (``B_i``: the EN and tear
rows on ion ``i``; ``C``: the border rows on the border, the identity on the gauge ``phi_f,0`` and the tears)
and its LU.  The damped Newton method is the engine's (:func:`.newton.newton`, NLEQ-ERR error-oriented
damping, the same step caps, norms and convergence rules), run per case, with chord steps (the factors are kept
while the simplified corrections contract by ``CHORD_CONTRACTION``; a chord step that fails the monotonicity test
is redone with fresh factors), the engine's coarse-grid start (Newton on each grid of ``coarse_grids(options)``,
the Chebyshev interpolant of its solution starting the next; the coarse grids to the looser ``COARSE_TOL``, the
last to ``options.tol``) and, on a grid where Newton fails, the engine's adaptive
flux continuation from the zero-flux (Donnan equilibrium) solution.  The start is the engine's closed-form one
(``initial_guess(phi0, "shp")``, its film profile floored at ``system.FILM_FLOOR``), built per case in nopython
code (:mod:`.compiled_guess`), for Davies and Pitzer with the engine's pass that puts the interface activity
coefficients into the partitioning (:data:`.system.ACTIVITY_PASSES`).  Before the grid sequence (``SHOOTING``), a case with
every ion present and none excluded is solved by shooting from that start (:mod:`.compiled_shooting`: the layer and
film equations integrated by Taylor series, Newton on ln c_p), its profiles are written on the last grid and Newton
runs there (no step for ~97 % of the throughput batch); the grid sequence takes the cases where that fails.  A case
that still fails (the engine's robust continuation and present-ion fallbacks are not in the kernel) is returned
unconverged; the caller re-solves it with the full engine.

Modules: :mod:`.compiled_system` (residual, structured factorization and solve of one case),
:mod:`.compiled_newton` (chord Newton, flux continuation), :mod:`.compiled_guess` (the start),
:mod:`.compiled_shooting` (the shooting start),
:mod:`.compiled_activity` (ln gamma and its Jacobian); this module: eligibility, the per-case grid sequence and
the batch entry points.

Measured (benchmarks/compiled_kernel.py, benchmarks/throughput.py): ~60-90 us per 5-ion ideal case on one
core; rejections equal to the engine's to ~1e-13 in every covered configuration (tests/test_compiled_kernel.py,
tests/test_compiled_chord.py).  5-ion Pitzer + film batch (B=1000): factorizations per case on the 6/12/24-interval
grids 8.98/2.09/0.87 with plain Newton from the engine's start, 5.53/1.60/0.86 with chord steps and the floored
start, 4.54/1.06/0.86 with ``COARSE_TOL`` as well, 2.51/1.06/0.86 with the activity pass of the start,
2.50/0.99/0.16 with the film's 16 intervals kept on the 12-interval grid (:func:`.solver.coarse_grids`: 86 % of the
cases then meet the 24-interval grid's convergence test as interpolated, with no Newton step there); 17 % of the
cases needed the flux continuation, 0.1 % now (the film floor).  The Schur complement on the border is factored
by LAPACK ``getrf`` (:func:`.compiled_system._getrf`).  With the shooting start (2026-11-23, same batch, B = 1000,
same process): 216 -> 144 us per case (1.5x); shooting 4.4 Newton iterations with 2.4 Jacobians per case, 2.5 %
of the cases need a Newton step on the last grid, rejections equal to the grid sequence's to 2e-11.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from nanosep.errors import InvalidInputError

from . import system
from .compiled_activity import IDEAL, KIND, activity_parameters  # noqa: F401  (IDEAL: re-exported)
from .compiled_guess import guess_parameters
from .compiled_system import C0, CB, LNCB, LNCX, LNPHI, NPAR, PE, PEF, QF, Q, S
from .options import TransportOptions
from .system import EXCLUDED_PERMEATE, BatchParameters

log = logging.getLogger(__name__)

try:  # numba is a dependency, but the engine must keep working without it
    import numba
    from numba import njit, prange
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None
    HAVE_NUMBA = False

#: Newton iteration budget per grid of the kernel (cases that need more go to the engine)
KERNEL_MAX_ITER = 30
#: chord Newton: keep the Jacobian's factors while the simplified correction contracts by at least this factor
#: per step (``||dxbar|| <= CHORD_CONTRACTION ||dx||``); 0 refactors every iteration (:func:`_newton`).  Measured
#: on the 5-ion Pitzer + film batch (factorizations / iterations per case on the 6- and 12-interval grids):
#: 0 (plain) 6.86 / 6.86 and 2.09 / 2.09; 0.1: 5.53 / 10.2 and 1.60 / 2.91; 0.2: 5.20 / 11.8; 0.3: 5.09 / 12.5
#: (a chord step costs about a quarter of a Newton step on the coarse grid: 0.1 is the cheapest)
CHORD_CONTRACTION = 0.1
#: residual tolerance (max norm) of the coarse grids (all but the last), a float or one per coarse grid; None: the
#: final tolerance (``options.tol``) on every grid, as the engine.  A coarse solution only starts the next grid (its
#: discretization error, 1e-3..1e-8 against the next grid, exceeds these tolerances), and the last grid is always
#: solved to ``options.tol``.  Measured on the 5-ion Pitzer + film batch (B = 1000): factorizations / iterations per
#: case on the 6- and 12-interval grids 5.53 / 10.2 and 1.60 / 2.91 with None, 4.54 / 6.4 and 1.06 / 2.1 with
#: (1e-4, 1e-8); kernel time 433 -> 369 us per case.  Rejections then differ from plain Newton's (every grid to
#: ``options.tol``) by up to 2.7e-12 on the wide random spread of tests/test_compiled_chord.py (1e-14 with None):
#: two solves that both meet the residual tolerance 1e-11 differ by about that much
COARSE_TOL = (1e-4, 1e-8)
#: status codes of the kernel per case
OK, FAILED_COARSE, FAILED = 0, 1, 2
#: polarization models the kernel implements
KERNEL_POLARIZATION = ("none", "film")
#: solve each case first by shooting (:mod:`.compiled_shooting`), the grid sequence only where that fails
SHOOTING = True


# ---------------------------------------------------------------------- eligibility
def configuration_eligible(options: TransportOptions) -> bool:
    """True if ``options`` select the physics the kernel implements (and ``options.compiled`` allows it).

    Raises:
        InvalidInputError: ``options.compiled is True`` but numba does not import.
    """
    if options.compiled is False:
        return False
    if not HAVE_NUMBA:
        if options.compiled is True:
            raise InvalidInputError("TransportOptions(compiled=True) needs numba, which does not import here "
                                    "(pip install numba, or use compiled='auto')")
        return False
    return (options.activity in KIND and options.polarization in KERNEL_POLARIZATION
            and not options.image_forces)


def kernel_cases(options: TransportOptions, prm: BatchParameters) -> np.ndarray:
    """(B,) bool: the cases of a chunk the kernel is to solve under ``options`` (none if the configuration
    is not eligible).  Per case, independent of the chunk: a case's answer does not depend on the batching."""
    if not configuration_eligible(options):
        return np.zeros(prm.batch, bool)
    return eligible_cases(prm)


def eligible_cases(prm: BatchParameters) -> np.ndarray:
    """(B,) bool: cases of ``prm`` the kernel can solve (flux given, charged; plain or mapped grid; no
    polarization or the film)."""
    film = prm.polarization == "film" and prm.film_thickness is not None
    act = prm.activity is None or getattr(prm.activity, "kind", None) in KIND
    ok = np.full(prm.batch, prm.pressure is None and bool(np.any(prm.z != 0)) and act
                 and prm.image is None and (prm.polarization == "none" or film))
    return ok


# ---------------------------------------------------------------------- numba kernels
if HAVE_NUMBA:
    from .compiled_guess import shp_guess
    from .compiled_shooting import fill_grid, shoot
    from .compiled_newton import _continuation, _newton, _step_norms  # noqa: F401  (re-exported)
    from .compiled_system import (  # noqa: F401  (re-exported: tests and benchmarks use them as compiled.*)
        _factor,
        _index_maps,
        _lu_factor,
        _lu_solve,
        _lu_solve_mat,
        _residual,
        _solve,
    )

    @njit(cache=True, nogil=True)
    def _interp_blocks(src, dst, P, blocks, Mc, Mf, so, do):
        """``dst[do + b Mf + k] = sum_j P[k, j] src[so + b Mc + j]`` for ``blocks`` profiles of one case."""
        for blk in range(blocks):
            for k in range(Mf):
                acc = 0.0
                for j in range(Mc):
                    acc += P[k, j] * src[so + blk * Mc + j]
                dst[do + blk * Mf + k] = acc

    @njit(cache=True, nogil=True)
    def _prolong(xc, P, Pf, n, Mc, Mfc, M, Mf):
        """Interpolate one case's unknowns from (Mc, Mfc) to (M, Mf) nodes: film and layer profiles by their
        Chebyshev interpolants (P (M, Mc), Pf (Mf, Mfc)); ln c_p and phi_p copied."""
        xf = np.empty((n + 1) * (Mf + M) + n + 1)
        _interp_blocks(xc, xf, Pf, n + 1, Mfc, Mf, 0, 0)
        _interp_blocks(xc, xf, P, n + 1, Mc, M, (n + 1) * Mfc, (n + 1) * Mf)
        for j in range(n + 1):
            xf[(n + 1) * (Mf + M) + j] = xc[(n + 1) * (Mfc + Mc) + j]
        return xf

    @njit(cache=True, nogil=True)
    def _count(counts, b, g, its, facs, res, cor):
        """Add one Newton solve's iterations and factorizations (and, if ``counts`` has 4 columns, its residual
        evaluations and corrections) to ``counts[b, g]``."""
        counts[b, g, 0] += its
        counts[b, g, 1] += facs
        if counts.shape[2] > 2:
            counts[b, g, 2] += res
            counts[b, g, 3] += cor

    @njit(cache=True, nogil=True)
    def _shootable(P):
        """A case the shooting takes: every ion present and none sterically excluded."""
        for i in range(P.shape[1]):
            if P[LNCX, i] != 0.0 or not (P[CB, i] > 0.0) or not np.isfinite(P[LNCB, i]):
                return False
        return True

    @njit(cache=True, nogil=True)
    def _shoot_case(b, x, Ds, Gi, Dfs, Ms, Mfs, z, P, X, cscale, akind, ap, XL, YL, tols, max_iter,
                    limit_correction, theta_max, x_out, status, iters, resid, counts, shots):
        """Shooting from the start ``x`` (first grid) then Newton on the last grid from its profiles
        (:func:`_solve_case`); True (and the case's outputs written) if both converged."""
        n = z.size
        G = Ms.size
        v = np.empty(n)
        o = (n + 1) * (Ms[0] + Mfs[0])
        for i in range(n):
            v[i] = x[o + i]
        ok, sit, jacs = shoot(v, z, P, X, cscale, akind, ap, Mfs[G - 1] > 0, max_iter)
        shots[b, 0] = -2
        shots[b, 1] = -2
        if not ok:
            return False
        M, Mf = Ms[G - 1], Mfs[G - 1]
        xf = np.zeros((n + 1) * (M + Mf) + n + 1)
        ion, pot = _index_maps(n, M, Mf)
        if not fill_grid(v, z, P, X, cscale, akind, ap, Mf > 0, np.ascontiguousarray(XL[b, :M]), YL, xf, ion, pot):
            return False
        D = np.ascontiguousarray(Ds[G - 1, :M, :M])
        Df = np.ascontiguousarray(Dfs[G - 1, :Mf, :Mf])
        gi = np.ascontiguousarray(Gi[b, G - 1, :M])
        ok, it, r, nf, nr, ns = _newton(xf, D, gi, Df, np.ones(Mf), z, P, X, cscale, akind, ap, tols[G - 1],
                                        max_iter, limit_correction, theta_max)
        _count(counts, b, G - 1, it, nf, nr, ns)      # counted even if it failed: the work was done
        if not ok:
            return False
        shots[b, 0] = sit
        shots[b, 1] = jacs
        x_out[b, :] = xf
        status[b] = OK
        iters[b] = sit + it
        resid[b] = r
        return True

    @njit(cache=True, nogil=True)
    def _solve_case(b, x0, Ds, Gi, Dfs, Ps, Pfs, Ms, Mfs, z, Pion, Pcase, akind, AP, GP, Xn, Y0, XL, YL, tols,
                    max_iter, settings, x_out, status, iters, resid, steps, counts, shots):
        """Newton on each grid of ``Ms``/``Mfs`` in turn (interpolant of the last start; grid g to the residual
        tolerance ``tols[g]``), for case ``b``, from ``x0[b]`` or, when ``GP`` has rows, from the engine's
        closed-form start built here (:func:`.compiled_guess.shp_guess`: GP its parameters, Xn (B, M0) the first
        grid's layer nodes, Y0 (Mf0,) its film nodes); ``counts[b, g]`` gets grid g's (Newton iterations,
        factorizations[, residual evaluations, corrections]), flux continuation included."""
        n = z.size
        G = Ms.size
        P = Pion[b]
        ap = AP[b]
        X, cscale, phi0 = Pcase[b, 0], Pcase[b, 1], Pcase[b, 2]
        limit_correction, theta_max = settings[0], settings[1]
        if GP.shape[0] > 0:
            x = np.zeros((n + 1) * (Ms[0] + Mfs[0]) + n + 1)
            ion0, pot0 = _index_maps(n, Ms[0], Mfs[0])
            excluded = np.empty(n, np.bool_)
            for i in range(n):
                excluded[i] = P[LNCX, i] != 0.0
            shp_guess(x, z, P[CB].copy(), P[LNPHI].copy(), X, excluded, GP[b], phi0,
                      np.ascontiguousarray(Xn[b, :Ms[0]]), Y0, ion0, pot0, settings[2], akind, ap, int(settings[3]))
        else:
            x = x0[b, :(n + 1) * (Ms[0] + Mfs[0]) + n + 1].copy()
        total = 0
        shots[b, 0] = -1
        shots[b, 1] = -1
        if GP.shape[0] > 0 and settings[4] != 0.0 and _shootable(P):
            if _shoot_case(b, x, Ds, Gi, Dfs, Ms, Mfs, z, P, X, cscale, akind, ap, XL, YL, tols, max_iter,
                           limit_correction, theta_max, x_out, status, iters, resid, counts, shots):
                return
        for g in range(G):
            M, Mf = Ms[g], Mfs[g]
            if g > 0:
                x = _prolong(x, np.ascontiguousarray(Ps[g, :M, :Ms[g - 1]]),
                             np.ascontiguousarray(Pfs[g, :Mf, :Mfs[g - 1]]), n, Ms[g - 1], Mfs[g - 1], M, Mf)
            D = np.ascontiguousarray(Ds[g, :M, :M])
            Df = np.ascontiguousarray(Dfs[g, :Mf, :Mf])
            gi = np.ascontiguousarray(Gi[b, g, :M])
            gf = np.ones(Mf)
            x_start = x.copy()
            tol = tols[g]
            ok, it, r, nf, nr, ns = _newton(x, D, gi, Df, gf, z, P, X, cscale, akind, ap, tol, max_iter,
                                            limit_correction, theta_max)
            total += it
            _count(counts, b, g, it, nf, nr, ns)
            if not ok:
                x = x_start
                ok, it, r, nsteps, nf, nr, ns = _continuation(x, D, gi, Df, gf, z, P, X, cscale, akind, ap, phi0,
                                                              tol, max_iter, limit_correction, theta_max)
                total += it
                steps[b] += nsteps
                _count(counts, b, g, it, nf, nr, ns)
            resid[b] = r
            if not ok:
                status[b] = FAILED_COARSE if g < G - 1 else FAILED
                iters[b] = total
                return
        x_out[b, :] = x
        status[b] = OK
        iters[b] = total

    @njit(cache=True, nogil=True)
    def _solve_serial(x0, Ds, Gi, Dfs, Ps, Pfs, Ms, Mfs, z, Pion, Pcase, akind, AP, GP, Xn, Y0, XL, YL, tols,
                      max_iter, settings, x_out, status, iters, resid, steps, counts, shots):
        for b in range(Pion.shape[0]):
            _solve_case(b, x0, Ds, Gi, Dfs, Ps, Pfs, Ms, Mfs, z, Pion, Pcase, akind, AP, GP, Xn, Y0, XL, YL, tols,
                        max_iter, settings, x_out, status, iters, resid, steps, counts, shots)

    @njit(cache=True, nogil=True, parallel=True)
    def _solve_parallel(x0, Ds, Gi, Dfs, Ps, Pfs, Ms, Mfs, z, Pion, Pcase, akind, AP, GP, Xn, Y0, XL, YL, tols,
                        max_iter, settings, x_out, status, iters, resid, steps, counts, shots):
        for b in prange(Pion.shape[0]):
            _solve_case(b, x0, Ds, Gi, Dfs, Ps, Pfs, Ms, Mfs, z, Pion, Pcase, akind, AP, GP, Xn, Y0, XL, YL, tols,
                        max_iter, settings, x_out, status, iters, resid, steps, counts, shots)

    def _kernel_dispatchers() -> list:
        """Every jitted function of the kernel modules (:data:`kernel_cache.KERNEL_MODULES`)."""
        import importlib

        from .kernel_cache import KERNEL_MODULES
        mods = [importlib.import_module(f"{__package__}.{m}") for m in KERNEL_MODULES]
        return [f for m in mods for f in vars(m).values() if isinstance(f, numba.core.dispatcher.Dispatcher)]

    # numba keys each cache entry on its own file only: drop cached code compiled from other kernel sources
    from .kernel_cache import invalidate_stale
    invalidate_stale(_kernel_dispatchers())


# ---------------------------------------------------------------------- Python entry point
def ion_parameters(prm: BatchParameters, scale: np.ndarray, phi0: np.ndarray) -> np.ndarray:
    """(B, NPAR, n) per-case ion parameter rows of the kernel (``LNCB``..``C0``, see the module constants),
    computed as :meth:`.system.DSPMDESystem._layer` / ``_film`` compute them."""
    B, n = prm.c_feed.shape
    out = np.zeros((B, NPAR, n))
    excluded = prm.excluded if prm.excluded is not None else np.zeros((B, n), bool)
    with np.errstate(divide="ignore", invalid="ignore"):   # K_d = 0 for excluded ions: their q is not used
        q = np.where(excluded, 0.0, (prm.flux * prm.thickness)[:, None] / (prm.kd * prm.diff))
    out[:, LNCB] = np.log(prm.c_feed)
    out[:, LNPHI] = prm.ln_phi_fixed
    out[:, PE] = prm.kc * q
    out[:, Q] = q
    out[:, S] = scale
    out[:, CB] = prm.c_feed
    if prm.polarization == "film":
        qf = (prm.flux * prm.film_thickness)[:, None] / prm.diff      # film: K_d = K_c = 1
        out[:, PEF] = qf
        out[:, QF] = qf
    with np.errstate(over="ignore", invalid="ignore"):
        c0 = prm.c_feed * np.exp(prm.ln_phi_fixed - prm.z[None, :] * phi0[:, None])   # equilibrium pore values
    out[:, C0] = np.where(excluded, 0.0, c0)
    out[:, LNCX] = np.where(excluded, np.log(EXCLUDED_PERMEATE * prm.c_feed), 0.0)
    return out


def _grid_operators(prm: BatchParameters, grids: list[int], film_grids: list[int] | None):
    """Differentiation/interpolation matrices of the layer and film grids (zero-padded stacks), the node counts,
    1/g'(xi) (B, G, Mmax) of each case's layer map on each grid (1 where the grid is plain), the first grid's
    layer node positions (B, M0) and its film nodes (Mf0,), and the last grid's (B, M) and (Mf,)."""
    from . import chebyshev, grid_map

    G = len(grids)
    Ms = np.array([g + 1 for g in grids], np.int64)
    Mfs = np.array([f + 1 for f in film_grids] if film_grids is not None else [0] * G, np.int64)
    ops = []
    for counts, intervals in ((Ms, grids), (Mfs, film_grids)):
        Mmax = int(counts.max())
        Dst, Pst = np.zeros((G, Mmax, Mmax)), np.zeros((G, Mmax, Mmax))
        if Mmax:
            for g, N in enumerate(intervals):
                Dst[g, :N + 1, :N + 1] = chebyshev.diff_matrix(N)
                if g:
                    Pst[g, :N + 1, :intervals[g - 1] + 1] = chebyshev.interp_matrix(intervals[g - 1], N)
        ops += [Dst, Pst]
    a = prm.grid_map if prm.grid_map is not None else np.zeros(prm.batch)
    Gi = np.ones((prm.batch, G, int(Ms.max())))
    for g, N in enumerate(grids):
        xn, dxdxi = grid_map.positions(chebyshev.nodes(N), a)
        Gi[:, g, :N + 1] = 1.0 / dxdxi
        if g == 0:
            Xn = np.ascontiguousarray(np.broadcast_to(xn, (prm.batch, N + 1)), float)
        if g == G - 1:
            XL = np.ascontiguousarray(np.broadcast_to(xn, (prm.batch, N + 1)), float)
    Y0 = chebyshev.nodes(film_grids[0]) if film_grids is not None else np.zeros(0)
    YL = chebyshev.nodes(film_grids[-1]) if film_grids is not None else np.zeros(0)
    return (ops[0], ops[2], ops[1], ops[3], Ms, Mfs, Gi, Xn, np.ascontiguousarray(Y0, float), XL,
            np.ascontiguousarray(YL, float))


def solve_cases(prm: BatchParameters, scale: np.ndarray, phi0: np.ndarray, x0: np.ndarray | None, grids: list[int],
                tol: float, max_iter: int | None = None, threads: int = 1, film_grids: list[int] | None = None,
                chord: float | None = None, counts: np.ndarray | None = None, coarse_tol=None,
                film_floor: float | None = None, activity_passes: int | None = None, shooting: bool | None = None,
                shots: np.ndarray | None = None):
    """Solve eligible cases with the compiled kernel.

    Parameters
    ----------
    prm: the engine's parameters of the cases (:func:`.solver.build_parameters`); all must be eligible.
    scale: (B, n) ion row scales ``s_i`` [mol/m3] and phi0: (B,) dimensionless feed-side Donnan potential
        of the zero-flux equilibrium (both from the engine's :func:`.solver.feed_equilibrium`).
    x0: (B, m0) starting unknowns on the first grid (engine layout), or None: the kernel builds the engine's
        closed-form start ``DSPMDESystem.initial_guess(phi0, "shp")`` per case in nopython code
        (:mod:`.compiled_guess`; equal to it to ~1e-9 relative, the bisections' last digits).
    grids: layer intervals of the grids solved in turn, the last one the answer's (e.g. [6, 12, 24]).
    tol: Newton tolerance on the scaled residual (max norm), ``TransportOptions.tol``.
    max_iter: Newton iterations per grid (and per continuation step, at most 25); default
        ``KERNEL_MAX_ITER`` (read at call time).
    threads: > 1 runs the cases on that many numba threads (prange); 1 runs them on the calling thread
        (the GIL is released, so chunks solved by several Python threads run in parallel).
    film_grids: film intervals of each grid (``polarization="film"``, required then; as
        :func:`.solver.coarse_grids`).
    chord: contraction factor below which Newton keeps its factorization (chord steps, :func:`_newton`);
        default ``CHORD_CONTRACTION`` (read at call time); 0: refactor every iteration.
    coarse_tol: residual tolerance of the grids before the last (a float, or a sequence whose last entry is the
        grid before the last's, the one before it the grid before that, ...; fewer entries than coarse grids: the
        first repeats; never below ``tol``); default ``COARSE_TOL`` (read at call time; None: ``tol`` on every grid).
    counts: optional (B, len(grids), 2) or (B, len(grids), 4) int64 array that receives, per case and grid, the
        Newton iterations and the Jacobian factorizations and, with 4 columns, the residual evaluations (the start
        of each Newton solve and every trial point, damping trials included) and the Newton corrections (solves
        through the factors), flux continuation included, and the last grid's Newton from the shooting's profiles
        (also where it failed and the grid sequence then ran).
    shooting: solve each case first by shooting (:mod:`.compiled_shooting`; only with ``x0=None``, for cases with
        every ion present and none excluded), its profiles then checked, and if need be corrected, by Newton on the
        last grid; the grid sequence solves the cases where that fails.  Default ``SHOOTING`` (read at call time).
    shots: optional (B, 2) int64 array that receives, per case, the shooting's Newton iterations and Jacobians
        (-1: not tried; -2: failed, the case solved by the grid sequence).

    Returns
    -------
    x (B, m) unknowns on the last grid (NaN where not converged), status (B,) int (``OK``,
    ``FAILED_COARSE``: failed on a coarse grid, ``FAILED``: on the last grid), iterations (B,),
    residual (B,) final scaled residual max norm, continuation steps (B,) (Newton solves of the flux
    continuation, on the grids where Newton from the start failed; as ``BatchResult.continuation_steps``).
    """
    from .newton import LIMIT_CORRECTION

    if (prm.polarization == "film") != (film_grids is not None):
        raise InvalidInputError(f"film_grids={film_grids!r} with polarization={prm.polarization!r}: give the film "
                                "grids exactly for polarization='film'")
    max_iter = KERNEL_MAX_ITER if max_iter is None else max_iter
    B, n = prm.c_feed.shape
    Ds, Dfs, Ps, Pfs, Ms, Mfs, Gi, Xn, Y0, XL, YL = _grid_operators(prm, grids, film_grids)
    cscale = np.maximum((prm.c_feed @ np.abs(prm.z)) + np.abs(prm.charge), 1e-300)
    m = (n + 1) * int(Ms[-1] + Mfs[-1]) + n + 1
    x_out = np.full((B, m), np.nan)
    status = np.full(B, FAILED, np.int64)
    iters = np.zeros(B, np.int64)
    resid = np.full(B, np.inf)
    steps = np.zeros(B, np.int64)
    Pcase = np.column_stack([prm.charge, cscale, phi0]).astype(float)
    akind, AP = activity_parameters(prm)
    chord = CHORD_CONTRACTION if chord is None else chord
    # read at call time, as the engine's start does: setting system.FILM_FLOOR or .ACTIVITY_PASSES changes both
    film_floor = system.FILM_FLOOR if film_floor is None else film_floor
    activity_passes = system.ACTIVITY_PASSES if activity_passes is None else int(activity_passes)
    tols = np.full(Ms.size, float(tol))
    coarse_tol = COARSE_TOL if coarse_tol is None else coarse_tol
    if coarse_tol is not None and Ms.size > 1:   # a tuple's last entry belongs to the grid before the last
        ct = np.atleast_1d(np.asarray(coarse_tol, float))
        k = Ms.size - 1
        ct = ct[-k:] if ct.size >= k else np.concatenate([np.full(k - ct.size, ct[0]), ct])
        tols[:-1] = np.maximum(ct, tol)
    if counts is None:
        counts = np.zeros((B, Ms.size, 2), np.int64)
    elif counts.shape not in ((B, Ms.size, 2), (B, Ms.size, 4)) or counts.dtype != np.int64:
        raise InvalidInputError(f"counts has shape {counts.shape} and dtype {counts.dtype}: need ({B}, {Ms.size}, 2) "
                                f"or ({B}, {Ms.size}, 4) int64")
    shooting = SHOOTING if shooting is None else bool(shooting)
    if shots is None:
        shots = np.zeros((B, 2), np.int64)
    elif shots.shape != (B, 2) or shots.dtype != np.int64:
        raise InvalidInputError(f"shots has shape {shots.shape} and dtype {shots.dtype}: need ({B}, 2) int64")
    if x0 is None:
        x0, GP = np.zeros((0, 0)), guess_parameters(prm)
    else:
        GP, Xn = np.zeros((0, 3, n)), np.zeros((0, 1))
    args = (np.ascontiguousarray(x0, float), Ds, Gi, Dfs, Ps, Pfs, Ms, Mfs, np.ascontiguousarray(prm.z, float),
            ion_parameters(prm, scale, phi0), Pcase, akind, np.ascontiguousarray(AP, float), GP, Xn, Y0, XL, YL,
            tols, int(max_iter),
            np.array([LIMIT_CORRECTION, chord, film_floor, activity_passes, float(shooting)], float), x_out,
            status, iters, resid, steps, counts, shots)
    if threads > 1 and B > 1:
        prev = numba.get_num_threads()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        try:
            _solve_parallel(*args)
        finally:
            numba.set_num_threads(prev)
    else:
        _solve_serial(*args)
    return x_out, status, iters, resid, steps


def compile_kernels() -> float:
    """Compile (or load from numba's on-disk cache) both kernel entry points on a one-ion-pair problem (one
    compilation serves every configuration: the film is a zero-size operand when absent); returns the seconds
    spent (0 when they are already loaded in this process)."""
    if not HAVE_NUMBA:
        return 0.0
    if _solve_serial.signatures and _solve_parallel.signatures:
        return 0.0
    t0 = time.perf_counter()
    n, grids = 2, [2, 4]
    m0 = n * 3 + 3 + n + 1
    prm = BatchParameters(z=np.array([1.0, -1.0]), c_feed=np.ones((2, n)), flux=np.ones(2), thickness=np.ones(2),
                          charge=np.zeros(2), diff=np.ones((2, n)), kd=np.ones((2, n)), kc=np.ones((2, n)),
                          ln_phi_fixed=np.zeros((2, n)), ln_steric=np.zeros((2, n)))
    for threads in (1, 2):
        for x0 in (np.zeros((2, m0)), None):
            solve_cases(prm, np.ones((2, n)), np.zeros(2), x0, grids, 1e-11, 1, threads)
    dt = time.perf_counter() - t0
    log.info("compiled kernel ready in %.1f s (compiled, or loaded from numba's cache)", dt)
    return dt
