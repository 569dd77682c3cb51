"""The engine's closed-form starting point, per case in nopython code, for the compiled kernel (:mod:`.compiled`).

:meth:`.system.DSPMDESystem.initial_guess` (``shape="shp"``) builds the start of every solve from per-ion
closed-form solutions: the feed-side Donnan equilibrium (:func:`.partitioning.donnan_potential`, seed 003 eqs.
9-10: the root of ``sum_i z_i c_w,i Phi_i exp(-z_i phi) + X = 0`` in [-60, 60]), the steric-hindered-pore
profile of each ion at the actual flux (seed 003 eq. D.8 generalised) with the exit Donnan jump fixed by the
permeate's electroneutrality (a root in ``phi_0 +- 6``), and, with the film, four passes that update the
wall concentrations from the film's closed form ``c_w = c_p + (c_b - c_p) exp(Pe_f)``.  The engine evaluates this
vectorised over the batch in NumPy, holding the GIL (~40 us per 5-ion film case); :func:`shp_guess` is the same
arithmetic for one case, called inside the kernel's per-case solve, so it runs without the GIL and on the kernel's
threads.  The engine finds both roots by bisection (80 and 70 halvings); here a safeguarded Newton search finds the
same roots to ~1e-15 in 4-5 evaluations on a typical case (:func:`_bracketed_step`; a root beyond the bracket is
approached by halvings, as by the bisection), which cut the start from 29 to 15 us per
5-ion Pitzer + film case.  Covered: the kernel's configurations (no image forces; no polarization or the film).  The
film profile is floored as the engine's (:data:`.system.FILM_FLOOR`; ``film_floor`` 0 leaves it unfloored).  With Davies or
Pitzer activity, as the engine's, further passes put the interface activity coefficients of the last pass into the
entrance and exit partitioning (:data:`.system.ACTIVITY_PASSES`).

Inputs per case (:func:`guess_parameters`): the rows ``GPE`` (layer Peclet number ``min(K_c J_v dx_e / (K_d D_i),
600)``), ``GKC`` (``K_c``), ``GPEF`` (film ``min(J_v delta / D_i, 600)``, 0 without a film) of a (B, NG, n)
array, computed exactly as the engine computes them, and the layer node positions (B, M) of the first grid.
"""
from __future__ import annotations

import numpy as np

from .compiled_activity import IDEAL
from .system import EXCLUDED_PERMEATE, BatchParameters

try:
    from numba import njit
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    HAVE_NUMBA = False

#: rows of the (B, NG, n) guess parameters: layer Peclet number (capped at 600), K_c, film Peclet number
GPE, GKC, GPEF = range(3)
NG = 3
#: film passes of the starting guess (the engine's initial_guess)
FILM_PASSES = 4
#: safeguarded Newton root searches of the start (Donnan potential, exit jump): stop when the step is below this,
#: relative (the engine bisects to adjacent doubles; the roots agree to a few ulp), and the evaluation budget
#: (a root outside the bracket is approached by halvings: ~60 evaluations)
NEWTON_RTOL = 4e-16
ROOT_MAX_EVALS = 200


def guess_parameters(prm: BatchParameters) -> np.ndarray:
    """(B, NG, n) per-case rows of :func:`shp_guess`, with the engine's expressions (same rounding)."""
    B, n = prm.c_feed.shape
    out = np.zeros((B, NG, n))
    with np.errstate(divide="ignore", invalid="ignore"):   # K_d = 0 for excluded ions, as in the engine
        out[:, GPE] = np.minimum((prm.kc * prm.flux[:, None] * prm.thickness[:, None]) / (prm.kd * prm.diff), 600.0)
    out[:, GKC] = prm.kc
    if prm.polarization == "film":
        out[:, GPEF] = np.minimum(prm.flux[:, None] * prm.film_thickness[:, None] / prm.diff, 600.0)
    return out


if HAVE_NUMBA:
    from .compiled_activity import ln_gamma

    @njit(cache=True, nogil=True)
    def _nmax(a, b):
        """np.maximum of two scalars (NaN propagates, as in the engine's NumPy arithmetic)."""
        return a if (a >= b or np.isnan(a)) else b

    @njit(cache=True, nogil=True)
    def _nmin(a, b):
        """np.minimum of two scalars (NaN propagates)."""
        return a if (a <= b or np.isnan(a)) else b

    @njit(cache=True, nogil=True)
    def _bracketed_step(p, P, N, dP, dN, lo, hi, dxold, increasing):
        """One safeguarded Newton step of a root search on ``h = ln P - ln N`` (P, N > 0: the positive and negative
        parts of a monotone sum of exponentials, dP, dN their derivatives; ``increasing``: P - N increases with p).
        Newton on h (nearly linear far from the root, where Newton on ``P - N`` itself crawls by ``1/z`` per step) if
        its step lands strictly inside the bracket and at least halves the step before it, else the bracket's
        midpoint (never slower than bisection every second step, as Numerical Recipes' rtsafe).  Returns (next, lo,
        hi, its step, done: p is a root, the step is below ``NEWTON_RTOL`` relative, or the bracket is down to
        adjacent doubles)."""
        if P == N:
            return p, lo, hi, 0.0, True
        if (P > N) != increasing:
            lo = p
        else:
            hi = p
        hp = dP / P - dN / N
        h = np.log(P) - np.log(N)
        q = p - h / hp if (hp != 0.0 and np.isfinite(h)) else np.nan
        if not (q > lo and q < hi) or abs(2.0 * (q - p)) > abs(dxold):
            q = 0.5 * (lo + hi)
        done = abs(q - p) <= NEWTON_RTOL * max(1.0, abs(p)) or q == lo or q == hi
        return q, lo, hi, abs(q - p), done

    @njit(cache=True, nogil=True)
    def donnan_phi(z, c, ln_phi, X):
        """:func:`.partitioning.donnan_potential` of one solution ``c`` (n,) [mol/m3]: the root of the decreasing
        ``f(phi) = sum_i z_i a_i exp(-z_i phi) + X`` (``a_i = c_i Phi_i``) in [-60, 60], by safeguarded Newton on
        ``ln(positive part) - ln(negative part)`` (:func:`_bracketed_step`) instead of the engine's 80 halvings: the
        same root to ~1e-15, in 4-5 evaluations on a typical case instead of ~55 (the start's cost was mostly these
        exponentials)."""
        n = z.size
        charged = False
        for i in range(n):
            if z[i] != 0.0:
                charged = True
        if not charged:
            return 0.0
        a = np.empty(n)
        for i in range(n):
            a[i] = c[i] * np.exp(ln_phi[i])
        lo, hi = -60.0, 60.0
        p = 0.0
        dx = hi - lo
        for _ in range(ROOT_MAX_EVALS):
            P = _nmax(X, 0.0)                 # positive and negative parts of f and their derivatives
            N = _nmax(-X, 0.0)
            dP = 0.0
            dN = 0.0
            for i in range(n):
                mz = p * z[i]
                t = _nmin(_nmax(mz, -700.0), 700.0)
                e = a[i] * np.exp(-t) * abs(z[i])
                d = e * abs(z[i]) if t == mz else 0.0
                if z[i] > 0:
                    P += e
                    dP -= d
                elif z[i] < 0:
                    N += e
                    dN += d
            p, lo, hi, dx, done = _bracketed_step(p, P, N, dP, dN, lo, hi, dx, False)
            if done:
                break
        return p

    @njit(cache=True, nogil=True)
    def _exit_jump(z, c0, ln_fixed, kc, ex, dphi, cp, kphi):
        """The exit jump delta with ``sum_i z_i cp_i(delta) = 0`` (:func:`_permeate`; the sum increases with delta)
        in [dphi - 6, dphi + 6], by safeguarded Newton on ``ln(cation part) - ln(anion part)`` (the engine: 70
        halvings of that bracket)."""
        n = z.size
        lo, hi = dphi - 6.0, dphi + 6.0
        d = dphi
        dx = hi - lo
        for _ in range(ROOT_MAX_EVALS):
            P = 0.0
            N = 0.0
            dP = 0.0
            dN = 0.0
            for i in range(n):
                k = np.exp(ln_fixed[i] - z[i] * d)
                den = 1.0 - (1.0 - kc[i] * k) * ex[i]
                e = abs(z[i]) * kc[i] * c0[i] / _nmax(den, 1e-300)
                de = e * abs(z[i]) * kc[i] * ex[i] * k / den if den > 1e-300 else 0.0   # |z| dcp/d(z delta)
                if z[i] > 0:
                    P += e
                    dP += de
                elif z[i] < 0:
                    N += e
                    dN -= de
            d, lo, hi, dx, done = _bracketed_step(d, P, N, dP, dN, lo, hi, dx, True)
            if done:
                break
        return d

    @njit(cache=True, nogil=True)
    def _permeate(z, c0, ln_fixed, kc, ex, delta, cp, kphi):  # ln_fixed: the exit's ln Phi (+ activity ratio)
        """Each ion's steric-hindered-pore permeate ``cp`` and exit partition ``kphi`` for the exit jump delta."""
        for i in range(z.size):
            kphi[i] = np.exp(ln_fixed[i] - z[i] * delta)
            cp[i] = kc[i] * c0[i] / _nmax(1.0 - (1.0 - kc[i] * kphi[i]) * ex[i], 1e-300)

    @njit(cache=True, nogil=True)
    def _start_passes(z, cb, lin, lout, X, kc, ex, gp, passes, phi0, charged, cw, c0, cp, kphi):
        """The engine's start passes (film: the wall from the film's closed form, ``passes`` times): entrance
        partition with ``lin`` at the Donnan potential (phi0 on the first pass unless NaN, else re-solved from the
        wall), the steric-hindered-pore permeate with the exit's ``lout``, the exit jump from permeate EN.
        Updates cw, c0, cp, kphi in place; returns (Donnan potential, exit jump)."""
        n = z.size
        dphi = phi0
        delta = 0.0
        for ps in range(passes):
            if ps > 0 or not np.isfinite(phi0):
                dphi = donnan_phi(z, cw, lin, X)
            for i in range(n):
                c0[i] = cw[i] * np.exp(lin[i] - z[i] * dphi)
            if charged:                        # permeate EN fixes the exit jump (increasing in it)
                delta = _exit_jump(z, c0, lout, kc, ex, dphi, cp, kphi)
            else:
                delta = 0.0
            _permeate(z, c0, lout, kc, ex, delta, cp, kphi)
            for i in range(n):
                cp[i] = _nmin(_nmax(cp[i], 1e-10 * cb[i]), 10.0 * cb[i])
            if ps == passes - 1:
                break                          # the last pass's profiles are the answer
            for i in range(n):               # film: the wall from the film's closed form
                cw[i] = _nmax(cp[i] + (cb[i] - cp[i]) * np.exp(gp[GPEF, i]), 1e-6 * cb[i])
        return dphi, delta

    @njit(cache=True, nogil=True)
    def _activity_ratios(akind, ap, z, ln_fixed, cw, c0, cp, kphi, lin, lout):
        """``lin = ln Phi + ln g_w - ln g_0``, ``lout = ln Phi + ln g_p - ln g_N`` at the wall cw, pore entrance c0,
        pore exit ``kphi c_p`` and permeate cp of the last start pass (:data:`.system.ACTIVITY_PASSES`)."""
        n = z.size
        lg = np.zeros((4, n))
        dlg = np.zeros((n, n))
        cN = np.empty(n)
        for i in range(n):
            cN[i] = kphi[i] * cp[i]
        for k, c in enumerate((cw, c0, cN, cp)):
            cc = np.empty(n)
            for i in range(n):
                cc[i] = _nmax(c[i], 1e-300)
            ln_gamma(akind, ap, z, cc, lg[k], dlg, False)
        for i in range(n):
            lin[i] = ln_fixed[i] + lg[0, i] - lg[1, i]
            lout[i] = ln_fixed[i] + lg[3, i] - lg[2, i]

    @njit(cache=True, nogil=True)
    def _finite_pass(dphi, delta, cp, kphi):
        """True if a start pass is usable: its potentials, permeate and exit values ``kphi c_p`` finite (the
        engine's test in :meth:`.system.DSPMDESystem.initial_guess`)."""
        if not (np.isfinite(dphi) and np.isfinite(delta)):
            return False
        for i in range(cp.size):
            if not (np.isfinite(cp[i]) and np.isfinite(kphi[i] * cp[i])):
                return False
        return True

    @njit(cache=True, nogil=True)
    def shp_guess(x, z, cb, ln_fixed, X, excluded, gp, phi0, xg, y, ion, pot, film_floor, akind, ap, act_passes):
        """Write :meth:`.system.DSPMDESystem.initial_guess` (``"shp"``) of one case into x (engine layout).

        cb, ln_fixed (n,): feed [mol/m3] and ln Phi (steric + Born); X: membrane charge [mol/m3]; excluded (n,)
        bool; gp (NG, n): :func:`guess_parameters`' rows; phi0: the feed's Donnan potential (the first pass's
        wall is the feed); xg (M,): layer node
        positions in [0, 1]; y (Mf,): film nodes (empty without a film); ion, pot: :func:`.compiled._index_maps`;
        film_floor: > 0 floors the film profile at ``film_floor c_b`` (the engine's: ``FILM_FLOOR``), 0 does not;
        akind, ap: the case's activity model (:mod:`.compiled_activity`); act_passes: ``ACTIVITY_PASSES`` (0, or an
        ideal model: the engine's start)."""
        n = z.size
        M = xg.size
        Mf = y.size
        K = Mf + M + 1
        charged = False
        for i in range(n):
            if z[i] != 0.0:
                charged = True
        cw = cb.copy()
        c0 = np.empty(n)
        ex = np.empty(n)
        cp = np.empty(n)
        kphi = np.empty(n)
        kc = gp[GKC]
        for i in range(n):
            ex[i] = np.exp(-gp[GPE, i])
        passes = FILM_PASSES if Mf > 0 else 1
        lin = ln_fixed.copy()                  # entrance: ln Phi (+ ln g_w - ln g_0)
        lout = ln_fixed.copy()                 # exit: ln Phi (+ ln g_p - ln g_N)
        npass = 1 + (act_passes if akind != IDEAL else 0)
        dphi = delta = 0.0
        keep = np.empty((3, n))                # the last pass's c0, cp, kphi
        for apass in range(npass):
            if apass > 0:
                _activity_ratios(akind, ap, z, ln_fixed, cw, c0, cp, kphi, lin, lout)
                keep[0, :] = c0
                keep[1, :] = cp
                keep[2, :] = kphi
            d, dl = _start_passes(z, cb, lin, lout, X, kc, ex, gp, passes if apass == 0 else 1,
                                  phi0 if apass == 0 else np.nan, charged, cw, c0, cp, kphi)
            if apass > 0 and not _finite_pass(d, dl, cp, kphi):
                # ln gamma extrapolated far outside its range: keep the last pass, as the engine does
                c0[:] = keep[0]
                cp[:] = keep[1]
                kphi[:] = keep[2]
                break
            dphi, delta = d, dl
        for i in range(n):
            cinf = cp[i] / kc[i]
            for k in range(M):
                if excluded[i]:
                    x[ion[i, Mf + k]] = 0.0
                else:
                    t = gp[GPE, i] * (xg[k] - 1.0)   # the engine's weighted sum of the two ends (no cancellation)
                    e = np.exp(t)
                    x[ion[i, Mf + k]] = np.exp(np.log(_nmax(cinf * -np.expm1(t) + kphi[i] * cp[i] * e, 1e-300)))
            cpi = EXCLUDED_PERMEATE * cb[i] if excluded[i] else cp[i]
            x[ion[i, K - 1]] = np.log(cpi)
            for j in range(Mf):
                cf = cpi + (cb[i] - cpi) * np.exp(gp[GPEF, i] * y[j])
                x[ion[i, j]] = _nmax(cf, film_floor * cb[i]) if film_floor > 0.0 else cf
        for j in range(Mf):
            x[pot[j]] = 0.0
        for k in range(M):
            x[pot[Mf + k]] = dphi             # the Donnan potential of the last pass's wall
        x[pot[K - 1]] = dphi - delta
