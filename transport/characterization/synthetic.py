"""Synthetic measured data from known membrane parameters (for validation and error-propagation studies).

:func:`design_table` writes an empty measured-data table (the columns of :mod:`nanosep.measured`)
for a set of feeds and fluxes; :func:`synthetic_rejections` fills it with engine rejections at
known parameters plus Gaussian noise.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from nanosep.ions import IonDatabase
from nanosep.measured import feed_column, validate_measured

from .design import Observations
from .likelihood import RejectionModel

SYNTHETIC_SOURCE = "synthetic (nanosep.transport.characterization.synthetic)"


def design_table(feeds: dict[str, dict[str, float]], flux_L_m2_h, *, temperature_K: float = 298.15,
                 membrane: str = "synthetic", ion_db: IonDatabase | None = None) -> pd.DataFrame:
    """A validated measured-data table with one row per (feed, flux, ion of the feed), rejection 0.

    feeds: ``{label: {ion: mol/m3}}``; the label goes into ``dominant_salt`` (a data-set column).
    """
    db = ion_db or IonDatabase.default()
    ions: list[str] = []
    for feed in feeds.values():
        for i in feed:
            name = db.canonical(i)
            if name not in ions:
                ions.append(name)
    rows = []
    for label, feed in feeds.items():
        canon = {db.canonical(i): float(c) for i, c in feed.items()}
        for J in np.atleast_1d(np.asarray(flux_L_m2_h, dtype=float)):
            for ion, c in canon.items():
                if c <= 0:
                    continue
                rows.append({"membrane": membrane, "dominant_salt": label, "temperature_K": temperature_K,
                             "pH": np.nan, "flux_L_m2_h": float(J), "ion": ion,
                             **{feed_column(i): canon.get(i, 0.0) for i in ions},
                             "rejection": 0.0, "rejection_type": "intrinsic", "rejection_sd": np.nan,
                             "source": SYNTHETIC_SOURCE})
    return validate_measured(pd.DataFrame(rows), ion_db=db)


def synthetic_rejections(model: RejectionModel, obs: Observations, u_true, *, noise_sd: float = 0.0,
                         rng: np.random.Generator | None = None) -> Observations:
    """``obs`` with rejections from the engine at ``u_true`` plus N(0, noise_sd^2) noise.

    Raises:
        RuntimeError: the engine failed on some case at ``u_true`` (synthetic truth must be solvable).
    """
    pred, good = model.row_predictions(obs, np.asarray(u_true, float)[None, :])
    if not good.all():
        raise RuntimeError(f"engine failed on {int((~good).sum())} rows at the synthetic truth")
    values = pred[0]
    if noise_sd > 0:
        rng = rng or np.random.default_rng()
        values = values + rng.normal(0.0, noise_sd, values.size)
    return obs.with_rejection(values)
