"""Local plant optimization with multi-start: Sobol start points, cyipopt from each, best feasible kept.

:func:`solve_multistart` builds a fresh model (:func:`.superstructure.build_plant`) for every start,
sets the design decisions to the start values, and solves it with
:func:`.superstructure.solve_plant` (sequential initialization, structural checks, cyipopt).  The
best feasible result (lowest objective; a product concentration within the limit) is returned as a
:class:`.design_point.DesignPoint` with ``solver="cyipopt-multistart"``, ``globally_optimal=None``
and the number of starts and converged starts in ``extra``.  Seed 002 sec. 3.4 used 10 multistarts
for its local two-stage solves.

Start points (:func:`start_points`): start 0 is the spec's own start values; the others are a
scrambled Sobol sequence (``scipy.stats.qmc.Sobol``) over the *intensive* coordinates of the
decisions, each within its bounds:

* layer thickness dx [nm] and charge X [mol/m3] uniform in the membrane bounds,
* permeate recycle fraction uniform in [0, ``RECYCLE_START_MAX``],
* per stage the recovery gamma in ``GAMMA_START`` (intersected with a module surrogate's gamma
  domain) and the water flux J [um/s] in ``FLUX_START_UM_S`` (capped at 90 % of a surrogate's
  flux domain),

from which the stage feed flows (product / (1 - r) / gamma, backwards through the stages), the
fresh-feed guess, the module count ``N = gamma F_feed / (J A_module)`` and the pump pressure
``dP = J / Q`` follow (clipped to their bounds).  Sampling (gamma, J) instead of (N, dP) directly
keeps every start initializable: a random (N, dP) pair usually asks for more permeate than there is
feed, which :func:`.initialization._guess_stage` refuses.

``objective="purity"`` minimizes the product concentration of the limit ion instead of the cost (no
permeate limit): the second anchor of the epsilon-constraint front (:mod:`.pareto`).
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyomo.environ as pyo

from nanosep.errors import InvalidInputError

from .design_point import DesignPoint
from .superstructure import (
    PlantSpec,
    build_plant,
    solve_plant,
)

__all__ = ["FLUX_START_UM_S", "GAMMA_START", "RECYCLE_START_MAX", "design_of", "point_from_model",
           "solve_multistart", "start_points"]

log = logging.getLogger(__name__)

#: start ranges of the intensive coordinates (module docstring)
GAMMA_START = (0.2, 0.9)
FLUX_START_UM_S = (2.0, 40.0)
RECYCLE_START_MAX = 0.5
#: Without osmotic pressure the flux is Q dP, so with (dP, N, X, dx, r) fixed the product flow is fixed
#: too and the feed flow appears in no equation that sets it: the Dulmage-Mendelsohn check of
#: ``solve_plant`` (decisions = ``m.design_decisions``) then reports a structural singularity although
#: the optimization problem is well posed (the degrees of freedom are right; the product-flow equality
#: just pins a different decision).  For ``osmotic=False`` only the degrees of freedom are checked.
#: slack on the permeate limit when judging feasibility of a solver result: relative, and absolute
#: [mol/m3] for Ipopt's bound relaxation (bound_relax_factor 1e-8 of max(1, |limit|))
LIMIT_RTOL, LIMIT_ATOL = 1e-6, 2e-8
OK_TERMINATIONS = ("optimal", "locallyOptimal")


def _surrogate_range(rejection_factory, name: str) -> tuple[float, float] | None:
    """Domain of input ``name`` of the stage-1 rejection model's surrogate, if it has one."""
    try:
        model = rejection_factory(1)
    except Exception:  # noqa: BLE001 - only a hint for the start ranges
        return None
    sur = getattr(model, "surrogate", None)
    card = getattr(sur, "card", None)
    if card is None:
        return None
    for v in card.inputs:
        if v.name == name:
            return float(v.low), float(v.high)
    return None


def start_points(spec: PlantSpec, n_starts: int, *, seed: int = 0, gamma_range=GAMMA_START,
                 flux_range_um_s=FLUX_START_UM_S, thickness_bounds_nm=(75.0, 150.0),
                 charge_bounds_mol_m3=(-500.0, -100.0)) -> list[dict[str, Any]]:
    """``n_starts`` start values (module docstring); start 0 is the spec's own."""
    if n_starts < 1:
        raise InvalidInputError(f"n_starts={n_starts!r} must be >= 1")
    from scipy.stats import qmc

    ns = spec.n_stages
    first = {"thickness_nm": spec.thickness_nm, "charge_mol_m3": spec.charge_mol_m3,
             "recycle_fraction": spec.recycle_fraction if spec.recirculation else 0.0,
             "dp_bar": [spec.dp_bar] * ns, "n_modules": [spec.n_modules] * ns}
    starts = [first]
    if n_starts == 1:
        return starts
    dim = 3 + 2 * ns
    with warnings.catch_warnings():  # "balance properties" warning for n not a power of 2: harmless here
        warnings.simplefilter("ignore", UserWarning)
        u = qmc.Sobol(dim, scramble=True, seed=seed).random(n_starts - 1)
    lo_n, hi_n = spec.n_modules_bounds
    product = spec.product_m3_h / 3600.0
    for row in u:
        dx = thickness_bounds_nm[0] + row[0] * (thickness_bounds_nm[1] - thickness_bounds_nm[0])
        X = charge_bounds_mol_m3[0] + row[1] * (charge_bounds_mol_m3[1] - charge_bounds_mol_m3[0])
        r = row[2] * RECYCLE_START_MAX if spec.recirculation else 0.0
        q_si = spec.permeability_relation.q_si(dx)
        gammas = [gamma_range[0] + row[3 + 2 * i] * (gamma_range[1] - gamma_range[0]) for i in range(ns)]
        fluxes = [(flux_range_um_s[0] + row[4 + 2 * i] * (flux_range_um_s[1] - flux_range_um_s[0])) * 1e-6
                  for i in range(ns)]
        permeate = product / (1.0 - r)
        feeds = [permeate / gammas[-1]]                 # stage feeds, last stage first
        for g in reversed(gammas[:-1]):
            feeds.insert(0, feeds[0] / g)
        ns_ = [min(max(g * f / (j * spec.area_module_m2), lo_n), hi_n) for g, f, j in zip(gammas, feeds, fluxes)]
        dps = [min(j / q_si / 1e5, 40.0) for j in fluxes]
        starts.append({"thickness_nm": dx, "charge_mol_m3": X, "recycle_fraction": r, "dp_bar": dps, "n_modules": ns_,
                       "feed_m3_h": (feeds[0] - r * permeate) * 3600.0})
    return starts


def _apply_start(m, start: Mapping[str, Any]) -> None:
    m.membrane.thickness_nm.set_value(float(start["thickness_nm"]))
    if m.membrane.component("eq_charge_thickness") is None:
        m.membrane.charge_mol_m3.set_value(float(start["charge_mol_m3"]))
    if m.component("splitter") is not None:
        r = float(start["recycle_fraction"])
        m.splitter.split[1].set_value(r)
        m.splitter.split[0].set_value(1.0 - r)
        perm = m.product_target.value / (1.0 - r)
        # tear stream: the first initialization pass copies the splitter's outlet into the mixer's inlet
        for stream, flow in ((m.mixer.inlet[1].state, r * perm), (m.splitter.inlet, perm),
                             (m.splitter.outlet[0].state, perm - r * perm), (m.splitter.outlet[1].state, r * perm)):
            stream.flow_vol.set_value(flow)
    if start.get("feed_m3_h"):
        m.feed.outlet.flow_vol.set_value(float(start["feed_m3_h"]) / 3600.0)
    for pump, stage, dp, n in zip(m.pumps, m.stages, start["dp_bar"], start["n_modules"]):
        pump.deltaP.set_value(float(dp) * 1e5)
        stage.n_modules.set_value(float(n))


def _use_purity_objective(m) -> None:
    """Minimize the product concentration of the limit ion (no permeate limit, no cost objective)."""
    m.objective.deactivate()
    m.permeate_limit.deactivate()
    limit_ion = _limit_ion(m)
    m.purity_objective = pyo.Objective(expr=m.product.inlet.conc[limit_ion] / (pyo.units.mol / pyo.units.m**3),
                                       sense=pyo.minimize, doc="product concentration of the limit ion [mol/m3]")


def _limit_ion(m) -> str:
    from .properties import canonical_ions

    return canonical_ions([m.spec.limit_ion])[0][0]


def design_of(m) -> dict[str, Any]:
    """The design of a solved plant model: decisions plus the per-stage flux, recovery and feed flow."""
    v = pyo.value
    d: dict[str, Any] = {"n_stages": len(m.stages), "feed_m3_h": v(m.feed.outlet.flow_vol) * 3600.0,
                         "product_m3_h": v(m.product.inlet.flow_vol) * 3600.0,
                         "thickness_nm": m.membrane.thickness_nm.value, "charge_mol_m3": m.membrane.charge_mol_m3.value,
                         "permeability_L_m2_h_bar": m.membrane.permeability.value,
                         "recycle_fraction": m.splitter.split[1].value if m.component("splitter") is not None else 0.0,
                         "osmotic": bool(m.spec.osmotic), "area_module_m2": float(m.spec.area_module_m2)}
    for s, p in zip(m.stages, m.pumps):
        n = s.local_name
        d[f"{n}_n_modules"] = s.n_modules.value
        d[f"{p.local_name}_dp_bar"] = p.deltaP.value / 1e5
        d[f"{n}_flux_um_s"] = s.flux.value * 1e6
        d[f"{n}_gamma"] = s.gamma.value
        d[f"{n}_feed_m3_h"] = v(s.feed.flow_vol) * 3600.0
        d[f"{n}_feed_conc_mol_m3"] = {i: s.feed.conc[i].value for i in s.feed.ion_names}
    d = {k: (float(x) if isinstance(x, (float, np.floating)) else x) for k, x in d.items()}
    return d


def point_from_model(m, epsilon_mol_m3: float, termination: str, solver: str = "cyipopt-multistart",
                     times_s: Mapping[str, float] | None = None, extra: Mapping[str, Any] | None = None) -> DesignPoint:
    """A :class:`DesignPoint` of a solved model (feasible: an OK termination and the limit met)."""
    limit_ion = _limit_ion(m)
    prod = {i: float(m.product.inlet.conc[i].value) for i in m.product.inlet.ion_names}
    ok = termination in OK_TERMINATIONS
    if ok and math.isfinite(epsilon_mol_m3):
        ok = prod[limit_ion] <= epsilon_mol_m3 * (1.0 + LIMIT_RTOL) + LIMIT_ATOL
    return DesignPoint(epsilon_mol_m3=float(epsilon_mol_m3), solver=solver, status=termination, feasible=bool(ok),
                       objective_usd_per_year=float(pyo.value(m.costing.operation)),
                       cost_usd_per_m3=float(pyo.value(m.costing.per_m3)), product_conc_mol_m3=prod,
                       design=design_of(m), globally_optimal=None, times_s=dict(times_s or {}),
                       extra=dict(extra or {}))


@dataclass
class _Try:
    objective: float
    point: DesignPoint


def solve_multistart(spec: PlantSpec, rejection: Callable[[int], Any], epsilon_mol_m3: float | None, *,
                     n_starts: int = 8, seed: int = 0, objective: str = "cost",
                     solver_options: dict | None = None, start_overrides: list[dict] | None = None,
                     cost_parameters=None) -> DesignPoint:
    """Best of ``n_starts`` local solves (module docstring).

    spec: the plant; rejection: ``rejection(i)`` -> stage ``i``'s rejection model (as
    :func:`.superstructure.build_plant`); epsilon_mol_m3: the product-concentration limit of the
    limit ion [mol/m3], ``None`` for no limit (the cost anchor); objective: ``"cost"`` (annual
    operating cost) or ``"purity"`` (product concentration, epsilon ignored);
    start_overrides: extra start values tried first (e.g. a neighbouring Pareto point's design).
    A start whose initialization or solve raises counts as not converged.  If no start gives a
    feasible design the result is a failed :class:`DesignPoint` naming the terminations seen.
    """
    if objective not in ("cost", "purity"):
        raise InvalidInputError(f"objective={objective!r}: choose 'cost' or 'purity'")
    t0 = time.perf_counter()
    eps = math.nan if epsilon_mol_m3 is None or objective == "purity" else float(epsilon_mol_m3)
    if math.isfinite(eps) and eps <= 0:
        raise InvalidInputError(f"epsilon_mol_m3={epsilon_mol_m3!r} must be > 0")
    flux = _surrogate_range(rejection, "flux_um_s")
    gam = _surrogate_range(rejection, "gamma")
    flux_range = FLUX_START_UM_S if flux is None else (max(FLUX_START_UM_S[0], flux[0]), min(FLUX_START_UM_S[1], 0.9 * flux[1]))
    gamma_range = GAMMA_START if gam is None else (max(GAMMA_START[0], gam[0] + 0.02), min(GAMMA_START[1], gam[1] - 0.02))
    starts = [*(start_overrides or []), *start_points(spec, n_starts, seed=seed, gamma_range=gamma_range,
                                                        flux_range_um_s=flux_range)]
    best: _Try | None = None
    statuses: list[str] = []
    converged = 0
    for k, start in enumerate(starts):
        try:
            m = build_plant(spec, rejection, cost_parameters=cost_parameters)
            _apply_start(m, start)
            if objective == "purity":
                _use_purity_objective(m)
                limit = None
            else:
                limit = 1e6 if not math.isfinite(eps) else eps     # no limit: a value no design reaches
            res = solve_plant(m, permeate_limit_mol_m3=limit, solver_options=solver_options)
        except Exception as exc:  # noqa: BLE001 - a failed start is counted, not fatal
            statuses.append(f"start {k}: {type(exc).__name__}: {str(exc)[:160]}")
            log.debug("start %d failed: %s", k, exc)
            continue
        statuses.append(f"start {k}: {res.termination}")
        pt = point_from_model(m, eps, res.termination)
        if not pt.feasible:
            continue
        converged += 1
        value = pyo.value(m.purity_objective) if objective == "purity" else pt.objective_usd_per_year
        if best is None or value < best.objective:
            best = _Try(float(value), pt)
            best.point.extra["best_start"] = k
    extra = {"n_starts": len(starts), "n_converged": converged, "objective": objective}
    times = {"total": time.perf_counter() - t0}
    if best is None:
        return DesignPoint.failed(eps, "cyipopt-multistart", "no feasible start",
                                  f"none of {len(starts)} starts gave a feasible design: " + "; ".join(statuses[:4]),
                                  times_s=times, extra=extra)
    best.point.extra.update(extra)
    best.point.times_s = times
    return best.point
