"""Re-targeting a warm-start net's output layer to a new output scaling (surrogates/retarget.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nanosep.errors import InvalidInputError
from nanosep.surrogates.mlp import build_mlp
from nanosep.surrogates.retarget import retarget_output_layer


def _predict(net, Z):
    with torch.no_grad():
        return net(torch.as_tensor(Z)).numpy()


def test_identity_output_absorbs_an_affine_rescaling_exactly():
    """A linear output layer can represent any affine change of output scaling: the refit is exact."""
    rng = np.random.default_rng(0)
    net = build_mlp(3, [8, 8], 2, output_activation="identity", seed=1)
    Z = rng.uniform(-1, 1, (400, 3))
    y = 0.3 + 2.0 * _predict(net, Z)                    # physical outputs under the old scaling (offset 0.3, factor 2)
    T_new = (y - np.array([-1.0, 4.0])) / np.array([5.0, 0.5])
    new = retarget_output_layer(net, Z, T_new, np.ones_like(T_new))
    assert np.abs(_predict(new, Z) - T_new).max() < 1e-10
    assert np.abs(_predict(net, Z) * 2.0 + 0.3 - y).max() < 1e-14   # the original net is untouched (a copy is returned)


def test_tanh_output_follows_a_moderate_rescaling():
    """A tanh net read under a 25 % wider output scaling: the re-targeted layer reproduces the physical
    outputs several times better than the old layer would, with targets further inside (-1, 1)."""
    rng = np.random.default_rng(3)
    net = build_mlp(2, [12, 12], 1, output_activation="tanh", seed=2)
    with torch.no_grad():
        net[-2].weight.mul_(3.0)
    Z = rng.uniform(-1, 1, (2000, 2))
    y = _predict(net, Z)                                  # physical output = T under the old scaling (0, 1)
    fac_new = 1.25
    T_new = y / fac_new
    new = retarget_output_layer(net, Z, T_new, np.ones_like(T_new))
    err_new = np.abs(fac_new * _predict(new, Z) - y).max()
    err_keep = np.abs(fac_new * y - y).max()              # the old layer read with the new scaling
    assert err_new < 0.2 * err_keep, (err_new, err_keep)


def test_tanh_refit_is_the_weighted_least_squares_optimum():
    """Saturated targets (|T| up to 0.999): the refit minimizes sum (w (1 - T^2) (a - atanh T))^2 over the
    output layer, so it beats the old layer and any perturbation of its own solution."""
    rng = np.random.default_rng(4)
    net = build_mlp(2, [10], 1, output_activation="tanh", seed=5)
    with torch.no_grad():
        net[-2].weight.mul_(25.0)
    Z = rng.uniform(-1, 1, (1500, 2))
    T_new = 0.9 * _predict(net, Z)
    w = rng.uniform(0.5, 2.0, T_new.shape)
    new = retarget_output_layer(net, Z, T_new, w)

    def objective(model):
        with torch.no_grad():
            a = model[:-1](torch.as_tensor(Z)).numpy()
        return float(np.sum((w * (1 - T_new ** 2) * (a - np.arctanh(T_new))) ** 2))

    best = objective(new)
    assert best < objective(net)
    for k in range(5):
        trial = retarget_output_layer(net, Z, T_new, w)
        with torch.no_grad():
            trial[-2].weight.add_(1e-3 * torch.randn_like(trial[-2].weight, dtype=torch.float64))
            trial[-2].bias.add_(1e-3)
        assert objective(trial) > best


def test_bad_shapes_and_weights_are_refused():
    net = build_mlp(2, [4], 1, output_activation="tanh", seed=0)
    Z = np.zeros((5, 2))
    with pytest.raises(InvalidInputError, match="do not fit"):
        retarget_output_layer(net, Z, np.zeros((5, 2)), np.ones((5, 2)))
    with pytest.raises(InvalidInputError, match="weights"):
        retarget_output_layer(net, Z, np.zeros((5, 1)), np.zeros((5, 1)))
