"""Seed 002's superstructure (Fig. 7) as a reduced-space Pyomo model for deterministic global solves.

The full-space model of :mod:`.superstructure` has a variable for every stream state and one
equation per balance; a branch-and-bound solver would relax and branch on all of them.  Seed 002
(sec. 2.6) solves a *reduced-space* formulation instead: only the degrees of freedom (plus the few
tear variables an implicit recycle needs) are variables, every other quantity is an explicit
expression substituted into the constraints, and the ANNs are nested tanh expressions
(:func:`nanosep.surrogates.explicit.surrogate_expressions`).  This module builds that model with
the same physics as :func:`.superstructure.build_plant` (tests compare both at fixed designs).

Variables (``S`` = 1 or 2 stages; ``P`` = product flow, fixed by the spec)::

    flux_um_s[i]        water flux J_i of stage i [um/s] (bounded by the surrogate's flux domain)  i = 1..S
    gamma[i]            recovery of stage i, F_perm,i / F_feed,i (gamma_1 fixes the fresh feed flow)
    thickness_nm        layer thickness dx [nm]; charge_mol_m3 X [mol/m3] (or X(dx) by the relation)
    recycle_fraction    r, fraction of the final permeate sent back to the feed mixer
    perm_conc[j]        tear (recirculation only): final permeate concentration of ion j, for the
                        ions the stages need (rejection outputs and surrogate inputs); the limited
                        ion's tear carries the permeate limit epsilon as its upper bound
    n_modules[i]        only with integer module counts (else an expression, below)

Everything else is explicit::

    F_perm,S = P / (1 - r)                       product-flow specification (sec. 3.1) solved for F_perm,S
    F_perm,1 = F_perm,2 / gamma_2                (two stages: stage 2 is fed by the stage-1 permeate)
    N_i      = F_perm,i / (J_i A_module)          module count carrying that permeate flow
    F_feed,1 = F_perm,1 / gamma_1,  w = r F_perm,S / F_feed,1 = r gamma_1 [gamma_2]   (recycle share)
    c_feed,1 = (1 - w) c_0 + w t                 mixer (t: torn final permeate)
    c_perm,i = stage_i(c_feed,i, J_i, gamma_i, X, dx)    element / k-element chain / module surrogate
    dP_i     = J_i / Q + s (pi(c_feed,i) - pi(c_perm,i))   seed 002 eq. 3 solved for dP (s = 1 with osmotic)
    W_1 = F_feed,1 dP_1 / eta,  W_2 = F_perm,1 dP_2 / eta;  costs: :func:`.costing.verberne_costs`

The flux, not the pump pressure, is the stage variable: then the osmotic pressure and the product-flow
specification are explicit (no tear for the osmotic flux, no product-flow equality), and every
network input except the downstream concentrations is a variable itself, which keeps the McCormick
relaxations of the networks tight (with N as the variable and J = P/(N A) inside tanh, MAiNGO did not
close the module-surrogate gap in 30 s; with J as the variable it certifies in < 1 s without recycle).
The only equalities are the recycle closures ``t_j = c_perm,S,j`` (scaled by the bound of ``t_j``),
with integer module counts ``N_i J_i A (1 - r) [gamma_2] = P``, and with two stages one link variable
per log-scaled concentration input of stage 2 (``stage2_feed_conc_<ion> = c_perm,1``, bounded by the
surrogate domain: the stage-1 permeate is not provably positive in the relaxations, and log10 needs it).  Inequalities: ``0 <= dP_i <= 40 bar``,
module-count bounds (continuous N), the surrogate domain of every input that is an expression
(downstream concentrations, stage-1 feed with recycle) and the permeate limit
``c_perm,S,limit_ion <= epsilon`` (``m.permeate_limit``, scaled by epsilon).
One stage with recirculation: 6 variables (J, gamma, dx, X, r, one tear for Na2SO4) and 1 equality,
seed 002 sec. 3.2's count (their 6 variables and 1 equality).  The full-space twin is
:func:`.superstructure.build_plant`; :func:`apply_design_to_full_plant` moves a design across.

Rejection variants (``rejection``): ``"element"`` (k = 1, case A: one element surrogate at the
stage feed), ``"chain"`` (case B1: ``n_elements`` element surrogates in series with the ion
balances of :class:`.rejection.ElementChain`), ``"module"`` (case B2: a module surrogate with
gamma).  Osmotic pressure: van 't Hoff only (``spec.osmotic_model = "pitzer"`` is refused).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyomo.environ as pyo

from nanosep.errors import InvalidInputError

from .costing import CostParameters, load_cost_parameters, verberne_costs
from .membrane import LMH_PER_BAR_TO_SI
from .properties import GAS_CONSTANT, canonical_ions
from .rejection import _balance_ion

__all__ = ["REJECTION_KINDS", "SHIPPED_SURROGATES", "apply_design_to_full_plant", "build_reduced_plant",
           "design_of", "evaluate_design", "solve_tears"]

REJECTION_KINDS = ("element", "chain", "module")
#: default shipped surrogate per rejection kind (seed 002 Table 1 / Table 3 counterparts)
SHIPPED_SURROGATES = {"element": "seed002_na2so4_element", "chain": "seed002_na2so4_element",
                      "module": "seed002_na2so4_module"}
#: pump pressure limit [bar] (``unit_models.add_pump`` default max_dp_Pa = 40e5)
DP_MAX_BAR = 40.0
#: lower bound of gamma_1 for element/chain models (the module surrogate's domain bounds it otherwise)
GAMMA_MIN = 0.05


def _domain(surrogate, name: str) -> tuple[float, float]:
    v = surrogate.card.inputs[surrogate.card.input_names.index(name)]
    return float(v.low), float(v.high)


class _StageModel:
    """Rejection of one stage as explicit expressions: ``__call__(c_feed, flux_um_s, gamma, X, dx)``."""

    def __init__(self, kind: str, surrogate, ions: list[str], charges: dict[str, int], n_elements: int,
                 balance_with: str | None, tanh: str = "tanh"):
        from nanosep.surrogates.embedding import network_definition

        self.kind, self.sur, self.ions, self.z, self.K = kind, surrogate, ions, charges, n_elements
        self.tanh = tanh
        names = surrogate.card.input_names
        if kind == "module" and "gamma" not in names:
            raise InvalidInputError(f"rejection='module' needs a surrogate with a gamma input; {surrogate.card.name!r} "
                                    f"has {names}")
        if kind != "module" and "gamma" in names:
            raise InvalidInputError(f"surrogate {surrogate.card.name!r} takes gamma: use rejection='module'")
        self.direct, self.bal = _balance_ion(surrogate, ions, balance_with)
        self.conc_inputs = [n[2:-len("_mol_m3")] for n in names if n.startswith("c_") and n.endswith("_mol_m3")]
        if bad := [i for i in self.conc_inputs if i not in ions]:
            raise InvalidInputError(f"surrogate input ion(s) {bad} are not in the feed ions {ions}")
        flux = [n for n in names if n in ("flux_um_s", "flux_L_m2_h")]
        allowed = {"charge_density_mol_m3", "thickness_nm", "gamma", *flux, *(f"c_{i}_mol_m3" for i in self.conc_inputs)}
        if bad := [n for n in names if n not in allowed]:
            raise InvalidInputError(f"surrogate input(s) {bad} have no counterpart in the reduced plant")
        self.net = network_definition(surrogate)
        self.domain_checks: list[tuple[str, Any, float, float]] = []  # (label, expression, low, high)

    def needed_ions(self) -> list[str]:
        """Ions whose stage-feed concentration the stage needs (rejections and surrogate inputs)."""
        return [i for i in self.ions if i in self.direct or i in self.conc_inputs]

    def _element(self, c: Mapping[str, Any], flux_um_s, gamma, X, dx, label: str, rejections: dict | None = None
                 ) -> dict[str, Any]:
        """Permeate concentrations of one surrogate evaluation at feed ``c`` (``rejections`` receives R_j)."""
        from nanosep.surrogates.explicit import surrogate_expressions

        x = {"charge_density_mol_m3": X, "thickness_nm": dx, "flux_um_s": flux_um_s, "flux_L_m2_h": flux_um_s * 3.6,
             "gamma": gamma}
        x.update({f"c_{i}_mol_m3": c[i] for i in self.conc_inputs})
        y = surrogate_expressions(self.sur, {n: x[n] for n in self.sur.card.input_names}, net=self.net,
                                  tanh=self.tanh)
        for n in self.sur.card.input_names:
            if n.startswith("c_") or n in ("flux_um_s", "flux_L_m2_h", "gamma"):
                lo, hi = _domain(self.sur, n)
                self.domain_checks.append((f"{label}:{n}", x[n], lo, hi))
        if rejections is not None:
            rejections.update({j: y[f"rejection_{j}"] for j in self.direct})
        cp = {j: (1.0 - y[f"rejection_{j}"]) * c[j] for j in self.direct}
        return self._balance(cp)

    def max_transmission(self) -> float:
        """Largest ``1 - R`` the network's output layer can produce (tanh range mapped to R)."""
        card, worst = self.sur.card, 1.0
        for k, o in enumerate(card.outputs):
            if not o.name.startswith("rejection_"):
                continue
            off, fac = float(card.output_scaling.offset_array[k]), abs(float(card.output_scaling.factor_array[k]))
            lo_u, hi_u = off - fac, off + fac
            worst = max(worst, 10.0 ** hi_u if o.transform == "log10_transmission" else 1.0 - lo_u)
        return worst

    def _balance(self, cp: dict[str, Any]) -> dict[str, Any]:
        if self.bal is not None:
            cp[self.bal] = -sum(self.z[i] * cp[i] for i in self.direct) / self.z[self.bal]
        return cp

    def __call__(self, c: Mapping[str, Any], flux_um_s, gamma, X, dx, label: str) -> dict[str, Any]:
        if self.kind in ("element", "module"):
            return self._element(c, flux_um_s, gamma, X, dx, label)
        K, ck, perm = self.K, dict(c), []
        for k in range(1, K + 1):  # ElementChain of .rejection (seed 002 eq. 1)
            R: dict[str, Any] = {}
            cp = self._element(ck, flux_um_s, gamma, X, dx, f"{label}:element{k}", R)
            perm.append(cp)
            # ion balance F_k c_k = F_k-1 c_k-1 - q c_p,k; for ions with a rejection output in seed 002's
            # product form c_k = c_k-1 (1 + (gamma/K) R / (1 - k gamma/K)), whose interval stays positive
            # (the log-scaled concentration input of the next element needs that in the relaxations)
            ck = {j: (ck[j] * (1.0 + (gamma / K) * R[j] / (1.0 - k * gamma / K)) if j in R else
                      ((1.0 - (k - 1) * gamma / K) * ck[j] - (gamma / K) * cp[j]) / (1.0 - k * gamma / K))
                  for j in self.needed_ions()}
        return {j: sum(p[j] for p in perm) / K for j in self.ions}


def build_reduced_plant(spec, rejection: str = "element", *, surrogate=None, n_elements: int = 3,
                        epsilon_mol_m3: float | None = None, cost_parameters: CostParameters | None = None,
                        balance_with: str | None = None, integer_modules: bool | None = None,
                        tanh: str = "tanh") -> pyo.ConcreteModel:
    """The reduced-space plant of the module docstring for a :class:`.superstructure.PlantSpec`.

    ``surrogate``: a :class:`nanosep.surrogates.onnx_io.Surrogate` (default: the shipped model of
    :data:`SHIPPED_SURROGATES`); ``epsilon_mol_m3``: permeate limit (default ``spec.permeate_limit_mol_m3``);
    ``integer_modules``: default ``spec.integer_modules``; ``tanh``: how the networks write tanh
    (``"tanh"``, or ``"exp"`` = 2/(1 + exp(-2x)) - 1 for SCIP; see
    :func:`nanosep.surrogates.explicit.network_expressions`).  The model carries ``m.q`` (dict of named
    explicit expressions), ``m.decision_vars``, ``m.tear_vars``, ``m.tear_rhs`` and ``m.spec``.
    """
    from nanosep.surrogates.onnx_io import load_shipped

    if rejection not in REJECTION_KINDS:
        raise InvalidInputError(f"rejection={rejection!r}; choose one of {REJECTION_KINDS}")
    if rejection == "chain" and n_elements < 1:
        raise InvalidInputError(f"n_elements={n_elements!r} must be >= 1")
    if spec.osmotic and spec.osmotic_model != "van_t_hoff":
        raise InvalidInputError(f"osmotic_model={spec.osmotic_model!r}: the reduced plant has van 't Hoff only")
    sur = load_shipped(SHIPPED_SURROGATES[rejection]) if surrogate is None else surrogate
    ions, charges = canonical_ions(list(spec.feed_conc_mol_m3))
    c0 = dict(zip(ions, (float(v) for v in spec.feed_conc_mol_m3.values())))
    limit_ion = canonical_ions([spec.limit_ion])[0][0]
    if limit_ion not in ions:
        raise InvalidInputError(f"limit_ion={spec.limit_ion!r} is not one of the feed ions {ions}")
    eps = float(spec.permeate_limit_mol_m3 if epsilon_mol_m3 is None else epsilon_mol_m3)
    if not eps > 0:
        raise InvalidInputError(f"epsilon_mol_m3={eps!r} must be > 0")
    integer = spec.integer_modules if integer_modules is None else integer_modules
    stage_model = _StageModel(rejection, sur, ions, charges, n_elements if rejection == "chain" else 1, balance_with,
                              tanh=tanh)
    p = cost_parameters or load_cost_parameters()
    S, A = spec.n_stages, float(spec.area_module_m2)
    P = spec.product_m3_h / 3600.0
    flux_name = "flux_um_s" if "flux_um_s" in sur.card.input_names else "flux_L_m2_h"
    J_lo, J_hi = _domain(sur, flux_name)
    if flux_name == "flux_L_m2_h":
        J_lo, J_hi = J_lo / 3.6, J_hi / 3.6
    n_lo, n_hi = spec.n_modules_bounds

    m = pyo.ConcreteModel(name=f"reduced_plant_{rejection}_{S}stage")
    m.spec, m.kind, m.surrogate, m.ions, m.limit_ion = spec, rejection, sur, ions, limit_ion
    m.stages = pyo.RangeSet(1, S)
    lo_dx, hi_dx = _domain(sur, "thickness_nm")
    m.thickness_nm = pyo.Var(bounds=(max(75.0, lo_dx), min(150.0, hi_dx)), initialize=spec.thickness_nm,
                             doc="layer thickness dx [nm]")
    lo_x, hi_x = _domain(sur, "charge_density_mol_m3")
    decisions = [m.thickness_nm]
    if spec.charge_relation is None:
        m.charge_mol_m3 = pyo.Var(bounds=(max(-500.0, lo_x), min(-100.0, hi_x)), initialize=spec.charge_mol_m3,
                                  doc="layer charge X [mol/m3]")
        X = m.charge_mol_m3
        decisions.append(m.charge_mol_m3)
    else:
        rel = spec.charge_relation
        X = -(rel.magnitude_at_ref_mol_m3 + rel.slope_mol_m3_per_nm * (m.thickness_nm - rel.thickness_ref_nm))
    Q_lmh = spec.permeability_relation.q_lmh_bar(m.thickness_nm)
    Q_si = Q_lmh * LMH_PER_BAR_TO_SI
    q: dict[str, Any] = {"charge_mol_m3": X, "permeability_L_m2_h_bar": Q_lmh}

    # flows: fluxes (and gamma) are the variables, module counts follow from the product flow
    J_min = max(J_lo, P / (n_hi * A) * 1e6)  # N <= n_hi at the smallest permeate flow P
    if spec.recirculation:
        r_max = max(0.0, 1.0 - P / (J_hi * 1e-6 * n_hi * A))  # flux <= domain top at the largest area
        m.recycle_fraction = pyo.Var(bounds=(0.0, r_max), initialize=min(spec.recycle_fraction, r_max),
                                     doc="fraction of the final permeate recirculated [-]")
        r = m.recycle_fraction
        decisions.append(r)
        F_last = P / (1.0 - r)
    else:
        r, r_max, F_last = 0.0, 0.0, P
    m.flux_um_s = pyo.Var(m.stages, bounds=(J_min, J_hi), initialize=min(max(20.0, J_min), J_hi),
                          doc="stage water flux [um/s]")
    g_lo = _domain(sur, "gamma")[0] if rejection == "module" else GAMMA_MIN
    g_hi = min(spec.max_recovery, _domain(sur, "gamma")[1]) if rejection == "module" else spec.max_recovery
    m.gamma = pyo.Var(m.stages, bounds=(g_lo, g_hi), initialize=min(max(0.7, g_lo), g_hi), doc="stage recovery [-]")
    decisions += [m.flux_um_s[i] for i in m.stages] + [m.gamma[i] for i in m.stages]
    flux_um = {i: m.flux_um_s[i] for i in m.stages}
    gamma = {i: m.gamma[i] for i in m.stages}
    F_perm = {S: F_last}
    if S == 2:
        F_perm[1] = F_last / m.gamma[2]
    n_expr = {i: F_perm[i] / (m.flux_um_s[i] * 1e-6 * A) for i in m.stages}  # N_i = F_perm,i / (J_i A)
    if integer:
        m.n_modules = pyo.Var(m.stages, domain=pyo.Integers, bounds=(n_lo, n_hi),
                              initialize=lambda _, i: min(max(round(float(pyo.value(n_expr[i]))), n_lo), n_hi),
                              doc="modules in parallel per stage [-]")
        decisions += [m.n_modules[i] for i in m.stages]
        # N_i J_i A (1 - r) [gamma_2] = P, bilinear form of N_i = n_expr_i
        lhs = {S: m.n_modules[S] * m.flux_um_s[S] * 1e-6 * A * (1.0 - r)}
        if S == 2:
            lhs[1] = m.n_modules[1] * m.flux_um_s[1] * 1e-6 * A * (1.0 - r) * m.gamma[2]
        m.eq_modules = pyo.Constraint(m.stages, rule=lambda _, i: lhs[i] / P == 1.0,
                                      doc="integer module count carries the product flow")
        N = {i: m.n_modules[i] for i in m.stages}
    else:
        N = n_expr
        m.module_limits = pyo.Constraint(m.stages, rule=lambda _, i: pyo.inequality(n_lo / n_hi, N[i] / n_hi, 1.0),
                                         doc="module-count bounds")
    F_feed1 = F_perm[1] / m.gamma[1]
    # recycle share of the stage-1 feed, r F_perm,S / F_feed,1, in closed form (tight intervals)
    w = (r * m.gamma[1] * (m.gamma[2] if S == 2 else 1.0)) if spec.recirculation else 0.0

    # concentrations: with recirculation the tear is the final permeate concentration t_j of every
    # ion the stages need; stage 1 sees the mixer outlet (1 - w) c_0 + w t
    tear_ions = stage_model.needed_ions() if spec.recirculation else []
    c_feed = {1: {j: c0[j] for j in ions}}
    if tear_ions:
        t_max = stage_model.max_transmission()

        def loose_bound(j):
            c_hi = _domain(sur, f"c_{j}_mol_m3")[1] if j in stage_model.conc_inputs else 10.0 * c0[j]
            return t_max * max(c_hi, c0[j])

        m.tear_loose_ub = {j: loose_bound(j) for j in tear_ions}  # without the permeate limit

        def tear_bounds(_, j):
            return 0.0, (min(eps, m.tear_loose_ub[j]) if j == limit_ion else m.tear_loose_ub[j])  # limit ion: epsilon

        m.tear_ions = pyo.Set(initialize=tear_ions, ordered=True)
        m.perm_conc = pyo.Var(m.tear_ions, bounds=tear_bounds, initialize=lambda _, j: min(0.5 * c0[j], eps),
                              doc="tear: final permeate concentration [mol/m3]")
        t = {j: m.perm_conc[j] for j in tear_ions}
        if stage_model.bal is not None and stage_model.bal not in t:
            t[stage_model.bal] = -sum(charges[i] * t[i] for i in stage_model.direct) / charges[stage_model.bal]
        c_feed[1] = {j: ((1.0 - w) * c0[j] + w * t[j]) if j in t else None for j in ions}
    c_perm = {}
    links: list[tuple[Any, Any]] = []  # (variable, expression it equals), in evaluation order
    for i in range(1, S + 1):
        if i > 1:
            # a log-scaled surrogate input must stay positive in the relaxations; the permeate of the
            # previous stage is not provably so (1 - R reaches 0 at the tanh bound): link it through
            # a variable bounded by the surrogate domain (one equality per such ion and stage)
            c_feed[i] = dict(c_perm[i - 1])
            for j in stage_model.conc_inputs:
                lo, hi = _domain(sur, f"c_{j}_mol_m3")
                var = pyo.Var(bounds=(lo, hi), initialize=min(max(c0[j] / 2, lo), hi),
                              doc=f"stage-{i} feed concentration of {j} [mol/m3] (link variable)")
                m.add_component(f"stage{i}_feed_conc_{_safe(j)}", var)
                links.append((var, c_perm[i - 1][j]))
                c_feed[i][j] = var
        c_perm[i] = stage_model(c_feed[i], flux_um[i], gamma[i], X, m.thickness_nm, f"stage{i}")
    m.links = links
    m.eq_links = pyo.Constraint(range(len(links)), rule=lambda _, k: (links[k][0] - links[k][1]) / links[k][0].ub == 0,
                                doc="link variables = the expressions they stand for (scaled by the bound)")
    if tear_ions:
        for j in ions:
            if c_feed[1][j] is None:  # ions no stage needs: mixer balance with the final permeate
                c_feed[1][j] = (1.0 - w) * c0[j] + w * c_perm[S][j]
        m.tear_rhs = {j: c_perm[S][j] for j in tear_ions}
        m.eq_recycle = pyo.Constraint(m.tear_ions, rule=lambda _, j: (m.perm_conc[j] - m.tear_rhs[j]) / m.perm_conc[j].ub == 0,
                                      doc="recycle closure: torn permeate = computed permeate (scaled by its bound)")
    else:
        m.tear_rhs = {}

    # osmotic pressure (van 't Hoff) and pump pressures
    s = 1.0 if spec.osmotic else 0.0
    RT = GAS_CONSTANT * spec.temperature_K

    def pi(c):
        return RT * sum(c[j] for j in ions)

    dp_Pa, work = {}, {}
    for i in range(1, S + 1):
        dp_Pa[i] = flux_um[i] * 1e-6 / Q_si + (s * (pi(c_feed[i]) - pi(c_perm[i])) if s else 0.0)
        inflow = F_feed1 if i == 1 else F_perm[1]
        work[i] = inflow * dp_Pa[i] / spec.pump_efficiency
    m.dp_limits = pyo.Constraint(m.stages, rule=lambda _, i: pyo.inequality(0.0, dp_Pa[i] / 1e5, DP_MAX_BAR),
                                 doc=f"0 <= pump dP <= {DP_MAX_BAR} bar")
    # surrogate domain of every input that is an expression
    checks = []
    for lab, e, lo, hi in stage_model.domain_checks:
        if pyo.is_constant(e) or not pyo.is_potentially_variable(e):
            if not lo <= float(pyo.value(e)) <= hi:
                raise InvalidInputError(f"surrogate input {lab} = {float(pyo.value(e)):g} is outside the domain "
                                        f"[{lo:g}, {hi:g}] of {sur.card.name!r}")
        elif not _is_bounded_var(e, lo, hi):
            checks.append((lab, e, lo, hi))
    m.domain_labels = [c[0] for c in checks]
    m.domain = pyo.Constraint(range(len(checks)), rule=lambda _, k: _domain_constraint(*checks[k][1:]))
    m.epsilon = pyo.Param(initialize=eps, mutable=True, doc="permeate limit [mol/m3]")
    m.permeate_limit = pyo.Constraint(expr=c_perm[S][limit_ion] / eps <= m.epsilon / eps,
                                      doc=f"product {limit_ion} <= epsilon [mol/m3]")
    area = A * sum(N[i] for i in m.stages)
    costs = verberne_costs(p, area, sum(work.values()), P)
    m.objective = pyo.Objective(expr=costs["operation"], sense=pyo.minimize, doc="annual operating cost [USD/yr]")

    q.update({"feed_m3_s": F_feed1 - r * F_last, "stage1_feed_m3_s": F_feed1, "area_m2": area,
              "product_conc": c_perm[S], "cost": costs})
    for i in range(1, S + 1):
        q.update({f"pump{i}_dp_Pa": dp_Pa[i], f"pump{i}_work_W": work[i], f"stage{i}_flux_um_s": flux_um[i],
                  f"stage{i}_gamma": gamma[i], f"stage{i}_perm_m3_s": F_perm[i], f"stage{i}_feed_conc": c_feed[i],
                  f"stage{i}_n_modules": N[i],
                  f"stage{i}_perm_conc": c_perm[i]})
    m.q = q
    m.decision_vars = decisions
    m.tear_vars = [m.perm_conc[j] for j in tear_ions] if tear_ions else []
    m.cost_parameters = p
    return m


def _is_bounded_var(e, lo: float, hi: float) -> bool:
    """A variable whose own bounds already keep it inside [lo, hi]."""
    if not (hasattr(e, "is_variable_type") and e.is_variable_type()):
        return False
    return e.lb is not None and e.ub is not None and e.lb >= lo and e.ub <= hi


def _domain_constraint(e, lo: float, hi: float):
    scale = max(abs(lo), abs(hi), 1.0)
    return pyo.inequality(lo / scale, e / scale, hi / scale)


# ------------------------------------------------------------------------------- evaluation
def solve_tears(m, *, tol: float = 1e-14, max_iter: int = 500) -> int:
    """Close the recycle at the current decisions by fixed-point iteration of the mixer balance
    (a contraction: the recycle share w < 1 and the stage transmission <= 1); returns iterations."""
    if not m.tear_vars:
        _update_links(m)
        return 0
    from nanosep.surrogates.explicit import dag_values

    idx = list(m.tear_ions)
    for it in range(1, max_iter + 1):
        _update_links(m)
        new = dict(zip(idx, dag_values([m.tear_rhs[j] for j in idx])))
        delta = max(abs(new[j] - m.perm_conc[j].value) / max(abs(new[j]), 1e-30) for j in idx)
        for j in idx:
            m.perm_conc[j].set_value(new[j], skip_validation=True)
        if delta <= tol:
            return it
    raise InvalidInputError(f"recycle closure did not converge in {max_iter} iterations (last change {delta:.2e})")


def _update_links(m) -> None:
    """Link variables from their expressions, in order (each depends on earlier ones only)."""
    from nanosep.surrogates.explicit import dag_values

    for var, expr in m.links:
        var.set_value(dag_values([expr])[0], skip_validation=True)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def design_of(m) -> dict[str, Any]:
    """The design dict of :class:`.design_point.DesignPoint` at the model's current values."""
    from nanosep.surrogates.explicit import ExpressionDag, FloatOps

    v = ExpressionDag(lambda x: float(x.value), FloatOps)
    q = m.q
    d: dict[str, Any] = {"n_stages": m.spec.n_stages, "thickness_nm": float(m.thickness_nm.value),
                         "charge_mol_m3": float(v(q["charge_mol_m3"])),
                         "permeability_L_m2_h_bar": float(v(q["permeability_L_m2_h_bar"])),
                         "recycle_fraction": float(m.recycle_fraction.value) if m.spec.recirculation else 0.0,
                         "feed_m3_h": float(v(q["feed_m3_s"])) * 3600.0}
    for i in m.stages:
        d[f"stage{i}_n_modules"] = float(v(q[f"stage{i}_n_modules"]))
        d[f"pump{i}_dp_bar"] = float(v(q[f"pump{i}_dp_Pa"])) / 1e5
        d[f"stage{i}_flux_um_s"] = float(v(q[f"stage{i}_flux_um_s"]))
        d[f"stage{i}_gamma"] = float(v(q[f"stage{i}_gamma"]))
    return d


def evaluate_design(m, values: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Set decision variables by name (e.g. ``{"n_modules[1]": 40, "thickness_nm": 100}``), close
    the recycle, and return ``objective_usd_per_year``, ``cost_usd_per_m3``, ``product_conc_mol_m3``,
    ``design`` and the largest constraint violation."""
    by_name = {d.name: d for d in m.decision_vars}
    for k, val in (values or {}).items():
        if k not in by_name:
            raise InvalidInputError(f"unknown decision {k!r}; decisions: {sorted(by_name)}")
        by_name[k].set_value(float(val), skip_validation=True)
    from nanosep.surrogates.explicit import ExpressionDag, FloatOps

    solve_tears(m)
    v = ExpressionDag(lambda x: float(x.value), FloatOps)
    viol = 0.0
    for c in m.component_data_objects(pyo.Constraint, active=True):
        body = v(c.body)
        if c.has_lb():
            viol = max(viol, pyo.value(c.lower) - body)
        if c.has_ub():
            viol = max(viol, body - pyo.value(c.upper))
    return {"objective_usd_per_year": float(v(m.objective.expr)), "cost_usd_per_m3": float(v(m.q["cost"]["per_m3"])),
            "product_conc_mol_m3": {j: float(v(e)) for j, e in m.q["product_conc"].items()},
            "design": design_of(m), "max_violation": float(viol)}


def apply_design_to_full_plant(full, design: Mapping[str, Any], *, fix: tuple[str, ...] = ()) -> None:
    """Put a design (from :func:`design_of`) into a full-space model of :func:`.superstructure.build_plant`.

    Sets the feed flow, recycle fraction, module counts, pump dP and membrane values; names in
    ``fix`` (``"feed"``, ``"recycle"``, ``"modules"``, ``"membrane"``, ``"pump1"``, ``"pump2"``)
    are also fixed.
    """
    def put(var, val, key):
        var.set_value(float(val), skip_validation=True)
        if key in fix:
            var.fix()

    put(full.feed.outlet.flow_vol, design["feed_m3_h"] / 3600.0, "feed")
    put(full.membrane.thickness_nm, design["thickness_nm"], "membrane")
    put(full.membrane.charge_mol_m3, design["charge_mol_m3"], "membrane")
    full.membrane.permeability.set_value(design["permeability_L_m2_h_bar"])
    if full.component("splitter") is not None:
        put(full.splitter.split[1], design["recycle_fraction"], "recycle")
        full.splitter.split[0].set_value(1.0 - design["recycle_fraction"])
    for i, (st, pu) in enumerate(zip(full.stages, full.pumps), start=1):
        put(st.n_modules, design[f"stage{i}_n_modules"], "modules")
        put(pu.deltaP, design[f"pump{i}_dp_bar"] * 1e5, f"pump{i}")

