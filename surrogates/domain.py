"""The declared input domain of a surrogate and its design (seed 002, section 2.1).

A surrogate case file (``cases/surrogates/*.yaml``, format in ``surrogates/DESIGN.md``)
names a regular ``nanosep predict`` case as its ``base``, the inputs that vary (from a
fixed vocabulary, each with bounds and a linear or log scale), the network outputs with
their physical ranges, and the design (scrambled Sobol or Latin hypercube)::

    from nanosep.surrogates.domain import load_surrogate_case, design
    case = load_surrogate_case("cases/surrogates/seed002_na2so4_element.yaml")
    df = design(case)          # case_id + one column per input, in the declared order

Seed 002 samples its inputs by a Latin hypercube (section 2.1); the default here is a
scrambled Sobol sequence (``scipy.stats.qmc.Sobol``), which fills the cube more evenly
at the same n; ``method: lhs`` gives seed 002's choice.  Log-scale inputs are uniform
in log10 (a feed concentration over 0.01-50 mol/m3 spans 3.7 decades; uniform sampling
would put 80 % of the points above 10 mol/m3); ``scale: log_neg`` is uniform in log10(-x)
for negative inputs (a charge density of -1000..-10 mol/m3).  ``scale: log_offset`` with an ``offset``
(in the variable's units) samples uniformly in ``log10(x + offset)``: dense near ``x = 0``,
which stays in the domain (e.g. transmembrane velocity 0-50 um/s with offset 0.1 um/s,
where rejection rises steeply from 0 over the first fraction of a um/s).

The base is validated by :func:`nanosep.casefile.case_from_dict`; every problem of the
surrogate file is reported as one :class:`~nanosep.errors.InvalidInputError` naming the
field and the value, e.g. ``inputs.1: thickness_nm: low (150) must be < high (75)``.
"""
from __future__ import annotations

import difflib
import logging
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from nanosep.surrogates.recipe import TrainingRecipe
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from nanosep import casefile
from nanosep.casefile import CaseFile, case_from_dict
from nanosep.errors import InvalidInputError, UnknownIonError

log = logging.getLogger(__name__)

__all__ = [
    "FIXED_INPUTS",
    "DesignSpec",
    "InputVariable",
    "OutputVariable",
    "SurrogateCase",
    "design",
    "extra_design_case",
    "input_unit",
    "load_surrogate_case",
    "output_unit",
    "surrogate_case_from_dict",
]

Finite = Annotated[float, Field(allow_inf_nan=False)]

#: The fixed input vocabulary: name -> (unit, smallest allowed value, largest allowed value,
#: whether the smallest value itself is allowed).  Ion concentrations ``c_<ion>_mol_m3``
#: (canonical ion name, mol/m3, >= 0) complete it.  ``gamma`` (module recovery, seed 002
#: eq. 1-2) is used by ``surrogates.module`` only.
FIXED_INPUTS: dict[str, tuple[str, float, float, bool]] = {
    "pore_radius_nm": ("nm", 0.0, math.inf, False),
    "thickness_um": ("um", 0.0, math.inf, False),
    "thickness_nm": ("nm", 0.0, math.inf, False),
    "pore_dielectric": ("-", 0.0, math.inf, False),
    "charge_density_mol_m3": ("mol/m3", -math.inf, math.inf, True),
    "flux_L_m2_h": ("L/(m2 h)", 0.0, math.inf, True),
    "flux_um_s": ("um/s", 0.0, math.inf, True),
    "temperature_K": ("K", 273.15, 373.15, True),
    "gamma": ("-", 0.0, 1.0, False),
}
#: Inputs that cannot appear together (two spellings of one engine argument).
EXCLUSIVE = (("thickness_um", "thickness_nm"), ("flux_L_m2_h", "flux_um_s"))

_CONC = re.compile(r"^c_(?P<ion>.+)_mol_m3$")
_REJ = re.compile(r"^rejection_(?P<ion>.+)$")
_PERM = re.compile(r"^permeate_(?P<ion>.+)_mol_m3$")


def input_unit(name: str) -> str:
    """Unit of an input name of the vocabulary (``InvalidInputError`` for other names)."""
    if name in FIXED_INPUTS:
        return FIXED_INPUTS[name][0]
    if _CONC.match(name):
        return "mol/m3"
    raise InvalidInputError(f"unknown input name {name!r}")


def output_unit(name: str) -> str:
    """Unit of an output name: ``-`` for ``rejection_<ion>``, ``mol/m3`` for ``permeate_<ion>_mol_m3``."""
    if _PERM.match(name):
        return "mol/m3"
    if _REJ.match(name):
        return "-"
    raise InvalidInputError(f"unknown output name {name!r}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class InputVariable(_Section):
    """One input of the surrogate: a vocabulary name, bounds [low, high], a scale (linear, log,
    log_offset, log_neg) and, for log_offset, the ``offset`` c > 0 of ``t = log10(x + c)``
    (variable's units); log_neg (``t = log10(-x)``) needs ``high < 0``."""

    name: str
    low: Finite
    high: Finite
    scale: Literal["linear", "log", "log_offset", "log_neg"] = "linear"
    offset: Finite = 0.0

    @model_validator(mode="after")
    def _check(self) -> InputVariable:
        fixed = FIXED_INPUTS.get(self.name)
        if fixed is None and not _CONC.match(self.name):
            close = difflib.get_close_matches(self.name, list(FIXED_INPUTS), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown input name {self.name!r}{hint} (allowed: {', '.join(FIXED_INPUTS)}, "
                             "c_<ion>_mol_m3)")
        if not self.low < self.high:
            raise ValueError(f"{self.name}: low ({self.low:g}) must be < high ({self.high:g})")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"{self.name}: log scale needs low > 0 (got low = {self.low:g})")
        if self.scale == "log_offset" and not self.offset > 0:
            raise ValueError(f"{self.name}: log_offset scale needs offset > 0 (got offset = {self.offset:g})")
        if self.scale != "log_offset" and self.offset != 0:
            raise ValueError(f"{self.name}: offset ({self.offset:g}) is only used with scale 'log_offset' "
                             f"(got scale {self.scale!r})")
        unit, lo, hi, closed = fixed if fixed else ("mol/m3", 0.0, math.inf, True)
        if self.low < lo or (self.low == lo and not closed) or self.high > hi:
            lo_s = f"{'>=' if closed else '>'} {lo:g}"
            raise ValueError(f"{self.name}: bounds [{self.low:g}, {self.high:g}] {unit} leave the physical "
                             f"range ({lo_s}{'' if math.isinf(hi) else f', <= {hi:g}'})")
        if self.scale == "log_offset" and self.low + self.offset <= 0:
            raise ValueError(f"{self.name}: log_offset needs low + offset > 0 (got {self.low:g} + {self.offset:g})")
        if self.scale == "log_neg" and self.high >= 0:
            raise ValueError(f"{self.name}: log_neg scale needs high < 0 (got high = {self.high:g})")
        return self

    @property
    def unit(self) -> str:
        return input_unit(self.name)

    @property
    def transform(self):
        """The input transform ``t`` (:class:`nanosep.surrogates.scaling.InputScale`)."""
        from nanosep.surrogates.scaling import InputScale

        return InputScale(self.scale, self.offset)

    @property
    def ion(self) -> str | None:
        """The ion of a ``c_<ion>_mol_m3`` input (None for the other inputs)."""
        m = _CONC.match(self.name)
        return m["ion"] if m else None


class OutputVariable(_Section):
    """One network output (``rejection_<ion>`` or ``permeate_<ion>_mol_m3``) with its physical range
    and the transform the network models: ``identity`` or, for rejections, ``log10_transmission``
    (the network fits ``log10(1 - R)``; see :mod:`nanosep.surrogates.scaling`)."""

    name: str
    low: Finite
    high: Finite
    transform: Literal["identity", "log10_transmission"] = "identity"

    @model_validator(mode="after")
    def _check(self) -> OutputVariable:
        if not (_REJ.match(self.name) or _PERM.match(self.name)):
            raise ValueError(f"unknown output name {self.name!r} (allowed: rejection_<ion>, permeate_<ion>_mol_m3)")
        if not self.low < self.high:
            raise ValueError(f"{self.name}: low ({self.low:g}) must be < high ({self.high:g})")
        if self.transform == "log10_transmission" and not _REJ.match(self.name):
            raise ValueError(f"{self.name}: log10_transmission applies to rejection_<ion> outputs only")
        return self

    @property
    def unit(self) -> str:
        return output_unit(self.name)

    @property
    def ion(self) -> str:
        m = _PERM.match(self.name) or _REJ.match(self.name)
        return m["ion"]


class DesignSpec(_Section):
    """How the domain is sampled: scrambled Sobol (default) or Latin hypercube, n points, seed."""

    method: Literal["sobol", "lhs"] = "sobol"
    n: Annotated[int, Field(ge=1)] = 8192
    seed: int = 0


class SurrogateCase(_Section):
    """A validated surrogate case: base case, inputs (network order), outputs, design."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.+-]+$")]
    description: str = ""
    base: dict[str, Any]
    inputs: Annotated[list[InputVariable], Field(min_length=1)]
    outputs: Annotated[list[OutputVariable], Field(min_length=1)]
    design: DesignSpec = DesignSpec()
    training: TrainingRecipe | None = None   # optional per-output recipe (nanosep.surrogates.recipe)

    _base: CaseFile = PrivateAttr()
    _ions: tuple[str, ...] = PrivateAttr()

    @model_validator(mode="after")
    def _cross_checks(self) -> SurrogateCase:
        try:
            base = case_from_dict(self.base, source="base")
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None
        names = [v.name for v in self.inputs]
        for i, nm in enumerate(names):
            if nm in names[:i]:
                raise ValueError(f"inputs.{i}: {nm!r} is declared twice")
        for group in EXCLUSIVE:
            both = [g for g in group if g in names]
            if len(both) > 1:
                raise ValueError(f"inputs: {both[0]!r} and {both[1]!r} set the same engine argument; keep one")
        ions = list(base.feed_mol_m3)
        for i, v in enumerate(self.inputs):
            if v.ion is None:
                continue
            ion = _canonical_ion(base, v.ion, f"inputs.{i}: {v.name!r}", "c_{}_mol_m3")
            if ion == base.balance_ion:
                raise ValueError(f"inputs.{i}: {v.name!r} is the balance_with ion of the base; its concentration "
                                 "follows from electroneutrality")
            if ion not in ions:
                ions.append(ion)
        if base.balance_ion is None and any(v.ion is not None for v in self.inputs):
            raise ValueError("base.balance_with: required when feed concentrations are inputs (an ion that "
                             "closes electroneutrality in every sample)")
        if base.balance_ion is not None and base.balance_ion not in ions:
            ions.append(base.balance_ion)
        for i, o in enumerate(self.outputs):
            kind = "rejection_{}" if _REJ.match(o.name) and not _PERM.match(o.name) else "permeate_{}_mol_m3"
            ion = _canonical_ion(base, o.ion, f"outputs.{i}: {o.name!r}", kind)
            if ion not in ions:
                raise ValueError(f"outputs.{i}: {o.name!r}: ion {ion!r} is not in the feed (ions: {', '.join(ions)})")
        if "flux_um_s" not in names and "flux_L_m2_h" not in names:
            op = base.operation
            points = op.flux_L_m2_h if op.flux_L_m2_h is not None else op.pressure_bar
            if len(points) != 1:
                raise ValueError(f"base.operation: without a flux input the base must give exactly one "
                                 f"operating point (got {len(points)})")
        if self.training is not None:
            outs = self.training.output_order
            if outs != [o.name for o in self.outputs]:
                raise ValueError(f"training.nets: the nets' outputs {outs} must list every output once, in the "
                                 f"order of 'outputs' {[o.name for o in self.outputs]}")
            for d in self.training.extra_designs:
                for k in d.bounds:
                    if k not in names:
                        raise ValueError(f"training.extra_designs {d.name!r}: {k!r} is not an input "
                                         f"(inputs: {', '.join(names)})")
        self._base, self._ions = base, tuple(ions)
        return self

    @property
    def base_case(self) -> CaseFile:
        """The validated base case (:class:`nanosep.casefile.CaseFile`)."""
        return self._base

    @property
    def ions(self) -> tuple[str, ...]:
        """Canonical ions of every sample's feed: base feed, input ions, balance ion (dataset order)."""
        return self._ions

    @property
    def input_names(self) -> list[str]:
        return [v.name for v in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def to_dict(self) -> dict:
        """Plain JSON-able dict (the form stored in manifests and model cards)."""
        return self.model_dump(mode="json")


def _canonical_ion(base: CaseFile, raw: str, where: str, template: str) -> str:
    try:
        ion = base.ion_db.canonical(raw)
    except UnknownIonError as exc:
        msg = str(exc).split(" (add new ions")[0]
        raise ValueError(f"{where}: {msg} (define new ions in the base's 'ions' section)") from None
    if ion != raw:
        raise ValueError(f"{where}: use the canonical ion name {template.format(ion)!r}")
    return ion


# ---------------------------------------------------------------------- the design
def design(case: SurrogateCase, n: int | None = None, method: str | None = None,
           seed: int | None = None) -> pd.DataFrame:
    """Sample the declared domain: ``case_id`` (0..n-1) and one column per input, in input order.

    ``n``, ``method`` (``"sobol"`` or ``"lhs"``) and ``seed`` default to the case's
    ``design`` section.  Sobol points are scrambled (Owen) with ``seed``; scipy warns
    (``UserWarning``) when ``n`` is not a power of 2, as the balance properties of the
    sequence then do not hold.  Each input is uniform in its transform ``t``: linear inputs
    on [low, high], log inputs in log10, log_offset inputs in log10(x + offset), log_neg inputs
    in log10(-x).  Deterministic for a given (n, method, seed).
    """
    from scipy.stats import qmc

    spec = case.design
    n = spec.n if n is None else int(n)
    method = spec.method if method is None else method
    seed = spec.seed if seed is None else int(seed)
    if n < 1:
        raise InvalidInputError(f"design size n must be >= 1, got {n!r}")
    d = len(case.inputs)
    if method == "sobol":
        if n & (n - 1):
            log.warning("Sobol design of n=%d points: not a power of 2 (next: %d), balance properties lost",
                        n, 1 << (n - 1).bit_length())
        u = qmc.Sobol(d, scramble=True, rng=seed).random(n)
    elif method == "lhs":
        u = qmc.LatinHypercube(d, scramble=True, rng=seed).random(n)
    else:
        raise InvalidInputError(f"design method {method!r}: use 'sobol' or 'lhs'")
    cols: dict[str, np.ndarray] = {"case_id": np.arange(n, dtype=np.int64)}
    for j, v in enumerate(case.inputs):
        sc = v.transform
        lo, hi = sc.forward(v.low), sc.forward(v.high)
        x = sc.inverse(lo + u[:, j] * (hi - lo))
        cols[v.name] = np.clip(x, v.low, v.high)
    log.info("%s design of %d points over %d inputs (seed %d)", method, n, d, seed)
    return pd.DataFrame(cols)


def extra_design_case(case: SurrogateCase, name: str) -> SurrogateCase:
    """The case restricted to the sub-domain of its ``training.extra_designs`` entry ``name``
    (bounds replaced, design n/method/seed of the entry, name ``<case>_<name>``); for
    ``nanosep sample CASE --extra NAME``. Unknown names raise :class:`InvalidInputError`."""
    extras = [] if case.training is None else case.training.extra_designs
    match = [d for d in extras if d.name == name]
    if not match:
        raise InvalidInputError(f"{case.name}: no training.extra_designs entry named {name!r} "
                                f"(have: {', '.join(d.name for d in extras) or 'none'})")
    d = match[0]
    data = case.to_dict()
    data["name"] = f"{case.name}_{d.name}"
    for v in data["inputs"]:
        if v["name"] in d.bounds:
            v["low"], v["high"] = d.bounds[v["name"]]
    data["design"] = {"method": d.method, "n": d.n, "seed": d.seed}
    return surrogate_case_from_dict(data, source=f"{case.name} extra design {name!r}")


# ---------------------------------------------------------------------- loading and messages
def load_surrogate_case(path: str | Path) -> SurrogateCase:
    """Read and validate a surrogate case file (YAML or JSON).

    Raises:
        InvalidInputError: missing/unreadable file or invalid fields; the message
            names the file and every bad field with its value.
    """
    p = Path(path)
    return surrogate_case_from_dict(casefile.read_mapping(p, "surrogate case file"), source=str(p))


def surrogate_case_from_dict(data: dict, source: str = "<surrogate case>") -> SurrogateCase:
    """Validate a surrogate case given as a dict; errors as in :func:`load_surrogate_case`."""
    try:
        return SurrogateCase.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(f"{source}: " + "; ".join(_describe(e) for e in exc.errors())) from None


_SECTIONS: dict[str, type[BaseModel]] = {"inputs": InputVariable, "outputs": OutputVariable, "design": DesignSpec}


def _describe(err: dict) -> str:
    """One pydantic error as ``path: problem (got value)`` (the case-file wording)."""
    return casefile._describe(err, lambda loc: SurrogateCase if len(loc) == 1
                              else _SECTIONS.get(str(loc[0]), SurrogateCase))
