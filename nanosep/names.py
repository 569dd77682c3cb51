"""Ion and solute names: one canonical spelling for the many in use.

Canonical ion names follow PHREEQC: formula, sign, then the magnitude of the
charge when it is larger than one -- ``Na+``, ``Cl-``, ``Ca+2``, ``SO4-2``.
Neutral solutes are lowercase common names (``glucose``, ``ethylene glycol``).

Accepted input spellings include ``Ca2+``, ``Ca+2``, ``Ca++``, ``Ca[+2]``,
``Ca 2+``, ``Ca^2+``, ``Ca(2+)``, ``Ca²⁺``, ``Ca`` (charge taken from the
database when the formula is unique), ``Na[+]``, ``SO4--``, ``SO4 2-``, and
neutral names in any case with ``_``/``-`` separators and a few synonyms
(``dextrose``, ``glycerin``, ``MEG``, ``D-mannitol``).  ``SO42-`` is read as
``SO4`` with charge 2- because that is the reading the database knows.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable

from nanosep.errors import InvalidInputError, UnknownIonError

_UNICODE = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻−–", "0123456789+--" + "-")
_FORMULA = re.compile(r"^[A-Za-z][A-Za-z0-9()]*$")
_CHARGE_SIGN_FIRST = re.compile(r"^([+-])(\d*)$")  # +, -, +2, -2, +1
_CHARGE_DIGITS_FIRST = re.compile(r"^(\d+)([+-])$")  # 2+, 2-, 1+
_CHARGE_REPEATED = re.compile(r"^(\++|-+)$")  # ++, --, +++

#: Synonyms of neutral solutes (after :func:`normalize_neutral_name`).
NEUTRAL_ALIASES: dict[str, str] = {
    "dextrose": "glucose",
    "d glucose": "glucose",
    "d fructose": "fructose",
    "saccharose": "sucrose",
    "glycerin": "glycerol",
    "glycerine": "glycerol",
    "propane 1,2,3 triol": "glycerol",
    "meg": "ethylene glycol",
    "monoethylene glycol": "ethylene glycol",
    "ethane 1,2 diol": "ethylene glycol",
    "d arabinose": "arabinose",
    "d mannitol": "mannitol",
}


def format_ion_name(formula: str, charge: int) -> str:
    """Canonical name of an ion: ``format_ion_name("Ca", 2) == "Ca+2"``, ``("Cl", -1) -> "Cl-"``."""
    if charge == 0:
        return normalize_neutral_name(formula)
    sign = "+" if charge > 0 else "-"
    return f"{formula}{sign}" if abs(charge) == 1 else f"{formula}{sign}{abs(charge)}"


def split_ion_name(name: str) -> tuple[str, int]:
    """Formula and charge of a *canonical* ion name: ``"SO4-2" -> ("SO4", -2)``; neutrals give 0."""
    m = re.match(r"^(.*?)([+-])(\d*)$", name)
    if m is None:
        return name, 0
    z = int(m.group(3) or 1)
    return m.group(1), z if m.group(2) == "+" else -z


def normalize_neutral_name(text: str) -> str:
    """Lowercase, ``_``/``-`` to spaces, single spaces, then :data:`NEUTRAL_ALIASES`."""
    s = " ".join(text.strip().lower().replace("_", " ").replace("-", " ").split())
    return NEUTRAL_ALIASES.get(s, s)


def _parse_charge(text: str) -> int | None:
    """Charge from a charge token (``+``, ``-2``, ``2+``, ``++``); None if it is not one."""
    if m := _CHARGE_SIGN_FIRST.match(text):
        z = int(m.group(2) or 1)
        return z if m.group(1) == "+" else -z
    if m := _CHARGE_DIGITS_FIRST.match(text):
        z = int(m.group(1))
        return z if m.group(2) == "+" else -z
    if m := _CHARGE_REPEATED.match(text):
        return len(text) if text[0] == "+" else -len(text)
    return None


def parse_ion_name(text: str) -> list[tuple[str, int | None]]:
    """All readings ``(formula, charge)`` of an ion spelling, syntax only.

    ``charge`` is None when the spelling carries no charge (``"Na"``).  Spellings
    such as ``"SO42-"`` have several readings (``SO4`` 2-, ``SO42`` 1-); the
    caller picks the one it knows.  Returns ``[]`` for text that is not an ion.
    """
    s = text.translate(_UNICODE).strip()
    out: list[tuple[str, int | None]] = []

    def add(formula: str, charge_text: str | None) -> None:
        formula = formula.replace(" ", "")
        if not _FORMULA.match(formula):
            return
        if charge_text is None:
            out.append((formula, None))
            return
        z = _parse_charge(charge_text.replace(" ", ""))
        if z is not None and z != 0:
            out.append((formula, z))

    for opener, closer in (("[", "]"), ("(", ")")):  # Ca[+2], Na[+], Ca(2+)
        if s.endswith(closer) and opener in s:
            i = s.rindex(opener)
            if _parse_charge(s[i + 1 : -1].replace(" ", "")) is not None:
                add(s[:i], s[i + 1 : -1])
                return out
    if "^" in s:  # Ca^2+, SO4^2-
        head, _, tail = s.rpartition("^")
        add(head, tail)
        return out
    if " " in s:  # Ca 2+, SO4 2-
        head, _, tail = s.rpartition(" ")
        if _parse_charge(tail) is not None:
            add(head, tail)
            return out
    if m := re.match(r"^(.*?)(\++|-+)$", s):  # Na+, Ca++, SO4--, Cl-
        add(m.group(1), m.group(2))
        if len(m.group(2)) == 1:  # digits just before a single sign may be the charge: Ca2+, SO42-
            d = re.match(r"^(.*?)(\d+)$", m.group(1))
            if d:
                digits = d.group(2)
                for k in range(1, len(digits) + 1):
                    add(d.group(1) + digits[:-k], digits[-k:] + m.group(2))
        return out
    if m := re.match(r"^(.*?)([+-]\d+)$", s):  # Ca+2, SO4-2, Na+1
        add(m.group(1), m.group(2))
        return out
    add(s, None)  # Na, Cl, SO4
    return out


def _default_names() -> Collection[str]:
    from nanosep.ions import IonDatabase  # lazy: ions imports this module

    return IonDatabase.default().names


def _suggest(text: str, known: Iterable[str]) -> str:
    known = list(known)
    close = difflib.get_close_matches(text.strip(), known, n=3, cutoff=0.5)
    if not close:
        close = difflib.get_close_matches(text.strip().lower(), [k.lower() for k in known], n=3, cutoff=0.5)
        close = [k for k in known if k.lower() in close]
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def canonical_ion_name(name: str, known: Collection[str] | None = None) -> str:
    """Canonical spelling of an ion or neutral solute name.

    ``known`` is the collection of canonical names to match against (default: the
    names of :meth:`nanosep.ions.IonDatabase.default`).  A spelling without a
    charge (``"Na"``, ``"SO4"``) matches when exactly one known ion has that
    formula.  Formula case matters (``Co`` is not ``CO``) unless only a
    case-insensitive match exists and it is unique.

    Raises:
        UnknownIonError: the name matches no known ion or solute; the message names
            the value and suggests close matches.
    """
    if not isinstance(name, str):
        raise UnknownIonError(f"ion name must be a string, got {name!r}")
    names = _default_names() if known is None else known
    neutral = normalize_neutral_name(name)
    if neutral in names:
        return neutral
    by_formula: dict[str, list[tuple[int, str]]] = {}
    for k in names:
        f, z = split_ion_name(k)
        if z != 0:
            by_formula.setdefault(f, []).append((z, k))
    lower: dict[str, list[tuple[int, str]]] = {}
    for f, items in by_formula.items():
        lower.setdefault(f.lower(), []).extend(items)
    readings = parse_ion_name(name)
    for table, key in ((by_formula, str), (lower, str.lower)):
        matches = set()
        for formula, z in readings:
            items = table.get(key(formula), [])
            if z is None:
                if len(items) == 1:
                    matches.add(items[0][1])
            else:
                matches.update(k for zz, k in items if zz == z)
        if len(matches) == 1:
            return matches.pop()
        if len(matches) > 1:
            raise UnknownIonError(f"ion name {name!r} is ambiguous: it could be {sorted(matches)}")
    raise UnknownIonError(
        f"unknown ion or solute {name!r}{_suggest(name, names)} "
        "(add new ions with IonDatabase.with_overrides or IonDatabase.from_file)"
    )


def new_ion_name(name: str, charge: int | None) -> str:
    """Canonical name for an ion or solute that is *not* in a database yet.

    The name must carry the charge unambiguously, or ``charge`` must pick one of
    its readings (``new_ion_name("Fe3+", None)`` is ambiguous: Fe3 1+ or Fe 3+).
    A name without a charge and ``charge == 0`` is a neutral solute.

    Raises:
        InvalidInputError: the name and ``charge`` do not define one species.
    """
    readings = parse_ion_name(name)
    if charge == 0 and (not readings or all(z is None for _, z in readings)):
        return normalize_neutral_name(name)
    fits = {
        (f, z if z is not None else charge)
        for f, z in readings
        if (z is not None or charge is not None) and (charge is None or z is None or z == charge)
    }
    if len(fits) == 1:
        formula, z = fits.pop()
        return format_ion_name(formula, int(z))  # type: ignore[arg-type]
    if not fits:
        raise InvalidInputError(
            f"cannot read a species from name {name!r} with charge={charge!r}; "
            "write e.g. 'La+3' or give the field 'charge'"
        )
    raise InvalidInputError(
        f"name {name!r} is ambiguous ({sorted(format_ion_name(f, z) for f, z in fits)}); "
        "write the charge as in 'Fe+3' or give the field 'charge'"
    )
