"""The discrete DSPM-DE system of one case for the compiled kernel (:mod:`.compiled`), in numba: the scaled
residual (:func:`_residual`, the engine's rows, scales and unknown layout; the equations are listed in
:mod:`.compiled`'s docstring), the Jacobian's structured factorization (:func:`_factor`: per-ion block LUs and the
Schur complement on the potentials and activity tears) and the Newton correction through it (:func:`_solve`),
with the small dense LU routines they use.
"""
from __future__ import annotations

import numpy as np

from .compiled_activity import IDEAL
from .system import TINY_C

try:  # numba is a dependency, but the engine must keep working without it
    from numba import njit
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    HAVE_NUMBA = False

F_INT_nptype = np.int64   # pivot integers of the factorizations (LAPACK's int where numba binds getrf)
if HAVE_NUMBA:
    try:   # LAPACK getrf through numba's internal binding (the one np.linalg uses; cacheable, unlike ctypes pointers)
        from numba.np.linalg import _LAPACK, F_INT_nptype  # noqa: F401  (F_INT_nptype: the pivot dtype)
        from numba import types as _nbtypes
        _getrf_lapack = _LAPACK().numba_xxgetrf(_nbtypes.float64)
        _KIND_D = np.int8(ord("d"))     # LAPACK's type letter, as numba's binding takes it
        HAVE_GETRF = True
    except Exception:  # pragma: no cover - a numba without that binding: the hand LU (_lu_factor) instead
        HAVE_GETRF = False

#: rows of a case's (NPAR, n) ion parameter array (:func:`ion_parameters`): ln c_b, ln Phi (steric + Born),
#: layer Pe and q, row scale s, c_b [mol/m3], film Pe and q, zero-flux pore concentration [mol/m3], and
#: ln of the permeate carried for a sterically excluded ion (``EXCLUDED_PERMEATE c_b``; 0: not excluded)
LNCB, LNPHI, PE, Q, S, CB, PEF, QF, C0, LNCX = range(10)
NPAR = 10


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
            Ak = A[k]                         # row views: numba vectorizes the row update through them, not
            for r in range(k + 1, m):         # through A[r, j] (same operations, same order: bit-identical)
                Ar = A[r]
                f = Ar[k] * inv
                Ar[k] = f
                if f != 0.0:
                    for j in range(k + 1, m):
                        Ar[j] -= f * Ak[j]
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
    def _getrf(A, piv):
        """LU of the square A in place by LAPACK ``dgetrf`` where numba binds it (the row-major A is the transpose
        for LAPACK: ``A^T = P L U``, so A's lower triangle holds ``U^T`` and its strict upper triangle ``L^T``),
        else by :func:`_lu_factor`; False if a pivot is zero or not finite.  Solve with :func:`_getrs`.  Used for
        the border's Schur complement (53 unknowns for 5 ions on 24 + 16 intervals): 2-2.5x faster than
        :func:`_lu_factor` there; the ion blocks keep :func:`_lu_factor`, whose skipped zero multipliers make it
        as fast on their sparse blocks."""
        m = A.shape[0]
        if HAVE_GETRF:
            if _getrf_lapack(_KIND_D, m, m, A.ctypes, m, piv.ctypes) != 0:
                return False
            for k in range(m):
                if not (A[k, k] != 0.0) or not np.isfinite(A[k, k]):
                    return False
            return True
        return _lu_factor(A, piv)

    @njit(cache=True, nogil=True)
    def _getrs(A, piv, b):
        """Solve ``A x = b`` in place (b a vector) with the factors of :func:`_getrf`: ``x = P L^-T U^-T b``."""
        if not HAVE_GETRF:
            _lu_solve(A, piv, b)
            return
        m = A.shape[0]
        for r in range(m):                    # U^T (lower, A's lower triangle)
            acc = b[r]
            for k in range(r):
                acc -= A[r, k] * b[k]
            b[r] = acc / A[r, r]
        for r in range(m - 1, -1, -1):        # L^T (unit upper, A's strict upper triangle)
            acc = b[r]
            for k in range(r + 1, m):
                acc -= A[r, k] * b[k]
            b[r] = acc
        for k in range(m - 1, -1, -1):        # getrf's row interchanges (1-based), last first
            p = piv[k] - 1
            if p != k:
                t = b[k]
                b[k] = b[p]
                b[p] = t

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
    def _residual(x, F, D, gi, Df, gf, z, P, X, cscale, ion, pot, akind, ap, dlg, jac):
        """Scaled residual F (engine layout) of one case at x; False if not finite.  ``P`` (NPAR, n): the
        case's ion parameters (rows LNCB..C0); ``akind``, ``ap``: its activity model (:mod:`.compiled_activity`);
        ``jac``: also write d ln gamma / d c at the four interface points into dlg (4, n, n) (the same evaluation,
        for a factorization at x to reuse: :func:`_factor` with ``have_dlg``)."""
        n = z.size
        M = D.shape[0]
        Mf = Df.shape[0]
        K = Mf + M + 1
        N = M - 1
        lg = np.zeros((4, n))
        if akind != IDEAL:
            _interface_activity(x, ion, P, z, Mf, M, akind, ap, lg, dlg, jac)
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
    def _factor(x, D, gi, Df, gf, z, P, cscale, ion, pot, akind, ap, LU, piv, W, Sc, spiv, Bx, cpf, dlg,
                have_dlg):
        """Factor the Jacobian at x: per-ion blocks LU (n, K, K), W = A^-1 E (n, K, K + nt) on the potentials and
        the ion's own ``nt`` (0 or 2) tears, the Schur complement Sc (Kb, Kb) on the border (the potentials, then
        the entry tears of every ion, then the exit tears), Bx (4, n, n) the tear rows' entries on the ions,
        cpf (n,) the permeate concentrations c_p,i at x (the permeate EN row's entries, used by :func:`_solve`).
        dlg (4, n, n): d ln gamma / d c at the interface points of x, given (``have_dlg``: from :func:`_residual`
        at this x) or evaluated here."""
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
            if not have_dlg:
                _interface_activity(x, ion, P, z, Mf, M, akind, ap, np.empty((4, n)), dlg, True)
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
            cpf[i] = cp
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
            A[Mf, Mf] = inv if excluded else 1.0 / max(x[idx[Mf]], TINY_C)   # d ln c / dc, as the engine's
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
            A[K - 1, Mf + N] = 1.0 / max(x[idx[Mf + N]], TINY_C) if not excluded else 0.0
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
        return _getrf(Sc, spiv)

    @njit(cache=True, nogil=True)
    def _solve(b, d, z, cscale, cpf, ion, pot, Mf, LU, piv, W, Sc, spiv, Bx):
        """Newton correction: d = J^-1 b through the block factors of :func:`_factor` (cpf: its c_p,i)."""
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
            rb[K - 1] -= f * cpf[i] * w[i, K - 1]
            if nt:
                for l in range(n):
                    rb[K + l] -= Bx[1, l, i] * w[i, Mf] + (Bx[0, l, i] * w[i, Mf - 1] if Mf > 0 else 0.0)
                    rb[K + n + l] -= Bx[2, l, i] * w[i, Mf + N] + Bx[3, l, i] * w[i, K - 1]
        _getrs(Sc, spiv, rb)
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
