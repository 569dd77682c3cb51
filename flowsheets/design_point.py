"""One solved (or failed) design point of a plant optimization: the record every solver returns.

The local path (:func:`nanosep.flowsheets.superstructure.solve_plant` with multi-start), the global
path (MAiNGO on the reduced-space plant) and the epsilon-constraint Pareto driver all produce a
:class:`DesignPoint`; a failed point is a :class:`DesignPoint` with ``feasible=False`` and a
``message``, never a dropped row.  :meth:`DesignPoint.to_dict` is JSON-safe (NaN -> ``None``).

Units: costs in USD/yr and USD/m3 (cost-year of ``data/verberne_costs.csv``), concentrations in
mol/m3, flows in m3/h, pressures in bar, times in s.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["DesignPoint"]


def _json_safe(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # numpy scalar
        return _json_safe(v.item())
    return v


@dataclass
class DesignPoint:
    """A plant design at one epsilon (permeate limit) with its solver report.

    * ``epsilon_mol_m3``: the permeate-concentration limit of the epsilon-constraint [mol/m3]
      (``nan`` for a single-objective solve without a limit);
    * ``solver``: e.g. ``"cyipopt-multistart"``, ``"maingo"``; ``status``: the solver's
      termination text; ``feasible``: a design that satisfies all constraints was returned;
    * ``globally_optimal``: ``True`` only when a global solver certified the gap; ``None`` for
      local solvers; ``lower_bound_usd_per_year`` and ``relative_gap`` from the global solver
      (``nan`` otherwise);
    * ``design``: stages, module counts, pump pressures [bar], membrane properties (thickness_nm,
      charge_mol_m3, permeability_L_m2_h_bar), recycle fraction, feed flow [m3/h];
    * ``exact_check``: the design re-simulated with the exact transport model (product
      concentrations, their error against the surrogate, cost difference); ``None`` until run.
    """

    epsilon_mol_m3: float
    solver: str
    status: str
    feasible: bool
    objective_usd_per_year: float = math.nan
    cost_usd_per_m3: float = math.nan
    product_conc_mol_m3: dict[str, float] = field(default_factory=dict)
    design: dict[str, Any] = field(default_factory=dict)
    globally_optimal: bool | None = None
    lower_bound_usd_per_year: float = math.nan
    relative_gap: float = math.nan
    times_s: dict[str, float] = field(default_factory=dict)
    exact_check: dict[str, Any] | None = None
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (non-finite floats -> ``None``)."""
        return _json_safe(asdict(self))

    @classmethod
    def failed(cls, epsilon_mol_m3: float, solver: str, status: str, message: str, **kw: Any) -> "DesignPoint":
        """A reported failure (infeasible, solver error, time limit without a feasible point)."""
        return cls(epsilon_mol_m3=epsilon_mol_m3, solver=solver, status=status, feasible=False, message=message, **kw)
