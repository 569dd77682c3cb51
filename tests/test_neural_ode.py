"""The seed 001 neural ODE: exact charge conservation, masking, the zero-flux limit, training, persistence."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from nanosep.surrogates.neural_ode import (
    DTYPE,
    NeuralODE,
    NodeConfig,
    data_loss,
    engine_data,
    engine_rejection,
    from_measured,
    project_charge,
    train,
)

from nanosep.errors import InvalidInputError
from nanosep.measured import (
    FDL2021_IONS,
    fdl2021_feed_mol_m3,
    load_fdl2021,
    salt_feed_mol_m3,
)

torch.set_num_threads(1)

FEEDS = np.array([[fdl2021_feed_mol_m3(s)[i] for i in FDL2021_IONS] for s in ("NaCl", "MgCl2", "Na2SO4", "MgSO4")])
TIGHT = {"rtol": 1e-10, "atol": 1e-12}


def _random_model(state: str, seed: int = 3) -> NeuralODE:
    m = NeuralODE(NodeConfig.for_ions(FDL2021_IONS, state=state, seed=seed, hidden=24, **TIGHT))
    with torch.no_grad():  # larger random weights than the default init: a strongly varying field
        for p in m.parameters():
            p.mul_(3.0)
    return m


def test_projection_is_orthogonal_and_idempotent():
    g = torch.Generator().manual_seed(0)
    v, w = torch.randn(50, 6, generator=g, dtype=DTYPE), torch.randn(50, 6, generator=g, dtype=DTYPE)
    p = project_charge(v, w)
    assert (p * w).sum(-1).abs().max() < 1e-14 * v.abs().max() * w.abs().max() * 10
    torch.testing.assert_close(project_charge(p, w), p, rtol=0, atol=1e-14)
    # the removed part is parallel to w; a row with w = 0 passes unchanged
    d = v - p
    assert torch.linalg.matrix_rank(torch.stack([d[0], w[0]])) == 1
    w[3] = 0.0
    torch.testing.assert_close(project_charge(v, w)[3], v[3], rtol=0, atol=0)


@pytest.mark.parametrize("state", ["transmission", "concentration"])
def test_charge_is_conserved_along_trajectories(state):
    m = _random_model(state)
    c = torch.as_tensor(FEEDS, dtype=DTYPE)
    flux = torch.linspace(0.0, 250.0, 9, dtype=DTYPE)
    with torch.no_grad():
        for f in flux:
            cp = m(c, f.expand(4))
            scale = (c * m.z.abs()).sum(-1)
            assert ((cp @ m.z).abs() / scale).max() < 1e-12, (state, float(f))
            # the field does move the permeate away from the feed (the test is not vacuous)
            if f > 0:
                assert (cp - c).abs().max() > 1e-2


@pytest.mark.parametrize("state", ["transmission", "concentration"])
def test_absent_ions_stay_exactly_zero(state):
    m = _random_model(state)
    c = torch.as_tensor(FEEDS, dtype=DTYPE)
    tau = torch.linspace(0.0, 1.2, 7, dtype=DTYPE)
    with torch.no_grad():
        h = m.states(c, tau)
        cp = m(c, torch.full((4,), 150.0, dtype=DTYPE))
    absent = (c == 0).expand_as(h)
    assert absent.any() and (h[absent] == 0.0).all()
    assert (cp[c == 0] == 0.0).all()
    R = m.predict_rejection(FEEDS, np.full(4, 150.0))
    assert np.isnan(R[FEEDS == 0]).all() and np.isfinite(R[FEEDS > 0]).all()


@pytest.mark.parametrize("state", ["transmission", "concentration"])
def test_zero_flux_returns_the_feed(state):
    m = _random_model(state)
    c = torch.as_tensor(FEEDS, dtype=DTYPE)
    with torch.no_grad():
        cp = m(c, torch.zeros(4, dtype=DTYPE))
    torch.testing.assert_close(cp, c, rtol=1e-15, atol=0)
    assert np.abs(m.predict_rejection(FEEDS, np.zeros(4))[FEEDS > 0]).max() < 1e-15


def test_queries_on_shared_trajectories_equal_separate_solves():
    m = _random_model("transmission")
    c = torch.as_tensor(FEEDS[:2], dtype=DTYPE)
    flux = torch.tensor([20.0, 80.0, 20.0, 140.0], dtype=DTYPE)
    traj = torch.tensor([0, 0, 1, 1])
    with torch.no_grad():
        shared = m.permeate_at(c, flux, traj)
        alone = torch.stack([m(c[t:t + 1], flux[k:k + 1])[0] for k, t in enumerate(traj.tolist())])
    torch.testing.assert_close(shared, alone, rtol=1e-8, atol=1e-10)


def test_adjoint_gradient_equals_direct_backprop():
    table = load_fdl2021()
    data = from_measured(table[table.dominant_salt.isin(["NaCl", "MgSO4"])], FDL2021_IONS, merge_flux_L_m2_h=3.6)
    grads = {}
    for adjoint in (True, False):
        m = NeuralODE(NodeConfig.for_ions(FDL2021_IONS, adjoint=adjoint, seed=1, hidden=16, **TIGHT))
        data_loss(m, data).backward()
        grads[adjoint] = torch.cat([p.grad.ravel() for p in m.parameters()])
    torch.testing.assert_close(grads[True], grads[False], rtol=1e-6, atol=1e-9)


def test_from_measured_merges_digitised_fluxes_per_experiment():
    table = load_fdl2021()
    d = from_measured(table, FDL2021_IONS, merge_flux_L_m2_h=3.6)
    assert d.c_feed.shape == (4, 6)
    assert len(d.traj) == 28                  # 4 salts x 7 operating points
    assert d.n_targets == len(table)          # no (point, ion) measured twice
    raw = from_measured(table, FDL2021_IONS)
    assert raw.n_targets == len(table) and len(raw.traj) > 28


@pytest.fixture(scope="module")
def engine_nacl():
    rng = np.random.default_rng(5)
    feeds = []
    for _ in range(8):
        cd, cn, ca = 10 ** rng.uniform(np.log10([3, 0.05, 0.05]), np.log10([30, 1, 1]))
        f = salt_feed_mol_m3({"NaCl": cd, "NaNO3": cn, "NH4Cl": ca})
        feeds.append([f[i] for i in FDL2021_IONS])
    return engine_data(FDL2021_IONS, np.array(feeds), np.linspace(10, 200, 6), pore_radius_nm=0.8,
                       thickness_um=1.16, pore_dielectric=43.86, charge_density_mol_m3=-20.0, temperature_K=293.15)


def test_engine_rejection_solves_each_presence_pattern_with_its_own_ions():
    from nanosep.transport import TransportOptions, solve_batch

    from nanosep.units import lmh_to_m_s

    kw = {"pore_radius_nm": 0.8, "thickness_um": 1.16, "pore_dielectric": 43.86, "charge_density_mol_m3": -20.0,
          "temperature_K": 293.15}
    R = engine_rejection(FDL2021_IONS, FEEDS[:2], np.array([50.0, 120.0]), **kw)
    for b, flux in enumerate((50.0, 120.0)):
        present = [i for i, c in zip(FDL2021_IONS, FEEDS[b]) if c > 0]
        ref = solve_batch(present, FEEDS[b][FEEDS[b] > 0], flux_m_s=lmh_to_m_s(flux), pore_radius_m=0.8e-9,
                          thickness_m=1.16e-6, pore_dielectric=43.86, charge_density_mol_m3=-20.0,
                          temperature_K=293.15, options=TransportOptions())
        np.testing.assert_allclose(R[b][FEEDS[b] > 0], ref.rejection_intrinsic[0], rtol=1e-9)
        assert np.isnan(R[b][FEEDS[b] == 0]).all()


def test_tiny_pretraining_lowers_the_loss_and_beats_a_constant(engine_nacl):
    d = engine_nacl
    assert np.isfinite(d.rejection[:, [0, 2, 3, 4]]).all()      # the engine solved all cases
    m = NeuralODE(NodeConfig.for_ions(FDL2021_IONS, hidden=32, seed=0, adjoint=False, rtol=1e-5, atol=1e-7,
                                      field_gain=10.0))
    hist = train(m, d, epochs=40, lr=1e-2, batch_mixtures=8, seed=0)
    assert hist[-1] < 0.2 * hist[0]
    blocks = np.asarray(hist).reshape(5, 8).mean(axis=1)       # monotone-ish: block means decrease
    assert (np.diff(blocks) < 0).all(), blocks
    with torch.no_grad():
        mse = float(data_loss(m, d))
    seen = np.isfinite(d.rejection).any(axis=0)
    y = d.rejection[:, seen]
    const = np.nanmean((y - np.nanmean(y, axis=0)) ** 2)  # per-ion mean predictor
    assert mse < 0.25 * const, (mse, const)


def test_save_load_round_trip_is_exact(tmp_path):
    m = _random_model("transmission", seed=7)
    m.cfg  # noqa: B018
    card_path = m.save(tmp_path / "node")
    card = json.loads(card_path.read_text())
    assert card["kind"] == "neural_ode" and card["onnx"] is None
    assert [o["name"] for o in card["outputs"]] == [f"rejection_{i}" for i in FDL2021_IONS]
    assert card["architecture"]["n_parameters"] == m.n_parameters
    from nanosep.surrogates.card import ModelCard

    card = ModelCard.load(card_path)                       # the shared card model reads it
    assert card.kind == "neural_ode" and card.onnx is None and card.weights is not None
    m2 = NeuralODE.load(card_path)
    flux = np.array([7.0, 55.0, 120.0, 201.0])
    np.testing.assert_array_equal(m.predict_rejection(FEEDS, flux), m2.predict_rejection(FEEDS, flux))
    # a tampered weights file is refused
    (tmp_path / "node.pt").write_bytes((tmp_path / "node.pt").read_bytes() + b"x")
    with pytest.raises(InvalidInputError, match="sha256"):
        NeuralODE.load(card_path)


def test_bad_inputs_are_named():
    m = _random_model("transmission")
    with pytest.raises(InvalidInputError, match=r"\(B, 6\)"):
        m(torch.ones(2, 5, dtype=DTYPE), torch.ones(2, dtype=DTYPE))
    with pytest.raises(InvalidInputError, match="-1.0"):
        m(torch.as_tensor(FEEDS, dtype=DTYPE), torch.tensor([1.0, -1.0, 2.0, 3.0], dtype=DTYPE))
    with pytest.raises(InvalidInputError, match="state='log'"):
        NodeConfig.for_ions(FDL2021_IONS, state="log")
