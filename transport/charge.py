"""Membrane charge density from pH: an amphoteric ionizable-group (acid/base dissociation) model.

A polyamide active layer carries weak-acid groups (carboxyl, ``R-COOH = R-COO- + H+``,
total site density ``N_a``, ``pKa``) and weak-base groups (amine, ``R-NH3+ = R-NH2 + H+``,
total ``N_b``, with ``pKb`` the pKa of the *protonated* amine).  With ideal
mass-action dissociation at the bulk pH the volumetric charge density is::

    X(pH) = -N_a / (1 + 10^(pKa - pH)) + N_b / (1 + 10^(pH - pKb))     [mol/m3]

the first term being the dissociated (negative) acid fraction and the second the
protonated (positive) base fraction.  ``X`` falls monotonically from ``+N_b`` at low
pH to ``-N_a`` at high pH, so with both groups present there is exactly one
isoelectric point (``X = 0``).  This is the acid/base-dissociation part of the
site-binding models of amphoteric NF membranes (Afonso & de Pinho, Ind. Eng. Chem.
Res. 37 (1998) 4118, doi:10.1021/ie980092p; Bruni & Bandini, Desalination 241 (2009)
315, "adsorption-amphoteric" model) without counter-ion site binding or competitive
adsorption, and without a Boltzmann correction of the pore-side pH.

The result feeds ``charge_density_mol_m3`` of :func:`nanosep.transport.solve_batch`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq
from scipy.special import expit

from nanosep.errors import InvalidInputError

__all__ = ["IonizableGroups", "charge_density", "isoelectric_point"]

_LN10 = math.log(10.0)


@dataclass(frozen=True)
class IonizableGroups:
    """Site densities and dissociation constants of the membrane's ionizable groups.

    Attributes
    ----------
    acid_density_mol_m3: N_a, total acidic (e.g. carboxyl) sites per pore volume, >= 0.
    pKa: dissociation constant of the acidic groups (finite).
    base_density_mol_m3: N_b, total basic (e.g. amine) sites per pore volume, >= 0.
    pKb: pKa of the protonated basic groups (finite); the sites are half protonated at pH = pKb.
    """

    acid_density_mol_m3: float
    pKa: float
    base_density_mol_m3: float = 0.0
    pKb: float = 10.0

    def __post_init__(self) -> None:
        for name in ("acid_density_mol_m3", "base_density_mol_m3"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) and v >= 0):
                raise InvalidInputError(f"IonizableGroups.{name} must be finite and >= 0, got {v!r}")
        for name in ("pKa", "pKb"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v)):
                raise InvalidInputError(f"IonizableGroups.{name} must be finite, got {v!r}")


def _pH(pH: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(pH, dtype=float)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InvalidInputError(f"pH must be finite, got {arr[bad].ravel()[:5].tolist()}")
    return arr


def charge_density(groups: IonizableGroups, pH: ArrayLike) -> NDArray[np.float64] | float:
    """Charge density X [mol/m3] at ``pH`` (scalar or array), see the module docstring.

    ``1 / (1 + 10^(pKa - pH))`` is evaluated as ``expit(ln10 (pH - pKa))`` so extreme pH
    values do not overflow.  Returns a float for scalar ``pH``.
    """
    p = _pH(pH)
    acid = groups.acid_density_mol_m3 * expit(_LN10 * (p - groups.pKa))
    base = groups.base_density_mol_m3 * expit(_LN10 * (groups.pKb - p))
    out = base - acid
    return float(out) if out.ndim == 0 else out


def isoelectric_point(groups: IonizableGroups, xtol: float = 1e-12) -> float:
    """The pH where X = 0, by ``scipy.optimize.brentq``.

    Needs both acidic and basic sites (otherwise X never changes sign and
    :class:`InvalidInputError` is raised).  X is strictly decreasing, so the root is
    unique; it is bracketed by ``min(pKa, pKb) - d`` and ``max(pKa, pKb) + d`` with
    ``d = |log10(N_a / N_b)| + 1``.
    """
    if groups.acid_density_mol_m3 <= 0 or groups.base_density_mol_m3 <= 0:
        raise InvalidInputError(
            f"no isoelectric point: need acid and base sites > 0, got acid_density_mol_m3="
            f"{groups.acid_density_mol_m3!r}, base_density_mol_m3={groups.base_density_mol_m3!r}")
    d = abs(math.log10(groups.acid_density_mol_m3 / groups.base_density_mol_m3)) + 1.0
    lo, hi = min(groups.pKa, groups.pKb) - d, max(groups.pKa, groups.pKb) + d
    return float(brentq(lambda p: charge_density(groups, p), lo, hi, xtol=xtol, rtol=4 * np.finfo(float).eps))
