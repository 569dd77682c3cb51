"""Exact block-diagonal merge of per-output MLPs into one multi-output MLP (and back).

Fitting each output with its own small net (e.g. a 30-30 net for a hard co-ion rejection and a
20-20 net for the counter-ion) lets every net be trained with its own size, residual weights and
Levenberg-Marquardt budget; the flowsheets, OMLT and the ONNX file still want one graph. Nets of
equal depth and equal activations are stacked without any approximation:

* first layer: the weight matrices are stacked by rows (all nets read the same scaled input);
* every later layer: block-diagonal weights, concatenated biases (net ``k``'s neurons only see
  net ``k``'s neurons), so the merged net computes exactly ``[net_1(z), ..., net_m(z)]``.

The merged net has hidden sizes ``sum_k hidden_k`` per layer and ``sum_k n_out_k`` outputs (in
the order of the nets). :func:`split_mlp` is the inverse (for warm starts from a shipped model).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from nanosep.surrogates.mlp import architecture_of, build_mlp
from torch import nn

from nanosep.errors import InvalidInputError


def _linears(model: nn.Sequential) -> list[nn.Linear]:
    return [m for m in model if isinstance(m, nn.Linear)]


def merge_mlps(nets: Sequence[nn.Sequential]) -> nn.Sequential:
    """One MLP whose outputs are the outputs of ``nets`` in order (block-diagonal, exact).

    All nets must be :func:`nanosep.surrogates.mlp.build_mlp` stacks with the same number of
    inputs, the same depth and the same hidden and output activations; otherwise
    :class:`InvalidInputError` names the offending net.
    """
    if not nets:
        raise InvalidInputError("merge_mlps needs at least one net")
    archs = [architecture_of(m) for m in nets]
    lins = [_linears(m) for m in nets]
    n_in = lins[0][0].in_features
    for k, (a, ls) in enumerate(zip(archs, lins)):
        if ls[0].in_features != n_in:
            raise InvalidInputError(f"net {k} reads {ls[0].in_features} inputs, net 0 reads {n_in}")
        if len(a["hidden"]) != len(archs[0]["hidden"]):
            raise InvalidInputError(f"net {k} has hidden layers {a['hidden']}, net 0 has {archs[0]['hidden']}: "
                                    "only nets of equal depth merge exactly")
        for key in ("activation", "output_activation"):
            if a[key] != archs[0][key]:
                raise InvalidInputError(f"net {k} has {key} {a[key]!r}, net 0 has {archs[0][key]!r}")
    hidden = [sum(a["hidden"][j] for a in archs) for j in range(len(archs[0]["hidden"]))]
    n_out = sum(ls[-1].out_features for ls in lins)
    big = build_mlp(n_in, hidden, n_out, activation=archs[0]["activation"],
                    output_activation=archs[0]["output_activation"])
    big_lins = _linears(big)
    with torch.no_grad():
        for L in big_lins:
            L.weight.zero_()
            L.bias.zero_()
        row = [0] * len(big_lins)   # next free output row per layer
        for ls in lins:
            col_prev = 0             # the input columns of this net in the previous merged layer
            for j, (L, lin) in enumerate(zip(big_lins, ls)):
                o, i = lin.weight.shape
                c0 = 0 if j == 0 else col_prev
                L.weight[row[j]:row[j] + o, c0:c0 + i] = lin.weight.to(L.weight.dtype)
                L.bias[row[j]:row[j] + o] = lin.bias.to(L.bias.dtype)
                col_prev = row[j]
                row[j] += o
    return big


def split_mlp(model: nn.Sequential, hidden_per_net: Sequence[Sequence[int]],
              outputs_per_net: Sequence[int] | None = None) -> list[nn.Sequential]:
    """The inverse of :func:`merge_mlps`: cut a merged net into its per-output nets.

    ``hidden_per_net`` gives each net's hidden sizes (e.g. ``[[30, 30], [20, 20]]``);
    ``outputs_per_net`` defaults to one output each. Raises :class:`InvalidInputError` when the
    sizes do not add up to the merged net's or the merged net is not block-diagonal (weights
    across blocks not zero), since then the split would not reproduce it.
    """
    arch = architecture_of(model)
    lins = _linears(model)
    outs = list(outputs_per_net) if outputs_per_net is not None else [1] * len(hidden_per_net)
    if len(outs) != len(hidden_per_net):
        raise InvalidInputError(f"{len(hidden_per_net)} hidden specs but {len(outs)} output counts")
    depth = len(arch["hidden"])
    for k, h in enumerate(hidden_per_net):
        if len(h) != depth:
            raise InvalidInputError(f"net {k}: hidden {list(h)} has depth {len(h)}, the merged net has {depth}")
    sizes = [[*h, o] for h, o in zip(hidden_per_net, outs)]
    total = [sum(s[j] for s in sizes) for j in range(depth + 1)]
    if total != [*arch["hidden"], lins[-1].out_features]:
        raise InvalidInputError(f"per-net sizes {sizes} add up to {total}, the merged net has "
                                f"{[*arch['hidden'], lins[-1].out_features]}")
    nets = []
    row = [0] * len(lins)
    n_in = lins[0].in_features
    with torch.no_grad():
        for s in sizes:
            net = build_mlp(n_in, s[:-1], s[-1], activation=arch["activation"],
                            output_activation=arch["output_activation"])
            col_prev = 0
            for j, (L, lin) in enumerate(zip(lins, _linears(net))):
                o, i = lin.weight.shape
                c0 = 0 if j == 0 else col_prev
                block = L.weight[row[j]:row[j] + o]
                if j > 0:
                    outside = torch.cat([block[:, :c0], block[:, c0 + i:]], dim=1)
                    if outside.numel() and float(outside.abs().max()) != 0.0:
                        raise InvalidInputError(f"layer {j} of the merged net couples the blocks "
                                                f"(max |w| across blocks {float(outside.abs().max()):.3g}): "
                                                "not a block-diagonal merge of these sizes")
                lin.weight.copy_(block[:, c0:c0 + i])
                lin.bias.copy_(L.bias[row[j]:row[j] + o])
                col_prev = row[j]
                row[j] += o
            nets.append(net)
    return nets


def widen_mlp(model: nn.Sequential, hidden: Sequence[int], *, seed: int = 0, init_scale: float = 0.3) -> nn.Sequential:
    """A wider net computing exactly the same function (Net2Net-style, function-preserving).

    The old weights fill the top-left blocks; the new neurons get small random input weights
    (``init_scale`` times the default initialization) and zero outgoing weights, so training
    can use them while the starting function is unchanged. ``hidden`` must have the model's
    depth and no layer narrower than the model's.
    """
    arch = architecture_of(model)
    if len(hidden) != len(arch["hidden"]) or any(h < o for h, o in zip(hidden, arch["hidden"])):
        raise InvalidInputError(f"cannot widen hidden {arch['hidden']} to {list(hidden)}: same depth and "
                                "no narrower layer needed")
    old = _linears(model)
    new_model = build_mlp(old[0].in_features, hidden, old[-1].out_features, activation=arch["activation"],
                          output_activation=arch["output_activation"], seed=seed)
    with torch.no_grad():
        for lo, ln in zip(old, _linears(new_model)):
            ln.weight.mul_(init_scale)
            ln.bias.mul_(init_scale)
            o_out, o_in = lo.weight.shape
            ln.weight[:o_out, :o_in] = lo.weight
            ln.bias[:o_out] = lo.bias
    _zero_outgoing_of_new(new_model, arch["hidden"])
    return new_model


def _zero_outgoing_of_new(model: nn.Sequential, old_hidden: Sequence[int]) -> None:
    """Zero the weights leaving the new neurons (columns past the old width) in every later layer."""
    lins = _linears(model)
    with torch.no_grad():
        for j, h_old in enumerate(old_hidden):
            lins[j + 1].weight[:, h_old:] = 0.0
