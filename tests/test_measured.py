"""nanosep.measured: the FdL 2021 loader against its raw file, conversions, and every error path."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nanosep.errors import ElectroneutralityError, InvalidInputError, UnknownIonError
from nanosep.ions import IonDatabase
from nanosep.measured import (
    FDL2021_IONS,
    FDL2021_SALTS,
    MissingColumnError,
    f_to_rejection,
    fdl2021_feed_mol_m3,
    feed_column,
    feed_ions,
    feed_matrix,
    load_fdl2021,
    read_fdl2021_raw,
    rejection_to_f,
    validate_measured,
)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return load_fdl2021()


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return read_fdl2021_raw()


def test_counts_per_salt_and_series_match_raw_file(table, raw):
    assert len(raw) == 106  # header of the file: 106 points, 16 series
    assert raw.groupby(["dominant_salt", "series_ion_or_salt"]).ngroups == 16
    # one row per trace-ion point, one row per ion of the salt for every salt-rejection point
    is_salt = raw["series_ion_or_salt"] == raw["dominant_salt"]
    assert len(table) == int((~is_salt).sum()) + 2 * int(is_salt.sum())
    got = table.groupby(["dominant_salt", "species"]).size()
    want = raw.groupby(["dominant_salt", "series_ion_or_salt"]).size()
    for (salt, species), n in want.items():
        per_point = len(FDL2021_SALTS[salt]) if species == salt else 1
        assert got[(salt, species)] == n * per_point, (salt, species)


def test_rejection_matches_the_files_derived_column(table, raw):
    ion_rows = table[table["rejection_basis"] == "ion"]
    raw_ion = raw[raw["series_ion_or_salt"] != raw["dominant_salt"]]
    np.testing.assert_allclose(np.sort(ion_rows["rejection"]), np.sort(raw_ion["R_exp_derived"]), atol=6e-6)
    assert table["rejection"].min() == pytest.approx(-1.38663, abs=1e-5)  # nitrate under MgSO4


def test_salt_rows_carry_both_ions_with_the_same_rejection(table):
    salt = table[table["rejection_basis"] == "salt"]
    for (s, panel, flux), g in salt.groupby(["dominant_salt", "figure_panel", "flux_L_m2_h"]):
        assert sorted(g["ion"]) == sorted(FDL2021_SALTS[s])
        assert g["rejection"].nunique() == 1


def test_f_rejection_round_trip_and_limits():
    r = np.array([-1.38663, -0.5, 0.0, 0.43114, 0.99649])
    np.testing.assert_allclose(f_to_rejection(rejection_to_f(r)), r, rtol=0, atol=1e-14)
    assert f_to_rejection(1.0) == 0.0 and f_to_rejection(2.0) == 0.5 and rejection_to_f(0.75) == 4.0
    with pytest.raises(InvalidInputError, match="1.0"):
        rejection_to_f([0.2, 1.0])
    with pytest.raises(InvalidInputError, match="-0.5"):
        f_to_rejection([-0.5])


def test_every_reconstructed_feed_is_electroneutral_and_as_stated(table):
    db = IonDatabase.default()
    z = np.array([db.get(i).charge for i in FDL2021_IONS])
    c = feed_matrix(table, list(FDL2021_IONS))
    assert np.abs(c @ z).max() < 1e-12
    mg = fdl2021_feed_mol_m3("MgCl2")
    assert mg == {"Na+": 0.2, "Mg+2": 10.0, "NH4+": 0.2, "Cl-": 20.2, "NO3-": 0.2, "SO4-2": 0.0}
    assert feed_ions(table) == list(FDL2021_IONS)


def test_units_and_metadata(table, raw):
    np.testing.assert_allclose(table["flux_L_m2_h"].max(), raw["Jv_um_per_s"].max() * 3.6, rtol=1e-12)
    assert set(table["rejection_type"]) == {"intrinsic"}
    assert (table["temperature_K"] == 293.15).all() and table["pH"].isna().all()
    # reading error propagated: sd = df / f^2
    row = table.iloc[0]
    f = 1 / (1 - row["rejection"])
    assert row["rejection_sd"] == pytest.approx(0.0168 / f**2, rel=1e-6)


def test_sdem_fit_and_occluded_options(raw):
    fit = load_fdl2021("sdem_fit")
    assert fit["rejection_sd"].isna().all()
    n_line = raw["f_line_authors_SDEM_fit"].notna()
    is_salt = raw["series_ion_or_salt"] == raw["dominant_salt"]
    assert len(fit) == int((n_line & ~is_salt).sum() + 2 * (n_line & is_salt).sum())
    clean = load_fdl2021(include_occluded=False)
    assert set(clean["quality"]) == {"clean"}
    with pytest.raises(InvalidInputError, match="kind='fit'"):
        load_fdl2021("fit")  # type: ignore[arg-type]


# -- error paths --------------------------------------------------------------------------------

def _small(table: pd.DataFrame) -> pd.DataFrame:
    return table.head(5).copy()


def test_missing_columns_are_named(table):
    t = _small(table).drop(columns=["rejection", "source"])
    with pytest.raises(MissingColumnError, match=r"\['rejection', 'source'\]"):
        validate_measured(t)
    t = _small(table).drop(columns=[feed_column(i) for i in FDL2021_IONS])
    with pytest.raises(MissingColumnError, match="feed columns"):
        validate_measured(t)


def test_unknown_ion_is_named(table):
    t = _small(table)
    t.loc[t.index[2], "ion"] = "Xx+"
    with pytest.raises(UnknownIonError, match="Xx"):
        validate_measured(t)
    t = _small(table).rename(columns={feed_column("NO3-"): feed_column("Qq-")})
    with pytest.raises(UnknownIonError, match="Qq"):
        validate_measured(t)


@pytest.mark.parametrize("bad", [-5.5, 1.2, np.nan])
def test_implausible_rejection_is_named(table, bad):
    t = _small(table)
    t.loc[t.index[3], "rejection"] = bad
    with pytest.raises(InvalidInputError, match=f"rejection={bad!r}.*row 3"):
        validate_measured(t)


def test_non_electroneutral_feed_is_named(table):
    t = _small(table)
    t.loc[t.index[1], feed_column("Cl-")] = 9.0
    with pytest.raises(ElectroneutralityError, match=r"row 1 .*\+1\.2 mol/m3 .*Cl-=9,"):
        validate_measured(t)


def test_other_bad_values(table):
    t = _small(table)
    t.loc[t.index[0], "flux_L_m2_h"] = -3.0
    with pytest.raises(InvalidInputError, match="flux_L_m2_h=-3.0"):
        validate_measured(t)
    t = _small(table)
    t.loc[t.index[0], "rejection_type"] = "apparent"
    with pytest.raises(InvalidInputError, match="apparent"):
        validate_measured(t)
    t = _small(table)
    t["ion"] = "SO4-2"  # NaCl background: sulfate absent from the feed
    with pytest.raises(InvalidInputError, match="absent from its feed"):
        validate_measured(t)


def test_spellings_are_canonicalized(table):
    t = _small(table)
    t["ion"] = t["ion"].str.rstrip("+-")  # "Na", "Cl", "NH4", "NO3"
    t = t.rename(columns={feed_column("SO4-2"): feed_column("SO4 2-")})
    v = validate_measured(t)
    assert set(v["ion"]) <= set(FDL2021_IONS)
    assert feed_column("SO4-2") in v.columns
