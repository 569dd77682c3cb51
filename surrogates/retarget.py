"""Re-target a trained net's output layer to new output scalings (weighted least squares).

A warm start carries the output scaling it was trained with. When that scaling must change (e.g.
a declared output cap that put the data at ``|T| = 0.999`` of a tanh output layer, where the net
can no longer move its prediction: seed 002's NaCl + Na2SO4 Cl- rejection reaches R = -9.95 and
the old cap was R = -10), the hidden layers stay useful but the output layer no longer matches.
Keeping the hidden layers and refitting only the last affine layer is a linear least-squares
problem: its pre-activation ``a = W h + b`` is fitted to

* ``atanh(T)`` for a tanh output layer (``T`` the targets in the new scaling, clipped inside
  ``(-1, 1)``), each row weighted by ``w (1 - T^2)``, the physical error per unit of ``a``;
* ``T`` itself for an identity output layer, weighted by ``w``,

with ``w`` the caller's physical weight per unit of scaled output (``|dy/du|`` times the output
factor, as in :func:`nanosep.surrogates.training.train_output_net`). For an identity output and an
affine change of scaling the refit is exact; for tanh it is the best start for the
Levenberg-Marquardt fit that follows.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from nanosep.errors import InvalidInputError

#: |T| is clipped to this before atanh (a target at the tanh limit has no finite pre-activation).
T_CLIP = 1.0 - 1e-9


def retarget_output_layer(net: nn.Sequential, Z: np.ndarray, T: np.ndarray, weights: np.ndarray) -> nn.Sequential:
    """A copy of ``net`` whose last ``Linear`` layer is refitted to targets ``T`` (scaled, one column per output).

    ``Z`` (N, n_in) scaled inputs; ``T`` (N, n_out) scaled targets; ``weights`` (N, n_out), the
    physical error per unit of scaled output (> 0). Raises :class:`InvalidInputError` if the shapes
    do not match the net or the net does not end in ``Linear`` (+ optional ``Tanh``).
    """
    mods = list(net)
    tanh_out = isinstance(mods[-1], nn.Tanh)
    last = mods[-2] if tanh_out else mods[-1]
    if not isinstance(last, nn.Linear):
        raise InvalidInputError(f"retarget_output_layer: the net ends in {type(last).__name__}, not Linear (+ Tanh)")
    Z = np.asarray(Z, np.float64)
    T = np.asarray(T, np.float64)
    W = np.asarray(weights, np.float64)
    if T.ndim != 2 or T.shape != W.shape or T.shape[1] != last.out_features or len(Z) != len(T):
        raise InvalidInputError(f"retarget_output_layer: Z {Z.shape}, T {T.shape}, weights {W.shape} do not fit a net "
                                f"with {last.out_features} outputs")
    if not (np.all(np.isfinite(W)) and np.all(W > 0)):
        raise InvalidInputError("retarget_output_layer: weights must be finite and > 0")
    out = copy.deepcopy(net)
    body = out[:-2] if tanh_out else out[:-1]
    with torch.no_grad():
        H = body(torch.as_tensor(Z, dtype=torch.float64)).numpy()
    A = np.column_stack([H, np.ones(len(H))])
    new_W = np.empty((last.out_features, H.shape[1]))
    new_b = np.empty(last.out_features)
    for j in range(T.shape[1]):
        if tanh_out:
            t = np.clip(T[:, j], -T_CLIP, T_CLIP)
            target, w = np.arctanh(t), W[:, j] * (1.0 - t ** 2)
        else:
            target, w = T[:, j], W[:, j]
        sol, *_ = np.linalg.lstsq(A * w[:, None], target * w, rcond=None)
        new_W[j], new_b[j] = sol[:-1], sol[-1]
    lin = out[-2] if tanh_out else out[-1]
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(new_W, dtype=lin.weight.dtype))
        lin.bias.copy_(torch.as_tensor(new_b, dtype=lin.bias.dtype))
    return out
