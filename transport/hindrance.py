"""Hindered-transport coefficients for a sphere in a cylindrical pore.

``K_d`` (diffusive) and ``K_c`` (convective) multiply the bulk diffusivity and the
convective flux in the extended Nernst-Planck equation (seed 003, eq. 1).  Both
are functions of ``lambda = r_solute / r_pore`` only.  The steric partition
coefficient ``(1 - lambda)**2`` is *not* included here (see ``partitioning``).

Two correlations are provided:

* ``dechadilok_deen`` - Dechadilok & Deen, Ind. Eng. Chem. Res. 45 (2006) 6953,
  eqs. 16 and 17 (valid 0 <= lambda <= 0.95; continued above with the Bungay-Brenner
  shape).  This is the one WaterTAP uses.
* ``bungay_brenner`` - Bungay & Brenner, Int. J. Multiphase Flow 1 (1973) 25,
  as written by Bowen & Welfoot, Chem. Eng. Sci. 57 (2002) 1121, eqs. 6-9.

For lambda >= 1 the solute is sterically excluded; coefficients are evaluated at
``LAMBDA_MAX`` so the functions stay finite (the partition coefficient is then
zero and the value does not matter).
"""
from __future__ import annotations

import numpy as np

from nanosep.errors import InvalidInputError

LAMBDA_MAX = 0.99
HINDRANCE_MODELS = ("dechadilok_deen", "bungay_brenner")


def _clip(lam):
    lam = np.asarray(lam, dtype=float)
    return np.clip(lam, 1e-12, LAMBDA_MAX)


LAMBDA_DD_VALID = 0.95  #: upper validity limit of the Dechadilok-Deen correlation


def _dd_polynomials(l):
    h = (1.0 + 9.0 / 8.0 * l * np.log(l) - 1.56034 * l + 0.528155 * l**2 + 1.91521 * l**3
         - 2.81903 * l**4 + 0.270788 * l**5 + 1.10115 * l**6 - 0.435933 * l**7)
    kc = (1.0 + 3.867 * l - 1.907 * l**2 - 0.834 * l**3) / (1.0 + 1.867 * l - 0.741 * l**2)
    return h / (1.0 - l) ** 2, kc


def dechadilok_deen(lam):
    """Return ``(K_d, K_c)`` of Dechadilok & Deen (2006), eqs. 16-17.

    Their polynomial is ``H = Phi K_d`` (it includes the steric partition
    coefficient ``Phi = (1 - lambda)^2``), so ``K_d = H / Phi``; their ``W / Phi`` is ``K_c``.
    """
    l = _clip(lam)
    kd, kc = _dd_polynomials(l)
    # beyond lambda = 0.95 the polynomial for K_d turns upward (unphysical); continue it with
    # the shape of Bungay-Brenner, scaled to be continuous at the validity limit
    hi = l > LAMBDA_DD_VALID
    if np.any(hi):
        kd_v, kc_v = _dd_polynomials(np.float64(LAMBDA_DD_VALID))
        kd_bb, kc_bb = bungay_brenner(l)
        kd_bbv, kc_bbv = bungay_brenner(np.float64(LAMBDA_DD_VALID))
        kd = np.where(hi, kd_v * kd_bb / kd_bbv, kd)
        kc = np.where(hi, kc_v * kc_bb / kc_bbv, kc)
    return kd, kc


_BB_A = (-73.0 / 60.0, 77293.0 / 50400.0, -22.5083, -5.6117, -0.3363, -1.216, 1.647)
_BB_B = (7.0 / 60.0, -2227.0 / 50400.0, 4.0180, -3.9788, -1.9215, 4.392, 5.006)


def _bb_series(l, c):
    head = 9.0 / 4.0 * np.pi**2 * np.sqrt(2.0) * (1.0 - l) ** (-2.5) * (1.0 + c[0] * (1.0 - l) + c[1] * (1.0 - l) ** 2)
    tail = c[2] + c[3] * l + c[4] * l**2 + c[5] * l**3 + c[6] * l**4
    return head + tail


def bungay_brenner(lam):
    """Return ``(K_d, K_c)`` of Bungay & Brenner (1973) (Bowen & Welfoot 2002, eqs. 6-9).

    ``K_d = 6 pi / K_t``, ``K_c = (2 - phi) K_s / (2 K_t)`` with ``phi = (1-lambda)^2``.
    """
    l = _clip(lam)
    kt = _bb_series(l, _BB_A)
    ks = _bb_series(l, _BB_B)
    phi = (1.0 - l) ** 2
    return 6.0 * np.pi / kt, (2.0 - phi) * ks / (2.0 * kt)


def hindrance(lam, model: str = "dechadilok_deen"):
    """Dispatch to a hindrance correlation by name; returns ``(K_d, K_c)``."""
    if model == "dechadilok_deen":
        return dechadilok_deen(lam)
    if model == "bungay_brenner":
        return bungay_brenner(lam)
    raise InvalidInputError(f"unknown hindrance model {model!r}; choose one of {HINDRANCE_MODELS}")
