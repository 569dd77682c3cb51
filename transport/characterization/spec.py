"""Fit case files: which membrane parameters are free, fixed or per data set, and how to fit.

A fit case is YAML or JSON (user units, as in :mod:`nanosep.casefile`)::

    name: FdL 2021 NF270, all salts
    model: {activity: davies, image_forces: false, polarization: none}   # as in a case file
    ions: {}                                                             # optional overrides
    parameters:
      pore_radius_nm:        {initial: 0.5,  bounds: [0.3, 1.2]}
      thickness_um:          {initial: 2.0,  bounds: [0.1, 50]}
      pore_dielectric:       {initial: 40,   bounds: [20, 78.5]}
      charge_density_mol_m3: {initial: -30,  bounds: [-300, 100], per: dominant_salt}
    fit: {starts: 32, local_starts: 2, sigma: estimated, profile: true}

``fit.pooled_start`` (default true): with per-data-set parameters, first fit the pooled case
(every parameter shared, global + local stage) and start the full fit from that estimate
(each data set's slot at the pooled value) and from the initial values.
``per: <column>`` makes a parameter take one value per distinct value of that column of
the data (e.g. charge density per dominant salt); ``fixed: true`` holds it at ``initial``.
Positive parameters are fitted in ``ln`` space, the signed charge density linearly
(``transform`` overrides).  The ``model`` and ``ions`` sections are validated by
:mod:`nanosep.casefile` (same keys, same messages).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

from nanosep.casefile import (
    IonSpec,
    ModelSpec,
    _describe,
    _Section,
    case_from_dict,
    read_mapping,
)
from nanosep.errors import InvalidInputError
from nanosep.units import NM_TO_M, UM_TO_M

log = logging.getLogger(__name__)

#: the four latent parameters of seed 003 eq. 13 in user units, with their SI factor,
#: default transform and default bounds
PARAMETERS: dict[str, dict] = {
    "pore_radius_nm": {"si": "pore_radius_m", "factor": NM_TO_M, "transform": "log", "bounds": (0.25, 2.0)},
    "thickness_um": {"si": "thickness_m", "factor": UM_TO_M, "transform": "log", "bounds": (0.05, 100.0)},
    "pore_dielectric": {"si": "pore_dielectric", "factor": 1.0, "transform": "log", "bounds": (10.0, 80.0)},
    "charge_density_mol_m3": {"si": "charge_density_mol_m3", "factor": 1.0, "transform": "linear",
                              "bounds": (-500.0, 200.0)},
}

Finite = Annotated[float, Field(allow_inf_nan=False)]


class ParameterSpec(_Section):
    """One latent parameter: start value, bounds, free/fixed, optional per-data-set column."""

    initial: Finite
    bounds: tuple[Finite, Finite] | None = None
    fixed: bool = False
    per: str | None = Field(default=None, description="data column whose values each get their own parameter")
    transform: Literal["log", "linear"] | None = None
    initial_per: dict[str, Finite] = Field(default_factory=dict,
                                           description="start values of single data sets (with 'per'), by label")


class FitOptions(_Section):
    """Settings of the two-stage fit and of its uncertainty analysis."""

    starts: Annotated[int, Field(ge=0, le=4096)] = 32
    local_starts: Annotated[int, Field(ge=1, le=16)] = 2
    sigma: Literal["estimated", "known"] = "estimated"
    use_rejection_sd: bool = False
    salt_rows_once: bool = True
    profile: bool = True
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95
    seed: int = 0
    max_iterations: Annotated[int, Field(ge=1, le=1000)] = 60
    pooled_start: bool = True
    tol: Annotated[float, Field(gt=0, lt=1e-2)] = 1e-10


class FitCase(_Section):
    """A validated fit case."""

    name: str | None = None
    description: str | None = None
    model: ModelSpec = ModelSpec()
    ions: dict[str, IonSpec] = Field(default_factory=dict)
    parameters: dict[str, ParameterSpec]
    fit: FitOptions = FitOptions()

    @model_validator(mode="after")
    def _check_parameters(self) -> FitCase:
        unknown = sorted(set(self.parameters) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"parameters: unknown parameter(s) {unknown} (allowed: {', '.join(PARAMETERS)})")
        missing = sorted(set(PARAMETERS) - set(self.parameters))
        if missing:
            raise ValueError(f"parameters: missing {missing}; give each with at least 'initial' "
                             "(and 'fixed: true' to hold it)")
        for name, p in self.parameters.items():
            lo, hi = self.bounds(name)
            if not lo < hi:
                raise ValueError(f"parameters.{name}.bounds: need low < high, got [{lo!r}, {hi!r}]")
            if not lo <= p.initial <= hi:
                raise ValueError(f"parameters.{name}.initial: {p.initial!r} outside bounds [{lo!r}, {hi!r}]")
            if p.initial_per and p.per is None:
                raise ValueError(f"parameters.{name}.initial_per: needs 'per' (the data column of the labels)")
            for lab, v in p.initial_per.items():
                if not lo <= v <= hi:
                    raise ValueError(f"parameters.{name}.initial_per.{lab}: {v!r} outside bounds [{lo!r}, {hi!r}]")
            if self.transform(name) == "log" and lo <= 0:
                raise ValueError(f"parameters.{name}.bounds: a log-transformed parameter needs low > 0, got {lo!r}")
        if not any(not p.fixed for p in self.parameters.values()):
            raise ValueError("parameters: every parameter is fixed; nothing to fit")
        return self

    def bounds(self, name: str) -> tuple[float, float]:
        p = self.parameters[name]
        return tuple(p.bounds) if p.bounds is not None else PARAMETERS[name]["bounds"]

    def transform(self, name: str) -> str:
        return self.parameters[name].transform or PARAMETERS[name]["transform"]

    def pooled(self) -> FitCase:
        """The same case with every per-data-set parameter shared (a start for the full fit)."""
        params = {k: v.model_copy(update={"per": None, "initial_per": {}}) for k, v in self.parameters.items()}
        return self.model_copy(update={"parameters": params})

    def engine_setup(self):
        """``(TransportOptions, IonDatabase)`` through :mod:`nanosep.casefile` (same validation)."""
        stub = {"membrane": {"pore_radius_nm": 0.5, "thickness_um": 1.0, "pore_dielectric": 40.0,
                             "charge_density_mol_m3": 0.0},
                "feed": {"temperature_K": 298.15, "concentrations_mol_m3": {"Na+": 1.0, "Cl-": 1.0}},
                "operation": {"flux_L_m2_h": [1.0]},
                "model": self.model.model_dump(exclude_none=True),
                "ions": {k: v.model_dump(exclude_none=True) for k, v in self.ions.items()}}
        eng = case_from_dict(stub, source="fit case").to_engine()
        return eng.options, eng.ion_db


def fit_case_from_dict(data: dict, source: str = "<fit case>") -> FitCase:
    """Validate a fit case given as a dict; errors name ``source`` and the field path."""
    try:
        return FitCase.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(f"{source}: " + "; ".join(_describe_fit(e) for e in exc.errors())) from None


def _describe_fit(err: dict) -> str:
    if err["type"] == "extra_forbidden":  # casefile's "did you mean" walks CaseFile; keep it plain here
        path = ".".join(str(p) for p in err["loc"])
        return f"{path}: unknown key"
    return _describe(err)


def load_fit_case(path: str | Path) -> FitCase:
    """Read and validate a fit case (YAML or JSON).

    Raises:
        InvalidInputError: missing/unreadable file or invalid fields (message names file and field path).
    """
    p = Path(path)
    case = fit_case_from_dict(read_mapping(p, "fit case"), source=str(p))
    log.info("loaded fit case %s (%s)", p, case.name or p.stem)
    return case
