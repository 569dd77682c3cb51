"""Seed 002's plant superstructure (Fig. 7) as one Pyomo model, and the drinking-water case (sec. 3.1).

Layout (``n_stages`` = 1 or 2 is a build flag: the local-NLP path builds one layout at a time)::

    feed -> mixer -> pump1 -> stage1 --permeate--> [pump2 -> stage2 --permeate-->] splitter -> product
              ^                  |                            |                      |
              |                  +--retentate--> [waste mixer <-retentate]           |
              +----------------------------- recycle (split[1]) -----------------+
                                 retentate sink

* permeate recirculation: ``splitter.split[1]`` (fraction of the product permeate sent back to the
  feed mixer; allowed, not required, seed 002 Fig. 7), ``recirculation=False`` omits mixer/splitter;
* one membrane (X, dx, Q = 0.4 dx - 25) shared by all stages: ``m.membrane``;
* per stage: module count (Integer with ``integer_modules=True``, else relaxed) and pump dP;
* product flow fixed by ``m.eq_product_flow`` (seed 002 sec. 3.1: 224 m3/h for 10,000 inhabitants),
  feed flow free; ``m.permeate_limit`` (product concentration of ``limit_ion`` <= limit) and
  ``m.objective`` = annual operating cost (seed 002 eq. 8) via :mod:`.costing`.

Degrees of freedom (:func:`expected_degrees_of_freedom`): feed flow + per stage (dP, N) + X + dx
(- 1 with the charge-thickness relation) + recirculation fraction - 1 (product-flow equality);
for one stage with recirculation: 6 - 1 = 5, the "6 optimization variables, 1 equality
constraint" of seed 002 sec. 3.2.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyomo.environ as pyo
from pyomo.util.calc_var_value import calculate_variable_from_constraint

from nanosep.errors import InvalidInputError
from nanosep.solvers import ipopt_solver

from .checks import check_degrees_of_freedom, check_structure
from .costing import CostParameters, add_costing
from .initialization import fixed_state, initialize_sequential
from .membrane import (
    SEED002_PRINTED,
    ChargeThicknessRelation,
    PermeabilityRelation,
    add_membrane,
    permeability_relation,
)
from .rejection import ElementChain, ElementSurrogate
from .scaling import USER_SCALING, set_scaling
from .stage import AREA_MODULE_M2, add_nf_stage
from .unit_models import (
    add_feed,
    add_mixer,
    add_pump,
    add_sink,
    add_splitter,
    connect,
    expand_arcs,
)

__all__ = ["DRINKING_WATER_PRODUCT_M3_H", "PlantResult", "PlantSpec", "build_plant", "drinking_water_plant",
           "expected_degrees_of_freedom", "initialize_plant", "solve_plant", "structural_decisions"]

log = logging.getLogger(__name__)

#: seed 002 sec. 3.1: peak drinking-water demand of a town of 10,000 inhabitants [m3/h]
DRINKING_WATER_PRODUCT_M3_H = 224.0
SEED002_SURROGATE = "seed002_na2so4_element"


@dataclass(frozen=True)
class PlantSpec:
    """Everything :func:`build_plant` needs besides the rejection models; start values of the decisions included."""

    feed_conc_mol_m3: Mapping[str, float] = field(default_factory=lambda: {"Na+": 20.0, "SO4-2": 10.0})
    product_m3_h: float = DRINKING_WATER_PRODUCT_M3_H
    n_stages: int = 1
    recirculation: bool = True
    integer_modules: bool = False
    osmotic: bool = True
    osmotic_model: str = "van_t_hoff"
    pump_efficiency: float = 0.8
    area_module_m2: float = AREA_MODULE_M2
    n_modules_bounds: tuple[float, float] = (1, 400)
    max_recovery: float = 0.95
    charge_relation: ChargeThicknessRelation | None = None
    permeability_relation: PermeabilityRelation | str = SEED002_PRINTED
    limit_ion: str = "SO4-2"
    permeate_limit_mol_m3: float = 1.0
    temperature_K: float = 298.15
    # start values
    dp_bar: float = 5.0
    n_modules: float = 45.0
    recycle_fraction: float = 0.05
    thickness_nm: float = 112.5
    charge_mol_m3: float = -300.0

    def __post_init__(self) -> None:
        if self.n_stages not in (1, 2):
            raise InvalidInputError(f"n_stages={self.n_stages!r}: seed 002's superstructure has 1 or 2 stages")
        object.__setattr__(self, "permeability_relation", permeability_relation(self.permeability_relation))
        if not self.product_m3_h > 0:
            raise InvalidInputError(f"product_m3_h={self.product_m3_h!r} must be > 0")
        _check_feed(self.feed_conc_mol_m3)


#: relative charge imbalance sum(z c) / sum(|z| c) a plant feed may have
FEED_EN_RTOL = 1e-6


def _check_feed(feed_conc_mol_m3: Mapping[str, float]) -> None:
    """Feed concentrations [mol/m3]: finite, > 0, electroneutral (typed errors naming the value)."""
    from nanosep.errors import ElectroneutralityError

    from .properties import canonical_ions

    bad = {i: c for i, c in feed_conc_mol_m3.items() if not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0)}
    if bad:
        raise InvalidInputError(f"feed_conc_mol_m3: concentrations must be finite and > 0 mol/m3, got {bad}")
    ions, charge = canonical_ions(list(feed_conc_mol_m3))
    zc = [(charge[i], float(v)) for i, v in zip(ions, feed_conc_mol_m3.values())]
    net = sum(z * x for z, x in zc)
    if abs(net) > FEED_EN_RTOL * sum(abs(z) * x for z, x in zc):
        raise ElectroneutralityError(f"feed_conc_mol_m3={dict(feed_conc_mol_m3)} is not electroneutral: "
                                     f"sum(z c) = {net:.6g} mol/m3")


def expected_degrees_of_freedom(spec: PlantSpec) -> int:
    """Feed flow + n_stages x (dP, N) + X + dx [- 1 with the charge relation] [+ 1 recirculation] - 1 (product flow)."""
    return 1 + 2 * spec.n_stages + 2 - (spec.charge_relation is not None) + spec.recirculation - 1


RejectionFactory = Callable[[int], Any]


def build_plant(spec: PlantSpec, rejection: RejectionFactory, *, name: str = "nf_plant",
                cost_parameters: CostParameters | None = None) -> pyo.ConcreteModel:
    """The superstructure of the module docstring; ``rejection(i)`` returns stage ``i``'s rejection model (i = 1, 2)."""
    m = pyo.ConcreteModel(name=name)
    ions = list(spec.feed_conc_mol_m3)
    skw = {"osmotic": spec.osmotic_model if spec.osmotic else "van_t_hoff"}
    add_membrane(m, charge_relation=spec.charge_relation, thickness_nm=spec.thickness_nm,
                              charge_mol_m3=spec.charge_mol_m3, permeability=spec.permeability_relation)
    product_m3_s = spec.product_m3_h / 3600.0
    recycle = spec.recycle_fraction if spec.recirculation else 0.0
    feed_guess = product_m3_s / (1.0 - recycle) / 0.7
    add_feed(m, "feed", ions, flow_m3_s=feed_guess, conc_mol_m3=spec.feed_conc_mol_m3,
                      temperature_K=spec.temperature_K, fix_flow=False, **skw)
    order, stages, pumps = [m.feed], [], []
    source = m.feed.outlet
    if spec.recirculation:
        mixer = add_mixer(m, "mixer", ions, 2, **skw)
        connect(m, "arc_feed_mixer", source, mixer.inlet[0].state)
        rec = mixer.inlet[1].state  # tear stream start: no flow, feed composition
        rec.set_state(0.0, {i: m.feed.outlet.conc[i].value for i in m.feed.outlet.ion_names}, m.feed.outlet.pressure.value,
                      spec.temperature_K)
        rec.flow_vol.set_value(recycle * feed_guess)
        source = mixer.outlet
        order.append(mixer)
    retentates = []
    for i in range(1, spec.n_stages + 1):
        pump = add_pump(m, f"pump{i}", ions, efficiency=spec.pump_efficiency, **skw)
        pump.deltaP.set_value(spec.dp_bar * 1e5)
        connect(m, f"arc_to_pump{i}", source, pump.inlet)
        stage = add_nf_stage(m, f"stage{i}", ions, m.membrane, rejection(i), area_module_m2=spec.area_module_m2,
                             n_modules_bounds=spec.n_modules_bounds, max_recovery=spec.max_recovery,
                             integer=spec.integer_modules, osmotic_drive=spec.osmotic,
                             **skw)
        stage.n_modules.set_value(spec.n_modules)
        connect(m, f"arc_pump{i}_stage{i}", pump.outlet, stage.feed)
        order += [pump, stage]
        stages.append(stage)
        pumps.append(pump)
        retentates.append(stage.retentate)
        source = stage.permeate
    add_sink(m, "product", ions, **skw)
    add_sink(m, "retentate", ions, **skw)
    if spec.recirculation:
        split = add_splitter(m, "splitter", ions, 2, **skw)
        split.split[1].set_value(recycle)
        split.split[0].set_value(1.0 - recycle)
        connect(m, "arc_permeate_splitter", source, split.inlet)
        connect(m, "arc_splitter_product", split.outlet[0].state, m.product.inlet)
        connect(m, "arc_recycle", split.outlet[1].state, m.mixer.inlet[1].state)
        order.append(split)
    else:
        connect(m, "arc_permeate_product", source, m.product.inlet)
    if len(retentates) == 2:
        waste = add_mixer(m, "waste_mixer", ions, 2, **skw)
        for k, r in enumerate(retentates):
            connect(m, f"arc_retentate{k + 1}_waste", r, waste.inlet[k].state)
        connect(m, "arc_waste_retentate", waste.outlet, m.retentate.inlet)
        order.append(waste)
    else:
        connect(m, "arc_retentate", retentates[0], m.retentate.inlet)
    expand_arcs(m)

    m.stages, m.pumps, m.init_order, m.spec = stages, pumps, order, spec
    m.product_target = pyo.Param(initialize=product_m3_s, mutable=True, units=pyo.units.m**3 / pyo.units.s)
    m.eq_product_flow = pyo.Constraint(expr=m.product.inlet.flow_vol == m.product_target, doc="seed 002 sec. 3.1")
    limit_ion = _canonical(spec.limit_ion)
    if limit_ion not in m.product.inlet.ion_names:
        raise InvalidInputError(f"limit_ion={spec.limit_ion!r} is not one of the feed ions {m.product.inlet.ion_names}")
    m.permeate_limit_value = pyo.Param(initialize=spec.permeate_limit_mol_m3, mutable=True)
    m.permeate_limit = pyo.Constraint(expr=m.product.inlet.conc[limit_ion] / (pyo.units.mol / pyo.units.m**3)
                                      <= m.permeate_limit_value, doc=f"product {limit_ion} <= limit [mol/m3]")
    m.costing = add_costing(m, stages, pumps, m.product.inlet, cost_parameters)
    m.objective = pyo.Objective(expr=m.costing.operation, sense=pyo.minimize, doc="annual operating cost [USD/yr]")
    # decisions: feed flow (pinned by the product spec), the design decisions
    m.design_decisions = [v for u in order for v in u.decisions if v is not m.feed.outlet.flow_vol]
    m.design_decisions = list({id(v): v for v in m.design_decisions}.values())
    if spec.charge_relation is not None:  # X follows from dx
        m.design_decisions = [v for v in m.design_decisions if v is not m.membrane.charge_mol_m3]
    m.design_decisions = [v for v in m.design_decisions if v is not m.membrane.permeability]  # Q follows from dx
    return m


def _canonical(ion: str) -> str:
    from .properties import canonical_ions

    return canonical_ions([ion])[0][0]


def initialize_plant(m, solver_options: dict | None = None, passes: int = 2) -> None:
    """Membrane Q from dx (and X from the relation), then the sequential sweep; fixed flags are restored."""
    calculate_variable_from_constraint(m.membrane.permeability, m.membrane.eq_permeability)
    if m.membrane.component("eq_charge_thickness") is not None:
        calculate_variable_from_constraint(m.membrane.charge_mol_m3, m.membrane.eq_charge_thickness)
    with_feed = m.feed.outlet.flow_vol
    with fixed_state([with_feed]):
        # deactivated plant-level constraints do not matter here: units are solved block by block
        initialize_sequential(m, m.init_order, passes=passes, solver_options=solver_options)


def structural_decisions(m, fixed=()) -> list:
    """The decisions to fix for the structural (Dulmage-Mendelsohn) check: a choice that makes the model square.

    With the osmotic term in the driving force the product flow depends on the feed (through the
    osmotic pressures), so the design decisions of ``m.design_decisions`` (feed flow free, pinned by
    the product spec) are a square choice.  Without it (seed 002) the permeate flow J A = Q dP A of
    the last stage does not see the feed flow, so the product equality fixes the last pump's dP and
    the feed flow is free: fix the feed flow in place of that dP.  Variables in ``fixed`` are already
    fixed and left out.
    """
    decisions = [d for d in m.design_decisions if all(d is not f for f in fixed)]
    if m.spec.osmotic:
        return decisions
    last_dp = m.pumps[-1].deltaP
    if any(last_dp is f for f in fixed):  # dP already pinned by the caller: nothing to swap
        return decisions
    return [d for d in decisions if d is not last_dp] + [m.feed.outlet.flow_vol]


@dataclass
class PlantResult:
    """Summary of a plant solve (SI unless the name says otherwise)."""

    termination: str
    optimal: bool
    objective_usd_per_year: float
    cost_usd_per_m3: float
    product_conc_mol_m3: dict
    feed_m3_h: float
    decisions: dict
    times_s: dict
    model: Any = field(default=None, repr=False)


def solve_plant(m, *, permeate_limit_mol_m3: float | None = None, fix_modules: bool = False, check: bool = True,
                initialize: bool = True, solver_options: dict | None = None, tee: bool = False) -> PlantResult:
    """Local NLP with cyipopt: minimize the annual operating cost subject to the permeate limit.

    ``fix_modules`` keeps the module counts at their current values (else they are relaxed
    to continuous variables within their bounds; an Integer domain is relaxed by Ipopt's
    interface only if the caller relaxes it first, so integer models raise here).
    """
    if any(s.n_modules.domain is pyo.PositiveIntegers for s in m.stages) and not fix_modules:
        raise InvalidInputError("integer module counts need a MINLP solver; use integer_modules=False (relaxed) "
                                "or fix_modules=True for the local NLP")
    if permeate_limit_mol_m3 is not None:
        m.permeate_limit_value.set_value(float(permeate_limit_mol_m3))
    times = {}
    t0 = time.perf_counter()
    if initialize:
        initialize_plant(m)
    times["init"] = time.perf_counter() - t0
    fixed = [s.n_modules for s in m.stages] if fix_modules else []
    with fixed_state(fixed):
        if check:
            check_degrees_of_freedom(m, expected_degrees_of_freedom(m.spec) - len(fixed))
            check_structure(m, structural_decisions(m, fixed))
        set_scaling(m)
        solver = ipopt_solver({"print_level": 5 if tee else 0, **USER_SCALING, **(solver_options or {})})
        t1 = time.perf_counter()
        res = solver.solve(m, tee=tee)
        times["solve"] = time.perf_counter() - t1
    tc = res.solver.termination_condition
    prod = m.product.inlet
    dec = {"feed_m3_h": pyo.value(m.feed.outlet.flow_vol) * 3600, "thickness_nm": m.membrane.thickness_nm.value,
           "charge_mol_m3": m.membrane.charge_mol_m3.value, "permeability_L_m2_h_bar": m.membrane.permeability.value}
    for s, p in zip(m.stages, m.pumps):
        dec[f"{s.local_name}_n_modules"] = s.n_modules.value
        dec[f"{p.local_name}_dp_bar"] = p.deltaP.value / 1e5
    if m.component("splitter") is not None:
        dec["recycle_fraction"] = m.splitter.split[1].value
    return PlantResult(str(tc), tc == pyo.TerminationCondition.optimal, float(pyo.value(m.costing.operation)),
                       float(pyo.value(m.costing.per_m3)), {i: prod.conc[i].value for i in prod.ion_names},
                       dec["feed_m3_h"], dec, times, m)


def drinking_water_plant(c_na2so4_mol_m3: float = 10.0, *, formulation: str = "full", n_elements: int | None = None,
                         recirculation: bool = True, osmotic: bool = True, permeate_limit_mol_m3: float = 1.0,
                         **spec_kw) -> pyo.ConcreteModel:
    """Single-stage plant of seed 002 sec. 3.1-3.2: 224 m3/h product, Na2SO4 feed (5-20 mol/m3), shipped
    element surrogate ``seed002_na2so4_element`` (one element at the stage feed, or a chain of
    ``n_elements``), OMLT ``formulation`` "full" or "reduced"."""
    from nanosep.surrogates.onnx_io import load_shipped

    if not 5.0 <= c_na2so4_mol_m3 <= 20.0:
        log.warning("Na2SO4 feed %.3g mol/m3 is outside seed 002's range 5-20 mol/m3", c_na2so4_mol_m3)
    sur = load_shipped(SEED002_SURROGATE)
    spec = PlantSpec(feed_conc_mol_m3={"Na+": 2.0 * c_na2so4_mol_m3, "SO4-2": c_na2so4_mol_m3}, n_stages=1,
                     recirculation=recirculation, osmotic=osmotic, permeate_limit_mol_m3=permeate_limit_mol_m3, **spec_kw)

    def rejection(_i: int):
        if n_elements is None:
            return ElementSurrogate(sur, formulation, balance_with="Na+")
        return ElementChain(sur, n_elements, formulation, balance_with="Na+")

    return build_plant(spec, rejection, name=f"drinking_water_{c_na2so4_mol_m3:g}")
