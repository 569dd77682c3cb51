"""Ablation sweeps: one membrane parameter varied, the others held (seed 003 sec. 3.3, Fig. 4).

:func:`ablation_sweep` solves the engine over a list of values of one of
:data:`~.propagation.PARAMETERS` (charge density, thickness, pore radius, dielectric
constant) at one or more fluxes, in one batch, and returns a tidy table of rejections and
selectivities ``S_a/b = (1 - R_a)/(1 - R_b)``.  With ``psd_samples`` > 0 every sweep point
also propagates the pore-size distribution (radius samples scaled to the sweep point's
mean radius when the radius is the swept parameter) and reports mean and 5/95 % quantiles,
the uncertainty bands of Fig. 4.  Failed cases are NaN with their reason.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from nanosep.transport import TransportOptions
from numpy.typing import ArrayLike

from nanosep.errors import InvalidInputError
from nanosep.ions import IonDatabase
from nanosep.units import m_s_to_lmh

from .propagation import PARAMETERS, propagate
from .sampling import normal_points

__all__ = ["ablation_sweep"]


def ablation_sweep(ions: Sequence[str], c_feed: ArrayLike, flux_m_s: ArrayLike, membrane: dict[str, float],
                   parameter: str, values: ArrayLike, pairs: Sequence[tuple[str, str]] = (), *,
                   std_radius_m: float = 0.0, psd_samples: int = 0, seed: int = 0, temperature_K: float = 298.15,
                   options: TransportOptions | None = None, ion_db: IonDatabase | None = None) -> pd.DataFrame:
    """Rejection and selectivity vs ``parameter`` (one of PARAMETERS, SI) at ``values``.

    membrane: the held values of all four PARAMETERS (SI).  With ``psd_samples`` > 0 and
    ``std_radius_m`` > 0 the pore radius of every point is log-normal (same coefficient of
    variation as ``std_radius_m / membrane['pore_radius_m']``), sampled by scrambled Sobol.
    Columns: parameter, value, flux_L_m2_h, quantity (rejection / selectivity), species,
    value_base (single pore at the mean radius), mean, q05, q95, n_failed, reason.
    """
    if parameter not in PARAMETERS:
        raise InvalidInputError(f"ablation parameter {parameter!r}: choose one of {PARAMETERS}")
    missing = [p for p in PARAMETERS if p not in membrane]
    if missing:
        raise InvalidInputError(f"membrane lacks {missing}")
    v = np.atleast_1d(np.asarray(values, dtype=float))
    if v.size == 0 or not np.isfinite(v).all():
        raise InvalidInputError(f"ablation values must be finite and non-empty, got {values!r}")
    J = np.atleast_1d(np.asarray(flux_m_s, dtype=float))
    base = np.array([membrane[p] for p in PARAMETERS], dtype=float)
    j = PARAMETERS.index(parameter)
    points = np.repeat(base[None, :], v.size, axis=0)
    points[:, j] = v
    nominal = propagate(ions, c_feed, J, points, temperature_K=temperature_K, options=options, ion_db=ion_db)
    spread = None
    if psd_samples > 0 and std_radius_m > 0:
        cv = std_radius_m / membrane["pore_radius_m"]
        s_x = np.sqrt(np.log1p(cv**2))
        z = normal_points(psd_samples, 1, "sobol", seed)[:, 0]
        factor = np.exp(-0.5 * s_x**2 + s_x * z)          # mean 1 in r: eq. 22 with mu_r = 1
        samp = np.repeat(points, psd_samples, axis=0)
        samp[:, 0] *= np.tile(factor, v.size)
        spread = propagate(ions, c_feed, J, samp, temperature_K=temperature_K, options=options, ion_db=ion_db)
    rows = []

    def emit(quantity: str, species: str, nom: np.ndarray, sam: np.ndarray | None) -> None:
        for a in range(v.size):
            for f in range(J.size):
                row = {"parameter": parameter, "value": float(v[a]), "flux_L_m2_h": round(float(m_s_to_lmh(J[f])), 9),
                       "quantity": quantity, "species": species, "value_base": float(nom[a, f]),
                       "reason": str(nominal.reason[a, f])}
                if sam is not None:
                    x = sam.reshape(v.size, psd_samples, J.size)[a, :, f]
                    ok = x[np.isfinite(x)]
                    row.update(mean=float(ok.mean()) if ok.size else np.nan,
                               q05=float(np.quantile(ok, 0.05)) if ok.size else np.nan,
                               q95=float(np.quantile(ok, 0.95)) if ok.size else np.nan,
                               n_failed=int(x.size - ok.size))
                rows.append(row)

    for i, ion in enumerate(nominal.ions):
        emit("rejection", ion, nominal.rejection[..., i], None if spread is None else spread.rejection[..., i])
    for a, b in pairs:
        emit("selectivity", f"{a}/{b}", nominal.selectivity(a, b),
             None if spread is None else spread.selectivity(a, b))
    return pd.DataFrame(rows)
