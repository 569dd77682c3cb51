"""Design case files (``cases/design/*.yaml``): one Pareto front of the seed 002 plant, validated with pydantic.

A design case (YAML or JSON; units in the field names)::

    name: seed002_A_element_10mM
    description: ...
    feed: {concentrations_mol_m3: {Na+: 20.0, SO4-2: 10.0}, temperature_K: 298.15}
    product_m3_h: 224                  # seed 002 sec. 3.1
    limit_ion: SO4-2                   # the epsilon-constrained product concentration
    plant: {n_stages: 1, recirculation: true, osmotic_pressure: false, osmotic_model: van_t_hoff,
            pump_efficiency: 0.8, area_module_m2: 60, n_modules_max: 400, max_recovery: 0.95}
    rejection: {kind: element, surrogate: seed002_na2so4_element, n_elements: 3, formulation: full}
    pareto: {points: 10, spacing: log, epsilon_min_mol_m3: null, epsilon_max_mol_m3: null}
    solver: {kind: local, starts: 8, seed: 0, rel_gap: 1.0e-3, time_limit_s: 300}
    exact_check: {enabled: true, rtol: 1.0e-3, case_file: null}

Only ``name`` and ``feed`` are required.  Every section forbids unknown keys (a field without its
unit, e.g. ``product: 224``, is caught with a "did you mean" hint).  :func:`load_design_case` reports
all problems in one :class:`~nanosep.errors.InvalidInputError` naming the file, the field and the
value; the feed must be electroneutral (:class:`~nanosep.errors.ElectroneutralityError`) and its ions
known.  :meth:`DesignCase.to_problem` gives the :class:`.pareto.ParetoProblem`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from nanosep import casefile
from nanosep.errors import ElectroneutralityError, InvalidInputError

__all__ = ["DesignCase", "design_case_from_dict", "load_design_case"]

PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]
EN_RTOL = 1e-6


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class FeedSection(_Section):
    concentrations_mol_m3: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]]
    temperature_K: Annotated[float, Field(gt=273.15, lt=373.15)] = 298.15

    @field_validator("concentrations_mol_m3")
    @classmethod
    def _ions(cls, v: dict[str, float]) -> dict[str, float]:
        from .properties import canonical_ions

        if not v:
            raise ValueError("give at least one ion")
        try:
            names, charges = canonical_ions(list(v))
        except Exception as exc:  # noqa: BLE001 - UnknownIonError / InvalidInputError: keep the message
            raise ValueError(str(exc)) from None
        c = dict(zip(names, v.values()))
        z = {n: charges[n] if isinstance(charges, dict) else 0 for n in names}
        net = sum(z[n] * c[n] for n in names)
        scale = sum(abs(z[n]) * c[n] for n in names)
        if abs(net) > EN_RTOL * max(scale, 1e-300):
            raise ValueError(f"the feed is not electroneutral: sum z c = {net:.6g} mol/m3 for {dict(c)}")
        return v


class PlantSection(_Section):
    n_stages: Literal[1, 2] = 1
    recirculation: bool = True
    osmotic_pressure: bool = False
    osmotic_model: Literal["van_t_hoff", "pitzer"] = "van_t_hoff"
    pump_efficiency: Annotated[float, Field(gt=0, le=1)] = 0.8
    area_module_m2: PositiveFinite = 60.0
    n_modules_max: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 400.0
    max_recovery: Annotated[float, Field(gt=0, lt=1)] = 0.95
    #: seed 002 eq. 4 as printed (Q = 0.4 dx - 25) or the decreasing trend of its text (Q = 65 - 0.4 dx);
    #: see :mod:`nanosep.flowsheets.membrane`
    permeability_relation: Literal["seed002_printed", "seed002_decreasing"] = "seed002_printed"


class RejectionSection(_Section):
    kind: Literal["element", "chain", "module"] = "element"
    surrogate: str | None = None
    n_elements: Annotated[int, Field(ge=1, le=50)] = 3
    formulation: Literal["full", "reduced"] = "full"


class ParetoSection(_Section):
    points: Annotated[int, Field(ge=2, le=1000)] = 10
    spacing: Literal["log", "linear"] = "log"
    epsilon_min_mol_m3: PositiveFinite | None = None
    epsilon_max_mol_m3: PositiveFinite | None = None

    @model_validator(mode="after")
    def _order(self) -> ParetoSection:
        lo, hi = self.epsilon_min_mol_m3, self.epsilon_max_mol_m3
        if lo is not None and hi is not None and not lo < hi:
            raise ValueError(f"epsilon_min_mol_m3 = {lo:g} must be below epsilon_max_mol_m3 = {hi:g}")
        return self


class SolverSection(_Section):
    kind: Literal["local", "global"] = "local"
    starts: Annotated[int, Field(ge=1, le=1000)] = 8
    seed: Annotated[int, Field(ge=0)] = 0
    rel_gap: Annotated[float, Field(gt=0, lt=1)] = 1e-3
    time_limit_s: PositiveFinite = 300.0


class ExactCheckSection(_Section):
    enabled: bool = True
    rtol: Annotated[float, Field(gt=0, lt=0.5)] = 1e-3
    case_file: str | None = None


class DesignCase(_Section):
    """A validated design case (module docstring)."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]
    description: str = ""
    feed: FeedSection
    product_m3_h: PositiveFinite = 224.0
    limit_ion: str = "SO4-2"
    plant: PlantSection = PlantSection()
    rejection: RejectionSection = RejectionSection()
    pareto: ParetoSection = ParetoSection()
    solver: SolverSection = SolverSection()
    exact_check: ExactCheckSection = ExactCheckSection()

    @model_validator(mode="after")
    def _limit_ion_in_feed(self) -> DesignCase:
        from .properties import canonical_ions

        try:
            ion = canonical_ions([self.limit_ion])[0][0]
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"limit_ion {self.limit_ion!r}: {exc}") from None
        feed = canonical_ions(list(self.feed.concentrations_mol_m3))[0]
        if ion not in feed:
            raise ValueError(f"limit_ion {self.limit_ion!r} is not one of the feed ions {feed}")
        return self

    def to_problem(self, *, points: int | None = None, solver: str | None = None, root: str | Path | None = None):
        """The :class:`.pareto.ParetoProblem` (``points`` / ``solver`` override the file's); relative
        paths (surrogate card, exact-check case) are taken relative to ``root`` when they exist there."""
        from .pareto import ParetoProblem, PointSolver, RejectionChoice
        from .superstructure import PlantSpec

        p = self.plant
        spec = PlantSpec(feed_conc_mol_m3=dict(self.feed.concentrations_mol_m3), product_m3_h=self.product_m3_h,
                         n_stages=p.n_stages, recirculation=p.recirculation, osmotic=p.osmotic_pressure,
                         osmotic_model=p.osmotic_model, pump_efficiency=p.pump_efficiency,
                         area_module_m2=p.area_module_m2, n_modules_bounds=(1.0, float(p.n_modules_max)),
                         max_recovery=p.max_recovery, limit_ion=self.limit_ion,
                         permeability_relation=p.permeability_relation,
                         temperature_K=self.feed.temperature_K)
        r = self.rejection
        s = self.solver
        return ParetoProblem(
            spec=spec,
            rejection=RejectionChoice(r.kind, _resolve(r.surrogate, root), r.n_elements, r.formulation),
            solver=PointSolver(solver or s.kind, s.starts, s.seed, s.rel_gap, s.time_limit_s),
            n_points=points or self.pareto.points, spacing=self.pareto.spacing,
            epsilon_min_mol_m3=self.pareto.epsilon_min_mol_m3, epsilon_max_mol_m3=self.pareto.epsilon_max_mol_m3,
            exact_check=self.exact_check.enabled, exact_rtol=self.exact_check.rtol,
            exact_case_file=_resolve(self.exact_check.case_file, root), name=self.name)


def _resolve(ref: str | None, root: str | Path | None) -> str | None:
    """A path-like reference made absolute against ``root`` (or the source tree) if it exists there."""
    if ref is None or not ("/" in ref or ref.endswith((".json", ".yaml", ".yml"))):
        return ref
    p = Path(ref)
    if p.is_absolute() or p.exists():
        return str(p)
    for base in ([Path(root)] if root is not None else []) + [Path(__file__).resolve().parents[1]]:
        if (base / p).exists():
            return str(base / p)
    return ref


_SECTIONS: dict[str, type[BaseModel]] = {"feed": FeedSection, "plant": PlantSection, "rejection": RejectionSection,
                                         "pareto": ParetoSection, "solver": SolverSection,
                                         "exact_check": ExactCheckSection}


def _describe(err: dict) -> str:
    return casefile._describe(err, lambda loc: DesignCase if len(loc) == 1 else _SECTIONS.get(str(loc[0]), DesignCase),
                              cutoff=0.5)


def design_case_from_dict(data: dict, source: str = "<design case>") -> DesignCase:
    """Validate a design case given as a dict; errors as in :func:`load_design_case`."""
    try:
        return DesignCase.model_validate(data)
    except ValidationError as exc:
        msgs = [_describe(e) for e in exc.errors()]
        if any("not electroneutral" in m for m in msgs):
            raise ElectroneutralityError(f"{source}: " + "; ".join(msgs)) from None
        raise InvalidInputError(f"{source}: " + "; ".join(msgs)) from None


def load_design_case(path: str | Path) -> DesignCase:
    """Read and validate a design case file (YAML or JSON).

    Raises:
        InvalidInputError: missing/unreadable file or invalid fields; the message names the file, every
            bad field and its value (:class:`~nanosep.errors.ElectroneutralityError` for a charged feed).
    """
    p = Path(path)
    return design_case_from_dict(casefile.read_mapping(p, "design case file"), source=str(p))
