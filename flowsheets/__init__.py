"""nanosep.flowsheets: NF plant flowsheets (seed 002 superstructure) on Pyomo.

Modules, one idea each: :mod:`.properties` (dilute multi-ion stream state, osmotic pressure),
:mod:`.membrane` (synthesis variables X, dx and permeability, seed 002 eq. 4), :mod:`.unit_models`
(feed, pump, mixer, splitter, sink, Arcs), :mod:`.stage` (NF stage, eqs. 2-6), :mod:`.rejection`
(constant / element surrogate / module surrogate / K-element chain / DSPM-DE twin),
:mod:`.costing` (Verberne-type cost model, eqs. 7-8, parameters in ``data/verberne_costs.csv``),
:mod:`.checks` (degrees of freedom, Dulmage-Mendelsohn), :mod:`.scaling` (scaling_factor suffix),
:mod:`.initialization` (sequential, fixed-state safe), :mod:`.superstructure` (Fig. 7 builder,
drinking-water case of sec. 3.1, local NLP with cyipopt), :mod:`.multistart` (Sobol multi-start
local solves -> :class:`DesignPoint`), :mod:`.pareto` (epsilon-constraint fronts on dask, checkpointed),
:mod:`.exact_check` (designs re-simulated with the transport engine), :mod:`.design_case`
(``cases/design/*.yaml``), :mod:`.front_report` (tables, figures, ``nanosep optimize``),
:mod:`.reduced_plant` (the plant in reduced space, networks as explicit expressions),
:mod:`.global_opt` (MAiNGO on the reduced plant, one Pareto point).
"""
from .checks import check_degrees_of_freedom, check_structure
from .costing import CostParameters, load_cost_parameters, verberne_costs
from .design_case import DesignCase, load_design_case
from .design_point import DesignPoint
from .errors import (
    DegreesOfFreedomError,
    FlowsheetError,
    InitializationError,
    StructuralSingularityError,
)
from .exact_check import exact_check
from .global_opt import maingo_solve, solve_global
from .initialization import fixed_state, initialize_sequential, initialize_unit
from .membrane import ChargeThicknessRelation, add_membrane
from .multistart import solve_multistart
from .pareto import ParetoFront, ParetoProblem, PointSolver, RejectionChoice, run_pareto
from .properties import AqueousStream
from .reduced_plant import (
    apply_design_to_full_plant,
    build_reduced_plant,
    evaluate_design,
)
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

__all__ = [
    "AqueousStream",
    "ChargeThicknessRelation",
    "ConstantRejection",
    "CostParameters",
    "DegreesOfFreedomError",
    "DesignCase",
    "DesignPoint",
    "ElementChain",
    "ElementSurrogate",
    "FlowsheetError",
    "InitializationError",
    "ModuleSurrogate",
    "ParetoFront",
    "ParetoProblem",
    "PlantResult",
    "PlantSpec",
    "PointSolver",
    "RejectionChoice",
    "StructuralSingularityError",
    "TwinRejection",
    "add_feed",
    "add_membrane",
    "add_mixer",
    "add_nf_stage",
    "add_pump",
    "add_sink",
    "add_splitter",
    "apply_design_to_full_plant",
    "build_plant",
    "build_reduced_plant",
    "check_degrees_of_freedom",
    "check_structure",
    "connect",
    "drinking_water_plant",
    "evaluate_design",
    "exact_check",
    "expand_arcs",
    "expected_degrees_of_freedom",
    "fixed_state",
    "initialize_plant",
    "initialize_sequential",
    "initialize_unit",
    "load_cost_parameters",
    "load_design_case",
    "maingo_solve",
    "run_pareto",
    "solve_global",
    "solve_multistart",
    "solve_plant",
    "verberne_costs",
]
