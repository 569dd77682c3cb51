"""SCIP (``pyscipopt``) as a second deterministic global solver, to cross-check MAiNGO (seed 002 sec. 2.6).

:func:`solve_scip` builds the same reduced-space plant as :func:`.global_opt.solve_global`
(:func:`.reduced_plant.build_reduced_plant`), with every network ``tanh`` written as
``2/(1 + exp(-2x)) - 1`` (SCIP has no tanh operator), and solves it with SCIP's spatial
branch-and-bound.  It returns a :class:`.design_point.DesignPoint` (solver ``"scip/..."``) with
SCIP's status, primal value, dual bound and relative gap; ``globally_optimal`` is ``True`` only when
SCIP stopped with status ``optimal`` or ``gaplimit`` and the gap is within ``rel_gap`` (or
``abs_gap``).

The translation Pyomo -> pyscipopt is ours (:func:`scip_model_of`), not Pyomo 6.10's
``scip_direct`` (``pyomo.contrib.solver.solvers.scip``), because that interface

1. walks expressions as trees (``StreamBasedExpressionVisitor`` without memo): the shared
   sub-expressions of the network DAG are re-translated once per reference;
2. writes tanh as ``(e^x - e^-x)/(e^x + e^-x)`` (four exponentials, weak relaxations);
3. runs SCIP with its log on and captures it through a file-descriptor pipe (``capture_output``
   with ``capture_fd=True``), which is the reported hang with a full pipe;
4. sets ``solver_options`` only after the model is built; on the k = 1 element plant (Na2SO4
   20/10 mol/m3, epsilon 1.0) it returned ``provenInfeasible`` in 0.1 s, while MAiNGO certifies
   an optimum (the cause and the fix: :data:`SCIP_DEFAULTS`).

SCIP's relaxation of ``2/(1 + exp(-2x)) - 1`` over wide pre-activation intervals is far weaker
than MAiNGO's native tanh envelopes: on the k = 1 plant SCIP finds MAiNGO's optimum at once but
does not close the gap in minutes (benchmarks/README.md), so its result is a cross-check of
MAiNGO's point and bound, normally with ``globally_optimal=False``.

Ours memoizes by node identity (:class:`nanosep.surrogates.explicit.ExpressionDag`), maps
``+ - * /``, ``exp``, ``log``, ``log10``, ``sqrt``, powers and integer/binary domains, puts a
nonlinear objective into an epigraph variable (SCIP objectives are linear), and silences SCIP
(``hideOutput`` + ``display/verblevel = 0``): nothing is printed or piped.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any

import pyomo.environ as pyo
from nanosep.surrogates.explicit import variable_power

from nanosep.errors import InvalidInputError

from .design_point import DesignPoint

__all__ = ["SCIP_DEFAULTS", "scip_model_of", "scip_solve", "solve_scip"]

log = logging.getLogger(__name__)


class _ScipOps:
    """pyscipopt algebra for :class:`nanosep.surrogates.explicit.ExpressionDag`."""

    def __init__(self) -> None:
        import pyscipopt as ps

        self.ps = ps
        self.func = {"exp": ps.exp, "log": ps.log, "log10": lambda x: ps.log(x) / math.log(10.0), "sqrt": ps.sqrt,
                     "tanh": lambda x: 2.0 / (1.0 + ps.exp(-2.0 * x)) - 1.0}

    def pow(self, a, b):
        ps = self.ps
        if isinstance(b, float):
            return a ** (int(b) if b.is_integer() else b)
        return variable_power(a, b, ps.exp, ps.log)

    def abs(self, a):
        raise InvalidInputError("abs() is not supported by the SCIP translation")


#: SCIP parameters set before any variable or constraint is added.  With SCIP's defaults the k = 1
#: plant is "proven infeasible" in presolve (MAiNGO's optimum passes ``checkSol``), for two reasons:
#: the SI-scaled denominators (membrane permeability in m/(s Pa), ~1e-11) lie below
#: ``expr/pow/minzerodistance`` (1e-9), which SCIP moves away from zero at constraint creation;
#: and ``exp(-2x)`` of the tanh rewrite reaches exp(94) ~ 1e41 on the pre-activation intervals,
#: beyond ``numerics/infinity`` (1e20), so the interval sums of the output layer become empty.
#: (Setting ``numerics/infinity`` makes SCIP print "SCIPrationalChgInfinity() not thread safe" on
#: stderr; harmless.)
SCIP_DEFAULTS = {"display/verblevel": 0, "expr/pow/minzerodistance": 1e-20, "numerics/infinity": 1e80}


def scip_model_of(model, options: dict | None = None):
    """``(scip_model, pyomo_vars, scip_vars, objective_sign)`` for a bounded Pyomo model.

    One active objective (put into an epigraph variable ``t >= obj``), every active constraint;
    every unfixed variable needs finite bounds.  The SCIP model is silenced; ``options`` (SCIP
    parameters, on top of :data:`SCIP_DEFAULTS`) are set before the constraints are built.
    """
    import pyscipopt as ps
    from nanosep.surrogates.explicit import ExpressionDag
    from pyomo.core.expr.visitor import identify_variables

    objs = list(model.component_data_objects(pyo.Objective, active=True))
    if len(objs) != 1:
        raise InvalidInputError(f"model {model.name!r} needs exactly one active objective, has {len(objs)}")
    cons = list(model.component_data_objects(pyo.Constraint, active=True))
    seen: dict[int, Any] = {}
    for e in [objs[0].expr] + [c.body for c in cons]:
        for v in identify_variables(e, include_fixed=False):
            seen.setdefault(id(v), v)
    pvars = list(seen.values())
    if unbounded := [v.name for v in pvars if v.lb is None or v.ub is None]:
        raise InvalidInputError(f"global optimization needs finite bounds on every variable; unbounded: {unbounded}")
    s = ps.Model()
    s.hideOutput()
    for k, v in {**SCIP_DEFAULTS, **(options or {})}.items():
        s.setParam(k, v)
    svars = []
    for k, v in enumerate(pvars):
        vt = "B" if v.is_binary() else ("I" if v.is_integer() else "C")
        svars.append(s.addVar(name=f"x{k}", vtype=vt, lb=float(v.lb), ub=float(v.ub)))
    index = {id(v): k for k, v in enumerate(pvars)}
    dag = ExpressionDag(lambda v: svars[index[id(v)]], _ScipOps())
    for n, c in enumerate(cons):
        body = dag(c.body)
        if isinstance(body, float):
            continue
        if c.equality:
            s.addCons(body == float(pyo.value(c.upper)), name=f"c{n}")
            continue
        if c.has_ub():
            s.addCons(body <= float(pyo.value(c.upper)), name=f"c{n}u")
        if c.has_lb():
            s.addCons(body >= float(pyo.value(c.lower)), name=f"c{n}l")
    sign = 1.0 if objs[0].sense == pyo.minimize else -1.0
    t = s.addVar(name="objective", lb=None, ub=None)
    s.addCons(t >= sign * dag(objs[0].expr), name="epigraph")
    s.setObjective(t, "minimize")
    return s, pvars, svars, sign


def scip_solve(model, *, rel_gap: float = 1e-3, abs_gap: float = 1e-6, time_limit_s: float = 120.0,
               feas_tol: float = 1e-6, options: dict | None = None) -> dict[str, Any]:
    """Solve a bounded Pyomo model globally with SCIP; load the best point into the model.

    Returns ``status`` (``"optimal"`` = gap closed, ``"time_limit"`` = feasible point with open gap,
    ``"infeasible"``, ``"no_feasible_point"``, ``"error"``), ``scip_status``, ``globally_optimal``,
    ``objective``, ``lower_bound`` (SCIP's dual bound), ``relative_gap``, ``nodes``, ``wall_s``, ``cpu_s``
    (in the model's objective sense: for maximization the bound is an upper bound).
    """
    opts = {"limits/gap": rel_gap, "limits/absgap": abs_gap, "limits/time": time_limit_s,
            "numerics/feastol": feas_tol, **(options or {})}
    s, pvars, svars, sign = scip_model_of(model, opts)
    t0, c0 = time.perf_counter(), time.process_time()
    s.optimize()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    st = s.getStatus()
    out = {"wall_s": wall, "cpu_s": cpu, "scip_status": st, "objective": math.nan, "lower_bound": math.nan,
           "relative_gap": math.nan, "globally_optimal": False, "nodes": float(s.getNNodes()),
           "n_variables": len(pvars)}
    if s.getNSols() > 0:
        sol = s.getBestSol()
        for v, x in zip(pvars, svars):
            val = float(s.getSolVal(sol, x))
            v.set_value(round(val) if v.is_integer() else val, skip_validation=True)
        ub, lb = float(s.getSolObjVal(sol)), float(s.getDualbound())
        gap = (ub - lb) / max(abs(ub), 1e-300)
        certified = st in ("optimal", "gaplimit") and (gap <= rel_gap * (1 + 1e-9) or ub - lb <= abs_gap * (1 + 1e-9))
        out.update(objective=sign * ub, lower_bound=sign * lb, relative_gap=max(gap, 0.0),
                   globally_optimal=bool(certified), status="optimal" if certified else "time_limit")
    elif st == "infeasible":
        out["status"] = "infeasible"
    elif st in ("timelimit", "nodelimit", "totalnodelimit", "stallnodelimit", "memlimit", "userinterrupt"):
        out["status"] = "no_feasible_point"
    else:
        out["status"] = "error"
    return out


def solve_scip(spec, rejection: str = "element", epsilon_mol_m3: float = 1.0, *, n_elements: int = 3,
               surrogate: str | None = None, rel_gap: float = 1e-3, abs_gap: float = 1.0,
               time_limit_s: float = 120.0) -> DesignPoint:
    """Globally minimize the plant's annual operating cost s.t. product ``spec.limit_ion`` <=
    ``epsilon_mol_m3`` with SCIP: :func:`.global_opt.solve_global` with ``solver="scip"`` (the same
    reduced-space model, tanh written as 2/(1+exp(-2x))-1; ``abs_gap`` in USD/yr).  Failures come back
    as a :class:`DesignPoint` with ``feasible=False``; an infeasible epsilon is diagnosed with MAiNGO."""
    from .global_opt import solve_global

    return solve_global(spec, rejection, epsilon_mol_m3, n_elements=n_elements, surrogate=surrogate, rel_gap=rel_gap,
                        abs_gap=abs_gap, time_limit_s=time_limit_s, solver="scip")
