"""Case files: one membrane, one feed, a list of operating points and the model options.

A case file is YAML or JSON (user units: nm, um, L m-2 h-1, bar, K, mol/m3)::

    name: NF270, brackish groundwater
    membrane: {pore_radius_nm: 0.5, thickness_um: 1.16, pore_dielectric: 43.86, charge_density_mol_m3: -63}
    feed:
      temperature_K: 298.15
      concentrations_mol_m3: {Na+: 25.0, Cl-: 25.0}
    operation: {flux_L_m2_h: [5, 10, 20]}     # or {pressure_bar: [...]}, exactly one
    model: {activity: davies, image_forces: false, polarization: film, mass_transfer_m_s: 2.0e-5}
    ions: {La+3: {diffusivity_m2_s: 6.19e-10}}  # optional: add or override ion properties
    balance_with: Cl-                           # optional: counter-ion that closes the charge balance

Every section forbids unknown keys, so typos are caught.  :func:`load_case` reports
every problem as one :class:`~nanosep.errors.InvalidInputError` whose message names
the file and the field path, e.g. ``membrane.pore_radius_nm: must be > 0 (got -0.5)``.
:meth:`CaseFile.to_engine` converts to the SI inputs of :func:`nanosep.transport.solve`
(through :mod:`nanosep.units`); it imports the transport engine lazily, so loading and
validating a file stays fast.
"""
from __future__ import annotations

import difflib
import json
import logging
import math
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from nanosep.errors import InvalidInputError, UnknownIonError
from nanosep.ions import IonDatabase
from nanosep.units import bar_to_pa, lmh_to_m_s

log = logging.getLogger(__name__)

#: Relative electroneutrality tolerance, |sum z c| <= EN_RTOL * sum |z| c; the same
#: value as ``nanosep.transport.solver.EN_RTOL`` (a test keeps them equal).
EN_RTOL = 1e-6

Finite = Annotated[float, Field(allow_inf_nan=False)]
PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFinite = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class MembraneSpec(_Section):
    """DSPM-DE membrane parameters in user units."""

    pore_radius_nm: PositiveFinite
    thickness_um: PositiveFinite = Field(description="effective thickness dx/A_k, um")
    pore_dielectric: PositiveFinite
    charge_density_mol_m3: Finite = Field(description="volumetric charge density X, signed, mol/m3")


class FeedSpec(_Section):
    """Bulk feed: temperature and ion concentrations (any common ion spelling)."""

    temperature_K: Annotated[float, Field(ge=273.15, le=373.15, allow_inf_nan=False)]
    concentrations_mol_m3: Annotated[dict[str, NonNegativeFinite], Field(min_length=1)]


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value


class OperationSpec(_Section):
    """Operating points: water fluxes or applied pressures (exactly one list)."""

    flux_L_m2_h: Annotated[list[PositiveFinite], Field(min_length=1)] | None = None
    pressure_bar: Annotated[list[PositiveFinite], Field(min_length=1)] | None = None

    @field_validator("flux_L_m2_h", "pressure_bar", mode="before")
    @classmethod
    def _scalar_to_list(cls, value: Any) -> Any:
        return _as_list(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> OperationSpec:
        if (self.flux_L_m2_h is None) == (self.pressure_bar is None):
            got = "both" if self.flux_L_m2_h is not None else "neither"
            raise ValueError(f"give exactly one of flux_L_m2_h and pressure_bar (got {got})")
        return self


class ChannelSpec(_Section):
    """Feed channel whose Sherwood correlation gives k (nanosep.transport.polarization.Channel)."""

    correlation: Literal["leveque", "schock_miquel", "da_costa"] = "schock_miquel"
    velocity_m_s: PositiveFinite = 0.1
    height_m: PositiveFinite = 7.9e-4
    hydraulic_diameter_m: PositiveFinite | None = None
    length_m: PositiveFinite = 1.0


class ModelSpec(_Section):
    """Physics switches of the transport engine (see :class:`nanosep.transport.TransportOptions`)."""

    activity: Literal["ideal", "davies", "pitzer"] = "ideal"
    image_forces: bool = False
    polarization: Literal["none", "film", "linear"] = "none"
    mass_transfer_m_s: PositiveFinite | None = None
    channel: ChannelSpec | None = None
    hindrance: Literal["dechadilok_deen", "bungay_brenner"] = "dechadilok_deen"
    nodes: Annotated[int, Field(ge=2, le=256)] | None = None

    @model_validator(mode="after")
    def _polarization_needs_k(self) -> ModelSpec:
        if self.polarization != "none" and (self.mass_transfer_m_s is None) == (self.channel is None):
            raise ValueError(f"polarization {self.polarization!r} needs exactly one of mass_transfer_m_s (m/s) "
                             "and channel (a Sherwood correlation)")
        return self


class IonSpec(_Section):
    """Properties that add an ion or override the packaged values (nanosep.ions)."""

    charge: int | None = None
    stokes_radius_nm: PositiveFinite | None = None
    diffusivity_m2_s: PositiveFinite | None = None
    molar_mass_kg_mol: PositiveFinite | None = None
    source: str | None = None


class EngineInputs(NamedTuple):
    """Arguments of :func:`nanosep.transport.solve`, in SI units."""

    membrane: Any  # nanosep.transport.Membrane (imported lazily)
    feed: dict[str, float]
    drive: dict[str, np.ndarray]  # {"flux_m_s": ...} or {"pressure_pa": ...}
    options: Any  # nanosep.transport.TransportOptions
    ion_db: IonDatabase
    temperature_K: float
    balance_with: str | None


class CaseFile(_Section):
    """A validated case; ion names are canonicalized against the (overridden) ion database."""

    name: str | None = None
    description: str | None = None
    membrane: MembraneSpec
    feed: FeedSpec
    operation: OperationSpec
    model: ModelSpec = ModelSpec()
    ions: dict[str, IonSpec] = Field(default_factory=dict)
    balance_with: str | None = None

    _ion_db: IonDatabase = PrivateAttr()
    _feed: dict[str, float] = PrivateAttr()
    _balance_with: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _resolve_ions(self) -> CaseFile:
        db = _build_ion_db(self.ions)
        feed: dict[str, float] = {}
        for raw, value in self.feed.concentrations_mol_m3.items():
            name = _canonical(db, raw, f"feed.concentrations_mol_m3.{raw}")
            if name in feed:
                raise ValueError(f"feed.concentrations_mol_m3: {raw!r} repeats ion {name!r}")
            feed[name] = value
        if not any(v > 0 for v in feed.values()):
            raise ValueError("feed.concentrations_mol_m3: every concentration is zero")
        balance = None if self.balance_with is None else _canonical(db, self.balance_with, "balance_with")
        _check_charge_balance(db, feed, balance)
        self._ion_db, self._feed, self._balance_with = db, feed, balance
        return self

    @property
    def ion_db(self) -> IonDatabase:
        """The packaged ion database with this file's ``ions`` section applied."""
        return self._ion_db

    @property
    def feed_mol_m3(self) -> dict[str, float]:
        """Feed concentrations keyed by canonical ion name, mol/m3."""
        return dict(self._feed)

    @property
    def balance_ion(self) -> str | None:
        """Canonical name of ``balance_with`` (None if not given)."""
        return self._balance_with

    @property
    def drive_kind(self) -> str:
        """``"flux"`` or ``"pressure"``."""
        return "flux" if self.operation.flux_L_m2_h is not None else "pressure"

    def to_engine(self) -> EngineInputs:
        """SI inputs of :func:`nanosep.transport.solve` (unit conversion via :mod:`nanosep.units`)."""
        from nanosep.transport import Membrane, TransportOptions

        mem = Membrane.from_user_units(**self.membrane.model_dump())
        op = self.operation
        if op.flux_L_m2_h is not None:
            drive = {"flux_m_s": lmh_to_m_s(op.flux_L_m2_h)}
        else:
            drive = {"pressure_pa": bar_to_pa(op.pressure_bar)}
        m = self.model
        from nanosep.transport.polarization import Channel

        extra = {"nodes": m.nodes} if m.nodes is not None else {}
        use = m.polarization != "none"
        channel = Channel(**m.channel.model_dump()) if (use and m.channel is not None) else None
        options = TransportOptions(activity=m.activity, image_forces=m.image_forces, polarization=m.polarization,
                                   mass_transfer_m_s=m.mass_transfer_m_s if use else None, channel=channel,
                                   hindrance=m.hindrance, **extra)
        return EngineInputs(mem, self.feed_mol_m3, drive, options, self._ion_db, self.feed.temperature_K,
                            self._balance_with)


# ---------------------------------------------------------------------- cross-field checks
def _build_ion_db(ions: dict[str, IonSpec]) -> IonDatabase:
    db = IonDatabase.default()
    for name, spec in ions.items():
        record = spec.model_dump(exclude_none=True)
        record.setdefault("source", "case file")
        try:
            db = db.with_overrides({name: record})
        except InvalidInputError as exc:
            raise ValueError(f"ions.{name}: {exc}") from None
    return db


def _canonical(db: IonDatabase, raw: str, where: str) -> str:
    try:
        return db.canonical(raw)
    except UnknownIonError as exc:
        msg = str(exc).split(" (add new ions")[0]
        raise ValueError(f"{where}: {msg} (define new ions in the 'ions' section)") from None


def _check_charge_balance(db: IonDatabase, feed: dict[str, float], balance: str | None) -> None:
    z = {name: db.get(name).charge for name in feed}
    if balance is not None:
        zb = db.get(balance).charge
        if zb == 0:
            raise ValueError(f"balance_with: {balance!r} is not charged")
        others = sum(z[i] * c for i, c in feed.items() if i != balance)
        if -others / zb < 0:
            raise ValueError(f"balance_with: {balance!r} (charge {zb:+d}) cannot balance a charge excess of "
                             f"{others:+.6g} mol/m3; choose an ion of the opposite sign")
        return
    pos = sum(z[i] * c for i, c in feed.items() if z[i] > 0)
    neg = -sum(z[i] * c for i, c in feed.items() if z[i] < 0)
    if abs(pos - neg) > EN_RTOL * max(pos + neg, 1e-300):
        raise ValueError(
            f"feed.concentrations_mol_m3: feed is not electroneutral: sum(z c) = {pos - neg:+.6g} mol/m3 "
            f"(cations {pos:.6g}, anions {neg:.6g} mol/m3 of charge); fix the composition or add "
            "'balance_with: <ion>' to close the balance with a counter-ion")


# ---------------------------------------------------------------------- loading and messages
def load_case(path: str | Path) -> CaseFile:
    """Read and validate a YAML (``.yaml``/``.yml``) or JSON (``.json``) case file.

    Raises:
        InvalidInputError: the file is missing or unreadable, or some fields are
            invalid; the one-line message names the file and every bad field path.
    """
    p = Path(path)
    data = read_mapping(p, "case file")
    case = case_from_dict(data, source=str(p))
    log.info("loaded case %s (%s, %d operating points)", p, case.name or p.stem,
             len(case.operation.flux_L_m2_h or case.operation.pressure_bar or []))
    return case


def read_mapping(path: str | Path, what: str = "case file") -> dict:
    """The top-level mapping of a YAML/JSON file; ``what`` names the kind of file in errors.

    Raises:
        InvalidInputError: missing/unreadable file, a parse error, or a top level that is not a mapping.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"{p}: {what} not found") from None
    except OSError as exc:
        raise InvalidInputError(f"{p}: cannot read the {what} ({exc.strerror})") from None
    data = _parse(p, text)
    if not isinstance(data, dict):
        raise InvalidInputError(f"{p}: a {what} must be a mapping of sections, got {type(data).__name__}")
    return data


def case_from_dict(data: dict, source: str = "<case>") -> CaseFile:
    """Validate a case given as a dict; errors as in :func:`load_case`, prefixed by ``source``."""
    try:
        return CaseFile.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(f"{source}: " + "; ".join(_describe(e) for e in exc.errors())) from None


def _parse(p: Path, text: str) -> Any:
    if p.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{p}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInputError(f"{p}: invalid YAML{where}: {problem}") from None


def _section_at(loc: tuple) -> type[BaseModel] | None:
    """The model class that owns the last element of ``loc`` (for 'did you mean' on unknown keys)."""
    cls: Any = CaseFile
    for part in loc[:-1]:
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            field = cls.model_fields.get(str(part))
            if field is None:
                return None
            cls = field.annotation
        elif typing.get_origin(cls) is dict:
            cls = typing.get_args(cls)[1]
        else:
            return None
        args = [a for a in typing.get_args(cls) if a is not type(None)]
        if typing.get_origin(cls) is typing.Union and len(args) == 1:
            cls = args[0]
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


_MESSAGES = {
    "missing": "required field is missing",
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than_equal": "must be <= {le}",
    "finite_number": "must be a finite number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "literal_error": "must be one of {expected}",
    "too_short": "must not be empty",
    "model_type": "must be a mapping of fields",
    "model_attributes_type": "must be a mapping of fields",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "string_type": "must be a string",
}


def _describe(err: dict, section_at=None, cutoff: float = 0.6) -> str:
    """One pydantic error as ``path: problem (got value)``.

    An unknown key names the allowed keys of its section (``section_at(loc)`` -> pydantic model,
    default: this module's case-file sections; other schemas pass their own) and the closest one."""
    loc = tuple(err["loc"])
    path = ".".join(str(p) for p in loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        section = (section_at or _section_at)(loc)
        allowed = list(section.model_fields) if section else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=cutoff)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{path}: unknown key{hint} (allowed: {', '.join(allowed)})"
    if kind == "value_error":
        msg = str(err["ctx"]["error"]) if "ctx" in err else err["msg"]
        return f"{path}: {msg}" if path else msg
    template = _MESSAGES.get(kind)
    ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in err.get("ctx", {}).items()}
    msg = template.format(**ctx) if template else err["msg"]
    if kind != "missing":
        value = err.get("input")
        shown = "nan" if isinstance(value, float) and math.isnan(value) else repr(value)
        msg += f" (got {shown})"
    return f"{path}: {msg}" if path else msg
