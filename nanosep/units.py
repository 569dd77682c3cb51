"""Unit conversions at the edges of nanosep.

Everything inside the library is SI (m, s, Pa, K, mol/m3).  User-facing files and
tables use L/m2/h for water flux, bar for pressure, nm for radii, um for thickness
and C for temperature; they are converted here and nowhere else.
"""
from __future__ import annotations

import numpy as np

LMH_TO_M_S: float = 1.0e-3 / 3600.0  #: 1 L m-2 h-1 in m/s
BAR_TO_PA: float = 1.0e5
NM_TO_M: float = 1.0e-9
UM_TO_M: float = 1.0e-6
C_TO_K_OFFSET: float = 273.15


def lmh_to_m_s(flux_lmh):
    """Water flux L m-2 h-1 -> m/s."""
    return np.asarray(flux_lmh, dtype=float) * LMH_TO_M_S


def m_s_to_lmh(flux_m_s):
    """Water flux m/s -> L m-2 h-1."""
    return np.asarray(flux_m_s, dtype=float) / LMH_TO_M_S


def bar_to_pa(p_bar):
    """Pressure bar -> Pa."""
    return np.asarray(p_bar, dtype=float) * BAR_TO_PA


def pa_to_bar(p_pa):
    """Pressure Pa -> bar."""
    return np.asarray(p_pa, dtype=float) / BAR_TO_PA


def celsius_to_kelvin(t_c):
    """Temperature C -> K."""
    return np.asarray(t_c, dtype=float) + C_TO_K_OFFSET
