"""Compiled (numba) Newton kernel: the fast path of the DSPM-DE engine for its simplest configuration.

Eligible: ideal activity, no concentration polarization, no image forces, the water flux given (not the
pressure), at least one charged ion, no sterically excluded ion, and a plain Chebyshev grid (largest ion
Peclet number below ``TransportOptions.grid_map_peclet``).  For such a case the discrete system of
:class:`.system.DSPMDESystem` on ``N`` intervals (``M = N + 1`` nodes) has the unknowns ``c_ik`` [mol/m3],
``phi_k``, ``v_i = ln c_p,i`` and ``phi_p``, and the rows (seed 003 eqs. 1, 3-4, 9, 12)::

    node 0:   ln c_i0 - ln c_b,i - ln Phi_i + z_i phi_0 = 0
    k >= 1:   [(D c_i)_k + z_i c_ik (D phi)_k - Pe_i c_ik + q_i c_p,i] / s_i = 0
    permeate: ln c_iN - v_i - ln Phi_i + z_i (phi_N - phi_p) = 0
    EN:       (sum_i z_i c_ik + X) / cscale = 0 (every node k),   sum_i z_i c_p,i / cscale = 0

the same equations, row scales and unknown layout as the engine (``q_i = J_v dx_e / (K_d D_i)``,
``Pe_i = K_c q_i``, ``s_i`` the feed-Donnan pore concentration, ``cscale = sum |z_i| c_b,i + |X|``).

Structure used by the linear algebra: with the potentials fixed, the rows of ion ``i`` (its ``M``
collocation/boundary rows and its permeate row) involve only its own ``M + 1`` unknowns, a block
``A_i``; electroneutrality couples the ions.  Each Newton step factors every ``A_i`` (LU, partial
pivoting), forms ``W_i = A_i^-1 E_i`` (``E_i``: the block's columns on the ``M + 1`` potentials
``phi_0..phi_N, phi_p``), the Schur complement ``S = -sum_i B_i W_i`` (``B_i``: the EN rows on ion
``i``; the EN rows do not involve the potentials) and its LU: ``O(n M^3)`` per factorization instead
of the dense ``O((n + 1)^3 M^3)``.  The damped Newton method is the engine's (:func:`.newton.newton`,
NLEQ-ERR error-oriented damping, the same step caps, norms and convergence rules), run per case, with
the engine's coarse-grid start (Newton on each grid of ``coarse_grids(options)``, the Chebyshev
interpolant of its solution starting the next) and, on a grid where Newton fails, the engine's adaptive
flux continuation from the zero-flux (Donnan equilibrium) solution.  A case that still fails (the
engine's robust continuation and present-ion fallbacks are not in the kernel) is returned unconverged;
the caller re-solves it with the full engine.

Measured (benchmarks/compiled_kernel.py): ~60-90 us per 5-ion case on one core; rejections equal to
the engine's to ~1e-14.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from nanosep.errors import InvalidInputError

from .options import TransportOptions
from .system import BatchParameters

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
    return options.activity == "ideal" and options.polarization == "none" and not options.image_forces


def kernel_cases(options: TransportOptions, prm: BatchParameters) -> np.ndarray:
    """(B,) bool: the cases of a chunk the kernel is to solve under ``options`` (none if the configuration
    is not eligible).  Per case, independent of the chunk: a case's answer does not depend on the batching."""
    if not configuration_eligible(options):
        return np.zeros(prm.batch, bool)
    return eligible_cases(prm)


def eligible_cases(prm: BatchParameters) -> np.ndarray:
    """(B,) bool: cases of ``prm`` the kernel can solve (flux given, charged, nothing excluded, no grid map)."""
    ok = np.full(prm.batch, prm.pressure is None and bool(np.any(prm.z != 0)) and prm.activity is None
                 and prm.image is None and prm.polarization == "none")
    if prm.excluded is not None:
        ok &= ~prm.excluded.any(axis=1)
    if prm.grid_map is not None:
        ok &= prm.grid_map == 0
    return ok


# ---------------------------------------------------------------------- numba kernels
if HAVE_NUMBA:
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
    def _dphi(D, x, ip):
        """(D phi)_k at every node: the potentials are x[ip:ip + M]."""
        M = D.shape[0]
        Dp = np.empty(M)
        for k in range(M):
            acc = 0.0
            for m in range(M):
                acc += D[k, m] * x[ip + m]
            Dp[k] = acc
        return Dp

    @njit(cache=True, nogil=True)
    def _residual(x, F, D, n, z, lncb, lnphi, pe, q, s, X, cscale):
        """Scaled residual F (engine layout u, p, v, pp) of one case at x; False if not finite."""
        M = D.shape[0]
        N = M - 1
        ip = n * M
        iv = ip + M
        ipp = iv + n
        Dp = _dphi(D, x, ip)
        for k in range(M):
            F[ip + k] = X
        F[ipp] = 0.0
        for i in range(n):
            o = i * M
            cp = np.exp(x[iv + i])
            zi = z[i]
            for k in range(1, M):
                acc = 0.0
                for m in range(M):
                    acc += D[k, m] * x[o + m]
                F[o + k] = (acc + zi * x[o + k] * Dp[k] - pe[i] * x[o + k] + q[i] * cp) / s[i]
            F[o] = np.log(x[o]) - lncb[i] - lnphi[i] + zi * x[ip]
            F[iv + i] = np.log(x[o + N]) - x[iv + i] - lnphi[i] + zi * (x[ip + N] - x[ipp])
            for k in range(M):
                F[ip + k] += zi * x[o + k]
            F[ipp] += zi * cp
        for k in range(M):
            F[ip + k] /= cscale
        F[ipp] /= cscale
        for j in range(F.size):
            if not np.isfinite(F[j]):
                return False
        return True

    @njit(cache=True, nogil=True)
    def _factor(x, D, n, z, pe, q, s, cscale, LU, piv, W, S, spiv):
        """Factor the Jacobian at x: per-ion blocks LU (n, M+1, M+1), W = A^-1 E, Schur complement S."""
        M = D.shape[0]
        N = M - 1
        ip = n * M
        iv = ip + M
        Dp = _dphi(D, x, ip)
        S[:, :] = 0.0
        for i in range(n):
            o = i * M
            A = LU[i]
            E = W[i]
            A[:, :] = 0.0
            E[:, :] = 0.0
            zi = z[i]
            inv = 1.0 / s[i]
            cp = np.exp(x[iv + i])
            A[0, 0] = 1.0 / x[o]
            E[0, 0] = zi
            for k in range(1, M):
                ck = x[o + k]
                for m in range(M):
                    A[k, m] = D[k, m] * inv
                    E[k, m] = zi * ck * D[k, m] * inv
                A[k, k] += (zi * Dp[k] - pe[i]) * inv
                A[k, M] = q[i] * cp * inv
            A[M, N] = 1.0 / x[o + N]
            A[M, M] = -1.0
            E[M, N] = zi
            E[M, M] = -zi
            if not _lu_factor(A, piv[i]):
                return False
            if zi != 0.0:
                _lu_solve_mat(A, piv[i], E)
                for k in range(M):
                    f = zi / cscale
                    for j in range(M + 1):
                        S[k, j] -= f * E[k, j]
                f = zi * cp / cscale
                for j in range(M + 1):
                    S[M, j] -= f * E[M, j]
        return _lu_factor(S, spiv)

    @njit(cache=True, nogil=True)
    def _solve(b, d, n, z, cscale, x, LU, piv, W, S, spiv):
        """Newton correction: d = J^-1 b through the block factors of :func:`_factor` at the point x."""
        M = LU.shape[1] - 1
        ip = n * M
        iv = ip + M
        ipp = iv + n
        w = np.empty((n, M + 1))
        rb = np.empty(M + 1)
        for k in range(M):
            rb[k] = b[ip + k]
        rb[M] = b[ipp]
        for i in range(n):
            o = i * M
            for k in range(M):
                w[i, k] = b[o + k]
            w[i, M] = b[iv + i]
            _lu_solve(LU[i], piv[i], w[i])
            f = z[i] / cscale
            for k in range(M):
                rb[k] -= f * w[i, k]
            rb[M] -= f * np.exp(x[iv + i]) * w[i, M]
        _lu_solve(S, spiv, rb)
        for i in range(n):
            o = i * M
            Wi = W[i]
            for k in range(M + 1):
                acc = w[i, k]
                if z[i] != 0.0:
                    for j in range(M + 1):
                        acc -= Wi[k, j] * rb[j]
                if k < M:
                    d[o + k] = acc
                else:
                    d[iv + i] = acc
        for k in range(M):
            d[ip + k] = rb[k]
        d[ipp] = rb[M]

    @njit(cache=True, nogil=True)
    def _newton(x, D, n, z, lncb, lnphi, pe, q, s, X, cscale, tol, max_iter, limit_correction):
        """Damped Newton (the engine's NLEQ-ERR variant, :func:`.newton.newton`) for one case, in place.

        Returns (converged, iterations, final scaled residual max norm)."""
        M = D.shape[0]
        m = x.size
        F = np.empty(m)
        Ft = np.empty(m)
        dx = np.empty(m)
        dbar = np.empty(m)
        trial = np.empty(m)
        wts = np.ones(m)
        caps = np.full(m, 3.0)
        for i in range(n):
            for k in range(M):
                wts[i * M + k] = s[i]
                caps[i * M + k] = np.inf
        LU = np.empty((n, M + 1, M + 1))
        W = np.empty((n, M + 1, M + 1))
        piv = np.empty((n, M + 1), np.int64)
        S = np.empty((M + 1, M + 1))
        spiv = np.empty(M + 1, np.int64)
        damp = 1.0
        it = 0
        while True:
            if not _residual(x, F, D, n, z, lncb, lnphi, pe, q, s, X, cscale):
                return False, it, np.inf
            r = 0.0
            for j in range(m):
                r = max(r, abs(F[j]))
            if r < tol:
                return True, it, r
            if it >= max_iter:
                return False, it, r
            if not _factor(x, D, n, z, pe, q, s, cscale, LU, piv, W, S, spiv):
                return False, it, r
            for j in range(m):
                F[j] = -F[j]
            _solve(F, dx, n, z, cscale, x, LU, piv, W, S, spiv)
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
                good = _residual(trial, Ft, D, n, z, lncb, lnphi, pe, q, s, X, cscale)
                nbar = np.inf
                if good:
                    for j in range(m):
                        Ft[j] = -Ft[j]
                    _solve(Ft, dbar, n, z, cscale, x, LU, piv, W, S, spiv)   # factors (and c_p) at x
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
    def _continuation(x, D, n, z, lncb, lnphi, pe, q, s, X, cscale, c0, phi0, tol, max_iter, limit_correction):
        """The engine's adaptive continuation in ln(flux) from the zero-flux (Donnan equilibrium) solution
        (:func:`.solver._continuation`, ``robust=False``) for one case, in place: ``pe``, ``q`` scale with
        the flux; the last step is at the full flux.  Returns (converged, iterations, residual, steps)."""
        M = D.shape[0]
        ratio = 0.0
        for i in range(n):
            ratio = max(ratio, q[i] * np.exp(lncb[i]) / s[i])
        f0 = min(max(0.05 / max(ratio, 1e-300), 1e-14), 1e-4)
        lnf = np.log(f0)
        dln = -lnf / 6.0
        for i in range(n):
            for k in range(M):
                x[i * M + k] = c0[i]
            x[n * M + M + i] = lncb[i]
        for k in range(M):
            x[n * M + k] = phi0
        x[n * M + M + n] = 0.0
        xn = np.empty_like(x)
        pe_t = np.empty(n)
        q_t = np.empty(n)
        its = 0
        first = True
        for step in range(200):
            trial = min(lnf + (0.0 if first else dln), 0.0)
            f = np.exp(trial)
            for i in range(n):
                q_t[i] = q[i] * f if trial < 0.0 else q[i]
                pe_t[i] = pe[i] * f if trial < 0.0 else pe[i]
            xn[:] = x
            ok, it, r = _newton(xn, D, n, z, lncb, lnphi, pe_t, q_t, s, X, cscale, tol, min(25, max_iter),
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
    def _prolong(xc, P, n, Mc, Mf):
        """Interpolate one case's unknowns from Mc to Mf nodes (profiles by P (Mf, Mc); the rest copied)."""
        xf = np.empty(n * Mf + Mf + n + 1)
        for blk in range(n + 1):
            for k in range(Mf):
                acc = 0.0
                for j in range(Mc):
                    acc += P[k, j] * xc[blk * Mc + j]
                xf[blk * Mf + k] = acc
        for j in range(n + 1):
            xf[(n + 1) * Mf + j] = xc[(n + 1) * Mc + j]
        return xf

    @njit(cache=True, nogil=True)
    def _solve_case(b, x0, Ds, Ps, Ms, z, lncb, lnphi, pe, q, s, X, cscale, c0, phi0, tol, max_iter,
                    limit_correction, x_out, status, iters, resid, steps):
        """Newton on each grid of ``Ms`` in turn (interpolant of the last start), for case ``b``."""
        n = z.size
        G = Ms.size
        M0 = Ms[0]
        x = x0[b, :n * M0 + M0 + n + 1].copy()
        total = 0
        for g in range(G):
            M = Ms[g]
            if g > 0:
                x = _prolong(x, np.ascontiguousarray(Ps[g, :M, :Ms[g - 1]]), n, Ms[g - 1], M)
            D = np.ascontiguousarray(Ds[g, :M, :M])
            x_start = x.copy()
            ok, it, r = _newton(x, D, n, z, lncb[b], lnphi[b], pe[b], q[b], s[b], X[b], cscale[b],
                                tol, max_iter, limit_correction)
            total += it
            if not ok:
                x = x_start
                ok, it, r, nsteps = _continuation(x, D, n, z, lncb[b], lnphi[b], pe[b], q[b], s[b], X[b],
                                                  cscale[b], c0[b], phi0[b], tol, max_iter, limit_correction)
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
    def _solve_serial(x0, Ds, Ps, Ms, z, lncb, lnphi, pe, q, s, X, cscale, c0, phi0, tol, max_iter,
                      limit_correction, x_out, status, iters, resid, steps):
        for b in range(x0.shape[0]):
            _solve_case(b, x0, Ds, Ps, Ms, z, lncb, lnphi, pe, q, s, X, cscale, c0, phi0, tol, max_iter,
                        limit_correction, x_out, status, iters, resid, steps)

    @njit(cache=True, nogil=True, parallel=True)
    def _solve_parallel(x0, Ds, Ps, Ms, z, lncb, lnphi, pe, q, s, X, cscale, c0, phi0, tol, max_iter,
                        limit_correction, x_out, status, iters, resid, steps):
        for b in prange(x0.shape[0]):
            _solve_case(b, x0, Ds, Ps, Ms, z, lncb, lnphi, pe, q, s, X, cscale, c0, phi0, tol, max_iter,
                        limit_correction, x_out, status, iters, resid, steps)


# ---------------------------------------------------------------------- Python entry point
def solve_cases(prm: BatchParameters, scale: np.ndarray, phi0: np.ndarray, x0: np.ndarray, grids: list[int],
                tol: float, max_iter: int | None = None, threads: int = 1):
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

    Returns
    -------
    x (B, m) unknowns on the last grid (NaN where not converged), status (B,) int (``OK``,
    ``FAILED_COARSE``: failed on a coarse grid, ``FAILED``: on the last grid), iterations (B,),
    residual (B,) final scaled residual max norm, continuation steps (B,) (Newton solves of the flux
    continuation, on the grids where Newton from the start failed; as ``BatchResult.continuation_steps``).
    """
    from . import chebyshev
    from .newton import LIMIT_CORRECTION

    max_iter = KERNEL_MAX_ITER if max_iter is None else max_iter
    B, n = prm.c_feed.shape
    Ms = np.array([g + 1 for g in grids], np.int64)
    Mmax = int(Ms.max())
    Ds = np.zeros((len(grids), Mmax, Mmax))
    Ps = np.zeros((len(grids), Mmax, Mmax))
    for g, N in enumerate(grids):
        Ds[g, :N + 1, :N + 1] = chebyshev.diff_matrix(N)
        if g:
            Ps[g, :N + 1, :grids[g - 1] + 1] = chebyshev.interp_matrix(grids[g - 1], N)
    q = (prm.flux * prm.thickness)[:, None] / (prm.kd * prm.diff)     # as DSPMDESystem._layer
    pe = prm.kc * q
    cscale = np.maximum((prm.c_feed @ np.abs(prm.z)) + np.abs(prm.charge), 1e-300)
    m = n * int(Ms[-1]) + int(Ms[-1]) + n + 1
    x_out = np.full((B, m), np.nan)
    status = np.full(B, FAILED, np.int64)
    iters = np.zeros(B, np.int64)
    resid = np.full(B, np.inf)
    steps = np.zeros(B, np.int64)
    c0 = prm.c_feed * np.exp(prm.ln_phi_fixed - prm.z[None, :] * phi0[:, None])   # equilibrium pore values
    args = (np.ascontiguousarray(x0, float), Ds, Ps, Ms, np.ascontiguousarray(prm.z, float),
            np.ascontiguousarray(np.log(prm.c_feed)), np.ascontiguousarray(prm.ln_phi_fixed, float),
            np.ascontiguousarray(pe), np.ascontiguousarray(q), np.ascontiguousarray(scale, float),
            np.ascontiguousarray(prm.charge, float), cscale, np.ascontiguousarray(c0), np.ascontiguousarray(phi0, float),
            float(tol), int(max_iter), float(LIMIT_CORRECTION), x_out, status, iters, resid, steps)
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
    """Compile (or load from numba's on-disk cache) both kernel entry points on a one-ion-pair problem;
    returns the seconds spent (0 when they are already loaded in this process)."""
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
