"""A CasADi function from the same ONNX file, in physical units (for the control layer).

The weights are read with ``onnx.numpy_helper`` by
:func:`nanosep.surrogates.onnx_io.dense_layers` (Gemm/MatMul/Add + activation
chain); the input and output transforms (log10, log10(x + offset)) and affine scalings come from the card. The function maps
a column of physical inputs (card order) to a column of physical outputs.
"""
from __future__ import annotations

import re

from nanosep.surrogates.onnx_io import Surrogate, dense_layers
from nanosep.surrogates.scaling import output_inverse


def _activation(ca, name: str, a):
    if name == "linear":
        return a
    if name == "tanh":
        return ca.tanh(a)
    if name == "sigmoid":
        return 1.0 / (1.0 + ca.exp(-a))
    if name == "softplus":
        return ca.log1p(ca.exp(a))
    if name == "relu":
        return ca.fmax(a, 0.0)
    raise ValueError(f"unknown activation {name!r}")


def casadi_function(surrogate: Surrogate, name: str | None = None):
    """``casadi.Function`` ``y = f(x)`` with ``x`` (n_in x 1) and ``y`` (n_out x 1) in physical units.

    Log-scale inputs go through ``log10`` (so they must be positive), log_offset inputs
    through ``log10(x + offset)``, log_neg inputs through ``log10(-x)`` (so they must be
    negative) (:class:`nanosep.surrogates.scaling.InputScale`); no
    domain check happens inside the function: the caller bounds the inputs
    (e.g. as optimization-variable bounds) with ``surrogate.card.inputs``.
    """
    import casadi as ca

    card = surrogate.card
    x = ca.SX.sym("x", len(card.inputs))
    off_i, fac_i = card.input_scaling.offset_array, card.input_scaling.factor_array
    z = []
    for j, v in enumerate(card.inputs):
        t = v.transform.forward(x[j], ca.log10)
        z.append((t - off_i[j]) / fac_i[j])
    a = ca.vertcat(*z)
    for L in dense_layers(surrogate.model):
        a = _activation(ca, L.activation, ca.mtimes(ca.DM(L.W.T), a) + ca.DM(L.b))
    u = ca.DM(card.output_scaling.offset_array) + ca.DM(card.output_scaling.factor_array) * a
    y = ca.vertcat(*[output_inverse(u[k], o.transform) for k, o in enumerate(card.outputs)])
    fname = re.sub(r"\W", "_", name or card.name)
    return ca.Function(fname if fname[:1].isalpha() else "f_" + fname, [x], [y], ["x"], ["y"])
