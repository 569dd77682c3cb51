"""The ``log_neg`` input scale (t = log10(-x), x < 0) for the membrane charge density.

Checked against independent references: the closed-form transform and its inverse, Sobol balance
in log10(-x), the affine map's exact ends, and three evaluators of one small network (numpy/ONNX,
Pyomo explicit expressions, CasADi) that share only the card, to 1e-12.
"""
from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from nanosep.errors import InvalidInputError
from nanosep.surrogates.domain import design, surrogate_case_from_dict
from nanosep.surrogates.scaling import InputScale, fit_input_scaling, scale_inputs, transform_inputs
from surrogate_testdata import MIXTURE_CASE, trained_export

CHARGE = "charge_density_mol_m3"


def _log_neg_case_dict() -> dict:
    """The mixture case file with the charge density (-1000..-10 mol/m3) on the log_neg scale."""
    d = yaml.safe_load(MIXTURE_CASE.read_text())
    d["inputs"] = [{**v, "scale": "log_neg"} if v["name"] == CHARGE else v for v in d["inputs"]]
    return d


@pytest.fixture(scope="module")
def log_neg_card(tmp_path_factory) -> Path:
    """A 4-neuron net trained on analytic data of the log_neg mixture case, exported (ONNX + card)."""
    base = tmp_path_factory.mktemp("log_neg")
    case_path = base / "case" / MIXTURE_CASE.name
    case_path.parent.mkdir()
    case_path.write_text(yaml.safe_dump(_log_neg_case_dict(), sort_keys=False))
    return trained_export(base, case_path, hidden=4)


def test_round_trip_and_closed_form():
    sc = InputScale("log_neg")
    x = np.array([-1000.0, -317.0, -10.0, -1e-6, -3.5e4])
    np.testing.assert_array_equal(sc.forward(x), np.log10(-x))
    np.testing.assert_allclose(sc.inverse(sc.forward(x)), x, rtol=1e-14, atol=0)
    assert sc.forward(-100.0) == 2.0 and sc.inverse(1.0) == -10.0
    assert (sc.is_log, sc.increasing, sc.smallest(), sc.largest()) == (True, False, -math.inf, 0.0)
    np.testing.assert_array_equal(sc.admissible([-5.0, 0.0, 2.0]), [True, False, False])
    with pytest.raises(InvalidInputError, match="only meaningful with scale 'log_offset'"):
        InputScale("log_neg", 0.5)


def test_affine_map_sends_the_ends_to_minus_one_and_one():
    """t decreases with x: the sorted ends give a positive factor, z(-10) = -1, z(-1000) = +1, and the
    geometric mid-point -100 mol/m3 maps to 0 (a linear scale would put -505 there)."""
    sc = fit_input_scaling([-1000.0, 75.0], [-10.0, 150.0], ["log_neg", "linear"])
    assert sc.offset == pytest.approx([2.0, 112.5], abs=1e-15) and sc.factor == pytest.approx([1.0, 37.5], abs=1e-15)
    z = scale_inputs(np.array([[-10.0, 75.0], [-1000.0, 150.0], [-100.0, 112.5]]), sc, ["log_neg", "linear"])
    np.testing.assert_allclose(z, [[-1, -1], [1, 1], [0, 0]], rtol=0, atol=1e-15)
    with pytest.raises(InvalidInputError, match="high -1000.0 must exceed low -10.0"):
        fit_input_scaling([-10.0], [-1000.0], ["log_neg"])


@pytest.mark.parametrize("value", [0.0, 2.5])
def test_values_at_or_above_zero_are_refused_by_name(value):
    with pytest.raises(InvalidInputError, match=rf"log_neg-scale input column 1 has value {value!r} >= 0"):
        transform_inputs(np.array([[1.0, -20.0], [1.0, value]]), ["linear", "log_neg"])


@pytest.mark.parametrize("low, high, message", [
    (-1000.0, 0.0, r"charge_density_mol_m3: log_neg scale needs high < 0 \(got high = 0\)"),
    (-1000.0, 25.0, r"charge_density_mol_m3: log_neg scale needs high < 0 \(got high = 25\)"),
    (5.0, 25.0, r"charge_density_mol_m3: log_neg scale needs high < 0 \(got high = 25\)"),
])
def test_case_with_log_neg_domain_touching_zero_is_refused(low, high, message):
    d = _log_neg_case_dict()
    d["inputs"] = [{**v, "low": low, "high": high} if v["name"] == CHARGE else v for v in d["inputs"]]
    with pytest.raises(InvalidInputError, match=message):
        surrogate_case_from_dict(d, source="test.yaml")


def test_card_with_log_neg_domain_touching_zero_is_refused(log_neg_card, tmp_path):
    import json

    from nanosep.surrogates.card import ModelCard

    d = json.loads(log_neg_card.read_text())
    assert d["inputs"][0]["scale"] == "log_neg"
    bad = copy.deepcopy(d)
    bad["inputs"][0]["high"] = 0.0
    p = tmp_path / "bad.card.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(InvalidInputError, match=r"log_neg scale needs high < 0 \(got high = 0\)"):
        ModelCard.load(p)


def test_design_is_uniform_in_log10_of_minus_x():
    """1024 Sobol points: each of 16 equal bins of log10(-X) over [1, 3] holds exactly 64 (Sobol
    balance); half the points are weaker than the geometric mid-point -100 mol/m3 (linear: 9 %)."""
    case = surrogate_case_from_dict(_log_neg_case_dict(), source="test.yaml")
    n = 1024
    X = design(case, n=n)[CHARGE].to_numpy()
    assert X.min() >= -1000.0 and X.max() <= -10.0
    t = np.log10(-X)
    counts = np.bincount(np.minimum(((t - 1.0) / 2.0 * 16).astype(int), 15), minlength=16)
    assert (counts == n // 16).all(), counts
    assert (X > -100.0).sum() == n // 2
    assert X.max() > -10.0 * 10 ** (2.0 / n) and X.min() < -1000.0 * 10 ** (-2.0 / n)


def test_numpy_pyomo_casadi_agree_to_1e12(log_neg_card):
    """One net with a log_neg charge input: onnxruntime (numpy scaling), Pyomo explicit expressions
    of fixed variables (log10(-x) built with pyo.log10) and a CasADi function agree to 1e-12."""
    import pyomo.environ as pyo

    from nanosep.surrogates.casadi_fn import casadi_function
    from nanosep.surrogates.explicit import surrogate_expressions
    from nanosep.surrogates.onnx_io import forward_numpy, load_surrogate, random_domain_points
    from nanosep.surrogates.scaling import unscale_outputs

    sur = load_surrogate(log_neg_card)
    card = sur.card
    assert card.inputs[0].name == CHARGE and card.inputs[0].scale == "log_neg"
    X = random_domain_points(card, 12, seed=5)
    X[0, 0], X[1, 0] = -10.0, -1000.0  # both ends of the domain
    z = scale_inputs(X, card.input_scaling, card.input_scales)
    assert z[0, 0] == pytest.approx(-1.0, abs=1e-14) and z[1, 0] == pytest.approx(1.0, abs=1e-14)
    y_numpy = unscale_outputs(forward_numpy(sur.layers(), z), card.output_scaling, card.output_transforms)
    y_ort = sur.predict(X)
    f = casadi_function(sur)
    y_casadi = np.array([np.asarray(f(x)).ravel() for x in X])
    m = pyo.ConcreteModel()
    m.x = pyo.Var(card.input_names)
    expr = surrogate_expressions(sur, {n: m.x[n] for n in card.input_names})
    y_pyomo = []
    for x in X:
        for n, v in zip(card.input_names, x):
            m.x[n].fix(float(v))
        y_pyomo.append([pyo.value(expr[o]) for o in card.output_names])
    for name, y in (("onnxruntime", y_ort), ("casadi", y_casadi), ("pyomo", np.array(y_pyomo))):
        np.testing.assert_allclose(y, y_numpy, rtol=0, atol=1e-12, err_msg=name)
    assert np.ptp(y_numpy, axis=0).min() > 1e-3  # the points are not all the same answer


def test_omlt_bounds_and_full_space_solve(log_neg_card):
    """The OMLT block's scaled input bounds of the log_neg input are [-1, 1]; widening keeps the bound
    negative; a full-space Ipopt solve with fixed inputs reproduces onnxruntime."""
    import pyomo.environ as pyo

    from nanosep.solvers import ipopt_solver
    from nanosep.surrogates.embedding import add_surrogate, initialize_from_inputs, input_bounds, scaled_input_bounds
    from nanosep.surrogates.onnx_io import load_surrogate, random_domain_points

    sur = load_surrogate(log_neg_card)
    lo, hi = scaled_input_bounds(sur, input_bounds(sur))[0]
    assert (lo, hi) == (pytest.approx(-1.0, abs=1e-14), pytest.approx(1.0, abs=1e-14))
    with pytest.warns(UserWarning, match="widened"):
        wlo, whi = input_bounds(sur, widen=0.5)[0]
    assert (wlo, whi) == (pytest.approx(-10.0 ** 4), pytest.approx(-1.0))  # t widened to [0, 4]: still < 0
    m = pyo.ConcreteModel()
    add_surrogate(m, sur, "full")
    m.obj = pyo.Objective(expr=0.0)
    X = random_domain_points(sur.card, 3, seed=9)
    y = []
    for x in X:
        for n, v in zip(sur.card.input_names, x):
            m.inputs[n].fix(float(v))
        initialize_from_inputs(m, sur)
        for k in m.outputs:
            m.outputs[k].set_value(0.0)
        assert pyo.check_optimal_termination(ipopt_solver({"tol": 1e-12, "print_level": 0}).solve(m))
        y.append([pyo.value(m.outputs[o]) for o in sur.card.output_names])
    np.testing.assert_allclose(np.array(y), sur.predict(X), rtol=0, atol=1e-6)
