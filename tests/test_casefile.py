"""Case files (nanosep.casefile): the shipped cases load, convert to SI, and every bad
input is rejected with a message that names the file, the field path and the value."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from casetools import edited
import yaml

from nanosep.casefile import EN_RTOL, case_from_dict, load_case
from nanosep.errors import InvalidInputError

CASES = Path(__file__).resolve().parents[1] / "cases"

BASE = {
    "membrane": {"pore_radius_nm": 0.5, "thickness_um": 1.16, "pore_dielectric": 43.86,
                 "charge_density_mol_m3": -63.0},
    "feed": {"temperature_K": 298.15, "concentrations_mol_m3": {"Na+": 20.0, "Cl-": 10.0, "SO4-2": 5.0}},
    "operation": {"flux_L_m2_h": [18.0, 36.0]},
    "model": {"activity": "davies", "polarization": "film", "mass_transfer_m_s": 2e-5},
}


def _edit(**changes):
    """BASE with dotted-path changes; a value of None deletes the key."""
    return edited(BASE, changes)


# (changes, substrings the message must contain); "__" separates path levels
BAD = {
    "missing field": ({"membrane__thickness_um": None}, ["membrane.thickness_um", "required"]),
    "missing section": ({"feed": None}, ["feed", "required"]),
    "negative radius": ({"membrane__pore_radius_nm": -0.5},
                        ["membrane.pore_radius_nm: must be > 0 (got -0.5)"]),
    "NaN concentration": ({"feed__concentrations_mol_m3__Na+": float("nan")},
                          ["feed.concentrations_mol_m3.Na+", "finite", "nan"]),
    "negative concentration": ({"feed__concentrations_mol_m3__Na+": -1.0},
                               ["feed.concentrations_mol_m3.Na+", ">= 0", "-1.0"]),
    "unknown ion": ({"feed__concentrations_mol_m3": {"Na+": 10.0, "Cll-": 10.0}},
                    ["feed.concentrations_mol_m3.Cll-", "'Cll-'", "did you mean 'Cl-'"]),
    "not electroneutral": ({"feed__concentrations_mol_m3__Na+": 22.0},
                           ["feed.concentrations_mol_m3", "not electroneutral", "sum(z c) = +2", "balance_with"]),
    "flux and pressure": ({"operation__pressure_bar": [4.0]}, ["operation", "exactly one", "both"]),
    "no operation": ({"operation": {}}, ["operation", "exactly one", "neither"]),
    "zero flux": ({"operation__flux_L_m2_h": [10.0, 0.0]}, ["operation.flux_L_m2_h.1", "> 0"]),
    "unknown activity model": ({"model__activity": "debye"},
                               ["model.activity", "'ideal', 'davies' or 'pitzer'", "'debye'"]),
    "unknown polarization": ({"model__polarization": "cake"}, ["model.polarization", "'cake'"]),
    "film without k": ({"model__mass_transfer_m_s": None}, ["model", "mass_transfer_m_s"]),
    "typo in key": ({"membrane__pore_radus_nm": 0.5},
                    ["membrane.pore_radus_nm", "unknown key", "did you mean 'pore_radius_nm'"]),
    "typo in section": ({"modle": {"activity": "ideal"}}, ["modle", "unknown key", "did you mean 'model'"]),
    "temperature out of range": ({"feed__temperature_K": 25.0}, ["feed.temperature_K", ">= 273.15", "25.0"]),
    "text for a number": ({"membrane__pore_dielectric": "high"}, ["membrane.pore_dielectric", "number", "'high'"]),
    "repeated ion": ({"feed__concentrations_mol_m3": {"Na+": 10.0, "Na[+]": 1.0, "Cl-": 11.0}},
                     ["repeats ion 'Na+'"]),
    "bad ion override": ({"ions": {"La+3": {"charge": 3}}}, ["ions.La+3", "diffusivity_m2_s"]),
    "unknown ion field": ({"ions": {"Na+": {"radius_nm": 0.2}}}, ["ions.Na+.radius_nm", "unknown key"]),
    "unknown balance ion": ({"balance_with": "Clx"}, ["balance_with", "'Clx'"]),
    "wrong-sign balance ion": ({"balance_with": "Cl-", "feed__concentrations_mol_m3": {"Cl-": 10.0, "SO4-2": 1.0}},
                               ["balance_with", "cannot balance"]),
}


@pytest.mark.parametrize("name", sorted(p.name for p in CASES.glob("*.yaml")))
def test_shipped_cases_load_and_are_electroneutral(name):
    case = load_case(CASES / name)
    z = {ion: case.ion_db.get(ion).charge for ion in case.feed_mol_m3}
    charge = sum(z[i] * c for i, c in case.feed_mol_m3.items())
    assert abs(charge) < 1e-12 * sum(abs(z[i]) * c for i, c in case.feed_mol_m3.items())
    assert case.to_engine().membrane.pore_radius_m == pytest.approx(0.5e-9)


def test_default_case_is_a_brackish_water_with_the_rehman_2023_membrane():
    case = load_case(CASES / "nf270_brackish.yaml")
    m = case.membrane
    assert (m.pore_radius_nm, m.thickness_um, m.pore_dielectric, m.charge_density_mol_m3) == (0.5, 1.16, 43.86, -63.0)
    assert set(case.feed_mol_m3) == {"Na+", "K+", "Ca+2", "Mg+2", "Cl-", "SO4-2", "HCO3-"}
    tds_mg_l = sum(c * case.ion_db.get(i).molar_mass_kg_mol * 1e3 for i, c in case.feed_mol_m3.items())
    assert 2000 < tds_mg_l < 3000
    assert min(case.operation.flux_L_m2_h) == 5 and max(case.operation.flux_L_m2_h) == 100
    e = case.to_engine()
    assert e.options.activity == "davies" and e.options.polarization == "film"
    assert e.options.mass_transfer_m_s == 2e-5 and e.temperature_K == 298.15


def test_fdl2021_case_fluxes_are_5_to_55_um_per_s():
    e = load_case(CASES / "fdl2021_nf270_nacl.yaml").to_engine()
    np.testing.assert_allclose(e.drive["flux_m_s"], np.arange(5, 56, 5) * 1e-6, rtol=1e-12)
    assert e.temperature_K == 293.15
    assert e.feed == {"Na+": 10.2, "NH4+": 0.2, "Cl-": 10.2, "NO3-": 0.2}


def test_to_engine_converts_user_units_to_si():
    e = case_from_dict(_edit(operation={"pressure_bar": [2.0, 5.0]})).to_engine()
    assert e.membrane.thickness_m == pytest.approx(1.16e-6)
    np.testing.assert_allclose(e.drive["pressure_pa"], [2e5, 5e5])
    assert "flux_m_s" not in e.drive
    e = case_from_dict(BASE).to_engine()
    np.testing.assert_allclose(e.drive["flux_m_s"], [5e-6, 1e-5])
    assert e.balance_with is None and e.ion_db.get("Na+").charge == 1


def test_ion_names_are_canonicalized_and_overrides_apply():
    data = _edit(feed__concentrations_mol_m3={"Na": 10.0, "SO4 2-": 2.0, "La3+": 2.0, "Cl-": 12.0},
                 ions={"La+3": {"diffusivity_m2_s": 6.19e-10}, "Na+": {"stokes_radius_nm": 0.2}})
    case = case_from_dict(data)
    assert list(case.feed_mol_m3) == ["Na+", "SO4-2", "La+3", "Cl-"]
    assert case.ion_db.get("Na+").stokes_radius_m == pytest.approx(0.2e-9)
    assert case.ion_db.get("La+3").charge == 3


def test_balance_with_closes_the_charge_balance_at_load():
    case = case_from_dict(_edit(feed__concentrations_mol_m3={"Na+": 12.0, "Ca2+": 1.0}, balance_with="Cl"))
    assert case.balance_ion == "Cl-"
    assert case.to_engine().balance_with == "Cl-"


def test_scalar_flux_becomes_a_list():
    assert case_from_dict(_edit(operation={"flux_L_m2_h": 20})).operation.flux_L_m2_h == [20.0]


@pytest.mark.parametrize("label", sorted(BAD))
def test_bad_input_names_file_field_and_value(label):
    changes, expected = BAD[label]
    with pytest.raises(InvalidInputError) as err:
        case_from_dict(_edit(**changes), source="bad.yaml")
    msg = str(err.value)
    assert msg.startswith("bad.yaml: ")
    assert "\n" not in msg
    for part in expected:
        assert part in msg, f"{part!r} not in {msg!r}"


def test_json_and_yaml_files_load_the_same_case(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps(BASE))
    (tmp_path / "c.yml").write_text(yaml.safe_dump(BASE))
    assert load_case(tmp_path / "c.json") == load_case(tmp_path / "c.yml")


def test_nan_in_a_yaml_file_is_caught(tmp_path):
    path = tmp_path / "nan.yaml"
    path.write_text(yaml.safe_dump(BASE).replace("Na+: 20.0", "Na+: .nan"))
    with pytest.raises(InvalidInputError, match=r"nan\.yaml: feed\.concentrations_mol_m3\.Na\+: .*finite"):
        load_case(path)


@pytest.mark.parametrize(("text", "expected"), [
    ("membrane: [1, 2", "invalid YAML at line"),
    ("- just\n- a list\n", "must be a mapping"),
])
def test_unparsable_files_are_input_errors(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=expected):
        load_case(path)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InvalidInputError, match="case file not found"):
        load_case(tmp_path / "nope.yaml")


def test_electroneutrality_tolerance_matches_the_engine():
    from nanosep.transport import solver

    assert EN_RTOL == solver.EN_RTOL
