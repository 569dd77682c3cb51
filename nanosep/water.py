"""Properties of liquid water at 0.1 MPa as pure functions of temperature.

All functions take ``T`` in K (scalar or array), are valid for 273.15-373.15 K and
raise :class:`~nanosep.errors.InvalidInputError` outside 273-373 K (a 0.15 K margin
is allowed at each end for round-off).  SI units throughout.

========================  ==================================================  =========
quantity                  formulation                                         unit
========================  ==================================================  =========
:func:`density`           Kell, J. Chem. Eng. Data 20 (1975) 97, eq. 16       kg m-3
:func:`viscosity`         IAPWS R12-08 (Huber et al., J. Phys. Chem. Ref.     Pa s
                          Data 38 (2009) 101), eqs. 10-12, mu2 = 1
:func:`relative_permittivity`  Malmberg & Maryott, J. Res. NBS 56 (1956) 1,  -
                          eq. 7
:func:`debye_huckel_aphi` from eps_r and rho (Pitzer 1991, ch. 3, eq. 3)      kg^0.5 mol^-0.5
========================  ==================================================  =========
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from nanosep.constants import (
    AVOGADRO,
    BOLTZMANN,
    ELEMENTARY_CHARGE,
    T_REF,
    VACUUM_PERMITTIVITY,
)
from nanosep.errors import InvalidInputError

T_MIN: float = 273.0  #: lowest accepted temperature, K
T_MAX: float = 373.3  #: highest accepted temperature, K

# IAPWS R12-08 reference constants (Huber et al. 2009, eqs. 3-5)
_T_STAR = 647.096  # K
_RHO_STAR = 322.0  # kg m-3
_MU_STAR = 1.0e-6  # Pa s
_H0 = (1.67752, 2.20462, 0.6366564, -0.241605)  # Table 1
# Table 2: H[i][j], i = power of (1/Tbar - 1), j = power of (rhobar - 1)
_H1 = (
    (0.520094, 0.222531, -0.281378, 0.161913, -0.0325372, 0.0, 0.0),
    (0.0850895, 0.999115, -0.906851, 0.257399, 0.0, 0.0, 0.0),
    (-1.08374, 1.88797, -0.772479, 0.0, 0.0, 0.0, 0.0),
    (-0.289555, 1.26613, -0.489837, 0.0, 0.0698452, 0.0, -0.00435673),
    (0.0, 0.0, -0.25704, 0.0, 0.0, 0.00872102, 0.0),
    (0.0, 0.120573, 0.0, 0.0, 0.0, 0.0, -0.000593264),
)

# Kell (1975) eq. 16, t in deg C, result in kg m-3
_KELL_NUM = (999.83952, 16.945176, -7.9870401e-3, -46.170461e-6, 105.56302e-9, -280.54253e-12)
_KELL_DEN = 16.879850e-3

# Malmberg & Maryott (1956) eq. 7, t in deg C
_MM = (87.740, -0.40008, 9.398e-4, -1.410e-6)


def _checked_T(T: ArrayLike) -> NDArray[np.float64]:
    t = np.asarray(T, dtype=float)
    if not np.all(np.isfinite(t)) or np.any(t < T_MIN) or np.any(t > T_MAX):
        raise InvalidInputError(
            f"temperature T={T!r} K is outside the validity range of the water correlations "
            f"({T_MIN}-{T_MAX} K); give T in kelvin"
        )
    return t


def density(T: ArrayLike) -> NDArray[np.float64]:
    """Density of air-free water at 0.1 MPa, kg m-3 (Kell 1975, eq. 16; 0-150 C).

    ``rho(298.15 K) = 997.047`` kg m-3.
    """
    t = _checked_T(T) - 273.15
    num = _KELL_NUM[-1]
    for a in reversed(_KELL_NUM[:-1]):
        num = num * t + a
    return num / (1.0 + _KELL_DEN * t)


def viscosity_iapws(T: ArrayLike, rho: ArrayLike) -> NDArray[np.float64]:
    """IAPWS 2008 viscosity ``mu(T, rho)`` in Pa s without the critical enhancement (mu2 = 1).

    Huber et al. (2009) eqs. 10-12 with Tables 1-2; ``rho`` in kg m-3.  The critical
    term is 1 to better than 1e-4 everywhere in the liquid range used here.
    """
    tb = np.asarray(T, dtype=float) / _T_STAR
    rb = np.asarray(rho, dtype=float) / _RHO_STAR
    mu0 = 100.0 * np.sqrt(tb) / sum(h / tb**i for i, h in enumerate(_H0))
    x = 1.0 / tb - 1.0
    y = rb - 1.0
    s = 0.0
    for i, row in enumerate(_H1):
        s = s + x**i * sum(h * y**j for j, h in enumerate(row) if h != 0.0)
    mu1 = np.exp(rb * s)
    return _MU_STAR * mu0 * mu1


def viscosity(T: ArrayLike) -> NDArray[np.float64]:
    """Dynamic viscosity of water at 0.1 MPa, Pa s.

    IAPWS 2008 formulation (:func:`viscosity_iapws`) evaluated at the Kell (1975)
    density.  ``mu(298.15 K) = 0.8900e-3``, ``mu(293.15 K) = 1.0016e-3`` Pa s.
    """
    t = _checked_T(T)
    return viscosity_iapws(t, density(t))


def relative_permittivity(T: ArrayLike) -> NDArray[np.float64]:
    """Static relative permittivity (dielectric constant) of water at 0.1 MPa.

    Malmberg & Maryott (1956), eq. 7: ``87.740 - 0.40008 t + 9.398e-4 t^2 - 1.410e-6 t^3``
    with ``t`` in deg C (0-100 C); 78.30 at 25 C.
    """
    t = _checked_T(T) - 273.15
    return _MM[0] + t * (_MM[1] + t * (_MM[2] + t * _MM[3]))


def debye_huckel_aphi(T: ArrayLike) -> NDArray[np.float64]:
    """Debye-Hueckel osmotic-coefficient slope ``A_phi``, kg^0.5 mol^-0.5 (natural-log basis).

    ``A_phi = (1/3) sqrt(2 pi N_A rho_w) (e^2 / (4 pi eps0 eps_r k T))^(3/2)``
    (Pitzer, *Activity Coefficients in Electrolyte Solutions*, 2nd ed. 1991, ch. 3,
    eq. 3) with :func:`density` and :func:`relative_permittivity`.  This gives
    0.3921 at 25 C (eps_r = 78.30); Archer & Wang (1990), with eps_r = 78.38, give
    0.3915, and PHREEQC (pitzer.cpp) uses 0.392 at exactly 25 C.  The ln-based
    Debye-Hueckel activity slope is ``3 A_phi`` (1.176 at 25 C; 0.509 ln 10 = 1.172).
    """
    t = _checked_T(T)
    eps = relative_permittivity(t)
    bjerrum = ELEMENTARY_CHARGE**2 / (4.0 * np.pi * VACUUM_PERMITTIVITY * eps * BOLTZMANN * t)
    return np.sqrt(2.0 * np.pi * AVOGADRO * density(t)) * bjerrum**1.5 / 3.0


def diffusivity_at(D25: ArrayLike, T: ArrayLike) -> NDArray[np.float64]:
    """Scale a 25 C diffusivity to temperature ``T`` by Stokes-Einstein, m2 s-1.

    ``D(T) = D25 * (T / 298.15) * mu(298.15) / mu(T)`` with :func:`viscosity`.
    """
    t = _checked_T(T)
    return np.asarray(D25, dtype=float) * (t / T_REF) * (viscosity(T_REF) / viscosity(t))


def stokes_einstein_radius(D: ArrayLike, T: ArrayLike = T_REF, mu: ArrayLike | None = None) -> NDArray[np.float64]:
    """Stokes-Einstein radius ``r = k T / (6 pi mu D)`` in m for diffusivity ``D`` in m2 s-1.

    ``mu`` defaults to :func:`viscosity` at ``T``.
    """
    t = _checked_T(T)
    mu = viscosity(t) if mu is None else np.asarray(mu, dtype=float)
    return BOLTZMANN * t / (6.0 * np.pi * mu * np.asarray(D, dtype=float))


def molality_from_concentration(c_mol_m3: Any, T: float = T_REF) -> Any:
    """Molality (mol kg-1 water) from concentration (mol m-3), dilute approximation.

    ``m = c / rho_w(T)``: one cubic metre of solution is taken to hold ``rho_w`` kg of
    water, i.e. the volume of the solutes is neglected.  The error grows with
    concentration (about 2 % for 1 mol/kg NaCl, where the true solution holds
    ~980 kg water per m3 rather than 997).  Used only by the activity models
    (:class:`nanosep.transport.activity.ActivityModelBase`).  ``c_mol_m3`` may be an
    array (real or complex) or a Pyomo expression when ``T`` is a scalar.
    """
    rho = density(T)
    if np.ndim(rho) == 0:
        rho = float(rho)
    if isinstance(c_mol_m3, (list, tuple)):
        c_mol_m3 = np.asarray(c_mol_m3, dtype=float)
    return c_mol_m3 / rho
