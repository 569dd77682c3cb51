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
damping, the same step caps, norms and convergence rules), run per case, with the engine's coarse-grid
start (Newton on each grid of ``coarse_grids(options)``, the Chebyshev interpolant of its solution starting
the next) and, on a grid where Newton fails, the engine's adaptive flux continuation from the zero-flux
(Donnan equilibrium) solution.  A case that still fails (the engine's robust continuation and present-ion
fallbacks are not in the kernel) is returned unconverged; the caller re-solves it with the full engine.

Measured (benchmarks/compiled_kernel.py, benchmarks/throughput.py): ~60-90 us per 5-ion ideal case on one
core; rejections equal to the engine's to ~1e-13 in every covered configuration (tests/test_compiled_kernel.py).
"""
from __future__ import annotations

import logging
import time

import numpy as np

from nanosep.errors import InvalidInputError

from .compiled_activity import IDEAL, KIND, activity_parameters
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
#: status codes of the kernel per case
OK, FAILED_COARSE, FAILED = 0, 1, 2
#: rows of a case's (NPAR, n) ion parameter array (:func:`ion_parameters`): ln c_b, ln Phi (steric + Born),
#: layer Pe and q, row scale s, c_b [mol/m3], film Pe and q, zero-flux pore concentration [mol/m3], and
#: ln of the permeate carried for a sterically excluded ion (``EXCLUDED_PERMEATE c_b``; 0: not excluded)
LNCB, LNPHI, PE, Q, S, CB, PEF, QF, C0, LNCX = range(10)
NPAR = 10
#: polarization models the kernel implements
KERNEL_POLARIZATION = ("none", "film")


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
    from .compiled_activity import ln_gamma

    @njit(cache=True, nogil=True)
    def _lu_factor(A, piv):
        """In-place LU with partial pivoting of the square A; False if a pivot is zero or not finite."""
        m = A.shape[0]
        for k in range(m):
            p = k
            amax = abs(A[k, k])
            for r in range(k + 1, m):
                v = abs(A[r, k])
                if v > amax:
                    amax = v
                    p = r
            piv[k] = p
            if not (amax > 0.0) or not np.isfinite(amax):
                return False
            if p != k:
                for j in range(m):
                    t = A[k, j]
                    A[k, j] = A[p, j]
                    A[p, j] = t
            inv = 1.0 / A[k, k]
            for r in range(k + 1, m):
                f = A[r, k] * inv
                A[r, k] = f
                if f != 0.0:
                    for j in range(k + 1, m):
                        A[r, j] -= f * A[k, j]
        return True

    @njit(cache=True, nogil=True)
    def _lu_solve(A, piv, b):
        """Solve ``A x = b`` in place (b a vector) with the factors of :func:`_lu_factor`."""
        m = A.shape[0]
        for k in range(m):
            p = piv[k]
            if p != k:
                t = b[k]
                b[k] = b[p]
                b[p] = t
        for r in range(1, m):
            acc = b[r]
            for k in range(r):
                acc -= A[r, k] * b[k]
            b[r] = acc
        for r in range(m - 1, -1, -1):
            acc = b[r]
            for k in range(r + 1, m):
                acc -= A[r, k] * b[k]
            b[r] = acc / A[r, r]

    @njit(cache=True, nogil=True)
    def _lu_solve_mat(A, piv, X):
        """Solve ``A Y = X`` in place for a matrix of right-hand sides X (m, r)."""
        m, nr = X.shape
        for k in range(m):
            p = piv[k]
            if p != k:
                for j in range(nr):
                    t = X[k, j]
                    X[k, j] = X[p, j]
                    X[p, j] = t
        for r in range(1, m):
            for k in range(r):
                f = A[r, k]
                if f != 0.0:
                    for j in range(nr):
                        X[r, j] -= f * X[k, j]
        for r in range(m - 1, -1, -1):
            for k in range(r + 1, m):
                f = A[r, k]
                if f != 0.0:
                    for j in range(nr):
                        X[r, j] -= f * X[k, j]
            inv = 1.0 / A[r, r]
            for j in range(nr):
                X[r, j] *= inv

    @njit(cache=True, nogil=True)
    def _index_maps(n, M, Mf):
        """Positions in the engine's unknown vector of ion ``i``'s block, ``ion`` (n, K), and of the potentials,
        ``pot`` (K,), ``K = Mf + M + 1``: block entry ``j`` is film node ``j`` (j < Mf), layer node ``j - Mf``
        (j < Mf + M) or ``ln c_p`` (last); potential ``j`` is phi_f at film node ``j``, phi at layer node
        ``j - Mf`` or phi_p (last).  ``Mf = 0``: no film."""
        K = Mf + M + 1
        ion = np.empty((n, K), np.int64)
        pot = np.empty(K, np.int64)
        base = n * Mf + Mf            # the engine's layout: uf, pf, u, p, v, pp
        op = base + n * M
        for i in range(n):
            for j in range(Mf):
                ion[i, j] = i * Mf + j
            for j in range(M):
                ion[i, Mf + j] = base + i * M + j
            ion[i, K - 1] = op + M + i
        for j in range(Mf):
            pot[j] = n * Mf + j
        for j in range(M):
            pot[Mf + j] = op + j
        pot[K - 1] = op + M + n
        return ion, pot

    @njit(cache=True, nogil=True)
    def _deriv(D, x, start, g):
        """``g_k (D u)_k`` at every node of the profile ``u_m = x[start + m]`` (every profile is contiguous in
        the engine's layout; g = 1/g'(xi) of a mapped grid)."""
        M = D.shape[0]
        out = np.empty(M)
        for k in range(M):
            acc = 0.0
            for m in range(M):
                acc += D[k, m] * x[start + m]
            out[k] = acc * g[k]
        return out

    @njit(cache=True, nogil=True)
    def _interface_activity(x, ion, P, z, Mf, M, akind, ap, lg, dlg, jac):
        """ln gamma (4, n) (and, if ``jac``, d ln gamma / d c (4, n, n)) at the wall (the film's last node, or
        the bulk feed without a film), the pore entrance, the pore exit and the permeate, as the engine."""
        n = z.size
        K = Mf + M + 1
        c = np.empty(n)
        for pt in range(4):
            for i in range(n):
                if pt == 0:
                    c[i] = x[ion[i, Mf - 1]] if Mf > 0 else P[CB, i]
                elif pt == 3:
                    c[i] = np.exp(x[ion[i, K - 1]])
                else:
                    c[i] = x[ion[i, Mf + (M - 1) * (pt - 1)]]
            ln_gamma(akind, ap, z, c, lg[pt], dlg[pt], jac)

    @njit(cache=True, nogil=True)
    def _residual(x, F, D, gi, Df, gf, z, P, X, cscale, ion, pot, akind, ap):
        """Scaled residual F (engine layout) of one case at x; False if not finite.  ``P`` (NPAR, n): the
        case's ion parameters (rows LNCB..C0); ``akind``, ``ap``: its activity model (:mod:`.compiled_activity`)."""
        n = z.size
        M = D.shape[0]
        Mf = Df.shape[0]
        K = Mf + M + 1
        N = M - 1
        lg = np.zeros((4, n))
        if akind != IDEAL:
            _interface_activity(x, ion, P, z, Mf, M, akind, ap, lg, np.empty((4, n, n)), False)
        Dp = _deriv(D, x, pot[Mf], gi)
        Dpf = _deriv(Df, x, pot[0] if Mf > 0 else 0, gf)
        en = np.zeros(K)
        for k in range(M):
            en[Mf + k] = X
        for i in range(n):
            idx = ion[i]
            zi = z[i]
            cp = np.exp(x[idx[K - 1]])
            lncw = P[LNCB, i]
            pw = 0.0
            if Mf > 0:
                cb = P[CB, i]
                F[idx[0]] = (x[idx[0]] - cb) / cb
                o = idx[0]
                for k in range(1, Mf):
                    acc = 0.0
                    for m in range(Mf):
                        acc += Df[k, m] * x[o + m]
                    c = x[idx[k]]
                    F[idx[k]] = (acc + zi * c * Dpf[k] - P[PEF, i] * c + P[QF, i] * cp) / cb
                lncw = np.log(x[idx[Mf - 1]])
                pw = x[pot[Mf - 1]]
            o = idx[Mf]
            for k in range(1, M):
                acc = 0.0
                for m in range(M):
                    acc += D[k, m] * x[o + m]
                c = x[idx[Mf + k]]
                F[idx[Mf + k]] = (acc * gi[k] + zi * c * Dp[k] - P[PE, i] * c + P[Q, i] * cp) / P[S, i]
            F[idx[Mf]] = np.log(x[idx[Mf]]) - lncw - P[LNPHI, i] - lg[0, i] + lg[1, i] + zi * (x[pot[Mf]] - pw)
            F[idx[K - 1]] = (np.log(x[idx[Mf + N]]) - x[idx[K - 1]] - P[LNPHI, i] - lg[3, i] + lg[2, i]
                             + zi * (x[pot[Mf + N]] - x[pot[K - 1]]))
            if P[LNCX, i] != 0.0:             # sterically excluded (DSPMDESystem._exclude): c = 0, c_p fixed
                for k in range(M):
                    F[idx[Mf + k]] = x[idx[Mf + k]] / P[S, i]
                F[idx[K - 1]] = x[idx[K - 1]] - P[LNCX, i]
            for j in range(K - 1):
                en[j] += zi * x[idx[j]]
            en[K - 1] += zi * cp
        for j in range(K):
            F[pot[j]] = en[j] / cscale
        if Mf > 0:
            F[pot[0]] = x[pot[0]]           # gauge: phi_f = 0 in the bulk feed
        for j in range(F.size):
            if not np.isfinite(F[j]):
                return False
        return True

    @njit(cache=True, nogil=True)
    def _factor(x, D, gi, Df, gf, z, P, cscale, ion, pot, akind, ap, LU, piv, W, Sc, spiv, Bx):
        """Factor the Jacobian at x: per-ion blocks LU (n, K, K), W = A^-1 E (n, K, K + nt) on the potentials and
        the ion's own ``nt`` (0 or 2) tears, the Schur complement Sc (Kb, Kb) on the border (the potentials, then
        the entry tears of every ion, then the exit tears), Bx (4, n, n) the tear rows' entries on the ions."""
        n = z.size
        M = D.shape[0]
        Mf = Df.shape[0]
        K = Mf + M + 1
        N = M - 1
        Kb = Sc.shape[0]
        nt = W.shape[2] - K
        loc = np.array([Mf - 1, Mf, Mf + N, K - 1])
        Dp = _deriv(D, x, pot[Mf], gi)
        Dpf = _deriv(Df, x, pot[0] if Mf > 0 else 0, gf)
        if nt:                                # d(ln g_0 - ln g_w) and d(ln g_N - ln g_p) on the ions
            lg = np.empty((4, n))
            dlg = np.zeros((4, n, n))
            _interface_activity(x, ion, P, z, Mf, M, akind, ap, lg, dlg, True)
            for l in range(n):
                for i in range(n):
                    Bx[0, l, i] = dlg[0, l, i] if Mf > 0 else 0.0   # the wall is the fixed feed without a film
                    Bx[1, l, i] = -dlg[1, l, i]
                    Bx[2, l, i] = -dlg[2, l, i]
                    Bx[3, l, i] = dlg[3, l, i] * np.exp(x[ion[i, K - 1]])
        Sc[:, :] = 0.0
        for a in range(K, Kb):
            Sc[a, a] = 1.0
        j0 = 0
        if Mf > 0:
            Sc[0, 0] = 1.0                   # the gauge row phi_f,0 involves no ion
            j0 = 1
        col = np.empty(K + nt, np.int64)      # border column of each column of W_i
        for j in range(K):
            col[j] = j
        for i in range(n):
            idx = ion[i]
            A = LU[i]
            E = W[i]
            A[:, :] = 0.0
            E[:, :] = 0.0
            zi = z[i]
            cp = np.exp(x[idx[K - 1]])
            if Mf > 0:
                inv = 1.0 / P[CB, i]
                A[0, 0] = inv
                for k in range(1, Mf):
                    c = x[idx[k]]
                    for m in range(Mf):
                        A[k, m] = Df[k, m] * inv
                        E[k, m] = zi * c * Df[k, m] * inv
                    A[k, k] += (zi * Dpf[k] - P[PEF, i]) * inv
                    A[k, K - 1] = P[QF, i] * cp * inv
                A[Mf, Mf - 1] = -1.0 / x[idx[Mf - 1]]
                E[Mf, Mf - 1] = -zi
            inv = 1.0 / P[S, i]
            excluded = P[LNCX, i] != 0.0
            A[Mf, Mf] = inv if excluded else 1.0 / x[idx[Mf]]
            E[Mf, Mf] = zi
            for k in range(1, M):
                r = Mf + k
                c = x[idx[r]]
                for m in range(M):
                    dk = gi[k] * D[k, m]
                    A[r, Mf + m] = dk * inv
                    E[r, Mf + m] = zi * c * dk * inv
                A[r, r] += (zi * Dp[k] - P[PE, i]) * inv
                A[r, K - 1] = P[Q, i] * cp * inv
            A[K - 1, Mf + N] = 1.0 / x[idx[Mf + N]] if not excluded else 0.0
            A[K - 1, K - 1] = -1.0
            E[K - 1, Mf + N] = zi
            E[K - 1, K - 1] = -zi
            if nt:                            # the entry and exit rows' own activity tears
                E[Mf, K] = 1.0
                E[K - 1, K + 1] = 1.0
                col[K] = K + i
                col[K + 1] = K + n + i
            if excluded:                      # its layer and permeate rows: c_k / s = 0, v = ln(c_p, excluded)
                for r in range(Mf, K):
                    for j in range(K):
                        A[r, j] = 0.0
                    for j in range(K + nt):
                        E[r, j] = 0.0
                    A[r, r] = inv
                A[K - 1, K - 1] = 1.0
            if not _lu_factor(A, piv[i]):
                return False
            if zi != 0.0 or nt:
                _lu_solve_mat(A, piv[i], E)
                f = zi / cscale
                for k in range(j0, K - 1):
                    for j in range(K + nt):
                        Sc[k, col[j]] -= f * E[k, j]
                f = zi * cp / cscale
                for j in range(K + nt):
                    Sc[K - 1, col[j]] -= f * E[K - 1, j]
                for pt in range(4 if nt else 0):   # tear rows: dh_l - sum_i dh_l/dc_i dc_i = 0
                    if pt == 0 and Mf == 0:
                        continue
                    for l in range(n):
                        coef = Bx[pt, l, i]
                        a = K + l if pt < 2 else K + n + l
                        for j in range(K + nt):
                            Sc[a, col[j]] -= coef * E[loc[pt], j]
        return _lu_factor(Sc, spiv)

    @njit(cache=True, nogil=True)
    def _solve(b, d, z, cscale, x, ion, pot, Mf, LU, piv, W, Sc, spiv, Bx):
        """Newton correction: d = J^-1 b through the block factors of :func:`_factor` at the point x."""
        n = z.size
        K = LU.shape[1]
        Kb = Sc.shape[0]
        nt = W.shape[2] - K
        N = K - Mf - 2
        j0 = 1 if Mf > 0 else 0
        w = np.empty((n, K))
        rb = np.zeros(Kb)
        for j in range(K):
            rb[j] = b[pot[j]]
        for i in range(n):
            for j in range(K):
                w[i, j] = b[ion[i, j]]
            _lu_solve(LU[i], piv[i], w[i])
            f = z[i] / cscale
            for j in range(j0, K - 1):
                rb[j] -= f * w[i, j]
            rb[K - 1] -= f * np.exp(x[ion[i, K - 1]]) * w[i, K - 1]
            if nt:
                for l in range(n):
                    rb[K + l] -= Bx[1, l, i] * w[i, Mf] + (Bx[0, l, i] * w[i, Mf - 1] if Mf > 0 else 0.0)
                    rb[K + n + l] -= Bx[2, l, i] * w[i, Mf + N] + Bx[3, l, i] * w[i, K - 1]
        _lu_solve(Sc, spiv, rb)
        for i in range(n):
            Wi = W[i]
            for k in range(K):
                acc = w[i, k]
                if z[i] != 0.0 or nt:
                    for j in range(K):
                        acc -= Wi[k, j] * rb[j]
                    if nt:
                        acc -= Wi[k, K] * rb[K + i] + Wi[k, K + 1] * rb[K + n + i]
                d[ion[i, k]] = acc
        for j in range(K):
            d[pot[j]] = rb[j]

    @njit(cache=True, nogil=True)
    def _newton(x, D, gi, Df, gf, z, P, X, cscale, akind, ap, tol, max_iter, limit_correction):
        """Damped Newton (the engine's NLEQ-ERR variant, :func:`.newton.newton`) for one case, in place.

        Returns (converged, iterations, final scaled residual max norm)."""
        n = z.size
        M = D.shape[0]
        Mf = Df.shape[0]
        K = Mf + M + 1
        ion, pot = _index_maps(n, M, Mf)
        m = x.size
        F = np.empty(m)
        Ft = np.empty(m)
        dx = np.empty(m)
        dbar = np.empty(m)
        trial = np.empty(m)
        wts = np.ones(m)                  # the engine's norm_weights and step_caps
        caps = np.full(m, 3.0)
        for i in range(n):
            for j in range(K - 1):
                wts[ion[i, j]] = P[CB, i] if j < Mf else P[S, i]
                caps[ion[i, j]] = np.inf
        nt = 0 if akind == IDEAL else 2   # activity tears per ion: d(ln g_0 - ln g_w), d(ln g_N - ln g_p)
        Kb = K + nt * n                   # the border: potentials, then the tears
        LU = np.empty((n, K, K))
        W = np.empty((n, K, K + nt))
        piv = np.empty((n, K), np.int64)
        Sc = np.empty((Kb, Kb))
        spiv = np.empty(Kb, np.int64)
        Bx = np.zeros((4, n, n))
        damp = 1.0
        it = 0
        while True:
            if not _residual(x, F, D, gi, Df, gf, z, P, X, cscale, ion, pot, akind, ap):
                return False, it, np.inf
            r = 0.0
            for j in range(m):
                r = max(r, abs(F[j]))
            if r < tol:
                return True, it, r
            if it >= max_iter:
                return False, it, r
            if not _factor(x, D, gi, Df, gf, z, P, cscale, ion, pot, akind, ap, LU, piv, W, Sc, spiv, Bx):
                return False, it, r
            for j in range(m):
                F[j] = -F[j]
            _solve(F, dx, z, cscale, x, ion, pot, Mf, LU, piv, W, Sc, spiv, Bx)
            big = 1.0
            ss = 0.0
            edx = 0.0
            for j in range(m):
                if not np.isfinite(dx[j]):
                    return False, it, r
                big = max(big, abs(dx[j]) / caps[j])
                e = abs(dx[j]) / wts[j]
                ss += e * e
                edx = max(edx, e)
            lam_max = 1.0 / big
            ndx = np.sqrt(ss / m)
            if ndx < 1e-10 and r < 1e-6:      # correction rule: error estimate at round-off
                for j in range(m):
                    x[j] += dx[j]
                return True, it + 1, r
            a = min(1.0, 2.0 * damp)
            while True:
                lam = a * lam_max
                for j in range(m):
                    trial[j] = x[j] + lam * dx[j]
                good = _residual(trial, Ft, D, gi, Df, gf, z, P, X, cscale, ion, pot, akind, ap)
                nbar = np.inf
                if good:
                    for j in range(m):
                        Ft[j] = -Ft[j]
                    _solve(Ft, dbar, z, cscale, x, ion, pot, Mf, LU, piv, W, Sc, spiv, Bx)   # factors at x
                    ss = 0.0
                    for j in range(m):
                        e = dbar[j] / wts[j]
                        ss += e * e
                    nbar = np.sqrt(ss / m)
                    if not np.isfinite(nbar):
                        nbar = np.inf
                if (good and nbar <= (1.0 - lam / 4.0) * ndx) or ndx < 1e-13:
                    rt = np.inf
                    if good:
                        rt = 0.0
                        for j in range(m):
                            rt = max(rt, abs(Ft[j]))
                    if rt < tol:      # NLEQ-ERR's final update with the simplified correction
                        for j in range(m):
                            x[j] = trial[j] + dbar[j]
                        return True, it + 1, rt
                    for j in range(m):
                        x[j] = trial[j]
                    break
                a *= 0.5
                if ndx < 1e-6 and edx < limit_correction and r < 1e-3:   # precision limit
                    return True, it + 1, r
                if a < 1e-6:
                    return False, it + 1, r
            damp = a
            it += 1

    @njit(cache=True, nogil=True)
    def _continuation(x, D, gi, Df, gf, z, P, X, cscale, akind, ap, phi0, tol, max_iter, limit_correction):
        """The engine's adaptive continuation in ln(flux) from the zero-flux (Donnan equilibrium) solution
        (:func:`.solver._continuation`, ``robust=False``) for one case, in place: the layer's and the film's
        ``Pe`` and ``q`` scale with the flux; the last step is at the full flux.  Returns (converged,
        iterations, residual, steps)."""
        n = z.size
        M = D.shape[0]
        Mf = Df.shape[0]
        ion, pot = _index_maps(n, M, Mf)
        ratio = 0.0
        for i in range(n):
            ratio = max(ratio, P[Q, i] * P[CB, i] / P[S, i])
        f0 = min(max(0.05 / max(ratio, 1e-300), 1e-14), 1e-4)
        lnf = np.log(f0)
        dln = -lnf / 6.0
        for i in range(n):                # the engine's initial_guess(shape="equilibrium")
            for j in range(Mf):
                x[ion[i, j]] = P[CB, i]
            for k in range(M):
                x[ion[i, Mf + k]] = P[C0, i] if P[LNCX, i] == 0.0 else 0.0
            x[ion[i, Mf + M]] = P[LNCB, i] if P[LNCX, i] == 0.0 else P[LNCX, i]
        for j in range(Mf):
            x[pot[j]] = 0.0
        for k in range(M):
            x[pot[Mf + k]] = phi0
        x[pot[Mf + M]] = 0.0
        xn = np.empty_like(x)
        Pt = P.copy()
        its = 0
        first = True
        for step in range(200):
            trial = min(lnf + (0.0 if first else dln), 0.0)
            f = np.exp(trial) if trial < 0.0 else 1.0
            for i in range(n):
                for row in (PE, Q, PEF, QF):
                    Pt[row, i] = P[row, i] * f
            xn[:] = x
            ok, it, r = _newton(xn, D, gi, Df, gf, z, Pt, X, cscale, akind, ap, tol, min(25, max_iter),
                                limit_correction)
            its += it
            first = False
            if ok:
                x[:] = xn
                lnf = trial
                dln *= 1.5
                if trial >= 0.0:
                    return True, its, r, step + 1
            else:
                dln *= 0.5
                if dln < 1e-3:
                    return False, its, r, step + 1
        return False, its, np.inf, 200

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
    def _solve_case(b, x0, Ds, Gi, Dfs, Ps, Pfs, Ms, Mfs, z, Pion, Pcase, akind, AP, tol, max_iter,
                    limit_correction, x_out, status, iters, resid, steps):
        """Newton on each grid of ``Ms``/``Mfs`` in turn (interpolant of the last start), for case ``b``."""
        n = z.size
        G = Ms.size
        x = x0[b, :(n + 1) * (Ms[0] + Mfs[0]) + n + 1].copy()
        P = Pion[b]
        ap = AP[b]
        X, cscale, phi0 = Pcase[b, 0], Pcase[b, 1], Pcase[b, 2]
        total = 0
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
            ok, it, r = _newton(x, D, gi, Df, gf, z, P, X, cscale, akind, ap, tol, max_iter, limit_correction)
            total += it
            if not ok:
                x = x_start
                ok, it, r, nsteps = _continuation(x, D, gi, Df, gf, z, P, X, cscale, akind, ap, phi0, tol, max_iter,
                                                  limit_correction)
                total += it
                steps[b] += nsteps
            resid[b] = r
            if not ok:
                status[b] = FAILED_COARSE if g < G - 1 else FAILED
                iters[b] = total
                return
        x_out[b, :] = x
        status[b] = OK
        iters[b] = total

    @njit(cache=True, nogil=True)
    def _solve_serial(x0, Ds, Gi, Dfs, Ps, Pfs, Ms, Mfs, z, Pion, Pcase, akind, AP, tol, max_iter,
                      limit_correction, x_out, status, iters, resid, steps):
        for b in range(x0.shape[0]):
            _solve_case(b, x0, Ds, Gi, Dfs, Ps, Pfs, Ms, Mfs, z, Pion, Pcase, akind, AP, tol, max_iter,
                        limit_correction, x_out, status, iters, resid, steps)

    @njit(cache=True, nogil=True, parallel=True)
    def _solve_parallel(x0, Ds, Gi, Dfs, Ps, Pfs, Ms, Mfs, z, Pion, Pcase, akind, AP, tol, max_iter,
                        limit_correction, x_out, status, iters, resid, steps):
        for b in prange(x0.shape[0]):
            _solve_case(b, x0, Ds, Gi, Dfs, Ps, Pfs, Ms, Mfs, z, Pion, Pcase, akind, AP, tol, max_iter,
                        limit_correction, x_out, status, iters, resid, steps)


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
    and 1/g'(xi) (B, G, Mmax) of each case's layer map on each grid (1 where the grid is plain)."""
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
        Gi[:, g, :N + 1] = 1.0 / grid_map.positions(chebyshev.nodes(N), a)[1]
    return ops[0], ops[2], ops[1], ops[3], Ms, Mfs, Gi


def solve_cases(prm: BatchParameters, scale: np.ndarray, phi0: np.ndarray, x0: np.ndarray, grids: list[int],
                tol: float, max_iter: int | None = None, threads: int = 1, film_grids: list[int] | None = None):
    """Solve eligible cases with the compiled kernel.

    Parameters
    ----------
    prm: the engine's parameters of the cases (:func:`.solver.build_parameters`); all must be eligible.
    scale: (B, n) ion row scales ``s_i`` [mol/m3] and phi0: (B,) dimensionless feed-side Donnan potential
        of the zero-flux equilibrium (both from the engine's :func:`.solver.feed_equilibrium`).
    x0: (B, m0) starting unknowns on the first grid (engine layout, e.g. ``DSPMDESystem.initial_guess``).
    grids: layer intervals of the grids solved in turn, the last one the answer's (e.g. [6, 12, 24]).
    tol: Newton tolerance on the scaled residual (max norm), ``TransportOptions.tol``.
    max_iter: Newton iterations per grid (and per continuation step, at most 25); default
        ``KERNEL_MAX_ITER`` (read at call time).
    threads: > 1 runs the cases on that many numba threads (prange); 1 runs them on the calling thread
        (the GIL is released, so chunks solved by several Python threads run in parallel).
    film_grids: film intervals of each grid (``polarization="film"``, required then; as
        :func:`.solver.coarse_grids`).

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
    Ds, Dfs, Ps, Pfs, Ms, Mfs, Gi = _grid_operators(prm, grids, film_grids)
    cscale = np.maximum((prm.c_feed @ np.abs(prm.z)) + np.abs(prm.charge), 1e-300)
    m = (n + 1) * int(Ms[-1] + Mfs[-1]) + n + 1
    x_out = np.full((B, m), np.nan)
    status = np.full(B, FAILED, np.int64)
    iters = np.zeros(B, np.int64)
    resid = np.full(B, np.inf)
    steps = np.zeros(B, np.int64)
    Pcase = np.column_stack([prm.charge, cscale, phi0]).astype(float)
    akind, AP = activity_parameters(prm)
    args = (np.ascontiguousarray(x0, float), Ds, Gi, Dfs, Ps, Pfs, Ms, Mfs, np.ascontiguousarray(prm.z, float),
            ion_parameters(prm, scale, phi0), Pcase, akind, np.ascontiguousarray(AP, float), float(tol),
            int(max_iter), float(LIMIT_CORRECTION), x_out, status, iters, resid, steps)
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
        solve_cases(prm, np.ones((2, n)), np.zeros(2), np.zeros((2, m0)), grids, 1e-11, 1, threads)
    dt = time.perf_counter() - t0
    log.info("compiled kernel ready in %.1f s (compiled, or loaded from numba's cache)", dt)
    return dt
