"""The ``nanosep uq`` case file: a transport case plus an ``uq`` section choosing the studies.

A UQ case is an ordinary case file (:mod:`nanosep.casefile`: membrane, feed, operation
with ``flux_L_m2_h``, model, ions) with one more section::

    uq:
      pairs: [[Li+, Mg+2], [Mg+2, Na+]]        # selectivities S_a/b = (1-R_a)/(1-R_b)
      psd:                                      # pore-size distribution -> outputs (Fig. 3B, 5)
        std_radius_nm: 0.13                     # log-normal around membrane.pore_radius_nm (eq. 22)
        samples: 1024                           # scrambled Sobol (power of 2)
        engine: table                           # table (interpolated in ln r) or direct (one solve each)
      covariance:                               # a fit's mean and covariance -> outputs
        parameters: [pore_radius_nm, charge_density_mol_m3]
        cov: [[0.0004, 0.0], [0.0, 25.0]]       # in the units of the names; mean = membrane section
        samples: 256                            # or, instead of parameters/mean/cov, a fit's output:
                                                # from_fit: results/fit/parameters.json, dataset: NaCl
      ablation:                                 # Fig. 4 sweeps at one flux
        flux_L_m2_h: 15
        charge_density_mol_m3: [-100, -50, 0, 50]
        thickness_um: [0.5, 1, 2]
        pore_radius_nm: [0.4, 0.5, 0.6]
        psd_samples: 0                          # > 0: PSD bands (needs psd.std_radius_nm)
      ph:                                       # pH of best selectivity (ionizable groups)
        flux_L_m2_h: 15
        groups: {acid_density_mol_m3: 65, pKa: 4.0, base_density_mol_m3: 35, pKb: 5.0}
        range: [2, 10]

Every study is optional; unknown keys are errors, as everywhere in case files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

from nanosep.casefile import (
    CaseFile,
    Finite,
    PositiveFinite,
    _describe,
    _Section,
    read_mapping,
)
from nanosep.errors import InvalidInputError

from .fit_covariance import covariance_from_fit

__all__ = ["USER_PARAMETERS", "UQCase", "UQSpec", "load_uq_case"]

#: case-file names of the membrane parameters -> (SI name, factor to SI)
USER_PARAMETERS: dict[str, tuple[str, float]] = {
    "pore_radius_nm": ("pore_radius_m", 1e-9), "thickness_um": ("thickness_m", 1e-6),
    "pore_dielectric": ("pore_dielectric", 1.0), "charge_density_mol_m3": ("charge_density_mol_m3", 1.0)}

Samples = Annotated[int, Field(ge=2, le=2**20)]


class PSDStudy(_Section):
    std_radius_nm: PositiveFinite
    samples: Samples = 1024
    method: Literal["sobol", "mc"] = "sobol"
    seed: int = 0
    engine: Literal["table", "direct"] = "table"
    n_table: Annotated[int, Field(ge=8, le=400)] = 96
    plot_flux_L_m2_h: PositiveFinite | None = None


class CovarianceStudy(_Section):
    parameters: Annotated[list[Literal["pore_radius_nm", "thickness_um", "pore_dielectric",
                                       "charge_density_mol_m3"]], Field(min_length=1)] | None = None
    mean: list[Finite] | None = None
    cov: list[list[Finite]] | None = None
    from_fit: str | None = None      # a ``nanosep fit`` parameters.json (relative to the case file)
    dataset: str | None = None       # its data-set label for parameters fitted per data set
    samples: Samples = 256
    method: Literal["sobol", "mc"] = "sobol"
    seed: int = 0
    plot_flux_L_m2_h: PositiveFinite | None = None

    @model_validator(mode="after")
    def _shapes(self) -> CovarianceStudy:
        if self.from_fit is not None:
            if self.cov is not None or self.mean is not None:
                raise ValueError("give either from_fit or mean/cov, not both")
            return self            # filled from the file by load_uq_case
        if self.parameters is None or self.cov is None:
            raise ValueError("needs parameters and cov (or from_fit: a nanosep fit's parameters.json)")
        d = len(self.parameters)
        if len(set(self.parameters)) != d:
            raise ValueError(f"parameters repeat a name: {self.parameters}")
        if self.mean is not None and len(self.mean) != d:
            raise ValueError(f"mean has {len(self.mean)} entries for {d} parameters")
        if len(self.cov) != d or any(len(row) != d for row in self.cov):
            raise ValueError(f"cov must be a {d}x{d} matrix for parameters {self.parameters}")
        return self


class AblationStudy(_Section):
    flux_L_m2_h: PositiveFinite
    charge_density_mol_m3: list[Finite] | None = None
    thickness_um: list[PositiveFinite] | None = None
    pore_radius_nm: list[PositiveFinite] | None = None
    pore_dielectric: list[PositiveFinite] | None = None
    psd_samples: Annotated[int, Field(ge=0, le=4096)] = 0

    @model_validator(mode="after")
    def _some_sweep(self) -> AblationStudy:
        if not self.sweeps():
            raise ValueError("give at least one of charge_density_mol_m3, thickness_um, pore_radius_nm, "
                             "pore_dielectric (a list of values)")
        return self

    def sweeps(self) -> dict[str, list[float]]:
        return {k: v for k in USER_PARAMETERS if (v := getattr(self, k)) is not None and len(v)}


class GroupsSpec(_Section):
    acid_density_mol_m3: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    pKa: Finite
    base_density_mol_m3: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    pKb: Finite = 10.0


class PHStudy(_Section):
    flux_L_m2_h: PositiveFinite
    groups: GroupsSpec
    range: tuple[Finite, Finite] = (2.0, 10.0)
    n_grid: Annotated[int, Field(ge=3, le=201)] = 17
    reference_pH: Finite = 7.0
    pairs: list[tuple[str, str]] | None = None

    @model_validator(mode="after")
    def _range(self) -> PHStudy:
        if not self.range[0] < self.range[1]:
            raise ValueError(f"range must be [low, high] with low < high, got {list(self.range)}")
        return self


class UQSpec(_Section):
    pairs: list[tuple[str, str]] = Field(default_factory=list)
    psd: PSDStudy | None = None
    covariance: CovarianceStudy | None = None
    ablation: AblationStudy | None = None
    ph: PHStudy | None = None

    @model_validator(mode="after")
    def _something(self) -> UQSpec:
        if not any((self.psd, self.covariance, self.ablation, self.ph)):
            raise ValueError("choose at least one study: psd, covariance, ablation or ph")
        return self


class UQCase(CaseFile):
    """A case file with a ``uq`` section (see the module docstring)."""

    uq: UQSpec

    @model_validator(mode="after")
    def _uq_consistent(self) -> UQCase:
        if self.operation.flux_L_m2_h is None:
            raise ValueError("operation: the uq studies need flux_L_m2_h (not pressure_bar)")
        feed = self.feed_mol_m3
        pairs = list(self.uq.pairs) + (list(self.uq.ph.pairs or []) if self.uq.ph else [])
        for a, b in pairs:
            for ion in (a, b):
                name = self.ion_db.canonical(ion) if _known(self, ion) else ion
                if name not in feed:
                    raise ValueError(f"uq.pairs: ion {ion!r} is not in the feed {sorted(feed)}")
        if self.uq.ph is not None and not (self.uq.ph.pairs or self.uq.pairs):
            raise ValueError("uq.ph needs selectivity pairs (uq.pairs or uq.ph.pairs)")
        if self.uq.ablation is not None and self.uq.ablation.psd_samples and self.uq.psd is None:
            raise ValueError("uq.ablation.psd_samples needs uq.psd.std_radius_nm")
        return self

    def canonical_pairs(self, pairs: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
        """``pairs`` (default ``uq.pairs``) with canonical ion names."""
        return [(self.ion_db.canonical(a), self.ion_db.canonical(b)) for a, b in (self.uq.pairs if pairs is None
                                                                                    else pairs)]


def _known(case: CaseFile, ion: str) -> bool:
    try:
        case.ion_db.canonical(ion)
        return True
    except Exception:  # noqa: BLE001 - reported as "not in the feed"
        return False


def load_uq_case(path: str | Path) -> UQCase:
    """Read and validate a UQ case; every problem in one :class:`InvalidInputError` naming file and field."""
    p = Path(path)
    data = read_mapping(p, "uq case file")
    try:
        case = UQCase.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(f"{p}: " + "; ".join(_describe(e) for e in exc.errors())) from None
    cs = case.uq.covariance
    if cs is not None and cs.from_fit is not None:
        src = Path(cs.from_fit) if Path(cs.from_fit).is_absolute() else p.parent / cs.from_fit
        names, mean, cov = covariance_from_fit(src, cs.dataset, cs.parameters)
        filled = cs.model_copy(update=dict(parameters=names, mean=mean, cov=cov))
        case = case.model_copy(update={"uq": case.uq.model_copy(update={"covariance": filled})})
    return case
