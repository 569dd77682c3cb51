"""Ion database: names, values, citations, user overrides (nanosep.ions, nanosep.names)."""
from __future__ import annotations

import csv
import json
import math
from importlib import resources

import pytest

from nanosep.constants import BOLTZMANN
from nanosep.errors import InvalidInputError, UnknownIonError
from nanosep.ions import STOKES_VISCOSITY_PA_S, Ion, IonDatabase
from nanosep.names import canonical_ion_name

REQUIRED = {
    "Na+": 1, "K+": 1, "Li+": 1, "NH4+": 1, "H+": 1, "Ca+2": 2, "Mg+2": 2, "Sr+2": 2, "Ba+2": 2,
    "Cl-": -1, "NO3-": -1, "HCO3-": -1, "OH-": -1, "Br-": -1, "F-": -1, "SO4-2": -2,
    "glucose": 0, "sucrose": 0, "fructose": 0, "lactose": 0, "glycerol": 0, "ethylene glycol": 0,
}


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("Ca2+", "Ca+2"), ("Ca+2", "Ca+2"), ("Ca++", "Ca+2"), ("Ca[+2]", "Ca+2"), ("Ca 2+", "Ca+2"),
        ("Ca^2+", "Ca+2"), ("Ca(2+)", "Ca+2"), ("Ca²⁺", "Ca+2"), ("Ca", "Ca+2"),
        ("SO4-2", "SO4-2"), ("SO4 2-", "SO4-2"), ("SO4^2-", "SO4-2"), ("SO4--", "SO4-2"),
        ("SO4[-2]", "SO4-2"), ("SO42-", "SO4-2"), ("SO4", "SO4-2"),
        ("Na", "Na+"), ("Na+", "Na+"), ("Na[+]", "Na+"), ("Na[+1]", "Na+"), ("Na+1", "Na+"), (" Na+ ", "Na+"),
        ("NH4+", "NH4+"), ("nh4+", "NH4+"), ("Cl-", "Cl-"), ("Cl", "Cl-"), ("Cl[-1]", "Cl-"),
        ("Mg2+", "Mg+2"), ("K", "K+"), ("H+", "H+"), ("OH-", "OH-"), ("HCO3-", "HCO3-"), ("NO3-", "NO3-"),
        ("CO3--", "CO3-2"), ("Li+", "Li+"),
        ("glucose", "glucose"), ("Glucose", "glucose"), ("SUCROSE", "sucrose"), ("dextrose", "glucose"),
        ("ethylene_glycol", "ethylene glycol"), ("Ethylene-Glycol", "ethylene glycol"), ("glycerin", "glycerol"),
        ("D-Mannitol", "mannitol"),
    ],
)
def test_canonical_names(spelling, canonical):
    assert canonical_ion_name(spelling) == canonical
    assert IonDatabase.default().get(spelling).name == canonical


@pytest.mark.parametrize("bad", ["Cax+", "SO4-", "Na-", "sodium", "Xx", ""])
def test_unknown_ion_error_names_value(bad):
    with pytest.raises(UnknownIonError) as info:
        canonical_ion_name(bad)
    assert repr(bad) in str(info.value)
    assert isinstance(info.value, KeyError)


def test_unknown_ion_error_suggests_close_match():
    with pytest.raises(UnknownIonError, match=r"did you mean 'Ca\+2'"):
        IonDatabase.default().get("Cax+")
    with pytest.raises(UnknownIonError, match=r"'SO4-2'"):
        IonDatabase.default().get("SO4-")


def test_required_species_and_charges():
    db = IonDatabase.default()
    for name, z in REQUIRED.items():
        assert name in db
        assert db.get(name).charge == z
    assert "unobtainium" not in db
    assert IonDatabase.default() is db  # cached


def test_every_value_has_a_citation():
    for ion in IonDatabase.default():
        for f in ("charge", "stokes_radius_m", "diffusivity_m2_s", "molar_mass_kg_mol"):
            assert ion.sources.get(f), (ion.name, f)


def test_default_diffusivity_is_crc_column():
    db = IonDatabase.default()
    with resources.files("nanosep").joinpath("data", "ion_properties_25C.csv").open() as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    for row in rows:
        ion = db.get(row["ion"])
        assert ion.diffusivity_m2_s == float(row["D_inf_CRC_m2_per_s"])
        # the file's derived radius column agrees with our Stokes-Einstein radius
        assert ion.stokes_radius_m * 1e9 == pytest.approx(float(row["r_Stokes_SE_derived_nm"]), abs=1e-4)
    assert db.get("Ca+2").diffusivity_m2_s == 7.92e-10  # CRC, not WaterTAP's 9.2e-10


def test_stokes_einstein_consistency():
    for ion in IonDatabase.default():
        kT = 6 * math.pi * STOKES_VISCOSITY_PA_S * ion.stokes_radius_m * ion.diffusivity_m2_s
        assert kT == pytest.approx(BOLTZMANN * 298.15, rel=1e-12), ion.name


@pytest.mark.parametrize(
    ("name", "r_nm"),
    # "Stokes radii" quoted throughout the NF literature (e.g. Bowen & Mohammad 1998; WaterTAP nf.py)
    [("Na+", 0.184), ("K+", 0.125), ("Li+", 0.238), ("Mg+2", 0.347), ("Ca+2", 0.309), ("Cl-", 0.121), ("SO4-2", 0.230)],
)
def test_literature_stokes_radii(name, r_nm):
    assert IonDatabase.default().get(name).stokes_radius_m * 1e9 == pytest.approx(r_nm, abs=1.0e-3)


@pytest.mark.parametrize(
    ("name", "g_mol"),
    [("Na+", 22.990), ("SO4-2", 96.06), ("NH4+", 18.04), ("HCO3-", 61.02), ("glucose", 180.16),
     ("sucrose", 342.30), ("glycerol", 92.09), ("ethylene glycol", 62.07)],
)
def test_molar_masses(name, g_mol):
    assert IonDatabase.default().get(name).molar_mass_kg_mol * 1e3 == pytest.approx(g_mol, abs=0.01)


def test_neutral_solute_values():
    db = IonDatabase.default()
    assert db.get("glycerol").diffusivity_m2_s == pytest.approx(1.06e-9)
    assert db.get("sucrose").diffusivity_m2_s == pytest.approx(0.523e-9)  # Ribeiro 2006, 298.15 K
    assert db.get("glucose").stokes_radius_m * 1e9 == pytest.approx(0.361, abs=1e-3)  # file's derived column
    # ethylene glycol: 1.59e-9 at 37 C scaled to 25 C by Stokes-Einstein
    assert db.get("ethylene glycol").diffusivity_m2_s == pytest.approx(1.187e-9, rel=2e-3)
    assert "5-carboxyfluorescein" not in db  # a charged dye, deliberately excluded


def test_ion_is_frozen_and_validated():
    ion = IonDatabase.default().get("Na+")
    with pytest.raises(AttributeError):
        ion.charge = 2  # type: ignore[misc]
    with pytest.raises(InvalidInputError, match="stokes_radius_m"):
        Ion("X+", 1, -1e-10, 1e-9, 0.1)


def test_with_overrides_replaces_only_given_fields():
    base = IonDatabase.default()
    db = base.with_overrides({"Ca2+": {"diffusivity_m2_s": 9.2e-10, "source": "WaterTAP nf.py"}})
    ca = db.get("Ca+2")
    assert ca.diffusivity_m2_s == 9.2e-10
    assert ca.stokes_radius_m == base.get("Ca+2").stokes_radius_m
    assert ca.sources["diffusivity_m2_s"] == "WaterTAP nf.py"
    assert base.get("Ca+2").diffusivity_m2_s == 7.92e-10  # the default is untouched


def test_with_overrides_adds_species_nm_to_m():
    db = IonDatabase.default().with_overrides(
        {"La3+": {"charge": 3, "stokes_radius_nm": 0.40}, "raffinose": {"charge": 0, "diffusivity_m2_s": 4.3e-10, "molar_mass_kg_mol": 0.5045}}
    )
    la = db.get("La+3")
    assert la.charge == 3
    assert la.stokes_radius_m == pytest.approx(0.40e-9)
    assert la.diffusivity_m2_s * la.stokes_radius_m == pytest.approx(
        BOLTZMANN * 298.15 / (6 * math.pi * STOKES_VISCOSITY_PA_S)
    )
    assert la.molar_mass_kg_mol == pytest.approx(0.13891)
    assert db.get("Raffinose").charge == 0


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ({"Na+": {"stokes_radius_nm": -0.1}}, r"'stokes_radius_nm'.*-0\.1"),
        ({"Na+": {"diffusivity_m2_s": float("nan")}}, r"'diffusivity_m2_s'.*nan"),
        ({"Na+": {"diffusivity_m2_s": float("inf")}}, r"'diffusivity_m2_s'.*inf"),
        ({"Na+": {"diffusivity_m2_s": "fast"}}, r"'diffusivity_m2_s'.*'fast'"),
        ({"X+": {"charge": 1.5, "diffusivity_m2_s": 1e-9}}, r"'charge'.*1\.5"),
        ({"Na+": {"charge": 2}}, r"'charge'.*2"),
        ({"Na+": {"stokes_radius_m": 1e-10}}, r"unknown field.*stokes_radius_m"),
        ({"Fe3+": {"stokes_radius_nm": 0.3}}, r"ambiguous"),
        ({"Q+": {"charge": 1}}, r"needs 'diffusivity_m2_s'"),
        ({"raffinose": {"charge": 0, "diffusivity_m2_s": 4.3e-10}}, r"'raffinose'.*molar_mass_kg_mol"),
    ],
)
def test_with_overrides_rejects_bad_values(override, pattern):
    with pytest.raises(InvalidInputError, match=pattern):
        IonDatabase.default().with_overrides(override)


def test_from_file_yaml_json_csv(tmp_path):
    yaml_file = tmp_path / "ions.yaml"
    yaml_file.write_text(
        "Ca2+:\n  diffusivity_m2_s: 9.2e-10\n  source: WaterTAP\nLa+3:\n  stokes_radius_nm: 0.4\n", encoding="utf-8"
    )
    json_file = tmp_path / "ions.json"
    json_file.write_text(json.dumps([{"name": "Mg2+", "stokes_radius_nm": 0.35}]), encoding="utf-8")
    csv_file = tmp_path / "ions.csv"
    csv_file.write_text(
        "# my lab's values\nname,charge,stokes_radius_nm,diffusivity_m2_s,molar_mass_kg_mol\n"
        "SO4 2-,,0.231,,\nraffinose,0,,4.3e-10,0.5045\n",
        encoding="utf-8",
    )
    db = IonDatabase.from_file(yaml_file)
    assert db.get("Ca+2").diffusivity_m2_s == 9.2e-10
    assert db.get("Ca+2").sources["diffusivity_m2_s"] == "WaterTAP"
    assert db.get("La+3").stokes_radius_m == pytest.approx(0.4e-9)
    assert db.get("La+3").sources["stokes_radius_m"] == "user file ions.yaml"
    db = IonDatabase.from_file(json_file, base=db)
    assert db.get("Mg+2").stokes_radius_m == pytest.approx(0.35e-9)
    assert db.get("La+3").charge == 3  # kept from the base
    db = IonDatabase.from_file(csv_file, base=db)
    assert db.get("SO4-2").stokes_radius_m == pytest.approx(0.231e-9)
    assert db.get("SO4-2").diffusivity_m2_s == 1.065e-9
    assert db.get("raffinose").molar_mass_kg_mol == 0.5045


def test_from_file_errors(tmp_path):
    bad = tmp_path / "ions.csv"
    bad.write_text("name,stokes_radius_nm\nNa+,-3\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"'Na\+'.*'stokes_radius_nm'.*-3"):
        IonDatabase.from_file(bad)
    txt = tmp_path / "ions.txt"
    txt.write_text("", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="extension"):
        IonDatabase.from_file(txt)
