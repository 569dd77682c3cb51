"""A covariance study fed by a fit's parameters.json (``uq.covariance.from_fit``).

What can be wrong: slot-name parsing, choosing the data set of per-data-set slots, the submatrix (order and
symmetry), relative paths, and silent acceptance of an unidentifiable (non-finite) fit.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from nanosep.transport.uncertainty.fit_covariance import covariance_from_fit
from nanosep.transport.uncertainty.uq_case import load_uq_case

from nanosep.errors import InvalidInputError

SLOTS = ["pore_radius_nm", "thickness_um", "pore_dielectric", "charge_density_mol_m3[NaCl]",
         "charge_density_mol_m3[MgCl2]"]
MEAN = [0.45, 0.8, 38.0, -40.0, 12.0]
A = np.arange(1, 26, dtype=float).reshape(5, 5) / 10.0
COV = (A @ A.T + np.eye(5)).tolist()


def _fit_json(tmp_path, mean=MEAN, cov=COV):
    d = tmp_path / "fit"
    d.mkdir(exist_ok=True)
    (d / "parameters.json").write_text(json.dumps({"covariance": {"parameters": SLOTS, "mean": mean, "cov": cov}}))
    return d / "parameters.json"


def test_per_dataset_slot_is_picked_and_the_submatrix_kept(tmp_path):
    path = _fit_json(tmp_path)
    names, mean, cov = covariance_from_fit(path, "MgCl2")
    assert names == ["pore_radius_nm", "thickness_um", "pore_dielectric", "charge_density_mol_m3"]
    assert mean == [0.45, 0.8, 38.0, 12.0]
    idx = [0, 1, 2, 4]
    np.testing.assert_array_equal(cov, np.asarray(COV)[np.ix_(idx, idx)])
    names, mean, cov = covariance_from_fit(path, "NaCl", ["charge_density_mol_m3", "pore_radius_nm"])
    assert mean == [-40.0, 0.45] and cov[0][1] == COV[3][0] == cov[1][0]


@pytest.mark.parametrize(("dataset", "params", "message"), [
    (None, None, "choose one with covariance.dataset"),
    ("Na2SO4", None, "not among the fit's data sets"),
    ("NaCl", ["thickness_um", "charge_density_mol_m3", "pore_dielectric"], None),
])
def test_dataset_choice_errors(tmp_path, dataset, params, message):
    path = _fit_json(tmp_path)
    if message is None:
        assert covariance_from_fit(path, dataset, params)[0] == params
    else:
        with pytest.raises(InvalidInputError, match=message):
            covariance_from_fit(path, dataset, params)


def test_unidentifiable_fit_is_refused_by_name(tmp_path):
    cov = [row[:] for row in COV]
    cov[1][1] = None           # JSON null: a non-finite variance
    path = _fit_json(tmp_path, cov=cov)
    with pytest.raises(InvalidInputError, match="thickness_um"):
        covariance_from_fit(path, "NaCl")
    assert covariance_from_fit(path, "NaCl", ["pore_radius_nm"])[2] == [[COV[0][0]]]
    with pytest.raises(InvalidInputError, match="not found"):
        covariance_from_fit(tmp_path / "nope.json")


def test_uq_case_reads_the_fit_relative_to_the_case_file(tmp_path):
    _fit_json(tmp_path)
    case = yaml.safe_load(open("cases/uq/nf270_li_mg_brine.yaml"))
    case["uq"] = {"pairs": [["Li+", "Mg+2"]],
                  "covariance": {"from_fit": "fit/parameters.json", "dataset": "NaCl",
                                 "parameters": ["pore_radius_nm", "charge_density_mol_m3"], "samples": 64}}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(case))
    c = load_uq_case(tmp_path / "case.yaml").uq.covariance
    assert c.parameters == ["pore_radius_nm", "charge_density_mol_m3"] and c.mean == [0.45, -40.0]
    assert c.cov == [[COV[0][0], COV[0][3]], [COV[3][0], COV[3][3]]]
    case["uq"]["covariance"]["cov"] = [[1.0]]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(case))
    with pytest.raises(InvalidInputError, match="either from_fit or mean/cov"):
        load_uq_case(tmp_path / "bad.yaml")
