"""The network as explicit expressions: reduced space without auxiliary variables (seed 002 sec. 2.6).

Seed 002 embeds its ANNs in MAiNGO in a *reduced-space* formulation (its ref. [59]): every
network output is one nested expression of the inputs,

    y_k = g_k(o_k + f_k * tanh(b^L + W^L tanh(... tanh(b^1 + W^1 z) ...))_k),
    z_j = (t_j(x_j) - o'_j) / f'_j,

so the branch-and-bound solver sees only the design variables and builds McCormick relaxations
of the composite function.  OMLT 1.2.2's ``ReducedSpaceSmoothNNFormulation`` still adds the
scaled inputs and outputs as variables with equalities and one named Expression per neuron
(indexed Expressions, which Pyomo's APPSI-MAiNGO interface cannot translate); this module has

* :func:`network_expressions`: the scaled outputs of an OMLT ``NetworkDefinition`` as nested
  expressions of given scaled-input expressions (one per output, no variables, no constraints);
* :func:`surrogate_expressions`: the physical outputs of a surrogate as explicit expressions of
  given physical-input expressions, with the card's input transforms and scalings and the output
  inverse transforms exactly as :func:`nanosep.surrogates.embedding.add_surrogate` applies them
  (OMLT stays the loader: the weights come from
  :func:`nanosep.surrogates.embedding.network_definition`, float64);
* :class:`ExplicitSmoothNNFormulation`: the same as an OMLT formulation (subclass of OMLT's
  ``_PyomoFormulation``), for use in an ``OmltBlock``: the block's ``inputs``/``outputs``
  variables that OmltBlock always creates, and one equality per *output*
  ``outputs[k] == network_k(inputs)``; no per-neuron variables or constraints.

Expressions are built with ``pyomo.environ`` functions (``tanh``, ``exp``, ``log``, ``log10``),
so they evaluate in float64 to the same numbers as onnxruntime (tests: <= 1e-12).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from nanosep.errors import InvalidInputError

__all__ = [
    "SMOOTH_ACTIVATIONS",
    "TANH_FORMS",
    "ExplicitSmoothNNFormulation",
    "ExpressionDag",
    "FloatOps",
    "dag_values",
    "network_expressions",
    "surrogate_expressions",
]


def _tanh(x):
    import pyomo.environ as pyo

    return pyo.tanh(x)


def _sigmoid(x):
    import pyomo.environ as pyo

    return 1.0 / (1.0 + pyo.exp(-x))


def _softplus(x):
    import pyomo.environ as pyo

    return pyo.log(1.0 + pyo.exp(x))


#: activation name (OMLT / :class:`nanosep.surrogates.onnx_io.DenseLayer`) -> Pyomo expression builder
SMOOTH_ACTIVATIONS = {"linear": lambda x: x, "tanh": _tanh, "sigmoid": _sigmoid, "softplus": _softplus}


def _dense_layers(net) -> list:
    """The dense layers of an OMLT ``NetworkDefinition`` in order (one input layer, one chain)."""
    from omlt.neuralnet.layer import DenseLayer, InputLayer

    layers = list(net.layers)
    if not layers or not isinstance(layers[0], InputLayer):
        raise InvalidInputError("the network definition must start with one InputLayer")
    dense = layers[1:]
    for L in dense:
        if not isinstance(L, DenseLayer):
            raise InvalidInputError(f"explicit formulation supports dense layers only, got {type(L).__name__}")
        if L.activation not in SMOOTH_ACTIVATIONS:
            raise InvalidInputError(f"activation {L.activation!r} is not smooth; explicit formulation supports "
                                    f"{sorted(SMOOTH_ACTIVATIONS)}")
    return dense


def _tanh_exp(x):
    """tanh(x) written as 2/(1 + exp(-2x)) - 1 (for solvers without a tanh operator, e.g. SCIP)."""
    import pyomo.environ as pyo

    return 2.0 / (1.0 + pyo.exp(-2.0 * x)) - 1.0


#: ``tanh=`` option of :func:`network_expressions` -> builder of tanh(x)
TANH_FORMS = {"tanh": _tanh, "exp": _tanh_exp}


def network_expressions(net, scaled_inputs: Sequence[Any], *, tanh: str = "tanh") -> list:
    """Scaled network outputs as nested expressions of ``scaled_inputs`` (expressions or numbers).

    ``net``: OMLT ``NetworkDefinition`` of dense layers (weights (n_in, n_out), float64).
    Each neuron is ``act(b_j + sum_i W_ij a_i)``; zero weights are skipped.  ``tanh``: ``"tanh"``
    (Pyomo's tanh) or ``"exp"`` (tanh(x) = 2/(1 + exp(-2x)) - 1, for SCIP).
    """
    if tanh not in TANH_FORMS:
        raise InvalidInputError(f"tanh={tanh!r}; choose one of {sorted(TANH_FORMS)}")
    acts = {**SMOOTH_ACTIVATIONS, "tanh": TANH_FORMS[tanh]}
    a = list(scaled_inputs)
    for L in _dense_layers(net):
        W = np.asarray(L.weights, dtype=np.float64)
        b = np.asarray(L.biases, dtype=np.float64)
        if W.shape[0] != len(a):
            raise InvalidInputError(f"layer expects {W.shape[0]} inputs, got {len(a)}")
        act = acts[L.activation]
        a = [act(float(b[j]) + sum(float(W[i, j]) * a[i] for i in range(W.shape[0]) if W[i, j] != 0.0))
             for j in range(W.shape[1])]
    return a


def surrogate_expressions(surrogate, inputs: Mapping[str, Any] | Sequence[Any], *, net=None,
                          widen: float = 0.0, tanh: str = "tanh") -> dict[str, Any]:
    """Physical outputs ``{name: expression}`` of a surrogate for physical-input expressions.

    ``inputs``: mapping from the card's input names (or a sequence in card order) to Pyomo
    expressions or numbers in the card's units.  ``net`` (optional) reuses a network definition
    from :func:`nanosep.surrogates.embedding.network_definition` (built here otherwise).
    Domain bounds are *not* imposed here: the caller bounds its variables or adds inequalities.
    ``tanh``: see :func:`network_expressions` (``"exp"`` for SCIP).
    """
    import pyomo.environ as pyo
    from nanosep.surrogates.embedding import network_definition
    from nanosep.surrogates.scaling import output_inverse

    card = surrogate.card
    names = card.input_names
    if isinstance(inputs, Mapping):
        if missing := [n for n in names if n not in inputs]:
            raise InvalidInputError(f"surrogate {card.name!r} needs input(s) {missing}; given {sorted(inputs)}")
        x = [inputs[n] for n in names]
    else:
        x = list(inputs)
        if len(x) != len(names):
            raise InvalidInputError(f"surrogate {card.name!r} takes {len(names)} inputs ({names}), got {len(x)}")
    net = network_definition(surrogate, widen=widen) if net is None else net
    off_i, fac_i = card.input_scaling.offset_array, card.input_scaling.factor_array
    off_o, fac_o = card.output_scaling.offset_array, card.output_scaling.factor_array
    z = [(card.inputs[j].transform.forward(x[j], pyo.log10) - float(off_i[j])) / float(fac_i[j]) for j in range(len(x))]
    y = network_expressions(net, z, tanh=tanh)
    return {n: output_inverse(float(off_o[k]) + float(fac_o[k]) * y[k], card.outputs[k].transform)
            for k, n in enumerate(card.output_names)}


def _formulation_base():
    from omlt.formulation import _PyomoFormulation

    return _PyomoFormulation


class ExplicitSmoothNNFormulation(_formulation_base()):
    """OMLT formulation: ``outputs[k] == network_k(inputs)`` with the network as one nested
    expression per output (no variable or constraint per neuron; see the module docstring).

    The ``NetworkDefinition``'s scaled input bounds become the bounds of the block's inputs.
    """

    def __init__(self, network_structure) -> None:
        super().__init__()
        self._net = network_structure
        _dense_layers(network_structure)  # validate early
        if len(list(network_structure.input_nodes)) != 1 or len(list(network_structure.output_nodes)) != 1:
            raise InvalidInputError("explicit formulation supports one input and one output layer")

    @property
    def input_indexes(self):
        return next(iter(self._net.input_nodes)).input_indexes

    @property
    def output_indexes(self):
        return next(iter(self._net.output_nodes)).output_indexes

    def _build_formulation(self) -> None:
        import pyomo.environ as pyo

        block = self.block
        if self._net.scaling_object is not None:
            raise InvalidInputError("explicit formulation: put the scaling into the input expressions, "
                                    "not an OMLT scaling object")
        bounds = self._net.scaled_input_bounds or {}
        idx_in = list(self.input_indexes)
        for k in idx_in:
            key = k[0] if isinstance(k, tuple) and len(k) == 1 else k
            if key in bounds:
                block.inputs[k].setlb(float(bounds[key][0]))
                block.inputs[k].setub(float(bounds[key][1]))
        y = network_expressions(self._net, [block.inputs[k] for k in idx_in])
        idx_out = list(self.output_indexes)
        block.output_assignment = pyo.Constraint(range(len(idx_out)), rule=lambda b, k: b.outputs[idx_out[k]] == y[k])


# ------------------------------------------------------------------------------ DAG evaluation
def variable_power(a, b, exp, log):
    """``a ** b`` when the exponent ``b`` is not a constant, in an algebra with ``exp``/``log``
    (``maingopy``, ``pyscipopt``): ``exp(ln(a) b)`` for a constant base ``a > 0``, else
    ``exp(b ln(a))``.  Shared by the global-solver translations of :class:`ExpressionDag`."""
    if isinstance(a, float):
        if a <= 0:
            raise InvalidInputError(f"power with constant base {a!r} <= 0 and a variable exponent")
        return exp(math.log(a) * b)
    return exp(b * log(a))


class ExpressionDag:
    """Evaluate Pyomo expressions in any algebra, visiting every shared sub-expression once.

    Explicit network expressions are DAGs: a neuron's expression is referenced by every neuron
    of the next layer, and a stage's permeate concentration by every expression downstream.
    Pyomo's own walkers (``value()``, APPSI's MAiNGO visitor) treat them as trees, so a 20-20
    network feeding a second 20-20 network is walked ~10^6 times.  ``ExpressionDag`` memoizes
    by node identity (iterative post-order, no recursion limit).

    ``leaf(var)`` maps an unfixed variable to the algebra's value (a float, a ``maingopy.FFVar``);
    ``ops`` names the functions: ``ops.func[name]`` for Pyomo's unary functions (``tanh``, ``exp``,
    ``log``, ``log10``, ``sqrt``, ...), ``ops.pow(a, b)``, ``ops.abs(a)``.  Constants and
    parameters become floats.  Call :meth:`__call__` with an expression; the memo lives as long
    as the object (make a new one when variable values change).
    """

    def __init__(self, leaf, ops) -> None:
        self.leaf, self.ops, self.memo = leaf, ops, {}

    def __call__(self, expr):
        import pyomo.core.expr as EXPR
        from pyomo.core.expr.numvalue import native_numeric_types, value

        memo = self.memo

        def atom(node):
            """(True, value) for leaves, (False, None) for nodes with children."""
            if node.__class__ in native_numeric_types:
                return True, float(node)
            if not node.is_potentially_variable():
                return True, float(value(node))
            if node.is_variable_type():
                return True, (float(node.value) if node.fixed else self.leaf(node))
            return False, None

        done, v = atom(expr)
        if done:
            return v
        stack = [(expr, False)]
        while stack:
            node, expanded = stack.pop()
            key = id(node)
            if key in memo:
                continue
            if node.is_named_expression_type():
                children = [node.expr]
            else:
                children = list(node.args)
            if not expanded:
                stack.append((node, True))
                for c in children:
                    if atom(c)[0] is False and id(c) not in memo:
                        stack.append((c, False))
                continue
            vals = []
            for c in children:
                done, v = atom(c)
                vals.append(v if done else memo[id(c)])
            memo[key] = self._apply(node, vals, EXPR)
        return memo[id(expr)]

    def _apply(self, node, a, EXPR):
        ops = self.ops
        if node.is_named_expression_type():
            return a[0]
        cls = node.__class__
        if cls in (EXPR.SumExpression, EXPR.LinearExpression) or isinstance(node, EXPR.SumExpression):
            total = a[0]
            for x in a[1:]:
                total = total + x
            return total
        if isinstance(node, (EXPR.ProductExpression, EXPR.MonomialTermExpression)):
            return a[0] * a[1]
        if isinstance(node, EXPR.DivisionExpression):
            return a[0] / a[1]
        if isinstance(node, EXPR.NegationExpression):
            return -a[0]
        if isinstance(node, EXPR.PowExpression):
            return ops.pow(a[0], a[1])
        if isinstance(node, EXPR.AbsExpression):
            return ops.abs(a[0])
        if isinstance(node, EXPR.UnaryFunctionExpression):
            name = node.getname()
            if name not in ops.func:
                raise InvalidInputError(f"function {name!r} is not supported by this algebra ({sorted(ops.func)})")
            return ops.func[name](a[0])
        raise InvalidInputError(f"expression node {cls.__name__} ({node}) is not supported")


class FloatOps:
    """float64 algebra for :class:`ExpressionDag` (``math``)."""

    import math as _m

    func: ClassVar[dict] = {"tanh": _m.tanh, "exp": _m.exp, "log": _m.log, "log10": _m.log10, "sqrt": _m.sqrt, "sin": _m.sin,
            "cos": _m.cos, "tan": _m.tan, "sinh": _m.sinh, "cosh": _m.cosh, "asin": _m.asin, "acos": _m.acos,
            "atan": _m.atan}

    @staticmethod
    def pow(a, b):
        return a ** b

    @staticmethod
    def abs(a):
        return abs(a)


def dag_values(exprs, leaf=None) -> list[float]:
    """float values of several expressions at the current variable values, with one shared memo."""
    dag = ExpressionDag(leaf or (lambda v: float(v.value)), FloatOps)
    return [float(dag(e)) for e in exprs]
