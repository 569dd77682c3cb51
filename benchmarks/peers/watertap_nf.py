"""WaterTAP ``NanofiltrationDSPMDE0D`` as a peer model for benchmarking nanosep.

Peer model for the DSPM-DE benchmark: WaterTAP 1.8.0's ``NanofiltrationDSPMDE0D``
(IDAES 2.13, Pyomo 6.10.1) run on inputs chosen by nanosep and solved with cyipopt.

API
---
``watertap_available() -> bool``
``build_watertap_nf(ions, feed_conc_mol_m3, temperature_K=298.15, pore_radius_m=0.5e-9,
thickness_m=1.33e-6, pore_dielectric=41.3, charge_density_mol_m3=-27.0, activity='ideal',
mass_transfer='none', *, feed_flow_m3_s=1e-3, area_m2=1e-3, ...) -> WaterTAPNF``
``solve_watertap_nf(model, flux_m_s=None, *, pressure_Pa=None, solver='cyipopt-watertap', ...) -> dict``
``benchmark_watertap_nf(...)``, ``sweep_flux(...)``, ``physicality_flags(result)``,
``watertap_test_feed()``, ``electroneutralize(...)``, ``conc_from_mass_frac(...)``.

Ion names are nanosep's ('Na+', 'Ca+2', 'SO4-2'); they are mapped to MCAS names
('Na_+', 'Ca_2+', 'SO4_2-') by :func:`mcas_name`. All results are SI and keyed by
nanosep names.

Single-point set-up
-------------------
The 0D module has two copies of the local membrane problem, x = 0 (feed inlet) and
x = 1 (feed outlet), coupled only through the mass balance; its averaged outputs
(``flux_mol_phase_comp_avg``, mixed permeate) are means of the two. The default
module (area 1e-3 m2, feed 1e-3 m3/s) has a volumetric recovery J_v*A/Q = 2.8e-5 at
100 L/m2/h (8.5e-6 at 30 L/m2/h), so inlet and outlet agree to ~1e-5. For comparing
with a single-point engine use the *point* quantities at x = 0:
``rejection_intrinsic_inlet`` = 1 - c_p(x=0)/c_wall(x=0) and
``rejection_observed_inlet`` = 1 - c_p(x=0)/c_bulk(x=0), where c_p(x=0) =
``permeate_side[0,0].conc_mol_phase_comp`` = J_i/J_v exactly (NF l. 706-711).
WaterTAP's own ``rejection_intrinsic_phase_comp`` (NF l. 908-914: 1 - c_mixed_permeate /
c_wall(x=0)) and ``rejection_observed_phase_comp`` (NF l. 1298-1307: 1 - c_mixed_permeate /
c_feed_in) are returned too, as ``rejection_intrinsic_watertap`` /
``rejection_observed_watertap``; they differ from the point values by a density effect (see
"Differences" 6), e.g. R_Na 0.157 (point) vs 0.175 (WaterTAP's) at 30 L/m2/h.

Flux specification. ``flux_m_s`` fixes WaterTAP's volumetric water flux at the module
inlet, ``flux_vol_water[0, 0] = J_w,mol * M_w / rho_w(T)`` (NF l. 1247-1259), through
an added equality ``m.fs.eq_flux_target``, and frees the feed pressure. The outlet flux
``flux_outlet_m_s`` then follows from Hagen-Poiseuille at the outlet. ``pressure_Pa``
instead fixes the feed pressure (WaterTAP's usual specification).

WaterTAP's equations (watertap 1.8.0)
-------------------------------------
NF = site-packages/watertap/unit_models/nanofiltration_DSPMDE_0D.py,
MCAS = site-packages/watertap/property_models/multicomp_aq_sol_prop_pack.py.
Per ion i at each end x in {0, 1}; c_m wall (``feed_side.properties_interface``),
c_1 pore entrance, c_2 pore exit, c_p permeate; psi_1, psi_2, psi_p the potentials of
pore entrance, pore exit and permeate, the wall (feed-membrane interface) is the
reference, psi = 0 (NF l. 89-90, 439-447).

1. Ratio lambda_i = smooth_min(1, r_s,i / r_p) (NF l. 1108-1111; IDAES smooth_min with
   eps = 1e-4, i.e. lambda - ~4e-9 for lambda ~ 0.4: negligible).
2. Hindrance (NF l. 1118-1168), Dechadilok & Deen (2006):
   K_d = H(lambda) / (1 - lambda + 1e-8)^2 with
   H = 1 + 9/8 l ln l - 1.56034 l + 0.528155 l^2 + 1.91521 l^3 - 2.81903 l^4
       + 0.270788 l^5 + 1.10115 l^6 - 0.435933 l^7  (lambda <= 0.95),
   K_d = 0.984 ((1 - l)/l)^(5/2) for lambda > 0.95;
   K_c = (1 + 3.867 l - 1.907 l^2 - 0.834 l^3) / (1 + 1.867 l - 0.741 l^2).
   NB: WaterTAP divides H by Phi_S = (1 - lambda)^2 (D&D's H is Phi*K_d); K_d(0.368) =
   0.329 (cf. Bungay-Brenner 0.321, Renkin 0.324). K_c has no (2 - Phi) factor.
   Pore diffusivity D_p,i = K_d,i D_i (NF l. 1145-1151), D_i the constant bulk value
   given to MCAS (``diffusivity_data``; no temperature dependence).
3. Partitioning, both interfaces (NF l. 600-638), with activity coefficients:
   gamma_1 c_1 / (gamma_m c_m) = Phi_S Phi_B exp(-z F psi_1 / RT)
   gamma_2 c_2 / (gamma_p c_p) = Phi_S Phi_B exp(-z F (psi_2 - psi_p) / RT)
   Steric Phi_S = (1 - lambda)^2 (NF l. 1172-1173).
   Born (NF l. 1180-1210): Phi_B = exp(-dW / kT),
   dW = z^2 e^2 / (8 pi eps0 r_s) (1/eps_p - 1/eps_b), the Born cavity radius is the
   *Stokes radius* r_s (``radius_stokes_comp``), eps_b = MCAS ``dielectric_constant`` =
   78.36 (MCAS l. 781-787, "25 C, Malmberg-Maryott", constant, not T-dependent; override
   with ``bulk_dielectric``), eps_p = ``dielectric_constant_pore`` (user). No image-force
   (dielectric exclusion by image charges) term.
   Donnan: the exp(-z F psi / RT) factors above, psi solved from electroneutrality.
   Temperature in all F/RT, kT factors is the feed inlet T (isothermal constraints).
4. Electroneutrality: pore entrance and exit sum z c + X = 0 (NF l. 642-656, X =
   ``membrane_charge_density``, mol/m3); permeate sum z c_p = 0 (NF l. 663-672); wall
   sum z c_m = 0 when a film is modelled (NF l. 927-935).
5. Extended Nernst-Planck, ONE STEP across the whole active layer (NF l. 713-784):
   J_i = -K_d D_i (c_2 - c_1)/dx_e + K_c J_v cbar - z_i cbar K_d D_i (F/RT) (psi_2 - psi_1)/dx_e,
   cbar = (c_1 + c_2)/2 (NF l. 1285-1289, ``/len(io_list)`` = /2), dx_e =
   ``membrane_thickness_effective``. Two nodes only, i.e. a linearisation of the
   exponential pore profiles; no activity-gradient (d ln gamma/dx) term in the pore
   (activity coefficients enter only through the interface equilibria).
   J_i = J_v c_p (NF l. 706-711), J_v = ``flux_vol_water`` (item 8).
6. Film / concentration polarisation (NF l. 790-827), ``ConcentrationPolarizationType``:
   ``none``: c_m = c_b (bulk at that end); ``calculated``: a *linearised* film
   J_i = -k_i (c_m - c_b) + J_v c_m - z_i c_m D_i (F/RT) xi,
   with one potential-gradient variable xi per end (``electric_potential_grad_feed_interface``)
   fixed by wall electroneutrality; convection and migration are evaluated at c_m, the
   diffusive flux as k_i (c_b - c_m). For a neutral solute this gives the CP modulus
   (c_m - c_p)/(c_b - c_p) = 1/(1 - J_v/k) instead of the film-theory exp(J_v/k): +21 %
   at J_v = k/2, pole at J_v = k, negative/arbitrary beyond. k_i = ``Kf_comp``
   (bounds (0, 1e-3) m/s, NF l. 477-485; the harness removes the upper bound):
   ``MassTransferCoefficient.none`` (only with CP none; NF l. 259-278 enforces the pairing),
   ``fixed`` (Kf_comp fixed by the user), ``spiral_wound`` (NF l. 937-999):
   k_i = 0.753 (eta/(2 - eta))^0.5 (2 D_i/h) Sc_i^(-1/6) (Pe_i h/(2 l_mix))^0.5,
   Sc_i = mu/(rho D_i), Pe_i = 2 h v / D_i, v = Q/(h W eps_sp) (NF l. 1008-1013, 1312),
   eta = ``spacer_mixing_efficiency`` (init 0.5), l_mix = ``spacer_mixing_length``
   (init 0.6 m); WaterTAP's unit test fixes them at these initial values with h = 0.5 mm,
   v = 0.25 m/s, giving k = 4.4e-6 - 9.0e-6 m/s (16-32 L/m2/h) for the 5 test ions.
7. Water flux, Hagen-Poiseuille (NF l. 680-698):
   J_v = (P_feed - P_perm - (pi_m - pi_p)) r_p^2 / (8 mu dx_e), van't Hoff
   pi = RT sum c (MCAS l. 2060-2079, ideal even with Davies), mu = 1e-3 Pa s constant
   (MCAS l. 749-757). With the flux fixed this only sets the reported feed pressure.
8. J_v = J_w,mol M_w / rho_w(T) with rho_w the Sharqawy pure-water polynomial
   (MCAS l. 1598-1617; 996.89 kg/m3 at 25 C), while all concentrations use the
   constant solution density 1000 kg/m3 (``DensityCalculation.constant``, MCAS l. 800;
   c = n_j / V, V = sum n M / 1000).
9. Activity (MCAS l. 1980-2012; ``activity_coefficient_model`` = ``ideal`` | ``davies``):
   log10 gamma = -A z^2 (sqrt(I)/(1 + sqrt(I)) - 0.3 I), I = 1/2 sum z^2 m (molal,
   m = n_j/(n_w M_w), MCAS l. 1755-1773, 2014-2028), A = (2 pi N_A rho_w)^0.5/ln 10 *
   (e^2/(4 pi eps0 eps_b k T))^1.5 = 0.510 at 25 C (MCAS l. 2030-2057), b = 0.3
   (MCAS l. 788-794). Evaluated separately in every state block: in the pore blocks with
   the pore ionic strength (counter-ion excess included) and still eps_b = 78.36.
10. Module: mass balance with area * (J(0) + J(1))/2 (NF l. 862-890, 1266-1275);
   recovery_vol = Q_perm/Q_feed (NF l. 894-900).
Constants: IDAES ``Constants`` (CODATA 2018: F = 96485.33212, R = 8.314462618,
e = 1.602176634e-19, eps0 = 8.8541878128e-12, k_B = 1.380649e-23), same as nanosep.
WaterTAP defaults (initial values, all fixed by this harness): r_p 0.5 nm, dx_e
1.33 um, X -50 mol/m3, eps_p 42 (NF l. 409-438).

Differences to expect against an exactly integrated DSPM-DE
------------------------------------------------------------
1. Pore NP: one linear step (item 5) vs the integrated exponential profiles: grows with
   the pore Peclet number K_c J_v dx_e/(K_d D) and with the potential drop.
2. Film (item 6): linear film, 1/(1 - J/k) vs exp(J/k); compare with ``mass_transfer='none'``
   or only for J_v << k.
3. No d ln(gamma)/dx in the pore; Davies in the pore with eps_b; osmotic pressure ideal.
4. Born radius = Stokes radius; eps_b 78.36 fixed.
5. K_d = H/(1-lambda)^2 (item 2).
6. Density: J_i = J_v c_p with J_v based on rho_w(T) = 996.89, but the mixed-permeate
   concentration is n_i/V with V = (n_w M_w + sum n_j M_j)/1000, so WaterTAP's own
   rejection_intrinsic/observed (mixed permeate) are shifted by ~1.5-2 % of c_p relative to
   the point values; they are also evaluated against the *inlet* wall only.
7. ``rejection_intrinsic_phase_comp`` has bounds (-1.001, 1.001) (NF l. 448-455): a
   solution with a mixed-permeate rejection below -1.001 is reported infeasible.

Solver route and workarounds
----------------------------
* No ipopt executable: every WaterTAP ``get_solver()`` is routed to ``cyipopt-watertap``
  by setting ``watertap_solvers._default_solver`` and ``idaes.cfg.default_solver``
  (:func:`_use_cyipopt`); PyNumero's ASL library is built once if missing
  (:func:`ensure_pynumero_asl`, ``python -m pyomo.contrib.pynumero.build`` against
  libamplsolver-dev).
* MCAS ``assert_electroneutrality`` (MCAS l. 2631-2700) solves a ``StateBlockData`` and
  Pyomo's cyipopt solver rejects anything that is not a Block ("model must be a Pyomo
  Block"). Not used: the feed is given as concentrations (converted to exact mole flows
  at 1000 kg/m3), its electroneutrality is checked in Python at build time, and
  :func:`electroneutralize` does what ``adjust_by_ion`` does (in concentration space).
* WaterTAP's ``initialize`` guesses 10 % solvent recovery (NF l. 1779), i.e. a huge flux
  on a tiny module; at fixed pressure it then can end on a spurious J ~ 0 point (seen:
  J = 1.4e-11 m/s at 18.8 bar). The harness passes the recovery of the requested flux
  and, in flux mode, initialises with J_w fixed at both ends and Hagen-Poiseuille
  deactivated (pressure at a guess), then restores Hagen-Poiseuille with the pressure it
  implies and solves with the flux constraint (1-2 Ipopt iterations).
* Re-solves use :data:`WARM_OPTIONS` (bound_push = bound_frac = mu_init = 1e-8): 3-5
  Ipopt iterations instead of 40-70 with the default options. Failed direct solves are
  retried with default options, then by flux continuation from the last converged point.
* Bounds relaxed: ``Kf_comp`` upper bound (1e-3 m/s), ``width``/``length`` upper bounds,
  ``N_Sc_comp`` bounds (spiral wound). Scaling: flow_mol default scaling from the feed.

Observed behaviour (5-ion WaterTAP test water, r_p 0.5 nm, dx_e 1.33 um, eps_p 41.3,
X = -27 mol/m3, 1..100 L/m2/h, warm sweep): without a film (ideal and Davies) every point
solves (optimal, 3-5 iterations). With the linearised film, fixed k = 1e-5 m/s (36 LMH):
ideal fails (infeasible) from 40 LMH, Davies "converges" beyond the pole with
unphysical results (observed rejection of SO4-2 -2.7 at 40, -9.3 at 50, -21 at 80 LMH);
strong distortion already before the pole (R_Na -0.29 at 35 LMH, J = 0.97 k).
k = 2e-5 m/s: ideal fails from 80 LMH, Davies unphysical from 80 LMH. Spiral-wound with
WaterTAP's test geometry (k = 16-32 LMH): ideal fails from 20 LMH, Davies returns
optimal but unphysical solutions from 20 LMH (observed R_Mg -17, R_SO4 -22 at 80 LMH).
Cold-started points (fresh model per flux) give the same values and the same failure
onsets as the warm sweep.

Timings, 5-ion case at 30 L/m2/h (2-core sandbox shared with other jobs; imports of
watertap/idaes, 3-6 s, not included): build 0.1-0.4 s; cold initialize + solve 1.4-1.6 s
(ideal), 3.7-4.2 s (Davies), 1.9-2.4 s (Davies, fixed k), 2.0-2.3 s (Davies, spiral
wound); warm re-solve after a 1 % flux step (3 Ipopt iterations) 0.34-0.63 s through
``cyipopt-watertap`` (~0.5 s of it is WaterTAP's Python Jacobian autoscaling) and
0.04-0.11 s through plain ``cyipopt`` (``solver='cyipopt'``).
"""
from __future__ import annotations

import importlib.util
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
    except ImportError:
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
    except ImportError:
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
    _last_good: Any = None  #: snapshot of the last converged solution
    _last_ok: bool = True
    _last_flux: float | None = None

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
        charge={names[k]: round(z[k]) for k in ions},
        activity_coefficient_model=(ActivityCoefficientModel.davies if activity == "davies"
                                    else ActivityCoefficientModel.ideal),
        density_calculation=DensityCalculation.constant,
    )
    if bulk_dielectric is not None:
        m.fs.properties.dielectric_constant.set_value(bulk_dielectric)
    if viscosity_Pa_s is not None:
        m.fs.properties.visc_d_phase["Liq"].set_value(viscosity_Pa_s)

    if mt_mode == "none":
        unit_kw = {"mass_transfer_coefficient": MassTransferCoefficient.none,
                   "concentration_polarization_type": ConcentrationPolarizationType.none}
    elif mt_mode == "fixed":
        unit_kw = {"mass_transfer_coefficient": MassTransferCoefficient.fixed,
                   "concentration_polarization_type": ConcentrationPolarizationType.calculated}
    else:
        unit_kw = {"mass_transfer_coefficient": MassTransferCoefficient.spiral_wound,
                   "concentration_polarization_type": ConcentrationPolarizationType.calculated}
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

    opts = {
        "temperature_K": temperature_K, "pore_radius_m": pore_radius_m, "thickness_m": thickness_m,
        "pore_dielectric": pore_dielectric, "charge_density_mol_m3": charge_density_mol_m3,
        "activity": activity, "mass_transfer": mt_mode, "kf_m_s": kf, "area_m2": area_m2,
        "permeate_pressure_Pa": permeate_pressure_Pa,
        "bulk_dielectric": float(pyo.value(m.fs.properties.dielectric_constant)),
        "viscosity_Pa_s": float(pyo.value(m.fs.properties.visc_d_phase["Liq"])),
        "crossflow_velocity_m_s": crossflow_velocity_m_s, "channel_height_m": channel_height_m,
    }
    return WaterTAPNF(m=m, ions=ions, names=names, feed_conc_mol_m3=feed, feed_flow_m3_s=Q,
                      options=opts, build_time_s=time.perf_counter() - t0)


# ---------------------------------------------------------------------------
# solve
# ---------------------------------------------------------------------------
#: Ipopt options for re-solves from a converged neighbouring point (otherwise Ipopt's
#: default bound_push / mu_init throw the iterate back into the interior: 40-70 iterations
#: instead of 3-5 for a 1 % flux change).
WARM_OPTIONS: dict[str, Any] = {"bound_push": 1e-8, "bound_frac": 1e-8, "mu_init": 1e-8}

#: what cyipopt-watertap adds by default; reused for the raw ``cyipopt`` route
_WATERTAP_DEFAULTS: dict[str, Any] = {
    "tol": 1e-8, "constr_viol_tol": 1e-8, "acceptable_constr_viol_tol": 1e-8,
    "bound_relax_factor": 0.0, "honor_original_bounds": "no", "nlp_scaling_method": "user-scaling",
}


def _pressure_guess(model: WaterTAPNF, flux_m_s: float) -> float:
    """Hagen-Poiseuille + van't Hoff estimate of the inlet pressure for a given flux (rejection ~ 0.5)."""
    o = model.options
    R = 8.314462618
    pi_feed = sum(model.feed_conc_mol_m3.values()) * R * o["temperature_K"]
    hp = flux_m_s * 8 * o["viscosity_Pa_s"] * o["thickness_m"] / o["pore_radius_m"] ** 2
    return o["permeate_pressure_Pa"] + hp + 0.5 * pi_feed


def _fix_water_flux(model: WaterTAPNF, flux_m_s: float) -> None:
    """Fix J_w at x = 0, 1 to ``flux_m_s`` (volumetric) and deactivate Hagen-Poiseuille there."""
    from pyomo.environ import value
    from pyomo.util.calc_var_value import calculate_variable_from_constraint

    u = model.unit
    sb = u.feed_side.properties_in[0]
    calculate_variable_from_constraint(sb.dens_mass_solvent, sb.eq_dens_mass_solvent)
    jmol = flux_m_s * value(sb.dens_mass_solvent) / value(sb.mw_comp["H2O"])
    for x in (0, 1):
        u.flux_mol_phase_comp[0, x, "Liq", "H2O"].fix(jmol)
        u.eq_water_flux[0, x, "Liq"].deactivate()


def _release_water_flux(model: WaterTAPNF) -> None:
    """Undo :func:`_fix_water_flux`; put the feed pressure where Hagen-Poiseuille wants it."""
    from pyomo.environ import value

    u = model.unit
    for x in (0, 1):
        u.flux_mol_phase_comp[0, x, "Liq", "H2O"].unfix()
        u.eq_water_flux[0, x, "Liq"].activate()
    try:
        perm = u.permeate_side[0, 0]
        inter = u.feed_side.properties_interface[0, 0]
        d_pi = value(inter.pressure_osm_phase["Liq"] - perm.pressure_osm_phase["Liq"])
        rh = value(8 * u.feed_side.properties_in[0].visc_d_phase["Liq"] * u.membrane_thickness_effective
                   / u.radius_pore**2)
        p = value(perm.pressure) + d_pi + value(u.flux_vol_water[0, 0]) * rh
        if p > 1.0:
            u.inlet.pressure[0].set_value(p)
            u.feed_side.properties_out[0].pressure.set_value(p)
    except (TypeError, ValueError, ZeroDivisionError):  # values missing after a failed init: keep the guess
        return


def _snapshot(m) -> list[tuple[Any, Any, bool]]:
    from pyomo.environ import Var

    return [(v, v.value, v.fixed) for v in m.component_data_objects(Var, descend_into=True)]


def _restore(snap) -> None:
    for v, val, fixed in snap:
        v.set_value(val, skip_validation=True)
        v.fixed = fixed


def _run_solver(model: WaterTAPNF, solver: str, options: Mapping[str, Any] | None, tee: bool):
    """One Ipopt solve of the whole flowsheet. Returns (ok, termination, message, iterations)."""
    import pyomo.environ as pyo

    it = [0]

    def _cb(*args):  # (nlp, alg_mod, iter_count, ...): count Ipopt iterations
        it[0] = int(args[2])
        return True

    try:
        if solver == "cyipopt-watertap":  # WaterTAP's standard route (user scaling + Jacobian autoscaling)
            from watertap.core.solvers import get_solver

            opt = get_solver(options=dict(options or {}))
            res = opt.solve(model.m, tee=tee, intermediate_callback=_cb)
        elif solver == "cyipopt":  # lean route: same Ipopt options, no Python Jacobian autoscaling
            opt = pyo.SolverFactory("cyipopt")
            for k, v in {**_WATERTAP_DEFAULTS, **dict(options or {})}.items():
                opt.config.options[k] = v
            res = opt.solve(model.m, tee=tee, intermediate_callback=_cb)
        else:
            raise ValueError("solver must be 'cyipopt-watertap' or 'cyipopt'")
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - AMPL evaluation errors, cyipopt/Ipopt exceptions
        return False, "exception", repr(exc), it[0]
    return (bool(pyo.check_optimal_termination(res)), str(res.solver.termination_condition),
            str(res.solver.message), it[0])


def _set_flux(model: WaterTAPNF, flux_m_s: float) -> None:
    m, u = model.m, model.unit
    m.fs.flux_target.fix(flux_m_s)
    m.fs.eq_flux_target.activate()
    u.inlet.pressure[0].unfix()


def _solve_flux_robust(model, flux_m_s, j_from, solver, solver_options, tee, n_steps):
    """Direct warm solve at ``flux_m_s``; on failure restore and walk from ``j_from`` in ``n_steps`` steps."""
    attempts = []
    snap = _snapshot(model.m)
    _set_flux(model, flux_m_s)
    ok, term, msg, its = _run_solver(model, solver, solver_options or WARM_OPTIONS, tee)
    attempts.append(("direct-warm", term, its))
    if ok:
        return ok, term, msg, its, attempts
    if solver_options is None:  # retry with WaterTAP's default Ipopt options
        _restore(snap)
        _set_flux(model, flux_m_s)
        ok, term, msg, its2 = _run_solver(model, solver, None, tee)
        attempts.append(("direct-default", term, its2))
        its += its2
        if ok:
            return ok, term, msg, its, attempts
    # continuation in flux (geometric if same sign and both > 0)
    _restore(snap)
    if j_from is None or j_from <= 0 or n_steps < 1:
        return ok, term, msg, its, attempts
    ratio = (flux_m_s / j_from) ** (1.0 / n_steps)
    for k in range(1, n_steps + 1):
        jk = j_from * ratio**k if k < n_steps else flux_m_s
        _set_flux(model, jk)
        ok, term, msg, itk = _run_solver(model, solver, solver_options or WARM_OPTIONS, tee)
        its += itk
        if not ok and solver_options is None:
            ok, term, msg, itk = _run_solver(model, solver, None, tee)
            its += itk
        attempts.append((f"continuation {k}/{n_steps} J={jk:.3e}", term, itk))
        if not ok:
            break
    return ok, term, msg, its, attempts


def solve_watertap_nf(
    model: WaterTAPNF,
    flux_m_s: float | None = None,
    *,
    pressure_Pa: float | None = None,
    tee: bool = False,
    solver: str = "cyipopt-watertap",
    solver_options: Mapping[str, Any] | None = None,
    initialize_guess: Mapping[str, float] | None = None,
    continuation_steps: int = 8,
    raise_on_failure: bool = False,
) -> dict[str, Any]:
    """Solve the model at a fixed inlet water flux ``flux_m_s`` [m/s] or a fixed feed ``pressure_Pa``.

    Flux mode adds ``flux_vol_water[0, 0] == flux_m_s`` (WaterTAP's own volumetric water
    flux at the module inlet, J_w,mol * M_w / rho_w(T)) and frees the feed pressure; the
    outlet flux then follows from Hagen-Poiseuille with the outlet osmotic pressure.

    Cold (first call): WaterTAP ``initialize()`` at a Hagen-Poiseuille/van't Hoff
    pressure estimate, with the recovery guess of the requested flux (WaterTAP's
    default 10 % guess drives a tiny module onto a spurious J ~ 0 branch), then the
    flux-specified solve from that point. Warm (later calls): re-solve from the
    previous converged solution with :data:`WARM_OPTIONS`. In both cases a failed
    direct solve is retried with WaterTAP's default Ipopt options and then by flux
    continuation (``continuation_steps`` geometric steps from the last converged flux);
    ``attempts`` records what was needed. A failed call leaves the failed iterate in the
    model (reported), and the next call restarts from the last converged solution.

    ``solver``: ``'cyipopt-watertap'`` (WaterTAP's wrapper: user variable scaling plus
    its Python Jacobian constraint autoscaling, ~0.6 s per call for this model) or
    ``'cyipopt'`` (same Ipopt options, no autoscaling; ~0.05 s warm re-solves).

    Returns the dict of :func:`_results` plus ``ok``, ``termination``, ``message``,
    ``iterations`` (Ipopt iterations, summed over attempts), ``attempts``, ``cold``,
    ``solve_time_s`` (wall time of this call, including initialization when cold),
    ``init_time_s`` (cold only), ``build_time_s``, ``init_error``.
    """
    if (flux_m_s is None) == (pressure_Pa is None):
        raise ValueError("give exactly one of flux_m_s or pressure_Pa")
    from idaes.core.util.exceptions import InitializationError

    m, u = model.m, model.unit
    t0 = time.perf_counter()
    cold = not model.initialized
    init_error = None
    init_time = None
    j_from = None
    if cold:
        if initialize_guess is None:
            j_guess = flux_m_s if flux_m_s is not None else 1e-5
            rec = j_guess * model.options["area_m2"] / model.feed_flow_m3_s
            initialize_guess = {"solvent_recovery": rec, "solute_recovery": 0.5 * rec, "cp_modulus": 1.0}
        if flux_m_s is not None:
            # Initialise at the requested flux: fix the water flux at both ends and drop the two
            # Hagen-Poiseuille equations (pressure stays fixed at a guess, DOF unchanged). At fixed
            # pressure WaterTAP's initialisation can land on a spurious J ~ 0 branch (see docstring).
            u.inlet.pressure[0].fix(_pressure_guess(model, flux_m_s))
            _fix_water_flux(model, flux_m_s)
        else:
            u.inlet.pressure[0].fix(pressure_Pa)
        m.fs.eq_flux_target.deactivate()
        try:
            u.initialize(initialize_guess=dict(initialize_guess),
                         optarg=dict(solver_options) if solver_options else None)
        except InitializationError as exc:  # keep going: the full solve may still converge
            init_error = str(exc)
        finally:
            if flux_m_s is not None:
                _release_water_flux(model)
        model.initialized = True
        init_time = time.perf_counter() - t0
        j_from = None  # no continuation from the initial point: it is already at flux_m_s
    else:
        if model._last_good is not None and not model._last_ok:
            _restore(model._last_good)
        j_from = model._last_flux

    if flux_m_s is not None:
        ok, term, msg, iters, attempts = _solve_flux_robust(
            model, float(flux_m_s), j_from, solver, solver_options, tee,
            continuation_steps if (j_from and j_from > 0) else 0)
    else:
        m.fs.eq_flux_target.deactivate()
        u.inlet.pressure[0].fix(pressure_Pa)
        ok, term, msg, iters = _run_solver(model, solver, solver_options or (None if cold else WARM_OPTIONS), tee)
        attempts = [("pressure", term, iters)]
        if not ok and not cold and solver_options is None:
            if model._last_good is not None:
                _restore(model._last_good)
            u.inlet.pressure[0].fix(pressure_Pa)
            ok, term, msg, it2 = _run_solver(model, solver, None, tee)
            attempts.append(("pressure-default", term, it2))
            iters += it2
    dt = time.perf_counter() - t0
    if raise_on_failure and not ok:
        raise RuntimeError(f"WaterTAP NF solve failed: {term} {msg}")
    out = _results(model)
    if ok:
        model._last_good = _snapshot(m)
        model._last_flux = out["flux_inlet_m_s"]
    model._last_ok = ok
    out.update(ok=ok, termination=term, message=msg, iterations=iters, attempts=attempts, cold=cold,
               solve_time_s=dt, init_time_s=init_time, build_time_s=model.build_time_s,
               init_error=init_error, flux_spec_m_s=flux_m_s, pressure_spec_Pa=pressure_Pa, solver=solver)
    model.history.append({k: out[k] for k in ("ok", "termination", "cold", "solve_time_s", "iterations",
                                               "flux_spec_m_s", "pressure_spec_Pa")})
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
def benchmark_watertap_nf(ions, feed_conc_mol_m3, flux_m_s: float = 30 * LMH_TO_M_S,
                          warm_rel_step: float = 0.01, n_warm: int = 3, **build_kw) -> dict[str, Any]:
    """Time build, cold initialize+solve at ``flux_m_s`` and warm re-solves at fluxes
    ``flux_m_s*(1 + k*warm_rel_step)`` (k = 1..n_warm) with both solver routes.

    Returns build_s, cold_init_s (WaterTAP initialize incl. state-block solves),
    cold_init_solve_s (initialize + flux-specified solve), cold_total_s (= build + that),
    warm_resolve_s (median over n_warm, 'cyipopt-watertap'), warm_resolve_raw_s (median,
    plain 'cyipopt'), iteration counts, ok flags and the cold result dict.
    """
    import statistics

    mdl = build_watertap_nf(ions, feed_conc_mol_m3, **build_kw)
    cold = solve_watertap_nf(mdl, flux_m_s)
    warm, raw = [], []
    for k in range(1, n_warm + 1):
        warm.append(solve_watertap_nf(mdl, flux_m_s * (1 + k * warm_rel_step)))
    for k in range(1, n_warm + 1):
        raw.append(solve_watertap_nf(mdl, flux_m_s * (1 - k * warm_rel_step), solver="cyipopt"))
    return {
        "build_s": mdl.build_time_s,
        "cold_init_s": cold["init_time_s"],
        "cold_init_solve_s": cold["solve_time_s"],
        "cold_total_s": mdl.build_time_s + cold["solve_time_s"],
        "cold_iterations": cold["iterations"],
        "warm_resolve_s": statistics.median(r["solve_time_s"] for r in warm),
        "warm_iterations": [r["iterations"] for r in warm],
        "warm_resolve_raw_s": statistics.median(r["solve_time_s"] for r in raw),
        "warm_raw_iterations": [r["iterations"] for r in raw],
        "cold_ok": cold["ok"],
        "warm_ok": all(r["ok"] for r in warm + raw),
        "cold": cold,
    }


def physicality_flags(r: Mapping[str, Any], tol: float = 1e-6, io_tol: float = 1e-3) -> dict[str, Any]:
    """Diagnose a result of :func:`solve_watertap_nf`.

    * ``rejection_out_of_range``: an intrinsic (point, x=0) or observed rejection outside [-1, 1]
      (R < -1 means c_p > 2 c_m; R > 1 a negative permeate concentration);
    * ``film_beyond_pole``: J_v >= k_i for some ion (the linearised film's CP modulus
      1/(1 - J_v/k) has its pole at J_v = k, see docstring);
    * ``inlet_outlet_mismatch``: |J_out/J_in - 1| or a point-rejection difference between x=0 and
      x=1 larger than ``io_tol`` although the module recovery is ~1e-5 (the two copies of the same
      local problem converged to different roots);
    * ``permeate_charge_imbalance``: |sum z c_p| (x=0) relative to sum |z| c_p.
    """
    rej = list(r["rejection_intrinsic_inlet"].values()) + list(r["rejection_observed_inlet"].values())
    out_of_range = (not all(math.isfinite(x) for x in rej)) or any(x < -1 - tol or x > 1 + tol for x in rej)
    kf = r.get("kf_inlet_m_s") or {}
    beyond = bool(kf) and r["flux_inlet_m_s"] >= min(kf.values())
    dj = abs(r["flux_outlet_m_s"] / r["flux_inlet_m_s"] - 1) if r["flux_inlet_m_s"] else float("inf")
    dr = max(abs(r["rejection_intrinsic_inlet"][k] - r["rejection_intrinsic_outlet"][k])
             for k in r["rejection_intrinsic_inlet"])
    cp = r["conc_permeate_inlet"]
    scale = sum(abs(v) for v in cp.values()) or 1.0
    return {
        "rejection_out_of_range": out_of_range,
        "film_beyond_pole": beyond,
        "inlet_outlet_mismatch": bool(dj > io_tol or dr > io_tol),
        "permeate_charge_imbalance": abs(r["charge_balance_permeate_inlet"]) / scale,
        "unphysical": bool(out_of_range or beyond or dj > io_tol or dr > io_tol),
    }


def sweep_flux(model_or_factory, fluxes_m_s, *, cold_each: bool = False, **solve_kw) -> list[dict[str, Any]]:
    """Solve at each flux and flag failures / unphysical results (:func:`physicality_flags`).

    ``model_or_factory``: a built :class:`WaterTAPNF` (solved in order, each point warm-started
    from the previous converged one), or with ``cold_each=True`` a zero-argument callable
    returning a fresh model (every point is a cold build + initialize + solve).
    """
    rows = []
    for jv in fluxes_m_s:
        mdl = model_or_factory() if cold_each else model_or_factory
        r = solve_watertap_nf(mdl, float(jv), **solve_kw)
        flags = physicality_flags(r)
        rows.append({"flux_m_s": float(jv), "flux_lmh": float(jv) / LMH_TO_M_S, "ok": r["ok"],
                     "termination": r["termination"], **flags,
                     "solve_time_s": r["solve_time_s"], "iterations": r["iterations"],
                     "attempts": [a[0] for a in r["attempts"]],
                     "rejection_intrinsic_inlet": r["rejection_intrinsic_inlet"],
                     "rejection_observed_inlet": r["rejection_observed_inlet"],
                     "pressure_feed_Pa": r["pressure_feed_Pa"], "flux_inlet_m_s": r["flux_inlet_m_s"],
                     "conc_wall_inlet": r["conc_wall_inlet"], "result": r})
    return rows
