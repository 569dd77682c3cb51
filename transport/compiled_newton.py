"""Damped Newton with chord steps and the flux continuation of one case, for the compiled kernel (:mod:`.compiled`).

:func:`_newton` is the engine's error-oriented damped Newton method (:func:`.newton.newton`, NLEQ-ERR natural
monotonicity test, the same step caps, norms and convergence rules) on the discrete system of
:mod:`.compiled_system`, with chord (simplified Newton) steps: the Jacobian's factors are kept while the simplified
corrections contract (P. Deuflhard, *Newton Methods for Nonlinear Problems*, Springer 2004, sec. 2.1.4 and 3.3:
the simplified correction of the monotonicity test is the next chord step).  :func:`_continuation` is the engine's
adaptive continuation in ln(flux) from the zero-flux (Donnan equilibrium) solution (:func:`.solver._continuation`,
``robust=False``).
"""
from __future__ import annotations

import numpy as np

from .compiled_activity import IDEAL
from .compiled_system import C0, CB, LNCB, LNCX, PE, PEF, QF, F_INT_nptype, Q, S

try:  # numba is a dependency, but the engine must keep working without it
    from numba import njit
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    HAVE_NUMBA = False

#: the engine's smallest damping factor: Newton fails when the monotonicity test needs a smaller one
MIN_DAMPING = 1e-6

if HAVE_NUMBA:
    from .compiled_system import _factor, _index_maps, _residual, _solve

    @njit(cache=True, nogil=True)
    def _step_norms(dx, caps, wts):
        """(finite, largest |dx_j| / cap_j (at least 1), scaled rms ||dx||, scaled max norm) of a correction."""
        m = dx.size
        big = 1.0
        edx = 0.0
        for j in range(m):
            if not np.isfinite(dx[j]):
                return False, 1.0, np.inf, np.inf
            big = max(big, abs(dx[j]) / caps[j])
            edx = max(edx, abs(dx[j]) / wts[j])
        return True, big, _scaled_rms(dx, wts, edx), edx

    @njit(cache=True, nogil=True)
    def _scaled_rms(v, wts, vmax):
        """Root mean square of ``v / wts`` given its largest magnitude ``vmax``, without overflow (the engine's
        :func:`.newton.scaled_rms`): inf only if ``vmax`` is."""
        if not np.isfinite(vmax):
            return np.inf
        if vmax == 0.0:
            return 0.0
        ss = 0.0
        for j in range(v.size):
            e = v[j] / wts[j] / vmax
            ss += e * e
        return vmax * np.sqrt(ss / v.size)

    @njit(cache=True, nogil=True)
    def _newton(x, D, gi, Df, gf, z, P, X, cscale, akind, ap, tol, max_iter, limit_correction, theta_max):
        """Damped Newton (the engine's NLEQ-ERR variant, :func:`.newton.newton`) for one case, in place, with
        chord (simplified Newton) steps.

        The factors of the Jacobian are kept across iterations: when an accepted full (undamped) step's simplified
        correction (the next step's Newton correction with the same factors) has contracted, ``||dxbar|| <=
        theta_max ||dx||``, that correction is the next step; otherwise the next iterate refactors (chord steps in
        the damped phase make slow progress and use up the iteration budget).  A chord step is
        accepted only by the same natural monotonicity test as a Newton step; one that fails it, is not
        finite, or would trigger the correction rule is redone with fresh factors, so damping, the correction
        rule and the precision limit act on Newton corrections exactly as the engine's.  The convergence test
        (``||F||_inf < tol`` at the accepted point, then NLEQ-ERR's final simplified correction) is unchanged.
        ``theta_max <= 0`` refactors every iteration (the plain damped Newton method).  The residual of an
        accepted trial point is the next iterate's (not evaluated again), and that evaluation also gives
        d ln gamma / d c there for the factorization (:func:`.compiled_system._factor` with ``have_dlg``): one
        activity evaluation per point instead of two.

        Returns (converged, iterations, final scaled residual max norm, factorizations, residual evaluations,
        Newton corrections): the residual evaluations count the start's and every trial point's (damping trials
        included), the corrections every solve through the factors (``dx`` and the simplified ``dbar``)."""
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
        spiv = np.empty(Kb, F_INT_nptype)   # LAPACK's pivot integers (compiled_system._getrf)
        Bx = np.zeros((4, n, n))
        cpf = np.empty(n)
        jac = akind != IDEAL              # the residuals also give d ln gamma / d c, reused by the factorization
        dlg = np.zeros((4, n, n))         # ... at x
        dlg_t = np.zeros((4, n, n))       # ... at the trial point
        damp = 1.0
        it = 0
        nfac = 0
        fresh = False                     # the factors are the Jacobian's at x
        nres = 1                          # residual evaluations (the start's, then every trial point's)
        nsol = 0                          # Newton corrections through the factors (dx and dbar)
        reuse = False                     # dx already holds the chord correction at x (the last dbar)
        if not _residual(x, F, D, gi, Df, gf, z, P, X, cscale, ion, pot, akind, ap, dlg, jac):
            return False, it, np.inf, nfac, nres, nsol
        while True:
            r = 0.0
            for j in range(m):
                r = max(r, abs(F[j]))
            if r < tol:
                return True, it, r, nfac, nres, nsol
            if it >= max_iter:
                return False, it, r, nfac, nres, nsol
            if not reuse:
                if not fresh:
                    if not _factor(x, D, gi, Df, gf, z, P, cscale, ion, pot, akind, ap, LU, piv, W, Sc, spiv, Bx,
                                   cpf, dlg, True):
                        return False, it, r, nfac, nres, nsol
                    nfac += 1
                    fresh = True
                for j in range(m):
                    F[j] = -F[j]
                nsol += 1
                _solve(F, dx, z, cscale, cpf, ion, pot, Mf, LU, piv, W, Sc, spiv, Bx)
                for j in range(m):
                    F[j] = -F[j]
            reuse = False
            finite, big, ndx, edx = _step_norms(dx, caps, wts)
            if not fresh and (not finite or (ndx < 1e-10 and r < 1e-6)):
                continue                      # only a Newton correction may fail or trigger the correction rule
            if not finite:
                return False, it, r, nfac, nres, nsol
            lam_max = 1.0 / big
            if ndx < 1e-10 and r < 1e-6:      # correction rule: error estimate at round-off
                for j in range(m):
                    x[j] += dx[j]
                return True, it + 1, r, nfac, nres, nsol
            a = min(1.0, 2.0 * damp)
            redo = False
            while True:
                lam = a * lam_max
                for j in range(m):
                    trial[j] = x[j] + lam * dx[j]
                nres += 1
                good = _residual(trial, Ft, D, gi, Df, gf, z, P, X, cscale, ion, pot, akind, ap, dlg_t, jac)
                nbar = np.inf
                if good:
                    for j in range(m):
                        Ft[j] = -Ft[j]
                    nsol += 1
                    _solve(Ft, dbar, z, cscale, cpf, ion, pot, Mf, LU, piv, W, Sc, spiv, Bx)   # current factors
                    nbar = _step_norms(dbar, caps, wts)[2]    # inf if not finite
                if (good and nbar <= (1.0 - lam / 4.0) * ndx) or (fresh and ndx < 1e-13):
                    if not good:              # accepted at round-off although the residual there is not finite
                        return False, it + 1, np.inf, nfac, nres, nsol
                    rt = 0.0
                    for j in range(m):
                        rt = max(rt, abs(Ft[j]))
                    if rt < tol:      # NLEQ-ERR's final update with the simplified correction
                        for j in range(m):
                            x[j] = trial[j] + dbar[j]
                        return True, it + 1, rt, nfac, nres, nsol
                    for j in range(m):
                        x[j] = trial[j]
                        F[j] = -Ft[j]         # the residual at the new x
                    dlg[:, :, :] = dlg_t
                    fresh = False
                    if theta_max > 0.0 and lam == 1.0 and nbar <= theta_max * ndx and 2 * it < max_iter:
                        # a full step in the local (contracting) phase: the simplified correction is the next step
                        # (within the first half of the iteration budget, so that chord steps cannot exhaust it)
                        for j in range(m):
                            dx[j] = dbar[j]
                        reuse = True
                    break
                if not fresh:                 # a failed chord step: redo the iteration with fresh factors
                    redo = True
                    break
                a *= 0.5
                if ndx < 1e-6 and edx < limit_correction and r < 1e-3:   # precision limit
                    return True, it + 1, r, nfac, nres, nsol
                if a < MIN_DAMPING:
                    return False, it + 1, r, nfac, nres, nsol
            if redo:
                continue
            damp = a
            it += 1

    @njit(cache=True, nogil=True)
    def _continuation(x, D, gi, Df, gf, z, P, X, cscale, akind, ap, phi0, tol, max_iter, limit_correction, theta_max):
        """The engine's adaptive continuation in ln(flux) from the zero-flux (Donnan equilibrium) solution
        (:func:`.solver._continuation`, ``robust=False``) for one case, in place: the layer's and the film's
        ``Pe`` and ``q`` scale with the flux; the last step is at the full flux.  Returns (converged,
        iterations, residual, steps, factorizations, residual evaluations, corrections)."""
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
        nfac = 0
        nres = 0
        nsol = 0
        first = True
        for step in range(200):
            trial = min(lnf + (0.0 if first else dln), 0.0)
            f = np.exp(trial) if trial < 0.0 else 1.0
            for i in range(n):
                for row in (PE, Q, PEF, QF):
                    Pt[row, i] = P[row, i] * f
            xn[:] = x
            ok, it, r, nf, nr, ns = _newton(xn, D, gi, Df, gf, z, Pt, X, cscale, akind, ap, tol,
                                            min(25, max_iter), limit_correction, theta_max)
            its += it
            nfac += nf
            nres += nr
            nsol += ns
            first = False
            if ok:
                x[:] = xn
                lnf = trial
                dln *= 1.5
                if trial >= 0.0:
                    return True, its, r, step + 1, nfac, nres, nsol
            else:
                dln *= 0.5
                if dln < 1e-3:
                    return False, its, r, step + 1, nfac, nres, nsol
        return False, its, np.inf, 200, nfac, nres, nsol
