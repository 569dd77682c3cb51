"""The classical four-step characterization (seed 003 App. D) and its error propagation vs a joint fit.

Classical procedure, each step fixing what the earlier ones found:

1. neutral solutes -> pore radius: eq. D.8 with Hagen-Poiseuille in the Peclet number (eq. D.9),
   1-D least squares (eq. D.10, :func:`nanosep.transport.shp.pore_radius_from_rejection`);
2. pure-water flux vs pressure -> effective thickness: eq. D.11, linear in 1/dx_e (closed form);
3. single salt at the isoelectric point (chi_d = 0) -> pore dielectric constant (eq. D.13);
4. multi-ion rejections -> charge density (eq. D.14).

:func:`propagation_study` draws noisy synthetic data for all four experiments from known
parameters and compares the spread of the four-step estimates with that of a joint
maximum-likelihood fit of all four parameters to the charged-species data alone.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nanosep import water
from nanosep.ions import IonDatabase

from ..shp import hagen_poiseuille_flux, pore_radius_from_rejection, shp_rejection
from .design import Observations, observations_from_table
from .fit import Progress, fit_parameters
from .likelihood import RejectionModel
from .parameters import ParameterMap
from .spec import PARAMETERS, fit_case_from_dict
from .synthetic import design_table, synthetic_rejections

log = logging.getLogger(__name__)

NAMES = tuple(PARAMETERS)  # pore_radius_nm, thickness_um, pore_dielectric, charge_density_mol_m3


@dataclass
class ClassicalData:
    """The four experiments of App. D (rejections dimensionless, flux m/s, pressure Pa)."""

    neutral_solutes: list[str]
    neutral_pressure_pa: np.ndarray        # (m,)
    neutral_rejection: np.ndarray          # (m, len(neutral_solutes))
    water_pressure_pa: np.ndarray          # (k,)
    water_flux_m_s: np.ndarray             # (k,)
    salt_at_iep: Observations              # single salt, chi_d = 0
    multi_ion: Observations                # multi-ion, chi_d != 0
    temperature_K: float = 298.15


def _one_parameter_case(free: str, values: dict[str, float], bounds: dict[str, tuple[float, float]], model: dict):
    params = {n: {"initial": float(np.clip(values[n], *bounds[n])), "bounds": list(bounds[n]), "fixed": n != free}
              for n in NAMES}
    return fit_case_from_dict({"model": model, "parameters": params}, source="four-step")


def four_step(data: ClassicalData, *, bounds: dict[str, tuple[float, float]], initial: dict[str, float],
              model: dict | None = None, ion_db: IonDatabase | None = None) -> dict[str, float]:
    """Run App. D steps 1-4 on ``data``; returns the four parameters in user units."""
    db = ion_db or IonDatabase.default()
    model = model or {}
    T = data.temperature_K
    rs = np.array([db.get(s).stokes_radius_m for s in data.neutral_solutes])
    D = water.diffusivity_at(np.array([db.get(s).diffusivity_m2_s for s in data.neutral_solutes]), T)
    P = np.repeat(data.neutral_pressure_pa[:, None], rs.size, axis=1)
    rp = pore_radius_from_rejection(data.neutral_rejection, rs[None, :], D[None, :], pressure_pa=P, temperature_K=T,
                                    bounds_m=(bounds["pore_radius_nm"][0] * 1e-9, bounds["pore_radius_nm"][1] * 1e-9))
    a = rp**2 * data.water_pressure_pa / (8.0 * water.viscosity(T))      # J = a / dx_e  (eq. D.11)
    dx = float(np.sum(a * a) / np.sum(a * data.water_flux_m_s))
    values = dict(initial)
    values["pore_radius_nm"] = rp * 1e9
    values["thickness_um"] = dx * 1e6
    values["charge_density_mol_m3"] = 0.0
    for free, obs in (("pore_dielectric", data.salt_at_iep), ("charge_density_mol_m3", data.multi_ion)):
        b = dict(bounds)
        if free != "charge_density_mol_m3":
            b["charge_density_mol_m3"] = (min(bounds["charge_density_mol_m3"][0], -1.0),
                                          max(bounds["charge_density_mol_m3"][1], 1.0))
        for n in ("pore_radius_nm", "thickness_um"):   # earlier steps may land outside the joint-fit box
            b[n] = (min(b[n][0], values[n] * 0.99), max(b[n][1], values[n] * 1.01))
        case = _one_parameter_case(free, values, b, model)
        options, _ = case.engine_setup()
        pmap = ParameterMap(case, obs.cases.labels)
        rm = RejectionModel(pmap, options, db)
        fit = fit_parameters(rm, obs, starts=16, local_starts=1)
        values[free] = fit.values[free]
    return values


@dataclass
class PropagationStudy:
    """Estimates per replicate for both methods, and their summary."""

    truth: dict[str, float]
    classical: pd.DataFrame
    joint: pd.DataFrame
    summary: pd.DataFrame
    settings: dict = field(default_factory=dict)


def _noisy_classical(truth, rng, noise_sd, flux_rel_sd, solutes, pressures, salt_obs, multi_obs, salt_model,
                     multi_model, T, hp_factor) -> ClassicalData:
    db = IonDatabase.default()
    rp, dx = truth["pore_radius_nm"] * 1e-9, truth["thickness_um"] * 1e-6
    rs = np.array([db.get(s).stokes_radius_m for s in solutes])
    D = water.diffusivity_at(np.array([db.get(s).diffusivity_m2_s for s in solutes]), T)
    J = hagen_poiseuille_flux(rp, dx, pressures, T)
    R = shp_rejection(rs[None, :], D[None, :], rp, dx, J[:, None])
    R = R + rng.normal(0.0, noise_sd, R.shape)
    Jw = hp_factor * J * (1.0 + rng.normal(0.0, flux_rel_sd, J.shape))
    u_salt = salt_model.pmap.u0
    u_multi = multi_model.pmap.u0
    return ClassicalData(list(solutes), pressures, R, pressures, Jw,
                         synthetic_rejections(salt_model, salt_obs, u_salt, noise_sd=noise_sd, rng=rng),
                         synthetic_rejections(multi_model, multi_obs, u_multi, noise_sd=noise_sd, rng=rng), T)


def propagation_study(truth: dict[str, float], *, replicates: int = 20, noise_sd: float = 0.01,
                      flux_rel_sd: float = 0.02, seed: int = 0, model: dict | None = None,
                      bounds: dict[str, tuple[float, float]] | None = None, joint: bool = True,
                      iep_charge_mol_m3: float = 0.0, hp_factor: float = 1.0,
                      progress: Progress | None = None) -> PropagationStudy:
    """Monte-Carlo comparison of the four-step procedure and the joint fit on the same noisy experiments.

    Experiments (T = 298.15 K): glucose and sucrose rejection at 2-10 bar (5 pressures); pure-water flux at
    the same pressures (relative noise ``flux_rel_sd``); 10 mol/m3 NaCl at chi_d = 0, 6 fluxes 5-60
    L/m2/h; two Na+/Mg+2/Cl-/SO4-2 mixtures (total 50 and 10 mol/m3 of charge) at the true chi_d,
    same fluxes.  Rejections get N(0, noise_sd^2).  The joint fit uses only the multi-ion data, all
    four parameters free, started from the midpoint of the box (log midpoint for log parameters) and
    from the four-step result (``joint=False`` skips it).

    Violated assumptions of the classical procedure (the joint fit does not use them):
    ``iep_charge_mol_m3``: the membrane's true charge during the "isoelectric" single-salt test
    (step 3 assumes 0); ``hp_factor``: measured pure-water flux / Hagen-Poiseuille flux of the
    diffusive pore model (step 2 assumes 1; tortuosity or a hydraulic thickness that differs from
    the diffusive one).
    """
    model = model or {"activity": "davies"}
    bounds = bounds or {"pore_radius_nm": (0.3, 1.2), "thickness_um": (0.2, 20.0), "pore_dielectric": (20.0, 78.0),
                        "charge_density_mol_m3": (-200.0, 50.0)}
    T = 298.15
    flux = np.array([5.0, 10.0, 20.0, 30.0, 45.0, 60.0])
    salt_tab = design_table({"NaCl": {"Na+": 10.0, "Cl-": 10.0}}, flux, temperature_K=T)
    multi_tab = design_table({"mix": {"Na+": 20.0, "Mg+2": 5.0, "Cl-": 20.0, "SO4-2": 5.0},
                              "dilute mix": {"Na+": 4.0, "Mg+2": 1.0, "Cl-": 4.0, "SO4-2": 1.0}}, flux, temperature_K=T)
    salt_obs, multi_obs = observations_from_table(salt_tab), observations_from_table(multi_tab)

    def model_at(values, obs):
        case = fit_case_from_dict({"model": model, "parameters": {
            n: {"initial": values[n], "bounds": list(bounds[n]) if n != "charge_density_mol_m3" else
                [min(bounds[n][0], values[n] - 1), max(bounds[n][1], values[n] + 1)]} for n in NAMES}})
        options, db = case.engine_setup()
        return RejectionModel(ParameterMap(case, obs.cases.labels), options, db)

    salt_model = model_at({**truth, "charge_density_mol_m3": iep_charge_mol_m3}, salt_obs)
    multi_model = model_at(truth, multi_obs)
    mid = {n: float(np.sqrt(lo * hi)) if PARAMETERS[n]["transform"] == "log" else 0.5 * (lo + hi)
           for n, (lo, hi) in bounds.items()}
    pressures = np.linspace(2e5, 10e5, 5)
    rng = np.random.default_rng(seed)
    rows_c, rows_j = [], []
    for rep in range(replicates):
        data = _noisy_classical(truth, rng, noise_sd, flux_rel_sd, ("glucose", "sucrose"), pressures, salt_obs,
                                multi_obs, salt_model, multi_model, T, hp_factor)
        try:
            classical = four_step(data, bounds=bounds, initial=mid, model=model)
        except Exception as exc:  # noqa: BLE001 - a failed replicate is recorded, not fatal
            log.warning("replicate %d: four-step failed (%s)", rep, exc)
            classical = {n: np.nan for n in NAMES}
        rows_c.append({"replicate": rep, **classical})
        if progress:
            progress("error propagation (replicates)", (rep + 0.5) / replicates)
        if not joint:
            continue
        jm = model_at(mid, data.multi_ion)
        starts = [jm.pmap.u0]
        if all(np.isfinite(v) for v in classical.values()):
            starts.append(np.clip(np.array([s.to_u(classical[s.parameter]) for s in jm.pmap.slots]),
                                  jm.pmap.lower, jm.pmap.upper))
        best = None
        for u0 in starts:
            f = fit_parameters(jm, data.multi_ion, starts=0, u0=u0)
            if best is None or f.cost < best.cost:
                best = f
        rows_j.append({"replicate": rep, **best.values})
        if progress:
            progress("error propagation (replicates)", (rep + 1) / replicates)
    classical_df, joint_df = pd.DataFrame(rows_c), pd.DataFrame(rows_j)
    summary = []
    for method, df in (("four-step", classical_df), ("joint", joint_df)):
        if df.empty:
            continue
        for n in NAMES:
            v = df[n].to_numpy(float)
            v = v[np.isfinite(v)]
            rel = (v - truth[n]) / abs(truth[n]) if truth[n] != 0 else v - truth[n]
            summary.append({"method": method, "parameter": n, "truth": truth[n], "median": float(np.median(v)),
                            "sd": float(np.std(v, ddof=1)) if v.size > 1 else np.nan,
                            "rel_sd": float(np.std(rel, ddof=1)) if v.size > 1 else np.nan,
                            "rel_bias": float(np.mean(rel)), "p05": float(np.quantile(v, 0.05)),
                            "p95": float(np.quantile(v, 0.95)), "replicates": int(v.size)})
    return PropagationStudy(truth, classical_df, joint_df, pd.DataFrame(summary),
                            {"replicates": replicates, "noise_sd": noise_sd, "flux_rel_sd": flux_rel_sd, "seed": seed,
                             "model": model, "bounds": bounds, "iep_charge_mol_m3": iep_charge_mol_m3,
                             "hp_factor": hp_factor})
