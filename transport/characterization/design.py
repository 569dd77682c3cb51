"""Measured rejections arranged for the engine: unique operating points and the rows that read them.

A measured-data table (:mod:`nanosep.measured`) has one row per ion and operating point.
The engine solves an operating point (feed, flux, temperature) once for all its ions, so
the rows are grouped into :class:`Cases`; :class:`Observations` keeps, per row, its case,
its ion, the measured value and its weight in the least-squares objective (seed 003 eq. 13).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nanosep.errors import InvalidInputError
from nanosep.measured import feed_column, feed_ions, feed_matrix
from nanosep.units import lmh_to_m_s


@dataclass
class Cases:
    """``B`` operating points: feeds (B, n) mol/m3, flux (B,) m/s, temperature (B,) K, data-set labels."""

    ions: list[str]
    c_feed: np.ndarray
    flux_m_s: np.ndarray
    temperature_K: np.ndarray
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # column -> (B,) label per case

    def __len__(self) -> int:
        return self.flux_m_s.size

    def take(self, idx) -> Cases:
        return Cases(self.ions, self.c_feed[idx], self.flux_m_s[idx], self.temperature_K[idx],
                     {k: v[idx] for k, v in self.labels.items()})

    @staticmethod
    def concat(parts: list[Cases]) -> Cases:
        first = parts[0]
        return Cases(first.ions, np.concatenate([p.c_feed for p in parts]),
                     np.concatenate([p.flux_m_s for p in parts]), np.concatenate([p.temperature_K for p in parts]),
                     {k: np.concatenate([p.labels[k] for p in parts]) for k in first.labels})


@dataclass
class Observations:
    """Rows of measured rejection: case index, ion index, value, weight 1/sigma, intrinsic or observed."""

    cases: Cases
    row_case: np.ndarray       # (N,) int
    row_ion: np.ndarray        # (N,) int
    rejection: np.ndarray      # (N,)
    weight: np.ndarray         # (N,) 1/sigma (relative unless sigma is known)
    intrinsic: np.ndarray      # (N,) bool
    table: pd.DataFrame        # the validated rows, same order

    def __len__(self) -> int:
        return self.rejection.size

    def subset(self, rows) -> Observations:
        """The rows ``rows`` (indices or mask); the cases are kept whole."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=int)
        return Observations(self.cases, self.row_case[rows], self.row_ion[rows], self.rejection[rows],
                            self.weight[rows], self.intrinsic[rows], self.table.iloc[rows])

    def with_rejection(self, values: np.ndarray) -> Observations:
        """The same design with other measured values (synthetic data)."""
        t = self.table.copy()
        t["rejection"] = values
        return Observations(self.cases, self.row_case, self.row_ion, np.asarray(values, float), self.weight,
                            self.intrinsic, t)


def observations_from_table(table: pd.DataFrame, *, per_columns: tuple[str, ...] = (),
                            use_rejection_sd: bool = False, salt_rows_once: bool = True) -> Observations:
    """Group a validated measured-data table into engine cases.

    per_columns: data columns that label data sets (per-data-set parameters); each must exist.
    use_rejection_sd: weight rows by 1/``rejection_sd`` (rows without one get the median sd);
        otherwise every row has weight 1 (sigma common to all rows).
    salt_rows_once: a salt rejection expanded into one row per ion (``rejection_basis == "salt"``,
        see :func:`nanosep.measured.load_fdl2021`) is one measurement: its k rows get weight 1/sqrt(k).

    Raises:
        InvalidInputError: a ``per`` column is missing from the data (named), or sd weights requested
            with no finite positive ``rejection_sd``.
    """
    for col in per_columns:
        if col not in table.columns:
            raise InvalidInputError(f"per-data-set column {col!r} is not in the data (columns: {list(table.columns)})")
    table = table.reset_index(drop=True)
    ions = feed_ions(table)
    key_cols = [feed_column(i) for i in ions] + ["flux_L_m2_h", "temperature_K", *per_columns]
    codes = table.groupby(key_cols, sort=False, dropna=False).ngroup().to_numpy()
    first = pd.Series(np.arange(len(table))).groupby(codes).first().to_numpy()
    case_rows = table.iloc[first]
    cases = Cases(ions, feed_matrix(case_rows, ions), lmh_to_m_s(case_rows["flux_L_m2_h"].to_numpy(float)),
                  case_rows["temperature_K"].to_numpy(float),
                  {c: case_rows[c].astype(str).to_numpy() for c in per_columns})
    weight = np.ones(len(table))
    if use_rejection_sd:
        sd = table["rejection_sd"].to_numpy(float)
        good = np.isfinite(sd) & (sd > 0)
        if not good.any():
            raise InvalidInputError("use_rejection_sd: the data has no finite positive rejection_sd")
        sd = np.where(good, sd, np.median(sd[good]))
        weight = 1.0 / sd
    if salt_rows_once and "rejection_basis" in table.columns:
        salt = (table["rejection_basis"] == "salt").to_numpy()
        if salt.any():
            k = pd.Series(codes[salt]).map(pd.Series(codes[salt]).value_counts()).to_numpy()
            weight[salt] /= np.sqrt(k)
    ion_index = {i: j for j, i in enumerate(ions)}
    return Observations(cases, codes, np.array([ion_index[i] for i in table["ion"]]),
                        table["rejection"].to_numpy(float), weight,
                        (table["rejection_type"] == "intrinsic").to_numpy(), table)
