"""Embedding a surrogate in Pyomo through OMLT, in float64, with bounds from the card.

:func:`network_definition` builds OMLT's ``NetworkDefinition`` directly from
the float64 weights of the ONNX file (:func:`nanosep.surrogates.onnx_io.dense_layers`),
so the Pyomo model evaluates exactly what onnxruntime evaluates. (OMLT 1.2.2's
``load_onnx_neural_network`` keeps the initializer dtype, so a float64 file
loads as float64 too, but a float32 export would silently lose digits; building
the definition ourselves makes the dtype explicit and avoids OMLT's generic
graph parser.) Scaled input bounds come from the declared domain.

:func:`add_surrogate` adds to a block: the physical input variables (bounded by
the domain: the out-of-domain policy on the Pyomo side), the scaled inputs as
expressions ``(t(x) - offset) / factor`` with ``t`` = identity, ``log10(x)`` or
``log10(x + c)`` or ``log10(-x)`` (:class:`nanosep.surrogates.scaling.InputScale`), the OMLT block in the chosen
formulation (``"full"``: ``FullSpaceSmoothNNFormulation``, one variable and
constraint per neuron; ``"reduced"``: ``ReducedSpaceSmoothNNFormulation``, the
network as nested expressions), and the physical outputs bounded by the card's
physical range.  ``"explicit"`` (:mod:`nanosep.surrogates.explicit`) makes ``block.outputs`` named
Expressions of ``block.inputs``: one nested tanh expression per output, no OMLT block, no
auxiliary variables and no constraints (the reduced space of seed 002, for global solvers).
"""
from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
from nanosep.surrogates.onnx_io import Surrogate, dense_layers
from nanosep.surrogates.scaling import output_inverse

from nanosep.errors import InvalidInputError

log = logging.getLogger(__name__)

Formulation = Literal["full", "reduced", "explicit"]


def input_bounds(surrogate: Surrogate, widen: float = 0.0) -> list[tuple[float, float]]:
    """Physical input bounds: the declared domain, optionally widened by ``widen`` x range per side
    (in the transform ``t``, e.g. log10, for non-linear inputs), with a warning, since the network
    then extrapolates.  A widened lower bound never crosses the transform's pole."""
    if widen < 0:
        raise InvalidInputError(f"widen must be >= 0, got {widen!r}")
    out = []
    for v in surrogate.card.inputs:
        lo, hi = v.low, v.high
        if widen > 0:
            sc = v.transform
            a, b = sc.forward(lo), sc.forward(hi)
            lo, hi = float(sc.inverse(a - widen * (b - a))), float(sc.inverse(b + widen * (b - a)))
        out.append((lo, hi))
    if widen > 0:
        msg = (f"surrogate {surrogate.card.name!r}: input bounds widened by {widen:.0%} of the domain; "
               "the network extrapolates outside the domain it was trained on")
        warnings.warn(msg, stacklevel=2)
        log.warning(msg)
    return out


def scaled_input_bounds(surrogate: Surrogate, bounds: Sequence[tuple[float, float]]) -> dict[int, tuple[float, float]]:
    """Bounds of the network inputs ``z`` for physical bounds (monotone maps, so ends map to ends)."""
    card = surrogate.card
    off, fac = card.input_scaling.offset_array, card.input_scaling.factor_array
    res = {}
    for j, (v, (lo, hi)) in enumerate(zip(card.inputs, bounds)):
        t = (v.transform.forward(lo, math.log10), v.transform.forward(hi, math.log10))
        a, b = (t[0] - off[j]) / fac[j], (t[1] - off[j]) / fac[j]
        res[j] = (min(a, b), max(a, b))
    return res


def network_definition(surrogate: Surrogate, widen: float = 0.0, bounds=None):
    """OMLT ``NetworkDefinition`` with float64 weights read from the ONNX file."""
    from omlt.neuralnet import NetworkDefinition
    from omlt.neuralnet.layer import DenseLayer, InputLayer

    bounds = bounds if bounds is not None else input_bounds(surrogate, widen)
    net = NetworkDefinition(scaled_input_bounds=scaled_input_bounds(surrogate, bounds))
    layers = dense_layers(surrogate.model)
    prev = InputLayer([layers[0].W.shape[0]])
    net.add_layer(prev)
    for L in layers:
        W = np.asarray(L.W, dtype=np.float64)
        dense = DenseLayer([W.shape[0]], [W.shape[1]], W, np.asarray(L.b, dtype=np.float64), activation=L.activation)
        net.add_layer(dense)
        net.add_edge(prev, dense)
        prev = dense
    return net


def omlt_formulation(net, formulation: Formulation):
    from omlt.neuralnet import (
        FullSpaceSmoothNNFormulation,
        ReducedSpaceSmoothNNFormulation,
    )

    if formulation == "full":
        return FullSpaceSmoothNNFormulation(net)
    if formulation == "reduced":
        return ReducedSpaceSmoothNNFormulation(net)
    if formulation == "explicit":
        from nanosep.surrogates.explicit import ExplicitSmoothNNFormulation

        return ExplicitSmoothNNFormulation(net)
    raise InvalidInputError(f"unknown formulation {formulation!r}; choose 'full', 'reduced' or 'explicit'")


def add_surrogate(block, surrogate: Surrogate, formulation: Formulation = "full", *, widen: float = 0.0) -> None:
    """Add the surrogate to a Pyomo ``block`` (a ``Block`` or ``ConcreteModel``).

    Creates ``block.inputs`` (Var indexed by the card's input names, bounded
    by the domain), ``block.outputs`` (Var indexed by output names, bounded by
    the card's physical range), ``block.nn`` (the OMLT block) and the linking
    constraints ``block.link_in`` (``nn.inputs[j] == z_j(x)``) and
    ``block.link_out`` (``y_k == g_k(offset_k + factor_k * nn.outputs[k])``, ``g`` the output transform).
    Inputs start at the domain centre.
    """
    import pyomo.environ as pyo
    from omlt import OmltBlock

    card = surrogate.card
    bounds = input_bounds(surrogate, widen)
    net = network_definition(surrogate, bounds=bounds)
    in_names, out_names = card.input_names, card.output_names
    off_i, fac_i = card.input_scaling.offset_array, card.input_scaling.factor_array
    off_o, fac_o = card.output_scaling.offset_array, card.output_scaling.factor_array

    def centre(j: int) -> float:
        lo, hi = bounds[j]
        sc = card.inputs[j].transform
        return float(sc.inverse(0.5 * (sc.forward(lo, math.log10) + sc.forward(hi, math.log10))))

    block.inputs = pyo.Var(in_names, bounds=lambda b, n: bounds[in_names.index(n)],
                           initialize=lambda b, n: centre(in_names.index(n)))
    if formulation == "explicit":  # outputs as nested expressions of the inputs: nothing else to add
        from nanosep.surrogates.explicit import surrogate_expressions

        y = surrogate_expressions(surrogate, {n: block.inputs[n] for n in in_names}, net=net)
        block.outputs = pyo.Expression(out_names, rule=lambda b, n: y[n])
        block.nn_definition = net
        return
    block.outputs = pyo.Var(out_names, bounds=lambda b, n: (card.outputs[out_names.index(n)].low,
                                                            card.outputs[out_names.index(n)].high))
    block.nn = OmltBlock()
    block.nn.build_formulation(omlt_formulation(net, formulation))
    block.nn_definition = net  # plain attribute (not a Pyomo component): the OMLT network, for initialization

    def z_of(b, j):
        x = b.inputs[in_names[j]]
        t = card.inputs[j].transform.forward(x, pyo.log10)
        return b.nn.inputs[j] == (t - float(off_i[j])) / float(fac_i[j])

    block.link_in = pyo.Constraint(range(len(in_names)), rule=z_of)
    block.link_out = pyo.Constraint(range(len(out_names)), rule=lambda b, k: b.outputs[out_names[k]] ==
                                    output_inverse(float(off_o[k]) + float(fac_o[k]) * b.nn.outputs[k],
                                                   card.outputs[k].transform))
    initialize_from_inputs(block, surrogate)


def initialize_from_inputs(block, surrogate: Surrogate) -> None:
    """Set every variable of a block built by :func:`add_surrogate` from its current inputs
    (a float64 forward pass), so that Ipopt starts on the network's manifold."""
    import pyomo.environ as pyo
    from nanosep.surrogates.onnx_io import _NUMPY_ACT
    from nanosep.surrogates.scaling import scale_inputs, unscale_outputs

    card = surrogate.card
    if block.component("nn") is None:  # "explicit": the outputs are expressions of the inputs
        return
    x = np.array([[pyo.value(block.inputs[n]) for n in card.input_names]])
    a = scale_inputs(x, card.input_scaling, card.input_scales)[0]  # type: ignore[arg-type]
    nn = block.nn

    def put(var, values) -> None:
        for j, v in enumerate(values):
            if var[j].is_variable_type():  # the reduced space has expressions where the full space has variables
                var[j].set_value(float(v), skip_validation=True)

    put(nn.inputs, a)
    for name in ("scaled_inputs",):
        if hasattr(nn, name):
            put(getattr(nn, name), a)
    net = block.nn_definition
    for L in net.layers:
        blk = nn.layer[id(L)] if hasattr(nn, "layer") else None
        if type(L).__name__ == "InputLayer":
            if blk is not None:
                put(blk.z, a)
            continue
        zhat = a @ L.weights + L.biases
        a = _NUMPY_ACT[L.activation](zhat)
        if blk is not None:
            put(blk.zhat, zhat)
            put(blk.z, a)
    put(nn.outputs, a)
    if hasattr(nn, "scaled_outputs"):
        put(nn.scaled_outputs, a)
    y = unscale_outputs(a[None, :], card.output_scaling, card.output_transforms)[0]
    for k, n in enumerate(card.output_names):
        block.outputs[n].set_value(float(y[k]), skip_validation=True)


def omlt_network_from_onnx(surrogate: Surrogate, widen: float = 0.0):
    """OMLT's own ONNX loader on the same file (for comparison in tests)."""
    from omlt.io import load_onnx_neural_network

    return load_onnx_neural_network(surrogate.model, input_bounds=scaled_input_bounds(surrogate, input_bounds(surrogate, widen)))
