"""Surrogate case files and designs: validation messages, bounds, log-uniformity, stratification."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from nanosep.surrogates.domain import (
    design,
    load_surrogate_case,
    surrogate_case_from_dict,
)

from nanosep.errors import InvalidInputError

CASES = Path(__file__).resolve().parents[1] / "cases" / "surrogates"
NA2SO4 = CASES / "seed002_na2so4_element.yaml"


def _raw(path: Path = NA2SO4) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", sorted(CASES.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_case_files_load(path):
    case = load_surrogate_case(path)
    assert case.name == path.stem
    assert case.description
    for o in case.outputs:
        assert o.ion in case.ions


def test_ions_include_balance_ion():
    case = load_surrogate_case(CASES / "seed002_nacl_na2so4_element.yaml")
    assert case.ions == ("Na+", "Cl-", "SO4-2")
    assert case.base_case.balance_ion == "Na+"
    assert [v.unit for v in case.inputs] == ["mol/m3", "nm", "um/s", "mol/m3", "mol/m3"]


def test_sobol_design_in_bounds_and_stratified_in_log10():
    case = load_surrogate_case(NA2SO4)
    n = 1024
    df = design(case, n=n)
    assert list(df.columns) == ["case_id"] + case.input_names
    assert df["case_id"].tolist() == list(range(n))
    for v in case.inputs:
        x = df[v.name].to_numpy()
        assert x.min() >= v.low and x.max() <= v.high
        t, lo, hi = (v.transform.forward(a) for a in (x, v.low, v.high))
        u = (t - lo) / (hi - lo)
        # a scrambled Sobol net of 2^10 points puts exactly n/16 points into every 1/16 of each axis
        counts = np.bincount(np.minimum((u * 16).astype(int), 15), minlength=16)
        assert (counts == n // 16).all(), (v.name, counts)
    # log-uniform, not uniform: half of the SO4 points lie below the geometric mid-point (0.707 mol/m3);
    # uniform sampling would put 1.4 % there
    c = df["c_SO4-2_mol_m3"].to_numpy()
    assert (c < math.sqrt(0.01 * 50.0)).sum() == n // 2


def test_log_offset_flux_is_dense_at_low_flux_and_keeps_zero():
    """flux_um_s is log_offset (c = 1e-6 um/s): uniform in log10(J + c) over [log10 c, log10(50 + c)],
    so a quarter of the points lie below J = 10^(lo + (hi - lo)/4) - c = 8.31e-5 um/s (linear sampling:
    0.0002 %), below the fluxes where a low-feed rejection rises from 0 (R = 0.5 at 4e-6 um/s, case file)."""
    case = load_surrogate_case(NA2SO4)
    v = case.inputs[case.input_names.index("flux_um_s")]
    assert (v.scale, v.offset, v.low) == ("log_offset", 1e-6, 0.0)
    n = 1024
    J = design(case, n=n)["flux_um_s"].to_numpy()
    lo, hi = math.log10(1e-6), math.log10(50.0 + 1e-6)
    q = 10 ** (lo + (hi - lo) / 4) - 1e-6
    assert q == pytest.approx(8.309e-5, rel=1e-3)
    assert (J < q).sum() == n // 4
    # one point in the first 1/1024 of the t axis: J < c (10^((hi - lo)/1024) - 1) = 1.75e-8 um/s
    assert 0.0 <= J.min() < 1e-6 * (10 ** ((hi - lo) / n) - 1)


def test_input_scale_round_trip_and_poles():
    from nanosep.surrogates.scaling import InputScale

    x = np.array([0.0, 1e-6, 0.01, 3.0, 50.0])
    sc = InputScale("log_offset", 0.1)
    np.testing.assert_allclose(sc.forward(x), np.log10(x + 0.1), rtol=0, atol=0)
    np.testing.assert_allclose(sc.inverse(sc.forward(x)), x, rtol=1e-13, atol=1e-15)
    assert sc.forward(0.0) == pytest.approx(-1.0, abs=1e-15)
    assert InputScale("log").inverse(InputScale("log").forward(7.0)) == pytest.approx(7.0, rel=1e-15)
    with pytest.raises(InvalidInputError, match="offset > 0, got offset = 0.0"):
        InputScale("log_offset", 0.0)
    with pytest.raises(InvalidInputError, match="only meaningful with scale 'log_offset'"):
        InputScale("log", 0.5)
    with pytest.raises(InvalidInputError, match="'sqrt'"):
        InputScale("sqrt")


def test_lhs_design_one_point_per_stratum():
    case = load_surrogate_case(NA2SO4)
    n = 200
    df = design(case, n=n, method="lhs", seed=3)
    for v in case.inputs:
        x = df[v.name].to_numpy()
        t, lo, hi = (v.transform.forward(a) for a in (x, v.low, v.high))
        strata = np.floor((t - lo) / (hi - lo) * n).astype(int)
        assert sorted(np.minimum(strata, n - 1)) == list(range(n)), v.name


def test_design_deterministic_per_seed():
    case = load_surrogate_case(NA2SO4)
    a, b, c = design(case, n=64), design(case, n=64), design(case, n=64, seed=1)
    assert a.equals(b)
    assert not np.allclose(a["thickness_nm"], c["thickness_nm"])


def test_sobol_not_power_of_two_warns():
    case = load_surrogate_case(NA2SO4)
    with pytest.warns(UserWarning, match="power of 2"):
        df = design(case, n=100)
    assert len(df) == 100


def test_unknown_design_method():
    with pytest.raises(InvalidInputError, match="'halton'"):
        design(load_surrogate_case(NA2SO4), n=8, method="halton")


def _edit(fn) -> dict:
    d = copy.deepcopy(_raw())
    fn(d)
    return d


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["inputs"][1].update(name="thickness_mm"), r"inputs\.1: unknown input name 'thickness_mm'"),
    (lambda d: d["inputs"][1].update(low=150, high=75), r"thickness_nm: low \(150\) must be < high \(75\)"),
    (lambda d: d["inputs"][3].update(low=0.0), r"c_SO4-2_mol_m3: log scale needs low > 0 \(got low = 0\)"),
    (lambda d: d["inputs"][3].update(name="c_Xy-3_mol_m3"), r"inputs\.3: 'c_Xy-3_mol_m3'.*Xy-3"),
    (lambda d: d["inputs"][3].update(name="c_SO4--_mol_m3"), r"canonical ion name 'c_SO4-2_mol_m3'"),
    (lambda d: d["inputs"][3].update(name="c_Na+_mol_m3"), r"'c_Na\+_mol_m3' is the balance_with ion"),
    (lambda d: d["inputs"].append({"name": "flux_L_m2_h", "low": 1, "high": 2}), r"'flux_L_m2_h' and 'flux_um_s'"),
    (lambda d: d["inputs"].append(dict(d["inputs"][0])), r"'charge_density_mol_m3' is declared twice"),
    (lambda d: d["inputs"][2].update(low=-1.0), r"flux_um_s: bounds \[-1, 50\]"),
    (lambda d: d["inputs"][2].update(offset=0.0), r"flux_um_s: log_offset scale needs offset > 0 \(got offset = 0\)"),
    (lambda d: d["inputs"][3].update(offset=1.0), r"c_SO4-2_mol_m3: offset \(1\) is only used with scale 'log_offset'"),
    (lambda d: d["outputs"][0].update(name="rejection_Cl-"), r"ion 'Cl-' is not in the feed"),
    (lambda d: d["outputs"][0].update(name="selectivity_SO4-2"), r"unknown output name 'selectivity_SO4-2'"),
    (lambda d: d["inputs"][0].update(scal="log"), r"inputs\.0\.scal: unknown key; did you mean 'scale'"),
    (lambda d: d["base"]["membrane"].update(pore_radius_nm=-1), r"base: membrane\.pore_radius_nm: must be > 0"),
    (lambda d: d["base"].pop("balance_with"), r"base\.balance_with: required"),
    (lambda d: d["design"].update(method="random"), r"design\.method: must be one of"),
])
def test_invalid_case_names_field_and_value(edit, message):
    with pytest.raises(InvalidInputError, match=message):
        surrogate_case_from_dict(_edit(edit), source="test.yaml")


def test_missing_file():
    with pytest.raises(InvalidInputError, match="not found"):
        load_surrogate_case(CASES / "nope.yaml")
