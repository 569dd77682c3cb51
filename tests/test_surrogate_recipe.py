"""The per-output training recipe (case `training:` section): validation, extra designs, training, warm start."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml
from nanosep.surrogates.domain import (
    design,
    extra_design_case,
    load_surrogate_case,
    surrogate_case_from_dict,
)
from surrogate_testdata import MIXTURE_CASE, write_analytic_dataset

from nanosep.errors import InvalidInputError

TINY = {"seed": 0, "validation_fraction": 0.15,
        "nets": [{"outputs": ["rejection_Cl-"], "hidden": [5, 5], "epochs": 60, "rounds": 1, "round_epochs": 15},
                 {"outputs": ["rejection_SO4-2"], "hidden": [3, 3], "epochs": 60}],
        "extra_designs": [{"name": "edge", "n": 64, "seed": 5, "bounds": {"c_Cl-_mol_m3": [0.01, 0.02]}}]}


def _case_dict(training=None):
    d = yaml.safe_load(MIXTURE_CASE.read_text())
    if training is not None:
        d["training"] = training
    return d


def test_shipped_mixture_case_declares_its_recipe():
    case = load_surrogate_case(MIXTURE_CASE)
    assert case.training is not None
    assert case.training.output_order == case.output_names
    assert [n.hidden for n in case.training.nets] == [[40, 40], [20, 20]]
    from nanosep.surrogates.onnx_io import load_shipped

    card = load_shipped(case.name).card                   # the shipped 5-60-60-2 net holds exactly these blocks
    assert card.architecture["hidden"] == [60, 60]
    assert [h["hidden"] for h in card.training.model_extra["recipe"]["history"]] == [[40, 40], [20, 20]]
    # and the shipped ONNX graph is block-diagonal: it splits into those nets and merges back exactly
    from nanosep.surrogates.merge import merge_mlps, split_mlp
    from nanosep.surrogates.onnx_io import shipped_card
    from nanosep.surrogates.training import warm_start_from_card

    big = warm_start_from_card(shipped_card(case.name)).model
    again = merge_mlps(split_mlp(big, [[40, 40], [20, 20]]))
    z = torch.as_tensor(np.random.default_rng(0).uniform(-1, 1, (200, 5)))
    with torch.no_grad():
        assert torch.equal(again(z), big(z))


def test_recipe_errors_name_the_problem():
    bad = dict(TINY, nets=list(reversed(TINY["nets"])))
    with pytest.raises(InvalidInputError, match="in the order of 'outputs'"):
        surrogate_case_from_dict(_case_dict(bad))
    bad = dict(TINY, extra_designs=[{"name": "x", "n": 8, "bounds": {"c_K+_mol_m3": [0.1, 1.0]}}])
    with pytest.raises(InvalidInputError, match="c_K\\+_mol_m3.*is not an input"):
        surrogate_case_from_dict(_case_dict(bad))
    bad = dict(TINY, extra_designs=[TINY["extra_designs"][0]] * 2)
    with pytest.raises(InvalidInputError, match="used twice"):
        surrogate_case_from_dict(_case_dict(bad))
    case = surrogate_case_from_dict(_case_dict(TINY))
    with pytest.raises(InvalidInputError, match="no training.extra_designs entry named 'nope'.*have: edge"):
        extra_design_case(case, "nope")


def test_extra_design_samples_only_its_sub_domain():
    case = surrogate_case_from_dict(_case_dict(TINY))
    sub = extra_design_case(case, "edge")
    assert sub.name == f"{case.name}_edge"
    df = design(sub)
    assert len(df) == 64
    c = df["c_Cl-_mol_m3"].to_numpy()
    assert c.min() >= 0.01 and c.max() <= 0.02 and c.max() > 0.015
    for v in case.inputs:           # every other input keeps the case's domain
        if v.name != "c_Cl-_mol_m3":
            x = df[v.name].to_numpy()
            assert x.min() >= v.low and x.max() <= v.high


def test_rejection_sensitivity_is_the_derivative_of_the_transform():
    from nanosep.surrogates.training import rejection_sensitivity

    u = np.array([-2.0, -0.5, 0.0, 0.7])
    R = 1 - 10 ** u
    h = 1e-6
    numeric = np.abs((1 - 10 ** (u + h)) - (1 - 10 ** (u - h))) / (2 * h)
    assert np.allclose(rejection_sensitivity(R, "log10_transmission"), numeric, rtol=1e-6)
    assert np.array_equal(rejection_sensitivity(R, "identity"), np.ones(4))


@pytest.fixture(scope="module")
def recipe_model(tmp_path_factory):
    from nanosep.surrogates.training import train_recipe_case

    root = tmp_path_factory.mktemp("recipe")
    case_path = root / "case.yaml"
    case_path.write_text(yaml.safe_dump(_case_dict(TINY), sort_keys=False))
    case = load_surrogate_case(case_path)
    write_analytic_dataset(root / "data", case, n=500, seed=3)
    write_analytic_dataset(root / "data_edge", extra_design_case(case, "edge"), n=100, seed=4, n_failed=2)
    torch.set_num_threads(1)
    result, card_path = train_recipe_case(case_path, root / "data", root / "model")
    return case, result, card_path


def test_recipe_trains_per_output_nets_and_merges_them(recipe_model):
    from nanosep.surrogates.card import ModelCard

    case, result, card_path = recipe_model
    card = ModelCard.load(card_path)
    assert card.architecture["hidden"] == [8, 8]                    # 5+3 per layer
    rec = card.training.model_extra["recipe"]
    assert [d["n"] for d in rec["datasets"]] == [493, 98]           # both datasets pooled, failed cases dropped
    for h in rec["history"]:                                        # the kept fit is the best on validation
        assert h["val_max"][h["chosen_fit"]] == min(h["val_max"])
    assert len(rec["history"][0]["val_max"]) == 2                   # first fit + 1 error-weighted round
    # a trained net beats the constant (mean) predictor by far on the held-out rows
    from nanosep.surrogates.dataset import load_xy

    Y = load_xy(card_path.parents[1] / "data", case.input_names, case.output_names).Y
    for j, (name, m) in enumerate(result.metrics_test.items()):
        trivial = float(np.mean(np.abs(Y[:, j] - Y[:, j].mean())))
        assert m["mae"] < 0.25 * trivial, (name, m, trivial)


def test_warm_start_without_epochs_reproduces_the_model(recipe_model, tmp_path):
    from nanosep.surrogates.onnx_io import export_model_dir, load_surrogate
    from nanosep.surrogates.training import train_recipe, warm_start_from_card

    case, result, card_path = recipe_model
    shipped = export_model_dir(card_path.parent, tmp_path / "export")
    warm = warm_start_from_card(shipped)
    frozen = case.training.model_copy(update={"warm_output_scaling": "keep",
                                              "nets": [n.model_copy(update={"epochs": 0, "rounds": 0})
                                                       for n in case.training.nets]})
    X = np.random.default_rng(0).random((300, 5))
    X = np.column_stack([-1000 + 990 * X[:, 0], 75 + 75 * X[:, 1], 0.5 * 100 ** X[:, 2],
                         0.01 * 5000 ** X[:, 3], 0.01 * 5000 ** X[:, 4]])
    Y = load_surrogate(shipped).predict(X)
    again = train_recipe(X, Y, case, warm=warm, recipe=frozen)
    z = torch.as_tensor((np.column_stack([X[:, :2], np.log10(X[:, 2:])]) - np.asarray(warm.card.input_scaling.offset))
                        / np.asarray(warm.card.input_scaling.factor))
    with torch.no_grad():
        assert float((again.model(z) - result.model(z)).abs().max()) <= 1e-12
    # a warm start whose scaling does not match the case domain is refused
    bad = warm.card.model_copy(update={"input_scaling": warm.card.input_scaling.model_copy(
        update={"factor": [f * 2 for f in warm.card.input_scaling.factor]})})
    with pytest.raises(InvalidInputError, match="input scaling"):
        train_recipe(X, Y, case, warm=type(warm)(warm.model, bad), recipe=frozen)
    assert math.isfinite(again.metrics_test["rejection_Cl-"]["mae"])
    # "refit": the output scaling comes from these data (not the warm start's) and each net's output layer
    # is re-targeted to it: closer to the data than the warm nets read through the new scaling
    from nanosep.surrogates.scaling import scale_outputs, unscale_outputs

    refit = train_recipe(X, Y, case, warm=warm, recipe=frozen.model_copy(update={"warm_output_scaling": "refit"}))
    assert not np.allclose(refit.output_scaling.offset, warm.card.output_scaling.offset, rtol=0, atol=1e-9)
    tf = [o.transform for o in case.outputs]
    with torch.no_grad():
        y_refit = unscale_outputs(refit.model(z).numpy(), refit.output_scaling, tf)
        y_plain = unscale_outputs(result.model(z).numpy(), refit.output_scaling, tf)
    T = scale_outputs(Y, refit.output_scaling, tf)
    assert np.abs(T).max() < 1.0
    for j in range(Y.shape[1]):
        assert np.abs(y_refit[:, j] - Y[:, j]).mean() < 0.5 * np.abs(y_plain[:, j] - Y[:, j]).mean(), j


def test_recipe_training_resumes_finished_nets(recipe_model, monkeypatch):
    """A rerun into the same folder loads the checkpointed nets instead of training them again."""
    from nanosep.surrogates import training
    from nanosep.surrogates.training import train_recipe_case

    _, result, card_path = recipe_model
    out = card_path.parent
    assert sorted(p.name for p in (out / "checkpoints").glob("net*.pt")) == ["net0.pt", "net1.pt"]

    def no_training(*a, **k):
        raise AssertionError("a finished net was trained again")

    monkeypatch.setattr(training, "train_output_net", no_training)
    root = out.parent
    again, _ = train_recipe_case(root / "case.yaml", root / "data", out)
    z = torch.as_tensor(np.random.default_rng(2).uniform(-1, 1, (50, 5)))
    with torch.no_grad():
        assert torch.equal(again.model(z), result.model(z))


def test_cli_recipe_errors_are_typed_and_named(tmp_path):
    from surrogate_testdata import NA2SO4_CASE
    from typer.testing import CliRunner

    from nanosep.cli import app

    runner = CliRunner()
    data = write_analytic_dataset(tmp_path / "d", load_surrogate_case(NA2SO4_CASE), n=40, n_failed=0)
    res = runner.invoke(app, ["train", str(NA2SO4_CASE), "--data", str(data), "--out", str(tmp_path / "m"),
                              "--kind", "recipe"])
    assert res.exit_code == 2 and "no 'training:' section" in res.output
    res = runner.invoke(app, ["train", str(NA2SO4_CASE), "--data", str(data), "--out", str(tmp_path / "m"),
                              "--extra-data", str(data)])
    assert res.exit_code == 2 and "--kind recipe only" in res.output
    res = runner.invoke(app, ["train", str(MIXTURE_CASE), "--data", str(tmp_path / "missing"), "--out",
                              str(tmp_path / "m"), "--kind", "recipe"])
    assert res.exit_code == 2 and "missing" in res.output
    res = runner.invoke(app, ["sample", str(MIXTURE_CASE), "--extra", "nope", "--out", str(tmp_path / "s")])
    assert res.exit_code == 2 and "nope" in res.output
