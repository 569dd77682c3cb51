"""Shooting start for the compiled kernel (:mod:`.compiled`): the layer and film equations integrated as initial
value problems by Taylor series, Newton on the permeate, and the result written on the answer's collocation grid.

With the water flux given, the permeate ``c_p`` fixes every ion flux (``j_i = J_v c_p,i``), and the layer and film
equations of :mod:`.compiled` become, in the scaled coordinate ``xi`` (0 at the feed side, 1 at the permeate side;
seed 003 eqs. 1, 3-4, 9, 12, the same rows the collocation discretizes)::

    dc_i/dxi = Pe_i c_i - q_i c_p,i - z_i c_i E,   dphi/dxi = E,
    E = sum_j z_j (Pe_j c_j - q_j c_p,j) / sum_j z_j^2 c_j      (electroneutrality kept along the profile)

(film: ``Pe_f,i = q_f,i``, no fixed charge).  Given ``v = ln c_p`` the permeate-side interface fixes the pore's
exit concentrations (Donnan with activities, :func:`_interface`), the layer equations are integrated backwards from
``xi = 1`` to ``xi = 0`` (backwards the convective modes ``exp(Pe xi)`` decay, so the integration is stable), the
feed-side interface gives the wall concentrations, and the film equations are integrated backwards from the wall
to the bulk.  The ``n`` conditions on ``v``: the integrated bulk equals the feed (``ln c_i(0) - ln c_b,i``, every ion
but one charged ion ``k``, whose row is implied by the others and electroneutrality) and the permeate is
electroneutral (``sum_i z_i c_p,i / cscale``, row ``k``).

Integration: Taylor series of order ``TAYLOR_ORDER`` about each step's start, the coefficients from the recurrences
of the equations (the quotient ``E`` by series division; R. Barrio, "Performance of the Taylor series method for
ODEs/DAEs", Appl. Math. Comput. 163 (2005) 525-545), the step from the last two coefficients of each ion relative
to its value, the derivatives with respect to ``v`` (tangents) from the differentiated recurrences, and the value
at any point of a step from its polynomial (the collocation nodes cost no extra steps).  Newton on ``v``: exact
Jacobians (tangents), kept as chord steps while the corrections contract by ``SHOOT_CHORD`` and are below
``SHOOT_CHORD_MAX`` (0.3 and 0.1 measured: 1.6 instead of 2.3 Jacobians per case but slower, 210 against 150 us per
case on the throughput batch); the integration
tolerance tightens with the correction (``1e-4 ||dv||^2``, down to ``TAYLOR_TOL``); converged when the correction
is below ``SHOOT_STEP_TOL`` with the integration at ``TAYLOR_TOL`` (the error after it ~ its square).

:func:`fill_grid` writes the converged profiles at the answer grid's nodes (layer: the case's, possibly mapped,
node positions; film: its Chebyshev nodes) in the engine's unknown layout; the kernel then runs its Newton on that
grid from them (:func:`.compiled._solve_case`), so the answer is the collocation solution to ``options.tol`` either
way: on the throughput batch the filled profiles meet the collocation residual test with no Newton step for 97 %
of the cases (the integrated profile is the exact solution of the equations, which the 24-interval grid resolves
to below its tolerance).  A case whose shooting fails (no convergence in ``SHOOT_MAX_ITER``, a step budget
exhausted at a large Peclet number, a non-finite value) is solved by the kernel's coarse-grid sequence instead.
"""
from __future__ import annotations

import numpy as np

from .compiled_activity import IDEAL
from .compiled_system import CB, LNCB, LNPHI, PE, PEF, Q, QF

try:  # numba is a dependency, but the engine must keep working without it
    from numba import njit
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    HAVE_NUMBA = False

#: order of the Taylor polynomials (14: fewest operations per case on the throughput batch among 12, 14, 16, 20)
TAYLOR_ORDER = 14
#: relative local error per step of each ion's concentration at convergence
TAYLOR_TOL = 1e-14
#: Taylor steps per integration before the shooting gives up (the case goes to the coarse-grid sequence)
TAYLOR_MAX_STEPS = 400
#: Newton iterations of the shooting
SHOOT_MAX_ITER = 30
#: keep the Jacobian's LU while the correction contracts by at least this factor (and is below 1e-2)
SHOOT_CHORD = 0.1
#: ... and while the correction is below this (max norm of ln c_p)
SHOOT_CHORD_MAX = 1e-2
#: converged when the max-norm correction of ln c_p is below this (with the integration at TAYLOR_TOL)
SHOOT_STEP_TOL = 1e-6
#: largest correction of ln c_p per Newton step (larger ones are scaled down to it)
SHOOT_STEP_CAP = 2.0
#: inner Newton of an interface: converged when the correction is below this (max norm)
INTERFACE_TOL = 1e-13

if HAVE_NUMBA:
    from .compiled_activity import _horner, ln_gamma
    from .compiled_guess import donnan_phi
    from .compiled_system import _lu_factor, _lu_solve

    @njit(cache=True, nogil=True)
    def _series(c, T, cp, Pe, q, z, K, a, Ta, E, dE, ph, Bk, dB):
        """Taylor coefficients about the current point: ``a`` (n, K+1) of c, ``Ta`` (n, m, K+1) of its tangent
        ``T = dc/dv`` (n, m), ``ph`` (K+1) of phi (``ph[0] = 0``).  ``E``, ``dE`` (m, K), ``Bk`` (K+1), ``dB``
        (m, K+1): workspace (the series of E, of ``sum z^2 c`` and their tangents).  ``d c_p,d / d v_d = c_p,d``."""
        n = c.size
        m = T.shape[1]
        for i in range(n):
            a[i, 0] = c[i]
            for d in range(m):
                Ta[i, d, 0] = T[i, d]
        ph[0] = 0.0
        for k in range(K):
            A = 0.0
            b = 0.0
            for j in range(n):
                A += z[j] * Pe[j] * a[j, k]
                b += z[j] * z[j] * a[j, k]
            Bk[k] = b
            if k == 0:
                for j in range(n):
                    A -= z[j] * q[j] * cp[j]
            acc = A
            for l in range(k):
                acc -= E[l] * Bk[k - l]
            E[k] = acc / Bk[0]
            ph[k + 1] = E[k] / (k + 1)
            for d in range(m):
                dA = 0.0
                db = 0.0
                for j in range(n):
                    t = Ta[j, d, k]
                    dA += z[j] * Pe[j] * t
                    db += z[j] * z[j] * t
                dB[d, k] = db
                if k == 0:
                    dA -= z[d] * q[d] * cp[d]
                acc = dA
                for l in range(k):
                    acc -= dE[d, l] * Bk[k - l] + E[l] * dB[d, k - l]
                dE[d, k] = (acc - E[k] * dB[d, 0]) / Bk[0]
            inv = 1.0 / (k + 1)
            for i in range(n):
                ce = 0.0
                for l in range(k + 1):
                    ce += a[i, l] * E[k - l]
                v = Pe[i] * a[i, k] - z[i] * ce
                if k == 0:
                    v -= q[i] * cp[i]
                a[i, k + 1] = v * inv
                for d in range(m):
                    dce = 0.0
                    for l in range(k + 1):
                        dce += Ta[i, d, l] * E[k - l] + a[i, l] * dE[d, k - l]
                    w = Pe[i] * Ta[i, d, k] - z[i] * dce
                    if k == 0 and d == i:
                        w -= q[i] * cp[i]
                    Ta[i, d, k + 1] = w * inv

    @njit(cache=True, nogil=True)
    def integrate(c, T, cp, Pe, q, z, tol, K, nodes, oc, ophi):
        """Integrate the equations from ``xi = 1`` back to ``xi = 0``; ``c`` (n,) [mol/m3] and its tangent ``T``
        (n, m) in place (m = 0: none).  ``nodes`` (M,): ascending positions in [0, 1] (the last one 1) where c and
        phi are written into ``oc`` (n, M) and ``ophi`` (M) (M = 0: none); phi relative to its value at 1.
        Returns ``(ok, phi(0) - phi(1))``; not ok when ``TAYLOR_MAX_STEPS`` steps do not reach 0 or a value is not
        finite."""
        n = c.size
        m = T.shape[1]
        a = np.empty((n, K + 1))
        Ta = np.empty((n, m, K + 1))
        E = np.empty(K)
        dE = np.empty((m, K))
        ph = np.empty(K + 1)
        Bk = np.empty(K + 1)
        dB = np.empty((m, K + 1))
        pos = 1.0
        phi = 0.0
        nk = nodes.size - 1
        if nk >= 0:
            for i in range(n):
                oc[i, nk] = c[i]
            ophi[nk] = 0.0
            nk -= 1
        for _ in range(TAYLOR_MAX_STEPS):
            _series(c, T, cp, Pe, q, z, K, a, Ta, E, dE, ph, Bk, dB)
            h = pos
            for i in range(n):
                sc = tol * abs(a[i, 0])
                for kk in (K - 1, K):
                    t = abs(a[i, kk])
                    if t > 0.0:
                        hh = 0.8 * (sc / t) ** (1.0 / kk)
                        if hh < h:
                            h = hh
            if not (h > 0.0):
                return False, phi
            new = pos - h
            if new < 1e-15:
                new = 0.0
                h = pos
            while nk >= 0 and nodes[nk] >= new - 1e-15:
                t = nodes[nk] - pos
                for i in range(n):
                    oc[i, nk] = _horner(a[i], t)
                ophi[nk] = phi + _horner(ph, t)
                nk -= 1
            for i in range(n):
                c[i] = _horner(a[i], -h)
                if not np.isfinite(c[i]):
                    return False, phi
                for d in range(m):
                    T[i, d] = _horner(Ta[i, d], -h)
            phi += _horner(ph, -h)
            pos = new
            if pos == 0.0:
                return True, phi
        return False, phi

    @njit(cache=True, nogil=True)
    def _interface(ck, Tk, lgk, dlgk, lnphi, sgn, z, Xu, cscale, akind, ap, lgu, cu, Tu):
        """Equilibrium across an interface: the unknown side's ``cu`` (n,) [mol/m3] from the known side's ``ck``
        with ``ln cu_i = ln ck_i + sgn ln Phi_i + ln g_k,i - ln g_u,i(cu) - z_i D`` and ``sum_i z_i cu_i + Xu = 0``
        (exit: known = permeate, unknown = pore, ``sgn = 1``, ``Xu = X``, ``D = phi_N - phi_p``; entrance: known =
        pore, unknown = wall, ``sgn = -1``, ``Xu = 0``, ``D = phi_w - phi_0``).  ``lgk``, ``dlgk``: ln gamma of the
        known side and its Jacobian [m3/mol]; ``lgu`` (n,): in, the unknown side's last ln gamma (the ideal Donnan
        start uses it); out, its value at ``cu``.  ``Tk`` (n, m) = dck/dv in, ``Tu`` (n, m) = dcu/dv out.
        Returns ``(ok, D)``."""
        n = z.size
        lf = np.empty(n)
        for i in range(n):
            lf[i] = sgn * lnphi[i] + lgk[i] - lgu[i]
        d = donnan_phi(z, ck, lf, Xu)
        u = np.empty(n + 1)
        for i in range(n):
            u[i] = np.log(ck[i]) + lf[i] - z[i] * d
        u[n] = d
        J = np.empty((n + 1, n + 1))
        F = np.empty(n + 1)
        piv = np.empty(n + 1, np.int64)
        dl = np.zeros((n, n))
        lg = np.zeros(n)
        c = np.empty(n)
        ok = False
        for _ in range(30):
            for i in range(n):
                c[i] = np.exp(u[i])
            ln_gamma(akind, ap, z, c, lg, dl, True)
            s = Xu
            for i in range(n):
                F[i] = u[i] - np.log(ck[i]) - sgn * lnphi[i] - lgk[i] + lg[i] + z[i] * u[n]
                s += z[i] * c[i]
            F[n] = s / cscale
            for i in range(n):
                for j in range(n):
                    J[i, j] = dl[i, j] * c[j]
                J[i, i] += 1.0
                J[i, n] = z[i]
                J[n, i] = z[i] * c[i] / cscale
            J[n, n] = 0.0
            if not _lu_factor(J, piv):
                return False, u[n]
            if akind == IDEAL:        # the Donnan root solves the ideal equations
                ok = True
                break
            _lu_solve(J, piv, F)
            dmax = 0.0
            for i in range(n + 1):
                u[i] -= F[i]
                dmax = max(dmax, abs(F[i]))
            if not (dmax < 1e3):
                return False, u[n]
            if dmax < INTERFACE_TOL:
                ok = True
                break
        for i in range(n):
            cu[i] = np.exp(u[i])
        lgu[:] = lg
        col = np.empty(n + 1)
        for d in range(Tk.shape[1]):
            for i in range(n):
                acc = Tk[i, d] / ck[i]
                for j in range(n):
                    acc += dlgk[i, j] * Tk[j, d]
                col[i] = acc
            col[n] = 0.0
            _lu_solve(J, piv, col)
            for i in range(n):
                Tu[i, d] = cu[i] * col[i]
        return ok, u[n]

    @njit(cache=True, nogil=True)
    def _dropped_row(z, P):
        """The ion whose feed row the electroneutrality of the permeate replaces: the largest ``|z_i| c_b,i``."""
        k = 0
        best = -1.0
        for i in range(z.size):
            w = abs(z[i]) * P[CB, i]
            if w > best:
                best = w
                k = i
        return k

    @njit(cache=True, nogil=True)
    def _shoot_residual(v, z, P, X, cscale, akind, ap, film, lgN, lgW, tol, r, Jr, xi, yf, prof):
        """Shooting residual r (n,) at ``v = ln c_p`` and, if ``Jr`` is (n, n), its Jacobian (Jr (n, 0): none;
        the shape, not an argument, selects it, so that one compiled version serves both); ``lgN``, ``lgW``:
        the pore-exit and wall ln gamma (in: start of the interface solves; out: values at v).  With nodes
        ``xi`` (M,) and ``yf`` (Mf,) (else empty), the profiles at them into ``prof`` (2n + 2, max(M, Mf)): rows
        0..n-1 the layer's c [mol/m3], n its phi (relative to xi = 1), n+1..2n the film's c, 2n+1 its phi (relative
        to the wall).  Returns ``(ok, D_exit, D_entrance, phi_film(bulk) - phi_film(wall))`` (see
        :func:`_interface` for the jumps)."""
        n = z.size
        m = Jr.shape[1]
        kdrop = _dropped_row(z, P)
        cp = np.empty(n)
        for i in range(n):
            cp[i] = np.exp(v[i])
        lgp = np.zeros(n)
        dlgp = np.zeros((n, n))
        ln_gamma(akind, ap, z, cp, lgp, dlgp, m > 0)
        Tp = np.zeros((n, m))
        for i in range(min(n, m)):
            Tp[i, i] = cp[i]
        cN = np.empty(n)
        TN = np.empty((n, m))
        ok, dN = _interface(cp, Tp, lgp, dlgp, P[LNPHI], 1.0, z, X, cscale, akind, ap, lgN, cN, TN)
        if not ok:
            return False, 0.0, 0.0, 0.0
        M = xi.size
        Mf = yf.size
        ok, _ = integrate(cN, TN, cp, P[PE], P[Q], z, tol, TAYLOR_ORDER, xi, prof[:n, :M], prof[n, :M])
        if not ok:
            return False, 0.0, 0.0, 0.0
        lg0 = np.zeros(n)
        dlg0 = np.zeros((n, n))
        ln_gamma(akind, ap, z, cN, lg0, dlg0, m > 0)
        cw = np.empty(n)
        Tw = np.empty((n, m))
        ok, d0 = _interface(cN, TN, lg0, dlg0, P[LNPHI], -1.0, z, 0.0, cscale, akind, ap, lgW, cw, Tw)
        if not ok:
            return False, 0.0, 0.0, 0.0
        dfilm = 0.0
        if film:
            ok, dfilm = integrate(cw, Tw, cp, P[PEF], P[QF], z, tol, TAYLOR_ORDER, yf, prof[n + 1:2 * n + 1, :Mf],
                                  prof[2 * n + 1, :Mf])
            if not ok:
                return False, 0.0, 0.0, 0.0
        for i in range(n):
            if i == kdrop:
                s = 0.0
                for j in range(n):
                    s += z[j] * cp[j]
                    if m > 0:
                        Jr[i, j] = z[j] * cp[j] / cscale
                r[i] = s / cscale
            else:
                r[i] = np.log(cw[i]) - P[LNCB, i]
                for j in range(m):
                    Jr[i, j] = Tw[i, j] / cw[i]
        return True, dN, d0, dfilm

    @njit(cache=True, nogil=True)
    def shoot(v, z, P, X, cscale, akind, ap, film, max_iter):
        """Newton on ``v = ln c_p`` (n,), in place, from the given start, at most ``min(max_iter,
        SHOOT_MAX_ITER)`` iterations (the kernel's Newton budget per grid).  Returns ``(ok, iterations,
        Jacobians)``."""
        n = z.size
        lgN = np.zeros(n)
        lgW = np.zeros(n)
        r = np.empty(n)
        Jr = np.empty((n, n))
        J0 = np.empty((n, 0))
        piv = np.empty(n, np.int64)
        e1 = np.zeros(0)
        prof = np.empty((2 * n + 2, 0))
        itol = 1e-8
        fresh = True
        sprev = np.inf
        jacs = 0
        limit = min(max_iter, SHOOT_MAX_ITER)
        for it in range(limit):
            ok, _, _, _ = _shoot_residual(v, z, P, X, cscale, akind, ap, film, lgN, lgW, itol, r,
                                          Jr if fresh else J0, e1, e1, prof)
            if not ok:
                return False, it, jacs
            if fresh:
                jacs += 1
                if not _lu_factor(Jr, piv):
                    return False, it, jacs
            _lu_solve(Jr, piv, r)
            smax = 0.0
            for i in range(n):
                if not np.isfinite(r[i]):
                    return False, it, jacs
                smax = max(smax, abs(r[i]))
            lam = 1.0 if smax < SHOOT_STEP_CAP else SHOOT_STEP_CAP / smax
            for i in range(n):
                v[i] -= lam * r[i]
            if smax < SHOOT_STEP_TOL and itol <= TAYLOR_TOL:
                return True, it + 1, jacs
            fresh = not (SHOOT_CHORD > 0.0 and smax < SHOOT_CHORD * sprev and smax < SHOOT_CHORD_MAX)
            sprev = smax
            itol = min(max(TAYLOR_TOL, 1e-4 * smax * smax), 1e-6)
        return False, limit, jacs

    @njit(cache=True, nogil=True)
    def fill_grid(v, z, P, X, cscale, akind, ap, film, xi, yf, x, ion, pot):
        """Write the profiles of the shooting solution ``v = ln c_p`` at the layer nodes ``xi`` (M,) and film nodes
        ``yf`` (Mf,) into ``x`` (engine layout; ``ion``, ``pot``: :func:`.compiled_system._index_maps`): film and
        layer concentrations [mol/m3], potentials (``phi_f = 0`` at the bulk), ``ln c_p`` and ``phi_p``.
        Returns False if an integration or interface fails."""
        n = z.size
        M = xi.size
        Mf = yf.size
        Kx = Mf + M + 1
        prof = np.empty((2 * n + 2, max(M, Mf)))
        r = np.empty(n)
        lgN = np.zeros(n)
        lgW = np.zeros(n)
        ok, dN, d0, _ = _shoot_residual(v, z, P, X, cscale, akind, ap, film, lgN, lgW, TAYLOR_TOL, r,
                                        np.empty((n, 0)), xi, yf, prof)
        if not ok:
            return False
        phiw = 0.0
        if film:
            phiw = -prof[2 * n + 1, 0]                # phi_f(bulk) = 0
            for j in range(Mf):
                x[pot[j]] = prof[2 * n + 1, j] + phiw
                for i in range(n):
                    x[ion[i, j]] = prof[n + 1 + i, j]
        phi0 = phiw - d0                               # D_entrance = phi_w - phi_0
        for k in range(M):
            x[pot[Mf + k]] = prof[n, k] - prof[n, 0] + phi0
            for i in range(n):
                x[ion[i, Mf + k]] = prof[i, k]
        x[pot[Kx - 1]] = prof[n, M - 1] - prof[n, 0] + phi0 - dN
        for i in range(n):
            x[ion[i, Kx - 1]] = v[i]
        return True
