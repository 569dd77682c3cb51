"""Measured ion rejection data as tidy, validated tables.

One row per measured rejection of one ion at one operating point. Columns (units in the names):

==========================  ==========================================================
``membrane``                membrane name (str)
``dominant_salt``           the salt that sets the background, e.g. ``"MgSO4"`` (str)
``temperature_K``           feed temperature, K
``pH``                      feed pH, - (NaN when the source does not report it)
``flux_L_m2_h``             volume (water) flux J_v, L m-2 h-1
``ion``                     canonical ion name (:class:`nanosep.ions.IonDatabase`)
``c_feed_<ion>_mol_m3``     feed concentration of every ion of the data set, mol/m3
                            (wide columns, one per ion, 0 where absent; the same columns
                            in every row so a row carries its whole feed)
``rejection``               1 - c_permeate / c_reference, -
``rejection_type``          ``"intrinsic"`` (c_reference = concentration at the membrane
                            wall, polarization removed) or ``"observed"`` (bulk feed)
``rejection_sd``            standard deviation of ``rejection`` if known, - (NaN if not)
``source``                  citation of the data (str)
==========================  ==========================================================

The wide feed columns were chosen over a separate feed table so that a row (or any filtered
subset) is self-contained; :func:`feed_ions` and :func:`feed_matrix` read them back.

Loaders add source-specific columns (kept, never required), for FdL 2021: ``species`` (the
series name in the source, an ion or the dominant salt), ``rejection_basis`` (``"ion"`` or
``"salt"``), ``flux_sd_L_m2_h``, ``quality``, ``figure_panel``.
"""
from __future__ import annotations

import logging
from importlib import resources
from typing import Literal

import numpy as np
import pandas as pd

from nanosep.errors import ElectroneutralityError, InvalidInputError, UnknownIonError
from nanosep.ions import IonDatabase
from nanosep.units import UM_TO_M, m_s_to_lmh

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = (
    "membrane", "dominant_salt", "temperature_K", "pH", "flux_L_m2_h", "ion",
    "rejection", "rejection_type", "rejection_sd", "source",
)
REJECTION_TYPES: tuple[str, ...] = ("intrinsic", "observed")
#: plausible range of a measured rejection: below -5 (permeate 6x the feed) is a unit or sign error
REJECTION_RANGE: tuple[float, float] = (-5.0, 1.0)
#: relative electroneutrality tolerance, |sum z c| <= EN_RTOL * sum |z| c (same as the engine)
EN_RTOL: float = 1e-6

FEED_PREFIX, FEED_SUFFIX = "c_feed_", "_mol_m3"

FDL2021_FILE = "fdl2021_nf270_SDEM_digitised_rejection_vs_flux.csv"
FDL2021_SOURCE = (
    "Fernandez de Labastida & Yaroshchuk, Membranes 11 (2021) 272, doi:10.3390/membranes11040272 "
    "(CC BY 4.0); digitised by github.com/choupo-admin/choupo @1305faf2"
)
#: ions of the FdL 2021 experiments, in the order of the feed columns
FDL2021_IONS: tuple[str, ...] = ("Na+", "Mg+2", "NH4+", "Cl-", "NO3-", "SO4-2")
#: stoichiometry of the dominant salts and trace salts (ions per formula unit)
FDL2021_SALTS: dict[str, dict[str, int]] = {
    "NaCl": {"Na+": 1, "Cl-": 1},
    "MgCl2": {"Mg+2": 1, "Cl-": 2},
    "Na2SO4": {"Na+": 2, "SO4-2": 1},
    "MgSO4": {"Mg+2": 1, "SO4-2": 1},
    "NaNO3": {"Na+": 1, "NO3-": 1},
    "NH4Cl": {"NH4+": 1, "Cl-": 1},
}
FDL2021_DOMINANT_MOL_M3 = 10.0   # 0.01 mol/L
FDL2021_TRACE_MOL_M3 = 0.2       # 2e-4 mol/L each of NaNO3 and NH4Cl
FDL2021_TEMPERATURE_K = 293.15   # 20 C


class MissingColumnError(InvalidInputError):
    """A measured-data table lacks required columns; the message lists them."""


def feed_column(ion: str) -> str:
    """Name of the wide feed column of ``ion`` (canonical name), e.g. ``c_feed_SO4-2_mol_m3``."""
    return f"{FEED_PREFIX}{ion}{FEED_SUFFIX}"


def feed_ions(table: pd.DataFrame) -> list[str]:
    """Ions that have a feed column in ``table``, in column order (names as written)."""
    return [c[len(FEED_PREFIX):-len(FEED_SUFFIX)] for c in table.columns
            if c.startswith(FEED_PREFIX) and c.endswith(FEED_SUFFIX)]


def feed_matrix(table: pd.DataFrame, ions: list[str] | None = None) -> np.ndarray:
    """Feed concentrations (rows of ``table`` x ``ions``), mol/m3."""
    ions = feed_ions(table) if ions is None else ions
    return table[[feed_column(i) for i in ions]].to_numpy(dtype=float)


def f_to_rejection(f):
    """Rejection R = 1 - 1/f from the reciprocal transmission f = 1/(1-R) (= c_wall/c_permeate)."""
    f = np.asarray(f, dtype=float)
    if np.any(f <= 0):
        raise InvalidInputError(f"f = 1/(1-R) must be positive, got {f[f <= 0][:5].tolist()}")
    return 1.0 - 1.0 / f


def rejection_to_f(rejection):
    """Reciprocal transmission f = 1/(1-R); needs R < 1."""
    r = np.asarray(rejection, dtype=float)
    if np.any(r >= 1):
        raise InvalidInputError(f"f = 1/(1-R) needs R < 1, got R = {r[r >= 1][:5].tolist()}")
    return 1.0 / (1.0 - r)


def salt_feed_mol_m3(salts: dict[str, float]) -> dict[str, float]:
    """Ion concentrations (mol/m3) of a solution of the FdL 2021 salts, ``{salt: mol/m3}``."""
    out: dict[str, float] = {i: 0.0 for i in FDL2021_IONS}
    for salt, c in salts.items():
        if salt not in FDL2021_SALTS:
            raise InvalidInputError(f"unknown salt {salt!r}; known: {sorted(FDL2021_SALTS)}")
        for ion, nu in FDL2021_SALTS[salt].items():
            out[ion] += nu * c
    return out


def fdl2021_feed_mol_m3(dominant_salt: str) -> dict[str, float]:
    """Feed of an FdL 2021 run: 10 mol/m3 of ``dominant_salt`` + 0.2 mol/m3 each of NaNO3 and NH4Cl."""
    if dominant_salt not in ("NaCl", "MgCl2", "Na2SO4", "MgSO4"):
        raise InvalidInputError(f"dominant_salt={dominant_salt!r} is not one of the FdL 2021 salts "
                                "NaCl, MgCl2, Na2SO4, MgSO4")
    return salt_feed_mol_m3({dominant_salt: FDL2021_DOMINANT_MOL_M3,
                             "NaNO3": FDL2021_TRACE_MOL_M3, "NH4Cl": FDL2021_TRACE_MOL_M3})


def read_fdl2021_raw() -> pd.DataFrame:
    """The shipped digitised file as written (106 points, 16 series), see its header."""
    with resources.as_file(resources.files("nanosep") / "data" / FDL2021_FILE) as p:
        return pd.read_csv(p, comment="#")


def load_fdl2021(kind: Literal["measured", "sdem_fit"] = "measured", *, include_occluded: bool = True,
                 ion_db: IonDatabase | None = None) -> pd.DataFrame:
    """FdL 2021 NF270 intrinsic rejection vs flux as a validated tidy table.

    kind: ``"measured"`` (the symbols, f_exp) or ``"sdem_fit"`` (the authors'
        solution-diffusion-electromigration fit line read under each symbol, f_line;
        points where the drawn line stops short are dropped).
    include_occluded: keep the 2 points the digitiser flagged ``occluded``.

    R = 1 - 1/f. A series named after the dominant salt (Figs 1a-4a) is the salt rejection;
    it becomes one row per ion of the salt (``rejection_basis = "salt"``): with 2 % trace
    ions, electroneutrality of the permeate makes the cation and anion rejections of the
    dominant salt equal to within about 0.02. ``rejection_sd`` is the digitisation reading
    error propagated, df/f^2, only (the paper gives no measurement uncertainty). pH is not
    reported in the digitised file (NaN).
    """
    if kind not in ("measured", "sdem_fit"):
        raise InvalidInputError(f"kind={kind!r}: choose 'measured' or 'sdem_fit'")
    db = ion_db or IonDatabase.default()
    raw = read_fdl2021_raw()
    if not include_occluded:
        raw = raw[raw["quality"] != "occluded"]
    fcol = "f_exp_1_over_1minusR" if kind == "measured" else "f_line_authors_SDEM_fit"
    raw = raw[raw[fcol].notna()]
    rows = []
    for r in raw.itertuples(index=False):
        f = float(getattr(r, fcol))
        is_salt = r.series_ion_or_salt == r.dominant_salt
        ions = list(FDL2021_SALTS[r.dominant_salt]) if is_salt else [db.canonical(r.series_ion_or_salt)]
        feed = fdl2021_feed_mol_m3(r.dominant_salt)
        sd = float(r.df_reading) / f**2 if kind == "measured" else np.nan
        for ion in ions:
            rows.append({
                "membrane": "NF270", "dominant_salt": r.dominant_salt,
                "temperature_K": FDL2021_TEMPERATURE_K, "pH": np.nan,
                "flux_L_m2_h": float(m_s_to_lmh(r.Jv_um_per_s * UM_TO_M)),
                "flux_sd_L_m2_h": float(m_s_to_lmh(r.dJv_reading_um_per_s * UM_TO_M)),
                "ion": ion, "species": r.series_ion_or_salt,
                "rejection_basis": "salt" if is_salt else "ion",
                **{feed_column(i): feed[i] for i in FDL2021_IONS},
                "rejection": float(f_to_rejection(f)), "rejection_type": "intrinsic",
                "rejection_sd": sd,
                "source": FDL2021_SOURCE + ("" if kind == "measured" else "; authors' SDEM fit line"),
                "quality": r.quality, "figure_panel": r.figure_panel,
            })
    table = pd.DataFrame(rows)
    log.info("FdL 2021 (%s): %d raw points -> %d ion rows", kind, len(raw), len(table))
    return validate_measured(table, ion_db=db)


def validate_measured(table: pd.DataFrame, *, ion_db: IonDatabase | None = None,
                      rejection_range: tuple[float, float] = REJECTION_RANGE,
                      en_rtol: float = EN_RTOL) -> pd.DataFrame:
    """Check a measured-data table and return a copy with canonical ion names.

    Raises (each message names the offending value and its row):
        MissingColumnError: a required column or every feed column is missing.
        UnknownIonError: an ion (in ``ion`` or a feed column) the database does not know.
        InvalidInputError: rejection outside ``rejection_range`` (-5 <= R <= 1 by default) or not
            finite; unknown ``rejection_type``; non-positive flux or temperature; negative feed;
            a row whose measured ion is absent from its own feed.
        ElectroneutralityError: a feed with |sum z c| > en_rtol * sum |z| c.
    """
    db = ion_db or IonDatabase.default()
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise MissingColumnError(f"measured-data table lacks required columns {missing}")
    ions_raw = feed_ions(table)
    if not ions_raw:
        raise MissingColumnError(f"measured-data table has no feed columns '{FEED_PREFIX}<ion>{FEED_SUFFIX}'")
    out = table.copy()
    canon = {i: db.canonical(i) for i in ions_raw}  # UnknownIonError names the ion
    out = out.rename(columns={feed_column(i): feed_column(canon[i]) for i in ions_raw})
    ions = [canon[i] for i in ions_raw]
    try:
        out["ion"] = [db.canonical(str(i)) for i in out["ion"]]
    except UnknownIonError as e:
        raise UnknownIonError(f"column 'ion': {e}") from None
    if out["ion"].map(lambda s: s not in ions).any():
        bad = out.loc[out["ion"].map(lambda s: s not in ions), "ion"].iloc[0]
        raise InvalidInputError(f"ion {bad!r} has no feed column {feed_column(bad)!r}")
    rej = out["rejection"].to_numpy(dtype=float)
    lo, hi = rejection_range
    bad = ~np.isfinite(rej) | (rej < lo) | (rej > hi)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(f"rejection={float(rej[k])!r} (row {k}, ion {out['ion'].iloc[k]}) outside the plausible "
                                f"range [{lo}, {hi}]")
    kinds = set(out["rejection_type"]) - set(REJECTION_TYPES)
    if kinds:
        raise InvalidInputError(f"rejection_type {sorted(kinds)} not in {REJECTION_TYPES}")
    for col in ("flux_L_m2_h", "temperature_K"):
        v = out[col].to_numpy(dtype=float)
        if (~np.isfinite(v) | (v <= 0)).any():
            k = int(np.flatnonzero(~np.isfinite(v) | (v <= 0))[0])
            raise InvalidInputError(f"{col}={float(v[k])!r} (row {k}) must be positive and finite")
    c = feed_matrix(out, ions)
    if (~np.isfinite(c) | (c < 0)).any():
        k, j = np.argwhere(~np.isfinite(c) | (c < 0))[0]
        raise InvalidInputError(f"feed concentration {ions[j]}={float(c[k, j])!r} mol/m3 (row {k}) must be >= 0 and finite")
    own = c[np.arange(len(out)), [ions.index(i) for i in out["ion"]]]
    if (own <= 0).any():
        k = int(np.flatnonzero(own <= 0)[0])
        raise InvalidInputError(f"row {k}: measured ion {out['ion'].iloc[k]!r} is absent from its feed "
                                f"({feed_column(out['ion'].iloc[k])} = {float(own[k])!r})")
    z = np.array([db.get(i).charge for i in ions], dtype=float)
    imbalance, scale = c @ z, c @ np.abs(z)
    bad = np.abs(imbalance) > en_rtol * np.maximum(scale, 1e-300)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        comp = ", ".join(f"{i}={v:g}" for i, v in zip(ions, c[k]))
        raise ElectroneutralityError(f"feed of row {k} is not electroneutral: sum(z c) = {imbalance[k]:+.6g} "
                                     f"mol/m3 ({comp})")
    return out.reset_index(drop=True)


def read_measured(path, *, ion_db: IonDatabase | None = None) -> pd.DataFrame:
    """Read a measured-data table (CSV with ``#`` comment lines, or Parquet) and validate it.

    Every table a user passes goes through :func:`validate_measured` here.

    Raises:
        InvalidInputError: the file is missing, unreadable, empty or not CSV/Parquet (names the path).
        MissingColumnError, UnknownIonError, ElectroneutralityError: from :func:`validate_measured`.
    """
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"{p}: measured-data file not found")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            table = pd.read_parquet(p)
        else:
            table = pd.read_csv(p, comment="#")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InvalidInputError(f"{p}: cannot read the measured-data table ({exc})") from None
    if table.empty:
        raise InvalidInputError(f"{p}: measured-data table has no rows")
    try:
        return validate_measured(table, ion_db=ion_db)
    except (InvalidInputError, UnknownIonError) as exc:
        raise type(exc)(f"{p}: {exc}") from None
