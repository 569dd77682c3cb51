"""Sequential initialization: feed -> pump -> stage -> mixer/splitter, one unit at a time.

:func:`fixed_state` fixes variables for the duration of a ``with`` block and restores every
fixed flag on exit, also when an exception leaves the block, so a failed initialization never
leaves the model half-fixed.  :func:`initialize_unit` copies upstream values through the Arcs
into the unit's inlets, fixes inlets and the unit's ``decisions`` (via :func:`fixed_state`),
runs the rejection model's forward evaluation for a stage, and solves the square unit block
with cyipopt.  :func:`initialize_sequential` does this for a given unit order, ``passes`` times
(recycle loops: the first pass uses the recycle streams' current guesses as tear values).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from contextlib import contextmanager

import pyomo.environ as pyo
from idaes.core.util.model_statistics import degrees_of_freedom
from pyomo.network import Arc

from nanosep.solvers import ipopt_solver

from .errors import InitializationError

__all__ = ["INIT_IPOPT_OPTIONS", "copy_state", "fixed_state", "initialize_sequential", "initialize_unit", "var_data"]

log = logging.getLogger(__name__)

INIT_IPOPT_OPTIONS = {"print_level": 0, "tol": 1e-10, "constr_viol_tol": 1e-10, "acceptable_constr_viol_tol": 1e-10,
                      "max_iter": 500}


def var_data(variables: Iterable) -> list:
    """Flatten Vars (scalar, indexed or data objects) into a list of var data objects."""
    out = []
    for v in variables:
        if v.is_indexed():
            out.extend(v.values())
        else:
            out.append(v)
    return out


@contextmanager
def fixed_state(variables: Iterable):
    """Fix ``variables`` at their current values inside the ``with`` block; restore the fixed flags on exit."""
    data = var_data(variables)
    saved = [(v, v.fixed) for v in data]
    try:
        for v in data:
            v.fix()
        yield data
    finally:
        for v, was_fixed in saved:
            if was_fixed:
                v.fix()
            else:
                v.unfix()


def _stream_of(port):
    return port.parent_block()


def copy_state(source, destination) -> None:
    """Copy the state values of stream ``source`` into the unfixed variables of stream ``destination``."""
    for s, d in zip(source.state_vars(), destination.state_vars()):
        if not d.fixed and s.value is not None:
            d.set_value(s.value, skip_validation=True)


def _arcs(model) -> list:
    return list(model.component_data_objects(Arc, descend_into=True, active=None))


def _guess_stage(stage) -> None:
    """Flux, permeate flow and recovery from the driving pressure (start values only).

    The osmotic term (if the stage has it) is guessed as the feed's full osmotic pressure (complete
    rejection, the upper bound of the permeate-side correction is ignored).  If that flux would take
    more than the stage's recovery bound from the feed, the recovery starts just below the bound
    (the unit solve then finds the flux, or reports the design infeasible); only a non-positive
    driving pressure with no osmotic term to blame is refused here.
    """
    q = float(pyo.value(stage.membrane.permeability_si))
    dp = float(stage.feed.pressure.value) - float(pyo.value(stage.permeate_pressure))
    pi_feed = 0.0
    if stage.component("feed") is not None and hasattr(stage.feed, "osmotic_pressure"):
        pi_feed = float(pyo.value(stage.osmotic_switch)) * float(pyo.value(stage.feed.osmotic_pressure))
    area = float(pyo.value(stage.area))
    f_feed = float(stage.feed.flow_vol.value)
    if dp <= 0:
        raise InitializationError(f"{stage.name}: applied pressure difference {dp:.4g} Pa <= 0; raise the pump pressure")
    gamma_max = float(stage.gamma.ub)
    flux = q * (dp - pi_feed)
    if not flux * area < 0.98 * gamma_max * f_feed:
        flux = 0.98 * gamma_max * f_feed / area
        log.debug("%s: start flux limited by the recovery bound %.3g", stage.name, gamma_max)
    flux = max(flux, 1e-9)
    f_perm = flux * area
    stage.flux.set_value(flux)
    stage.gamma.set_value(f_perm / f_feed)
    stage.permeate.flow_vol.set_value(f_perm)
    stage.retentate.flow_vol.set_value(f_feed - f_perm)
    for s in (stage.permeate, stage.retentate):
        copy_state_tp(stage.feed, s)
    stage.permeate.pressure.set_value(float(pyo.value(stage.permeate_pressure)))
    stage.retentate.pressure.set_value(stage.feed.pressure.value)


def copy_state_tp(src, dst) -> None:
    """Concentrations and temperature of ``src`` into ``dst`` (start values)."""
    for i in src.ion_names:
        dst.conc[i].set_value(src.conc[i].value)
    dst.temperature.set_value(src.temperature.value)


def _finish_stage_guess(stage) -> None:
    for j in stage.feed.ion_names:
        cf, r, g = stage.feed.conc[j].value, stage.rejection[j].value, stage.gamma.value
        cp = (1 - r) * cf
        stage.permeate.conc[j].set_value(cp)
        stage.retentate.conc[j].set_value(max((cf - g * cp) / (1 - g), 0.0))


def initialize_unit(unit, solver_options: dict | None = None) -> None:
    """Solve one unit block alone with its inlets and decisions fixed (restored afterwards)."""
    inlet_vars = [v for s in unit.inlets for v in s.state_vars()]
    with fixed_state([*inlet_vars, *unit.decisions]):
        if hasattr(unit, "rejection_model"):
            _guess_stage(unit)
            unit.rejection_model.initialize(unit)
            _finish_stage_guess(unit)
        elif len(unit.inlets) == 1:
            for out in unit.outlets:
                copy_state(unit.inlets[0], out)
        n_con = sum(1 for _ in unit.component_data_objects(pyo.Constraint, active=True))
        if n_con == 0:
            return
        dof = degrees_of_freedom(unit)
        if dof != 0:
            raise InitializationError(f"{unit.name}: {dof} degrees of freedom with inlets and decisions fixed; "
                                      "fix or give the missing decisions")
        solver = ipopt_solver({**INIT_IPOPT_OPTIONS, **(solver_options or {})})
        unit._init_objective = pyo.Objective(expr=0.0)  # our own (PyNumero's temporary one can stay behind)
        try:
            res = solver.solve(unit, tee=False)
        except Exception as exc:  # cyipopt raises on evaluation errors
            raise InitializationError(f"{unit.name}: solver failed ({type(exc).__name__}: {exc})") from exc
        finally:
            unit.del_component(unit._init_objective)
        tc = res.solver.termination_condition
        if tc != pyo.TerminationCondition.optimal:
            raise InitializationError(f"{unit.name}: initialization solve ended with {tc}")
    log.debug("initialized %s", unit.name)


def initialize_sequential(model, order: Sequence, *, passes: int = 2, solver_options: dict | None = None) -> None:
    """Initialize ``order`` (unit blocks) in turn, propagating states along the Arcs; ``passes`` sweeps."""
    arcs = _arcs(model)
    for _ in range(passes):
        for unit in order:
            for arc in arcs:
                dst = _stream_of(arc.destination)
                if any(dst is s for s in unit.inlets):
                    copy_state(_stream_of(arc.source), dst)
            initialize_unit(unit, solver_options)
