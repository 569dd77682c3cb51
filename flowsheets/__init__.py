"""nanosep.flowsheets: NF plant flowsheets (seed 002 superstructure) on Pyomo.

Modules, one idea each: :mod:`.properties` (dilute multi-ion stream state, osmotic pressure),
:mod:`.membrane` (synthesis variables X, dx and permeability, seed 002 eq. 4), :mod:`.unit_models`
(feed, pump, mixer, splitter, sink, Arcs), :mod:`.stage` (NF stage, eqs. 2-6), :mod:`.rejection`
(constant / element surrogate / module surrogate / K-element chain / DSPM-DE twin),
:mod:`.costing` (Verberne-type cost model, eqs. 7-8, parameters in ``data/verberne_costs.csv``),
:mod:`.checks` (degrees of freedom, Dulmage-Mendelsohn), :mod:`.scaling` (scaling_factor suffix),
:mod:`.initialization` (sequential, fixed-state safe), :mod:`.superstructure` (Fig. 7 builder,
drinking-water case of sec. 3.1, local NLP with cyipopt).
"""
from .checks import check_degrees_of_freedom, check_structure
from .costing import CostParameters, load_cost_parameters, verberne_costs
from .errors import (
    DegreesOfFreedomError,
    FlowsheetError,
    InitializationError,
    StructuralSingularityError,
)
from .initialization import fixed_state, initialize_sequential, initialize_unit
from .membrane import ChargeThicknessRelation, add_membrane
from .properties import AqueousStream
from .rejection import (
    ConstantRejection,
    ElementChain,
    ElementSurrogate,
    ModuleSurrogate,
    TwinRejection,
)
from .stage import add_nf_stage
from .superstructure import (
    PlantResult,
    PlantSpec,
    build_plant,
    drinking_water_plant,
    expected_degrees_of_freedom,
    initialize_plant,
    solve_plant,
)
from .unit_models import (
    add_feed,
    add_mixer,
    add_pump,
    add_sink,
    add_splitter,
    connect,
    expand_arcs,
)

__all__ = ["AqueousStream", "ChargeThicknessRelation", "ConstantRejection", "CostParameters", "DegreesOfFreedomError",
           "ElementChain", "ElementSurrogate", "FlowsheetError", "InitializationError", "ModuleSurrogate", "PlantResult",
           "PlantSpec", "StructuralSingularityError", "TwinRejection", "add_feed", "add_membrane", "add_mixer",
           "add_nf_stage", "add_pump", "add_sink", "add_splitter", "build_plant", "check_degrees_of_freedom",
           "check_structure", "connect", "drinking_water_plant", "expand_arcs", "expected_degrees_of_freedom",
           "fixed_state", "initialize_plant", "initialize_sequential", "initialize_unit", "load_cost_parameters",
           "solve_plant", "verberne_costs"]
