"""Structural checks before solving: degrees of freedom and structural singularity.

* :func:`check_degrees_of_freedom` compares IDAES'
  ``idaes.core.util.model_statistics.degrees_of_freedom`` (unfixed variables in active
  equalities minus active equalities) with the stated number.
* :func:`check_structure` computes the Dulmage-Mendelsohn partition of the equality-constraint
  incidence graph (``pyomo.contrib.incidence_analysis``) with the given decision variables fixed
  (temporarily, restored on exit): a square, nonsingular model has no unmatched variable and no
  unmatched constraint.  Otherwise :class:`StructuralSingularityError` names the over-determined
  constraints and the under-determined variables.
"""
from __future__ import annotations

from collections.abc import Iterable

from idaes.core.util.model_statistics import degrees_of_freedom

from .errors import DegreesOfFreedomError, StructuralSingularityError
from .initialization import fixed_state

__all__ = ["check_degrees_of_freedom", "check_structure", "dm_partition"]

#: how many names an error message lists at most
MAX_NAMES = 12


def _names(items, n: int = MAX_NAMES) -> str:
    items = list(items)
    head = ", ".join(c.name for c in items[:n])
    return head + (f", ... ({len(items) - n} more)" if len(items) > n else "")


def dm_partition(model):
    """``(variables, constraints)`` Dulmage-Mendelsohn partitions of the active equalities of ``model``."""
    from pyomo.contrib.incidence_analysis import IncidenceGraphInterface

    return IncidenceGraphInterface(model, active=True, include_inequality=False).dulmage_mendelsohn()


def check_degrees_of_freedom(model, expected: int) -> int:
    """Raise :class:`DegreesOfFreedomError` unless ``degrees_of_freedom(model) == expected``; returns it.

    The message lists the variables of the under-determined part (too many degrees of freedom)
    or the constraints of the over-determined part (too few).
    """
    dof = degrees_of_freedom(model)
    if dof == expected:
        return dof
    vp, cp = dm_partition(model)
    if dof > expected:
        detail = f"free variables (under-determined part): {_names(vp.unmatched + vp.underconstrained)}"
    else:
        detail = f"over-determined constraints: {_names(cp.unmatched + cp.overconstrained)}"
    raise DegreesOfFreedomError(f"{model.name} has {dof} degrees of freedom, expected {expected}; {detail}")


def check_structure(model, decisions: Iterable = ()) -> None:
    """With ``decisions`` fixed (restored afterwards), require a square, structurally nonsingular system.

    Raises :class:`DegreesOfFreedomError` if it is not square and :class:`StructuralSingularityError`
    (naming variables and constraints) if the DM partition has an unmatched part.
    """
    with fixed_state(decisions):
        dof = degrees_of_freedom(model)
        vp, cp = dm_partition(model)
        bad_vars = vp.unmatched + vp.underconstrained
        bad_cons = cp.unmatched + cp.overconstrained
        if not bad_vars and not bad_cons and dof == 0:
            return
        if bad_cons or bad_vars and dof == 0:
            raise StructuralSingularityError(
                f"{model.name} is structurally singular (degrees of freedom {dof}): over-determined constraints "
                f"[{_names(bad_cons)}] cannot be matched, under-determined variables [{_names(bad_vars)}]")
        raise DegreesOfFreedomError(f"{model.name} with its decisions fixed still has {dof} degrees of freedom; "
                                    f"free variables: {_names(bad_vars)}")
