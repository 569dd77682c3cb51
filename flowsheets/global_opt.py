"""Deterministic global optimization of seed 002's plant with MAiNGO (seed 002 sec. 2.6).

:func:`solve_global` builds the reduced-space plant of :mod:`.reduced_plant` (ANNs as nested tanh
expressions, :mod:`nanosep.surrogates.explicit`), hands it to MAiNGO (``maingopy``) and returns a
:class:`.design_point.DesignPoint` with the solver's status, final lower bound and relative gap.

The Pyomo -> MAiNGO translation is ours (:class:`PyomoMAiNGOModel`, a ``maingopy.MAiNGOmodel``):
MAiNGO is called directly instead of through Pyomo 6.10's APPSI interface
(``pyomo.contrib.appsi.solvers.MAiNGO``), because that interface

1. crashes on any *indexed* named Expression ("Unknown function expression encountered": its
   visitor knows ``ScalarExpression`` only, not ``ExpressionData``), and its ``AbsExpression``
   branch calls ``maingopy.abs``, which does not exist (``maingopy.fabs``);
2. walks expressions as trees: shared sub-expressions (every neuron of layer l is referenced by
   every neuron of layer l+1; a stage's permeate by everything downstream) are translated once per
   reference, so two chained 20-20 networks become ~10^6 DAG nodes; ours memoizes by node
   identity (:class:`nanosep.surrogates.explicit.ExpressionDag`) and MAiNGO gets the true DAG;
3. reports MAiNGO's ``FEASIBLE_POINT`` (time limit hit, gap not closed) as
   ``TerminationCondition.optimal``; only ``results.globally_optimal`` tells them apart;
4. sets its own gap defaults (epsilonA = epsilonR = 1e-5) instead of MAiNGO's (1e-2 / 1e-2),
   and ``mip_gap`` silently overrides ``epsilonR``;
5. leaves MAiNGO's ``writeResultFile`` on, so every solve writes ``MAiNGOresult.txt`` into the
   working directory (a race between parallel Pareto points).

Upstream (Pyomo) should: dispatch on ``is_named_expression_type()``, use ``fabs``, memoize the
visitor, map ``FEASIBLE_POINT`` to ``maxTimeLimit``/``feasible`` unless the gap is closed, expose
the final lower bound and gap in the results, and default ``writeResultFile`` to off.  We set
every tolerance explicitly, switch MAiNGO's log and result files off (nothing is written to the
working directory; checked by a test), and compute the gap from MAiNGO's final bounds.

Infeasible specifications (an epsilon no design reaches) return ``status="infeasible"`` with
``feasible=False``; the message names the binding constraint (the permeate limit, with the
smallest product concentration the plant can reach from a second, short global solve).
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
from .reduced_plant import build_reduced_plant, design_of, evaluate_design

__all__ = ["PyomoMAiNGOModel", "maingo_solve", "solve_global"]

log = logging.getLogger(__name__)


class _MaingoOps:
    """maingopy algebra for :class:`nanosep.surrogates.explicit.ExpressionDag`."""

    def __init__(self) -> None:
        import maingopy as mp

        self.mp = mp
        self.func = {"tanh": mp.tanh, "exp": mp.exp, "log": mp.log, "log10": lambda x: mp.log(x) / math.log(10.0),
                     "sqrt": mp.sqrt, "sin": mp.sin, "cos": mp.cos, "tan": mp.tan, "sinh": mp.sinh,
                     "cosh": mp.cosh, "asin": mp.asin, "acos": mp.acos, "atan": mp.atan}

    def pow(self, a, b):
        mp = self.mp
        if isinstance(b, float):
            if b == 2.0:
                return mp.sqr(a)
            if b.is_integer():
                return mp.pow(a, int(b))
            return mp.pow(a, b)
        return variable_power(a, b, mp.exp, mp.log)

    def abs(self, a):
        return self.mp.fabs(a)


def _model_base():
    import maingopy

    return maingopy.MAiNGOmodel


class PyomoMAiNGOModel(_model_base()):
    """A Pyomo model (objective + active constraints, no units) as a ``maingopy.MAiNGOmodel``.

    Variables: every unfixed variable in the active objective and constraints, with its bounds
    (required) and domain (continuous, integer, binary).  Equalities become ``body - rhs == 0``,
    inequalities ``body - ub <= 0`` / ``lb - body <= 0``.
    """

    def __init__(self, model) -> None:
        super().__init__()
        from pyomo.core.expr.visitor import identify_variables

        self.objs = [o for o in model.component_data_objects(pyo.Objective, active=True)]
        if len(self.objs) != 1:
            raise InvalidInputError(f"model {model.name!r} needs exactly one active objective, has {len(self.objs)}")
        self.cons = list(model.component_data_objects(pyo.Constraint, active=True))
        seen: dict[int, Any] = {}
        for e in [self.objs[0].expr] + [c.body for c in self.cons]:
            for v in identify_variables(e, include_fixed=False):
                seen.setdefault(id(v), v)
        self.vars = list(seen.values())
        self.index = {id(v): k for k, v in enumerate(self.vars)}
        if unbounded := [v.name for v in self.vars if v.lb is None or v.ub is None]:
            raise InvalidInputError(f"global optimization needs finite bounds on every variable; unbounded: {unbounded}")

    def get_variables(self):
        import maingopy as mp

        out = []
        for v in self.vars:
            if v.is_binary():
                vt = mp.VT_BINARY
            elif v.is_integer():
                vt = mp.VT_INTEGER
            else:
                vt = mp.VT_CONTINUOUS
            out.append(mp.OptimizationVariable(mp.Bounds(float(v.lb), float(v.ub)), vt, v.name))
        return out

    def get_initial_point(self):
        return [min(max(float(v.value if v.value is not None else 0.5 * (v.lb + v.ub)), v.lb), v.ub) for v in self.vars]

    def evaluate(self, x):
        import maingopy as mp
        from nanosep.surrogates.explicit import ExpressionDag

        dag = ExpressionDag(lambda v: x[self.index[id(v)]], _MaingoOps())
        res = mp.EvaluationContainer()
        obj = dag(self.objs[0].expr)
        res.objective = obj if self.objs[0].sense == pyo.minimize else -obj
        eq, ineq = [], []
        for c in self.cons:
            body = dag(c.body)
            if c.equality:
                eq.append(body - pyo.value(c.upper))
                continue
            if c.has_ub():
                ineq.append(body - pyo.value(c.upper))
            if c.has_lb():
                ineq.append(pyo.value(c.lower) - body)
        res.eq = eq
        res.ineq = ineq
        return res


def maingo_solve(model, *, rel_gap: float = 1e-3, abs_gap: float = 1e-6, time_limit_s: float = 300.0,
                 feas_tol: float = 1e-6, options: dict | None = None) -> dict[str, Any]:
    """Solve a bounded Pyomo model globally with MAiNGO; load the solution point into the model.

    Returns ``status`` (``"optimal"`` = gap closed, ``"time_limit"`` = feasible point, gap open,
    ``"infeasible"``, ``"no_feasible_point"``, ``"error"``), ``globally_optimal``, ``objective``,
    ``lower_bound``, ``relative_gap``, ``wall_s``, ``cpu_s``.  No files are written.
    """
    import maingopy as mp

    mm = PyomoMAiNGOModel(model)
    solver = mp.MAiNGO(mm)
    opts = {"epsilonR": rel_gap, "epsilonA": abs_gap, "maxTime": time_limit_s, "deltaEq": feas_tol,
            "deltaIneq": feas_tol, "loggingDestination": 0, "writeResultFile": False, "writeCsv": False,
            "writeJson": False, **(options or {})}
    for k, v in opts.items():
        if not solver.set_option(k, v):
            raise InvalidInputError(f"MAiNGO rejected option {k}={v!r}")
    t0 = time.perf_counter()
    c0 = time.process_time()
    rc = solver.solve()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    status = solver.get_status()
    out = {"wall_s": wall, "cpu_s": cpu, "maingo_cpu_s": float(solver.get_cpu_solution_time()),
           "maingo_status": str(status), "objective": math.nan, "lower_bound": math.nan, "relative_gap": math.nan,
           "globally_optimal": False, "nodes": float(solver.get_iterations()), "n_variables": len(mm.vars)}
    if status in (mp.GLOBALLY_OPTIMAL, mp.FEASIBLE_POINT):
        ub = float(solver.get_objective_value())
        lb = float(solver.get_final_LBD())
        gap = (ub - lb) / max(abs(ub), 1e-300)
        for v, val in zip(mm.vars, solver.get_solution_point()):
            v.set_value(round(val) if v.is_integer() else float(val), skip_validation=True)
        certified = status == mp.GLOBALLY_OPTIMAL and (gap <= rel_gap * (1 + 1e-9) or ub - lb <= abs_gap * (1 + 1e-9))
        out.update(objective=ub, lower_bound=lb, relative_gap=max(gap, 0.0), globally_optimal=bool(certified),
                   status="optimal" if certified else "time_limit")
    elif status == mp.INFEASIBLE:
        out["status"] = "infeasible"
    elif status == mp.NO_FEASIBLE_POINT_FOUND:
        out["status"] = "no_feasible_point"
    else:
        out["status"] = "error"
    out["retcode"] = str(rc)
    return out


def _min_product_conc(m, time_limit_s: float) -> dict[str, Any]:
    """Global minimum of the limited product concentration without the permeate limit (diagnosis)."""
    torn = m.tear_vars and m.limit_ion in list(m.tear_ions)
    ub = m.perm_conc[m.limit_ion].ub if torn else None
    if torn:  # the torn permeate carries epsilon as its bound
        m.perm_conc[m.limit_ion].setub(m.tear_loose_ub[m.limit_ion])
    m.permeate_limit.deactivate()
    m.objective.deactivate()
    m.diagnose = pyo.Objective(expr=m.q["product_conc"][m.limit_ion])
    try:
        return maingo_solve(m, rel_gap=1e-3, abs_gap=1e-6, time_limit_s=time_limit_s)
    finally:
        m.del_component(m.diagnose)
        m.objective.activate()
        m.permeate_limit.activate()
        if torn:
            m.perm_conc[m.limit_ion].setub(ub)


def solve_global(spec, rejection: str = "element", epsilon_mol_m3: float = 1.0, *, n_elements: int = 3,
                 surrogate: str | None = None, rel_gap: float = 1e-3, abs_gap: float = 1.0,
                 time_limit_s: float = 300.0, solver: str = "maingo") -> DesignPoint:
    """Globally minimize the annual operating cost of the plant ``spec`` s.t. product
    ``spec.limit_ion`` <= ``epsilon_mol_m3`` (one epsilon-constraint Pareto point).

    ``rejection``: ``"element"`` (k = 1), ``"chain"`` (``n_elements`` elements in series),
    ``"module"`` (module surrogate with gamma); ``surrogate``: the name of a shipped surrogate
    (default per kind, :data:`.reduced_plant.SHIPPED_SURROGATES`); ``rel_gap``/``abs_gap``
    [USD/yr]: MAiNGO's epsilonR/epsilonA; module counts are integer if ``spec.integer_modules``.
    Failures (infeasible, no feasible point in time, solver errors) come back as a
    :class:`DesignPoint` with ``feasible=False`` and a message, never as an exception; bad
    arguments raise :class:`nanosep.errors.InvalidInputError`.
    """
    from nanosep.surrogates.onnx_io import load_shipped

    if solver not in ("maingo", "scip"):
        raise InvalidInputError(f"solver={solver!r}; the global path supports 'maingo' and 'scip' (a cross-check)")
    if not (rel_gap > 0 and abs_gap > 0 and time_limit_s > 0):
        raise InvalidInputError(f"rel_gap={rel_gap!r}, abs_gap={abs_gap!r}, time_limit_s={time_limit_s!r} must be > 0")
    t0 = time.perf_counter()
    sur = load_shipped(surrogate) if surrogate is not None else None
    # SCIP gets tanh as 2/(1+exp(-2x))-1 (its expression library has no tanh)
    m = build_reduced_plant(spec, rejection, surrogate=sur, n_elements=n_elements, epsilon_mol_m3=epsilon_mol_m3,
                            tanh="exp" if solver == "scip" else "tanh")
    evaluate_design(m)  # start point: spec's start values, recycle closed
    t_build = time.perf_counter() - t0
    name = f"{solver}/{rejection}" + (f"{n_elements}" if rejection == "chain" else "")
    label = {"maingo": "MAiNGO", "scip": "SCIP"}[solver]
    if solver == "scip":
        from .scip_check import scip_solve as backend
    else:
        backend = maingo_solve
    try:
        res = backend(m, rel_gap=rel_gap, abs_gap=abs_gap, time_limit_s=time_limit_s)
    except Exception as exc:  # a solver failure is a reported point, not a crash of the front
        log.exception("%s failed at epsilon %g", label, epsilon_mol_m3)
        return DesignPoint.failed(epsilon_mol_m3, name, "error", f"{label} raised {type(exc).__name__}: {exc}",
                                  times_s={"build": t_build, "total": time.perf_counter() - t0})
    times = {"build": t_build, "solve_wall": res["wall_s"], "solve_cpu": res["cpu_s"], "total": time.perf_counter() - t0}
    status_key = f"{solver}_status"
    extra = {status_key: res[status_key], "nodes": res["nodes"], "n_variables": res["n_variables"],
             "rejection": rejection, "n_elements": n_elements if rejection == "chain" else 1,
             "surrogate": m.surrogate.card.name}
    if res["status"] in ("optimal", "time_limit"):
        ev = evaluate_design(m)  # re-close the recycle at the solution (MAiNGO meets it to deltaEq)
        msg = "" if res["globally_optimal"] else (f"{label} stopped ({res[status_key]}; time limit {time_limit_s:g} s) "
                                                  f"with relative gap {res['relative_gap']:.3g} > {rel_gap:g}: "
                                                  "feasible, not certified")
        return DesignPoint(epsilon_mol_m3=epsilon_mol_m3, solver=name, status=res["status"], feasible=True,
                           objective_usd_per_year=ev["objective_usd_per_year"], cost_usd_per_m3=ev["cost_usd_per_m3"],
                           product_conc_mol_m3=ev["product_conc_mol_m3"], design=design_of(m),
                           globally_optimal=res["globally_optimal"], lower_bound_usd_per_year=res["lower_bound"],
                           relative_gap=res["relative_gap"], times_s=times, message=msg,
                           extra={**extra, "max_violation": ev["max_violation"], f"{solver}_objective": res["objective"]})
    if res["status"] == "infeasible":
        diag = _min_product_conc(m, min(60.0, time_limit_s))
        if diag["status"] in ("optimal", "time_limit"):
            msg = (f"binding constraint: permeate_limit (product {m.limit_ion} <= epsilon = {epsilon_mol_m3:g} mol/m3); "
                   f"no design reaches it: the lowest product {m.limit_ion} concentration is >= "
                   f"{diag['lower_bound']:.6g} mol/m3 (best found {diag['objective']:.6g})")
            extra["min_product_conc_lower_bound"] = diag["lower_bound"]
        else:
            msg = (f"infeasible even without the permeate limit ({diag['status']}): the bounds on pump pressure "
                   f"(dp_limits), surrogate domain (domain) or recovery exclude every design")
        times["total"] = time.perf_counter() - t0
        return DesignPoint.failed(epsilon_mol_m3, name, "infeasible", msg, globally_optimal=False, times_s=times,
                                  extra=extra)
    return DesignPoint.failed(epsilon_mol_m3, name, res["status"],
                              f"{label}: {res[status_key]} after {res['wall_s']:.1f} s (time limit {time_limit_s:g} s)",
                              times_s=times, extra=extra)
