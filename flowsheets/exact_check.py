"""Exact-model check of a surrogate-optimal plant design: re-simulate it with the transport engine.

Each stage is the exact transport engine along the feed channel
(:class:`nanosep.surrogates.module.EngineElement`, seed 002 eqs. 1-2), with the membrane, transport
model and fixed parameters of the surrogate's training case (``cases/surrogates/<name>.yaml``) and the
design's layer charge X, thickness dx and per-stage water flux.  The design fixes the flows: per stage
the feed flow, recovery gamma and flux (so the area, the permeate flows and the 224 m3/h product stay
as designed); the concentrations are recomputed:

* stage 1 feed = mix of the fresh feed (``F_0``, ``c_0``) and the recycled product (``R``, ``c_prod``):
  ``c_1 = (F_0 c_0 + R c_prod) / (F_0 + R)``; stage 2 (if any) is fed by stage 1's permeate;
* the permeate-recirculation loop ``c_prod = P(c_prod)`` is closed by Newton's method in electroneutral
  coordinates (finite-difference Jacobian from one batched engine evaluation per iteration), started
  at the surrogate's values;
* along a stage, ``method="chain"`` is a chain of ``K`` exact elements
  (:func:`nanosep.surrogates.module.run_module`) with ``K`` doubled from ``k_start`` until the Richardson
  estimate ``2 c_K - c_K/2`` of the closed-loop product (the chain is a first-order march, error ``a/K``)
  changes by less than ``rtol`` (default 0.1 %); ``method="ode"`` (default) is the same chain's
  K -> infinity limit, ``dc_i/ds = R_i(c) c_i`` with ``s = -ln(F/F_feed)``, integrated by adaptive RK45
  (integration tolerance ``rtol / 100``).  At seed 002's high recoveries (gamma 0.95, local step ``gamma/(K(1-gamma))``) the chain
  needs K = 256-512 for 0.1 % (about 2 min per point with the loop); the ODE takes ~50 engine calls per
  stage pass.  The two agree (``tests/test_flowsheet_pareto.py``).

Annual cost at the design's flux: the pump pressure the exact concentrations need,
``dP_i = J_i / Q + s (pi(c_feed,i) - pi(c_perm,i))`` (``s`` = 1 with osmotic pressure in the driving
force, 0 as in seed 002; van 't Hoff or Pitzer as the spec says, the stage equations of
:mod:`.stage`), the pump power ``F_feed,i dP_i / eta`` and the Verberne cost of :mod:`.costing`.
Without osmotic pressure the cost cannot change at fixed flux (error 0 by construction); the
surrogate's error then shows in the product concentration alone.

:func:`exact_check` returns a JSON-safe dict (stored in :attr:`DesignPoint.exact_check`).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nanosep.errors import ConvergenceError, InvalidInputError

from .costing import CostParameters, load_cost_parameters, verberne_costs
from .properties import canonical_ions

__all__ = ["ExactPlant", "exact_check", "osmotic_pressure_Pa", "plant_cost", "training_case_path"]

log = logging.getLogger(__name__)

GAS_CONSTANT = 8.314462618
ATMOSPHERIC_PA = 101325.0


def training_case_path(surrogate_name: str, root: str | Path | None = None) -> Path:
    """The surrogate case file a shipped surrogate was trained on: ``cases/surrogates/<name>.yaml``, or for a
    module surrogate ``<stem>_module[_variant]`` the element case ``<stem>_element.yaml`` its module data were built from."""
    root = Path(__file__).resolve().parents[1] if root is None else Path(root)
    folder = root / "cases" / "surrogates"
    for name in (surrogate_name, surrogate_name.split("_module")[0] + "_element"):
        p = folder / f"{name}.yaml"
        if p.exists():
            return p
    raise InvalidInputError(f"no training case for surrogate {surrogate_name!r} in {folder} "
                            f"(looked for {surrogate_name}.yaml and its _element case); give exact_check.case_file")


def osmotic_pressure_Pa(ions: Sequence[str], charges: Sequence[float], c_mol_m3, temperature_K: float,
                        model: str = "van_t_hoff") -> float:
    """``pi = phi R T sum c`` [Pa] (:mod:`.properties`): ``phi = 1`` (van 't Hoff) or Pitzer's osmotic coefficient."""
    c = np.asarray(c_mol_m3, dtype=float)
    phi = 1.0
    if model == "pitzer":
        from nanosep.transport.activity import make_activity_model

        phi = float(make_activity_model("pitzer", list(ions), list(charges), T=float(temperature_K)).osmotic_coefficient(c))
    elif model != "van_t_hoff":
        raise InvalidInputError(f"osmotic model {model!r}: choose van_t_hoff or pitzer")
    return phi * GAS_CONSTANT * temperature_K * float(c.sum())


def plant_cost(params: CostParameters, area_m2: float, pump_power_W: float, product_m3_s: float) -> dict[str, float]:
    """:func:`.costing.verberne_costs` on floats."""
    return {k: float(v) for k, v in verberne_costs(params, area_m2, pump_power_W, product_m3_s).items()}


class ExactPlant:
    """The design's flows and the exact element; :meth:`product_conc` is the closed-loop plant."""

    def __init__(self, design: Mapping[str, Any], feed_mol_m3: Mapping[str, float], element, *,
                 product_m3_h: float) -> None:
        self.element = element
        self.ions = tuple(element.ions)
        given, _ = canonical_ions(list(feed_mol_m3))
        feed = dict(zip(given, (float(v) for v in feed_mol_m3.values())))
        if missing := [i for i in self.ions if i not in feed]:
            raise InvalidInputError(f"the exact element's ions {list(self.ions)} include {missing}, absent from the feed {feed}")
        if extra := [i for i in feed if i not in self.ions and feed[i] > 0]:
            raise InvalidInputError(f"feed ions {extra} are not in the exact element's ions {list(self.ions)}")
        self.c0 = np.array([feed[i] for i in self.ions])
        self.n_stages = int(design.get("n_stages", 1))
        self.product = product_m3_h / 3600.0
        r = float(design.get("recycle_fraction") or 0.0)
        self.recycle_fraction = r
        self.recycle = r * self.product / (1.0 - r)                           # m3/s
        self.fresh = float(design["feed_m3_h"]) / 3600.0
        need = [k for i in range(1, self.n_stages + 1) for k in (f"stage{i}_flux_um_s", f"stage{i}_gamma")
                if design.get(k) is None]
        if need:
            raise InvalidInputError(f"design lacks {need}: the exact check needs each stage's flux and recovery "
                                    "(flowsheets.multistart.design_of records them)")
        self.flux_um_s = [float(design[f"stage{i}_flux_um_s"]) for i in range(1, self.n_stages + 1)]
        self.gamma = [float(design[f"stage{i}_gamma"]) for i in range(1, self.n_stages + 1)]
        self.membrane = {"charge_density_mol_m3": float(design["charge_mol_m3"]), "thickness_nm": float(design["thickness_nm"])}
        self.evaluations = 0
        from scipy.linalg import null_space

        #: orthonormal basis of electroneutral composition changes (sum z dc = 0)
        self.basis = null_space(np.asarray(element.charges, dtype=float)[None, :])

    def stage_feed_flows(self) -> list[float]:
        """Feed flow of each stage [m3/s] (stage 1: fresh feed + recycle; stage i+1: permeate of stage i)."""
        flows = [self.fresh + self.recycle]
        for g in self.gamma[:-1]:
            flows.append(flows[-1] * g)
        return flows

    # ---------------------------------------------------------------- one stage, B cases
    def _rejection(self, flux: float, c: np.ndarray) -> np.ndarray:
        B = c.shape[0]
        params = {k: np.full(B, v) for k, v in {**self.membrane, "flux_um_s": flux}.items()}
        res = self.element(params, c)
        self.evaluations += B
        if not res.converged.all():
            b = int(np.flatnonzero(~res.converged)[0])
            raise ConvergenceError(f"exact element failed at {dict(zip(self.ions, c[b].round(6)))}: {res.reason[b]}")
        return res.rejection

    def stage_chain(self, c_feed: np.ndarray, flux: float, gamma: float, K: int) -> np.ndarray:
        """Permeate (B, n) of a chain of K exact elements (:func:`nanosep.surrogates.module.run_module`)."""
        from nanosep.surrogates.module import run_module

        B = c_feed.shape[0]
        res = run_module(self.element, {k: np.full(B, v) for k, v in {**self.membrane, "flux_um_s": flux}.items()},
                         c_feed, np.full(B, gamma), K)
        self.evaluations += B * K
        if not res.converged.all():
            b = int(np.flatnonzero(~res.converged)[0])
            raise ConvergenceError(f"exact chain (K = {K}) failed at stage feed {dict(zip(self.ions, c_feed[b].round(6)))}: "
                                   f"{res.reason[b]}")
        return res.c_permeate

    def stage_ode(self, c_feed: np.ndarray, flux: float, gamma: float, rtol: float = 1e-6) -> np.ndarray:
        """Permeate (B, n) of the K -> infinity chain: ``dc_i/ds = R_i(c) c_i`` with ``s = -ln(F / F_feed)``
        from 0 to ``-ln(1 - gamma)`` (the continuous balance ``F dc = -R c dF`` of :mod:`nanosep.surrogates.module`),
        then ``c_perm = (c_feed - (1 - gamma) c_ret) / gamma``; adaptive RK45, all cases in one system."""
        from scipy.integrate import solve_ivp

        B, n = c_feed.shape
        s_end = -math.log(1.0 - gamma)

        def rhs(_s, y):
            c = y.reshape(B, n)
            return (self._rejection(flux, np.maximum(c, 0.0)) * c).ravel()

        sol = solve_ivp(rhs, (0.0, s_end), c_feed.ravel(), method="RK45", rtol=rtol, atol=1e-12 * max(c_feed.max(), 1.0))
        if not sol.success:
            raise ConvergenceError(f"exact stage integration failed: {sol.message}")
        c_ret = sol.y[:, -1].reshape(B, n)
        return (c_feed - (1.0 - gamma) * c_ret) / gamma

    # ---------------------------------------------------------------- the plant
    def stages(self, c_prod: np.ndarray, method: str = "ode", K: int = 0, ode_rtol: float = 1e-6
               ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(feed, permeate) concentrations (B, n) of every stage for product (recycle) concentrations (B, n)."""
        c_prod = np.atleast_2d(np.asarray(c_prod, dtype=float))
        c = (self.fresh * self.c0[None, :] + self.recycle * c_prod) / (self.fresh + self.recycle)
        out = []
        for flux, g in zip(self.flux_um_s, self.gamma):
            cp = self.stage_ode(c, flux, g, ode_rtol) if method == "ode" else self.stage_chain(c, flux, g, K)
            out.append((c, cp))
            c = cp
        return out

    def product_conc(self, start: np.ndarray, method: str = "ode", K: int = 0, tol: float = 1e-8,
                     max_iter: int = 30, ode_rtol: float = 1e-6) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """Closed-loop product concentration and the stages' (feed, permeate) at the last evaluation: Newton on
        ``G(x) = x`` (G = plant with recycle composition x) in electroneutral coordinates, the finite-difference
        Jacobian from one batched evaluation per iteration."""
        x = np.asarray(start, dtype=float).copy()
        if self.recycle <= 0.0:
            st = self.stages(x, method, K, ode_rtol)
            return st[-1][1][0], [(cf[0], cp[0]) for cf, cp in st]
        V = self.basis
        for it in range(max_iter):
            h = 1e-6 * max(float(np.abs(x).max()), 1e-6)
            X = np.vstack([x, x[None, :] + h * V.T])
            st = self.stages(X, method, K, ode_rtol)
            G = st[-1][1]
            f = V.T @ (G[0] - x)
            J = (V.T @ (G[1:] - G[0]).T) / h                # dG/dy in the basis
            dy = np.linalg.solve(J - np.eye(V.shape[1]), -f)
            x = x + V @ dy
            if np.max(np.abs(V @ dy)) <= tol * max(float(np.abs(x).max()), 1e-300):
                return x, [(cf[0], cp[0]) for cf, cp in st]
        raise ConvergenceError(f"recirculation loop (recycle {self.recycle_fraction:.3g}) did not converge in {max_iter} "
                               "Newton iterations")


def _rel_change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-300)))


def exact_check(point, spec, element=None, *, case_file: str | Path | None = None, surrogate_name: str | None = None,
                method: str = "ode", rtol: float = 1e-3, k_start: int = 16, k_max: int = 1024,
                cost_parameters: CostParameters | None = None) -> dict[str, Any]:
    """Re-simulate ``point`` (a feasible :class:`DesignPoint`) of plant ``spec`` with the exact engine.

    element: an :class:`~nanosep.surrogates.module.ElementModel` (default: the engine on the training
    case ``case_file``, or that of ``surrogate_name`` via :func:`training_case_path`).  method: ``"ode"``
    (the K -> infinity chain, adaptive) or ``"chain"`` (K elements, doubled until the Richardson estimate
    changes by less than ``rtol``).  Returns the module docstring's quantities: ``product_conc_mol_m3``
    {exact, surrogate, abs_error (surrogate - exact), rel_error} per ion, ``cost_usd_per_year`` (same keys),
    the pump pressures at the design flux, ``n_elements`` (0 for the ODE), the refinement history, timing.

    Raises:
        InvalidInputError: an infeasible point, a design without stage fluxes, or no training case.
        ConvergenceError: an exact element, the recycle loop or the K refinement failed.
    """
    t0 = time.perf_counter()
    if not point.feasible:
        raise InvalidInputError(f"point at epsilon {point.epsilon_mol_m3!r} is not feasible; nothing to check")
    if not 0 < rtol < 1:
        raise InvalidInputError(f"rtol={rtol!r} must be in (0, 1)")
    if method not in ("ode", "chain"):
        raise InvalidInputError(f"method={method!r}: choose ode or chain")
    if element is None:
        from nanosep.surrogates.domain import load_surrogate_case
        from nanosep.surrogates.module import EngineElement

        if case_file is None:
            if surrogate_name is None:
                raise InvalidInputError("exact_check needs an element, a case_file or a surrogate_name")
            case_file = training_case_path(surrogate_name)
        case = load_surrogate_case(case_file)
        element = EngineElement.from_case(case.base_case, ions=case.ions)
    design = point.design
    plant = ExactPlant(design, spec.feed_conc_mol_m3, element, product_m3_h=spec.product_m3_h)
    sur = np.array([float(point.product_conc_mol_m3[i]) for i in plant.ions])
    history: list[dict[str, Any]] = []
    if method == "ode":
        value, stages = plant.product_conc(sur, "ode", ode_rtol=rtol * 1e-2)
        K_final = 0
    else:
        K, prev_raw, prev_val, start, value = k_start, None, None, sur.copy(), None
        while True:
            if K > k_max:
                raise ConvergenceError(f"exact check: the product concentration did not settle to rtol {rtol:g} by "
                                       f"K = {k_max} (last changes {[h['relative_change'] for h in history[-3:]]})")
            raw, stages = plant.product_conc(start, "chain", K)
            val = raw if prev_raw is None else 2.0 * raw - prev_raw       # Richardson (first-order chain)
            change = _rel_change(val, prev_val) if prev_val is not None else math.nan
            history.append({"n_elements": K, "product_chain": raw.tolist(), "product_richardson": val.tolist(),
                            "relative_change": change})
            if math.isfinite(change) and change < rtol:
                value = val
                break
            prev_val = val if prev_raw is not None else None
            prev_raw, start, K = raw, raw, 2 * K
        K_final = K

    # ---- cost at the design flux
    params = cost_parameters or load_cost_parameters()
    q_si = spec.permeability_relation.q_si(float(design["thickness_nm"]))
    s = 1.0 if spec.osmotic else 0.0
    db_charges = element.charges
    feeds = plant.stage_feed_flows()
    dp_exact, dp_design = [], [float(design.get(f"pump{i}_dp_bar", math.nan)) * 1e5 for i in range(1, plant.n_stages + 1)]
    for (cf, cp), flux in zip(stages, plant.flux_um_s):
        dpi = (osmotic_pressure_Pa(plant.ions, db_charges, cf, spec.temperature_K, spec.osmotic_model)
               - osmotic_pressure_Pa(plant.ions, db_charges, cp, spec.temperature_K, spec.osmotic_model))
        dp_exact.append(flux * 1e-6 / q_si + s * dpi)
    area = sum(float(design[f"stage{i}_n_modules"]) for i in range(1, plant.n_stages + 1)) * float(
        design.get("area_module_m2", spec.area_module_m2))
    eta = spec.pump_efficiency
    power_exact = sum(f * dp / eta for f, dp in zip(feeds, dp_exact))
    power_design = sum(f * dp / eta for f, dp in zip(feeds, dp_design))
    cost_exact = plant_cost(params, area, power_exact, plant.product)["operation"]
    cost_recomputed = plant_cost(params, area, power_design, plant.product)["operation"]
    cost_sur = float(point.objective_usd_per_year)

    def err(e: float, s_: float) -> dict[str, float]:
        return {"exact": float(e), "surrogate": float(s_), "abs_error": float(s_ - e),
                "rel_error": float((s_ - e) / e) if e != 0 else math.nan}

    return {
        "method": ("exact engine (surrogates.module.EngineElement) along each stage: "
                   + ("continuous limit K -> infinity, adaptive RK45" if method == "ode" else
                      f"chain of K elements, Richardson 2 c_K - c_K/2, rtol {rtol:g}")
                   + "; recycle loop closed by Newton"),
        "n_elements": int(K_final), "rtol": rtol,
        "product_conc_mol_m3": {ion: err(value[j], sur[j]) for j, ion in enumerate(plant.ions)},
        "cost_usd_per_year": err(cost_exact, cost_sur),
        "cost_recomputed_at_design_pressure_usd_per_year": cost_recomputed,
        "pump_dp_bar": {"exact": [d / 1e5 for d in dp_exact], "design": [d / 1e5 for d in dp_design]},
        "stage_permeate_mol_m3": [dict(zip(plant.ions, cp.tolist())) for _, cp in stages],
        "refinement": history, "element_evaluations": plant.evaluations,
        "seconds": time.perf_counter() - t0,
    }
