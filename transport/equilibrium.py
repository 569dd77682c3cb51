"""Zero-flux interface equilibrium with self-consistent image forces (starting values of the solver).

At zero flux the pore holds the Donnan-dielectric equilibrium of the solution it faces: with ideal
activities, ``c_pore,i = c_b,i Phi_i exp(-z_i phi)`` (seed 003 eqs. 3-10), where ``Phi_i`` is the
steric-Born factor times the image-force factor ``exp(-(2 alpha_i / pi) G(mu))`` (eq. 5), the
potential ``phi`` makes the pore electroneutral (eq. 9), and the screening parameter ``mu`` (eq. 8)
depends on the pore's own ionic strength (``image_screening="pore"``)::

    mu^2 = coef * sum_i z_i^2 c_pore,i(mu)

a scalar fixed point per case, solved here by bisection in ``s = ln mu``: ``h(s) = s - ln mu(s)``
goes from negative (``mu -> 0``: strongest exclusion, finite pore concentrations) to positive
(``mu`` large: image forces screened away), so a bracket always holds a root.  With
``image_screening="bulk"`` ``mu`` follows from the bulk solution directly.  Without image forces this
is the plain Donnan equilibrium of :func:`.partitioning.donnan_potential`.

The solver uses it for its initial guesses and row scales: at low ionic strength, small pores and
low pore dielectric constants the image term excludes ions by many orders of magnitude more than
steric and Born exclusion alone (e.g. SO4-2 at 1e-17 instead of 1e-6 mol/m3 in a 0.56 nm pore with
eps_p = 41 and 1-4 mol/m3 feeds), and starting values without it failed to converge.
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

from .partitioning import donnan_potential

if TYPE_CHECKING:  # system.py imports this module
    from .system import BatchParameters

LN_MU_RANGE = (np.log(1e-6), np.log(300.0))   #: bracket of ln mu (image_integral's accurate range)
BISECTIONS = 48


def interface_equilibrium(prm: "BatchParameters",
                          c_bulk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Equilibrium of pores facing the solution ``c_bulk`` (B, n) [mol/m3], ideal activities.

    Returns ``(phi, ln_phi, ln_mu)``: the dimensionless Donnan potential (B,), the ln partition
    coefficients without the Donnan factor (B, n) (steric + Born + image forces) and ``ln mu`` (B,)
    (``None`` without image forces).
    """
    z = prm.z
    if prm.image is None:
        return donnan_potential(z, c_bulk, prm.ln_phi_fixed, prm.charge), prm.ln_phi_fixed, None
    # the solver asks for the same equilibria on every grid of a chunk (same parameters, same walls):
    # memoized on the parameter object, keyed by everything the result depends on
    key = hashlib.sha1(b"".join(np.ascontiguousarray(a, dtype=np.float64).tobytes() for a in (
        c_bulk, prm.ln_phi_fixed, prm.charge, prm.image_coef, prm.screening_coef))).hexdigest()
    cache = prm.__dict__.setdefault("_equilibrium_cache", {})
    if key not in cache:
        cache[key] = _image_equilibrium(prm, c_bulk)
    return cache[key]


def _image_equilibrium(prm: "BatchParameters", c_bulk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = prm.z

    def at(ln_mu):
        G, _ = prm.image(np.exp(ln_mu))
        ln_phi = prm.ln_phi_fixed - prm.image_coef * G[:, None]
        phi = donnan_potential(z, c_bulk, ln_phi, prm.charge)
        return phi, ln_phi

    zz = z**2
    if prm.image_screening == "bulk":
        ln_mu = 0.5 * np.log(np.maximum(prm.screening_coef * (c_bulk @ zz), 1e-300))
        ln_mu = np.clip(ln_mu, *LN_MU_RANGE)
        phi, ln_phi = at(ln_mu)
        return phi, ln_phi, ln_mu
    B = c_bulk.shape[0]
    lo, hi = np.full(B, LN_MU_RANGE[0]), np.full(B, LN_MU_RANGE[1])
    for _ in range(BISECTIONS):
        mid = 0.5 * (lo + hi)
        phi, ln_phi = at(mid)
        c_pore = c_bulk * np.exp(np.clip(ln_phi - z[None, :] * phi[:, None], -700.0, 700.0))
        target = 0.5 * np.log(np.maximum(prm.screening_coef * (c_pore @ zz), 1e-300))
        below = mid < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    ln_mu = 0.5 * (lo + hi)
    phi, ln_phi = at(ln_mu)
    return phi, ln_phi, ln_mu
