"""WaterTAP ``NanofiltrationDSPMDE0D`` as a peer model for benchmarking nanosep.

DOCSTRING_PLACEHOLDER
"""
from __future__ import annotations

import importlib.util
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

LMH_TO_M_S = 1.0e-3 / 3600.0  #: 1 L m-2 h-1 in m/s

#: MCAS solvent molar mass used by WaterTAP's own unit tests [kg/mol]
MW_WATER = 0.018
#: WaterTAP/MCAS default constant solution density [kg/m3] (DensityCalculation.constant)
DENS_CONST = 1000.0

_ASL_INCLUDE = "/usr/include/ampl-netlib-solvers"
_ASL_LIBRARY = "/usr/lib/x86_64-linux-gnu/libamplsolver.so"

#: WaterTAP unit-test ("seawater-ish") composition, mass fractions of a 1 kg/s feed
#: (watertap/unit_models/tests/test_nanofiltration_DSPMDE_0D.py, TestNanoFiltration_with_CP_5ions).
WATERTAP_TEST_MASS_FRAC = {
    "Ca+2": 382e-6,
    "Mg+2": 1394e-6,
    "SO4-2": 2136e-6,
    "Cl-": 20101.6e-6,
    "Na+": 11122e-6,
}

#: Ion properties used in that WaterTAP unit test (canonical nanosep names).
WATERTAP_TEST_IONS: dict[str, dict[str, float]] = {
    "Na+": {"charge": 1, "stokes_radius_m": 1.84e-10, "diffusivity_m2_s": 1.33e-9, "molar_mass_kg_mol": 0.023},
    "Cl-": {"charge": -1, "stokes_radius_m": 1.21e-10, "diffusivity_m2_s": 2.03e-9, "molar_mass_kg_mol": 0.035},
    "Ca+2": {"charge": 2, "stokes_radius_m": 3.09e-10, "diffusivity_m2_s": 9.2e-10, "molar_mass_kg_mol": 0.040},
    "Mg+2": {"charge": 2, "stokes_radius_m": 3.47e-10, "diffusivity_m2_s": 7.06e-10, "molar_mass_kg_mol": 0.024},
    "SO4-2": {"charge": -2, "stokes_radius_m": 2.3e-10, "diffusivity_m2_s": 1.06e-9, "molar_mass_kg_mol": 0.096},
}


# ---------------------------------------------------------------------------
# availability / solver plumbing
# ---------------------------------------------------------------------------
def ensure_pynumero_asl(build: bool = True) -> bool:
    """Make sure Pyomo's PyNumero ASL library exists (needed by cyipopt and ipopt-watertap scaling).

    If it is missing and ``build`` is true and the netlib ASL headers/library are
    installed, build it once with ``python -m pyomo.contrib.pynumero.build`` (2 s).
    """
    try:
        from pyomo.contrib.pynumero.asl import AmplInterface
    except Exception:
        return False
    if AmplInterface.available():
        return True
    if not build:
        return False
    import os
    import subprocess
    import sys

    if not (os.path.isdir(_ASL_INCLUDE) and os.path.exists(_ASL_LIBRARY)):
        return False
    subprocess.run(
        [sys.executable, "-m", "pyomo.contrib.pynumero.build",
         f"-DASL_INCLUDE_DIR={_ASL_INCLUDE}", f"-DASL_LIBRARY={_ASL_LIBRARY}"],
        check=False, capture_output=True,
    )
    # AmplInterface caches the failed lookup; ask the loader afresh.
    from pyomo.common.fileutils import find_library

    return find_library("pynumero_ASL") is not None


def watertap_available() -> bool:
    """True if watertap, idaes, cyipopt and the PyNumero ASL library are usable."""
    for mod in ("watertap", "watertap_solvers", "idaes", "pyomo", "cyipopt"):
        if importlib.util.find_spec(mod) is None:
            return False
    try:
        import pyomo.environ as pyo

        if not pyo.SolverFactory("cyipopt").available(exception_flag=False):
            return False
    except Exception:
        return False
    return ensure_pynumero_asl(build=True)


def _use_cyipopt() -> None:
    """Route every WaterTAP/IDAES ``get_solver()`` to ``cyipopt-watertap`` (no ipopt executable here)."""
    import idaes
    import watertap_solvers

    watertap_solvers._default_solver = "cyipopt-watertap"
    idaes.cfg.default_solver = "cyipopt-watertap"


def mcas_name(name: str) -> str:
    """Canonical nanosep ion name -> WaterTAP MCAS name ('Na+'->'Na_+', 'Ca+2'->'Ca_2+', 'SO4-2'->'SO4_2-')."""
    mt = re.fullmatch(r"(.+?)([+-])(\d*)", name)
    if mt is None:
        return name  # neutral solute: keep
    base, sign, n = mt.groups()
    return f"{base}_{n}{sign}" if n and n != "1" else f"{base}_{sign}"


def _get(props: Mapping[str, Any], *keys: str) -> float:
    for k in keys:
        if k in props:
            return float(props[k])
    raise KeyError(f"ion property missing: one of {keys} (got {sorted(props)})")


def conc_from_mass_frac(mass_frac: Mapping[str, float], ions: Mapping[str, Mapping[str, float]],
                        density: float = DENS_CONST) -> dict[str, float]:
    """Mass fractions -> mol/m3 at constant density (MCAS ``DensityCalculation.constant``)."""
    return {j: w * density / _get(ions[j], "molar_mass_kg_mol", "molar_mass", "mw") for j, w in mass_frac.items()}


def electroneutralize(conc: Mapping[str, float], ions: Mapping[str, Mapping[str, float]],
                      adjust_by: str = "Cl-") -> dict[str, float]:
    """Return a copy of ``conc`` with ``adjust_by`` changed so that sum z_i c_i = 0.

    This is the concentration-space equivalent of MCAS ``assert_electroneutrality(adjust_by_ion=...)``
    (which we cannot call: it hands a StateBlockData to the solver, which cyipopt rejects).
    """
    out = dict(conc)
    z_adj = _get(ions[adjust_by], "charge", "z")
    rest = sum(_get(ions[j], "charge", "z") * c for j, c in conc.items() if j != adjust_by)
    out[adjust_by] = -rest / z_adj
    if out[adjust_by] < 0:
        raise ValueError(f"cannot electroneutralize with {adjust_by}: would need c < 0")
    return out


def watertap_test_feed() -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """(ions, feed_conc_mol_m3) of the WaterTAP 5-ion unit test, Cl- adjusted for electroneutrality."""
    c = conc_from_mass_frac(WATERTAP_TEST_MASS_FRAC, WATERTAP_TEST_IONS)
    return {k: dict(v) for k, v in WATERTAP_TEST_IONS.items()}, electroneutralize(c, WATERTAP_TEST_IONS, "Cl-")


# ---------------------------------------------------------------------------
# model wrapper
# ---------------------------------------------------------------------------
@dataclass
class WaterTAPNF:
    """A built WaterTAP NF model plus the bookkeeping the harness needs."""

    m: Any  #: the Pyomo ConcreteModel (m.fs.unit is the NanofiltrationDSPMDE0D)
    ions: dict[str, dict[str, float]]
    names: dict[str, str]  #: canonical -> MCAS name
    feed_conc_mol_m3: dict[str, float]
    feed_flow_m3_s: float
    options: dict[str, Any]
    build_time_s: float
    initialized: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unit(self):
        return self.m.fs.unit


def build_watertap_nf(
    ions: Mapping[str, Mapping[str, float]],
    feed_conc_mol_m3: Mapping[str, float],
    temperature_K: float = 298.15,
    pore_radius_m: float = 0.5e-9,
    thickness_m: float = 1.33e-6,
    pore_dielectric: float = 41.3,
    charge_density_mol_m3: float = -27.0,
    activity: str = "ideal",
    mass_transfer: str | float | Mapping[str, float] = "none",
    *,
    feed_flow_m3_s: float = 1.0e-3,
    area_m2: float = 1.0e-3,
    permeate_pressure_Pa: float = 101325.0,
    bulk_dielectric: float | None = None,
    viscosity_Pa_s: float | None = None,
    crossflow_velocity_m_s: float = 0.25,
    channel_height_m: float = 5.0e-4,
    spacer_porosity: float = 0.85,
    spacer_mixing_efficiency: float = 0.5,
    spacer_mixing_length_m: float = 0.6,
    electroneutrality_tol: float = 1e-8,
) -> WaterTAPNF:
    """Build a WaterTAP ``NanofiltrationDSPMDE0D`` flowsheet for one feed.

    Parameters
    ----------
    ions : {name: {"charge", "stokes_radius_m", "diffusivity_m2_s", "molar_mass_kg_mol"}}
        Canonical nanosep names ('Na+', 'Cl-', 'Ca+2', 'Mg+2', 'SO4-2', ...).
    feed_conc_mol_m3 : {name: c} feed (bulk) concentrations, must satisfy sum z c = 0
        to ``electroneutrality_tol`` (relative to sum |z| c); use :func:`electroneutralize`.
    temperature_K, pore_radius_m, thickness_m (effective Delta x_e = L/porosity), pore_dielectric,
    charge_density_mol_m3 (X_d, negative for a negative membrane).
    activity : 'ideal' | 'davies'  -> MCAS ``activity_coefficient_model``.
    mass_transfer :
        ``'none'``  -> ConcentrationPolarizationType.none + MassTransferCoefficient.none
        (membrane-wall concentration == bulk, no film at all);
        a float k [m/s] (same for every ion) or {ion: k} -> MassTransferCoefficient.fixed
        (WaterTAP's linearised film, see module docstring; the Kf upper bound 1e-3 m/s is removed);
        ``'spiral_wound'`` -> WaterTAP's correlation with crossflow_velocity_m_s, channel_height_m,
        spacer_mixing_efficiency, spacer_mixing_length_m (WaterTAP defaults 0.5 and 0.6 m).
    feed_flow_m3_s, area_m2 : module size; recovery = J_v * area / feed_flow (default 1e-3 m2 at
        1e-3 m3/s -> recovery 2.8e-5 at 100 LMH), so inlet ~= outlet.
    bulk_dielectric : override MCAS water dielectric constant (default 78.36).
    viscosity_Pa_s : override MCAS viscosity (default 1e-3 Pa s, used only in Hagen-Poiseuille
        and the Schmidt number).

    Returns a :class:`WaterTAPNF`; ``.m`` is the Pyomo model, ``.unit`` the NF block.
    """
    t0 = time.perf_counter()
    _use_cyipopt()
    import pyomo.environ as pyo
    from idaes.core import FlowsheetBlock
    from watertap.property_models.multicomp_aq_sol_prop_pack import (
        ActivityCoefficientModel,
        DensityCalculation,
        MCASParameterBlock,
    )
    from watertap.unit_models.nanofiltration_DSPMDE_0D import (
        ConcentrationPolarizationType,
        MassTransferCoefficient,
        NanofiltrationDSPMDE0D,
    )

    ions = {k: dict(v) for k, v in ions.items()}
    feed = {k: float(feed_conc_mol_m3[k]) for k in ions}
    if set(feed_conc_mol_m3) - set(ions):
        raise ValueError(f"feed has ions without properties: {set(feed_conc_mol_m3) - set(ions)}")
    z = {k: _get(p, "charge", "z") for k, p in ions.items()}
    imbalance = sum(z[k] * feed[k] for k in ions)
    scale = sum(abs(z[k]) * feed[k] for k in ions) or 1.0
    if abs(imbalance) > electroneutrality_tol * scale:
        raise ValueError(f"feed is not electroneutral: sum z c = {imbalance:.3e} mol/m3 "
                         f"(relative {imbalance / scale:.2e}); use electroneutralize()")

    names = {k: mcas_name(k) for k in ions}
    activity = activity.lower()
    if activity not in ("ideal", "davies"):
        raise ValueError("activity must be 'ideal' or 'davies'")

    if isinstance(mass_transfer, str):
        mt_mode = mass_transfer.lower()
        if mt_mode not in ("none", "spiral_wound"):
            raise ValueError("mass_transfer must be 'none', 'spiral_wound', a k in m/s or {ion: k}")
        kf = None
    else:
        mt_mode = "fixed"
        kf = ({k: float(mass_transfer[k]) for k in ions} if isinstance(mass_transfer, Mapping)
              else {k: float(mass_transfer) for k in ions})

    m = pyo.ConcreteModel()
    m.fs = FlowsheetBlock(dynamic=False)
    m.fs.properties = MCASParameterBlock(
        solute_list=[names[k] for k in ions],
        diffusivity_data={("Liq", names[k]): _get(p, "diffusivity_m2_s", "diffusivity", "D") for k, p in ions.items()},
        mw_data={"H2O": MW_WATER, **{names[k]: _get(p, "molar_mass_kg_mol", "molar_mass", "mw") for k, p in ions.items()}},
        stokes_radius_data={names[k]: _get(p, "stokes_radius_m", "stokes_radius", "radius_m") for k, p in ions.items()},
        charge={names[k]: int(round(z[k])) for k in ions},
        activity_coefficient_model=(ActivityCoefficientModel.davies if activity == "davies"
                                    else ActivityCoefficientModel.ideal),
        density_calculation=DensityCalculation.constant,
    )
    if bulk_dielectric is not None:
        m.fs.properties.dielectric_constant.set_value(bulk_dielectric)
    if viscosity_Pa_s is not None:
        m.fs.properties.visc_d_phase["Liq"].set_value(viscosity_Pa_s)

    if mt_mode == "none":
        unit_kw = dict(mass_transfer_coefficient=MassTransferCoefficient.none,
                       concentration_polarization_type=ConcentrationPolarizationType.none)
    elif mt_mode == "fixed":
        unit_kw = dict(mass_transfer_coefficient=MassTransferCoefficient.fixed,
                       concentration_polarization_type=ConcentrationPolarizationType.calculated)
    else:
        unit_kw = dict(mass_transfer_coefficient=MassTransferCoefficient.spiral_wound,
                       concentration_polarization_type=ConcentrationPolarizationType.calculated)
    m.fs.unit = NanofiltrationDSPMDE0D(property_package=m.fs.properties, **unit_kw)
    u = m.fs.unit

    # --- feed: exact concentrations at constant density 1000 kg/m3 -------------
    Q = float(feed_flow_m3_s)
    solute_mass = sum(feed[k] * _get(ions[k], "molar_mass_kg_mol", "molar_mass", "mw") for k in ions)
    water_mol = (DENS_CONST - solute_mass) * Q / MW_WATER
    if water_mol <= 0:
        raise ValueError("feed too concentrated for a constant 1000 kg/m3 solution")
    for k in ions:
        u.inlet.flow_mol_phase_comp[0, "Liq", names[k]].fix(feed[k] * Q)
    u.inlet.flow_mol_phase_comp[0, "Liq", "H2O"].fix(water_mol)
    u.inlet.temperature[0].fix(temperature_K)
    u.inlet.pressure[0].fix(10e5)  # placeholder; replaced by an estimate in the cold solve

    # --- membrane -----------------------------------------------------------
    u.radius_pore.fix(pore_radius_m)
    u.membrane_thickness_effective.fix(thickness_m)
    u.membrane_charge_density.fix(charge_density_mol_m3)
    u.dielectric_constant_pore.fix(pore_dielectric)
    u.mixed_permeate[0].pressure.fix(permeate_pressure_Pa)

    # --- module geometry: tiny module, very low recovery --------------------
    u.spacer_porosity.fix(spacer_porosity)
    u.channel_height.fix(channel_height_m)
    u.velocity[0, 0].fix(crossflow_velocity_m_s)
    u.area.fix(area_m2)
    # width = Q/(v h eps) can exceed the 500 m bound for big feeds; lengths tiny -> relax bounds
    u.width.setub(None)
    u.length.setlb(0)
    u.length.setub(None)
    if mt_mode == "spiral_wound":
        u.spacer_mixing_efficiency.fix(spacer_mixing_efficiency)
        u.spacer_mixing_length.fix(spacer_mixing_length_m)
        for v in u.N_Sc_comp.values():  # bounds (1e2, 2e3) are tight for small ions/low T
            v.setlb(1.0)
            v.setub(None)
    if mt_mode in ("fixed", "spiral_wound"):
        for (t, x, j), v in u.Kf_comp.items():
            v.setub(None)  # WaterTAP bound is (0, 1e-3) m/s
        if mt_mode == "fixed":
            inv = {v: k for k, v in names.items()}
            for (t, x, j), v in u.Kf_comp.items():
                v.fix(kf[inv[j]])

    # --- flux specification: volumetric water flux at the module inlet ------
    # flux_vol_water[t, 0] is WaterTAP's own Expression  J_w,mol * M_w / rho_solvent(T).
    m.fs.flux_target = pyo.Var(initialize=1e-5, units=pyo.units.m / pyo.units.s)
    m.fs.flux_target.fix()
    m.fs.eq_flux_target = pyo.Constraint(expr=u.flux_vol_water[0, 0] == m.fs.flux_target)
    m.fs.eq_flux_target.deactivate()

    # --- scaling (user scaling is what ipopt-watertap/cyipopt-watertap expect) ----
    import idaes.core.util.scaling as iscale

    for k in ions:
        fl = feed[k] * Q
        sf = 10 ** -math.floor(math.log10(fl)) if fl > 0 else 1.0
        m.fs.properties.set_default_scaling("flow_mol_phase_comp", sf, index=("Liq", names[k]))
    sfw = 10 ** -math.floor(math.log10(water_mol))
    m.fs.properties.set_default_scaling("flow_mol_phase_comp", sfw, index=("Liq", "H2O"))
    iscale.set_scaling_factor(u.area, 10 ** -math.floor(math.log10(area_m2)))
    iscale.calculate_scaling_factors(m)
    iscale.constraint_scaling_transform(m.fs.eq_flux_target, 1e5)

    opts = dict(temperature_K=temperature_K, pore_radius_m=pore_radius_m, thickness_m=thickness_m,
                pore_dielectric=pore_dielectric, charge_density_mol_m3=charge_density_mol_m3,
                activity=activity, mass_transfer=mt_mode, kf_m_s=kf, area_m2=area_m2,
                permeate_pressure_Pa=permeate_pressure_Pa,
                bulk_dielectric=float(pyo.value(m.fs.properties.dielectric_constant)),
                viscosity_Pa_s=float(pyo.value(m.fs.properties.visc_d_phase["Liq"])),
                crossflow_velocity_m_s=crossflow_velocity_m_s, channel_height_m=channel_height_m)
    return WaterTAPNF(m=m, ions=ions, names=names, feed_conc_mol_m3=feed, feed_flow_m3_s=Q,
                      options=opts, build_time_s=time.perf_counter() - t0)


# ---------------------------------------------------------------------------
# solve
# ---------------------------------------------------------------------------
def _pressure_guess(model: WaterTAPNF, flux_m_s: float) -> float:
    """Hagen-Poiseuille + van't Hoff estimate of the inlet pressure for a given flux (rejection ~ 0.5)."""
    o = model.options
    R = 8.314462618
    pi_feed = sum(model.feed_conc_mol_m3.values()) * R * o["temperature_K"]
    hp = flux_m_s * 8 * o["viscosity_Pa_s"] * o["thickness_m"] / o["pore_radius_m"] ** 2
    return o["permeate_pressure_Pa"] + hp + 0.5 * pi_feed


def _run_solver(model: WaterTAPNF, options: Mapping[str, Any] | None, tee: bool):
    from watertap.core.solvers import get_solver

    it = [0]

    def _cb(*args):  # (nlp, alg_mod, iter_count, ...): count Ipopt iterations
        it[0] = int(args[2])
        return True

    opt = get_solver(options=dict(options or {}))
    res = opt.solve(model.m, tee=tee, intermediate_callback=_cb)
    return res, it[0]


def solve_watertap_nf(
    model: WaterTAPNF,
    flux_m_s: float | None = None,
    *,
    pressure_Pa: float | None = None,
    tee: bool = False,
    solver_options: Mapping[str, Any] | None = None,
    initialize_guess: Mapping[str, float] | None = None,
    raise_on_failure: bool = False,
) -> dict[str, Any]:
    """Solve the model at a fixed inlet water flux ``flux_m_s`` (m/s) or a fixed feed ``pressure_Pa``.

    The first call is a cold start: WaterTAP ``initialize()`` (state blocks + a unit
    solve at a Hagen-Poiseuille pressure estimate) followed by the flux-specified
    solve. Later calls re-solve from the previous solution (warm start).

    Flux mode fixes WaterTAP's ``flux_vol_water[0, 0]`` (volumetric water flux at the
    module inlet) through an added equality and frees the feed pressure. Outlet
    flux then follows from Hagen-Poiseuille with the outlet osmotic pressure.

    Returns a dict (all SI): see :func:`_results`; plus ``ok``, ``termination``,
    ``iterations``, ``solve_time_s`` (wall time of this call incl. initialization
    when cold), ``cold`` (bool), ``build_time_s``.
    """
    import pyomo.environ as pyo
    from idaes.core.util.exceptions import InitializationError

    if (flux_m_s is None) == (pressure_Pa is None):
        raise ValueError("give exactly one of flux_m_s or pressure_Pa")
    m, u = model.m, model.unit
    t0 = time.perf_counter()
    cold = not model.initialized
    init_error = None
    iters_init = None
    if cold:
        p0 = pressure_Pa if pressure_Pa is not None else _pressure_guess(model, flux_m_s)
        u.inlet.pressure[0].fix(p0)
        m.fs.eq_flux_target.deactivate()
        if initialize_guess is None:
            # WaterTAP's default guess (10 % solvent recovery) means a huge flux on a tiny module:
            # it lands Ipopt on a spurious J ~ 0 branch. Guess the recovery of the requested flux.
            jv = flux_m_s if flux_m_s is not None else 1e-5
            rec = jv * model.options["area_m2"] / model.feed_flow_m3_s
            initialize_guess = {"solvent_recovery": rec, "solute_recovery": 0.5 * rec, "cp_modulus": 1.0}
        try:
            u.initialize(initialize_guess=dict(initialize_guess),
                         optarg=dict(solver_options) if solver_options else None)
        except InitializationError as exc:  # keep going: the full solve may still converge
            init_error = str(exc)
        model.initialized = True
    if flux_m_s is not None:
        m.fs.flux_target.fix(flux_m_s)
        m.fs.eq_flux_target.activate()
        u.inlet.pressure[0].unfix()
    else:
        m.fs.eq_flux_target.deactivate()
        u.inlet.pressure[0].fix(pressure_Pa)
    try:
        res, iters = _run_solver(model, solver_options, tee)
        term = str(res.solver.termination_condition)
        ok = bool(pyo.check_optimal_termination(res))
        msg = str(res.solver.message)
    except Exception as exc:  # evaluation errors etc.
        if raise_on_failure:
            raise
        term, ok, msg, iters = "exception", False, repr(exc), None
    dt = time.perf_counter() - t0
    if raise_on_failure and not ok:
        raise RuntimeError(f"WaterTAP NF solve failed: {term} {msg}")
    out = _results(model)
    out.update(ok=ok, termination=term, message=msg, iterations=iters, cold=cold,
               solve_time_s=dt, build_time_s=model.build_time_s, init_error=init_error,
               flux_spec_m_s=flux_m_s, pressure_spec_Pa=pressure_Pa)
    model.history.append({k: out[k] for k in ("ok", "termination", "cold", "solve_time_s",
                                               "flux_spec_m_s", "pressure_spec_Pa", "iterations")})
    return out


def _results(model: WaterTAPNF) -> dict[str, Any]:
    """Collect per-ion results (canonical names, SI units)."""
    from pyomo.environ import value

    u = model.unit
    t = 0
    names = model.names
    zi = {k: _get(p, "charge", "z") for k, p in model.ions.items()}

    def conc(sb):
        return {k: float(value(sb.conc_mol_phase_comp["Liq", names[k]])) for k in names}

    feed_in = conc(u.feed_side.properties_in[t])
    feed_out = conc(u.feed_side.properties_out[t])
    wall = {x: conc(u.feed_side.properties_interface[t, x]) for x in (0, 1)}
    perm_pt = {x: conc(u.permeate_side[t, x]) for x in (0, 1)}
    perm_mix = conc(u.mixed_permeate[t])
    pore_in = {x: conc(u.pore_entrance[t, x]) for x in (0, 1)}
    pore_out = {x: conc(u.pore_exit[t, x]) for x in (0, 1)}

    def rej(cp, cm):
        return {k: (1.0 - cp[k] / cm[k]) if cm[k] > 0 else float("nan") for k in names}

    gamma = {}
    for lbl, sb in (("wall_in", u.feed_side.properties_interface[t, 0]), ("pore_entrance_in", u.pore_entrance[t, 0]),
                    ("pore_exit_in", u.pore_exit[t, 0]), ("permeate_in", u.permeate_side[t, 0])):
        gamma[lbl] = {k: float(value(sb.act_coeff_phase_comp["Liq", names[k]])) for k in names}

    jv_in = float(value(u.flux_vol_water[t, 0]))
    jv_out = float(value(u.flux_vol_water[t, 1]))
    q_in = float(value(u.feed_side.properties_in[t].flow_vol_phase["Liq"]))
    q_perm = float(value(u.mixed_permeate[t].flow_vol_phase["Liq"]))
    out: dict[str, Any] = {
        # WaterTAP's own variables/expressions
        "rejection_intrinsic_watertap": {k: float(value(u.rejection_intrinsic_phase_comp[t, "Liq", names[k]]))
                                         for k in names},  # 1 - c_mixed_perm / c_wall(inlet x=0)
        "rejection_observed_watertap": {k: float(value(u.rejection_observed_phase_comp[t, "Liq", names[k]]))
                                        for k in names},  # 1 - c_mixed_perm / c_feed_in
        # point-wise (single-point comparison with a 1D engine): x=0 module inlet, x=1 outlet
        "rejection_intrinsic_inlet": rej(perm_pt[0], wall[0]),  # 1 - c_perm(x=0)/c_wall(x=0)
        "rejection_intrinsic_outlet": rej(perm_pt[1], wall[1]),
        "rejection_observed_inlet": rej(perm_pt[0], feed_in),  # 1 - c_perm(x=0)/c_bulk(x=0)
        "conc_feed_in": feed_in,
        "conc_feed_out": feed_out,
        "conc_wall_inlet": wall[0],
        "conc_wall_outlet": wall[1],
        "conc_pore_entrance_inlet": pore_in[0],
        "conc_pore_exit_inlet": pore_out[0],
        "conc_pore_entrance_outlet": pore_in[1],
        "conc_pore_exit_outlet": pore_out[1],
        "conc_permeate_inlet": perm_pt[0],
        "conc_permeate_outlet": perm_pt[1],
        "conc_permeate_mixed": perm_mix,
        "act_coeff": gamma,
        "ion_flux_inlet_mol_m2_s": {k: float(value(u.flux_mol_phase_comp[t, 0, "Liq", names[k]])) for k in names},
        "flux_inlet_m_s": jv_in,
        "flux_outlet_m_s": jv_out,
        "flux_avg_m_s": 0.5 * (jv_in + jv_out),
        "flux_inlet_lmh": jv_in / LMH_TO_M_S,
        "pressure_feed_Pa": float(value(u.feed_side.properties_in[t].pressure)),
        "pressure_permeate_Pa": float(value(u.mixed_permeate[t].pressure)),
        "recovery_vol": float(value(u.recovery_vol_phase[t, "Liq"])),
        "recovery_from_flows": q_perm / q_in if q_in > 0 else float("nan"),
        "potential_pore_entrance_V_inlet": float(value(u.electric_potential[t, 0, "pore_entrance"])),
        "potential_pore_exit_V_inlet": float(value(u.electric_potential[t, 0, "pore_exit"])),
        "potential_permeate_V_inlet": float(value(u.electric_potential[t, 0, "permeate"])),
        "charge_balance_permeate_inlet": sum(zi[k] * perm_pt[0][k] for k in names),
        "charge_balance_permeate_mixed": sum(zi[k] * perm_mix[k] for k in names),
        "charge_balance_wall_inlet": sum(zi[k] * wall[0][k] for k in names),
    }
    if hasattr(u, "Kf_comp"):
        out["kf_inlet_m_s"] = {k: float(value(u.Kf_comp[t, 0, names[k]])) for k in names}
        out["potential_grad_film_V_m_inlet"] = float(value(u.electric_potential_grad_feed_interface[t, 0]))
    return out


# ---------------------------------------------------------------------------
# convenience: timings and flux sweep
# ---------------------------------------------------------------------------
def benchmark_watertap_nf(ions, feed_conc_mol_m3, flux_m_s: float = 10 * LMH_TO_M_S,
                          warm_rel_step: float = 0.01, **build_kw) -> dict[str, Any]:
    """Build, cold-solve at ``flux_m_s``, warm re-solve at ``flux_m_s*(1+warm_rel_step)``; return timings."""
    t0 = time.perf_counter()
    mdl = build_watertap_nf(ions, feed_conc_mol_m3, **build_kw)
    cold = solve_watertap_nf(mdl, flux_m_s)
    warm = solve_watertap_nf(mdl, flux_m_s * (1 + warm_rel_step))
    return {
        "build_s": mdl.build_time_s,
        "cold_init_solve_s": cold["solve_time_s"],
        "cold_total_s": mdl.build_time_s + cold["solve_time_s"],
        "warm_resolve_s": warm["solve_time_s"],
        "warm_iterations": warm["iterations"],
        "cold_ok": cold["ok"],
        "warm_ok": warm["ok"],
        "wall_total_s": time.perf_counter() - t0,
        "cold": cold,
        "warm": warm,
    }


def sweep_flux(model: WaterTAPNF, fluxes_m_s, physical_tol: float = 1e-6) -> list[dict[str, Any]]:
    """Solve at each flux in order (warm-started along the sweep); flag failures / unphysical results.

    A point is *unphysical* if any intrinsic or observed rejection is outside [-1, 1]
    or any concentration is negative beyond ``physical_tol``.
    """
    rows = []
    for jv in fluxes_m_s:
        r = solve_watertap_nf(model, float(jv))
        rej = list(r["rejection_intrinsic_inlet"].values()) + list(r["rejection_observed_inlet"].values())
        finite = all(math.isfinite(x) for x in rej)
        unphysical = (not finite) or any(x < -1 - physical_tol or x > 1 + physical_tol for x in rej)
        rows.append({"flux_m_s": float(jv), "flux_lmh": float(jv) / LMH_TO_M_S, "ok": r["ok"],
                     "termination": r["termination"], "unphysical": unphysical,
                     "solve_time_s": r["solve_time_s"], "iterations": r["iterations"],
                     "rejection_intrinsic_inlet": r["rejection_intrinsic_inlet"],
                     "rejection_observed_inlet": r["rejection_observed_inlet"],
                     "pressure_feed_Pa": r["pressure_feed_Pa"], "flux_inlet_m_s": r["flux_inlet_m_s"],
                     "conc_wall_inlet": r["conc_wall_inlet"], "result": r})
    return rows
