"""Physical constants (CODATA 2018 via :mod:`scipy.constants`), SI units."""
from __future__ import annotations

from scipy import constants as _c

FARADAY: float = _c.physical_constants["Faraday constant"][0]  #: C/mol
GAS_CONSTANT: float = _c.R  #: J/(mol K)
BOLTZMANN: float = _c.k  #: J/K
ELEMENTARY_CHARGE: float = _c.e  #: C
VACUUM_PERMITTIVITY: float = _c.epsilon_0  #: F/m
AVOGADRO: float = _c.N_A  #: 1/mol
T_REF: float = 298.15  #: reference temperature of the ion tables, K
