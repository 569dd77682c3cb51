"""Torch multilayer perceptrons for element surrogates (float64).

The shallow net is the seed 002 architecture (sec. 2.2, Fig. 4): one hidden
layer of ``n`` tanh neurons, tanh (or identity) on the output layer. The deep
net is a baseline with several tanh hidden layers. Both are plain
``nn.Sequential`` stacks of ``Linear`` and activation modules, so the ONNX
export is a chain of Gemm and activation nodes only.
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Literal

import torch
from torch import nn

from nanosep.errors import InvalidInputError

Activation = Literal["tanh", "sigmoid", "softplus", "relu"]
OutputActivation = Literal["identity", "tanh"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "relu": nn.ReLU,
}

#: hidden layers of the deeper baseline
DEEP_HIDDEN: tuple[int, ...] = (20, 20)


def build_mlp(n_in: int, hidden: Sequence[int], n_out: int, *, activation: Activation = "tanh",
              output_activation: OutputActivation = "identity", seed: int | None = None) -> nn.Sequential:
    """A float64 MLP ``n_in -> hidden[0] -> ... -> n_out``.

    ``seed`` makes the (PyTorch default, Kaiming-uniform) initialization reproducible.
    """
    if n_in < 1 or n_out < 1 or not hidden or min(hidden) < 1:
        raise InvalidInputError(f"bad MLP shape: n_in={n_in}, hidden={list(hidden)}, n_out={n_out}")
    if activation not in _ACTIVATIONS:
        raise InvalidInputError(f"unknown activation {activation!r}; choose from {sorted(_ACTIVATIONS)}")
    if output_activation not in ("identity", "tanh"):
        raise InvalidInputError(f"unknown output activation {output_activation!r}; choose 'identity' or 'tanh'")
    gen_state = torch.random.get_rng_state()
    if seed is not None:
        torch.manual_seed(seed)
    layers: list[nn.Module] = []
    sizes = [n_in, *hidden]
    for a, b in pairwise(sizes):
        layers += [nn.Linear(a, b), _ACTIVATIONS[activation]()]
    layers.append(nn.Linear(sizes[-1], n_out))
    if output_activation == "tanh":
        layers.append(nn.Tanh())
    if seed is not None:
        torch.random.set_rng_state(gen_state)
    return nn.Sequential(*layers).double()


def shallow_mlp(n_in: int, n_hidden: int, n_out: int, *, output_activation: OutputActivation = "identity",
                seed: int | None = None) -> nn.Sequential:
    """Seed 002's one-hidden-layer tanh network (sec. 2.2)."""
    return build_mlp(n_in, [n_hidden], n_out, output_activation=output_activation, seed=seed)


def deep_mlp(n_in: int, n_out: int, hidden: Sequence[int] = DEEP_HIDDEN, *,
             output_activation: OutputActivation = "identity", seed: int | None = None) -> nn.Sequential:
    """Deeper tanh baseline (default two hidden layers of 20)."""
    return build_mlp(n_in, list(hidden), n_out, output_activation=output_activation, seed=seed)


def architecture_of(model: nn.Sequential) -> dict:
    """The card's ``architecture`` entry read back from a model built by :func:`build_mlp`."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    acts = [type(m) for m in model if not isinstance(m, nn.Linear)]
    names = {v: k for k, v in _ACTIVATIONS.items()}
    out_act = "tanh" if isinstance(model[-1], nn.Tanh) else "identity"
    return {
        "hidden": [lin.out_features for lin in linears[:-1]],
        "activation": names[acts[0]] if acts else "tanh",
        "output_activation": out_act,
    }


def mlp_from_architecture(n_in: int, n_out: int, architecture: dict) -> nn.Sequential:
    """Rebuild an untrained model from a card's ``architecture`` entry."""
    return build_mlp(n_in, architecture["hidden"], n_out, activation=architecture.get("activation", "tanh"),
                     output_activation=architecture.get("output_activation", "identity"))
