"""Molar masses from chemical formulas.

Atomic weights are the IUPAC 2021 abridged standard atomic weights (Prohaska et
al., "Standard atomic weights of the elements 2021 (IUPAC Technical Report)",
Pure Appl. Chem. 94 (2022) 573-600, Table 2, five significant figures).  The
electron mass of an ion's charge (5.5e-7 kg/mol per charge) is neglected.
"""
from __future__ import annotations

import re

from nanosep.errors import InvalidInputError

#: g/mol, IUPAC 2021 abridged values
ATOMIC_WEIGHTS: dict[str, float] = {
    "H": 1.0080, "Li": 6.94, "B": 10.81, "C": 12.011, "N": 14.007, "O": 15.999,
    "F": 18.998, "Na": 22.990, "Mg": 24.305, "Al": 26.982, "Si": 28.085, "P": 30.974,
    "S": 32.06, "Cl": 35.45, "K": 39.098, "Ca": 40.078, "Mn": 54.938, "Fe": 55.845,
    "Co": 58.933, "Ni": 58.693, "Cu": 63.546, "Zn": 65.38, "As": 74.922, "Br": 79.904,
    "Rb": 85.468, "Sr": 87.62, "Cd": 112.41, "I": 126.90, "Cs": 132.91, "Ba": 137.33,
    "La": 138.91, "Pb": 207.2, "U": 238.03,
}

_TOKEN = re.compile(r"([A-Z][a-z]?|\(|\)|\d+)")


def molar_mass_kg_mol(formula: str) -> float:
    """Molar mass in kg/mol of a formula such as ``"SO4"``, ``"C6H12O6"`` or ``"Mg(NO3)2"``.

    Raises:
        InvalidInputError: unknown element symbol or malformed formula.
    """
    tokens = _TOKEN.findall(formula)
    if "".join(tokens) != formula or not tokens:
        raise InvalidInputError(f"cannot parse chemical formula {formula!r}")
    stack: list[float] = [0.0]
    last = 0.0  # mass of the last element or group, for a following count
    for tok in tokens:
        if tok == "(":
            stack.append(0.0)
            last = 0.0
        elif tok == ")":
            if len(stack) == 1:
                raise InvalidInputError(f"unbalanced ')' in formula {formula!r}")
            last = stack.pop()
            stack[-1] += last
        elif tok.isdigit():
            stack[-1] += last * (int(tok) - 1)
            last = 0.0
        else:
            if tok not in ATOMIC_WEIGHTS:
                raise InvalidInputError(f"unknown element {tok!r} in formula {formula!r}")
            last = ATOMIC_WEIGHTS[tok]
            stack[-1] += last
    if len(stack) != 1:
        raise InvalidInputError(f"unbalanced '(' in formula {formula!r}")
    return stack[0] * 1.0e-3
