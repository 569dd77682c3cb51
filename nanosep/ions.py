"""Ion and neutral-solute property database with a citation for every value.

Default values (all at 25 C, infinite dilution, SI units):

* ``diffusivity_m2_s``: ions -- the CRC Handbook column of
  ``data/ion_properties_25C.csv`` (CRC, "Ionic conductivity and diffusion at
  infinite dilution", via pyEQL); neutral solutes -- ``data/neutral_solutes_*.csv``
  (Ribeiro et al. 2006; Membranes 11 (2021) 331 scaled from 37 C; glycerol from
  the CRC Handbook), see the headers of those files.
* ``stokes_radius_m``: Stokes-Einstein radius derived from that diffusivity,
  ``r = k T / (6 pi mu D)`` with T = 298.15 K and mu = 0.8900 mPa s (the
  convention behind the "Stokes radii" of the NF literature: Na+ 0.184,
  Mg+2 0.348, SO4-2 0.230, Cl- 0.121 nm).
* ``molar_mass_kg_mol``: from the formula with IUPAC 2021 atomic weights
  (:mod:`nanosep.formula`).

User files override or add species with the fields ``charge``,
``stokes_radius_nm``, ``diffusivity_m2_s``, ``molar_mass_kg_mol`` (and an
optional ``source``); radii are given in nm there and converted to m in
:func:`_override_to_si`, the only place that does so.
"""
from __future__ import annotations

import csv
import json
import math
import numbers
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from nanosep.constants import BOLTZMANN, T_REF
from nanosep.errors import InvalidInputError, UnknownIonError
from nanosep.formula import molar_mass_kg_mol
from nanosep.names import (
    canonical_ion_name,
    new_ion_name,
    normalize_neutral_name,
    split_ion_name,
)
from nanosep.units import NM_TO_M

#: Water viscosity used for the tabulated Stokes-Einstein radii, Pa s (25 C).
STOKES_VISCOSITY_PA_S: float = 0.8900e-3

ION_TABLE = "ion_properties_25C.csv"
NEUTRAL_TABLE = "neutral_solutes_diffusivity_radius.csv"
NEUTRAL_LIST = "neutral_solutes_nanosep.csv"

SRC_D_ION = (
    "CRC Handbook of Chemistry and Physics, 'Ionic conductivity and diffusion at infinite dilution', "
    "via pyEQL (data/ion_properties_25C.csv, column D_inf_CRC_m2_per_s)"
)
SRC_R = "Stokes-Einstein from diffusivity_m2_s: r = k*298.15 K/(6*pi*0.8900e-3 Pa s*D)"
SRC_M = "IUPAC 2021 abridged standard atomic weights (Prohaska et al., Pure Appl. Chem. 94 (2022) 573)"
FIELDS = ("charge", "stokes_radius_m", "diffusivity_m2_s", "molar_mass_kg_mol")
OVERRIDE_FIELDS = ("charge", "stokes_radius_nm", "diffusivity_m2_s", "molar_mass_kg_mol", "source")


def stokes_einstein_radius_m(diffusivity_m2_s: float) -> float:
    """Stokes-Einstein radius in m at 298.15 K and mu = 0.8900 mPa s (see module docstring)."""
    return BOLTZMANN * T_REF / (6.0 * math.pi * STOKES_VISCOSITY_PA_S * diffusivity_m2_s)


def _positive(name: str, field_name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(f"{name!r}: field {field_name!r} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0.0:
        raise InvalidInputError(f"{name!r}: field {field_name!r} must be positive and finite, got {value!r}")
    return float(value)


def _integer(name: str, field_name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise InvalidInputError(f"{name!r}: field {field_name!r} must be an integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Ion:
    """One ion or neutral solute (SI units, 25 C, infinite dilution).

    Attributes:
        name: canonical name (``"Ca+2"``, ``"glucose"``).
        charge: valence, an integer (0 for neutral solutes).
        stokes_radius_m: Stokes (hydrodynamic) radius, m.
        diffusivity_m2_s: bulk diffusion coefficient at 25 C and infinite dilution, m2/s.
        molar_mass_kg_mol: molar mass, kg/mol.
        sources: citation for each of the four fields above, keyed by field name.
    """

    name: str
    charge: int
    stokes_radius_m: float
    diffusivity_m2_s: float
    molar_mass_kg_mol: float
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "charge", _integer(self.name, "charge", self.charge))
        for f in ("stokes_radius_m", "diffusivity_m2_s", "molar_mass_kg_mol"):
            object.__setattr__(self, f, _positive(self.name, f, getattr(self, f)))
        object.__setattr__(self, "sources", types.MappingProxyType(dict(self.sources)))

    @property
    def is_neutral(self) -> bool:
        """True for uncharged solutes."""
        return self.charge == 0


def _data_file(name: str):
    return resources.files("nanosep").joinpath("data", name)


def _read_table(name: str) -> list[dict[str, str]]:
    with _data_file(name).open("r", encoding="utf-8") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def _load_ions() -> dict[str, Ion]:
    out: dict[str, Ion] = {}
    for row in _read_table(ION_TABLE):
        z = int(row["charge"])
        name = new_ion_name(row["ion"], z)
        formula, _ = split_ion_name(name)
        d = float(row["D_inf_CRC_m2_per_s"])
        out[name] = _tabulated_ion(name, z, d, formula, "definition (data/ion_properties_25C.csv)", SRC_D_ION)
    return out


def _tabulated_ion(name: str, charge: int, d_m2_s: float, formula: str, charge_source: str,
                   d_source: str) -> Ion:
    """An :class:`Ion` from a tabulated 25 C diffusivity: Stokes-Einstein radius, formula mass."""
    return Ion(
        name=name,
        charge=charge,
        stokes_radius_m=stokes_einstein_radius_m(d_m2_s),
        diffusivity_m2_s=d_m2_s,
        molar_mass_kg_mol=molar_mass_kg_mol(formula),
        sources={
            "charge": charge_source,
            "diffusivity_m2_s": d_source,
            "stokes_radius_m": SRC_R,
            "molar_mass_kg_mol": SRC_M + f", formula {formula}",
        },
    )


def _load_neutrals() -> dict[str, Ion]:
    from nanosep.water import (
        diffusivity_at,  # water needs nothing from here; keep import local
    )

    rows: dict[str, list[dict[str, str]]] = {}
    for row in _read_table(NEUTRAL_TABLE):
        rows.setdefault(row["solute"], []).append(row)
    out: dict[str, Ion] = {}
    for item in _read_table(NEUTRAL_LIST):
        name = normalize_neutral_name(item["name"])
        if item["D_25C_m2_per_s"]:
            d, src = float(item["D_25C_m2_per_s"]), item["D_source"]
        else:
            table = rows[item["table_name"]]
            at25 = [r for r in table if abs(float(r["T_K"]) - T_REF) < 0.01]
            r = at25[0] if at25 else min(table, key=lambda r: abs(float(r["T_K"]) - T_REF))
            t = float(r["T_K"])
            d37 = float(r["D0_1e-9_m2_per_s"]) * 1e-9
            d = d37 if at25 else float(d37 * diffusivity_at(1.0, T_REF) / diffusivity_at(1.0, t))
            src = f"{r['source']} (data/{NEUTRAL_TABLE}, T = {t} K)"
            if not at25:
                src += "; scaled to 298.15 K by Stokes-Einstein with IAPWS-2008 water viscosity"
        out[name] = _tabulated_ion(name, 0, d, item["formula"], "neutral solute", src)
    return out


def _override_to_si(name: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one user record and convert it to SI field names (nm -> m happens here only)."""
    unknown = sorted(set(record) - set(OVERRIDE_FIELDS))
    if unknown:
        raise InvalidInputError(f"{name!r}: unknown field(s) {unknown}; allowed fields are {list(OVERRIDE_FIELDS)}")
    out: dict[str, Any] = {}
    if record.get("charge") is not None:
        out["charge"] = _integer(name, "charge", record["charge"])
    if record.get("stokes_radius_nm") is not None:
        out["stokes_radius_m"] = _positive(name, "stokes_radius_nm", record["stokes_radius_nm"]) * NM_TO_M
    for f in ("diffusivity_m2_s", "molar_mass_kg_mol"):
        if record.get(f) is not None:
            out[f] = _positive(name, f, record[f])
    return out


def read_override_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read ion overrides from YAML, JSON (``{name: {field: value}}`` or a list of records with
    ``name``) or CSV (a ``name`` column plus field columns; ``#`` lines are comments, empty cells
    mean "not given").  Numbers are parsed; units are those of :data:`OVERRIDE_FIELDS`.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    elif suffix == ".json":
        data = json.loads(p.read_text(encoding="utf-8"))
    elif suffix == ".csv":
        with p.open(encoding="utf-8") as fh:
            data = []
            for row in csv.DictReader(line for line in fh if not line.lstrip().startswith("#")):
                rec: dict[str, Any] = {}
                for k, v in row.items():
                    k = (k or "").strip()
                    v = (v or "").strip()
                    if not v:
                        continue
                    if k in ("name", "source"):
                        rec[k] = v
                    else:
                        try:
                            rec[k] = float(v)
                        except ValueError:
                            rec[k] = v  # rejected with a clear message by _override_to_si
                data.append(rec)
    else:
        raise InvalidInputError(f"ion override file {str(p)!r}: unsupported extension {suffix!r} (use .yaml, .json or .csv)")
    if isinstance(data, list):
        records = {}
        for rec in data:
            if not isinstance(rec, Mapping) or "name" not in rec:
                raise InvalidInputError(f"ion override file {str(p)!r}: every record needs a 'name', got {rec!r}")
            rec = dict(rec)
            records[str(rec.pop("name"))] = rec
        data = records
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"ion override file {str(p)!r}: expected a mapping name -> fields, got {type(data).__name__}")
    out = {}
    for name, rec in data.items():
        if not isinstance(rec, Mapping):
            raise InvalidInputError(f"ion override file {str(p)!r}: entry {name!r} must be a mapping of fields, got {rec!r}")
        rec = dict(rec)
        rec.setdefault("source", f"user file {p.name}")
        out[str(name)] = rec
    return out


class IonDatabase:
    """Immutable, validated collection of :class:`Ion` records keyed by canonical name.

    Look-ups accept any spelling understood by :func:`nanosep.names.canonical_ion_name`.
    """

    def __init__(self, ions: Mapping[str, Ion]) -> None:
        self._ions: dict[str, Ion] = dict(ions)

    @staticmethod
    @lru_cache(maxsize=1)
    def default() -> IonDatabase:
        """The packaged database (17 ions, 11 neutral solutes); loaded once and cached."""
        return IonDatabase({**_load_ions(), **_load_neutrals()})

    @property
    def names(self) -> tuple[str, ...]:
        """Canonical names, in load order."""
        return tuple(self._ions)

    def canonical(self, name: str) -> str:
        """Canonical spelling of ``name`` in this database (raises :class:`UnknownIonError`)."""
        return canonical_ion_name(name, self._ions.keys())

    def get(self, name: str) -> Ion:
        """The record for ``name`` (any accepted spelling); raises :class:`UnknownIonError`."""
        return self._ions[self.canonical(name)]

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.canonical(name)
        except UnknownIonError:
            return False
        return True

    def __iter__(self) -> Iterator[Ion]:
        return iter(self._ions.values())

    def __len__(self) -> int:
        return len(self._ions)

    def __repr__(self) -> str:
        return f"IonDatabase({len(self)} species: {', '.join(self._ions)})"

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> IonDatabase:
        """A new database with species added or fields replaced.

        ``overrides`` maps a name to fields among ``charge``, ``stokes_radius_nm`` (nm),
        ``diffusivity_m2_s``, ``molar_mass_kg_mol`` and ``source`` (citation, default
        "user override").  For an existing species only the given fields change (the
        radius and the diffusivity are independent parameters; changing one does not
        recompute the other).  A new species needs ``charge`` (unless its name carries
        it) and ``diffusivity_m2_s`` and/or ``stokes_radius_nm``; a missing one of these
        two is derived by Stokes-Einstein, and a missing molar mass from the formula.

        Raises:
            InvalidInputError: a field is unknown, not a number, not finite, not positive,
                a non-integer charge, or a charge that contradicts the name.
        """
        ions = dict(self._ions)
        for raw_name, record in overrides.items():
            if not isinstance(record, Mapping):
                raise InvalidInputError(f"{raw_name!r}: override must be a mapping of fields, got {record!r}")
            si = _override_to_si(raw_name, record)
            source = str(record.get("source") or "user override")
            try:
                name = canonical_ion_name(raw_name, ions.keys())
            except UnknownIonError:
                name = new_ion_name(raw_name, si.get("charge"))
            if name in ions:
                old = ions[name]
                if "charge" in si and si["charge"] != old.charge:
                    raise InvalidInputError(
                        f"{raw_name!r}: field 'charge' = {si['charge']} contradicts the charge {old.charge} of {name!r}"
                    )
                values = {f: si.get(f, getattr(old, f)) for f in FIELDS}
                sources = {f: (source if f in si else old.sources.get(f, "")) for f in FIELDS}
            else:
                formula, z_name = split_ion_name(name)
                z = si.get("charge", z_name)
                if z != z_name:
                    raise InvalidInputError(f"{raw_name!r}: field 'charge' = {z} contradicts the name {name!r}")
                d, r = si.get("diffusivity_m2_s"), si.get("stokes_radius_m")
                if d is None and r is None:
                    raise InvalidInputError(
                        f"new species {raw_name!r} needs 'diffusivity_m2_s' and/or 'stokes_radius_nm'"
                    )
                sources = {f: source for f in FIELDS}
                if d is None:
                    d = BOLTZMANN * T_REF / (6.0 * math.pi * STOKES_VISCOSITY_PA_S * r)
                    sources["diffusivity_m2_s"] = "Stokes-Einstein from stokes_radius_m (298.15 K, 0.8900 mPa s)"
                if r is None:
                    r = stokes_einstein_radius_m(d)
                    sources["stokes_radius_m"] = SRC_R
                mm = si.get("molar_mass_kg_mol")
                if mm is None:
                    try:
                        mm = molar_mass_kg_mol(formula)
                    except InvalidInputError as exc:
                        raise InvalidInputError(
                            f"new species {raw_name!r}: give 'molar_mass_kg_mol' ({exc})"
                        ) from exc
                    sources["molar_mass_kg_mol"] = SRC_M + f", formula {formula}"
                values = {"charge": z, "stokes_radius_m": r, "diffusivity_m2_s": d, "molar_mass_kg_mol": mm}
            ions[name] = Ion(name=name, sources=sources, **values)
        return IonDatabase(ions)

    @classmethod
    def from_file(cls, path: str | Path, base: IonDatabase | None = None) -> IonDatabase:
        """``base`` (default: :meth:`default`) with the species of a YAML/JSON/CSV file added or overridden."""
        return (base or cls.default()).with_overrides(read_override_file(path))
