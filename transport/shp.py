"""Steric hindered pore (SHP) model for neutral solutes, closed form (seed 003, App. D).

A neutral solute in a cylindrical pore moves by hindered diffusion and convection
only (seed 003 eq. D.1).  With no boundary layers in the feed or the permeate, the
flux integrates to the rejection (eq. D.8)::

    R = 1 - K_c Phi / (1 - (1 - K_c Phi) exp(-Pe)),      Phi = (1 - lambda)^2
    Pe = K_c J_v dx_e / (K_d D)                                    (eq. D.4)

where ``lambda = r_s / r_p``, ``K_d``/``K_c`` come from :mod:`.hindrance` and the
steric partition coefficient ``Phi`` from :func:`.partitioning.ln_steric` (so a
solute with ``lambda >= 1`` is rejected completely).  This is exactly the DSPM-DE
engine's solution for a neutral solute with ``X = 0`` and ideal activity.

With Hagen-Poiseuille flow (eq. D.9), ``J_v = r_p^2 dP / (8 mu dx_e)`` and the
Peclet number no longer depends on the thickness.  :func:`pore_radius_from_rejection`
fits ``r_p`` to measured rejections by one-dimensional least squares (eq. D.10).

All quantities are SI; the functions broadcast their array arguments (numpy rules).
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import least_squares

from nanosep import water
from nanosep.errors import ConvergenceError, InvalidInputError

from .hindrance import HINDRANCE_MODELS
from .hindrance import hindrance as _hindrance
from .partitioning import ln_steric

__all__ = [
    "hagen_poiseuille_flux",
    "peclet",
    "pore_radius_from_rejection",
    "shp_limiting_rejection",
    "shp_rejection",
]


def _positive(name: str, value: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(value, dtype=float)
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        raise InvalidInputError(f"{name} must be positive and finite, got {arr[bad].ravel()[:5].tolist()}")
    return arr


def _check_model(model: str) -> None:
    if model not in HINDRANCE_MODELS:
        raise InvalidInputError(f"hindrance={model!r}: choose one of {HINDRANCE_MODELS}")


def _kc_phi_pe_factor(solute_radius_m, pore_radius_m, model):
    """Return ``(K_c Phi, K_c / K_d)`` for lambda = r_s / r_p."""
    lam = _positive("solute_radius_m", solute_radius_m) / _positive("pore_radius_m", pore_radius_m)
    kd, kc = _hindrance(lam, model)
    return np.where(lam >= 1.0, 0.0, kc * np.exp(ln_steric(lam))), kc / kd


def peclet(solute_radius_m: ArrayLike, diffusivity_m2_s: ArrayLike, pore_radius_m: ArrayLike,
           thickness_m: ArrayLike, flux_m_s: ArrayLike, hindrance: str = "dechadilok_deen") -> NDArray[np.float64]:
    """Hindered Peclet number ``Pe = K_c J_v dx_e / (K_d D)`` (seed 003 eq. D.4).

    ``diffusivity_m2_s`` is the bulk diffusivity at the working temperature.
    """
    _check_model(hindrance)
    _, ratio = _kc_phi_pe_factor(solute_radius_m, pore_radius_m, hindrance)
    J = np.asarray(flux_m_s, dtype=float)
    if not (np.isfinite(J).all() and (J >= 0).all()):
        raise InvalidInputError(f"flux_m_s must be >= 0 and finite, got {J.ravel()[:5].tolist()}")
    return ratio * J * _positive("thickness_m", thickness_m) / _positive("diffusivity_m2_s", diffusivity_m2_s)


def shp_rejection(solute_radius_m: ArrayLike, diffusivity_m2_s: ArrayLike, pore_radius_m: ArrayLike,
                  thickness_m: ArrayLike, flux_m_s: ArrayLike,
                  hindrance: str = "dechadilok_deen") -> NDArray[np.float64]:
    """Rejection of a neutral solute, seed 003 eq. D.8 with Pe from eq. D.4.

    Parameters (SI, broadcast together)
    ----------
    solute_radius_m: Stokes radius r_s [m].
    diffusivity_m2_s: bulk diffusivity D at the working temperature [m2/s].
    pore_radius_m: r_p [m].  thickness_m: effective thickness dx_e [m].
    flux_m_s: water flux J_v [m/s], >= 0.
    hindrance: "dechadilok_deen" or "bungay_brenner" (see :mod:`.hindrance`).

    Written as ``(1 - K_c Phi)(1 - e^-Pe) / ((1 - e^-Pe) + K_c Phi e^-Pe)`` (algebraically
    eq. D.8) so that small Peclet numbers keep full precision.  Returns 1 where
    ``lambda >= 1``.
    """
    kcphi, _ = _kc_phi_pe_factor(solute_radius_m, pore_radius_m, hindrance)
    pe = peclet(solute_radius_m, diffusivity_m2_s, pore_radius_m, thickness_m, flux_m_s, hindrance)
    om = -np.expm1(-pe)                      # 1 - exp(-Pe)
    return (1.0 - kcphi) * om / (om + kcphi * np.exp(-pe))


def shp_limiting_rejection(solute_radius_m: ArrayLike, pore_radius_m: ArrayLike,
                           hindrance: str = "dechadilok_deen") -> NDArray[np.float64]:
    """Limiting rejection ``1 - K_c (1 - lambda)^2`` (seed 003 App. D, Pe -> infinity)."""
    _check_model(hindrance)
    kcphi, _ = _kc_phi_pe_factor(solute_radius_m, pore_radius_m, hindrance)
    return 1.0 - kcphi


def hagen_poiseuille_flux(pore_radius_m: ArrayLike, thickness_m: ArrayLike, pressure_pa: ArrayLike,
                          temperature_K: ArrayLike = 298.15) -> NDArray[np.float64]:
    """Water flux ``J_v = r_p^2 dP / (8 mu dx_e)`` [m/s] (seed 003 eq. D.9, the J_v term).

    ``mu`` is pure water's viscosity at ``temperature_K`` (:func:`nanosep.water.viscosity`);
    ``pressure_pa`` is the (effective) applied pressure.
    """
    rp = _positive("pore_radius_m", pore_radius_m)
    L = _positive("thickness_m", thickness_m)
    P = _positive("pressure_pa", pressure_pa)
    return rp**2 * P / (8.0 * water.viscosity(temperature_K) * L)


def pore_radius_from_rejection(rejection: ArrayLike, solute_radius_m: ArrayLike, diffusivity_m2_s: ArrayLike, *,
                               flux_m_s: ArrayLike | None = None, thickness_m: ArrayLike | None = None,
                               pressure_pa: ArrayLike | None = None, temperature_K: ArrayLike = 298.15,
                               hindrance: str = "dechadilok_deen",
                               bounds_m: tuple[float, float] = (1e-11, 1e-7)) -> float:
    """Fit the pore radius to neutral-solute rejections, seed 003 eq. D.10.

    ``r_p* = argmin sum_i (R^mod_i(r_p) - R^exp_i)^2`` over all measurements ``i``
    (water fluxes x neutral solutes); the arrays broadcast to one entry per measurement.
    Give the water flux either directly (``flux_m_s`` with ``thickness_m``, eq. D.4) or
    as an applied pressure (``pressure_pa``, eq. D.9: the thickness cancels from Pe and
    ``thickness_m`` is not needed).  The search is over ``ln r_p`` in ``bounds_m``,
    starting from the best point of a log-spaced grid, then refined by
    ``scipy.optimize.least_squares`` to machine tolerance.  Returns r_p [m].
    """
    _check_model(hindrance)
    R = np.asarray(rejection, dtype=float)
    if not np.isfinite(R).all():
        raise InvalidInputError(f"rejection must be finite, got {R.ravel()[:5].tolist()}")
    rs = _positive("solute_radius_m", solute_radius_m)
    D = _positive("diffusivity_m2_s", diffusivity_m2_s)
    if (flux_m_s is None) == (pressure_pa is None):
        raise InvalidInputError("give exactly one of flux_m_s (with thickness_m) and pressure_pa")
    lo, hi = float(bounds_m[0]), float(bounds_m[1])
    if not (0 < lo < hi < np.inf):
        raise InvalidInputError(f"bounds_m={bounds_m!r} must satisfy 0 < low < high < inf")
    if pressure_pa is not None:
        P = _positive("pressure_pa", pressure_pa)
        L = 1.0  # cancels from Pe (eq. D.9)

        def flux(rp):
            return hagen_poiseuille_flux(rp, L, P, temperature_K)
    else:
        if thickness_m is None:
            raise InvalidInputError("flux_m_s needs thickness_m (or give pressure_pa instead)")
        L = _positive("thickness_m", thickness_m)
        Jv = _positive("flux_m_s", flux_m_s)

        def flux(rp):
            return Jv
    R, rs, D = np.broadcast_arrays(R, rs, D)

    def resid(u):
        rp = np.exp(u[0])
        return np.ravel(shp_rejection(rs, D, rp, L, flux(rp), hindrance) - R)

    grid = np.linspace(np.log(lo), np.log(hi), 400)
    cost = [float(np.sum(resid([g]) ** 2)) for g in grid]
    u0 = grid[int(np.argmin(cost))]
    fit = least_squares(resid, [u0], bounds=([np.log(lo)], [np.log(hi)]), method="trf",
                        xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=500)
    if not fit.success:
        raise ConvergenceError(f"pore-radius fit (eq. D.10) failed: {fit.message} "
                               f"(last r_p = {np.exp(fit.x[0]):.6g} m)")
    return float(np.exp(fit.x[0]))
