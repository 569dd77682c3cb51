"""K-element module chain (surrogates/module.py): seed 002 eq. 1, balances, limits, refinement, data."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from nanosep.surrogates.module import (
    EngineElement,
    PredictorElement,
    constant_rejection_limit,
    generate_module_dataset,
    module_surrogate_case,
    refine_elements,
    run_module,
)
from nanosep.transport import TransportOptions, solve_batch
from scipy.integrate import solve_ivp

from nanosep.errors import InvalidInputError

ROOT = Path(__file__).resolve().parents[1]
IONS = ("Na+", "SO4-2")
Z = np.array([1.0, -2.0])
MEMBRANE = {"pore_radius_m": 1.2e-9, "thickness_m": 100e-9, "pore_dielectric": 78.3,
            "charge_density_mol_m3": -150.0, "flux_m_s": 10e-6, "temperature_K": 298.15}


def r_of_c(c):
    """A rejection falling with the feed concentration, like a charged NF membrane (-)."""
    return 0.95 / (1.0 + np.asarray(c) / 8.0)


def salt_element(rejection=r_of_c) -> PredictorElement:
    """Na2SO4 element from a callable of the SO4-2 inlet concentration; Na+ by electroneutrality."""
    return PredictorElement(lambda x: rejection(x[:, 0])[:, None], ("c_SO4-2_mol_m3",), ("rejection_SO4-2",),
                            IONS, Z, balance_with="Na+")


def salt_feed(c_so4) -> np.ndarray:
    c = np.atleast_1d(np.asarray(c_so4, dtype=float))
    return np.stack([2 * c, c], axis=1)


def test_chain_is_seed002_eq1_for_one_salt():
    """c_in(k) = c_in(k-1) (1 + gamma R(k-1) / (K - (k-1) gamma)), c_in(1) = feed (seed 002 eq. 1)."""
    K, gamma, c0 = 7, 0.8, np.array([2.0, 10.0])
    res = run_module(salt_element(), {}, salt_feed(c0), gamma, K, keep_profiles=True)
    c_in = [c0]
    for k in range(2, K + 2):                       # c_in(K+1) is the module retentate
        prev = c_in[-1]
        c_in.append(prev * (1.0 + gamma * r_of_c(prev) / (K - (k - 1) * gamma)))
    eq1 = np.stack(c_in[:K], axis=1)                # (B, K)
    np.testing.assert_allclose(res.c_inlet[:, :, 1], eq1, rtol=1e-13)
    np.testing.assert_allclose(res.c_inlet[:, :, 0], 2 * eq1, rtol=1e-13)   # Na+ follows (one salt)
    np.testing.assert_allclose(res.c_retentate[:, 1], c_in[K], rtol=1e-13)
    # module permeate = mean of the element permeates (1 - R) c_in
    np.testing.assert_allclose(res.c_permeate[:, 1], np.mean((1 - r_of_c(eq1)) * eq1, axis=1), rtol=1e-13)


def test_engine_module_balances_and_electroneutral_permeates():
    """Multi-ion module with the exact engine: feed = permeate + retentate per ion (1e-12) and
    electroneutral element permeates."""
    ions = ("Na+", "Cl-", "SO4-2")
    z = np.array([1.0, -1.0, -2.0])
    el = EngineElement(ions, z, MEMBRANE, TransportOptions())
    c_feed = np.array([[30.0, 10.0, 10.0], [12.0, 2.0, 5.0], [60.0, 50.0, 5.0]])
    gamma = np.array([0.3, 0.7, 0.9])
    res = run_module(el, {"charge_density_mol_m3": np.array([-100.0, -200.0, -120.0])}, c_feed, gamma, 5,
                     keep_profiles=True)
    assert res.converged.all(), res.reason
    closure = gamma[:, None] * res.c_permeate + (1 - gamma[:, None]) * res.c_retentate
    np.testing.assert_allclose(closure, c_feed, rtol=1e-12, atol=0)
    assert res.balance_residual.max() < 1e-12
    cp = res.c_permeate_elements
    assert (np.abs(cp @ z) <= 1e-6 * (cp @ np.abs(z))).all()
    assert (np.abs(res.c_retentate @ z) <= 1e-9 * (res.c_retentate @ np.abs(z))).all()
    # the divalent anion is retained more and accumulates along the channel
    assert (np.diff(res.c_inlet[:, :, 2], axis=1) > 0).all()


def test_non_electroneutral_permeate_is_flagged():
    """A predictor giving Na+ and SO4-2 different rejections breaks electroneutrality: the case fails."""
    el = PredictorElement(lambda x: np.column_stack([np.full(len(x), 0.5), np.full(len(x), 0.9)]),
                          ("c_SO4-2_mol_m3",), ("rejection_Na+", "rejection_SO4-2"), IONS, Z)
    res = run_module(el, {}, salt_feed([5.0]), 0.5, 3)
    assert not res.converged[0] and "electroneutral" in res.reason[0]
    assert np.isnan(res.c_permeate).all()


def test_one_element_equals_a_single_engine_solve():
    c_feed = salt_feed([2.0, 5.0, 20.0])
    el = EngineElement(IONS, Z, MEMBRANE, TransportOptions())
    res = run_module(el, {"flux_um_s": np.array([5.0, 10.0, 30.0])}, c_feed, 0.6, 1)
    ref = solve_batch(IONS, c_feed, **{**MEMBRANE, "flux_m_s": np.array([5e-6, 1e-5, 3e-5])})
    np.testing.assert_allclose(res.c_permeate, ref.c_perm, rtol=1e-12)
    np.testing.assert_allclose(res.rejection, ref.rejection, rtol=1e-12)
    np.testing.assert_allclose(res.iterations, ref.iterations)


@pytest.mark.parametrize("R", [0.0, 0.4, 0.9])
def test_constant_rejection_converges_to_closed_form_at_first_order(R):
    """For constant R the K -> inf module is c_perm = c_f (1 - (1-gamma)^(1-R)) / gamma; the chain's
    error falls monotonically as O(1/K)."""
    gamma = np.array([0.2, 0.6, 0.9])
    c_lim, r_lim = constant_rejection_limit(10.0, R, gamma)
    el = salt_element(lambda c: np.full_like(c, R))
    errs = []
    for K in (16, 32, 64, 128, 256):
        res = run_module(el, {}, salt_feed([10.0]), gamma, K)
        errs.append(res.c_permeate[:, 1] - c_lim)
        prod = np.prod([1 + gamma * R / (K - k * gamma) for k in range(1, K + 1)], axis=0)
        np.testing.assert_allclose(res.c_retentate[:, 1], 10.0 * prod, rtol=1e-12)   # discrete product form
    errs = np.array(errs)
    if R == 0.0:
        np.testing.assert_allclose(errs, 0.0, atol=1e-12)                 # no rejection, no profile
        return
    assert (errs < 0).all()                                                # K finite underestimates the permeate
    ratio = errs[:-1] / errs[1:]
    assert np.all((ratio > 1.9) & (ratio < 2.1)), ratio                   # halves per doubling: O(1/K)
    np.testing.assert_allclose(r_lim, 10.0 * (1 - gamma) ** (-R))


def test_refinement_approaches_the_ode_limit_monotonically():
    """Concentration-dependent R: doubling K approaches the continuous balance F dc/dF = -R(c) c
    (solved independently with solve_ivp) monotonically, and stops at the first K within rtol."""
    gamma, c0 = np.array([0.5, 0.9]), np.array([2.0, 10.0])
    ref = refine_elements(salt_element(), {}, salt_feed(c0), gamma, rtol=2e-3, k_max=4096)
    assert ref.converged
    perms = np.array([p[:, 1] for p in ref.c_permeate])
    assert (np.diff(perms, axis=0) > 0).all()                             # K = 1 underestimates, monotone
    limit = []
    for g, c in zip(gamma, c0):
        sol = solve_ivp(lambda f, y: -r_of_c(y) * y / f, (1.0, 1.0 - g), [c], rtol=1e-12, atol=1e-14)
        limit.append((c - (1 - g) * sol.y[0, -1]) / g)
    limit = np.array(limit)
    for b in range(2):
        lev = ref.n_elements.index(ref.k_converged[b])
        assert ref.change[lev][b] < 2e-3 <= ref.change[lev - 1][b] or lev == 1
        err = abs(perms[lev, b] - limit[b]) / limit[b]
        assert err < 2 * 2e-3                                              # change estimates the error
    assert abs(perms[-1, 1] - limit[1]) / limit[1] < 2e-3


@pytest.mark.parametrize("gamma", [0.0, 1.0, -0.2, 1.5, float("nan")])
def test_gamma_outside_open_unit_interval_is_rejected(gamma):
    with pytest.raises(InvalidInputError, match="gamma"):
        run_module(salt_element(), {}, salt_feed([5.0]), gamma, 4)


@pytest.mark.parametrize("K", [0, -3, 2.5, True])
def test_bad_element_count_is_rejected(K):
    with pytest.raises(InvalidInputError, match="n_elements"):
        run_module(salt_element(), {}, salt_feed([5.0]), 0.5, K)


def test_negative_feed_is_rejected():
    with pytest.raises(InvalidInputError, match="negative"):
        run_module(salt_element(), {}, np.array([[-1.0, 0.5]]), 0.5, 4)


def test_gamma_near_one_is_finite_but_retentate_grows():
    """gamma -> 1: the permeate stays finite (-> feed) while the retentate blows up like (1-gamma)^-R."""
    el = salt_element(lambda c: np.full_like(c, 0.8))
    res = run_module(el, {}, salt_feed([10.0]), 0.999, 4096)
    c_lim, _ = constant_rejection_limit(10.0, 0.8, 0.999)
    assert np.isfinite(res.c_permeate).all() and res.c_retentate[0, 1] > 100.0
    assert abs(res.c_permeate[0, 1] - c_lim) / c_lim < 0.02


def test_module_dataset_layout_and_resume(tmp_path):
    from nanosep.surrogates.dataset import read_dataset
    from nanosep.surrogates.domain import load_surrogate_case

    ecase = load_surrogate_case(ROOT / "cases" / "surrogates" / "seed002_na2so4_element.yaml")
    case = module_surrogate_case(ecase, n=16)
    assert case.input_names[-1] == "gamma"
    el = salt_element()
    out = generate_module_dataset(case, tmp_path / "ds", 8, element=el, chunk_size=5)
    df = read_dataset(out)
    assert len(df) == 16 and df["converged"].all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_chunks"] == 4 and manifest["module"]["n_elements"] == 8
    # outputs are those of an independent run of the chain
    c = df["c_SO4-2_mol_m3"].to_numpy()
    res = run_module(el, {}, salt_feed(c), df["gamma"].to_numpy(), 8)
    np.testing.assert_allclose(df["permeate_SO4-2_mol_m3"], res.c_permeate[:, 1], rtol=1e-13)
    np.testing.assert_allclose(df["rejection_SO4-2"], 1 - res.c_permeate[:, 1] / c, rtol=1e-13)
    np.testing.assert_allclose(df["rejection_Na+"], df["rejection_SO4-2"], rtol=1e-12)
    # resume: a lost chunk is recomputed, the others are kept
    (out / "chunks" / "chunk-00002.parquet").unlink()
    kept = (out / "chunks" / "chunk-00000.parquet").stat().st_mtime_ns
    generate_module_dataset(case, out, 8, element=el, chunk_size=5)
    assert (out / "chunks" / "chunk-00000.parquet").stat().st_mtime_ns == kept
    assert read_dataset(out).equals(df)
    with pytest.raises(InvalidInputError, match="different module dataset"):
        generate_module_dataset(case, out, 16, element=el, chunk_size=5)


def test_onnx_surrogate_element_agrees_with_numpy_forward(card_path):
    """The adapter on a real ONNX surrogate (onnxruntime; the NaCl + Na2SO4 test network shared with
    the ONNX tests) gives the same module as the same network evaluated with numpy; Na+ closes
    every element permeate's electroneutrality."""
    from nanosep.surrogates.onnx_io import forward_numpy, load_surrogate
    from nanosep.surrogates.scaling import scale_inputs, unscale_outputs

    sur = load_surrogate(card_path)
    assert sur.card.input_names[-2:] == ["c_Cl-_mol_m3", "c_SO4-2_mol_m3"]
    ions, z = ("Na+", "Cl-", "SO4-2"), np.array([1.0, -1.0, -2.0])
    onnx_el = PredictorElement.from_surrogate(sur, ions, z, balance_with="Na+")
    layers, card = sur.layers(), sur.card

    def numpy_predict(x):
        return unscale_outputs(forward_numpy(layers, scale_inputs(x, card.input_scaling, card.input_scales)),
                               card.output_scaling, card.output_transforms)

    np_el = PredictorElement.from_card(card.model_dump(), numpy_predict, ions, z, balance_with="Na+")
    params = {"charge_density_mol_m3": np.array([-300.0, -150.0]), "thickness_nm": 100.0,
              "flux_um_s": np.array([10.0, 30.0])}
    c_feed = np.array([[3.0, 1.0, 1.0], [12.0, 2.0, 5.0]])
    a = run_module(onnx_el, params, c_feed, np.array([0.5, 0.8]), 8, keep_profiles=True)
    b = run_module(np_el, params, c_feed, np.array([0.5, 0.8]), 8)
    assert a.converged.all() and b.converged.all()
    np.testing.assert_allclose(a.c_permeate, b.c_permeate, rtol=1e-10)
    cp = a.c_permeate_elements
    np.testing.assert_allclose(cp @ z, 0.0, atol=1e-12 * cp.max())
    assert a.c_inlet.max() < 50.0                                   # stayed inside the card's domain


def test_small_shipped_module_surrogate_matches_its_onnx_and_the_engine_chain():
    """The compact module model ``seed002_na2so4_module_small`` (fast global solves): its card fits its
    ONNX graph (sha256, names, sizes on load; the card's hidden sizes are the graph's layer widths;
    onnxruntime = numpy forward through the card's scalings), it covers the same domain as the 20-20
    module model, and on fresh Sobol points (a seed training never used) it agrees with the exact-engine
    chain at K = 256 (the data's K) within the card's test max error (+ 0.005) in module SO4-2
    rejection, with a mean error within twice the card's test MAE."""
    from nanosep.surrogates.domain import design, load_surrogate_case, surrogate_case_from_dict
    from nanosep.surrogates.module import module_feeds
    from nanosep.surrogates.onnx_io import forward_numpy, load_shipped
    from nanosep.surrogates.scaling import scale_inputs, unscale_outputs

    small, big = load_shipped("seed002_na2so4_module_small"), load_shipped("seed002_na2so4_module")
    card = small.card
    layers = small.layers()
    assert [L.W.shape[1] for L in layers[:-1]] == list(card.architecture["hidden"])
    assert sum(L.W.size for L in layers) < sum(L.W.size for L in big.layers()) / 3
    assert card.kind == "module_mlp" and card.inputs == big.card.inputs and card.outputs == big.card.outputs
    assert card.data.manifest_hash == big.card.data.manifest_hash

    # the module case of the shipped data: element case (engine base) with the card's inputs (bounds and
    # sampling scales: flux linear in 0-50 um/s, SO4-2 log in 1-50 mol/m3, gamma 0.18-0.95)
    d = load_surrogate_case(ROOT / "cases" / "surrogates" / "seed002_na2so4_element.yaml").to_dict()
    d["inputs"] = [{"name": v.name, "low": v.low, "high": v.high, "scale": v.scale, "offset": v.offset}
                   for v in card.inputs]
    d["name"] = card.name
    case = surrogate_case_from_dict(d, source="test: seed002_na2so4_module_small card domain")
    assert case.input_names == card.input_names
    frame = design(case, n=16, method="sobol", seed=4242)
    X = frame[card.input_names].to_numpy(float)
    r_ort = small.predict(X)[:, 0]
    r_np = unscale_outputs(forward_numpy(layers, scale_inputs(X, card.input_scaling, card.input_scales)),
                           card.output_scaling, card.output_transforms)[:, 0]
    np.testing.assert_allclose(r_ort, r_np, rtol=0, atol=1e-12)

    engine = EngineElement.from_case(case.base_case, ions=case.ions)
    params = {v.name: frame[v.name].to_numpy(float) for v in case.inputs if v.ion is None and v.name != "gamma"}
    c_feed = module_feeds(case, frame)
    exact = run_module(engine, params, c_feed, frame["gamma"].to_numpy(float), 256)
    assert exact.converged.all(), exact.reason
    j = list(case.ions).index("SO4-2")
    r_exact = 1.0 - exact.c_permeate[:, j] / c_feed[:, j]
    err = np.abs(r_ort - r_exact)
    metrics = card.metrics["test"]["rejection_SO4-2"]
    assert err.max() <= metrics.max_abs + 0.005, err
    assert err.mean() <= 2 * metrics.mae, err
