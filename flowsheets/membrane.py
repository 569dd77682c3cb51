"""Membrane-synthesis decision variables of seed 002 (sec. 2.5): layer charge, thickness, permeability.

:func:`add_membrane` adds a block with

* ``thickness_nm``   layer thickness dx [nm] (default bounds [75, 150], the shipped element surrogate's domain),
* ``charge_mol_m3``  signed layer charge X [mol/m3] (default bounds [-500, -100]),
* ``permeability``   Q [L m-2 h-1 bar-1] from a :class:`PermeabilityRelation` (default seed 002 eq. 4
                     as printed, ``Q = 0.4 dx - 25``).

Units of eq. 4: the seed states the range ``Q in [5, 35]`` and the LbL thickness as the decision
variable; with dx in nm, dx in [75, 150] gives exactly Q in [5, 35], and Q in L m-2 h-1 bar-1 is
the usual NF permeability unit of that size, so the coefficients are 0.4 L m-2 h-1 bar-1 nm-1 and
-25 L m-2 h-1 bar-1.  ``permeability_si`` converts Q to m s-1 Pa-1.

Sign of eq. 4: as printed, Q *grows* with dx, while seed 002's text (sec. 3.2) says "the increase of
the membrane thickness leads to a decreased permeability".  With the printed sign a thicker layer
is both more permeable and (through the surrogate) more rejecting, so the optimizer always takes
the thickest layer and the thickness trade-off of the text cannot appear.  Both readings map
dx in [75, 150] nm onto Q in [5, 35]: :data:`SEED002_PRINTED` (``0.4 dx - 25``, the default, to
reproduce the paper as written) and :data:`SEED002_DECREASING` (``65 - 0.4 dx``, the text's
trend); the choice is a declared option of the plant (``PlantSpec.permeability_relation``).

Seed 002 also says that "the layer charge X is assumed to increase linearly with membrane
thickness" without coefficients.  :class:`ChargeThicknessRelation` makes this a declared option
(default off): ``|X| = magnitude_at_ref + slope (dx - dx_ref)``, i.e. the charge *magnitude*
grows with dx (X is negative here); its parameters are the caller's, none come from the seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyomo.environ as pyo

from nanosep.errors import InvalidInputError

__all__ = ["LMH_PER_BAR_TO_SI", "SEED002_DECREASING", "SEED002_PRINTED", "ChargeThicknessRelation",
           "PermeabilityRelation", "add_membrane", "permeability_relation"]

u = pyo.units
#: 1 L m-2 h-1 bar-1 in m s-1 Pa-1
LMH_PER_BAR_TO_SI = 1e-3 / 3600.0 / 1e5


@dataclass(frozen=True)
class PermeabilityRelation:
    """``Q [L m-2 h-1 bar-1] = slope_lmh_bar_per_nm * dx [nm] + intercept_lmh_bar`` (seed 002 eq. 4 form)."""

    slope_lmh_bar_per_nm: float
    intercept_lmh_bar: float
    name: str = "custom"

    def q_lmh_bar(self, thickness_nm):
        """Q [L m-2 h-1 bar-1] at ``thickness_nm`` (float, array or Pyomo expression)."""
        return self.slope_lmh_bar_per_nm * thickness_nm + self.intercept_lmh_bar

    def q_si(self, thickness_nm):
        """Q [m s-1 Pa-1] at ``thickness_nm``."""
        return self.q_lmh_bar(thickness_nm) * LMH_PER_BAR_TO_SI

    def check_bounds(self, thickness_bounds_nm) -> None:
        """Raise :class:`InvalidInputError` unless Q > 0 over the thickness bounds [nm]."""
        lo, hi = thickness_bounds_nm
        if not 0 < lo < hi:
            raise InvalidInputError(f"thickness_bounds_nm={thickness_bounds_nm!r}: need 0 < low < high")
        if min(self.q_lmh_bar(lo), self.q_lmh_bar(hi)) <= 0:
            raise InvalidInputError(f"thickness_bounds_nm={thickness_bounds_nm!r}: permeability relation {self.name!r} "
                                    f"(Q = {self.slope_lmh_bar_per_nm:g} dx + {self.intercept_lmh_bar:g}) is not "
                                    "positive over the whole range")


#: seed 002 eq. 4 as printed: Q = 0.4 dx - 25 (Q grows with dx)
SEED002_PRINTED = PermeabilityRelation(0.4, -25.0, "seed002_printed")
#: the trend of seed 002's text (Q falls with dx) on the same ranges: Q = 65 - 0.4 dx
SEED002_DECREASING = PermeabilityRelation(-0.4, 65.0, "seed002_decreasing")
_RELATIONS = {r.name: r for r in (SEED002_PRINTED, SEED002_DECREASING)}


def permeability_relation(name_or_relation: "str | PermeabilityRelation") -> PermeabilityRelation:
    """A relation by name (``"seed002_printed"``, ``"seed002_decreasing"``) or the relation itself."""
    if isinstance(name_or_relation, PermeabilityRelation):
        return name_or_relation
    if name_or_relation not in _RELATIONS:
        raise InvalidInputError(f"permeability relation {name_or_relation!r} is unknown; choose one of {sorted(_RELATIONS)}")
    return _RELATIONS[name_or_relation]



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
                 thickness_nm: float = 112.5, charge_mol_m3: float = -300.0,
                 permeability: "str | PermeabilityRelation" = SEED002_PRINTED):
    """Add the membrane block ``parent.<name>`` (see the module docstring); returns it."""
    rel = permeability_relation(permeability)
    rel.check_bounds(thickness_bounds_nm)
    b = pyo.Block()
    parent.add_component(name, b)
    b.thickness_nm = pyo.Var(initialize=thickness_nm, bounds=thickness_bounds_nm, doc="layer thickness dx [nm]")
    b.charge_mol_m3 = pyo.Var(initialize=charge_mol_m3, bounds=charge_bounds_mol_m3, doc="layer charge X [mol/m3]")
    b.permeability = pyo.Var(initialize=rel.q_lmh_bar(thickness_nm), bounds=(0.0, None),
                             doc="Q [L m-2 h-1 bar-1]")
    b.eq_permeability = pyo.Constraint(expr=b.permeability == rel.q_lmh_bar(b.thickness_nm),
                                       doc=f"seed 002 eq. 4 form, {rel.name}: Q = {rel.slope_lmh_bar_per_nm:g} dx "
                                           f"+ {rel.intercept_lmh_bar:g}")
    object.__setattr__(b, "permeability_relation", rel)  # plain attribute, not a component
    b.permeability_si = pyo.Expression(expr=b.permeability * LMH_PER_BAR_TO_SI * u.m / u.s / u.Pa,
                                       doc="Q [m s-1 Pa-1]")
    if charge_relation is not None:
        r = charge_relation
        b.eq_charge_thickness = pyo.Constraint(
            expr=-b.charge_mol_m3 == r.magnitude_at_ref_mol_m3 + r.slope_mol_m3_per_nm * (b.thickness_nm - r.thickness_ref_nm),
            doc="|X| linear in dx (declared assumption, seed 002 gives no coefficients)")
    b.decisions = [b.thickness_nm, b.charge_mol_m3]
    return b
