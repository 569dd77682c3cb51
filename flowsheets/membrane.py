"""Membrane-synthesis decision variables of seed 002 (sec. 2.5): layer charge, thickness, permeability.

:func:`add_membrane` adds a block with

* ``thickness_nm``   layer thickness dx [nm] (default bounds [75, 150], the shipped element surrogate's domain),
* ``charge_mol_m3``  signed layer charge X [mol/m3] (default bounds [-500, -100]),
* ``permeability``   Q [L m-2 h-1 bar-1] with seed 002 eq. 4, ``Q = 0.4 dx - 25``.

Units of eq. 4: the seed states the range ``Q in [5, 35]`` and the LbL thickness as the decision
variable; with dx in nm, dx in [75, 150] gives exactly Q in [5, 35], and Q in L m-2 h-1 bar-1 is
the usual NF permeability unit of that size, so the coefficients are 0.4 L m-2 h-1 bar-1 nm-1 and
-25 L m-2 h-1 bar-1.  ``permeability_si`` converts Q to m s-1 Pa-1.

Seed 002 also says that "the layer charge X is assumed to increase linearly with membrane
thickness" without coefficients.  :class:`ChargeThicknessRelation` makes this a declared option
(default off): ``|X| = magnitude_at_ref + slope (dx - dx_ref)``, i.e. the charge *magnitude*
grows with dx (X is negative here); its parameters are the caller's, none come from the seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyomo.environ as pyo

from nanosep.errors import InvalidInputError

__all__ = ["LMH_PER_BAR_TO_SI", "ChargeThicknessRelation", "add_membrane"]

u = pyo.units
#: 1 L m-2 h-1 bar-1 in m s-1 Pa-1
LMH_PER_BAR_TO_SI = 1e-3 / 3600.0 / 1e5
#: seed 002 eq. 4: Q = PERM_SLOPE * dx + PERM_INTERCEPT, Q in L m-2 h-1 bar-1, dx in nm
PERM_SLOPE, PERM_INTERCEPT = 0.4, -25.0


@dataclass(frozen=True)
class ChargeThicknessRelation:
    """``|X| [mol/m3] = magnitude_at_ref + slope_mol_m3_per_nm * (dx - thickness_ref_nm)`` (an assumption, declared)."""

    slope_mol_m3_per_nm: float
    magnitude_at_ref_mol_m3: float
    thickness_ref_nm: float = 112.5

    def __post_init__(self) -> None:
        if not self.slope_mol_m3_per_nm > 0:
            raise InvalidInputError(f"slope_mol_m3_per_nm={self.slope_mol_m3_per_nm!r} must be > 0 "
                                    "(seed 002: the charge increases with thickness)")


def add_membrane(parent, name: str = "membrane", *, thickness_bounds_nm=(75.0, 150.0),
                 charge_bounds_mol_m3=(-500.0, -100.0), charge_relation: ChargeThicknessRelation | None = None,
                 thickness_nm: float = 112.5, charge_mol_m3: float = -300.0):
    """Add the membrane block ``parent.<name>`` (see the module docstring); returns it."""
    lo, hi = thickness_bounds_nm
    if not 0 < lo < hi or PERM_SLOPE * lo + PERM_INTERCEPT <= 0:
        raise InvalidInputError(f"thickness_bounds_nm={thickness_bounds_nm!r}: need 0 < low < high and a positive "
                                f"permeability 0.4 dx - 25 at the low end (dx > 62.5 nm)")
    b = pyo.Block()
    parent.add_component(name, b)
    b.thickness_nm = pyo.Var(initialize=thickness_nm, bounds=thickness_bounds_nm, doc="layer thickness dx [nm]")
    b.charge_mol_m3 = pyo.Var(initialize=charge_mol_m3, bounds=charge_bounds_mol_m3, doc="layer charge X [mol/m3]")
    b.permeability = pyo.Var(initialize=PERM_SLOPE * thickness_nm + PERM_INTERCEPT, bounds=(0.0, None),
                             doc="Q [L m-2 h-1 bar-1]")
    b.eq_permeability = pyo.Constraint(expr=b.permeability == PERM_SLOPE * b.thickness_nm + PERM_INTERCEPT,
                                       doc="seed 002 eq. 4: Q = 0.4 dx - 25")
    b.permeability_si = pyo.Expression(expr=b.permeability * LMH_PER_BAR_TO_SI * u.m / u.s / u.Pa,
                                       doc="Q [m s-1 Pa-1]")
    if charge_relation is not None:
        r = charge_relation
        b.eq_charge_thickness = pyo.Constraint(
            expr=-b.charge_mol_m3 == r.magnitude_at_ref_mol_m3 + r.slope_mol_m3_per_nm * (b.thickness_nm - r.thickness_ref_nm),
            doc="|X| linear in dx (declared assumption, seed 002 gives no coefficients)")
    b.decisions = [b.thickness_nm, b.charge_mol_m3]
    return b
