"""One network, five evaluators: torch, onnxruntime, OMLT full space, OMLT reduced space, CasADi."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from nanosep.surrogates.casadi_fn import casadi_function
from nanosep.surrogates.embedding import (
    add_surrogate,
    input_bounds,
    network_definition,
    omlt_network_from_onnx,
)
from nanosep.surrogates.onnx_io import (
    dense_layers,
    load_surrogate,
    random_domain_points,
    torch_predict,
)
from nanosep.surrogates.training import load_model_dir


def _solve_square(surrogate, formulation: str, X: np.ndarray) -> np.ndarray:
    """Fix the physical inputs and solve the square system with Ipopt; return the physical outputs."""
    import pyomo.environ as pyo
    from nanosep.surrogates.embedding import initialize_from_inputs

    from nanosep.solvers import ipopt_solver

    m = pyo.ConcreteModel()
    add_surrogate(m, surrogate, formulation)
    m.obj = pyo.Objective(expr=0.0)
    solver = ipopt_solver({"tol": 1e-12, "print_level": 0})
    out = []
    for x in X:
        for name, v in zip(surrogate.card.input_names, x):
            m.inputs[name].fix(float(v))
        initialize_from_inputs(m, surrogate)
        for k in m.outputs:  # start away from the answer so the solve does the work
            m.outputs[k].set_value(0.0)
        res = solver.solve(m)
        assert pyo.check_optimal_termination(res), res.solver.termination_condition
        out.append([pyo.value(m.outputs[n]) for n in surrogate.card.output_names])
    return np.array(out)


def _with_output_transform(card_path: Path, tmp_path: Path, transform: str) -> Path:
    """A copy of the exported model whose first output (rejection_Cl-) has the given transform:
    ``identity`` (the network's u is R) or ``log10_transmission`` (u = log10(1 - R), R = 1 - 10**u)."""
    import shutil

    from nanosep.surrogates.card import ModelCard

    card = ModelCard.load(card_path)
    outs = [card.outputs[0].model_copy(update={"transform": transform}), *card.outputs[1:]]
    d = tmp_path / transform
    d.mkdir()
    shutil.copy(card_path.parent / card.onnx.file, d / card.onnx.file)
    return card.model_copy(update={"outputs": outs}).save(d / card_path.name)


@pytest.mark.parametrize("output_transform", ["identity", "log10_transmission"])
def test_five_evaluators_agree_to_1e6(card_path, tmp_path, output_transform):
    """The mixture case has a log_offset input (flux_um_s, offset 0.01 um/s), so every evaluator
    applies log10(J + c); the second variant adds a log10_transmission output."""
    sur = load_surrogate(_with_output_transform(card_path, tmp_path, output_transform))
    assert [v.scale for v in sur.card.inputs].count("log_offset") == 1
    assert sur.card.outputs[0].transform == output_transform
    model, _, _ = load_model_dir(card_path.parent.parent / "model")
    X = random_domain_points(sur.card, 8, seed=11)
    X[0, sur.card.input_names.index("flux_um_s")] = 0.0  # the log_offset input at its lower bound 0
    y_torch = torch_predict(model, sur.card, X)
    if output_transform != "identity":  # R = 1 - 10**u with u the identity card's first output
        u = torch_predict(model, load_surrogate(_with_output_transform(card_path, tmp_path, "identity")).card, X)[:, 0]
        np.testing.assert_allclose(y_torch[:, 0], 1.0 - 10.0 ** u, rtol=0, atol=1e-14)
    y_ort = sur.predict(X)
    f = casadi_function(sur)
    y_casadi = np.array([np.asarray(f(x)).ravel() for x in X])
    y_full = _solve_square(sur, "full", X)
    y_reduced = _solve_square(sur, "reduced", X)
    for name, y in (("onnxruntime", y_ort), ("casadi", y_casadi), ("omlt full", y_full), ("omlt reduced", y_reduced)):
        np.testing.assert_allclose(y, y_torch, rtol=0, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(y_ort, y_torch, rtol=0, atol=1e-12)
    np.testing.assert_allclose(y_casadi, y_torch, rtol=0, atol=1e-12)
    assert np.ptp(y_torch, axis=0).min() > 1e-3  # the points are not all the same answer


def test_omlt_definition_keeps_float64_weights(card_path):
    """Our network definition carries the file's float64 weights bit for bit; a float32 copy would not."""
    sur = load_surrogate(card_path)
    ours = [L for L in network_definition(sur).layers if type(L).__name__ == "DenseLayer"]
    ref = dense_layers(sur.model)
    for L, R in zip(ours, ref):
        assert L.weights.dtype == np.float64
        np.testing.assert_array_equal(L.weights, R.W)
        np.testing.assert_array_equal(L.biases, R.b)
    omlt_own = [L for L in omlt_network_from_onnx(sur).layers if type(L).__name__ == "DenseLayer"]
    for L, R in zip(omlt_own, ref):
        np.testing.assert_array_equal(np.asarray(L.weights, dtype=np.float64), R.W)
    # what float32 weights would cost, in physical outputs, against onnxruntime
    X = random_domain_points(sur.card, 200, seed=2)
    from nanosep.surrogates.onnx_io import forward_numpy
    from nanosep.surrogates.scaling import scale_inputs, unscale_outputs

    z = scale_inputs(X, sur.card.input_scaling, sur.card.input_scales)
    f32 = [type(R)(R.W.astype(np.float32).astype(np.float64), R.b.astype(np.float32).astype(np.float64), R.activation)
           for R in ref]
    y64 = unscale_outputs(forward_numpy(ref, z), sur.card.output_scaling, sur.card.output_transforms)
    y32 = unscale_outputs(forward_numpy(f32, z), sur.card.output_scaling, sur.card.output_transforms)
    assert np.abs(y64 - sur.predict(X)).max() < 1e-12
    assert np.abs(y32 - sur.predict(X)).max() > 1e-9


def test_pyomo_bounds_are_the_domain_and_widening_warns(card_path):
    import pyomo.environ as pyo

    sur = load_surrogate(card_path)
    m = pyo.ConcreteModel()
    add_surrogate(m, sur, "reduced")
    for v in sur.card.inputs:
        assert m.inputs[v.name].bounds == (v.low, v.high)
    for v in sur.card.outputs:
        assert m.outputs[v.name].bounds == (v.low, v.high)
    with pytest.warns(UserWarning, match="extrapolates"):
        wide = input_bounds(sur, widen=0.1)
    j = sur.card.input_names.index("thickness_nm")
    v = sur.card.inputs[j]
    assert wide[j] == pytest.approx((v.low - 0.1 * (v.high - v.low), v.high + 0.1 * (v.high - v.low)))
