"""The engine's closed-form starting point, per case in nopython code, for the compiled kernel (:mod:`.compiled`).

:meth:`.system.DSPMDESystem.initial_guess` (``shape="shp"``) builds the start of every solve from per-ion
closed-form solutions: the feed-side Donnan equilibrium (:func:`.partitioning.donnan_potential`, seed 003 eqs.
9-10: bisection of ``sum_i z_i c_w,i Phi_i exp(-z_i phi) + X = 0`` on [-60, 60], 80 halvings), the steric-hindered-pore
profile of each ion at the actual flux (seed 003 eq. D.8 generalised) with the exit Donnan jump fixed by the
permeate's electroneutrality (70 halvings on ``phi_0 +- 6``), and, with the film, four passes that update the
wall concentrations from the film's closed form ``c_w = c_p + (c_b - c_p) exp(Pe_f)``.  The engine evaluates this
vectorised over the batch in NumPy, holding the GIL (~40 us per 5-ion film case); :func:`shp_guess` is the same
arithmetic for one case, called inside the kernel's per-case solve, so it runs without the GIL and on the kernel's
threads.  Covered: the kernel's configurations (no image forces; no polarization or the film).

Inputs per case (:func:`guess_parameters`): the rows ``GPE`` (layer Peclet number ``min(K_c J_v dx_e / (K_d D_i),
600)``), ``GKC`` (``K_c``), ``GPEF`` (film ``min(J_v delta / D_i, 600)``, 0 without a film) of a (B, NG, n)
array, computed exactly as the engine computes them, and the layer node positions (B, M) of the first grid.
"""
from __future__ import annotations

import numpy as np

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
#: floor of the kernel's film profile, times the feed.  The engine's closed-form film profile
#: ``c_p + (c_b - c_p) exp(Pe_f y)`` is negative near the wall for an ion whose (clipped) permeate guess exceeds
#: its feed at a large film Peclet number; ``ln c_w`` is then not finite at the start, Newton fails at once and
#: the case goes to the flux continuation (17 % of the 5-ion Pitzer + film benchmark cases, ~3x the cost of the
#: others).  Floored, the start is finite and Newton converges from it (0.3 % continue; measured floors 1e-6,
#: 1e-2, 0.1, 0.5: 3.3, 0.7, 0.3, 0.1 % continue, the fewest Newton iterations at 0.1-0.5; the answers equal to
#: 1e-14, the same roots).
FILM_FLOOR = 0.1


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
    @njit(cache=True, nogil=True)
    def _nmax(a, b):
        """np.maximum of two scalars (NaN propagates, as in the engine's NumPy arithmetic)."""
        return a if (a >= b or np.isnan(a)) else b

    @njit(cache=True, nogil=True)
    def _nmin(a, b):
        """np.minimum of two scalars (NaN propagates)."""
        return a if (a <= b or np.isnan(a)) else b

    @njit(cache=True, nogil=True)
    def donnan_phi(z, c, ln_phi, X):
        """:func:`.partitioning.donnan_potential` of one solution ``c`` (n,) [mol/m3]: the same bisection."""
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
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            if mid == lo or mid == hi:        # adjacent doubles: the remaining halvings change nothing
                break
            f = 0.0
            for i in range(n):
                f += a[i] * np.exp(-_nmin(_nmax(mid * z[i], -700.0), 700.0)) * z[i]
            f += X
            if f > 0:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    @njit(cache=True, nogil=True)
    def _permeate(z, c0, ln_fixed, kc, ex, delta, cp, kphi):
        """Each ion's steric-hindered-pore permeate ``cp`` and exit partition ``kphi`` for the exit jump delta."""
        for i in range(z.size):
            kphi[i] = np.exp(ln_fixed[i] - z[i] * delta)
            cp[i] = kc[i] * c0[i] / _nmax(1.0 - (1.0 - kc[i] * kphi[i]) * ex[i], 1e-300)

    @njit(cache=True, nogil=True)
    def shp_guess(x, z, cb, ln_fixed, X, excluded, gp, phi0, xg, y, ion, pot, film_floor):
        """Write :meth:`.system.DSPMDESystem.initial_guess` (``"shp"``) of one case into x (engine layout).

        cb, ln_fixed (n,): feed [mol/m3] and ln Phi (steric + Born); X: membrane charge [mol/m3]; excluded (n,)
        bool; gp (NG, n): :func:`guess_parameters`' rows; phi0: the feed's Donnan potential (the first pass's
        wall is the feed); xg (M,): layer node
        positions in [0, 1]; y (Mf,): film nodes (empty without a film); ion, pot: :func:`.compiled._index_maps`;
        film_floor: > 0 floors the film profile at ``film_floor c_b`` (see ``FILM_FLOOR``), 0 keeps the engine's."""
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
        dphi = phi0
        delta = 0.0
        for ps in range(passes):
            if ps > 0:
                dphi = donnan_phi(z, cw, ln_fixed, X)
            for i in range(n):
                c0[i] = cw[i] * np.exp(ln_fixed[i] - z[i] * dphi)
            if charged:                        # permeate EN fixes the exit jump (bisection, decreasing)
                lo, hi = dphi - 6.0, dphi + 6.0
                for _ in range(70):
                    mid = 0.5 * (lo + hi)
                    if mid == lo or mid == hi:
                        break
                    _permeate(z, c0, ln_fixed, kc, ex, mid, cp, kphi)
                    f = 0.0
                    for i in range(n):
                        f += cp[i] * z[i]
                    if f < 0:
                        lo = mid
                    else:
                        hi = mid
                delta = 0.5 * (lo + hi)
            else:
                delta = 0.0
            _permeate(z, c0, ln_fixed, kc, ex, delta, cp, kphi)
            for i in range(n):
                cp[i] = _nmin(_nmax(cp[i], 1e-10 * cb[i]), 10.0 * cb[i])
            if ps == passes - 1:
                break                          # the last pass's profiles are the answer
            for i in range(n):               # film: the wall from the film's closed form
                cw[i] = _nmax(cp[i] + (cb[i] - cp[i]) * np.exp(gp[GPEF, i]), 1e-6 * cb[i])
        for i in range(n):
            cinf = cp[i] / kc[i]
            for k in range(M):
                if excluded[i]:
                    x[ion[i, Mf + k]] = 0.0
                else:
                    e = np.exp(gp[GPE, i] * (xg[k] - 1.0))
                    x[ion[i, Mf + k]] = np.exp(np.log(_nmax(cinf + (kphi[i] * cp[i] - cinf) * e, 1e-300)))
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
