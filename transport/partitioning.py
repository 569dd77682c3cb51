"""Equilibrium partitioning at the solution-membrane interfaces (seed 003, sec. 2.3).

The ratio of pore to bulk concentration of ion ``i`` at an interface is
``c_pore / c_bulk = (gamma_bulk / gamma_pore) * Phi_S * Phi_B * Phi_im * Phi_Do``
(seed 003 eq. 3, written here with the activity ratio on the right-hand side; the
printed eq. 3 has the ratio inverted, eq. 8 uses it the way it is written here).

All functions return natural logarithms, which is how the solver uses them.
"""
from __future__ import annotations

import numpy as np

from nanosep.constants import BOLTZMANN, ELEMENTARY_CHARGE, VACUUM_PERMITTIVITY

DONNAN_BISECTIONS = 80   #: halvings of the Donnan bisection (from a bracket of width 120 to its round-off)
DONNAN_CHECK_FROM = 56   #: halving from which the bisection checks whether it has stopped changing (the
#: brackets of typical potentials stop changing after 55-64 halvings)
LN_PHI_EXCLUDED = -20.0  #: ln of the partition coefficient used for lambda >= 1 (exp(-30) ~ 1e-13; reported as rejection 1)


def ln_steric(lam):
    """ln Phi_S = 2 ln(1 - lambda) for a sphere in a cylindrical pore; LN_PHI_EXCLUDED for lambda >= 1."""
    lam = np.asarray(lam, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 2.0 * np.log1p(-np.minimum(lam, 1.0))
    return np.where(lam >= 1.0, LN_PHI_EXCLUDED, np.maximum(out, LN_PHI_EXCLUDED))


def ln_born(z, radius_m, eps_pore, eps_bulk, T):
    """Born solvation partitioning, seed 003 eq. 4.

    ``ln Phi_B = -(z^2 e^2 / (8 pi eps0 r_i k T)) (1/eps_p - 1/eps_b)``, with the
    Stokes radius ``radius_m`` [m] as cavity radius, ``T`` in K.
    """
    z = np.asarray(z, dtype=float)
    pref = z**2 * ELEMENTARY_CHARGE**2 / (8.0 * np.pi * VACUUM_PERMITTIVITY * np.asarray(radius_m) * BOLTZMANN * np.asarray(T))
    return -pref * (1.0 / np.asarray(eps_pore) - 1.0 / np.asarray(eps_bulk))


def ln_donnan(z, dphi):
    """Donnan partitioning ln Phi_Do = -z * dphi, with dphi = F (psi_pore - psi_bulk) / (R T) (eq. 10)."""
    return -np.asarray(z, dtype=float) * np.asarray(dphi, dtype=float)


def donnan_potential(z: np.ndarray, c_bulk: np.ndarray, ln_phi: np.ndarray, charge: np.ndarray) -> np.ndarray:
    """Dimensionless Donnan potential solving sum z c_b Phi exp(-z phi) + X = 0 (eqs. 9-10).

    Vectorized bisection in phi on [-60, 60] (the left side decreases monotonically
    in phi whenever some charged ion is present), at most ``DONNAN_BISECTIONS`` halvings; it stops
    early once a halving changes no bracket (from then on every halving repeats the same arithmetic and
    changes nothing, so the answer is the same to the last bit).  Returns (B,).
    """
    if np.all(np.asarray(z) == 0):
        return np.zeros(c_bulk.shape[0])
    a = c_bulk * np.exp(ln_phi)
    B = c_bulk.shape[0]
    lo = np.full(B, -60.0)
    hi = np.full(B, 60.0)
    mid, f = np.empty(B), np.empty(B)
    up, down = np.empty(B, bool), np.empty(B, bool)
    t = np.empty(a.shape)
    zf = np.asarray(z, dtype=float)
    negz = -zf
    # |mid| <= 60: the clip to +-700 acts only for |z| > 700 / 60 (and -clip(mid z) = clip(mid (-z)), exactly)
    clip = 60.0 * np.max(np.abs(zf)) > 700.0
    for k in range(DONNAN_BISECTIONS):
        # f = sum_i z_i a_i exp(-clip(mid z_i)) + X, the arithmetic of einsum("bi,i->b", a * exp(-outer), z)
        np.add(lo, hi, out=mid)
        mid *= 0.5
        np.multiply(mid[:, None], negz[None, :], out=t)
        if clip:
            np.clip(t, -700, 700, out=t)
        np.exp(t, out=t)
        t *= a
        np.einsum("bi,i->b", t, zf, out=f)
        f += charge
        np.greater(f, 0, out=up)
        np.logical_not(up, out=down)
        # brackets one ulp apart: a halving may have nothing left to change (then no later one has either)
        if k >= DONNAN_CHECK_FROM and not ((up & (lo != mid)) | (down & (hi != mid))).any():
            break
        np.copyto(lo, mid, where=up)
        np.copyto(hi, mid, where=down)
    return 0.5 * (lo + hi)
