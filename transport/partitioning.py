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
    in phi whenever some charged ion is present).  Returns (B,).
    """
    if np.all(np.asarray(z) == 0):
        return np.zeros(c_bulk.shape[0])
    a = c_bulk * np.exp(ln_phi)
    lo = np.full(c_bulk.shape[0], -60.0)
    hi = np.full(c_bulk.shape[0], 60.0)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        f = np.einsum("bi,i->b", a * np.exp(-np.outer(mid, z).clip(-700, 700)), z) + charge
        lo = np.where(f > 0, mid, lo)
        hi = np.where(f > 0, hi, mid)
    return 0.5 * (lo + hi)
