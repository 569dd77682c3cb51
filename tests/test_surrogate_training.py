"""Surrogate training pipeline: dataset reading, scaling, LM fit, CV, card (seed 002 sec. 2.2)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from nanosep.surrogates.card import ModelCard
from nanosep.surrogates.dataset import load_xy, read_dataset
from nanosep.surrogates.domain import load_surrogate_case
from nanosep.surrogates.mlp import build_mlp, shallow_mlp
from nanosep.surrogates.scaling import fit_input_scaling, scale_inputs, unscale_inputs
from nanosep.surrogates.training import (
    _mlp_jacobian,
    cross_validate_hidden,
    fit,
    load_model_dir,
    output_metrics,
    random_split,
    train_case,
)
from surrogate_testdata import (
    MIXTURE_CASE,
    NA2SO4_CASE,
    analytic_outputs,
    write_analytic_dataset,
)

from nanosep.errors import InvalidInputError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def case():
    return load_surrogate_case(NA2SO4_CASE)


@pytest.fixture(scope="module")
def data_dir(case, tmp_path_factory):
    return write_analytic_dataset(tmp_path_factory.mktemp("ds"), case, n=600, n_failed=7)


def test_dataset_drops_failed_cases_and_keeps_declared_order(case, data_dir, caplog):
    with caplog.at_level("WARNING"):
        xy = load_xy(data_dir, case.input_names, case.output_names)
    assert xy.n_failed_dropped == 7 and len(xy.X) == 593
    assert "dropping 7 of 600" in caplog.text
    design = pd.read_parquet(data_dir / "design.parquet").set_index("case_id")
    np.testing.assert_array_equal(xy.X, design.loc[xy.case_id, case.input_names].to_numpy())
    np.testing.assert_allclose(xy.Y, analytic_outputs(case, xy.X), rtol=0, atol=1e-15)


def test_dataset_refuses_incomplete_or_inconsistent_directories(case, data_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(data_dir, broken)
    (broken / "chunks" / "chunk-00001.parquet").unlink()
    with pytest.raises(InvalidInputError, match="2 chunk files but the manifest lists 3"):
        read_dataset(broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps({**manifest, "n_chunks": 2}))
    with pytest.raises(InvalidInputError, match="250 of 600 design cases have no result"):
        read_dataset(broken)
    with pytest.raises(InvalidInputError, match="no column"):
        load_xy(data_dir, ["pore_radius_nm"], case.output_names)


def test_input_scaling_maps_the_domain_onto_unit_box_and_inverts(case):
    lo, hi = [v.low for v in case.inputs], [v.high for v in case.inputs]
    scales = [v.transform for v in case.inputs]
    sc = fit_input_scaling(lo, hi, scales)
    z = scale_inputs(np.array([lo, hi]), sc, scales)
    np.testing.assert_allclose(z, [[-1] * 4, [1] * 4], atol=1e-14)
    x = np.array([[-250.0, 100.0, 12.5, 0.3]])
    np.testing.assert_allclose(unscale_inputs(scale_inputs(x, sc, scales), sc, scales), x, rtol=1e-14)
    # geometric mean of a log input maps to 0; so does sqrt(c (50 + c)) - c of the log_offset flux (c = 1e-6 um/s)
    c = case.inputs[2].offset
    z0 = scale_inputs(np.array([[-300, 112.5, np.sqrt(c * (50 + c)) - c, np.sqrt(0.01 * 50)]]), sc, scales)[0]
    np.testing.assert_allclose(z0, [0.0, 0.0, 0.0, 0.0], atol=1e-14)
    # a flux at or below -c has no log10(J + c): a typed error naming the value
    with pytest.raises(InvalidInputError, match="-0.02"):
        scale_inputs(np.array([[-300, 112.5, -0.02, 1.0]]), sc, scales)


def test_split_is_70_15_15_disjoint_and_seeded():
    s = random_split(1000, seed=4)
    assert (len(s.train), len(s.val), len(s.test)) == (700, 150, 150)
    assert len(np.union1d(np.union1d(s.train, s.val), s.test)) == 1000
    np.testing.assert_array_equal(random_split(1000, seed=4).test, s.test)
    assert not np.array_equal(random_split(1000, seed=5).test, s.test)


@pytest.mark.parametrize("hidden,out_act", [([7], "tanh"), ([4, 5], "identity")])
def test_analytic_jacobian_matches_autodiff(hidden, out_act):
    from torch.func import functional_call, jacfwd

    m = build_mlp(3, hidden, 2, output_activation=out_act, seed=0)
    X = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    names = [n for n, _ in m.named_parameters()]
    shapes = [p.shape for p in m.parameters()]
    sizes = [p.numel() for p in m.parameters()]
    p = torch.cat([q.detach().reshape(-1) for q in m.parameters()])

    def out(v):
        return functional_call(m, {n: t.reshape(s) for n, t, s in zip(names, torch.split(v, sizes), shapes)},
                               (X,)).reshape(-1)

    torch.testing.assert_close(_mlp_jacobian(m, X), jacfwd(out)(p), rtol=0, atol=1e-13)


def test_levenberg_marquardt_recovers_a_teacher_network():
    """Data from a 3-neuron tanh net: LM with 3 neurons must fit it to near machine precision."""
    teacher = shallow_mlp(2, 3, 1, seed=11)
    X = torch.rand(300, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        Y = teacher(X)
    best = min(fit(shallow_mlp(2, 3, 1, seed=s), X[:200], Y[:200], X[200:], Y[200:], "lm", max_epochs=400).val_mse
               for s in range(3))
    assert best < 1e-12
    lb = fit(shallow_mlp(2, 3, 1, seed=0), X[:200], Y[:200], X[200:], Y[200:], "lbfgs", max_epochs=50).val_mse
    assert lb < 1e-4


def test_cv_curve_has_the_bias_side_of_the_bathtub(case, data_dir):
    xy = load_xy(data_dir, case.input_names, case.output_names)
    z = scale_inputs(xy.X, fit_input_scaling([v.low for v in case.inputs], [v.high for v in case.inputs],
                                             [v.transform for v in case.inputs]), [v.transform for v in case.inputs])
    cv = cross_validate_hidden(z, xy.Y / 0.9, [1, 5], folds=3, seed=0, max_epochs=150)
    assert list(cv["hidden"]) == [1, 5]
    assert cv["cv_mse"].iloc[1] < 0.2 * cv["cv_mse"].iloc[0]


def test_output_metrics_by_hand():
    m = output_metrics(np.array([[0.0, 1.0], [1.0, 1.0]]), np.array([[0.1, 1.0], [0.7, 1.0]]), ["a", "b"])
    assert m["a"] == pytest.approx({"mae": 0.2, "max_abs": 0.3, "rmse": np.sqrt(0.05)})
    assert m["b"] == {"mae": 0.0, "max_abs": 0.0, "rmse": 0.0}


def test_train_case_writes_model_dir_and_card_round_trips(case, data_dir, tmp_path):
    out = tmp_path / "model"
    res, card_path = train_case(NA2SO4_CASE, data_dir, out, hidden=None, folds=3, restarts=1, cv_sizes=[2, 6],
                                seed=0, max_epochs=200)
    for f in ("model.pt", "cv_curve.csv", "cv_curve.png", "parity.png", "error_histogram.png", "metrics.csv"):
        assert (out / f).stat().st_size > 0, f
    card = ModelCard.load(card_path)
    assert card.kind == "shallow_mlp" and card.architecture["hidden"] == list(res.spec.hidden)
    assert card.data.n_failed_dropped == 7 and card.data.n_train + card.data.n_val + card.data.n_test == 593
    assert card.training.cv_hidden_sizes == [2, 6]
    # chosen size is the CV minimum's neighbourhood (n +- 3)
    n_cv = card.training.cv_hidden_sizes[int(np.argmin(card.training.cv_mse))]
    assert abs(res.spec.hidden[0] - n_cv) <= 3
    # accuracy on the smooth analytic target
    assert card.metrics["test"]["rejection_SO4-2"].mae < 3e-3
    metrics = pd.read_csv(out / "metrics.csv").set_index("output")
    assert metrics.loc["rejection_SO4-2", "max_abs"] == pytest.approx(card.metrics["test"]["rejection_SO4-2"].max_abs)
    # card round trip; the log_offset flux keeps its offset
    again = ModelCard.load(card.save(tmp_path / "copy.card.json"))
    assert again == card
    assert (again.inputs[2].scale, again.inputs[2].offset) == ("log_offset", 1e-6)   # the case file's offset
    # the saved state reproduces the model
    model, _, _ = load_model_dir(out)
    z = torch.zeros(1, 4, dtype=torch.float64)
    with torch.no_grad():
        assert float((model(z) - res.model(z)).abs().max()) == 0.0


def test_card_rejects_bad_content(tmp_path):
    p = tmp_path / "x.card.json"
    p.write_text("{not json")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        ModelCard.load(p)
    p.write_text(json.dumps({"name": "x", "kind": "shallow_mlp"}))
    with pytest.raises(InvalidInputError, match="inputs"):
        ModelCard.load(p)
    with pytest.raises(InvalidInputError, match="not found"):
        ModelCard.load(tmp_path / "missing.card.json")


def _card_dict(**update) -> dict:
    d = {"name": "x", "kind": "shallow_mlp",
         "inputs": [{"name": "flux_um_s", "low": 0.0, "high": 50.0, "scale": "log_offset", "offset": 0.1}],
         "outputs": [{"name": "rejection_SO4-2", "low": -1.0, "high": 1.0}],
         "input_scaling": {"offset": [0.0], "factor": [1.0]}, "output_scaling": {"offset": [0.0], "factor": [1.0]},
         "architecture": {"hidden": [3]}, "onnx": {"file": "x.onnx"}}
    return {**d, **update}


def test_card_kinds_and_optional_onnx_for_neural_ode(tmp_path):
    p = tmp_path / "x.card.json"
    for kind in ("shallow_mlp", "deep_mlp", "module_mlp"):
        p.write_text(json.dumps(_card_dict(kind=kind)))
        assert ModelCard.load(p).kind == kind
    p.write_text(json.dumps(_card_dict(kind="module_mlp", onnx=None)))
    with pytest.raises(InvalidInputError, match="'module_mlp' needs an 'onnx' section"):
        ModelCard.load(p)
    p.write_text(json.dumps(_card_dict(kind="neural_ode", onnx=None)))
    with pytest.raises(InvalidInputError, match="weights"):
        ModelCard.load(p)
    p.write_text(json.dumps(_card_dict(kind="neural_ode", onnx=None, description="seed 001",
                                       weights={"file": "x.pt", "sha256": "ab", "format": "torch state_dict"},
                                       data={"split": "random20", "n_train_rows": 114})))
    card = ModelCard.load(p)
    assert card.onnx is None and card.weights.file == "x.pt" and card.data.model_extra["split"] == "random20"
    from nanosep.surrogates.onnx_io import SurrogateFileError, load_surrogate
    with pytest.raises(SurrogateFileError, match="no ONNX file"):
        load_surrogate(p)
    # a log_offset input with low at or below -offset, or an offset on a log input, is refused
    p.write_text(json.dumps(_card_dict(inputs=[{"name": "flux_um_s", "low": -0.2, "high": 50.0,
                                                "scale": "log_offset", "offset": 0.1}])))
    with pytest.raises(InvalidInputError, match="low > -0.1"):
        ModelCard.load(p)
    p.write_text(json.dumps(_card_dict(inputs=[{"name": "c", "low": 1.0, "high": 5.0, "scale": "log", "offset": 1.0}])))
    with pytest.raises(InvalidInputError, match="only meaningful"):
        ModelCard.load(p)


def test_mixture_case_has_two_outputs_in_declared_order(tmp_path):
    mix = load_surrogate_case(MIXTURE_CASE)
    xy = load_xy(write_analytic_dataset(tmp_path / "mix", mix, n=64, n_failed=0, chunk_size=32), mix.input_names,
                 mix.output_names)
    assert xy.Y.shape == (64, len(mix.outputs)) and xy.output_names == tuple(mix.output_names)


def test_log10_transmission_output_round_trip_and_poles():
    from nanosep.surrogates.scaling import fit_output_scaling, output_forward, scale_outputs, unscale_outputs

    R = np.array([[-8.0, 0.5], [0.0, -0.3], [0.99, 0.999999]])
    tf = ["log10_transmission", "identity"]
    u = output_forward(R, tf)
    np.testing.assert_allclose(u[:, 0], np.log10([9.0, 1.0, 0.01]), rtol=1e-14)
    np.testing.assert_array_equal(u[:, 1], R[:, 1])
    sc = fit_output_scaling(u)
    np.testing.assert_allclose(unscale_outputs(scale_outputs(R, sc, tf), sc, tf), R, rtol=0, atol=1e-13)
    with pytest.raises(InvalidInputError, match="rejection 1.0 >= 1"):
        output_forward(np.array([[1.0, 0.0]]), tf)
    with pytest.raises(InvalidInputError, match="output transforms"):
        output_forward(R, ["log10_transmission"])
