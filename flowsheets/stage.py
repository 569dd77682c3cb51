"""Nanofiltration stage: N modules in parallel with a rejection model (seed 002 eqs. 2-6).

Equations of :func:`add_nf_stage` (stage ``i``; ``F`` volumetric flows, ``c`` concentrations)::

    A        = N_module A_module                     A_module = 60 m2 (seed 002 sec. 2.5)
    F_perm   = J_v A                                 (the flux J_v is the surrogate's "flux" input)
    J_v      = Q (dP_applied - s (pi_feed - pi_perm))    seed 002 eq. 3 generalised; s = 1 with
                                                     ``osmotic_drive=True``, s = 0 (seed 002) otherwise
    F_feed   = F_ret + F_perm                        water balance (dilute streams)
    F_feed c_feed,j = F_ret c_ret,j + F_perm c_perm,j                         seed 002 eq. 5
    c_perm,j = (1 - R_j) c_feed,j                                              seed 002 eq. 6
    gamma    = F_perm / F_feed                                                  seed 002 eq. 2

``dP_applied = p_feed - p_perm`` (no pressure loss along the channel; retentate leaves at the
feed pressure, permeate at ``permeate_pressure_Pa``).  The osmotic pressures are those of the
feed and permeate streams (bulk feed, no polarization).  ``R_j`` comes from a rejection model
of :mod:`.rejection` (constant, element surrogate, module surrogate with gamma, K-element chain,
or the exact DSPM-DE twin); the model adds the constraints that fix ``rejection[j]``.

``n_modules`` is Integer with ``integer=True`` (MINLP) and continuous otherwise (the local NLP
relaxation); it and the membrane variables are the stage's decisions.  The recovery is bounded by
``max_recovery`` (default 0.95, the upper end of :data:`nanosep.surrogates.module.GAMMA_DATA_RANGE`):
as gamma -> 1 the retentate flow vanishes and its concentration diverges, and a k = 1 element
surrogate (rejection at the stage feed only) would otherwise drive the optimizer there.
"""
from __future__ import annotations

from collections.abc import Sequence

import pyomo.environ as pyo

from nanosep.errors import InvalidInputError

from .unit_models import ATMOSPHERIC_PA, _unit, stream

__all__ = ["AREA_MODULE_M2", "add_nf_stage"]

u = pyo.units
#: membrane area of one module [m2] (seed 002 sec. 2.5, refs. [82, 83])
AREA_MODULE_M2 = 60.0


def add_nf_stage(parent, name: str, ions: Sequence[str], membrane, rejection, *,
                 area_module_m2: float = AREA_MODULE_M2, n_modules_bounds: tuple[float, float] = (1, 400),
                 integer: bool = False, max_recovery: float = 0.95, osmotic_drive: bool = True, permeate_pressure_Pa: float = ATMOSPHERIC_PA,
                 **stream_kw):
    """Add an NF stage ``parent.<name>`` (module docstring); ``membrane`` from :func:`.membrane.add_membrane`,
    ``rejection`` a :mod:`.rejection` model.  Returns the block."""
    if not area_module_m2 > 0:
        raise InvalidInputError(f"stage {name!r}: area_module_m2={area_module_m2!r} must be > 0")
    if osmotic_drive and stream_kw.get("osmotic", "van_t_hoff") is None:
        raise InvalidInputError(f"stage {name!r}: osmotic_drive=True needs streams with an osmotic model")
    b = _unit(parent, name)
    b.feed, b.retentate, b.permeate = (stream(ions, **stream_kw) for _ in range(3))
    object.__setattr__(b, "membrane", membrane)  # plain reference, not a component (the block lives elsewhere)
    ion_set = b.feed.ions
    b.area_module = pyo.Param(initialize=area_module_m2, units=u.m**2, doc="area of one module [m2]")
    b.n_modules = pyo.Var(initialize=sum(n_modules_bounds) / 2, bounds=n_modules_bounds,
                          domain=pyo.PositiveIntegers if integer else pyo.PositiveReals, doc="modules in parallel [-]")
    b.area = pyo.Expression(expr=b.n_modules * b.area_module, doc="membrane area [m2]")
    b.flux = pyo.Var(initialize=10e-6, bounds=(0.0, None), units=u.m / u.s, doc="water flux J_v [m/s]")
    if not 0 < max_recovery < 1:
        raise InvalidInputError(f"stage {name!r}: max_recovery={max_recovery!r} must be in (0, 1)")
    b.gamma = pyo.Var(initialize=0.5, bounds=(0.0, max_recovery), doc="recovery F_perm / F_feed [-]")
    b.rejection = pyo.Var(ion_set, initialize=0.5, bounds=(-1.0, 1.0), doc="observed rejection R_j [-]")
    b.osmotic_switch = pyo.Param(initialize=1.0 if osmotic_drive else 0.0, mutable=True,
                                 doc="1: osmotic pressure difference reduces the driving force; 0: seed 002")
    b.permeate_pressure = pyo.Param(initialize=permeate_pressure_Pa, units=u.Pa, mutable=True)

    drive = b.feed.pressure - b.permeate.pressure
    if osmotic_drive:
        drive = drive - b.osmotic_switch * (b.feed.osmotic_pressure - b.permeate.osmotic_pressure)
    b.driving_pressure = pyo.Expression(expr=drive, doc="net driving pressure [Pa]")
    b.eq_permeate_flow = pyo.Constraint(expr=b.permeate.flow_vol == b.flux * b.area, doc="F_perm = J_v A")
    b.eq_flux = pyo.Constraint(expr=b.flux == membrane.permeability_si * b.driving_pressure, doc="seed 002 eq. 3")
    b.eq_water = pyo.Constraint(expr=b.feed.flow_vol == b.retentate.flow_vol + b.permeate.flow_vol)
    b.eq_ion = pyo.Constraint(ion_set, rule=lambda _, j: b.feed.flow_vol * b.feed.conc[j] == (
        b.retentate.flow_vol * b.retentate.conc[j] + b.permeate.flow_vol * b.permeate.conc[j]), doc="seed 002 eq. 5")
    b.eq_rejection = pyo.Constraint(ion_set, rule=lambda _, j: b.permeate.conc[j] == (1.0 - b.rejection[j]) * b.feed.conc[j],
                                    doc="seed 002 eq. 6")
    b.eq_gamma = pyo.Constraint(expr=b.gamma * b.feed.flow_vol == b.permeate.flow_vol, doc="seed 002 eq. 2")
    b.eq_retentate_pressure = pyo.Constraint(expr=b.retentate.pressure == b.feed.pressure)
    b.eq_permeate_pressure = pyo.Constraint(expr=b.permeate.pressure == b.permeate_pressure)
    b.eq_retentate_temperature = pyo.Constraint(expr=b.retentate.temperature == b.feed.temperature)
    b.eq_permeate_temperature = pyo.Constraint(expr=b.permeate.temperature == b.feed.temperature)
    b.inlets.append(b.feed)
    b.outlets.extend([b.retentate, b.permeate])
    b.decisions.extend([b.n_modules, *membrane.decisions, membrane.permeability])
    b.rejection_model = rejection
    rejection.build(b)
    return b
