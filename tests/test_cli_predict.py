"""``nanosep predict``: JSON equal to a direct engine call, table and CSV output, and
exit code 2 with a one-line message naming the field for every bad case file."""
from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from casetools import edited
import yaml
from typer.testing import CliRunner

from nanosep.cli import app
from nanosep.ions import IonDatabase
from nanosep.transport import Membrane, TransportOptions, solve

runner = CliRunner()

CASE = {
    "name": "test case",
    "membrane": {"pore_radius_nm": 0.5, "thickness_um": 1.16, "pore_dielectric": 43.86,
                 "charge_density_mol_m3": -63.0},
    "feed": {"temperature_K": 298.15, "concentrations_mol_m3": {"Na+": 20.0, "Cl-": 10.0, "SO4 2-": 5.0}},
    "operation": {"flux_L_m2_h": [18.0, 36.0]},
    "model": {"activity": "davies", "image_forces": False, "polarization": "film", "mass_transfer_m_s": 2e-5},
}


def _write(tmp_path, data, name="case.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def direct():
    """The same case solved by calling the engine directly (SI units)."""
    m = Membrane.from_user_units(pore_radius_nm=0.5, thickness_um=1.16, pore_dielectric=43.86,
                                 charge_density_mol_m3=-63.0)
    opts = TransportOptions(activity="davies", image_forces=False, polarization="film", mass_transfer_m_s=2e-5)
    return solve(m, {"Na+": 20.0, "Cl-": 10.0, "SO4-2": 5.0}, flux_m_s=[5e-6, 1e-5], temperature_K=298.15,
                 options=opts, ion_db=IonDatabase.default(), strict=False)


def test_json_output_equals_a_direct_solve(tmp_path, direct):
    result = runner.invoke(app, ["predict", str(_write(tmp_path, CASE)), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert list(doc) == ["cases"]
    assert len(doc["cases"]) == 2
    for b, entry in enumerate(doc["cases"]):
        assert {"flux_L_m2_h", "rejection", "permeate_mol_m3", "converged"} <= set(entry)
        assert "pressure_bar" not in entry
        assert entry["converged"] is True
        assert entry["flux_L_m2_h"] == pytest.approx([18.0, 36.0][b], rel=1e-12)
        ref = direct.case(b)
        assert list(entry["rejection"]) == ["Na+", "Cl-", "SO4-2"]  # canonical names
        for key, values in (("rejection", ref.rejection), ("rejection_intrinsic", ref.rejection_intrinsic),
                            ("permeate_mol_m3", ref.permeate_mol_m3)):
            assert entry[key] == pytest.approx(values, rel=1e-12, abs=1e-15)


def test_pressure_case_reports_the_pressure_and_the_resulting_flux(tmp_path):
    data = copy.deepcopy(CASE)
    data["operation"] = {"pressure_bar": [4.0, 8.0]}
    result = runner.invoke(app, ["predict", str(_write(tmp_path, data)), "--json"])
    assert result.exit_code == 0, result.output
    cases = json.loads(result.stdout)["cases"]
    assert [c["pressure_bar"] for c in cases] == [4.0, 8.0]
    assert 0 < cases[0]["flux_L_m2_h"] < cases[1]["flux_L_m2_h"]


def test_table_output_and_csv(tmp_path, direct):
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", str(_write(tmp_path, CASE)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for text in ("test case", "Na+", "SO4-2", "18.00", "36.00"):
        assert text in result.stdout
    frame = pd.read_csv(out / "case_predict.csv")
    ref = direct.to_frame()
    assert list(frame.columns) == list(ref.columns)
    np.testing.assert_allclose(frame["rejection_observed"], ref["rejection_observed"], rtol=1e-12)
    np.testing.assert_allclose(frame["c_perm_mol_m3"], ref["c_perm_mol_m3"], rtol=1e-12)


def _bad(edits: dict) -> dict:
    return edited(CASE, edits)


BAD = {
    "missing field": (_bad({"membrane__pore_dielectric": None}), ["membrane.pore_dielectric", "required"]),
    "negative radius": (_bad({"membrane__pore_radius_nm": -0.5}),
                        ["membrane.pore_radius_nm: must be > 0 (got -0.5)"]),
    "NaN concentration": (_bad({"feed__concentrations_mol_m3__Na+": float("nan")}),
                          ["feed.concentrations_mol_m3.Na+", "finite", "nan"]),
    "unknown ion": (_bad({"feed__concentrations_mol_m3": {"Naa+": 10.0, "Cl-": 10.0}}),
                    ["feed.concentrations_mol_m3.Naa+", "did you mean 'Na+'"]),
    "non-electroneutral": (_bad({"feed__concentrations_mol_m3__Cl-": 12.0}),
                           ["not electroneutral", "sum(z c) = -2", "balance_with"]),
    "flux and pressure": (_bad({"operation__pressure_bar": [5.0]}),
                          ["operation", "exactly one of flux_L_m2_h"]),
    "unknown model option": (_bad({"model__activity": "extended"}), ["model.activity", "'extended'"]),
    "unknown model key": (_bad({"model__solver": "fast"}), ["model.solver", "unknown key"]),
    "typo'd key": (_bad({"feed__temperatur_K": 298.0}),
                   ["feed.temperatur_K", "did you mean 'temperature_K'"]),
}


@pytest.mark.parametrize("label", list(BAD))
def test_bad_case_exits_2_with_one_line_naming_the_field(tmp_path, label):
    data, expected = BAD[label]
    path = _write(tmp_path, data, "bad.yaml")
    result = runner.invoke(app, ["predict", str(path), "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    err = result.stderr.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith(f"nanosep predict: error: {path}: ")
    for part in expected:
        assert part in err, f"{part!r} not in {err!r}"


def test_missing_case_file_exits_2(tmp_path):
    result = runner.invoke(app, ["predict", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "case file not found" in result.stderr


@pytest.mark.parametrize("command", ["predict", "demo"])
def test_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "--out" in result.stdout
