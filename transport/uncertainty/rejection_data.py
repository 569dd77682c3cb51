"""Measured rejections as arrays for likelihood evaluations (from the tidy table of :mod:`nanosep.measured`).

Observations ``o`` = 0..O-1 each refer to an operating point ``point[o]`` (a feed, a flux
and a temperature, P distinct points), an ion ``ion_index[o]``, a measured rejection with
standard deviation ``sd[o]``, a rejection basis (intrinsic: polarization removed, or
observed) and an experiment group ``group[o]``.  In the pore-size EM (:mod:`.em_psd`) the
pore radius is a latent variable drawn once per group from the log-normal distribution.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from nanosep.errors import InvalidInputError
from nanosep.measured import feed_column, feed_ions, validate_measured
from nanosep.units import lmh_to_m_s

__all__ = ["RejectionData"]


@dataclass(frozen=True)
class RejectionData:
    """Observations of ion rejection grouped by experiment (SI; shapes in brackets).

    ions [n], c_feed_mol_m3 [P, n], flux_m_s [P], temperature_K [P]: the operating points.
    point, ion_index, group [O] (int), rejection, sd [O], intrinsic [O] (bool).
    """

    ions: tuple[str, ...]
    c_feed_mol_m3: NDArray[np.float64]
    flux_m_s: NDArray[np.float64]
    temperature_K: NDArray[np.float64]
    point: NDArray[np.int64]
    ion_index: NDArray[np.int64]
    rejection: NDArray[np.float64]
    sd: NDArray[np.float64]
    group: NDArray[np.int64]
    intrinsic: NDArray[np.bool_]

    def __post_init__(self) -> None:
        O = self.rejection.shape[0]
        for name in ("point", "ion_index", "sd", "group", "intrinsic"):
            if getattr(self, name).shape != (O,):
                raise InvalidInputError(f"RejectionData.{name} must have shape ({O},), got {getattr(self, name).shape}")
        if not (np.isfinite(self.sd).all() and (self.sd > 0).all()):
            k = int(np.flatnonzero(~(np.isfinite(self.sd) & (self.sd > 0)))[0])
            raise InvalidInputError(f"RejectionData.sd must be > 0 and finite; observation {k} has {self.sd[k]!r}")
        if not np.isfinite(self.rejection).all():
            raise InvalidInputError("RejectionData.rejection has non-finite values")
        P = self.flux_m_s.shape[0]
        if self.point.min(initial=0) < 0 or self.point.max(initial=0) >= P:
            raise InvalidInputError(f"RejectionData.point must index the {P} operating points")
        if self.group.min(initial=0) < 0:
            raise InvalidInputError("RejectionData.group must be >= 0")

    @property
    def n_groups(self) -> int:
        return int(self.group.max()) + 1 if self.group.size else 0

    @classmethod
    def from_arrays(cls, ions: Sequence[str], c_feed_mol_m3: ArrayLike, flux_m_s: ArrayLike, point: ArrayLike,
                    ion_index: ArrayLike, rejection: ArrayLike, sd: ArrayLike | float, group: ArrayLike | None = None,
                    temperature_K: ArrayLike | float = 298.15, intrinsic: ArrayLike | bool = True) -> RejectionData:
        """Build from plain arrays (scalars broadcast; ``group`` defaults to one group)."""
        rej = np.asarray(rejection, dtype=float).ravel()
        O = rej.size
        J = np.atleast_1d(np.asarray(flux_m_s, dtype=float))
        return cls(ions=tuple(ions), c_feed_mol_m3=np.atleast_2d(np.asarray(c_feed_mol_m3, dtype=float)),
                   flux_m_s=J, temperature_K=np.broadcast_to(np.asarray(temperature_K, float), J.shape).copy(),
                   point=np.asarray(point, dtype=np.int64).ravel(), ion_index=np.asarray(ion_index, np.int64).ravel(),
                   rejection=rej, sd=np.broadcast_to(np.asarray(sd, float), (O,)).copy(),
                   group=np.zeros(O, np.int64) if group is None else np.asarray(group, np.int64).ravel(),
                   intrinsic=np.broadcast_to(np.asarray(intrinsic, bool), (O,)).copy())

    @classmethod
    def from_table(cls, table: pd.DataFrame, group_column: str | None = "dominant_salt",
                   default_sd: float = 0.02) -> RejectionData:
        """From a measured-data table (columns: :mod:`nanosep.measured`); validated first.

        group_column: column whose values define the experiment groups (None: one group).
        default_sd: used where ``rejection_sd`` is NaN (the source gives no uncertainty).
        """
        if not (np.isfinite(default_sd) and default_sd > 0):
            raise InvalidInputError(f"default_sd must be > 0, got {default_sd!r}")
        t = validate_measured(table)
        if group_column is not None and group_column not in t.columns:
            raise InvalidInputError(f"group_column {group_column!r} is not a column of the table")
        ions = feed_ions(t)
        key_cols = [feed_column(i) for i in ions] + ["flux_L_m2_h", "temperature_K"]
        keys = t[key_cols].round(12)
        codes = keys.groupby(key_cols, sort=False).ngroup().to_numpy()   # numbered by first appearance
        pts = keys.loc[~keys.duplicated()].reset_index(drop=True)
        sd = t["rejection_sd"].to_numpy(dtype=float)
        sd = np.where(np.isfinite(sd) & (sd > 0), sd, default_sd)
        grp = (np.zeros(len(t), np.int64) if group_column is None
               else pd.factorize(t[group_column])[0].astype(np.int64))
        return cls(ions=tuple(ions), c_feed_mol_m3=pts[[feed_column(i) for i in ions]].to_numpy(float),
                   flux_m_s=np.asarray(lmh_to_m_s(pts["flux_L_m2_h"].to_numpy(float)), float),
                   temperature_K=pts["temperature_K"].to_numpy(float), point=np.asarray(codes, np.int64),
                   ion_index=np.array([ions.index(i) for i in t["ion"]], np.int64),
                   rejection=t["rejection"].to_numpy(float), sd=sd, group=grp,
                   intrinsic=(t["rejection_type"] == "intrinsic").to_numpy())
