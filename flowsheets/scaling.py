"""One scaling mechanism: a ``scaling_factor`` Suffix read by Ipopt with ``nlp_scaling_method=user-scaling``.

:func:`set_scaling` (call it on an initialized model) gives every variable that carries Pyomo units
the factor ``1 / max(|value|, floor)`` and every active equality constraint of the flowsheet
(outside the surrogate and twin blocks, whose networks and engine rows are already of order one
or scaled by the twin itself) the factor ``1 / max(|lhs|, |rhs|, floor)`` evaluated at the
current point, clipped to [1e-8, 1e8]; the objective gets ``1 / max(|f|, 1)``.
:data:`USER_SCALING` are the matching Ipopt options.
"""
from __future__ import annotations

import pyomo.environ as pyo

__all__ = ["USER_SCALING", "set_scaling"]

USER_SCALING = {"nlp_scaling_method": "user-scaling"}
FLOOR, SF_RANGE = 1e-8, (1e-8, 1e8)
#: sub-blocks with their own (or no) scaling
SKIP_BLOCKS = ("surrogate", "chain", "twin")


def _clip(x: float) -> float:
    return min(max(x, SF_RANGE[0]), SF_RANGE[1])


def _skipped(comp) -> bool:
    b = comp.parent_block()
    while b is not None:
        if b.local_name.split("[")[0] in SKIP_BLOCKS:
            return True
        b = b.parent_block()
    return False


def set_scaling(model) -> pyo.Suffix:
    """Create or refresh ``model.scaling_factor`` (see the module docstring); returns the Suffix."""
    sf = model.component("scaling_factor")
    if sf is None:
        model.scaling_factor = sf = pyo.Suffix(direction=pyo.Suffix.EXPORT)
    for v in model.component_data_objects(pyo.Var, descend_into=True):
        if v.fixed or v.value is None or _skipped(v) or v.get_units() is None:
            continue
        sf[v] = _clip(1.0 / max(abs(v.value), FLOOR))
    for c in model.component_data_objects(pyo.Constraint, active=True, descend_into=True):
        if not c.equality or _skipped(c):
            continue
        try:
            lhs, rhs = abs(pyo.value(c.body)), abs(pyo.value(c.upper))
            parts = [abs(pyo.value(a)) for a in c.body.args] if hasattr(c.body, "args") and c.body.nargs() > 1 else []
        except (ValueError, ZeroDivisionError, TypeError):
            continue
        sf[c] = _clip(1.0 / max([lhs, rhs, FLOOR, *parts]))
    for o in model.component_data_objects(pyo.Objective, active=True, descend_into=True):
        sf[o] = 1.0 / max(abs(pyo.value(o.expr)), 1.0)
    return sf
