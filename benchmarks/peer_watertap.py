"""nanosep vs WaterTAP's ``NanofiltrationDSPMDE0D``: agreement, film behaviour and speed.

Case: WaterTAP's own 5-ion unit-test water (Na+, Cl-, Ca+2, Mg+2, SO4-2; Cl- adjusted for
electroneutrality, :func:`peers.watertap_nf.watertap_test_feed`), r_p = 0.5 nm,
dx_e = 1.33 um, eps_p = 41.3, X = -27 mol/m3, 25 C, fixed water flux J_v (flux mode in both
models). Both models get the SAME ion properties: WaterTAP's unit-test values (Stokes radii,
diffusivities, molar masses; e.g. D(Ca+2) = 9.2e-10 m2/s), given to nanosep through
``IonDatabase.with_overrides``. nanosep runs with ``bulk_dielectric = 78.36`` (WaterTAP's
constant) and the Dechadilok-Deen hindrance (same K_d = H/(1-lambda)^2 and K_c as WaterTAP).
Compared quantity: the point intrinsic rejection 1 - c_p/c_wall at the module inlet of
WaterTAP (``rejection_intrinsic_inlet``; the module recovery is ~1e-5) and nanosep's
``rejection_intrinsic``.

Sections
--------
1. Agreement without polarization, ideal and Davies, over 0.5..100 L/m2/h (the 5..100 range of
   the brief plus three low-flux points). The difference is explained and closed with
   :class:`OneStepDSPMDE`, a numpy/scipy re-implementation of WaterTAP's equations (one
   linearised Nernst-Planck step across the layer with c-bar = (c_1 + c_2)/2, interfaces, Born,
   Donnan, electroneutrality, its Davies with molal I = c/(1000 - sum c M)), optionally on N
   sub-steps. N = 1 reproduces WaterTAP; N -> infinity (Richardson from N = 32, 64) reproduces
   nanosep's spectral solution, so the whole ideal difference is the one-step discretization;
   with Davies a second, flux-independent part is the activity convention (molality basis and
   A), split out by evaluating the reference with either convention.
2. Linearised film (WaterTAP ``MassTransferCoefficient.fixed``) with per-ion k_i equal to
   nanosep's ``polarization='linear'`` coefficients k_i = k (D_i/D_ref)^(2/3) (D_ref = 1.61e-9
   m2/s), k = 1e-5 m/s (36 L/m2/h) by default, at fluxes below and above k_i: WaterTAP,
   nanosep 'linear' (same equation) and nanosep 'film' (Nernst-Planck across a film of
   thickness D_ref/k).
3. Speed: WaterTAP cold build + initialize + solve per case and warm re-solve per case (warm
   sweep steps and 1 % steps, ``cyipopt-watertap`` and plain ``cyipopt``) vs nanosep single-case
   latency (median of 20 ``solve_batch`` calls with B = 1) and batched per-case time (one call
   with 200 cases: 20 fluxes x 10 feeds). ``torch.set_num_threads(1)``. Times are wall-clock
   and, for the warm re-solves and nanosep, also CPU seconds (``time.process_time``), whose
   ratios do not depend on other jobs on a shared host.

Outputs: results/benchmarks/peer_watertap.json, peer_watertap.csv (one row per section, model,
activity, flux and ion) and peer_watertap_rejection.png.

    python benchmarks/peer_watertap.py [--quick] [--k 1e-5] [--torch-threads 1]
"""
from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import brentq, root

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
sys.path.insert(0, str(_HERE.parent))
from common import metadata, print_metadata, results_dir, write_csv, write_json

from nanosep.constants import (
    AVOGADRO,
    BOLTZMANN,
    ELEMENTARY_CHARGE,
    FARADAY,
    GAS_CONSTANT,
    VACUUM_PERMITTIVITY,
)

LMH = 1.0 / 3.6e6  #: 1 L m-2 h-1 in m/s
MEMBRANE = {"pore_radius_m": 0.5e-9, "thickness_m": 1.33e-6, "pore_dielectric": 41.3, "charge_density_mol_m3": -27.0}
T_K = 298.15
EPS_BULK_WATERTAP = 78.36
ACTIVITIES = ("ideal", "davies")


# =============================================================================
# numpy reference implementation of WaterTAP's equations
# =============================================================================
def davies(z, A_log10: float, molality):
    """ln gamma(c) of the Davies equation log10 g = -A z^2 (sqrt I/(1 + sqrt I) - 0.3 I), I = 1/2 sum z^2 m(c)."""
    z2 = np.asarray(z, float) ** 2

    def lng(c):
        m = molality(np.asarray(c, float))
        I = 0.5 * (m @ z2)
        s = np.sqrt(I)
        return -math.log(10.0) * A_log10 * z2 * (s / (1.0 + s) - 0.3 * I)[..., None]
    return lng


def watertap_davies_A(T: float = T_K, eps_b: float = EPS_BULK_WATERTAP) -> float:
    """MCAS ``debye_huckel_constant`` (log10 basis), Sharqawy pure-water density (MCAS l. 1598-1617, 2030-2057)."""
    t = T - 273.15
    rho_w = 999.9 + 2.034e-2 * t - 6.162e-3 * t**2 + 2.261e-5 * t**3 - 4.657e-8 * t**4
    return (math.sqrt(2 * math.pi * AVOGADRO * rho_w) / math.log(10.0)
            * (ELEMENTARY_CHARGE**2 / (4 * math.pi * VACUUM_PERMITTIVITY * eps_b * BOLTZMANN * T)) ** 1.5)


def watertap_molality(mw):
    """MCAS molality at constant density 1000 kg/m3: m_j = n_j/(n_w M_w) = c_j / (1000 - sum_k c_k M_k)."""
    mw = np.asarray(mw, float)
    return lambda c: c / (1000.0 - c @ mw)[..., None]


def nanosep_molality(T: float = T_K):
    """nanosep: m = c / rho_w(T) (Kell density, solute volume neglected)."""
    from nanosep import water
    rho = float(water.density(T))
    return lambda c: c / rho


def nanosep_davies_A(T: float = T_K) -> float:
    """nanosep's Davies slope 3 A_phi(T) (Malmberg-Maryott eps(T), Kell rho(T)), converted to log10."""
    from nanosep import water
    return 3.0 * float(water.debye_huckel_aphi(T)) / math.log(10.0)


def activity_function(kind: str, z, mw, T: float = T_K):
    """ln gamma(c) for 'ideal', 'davies_watertap', 'davies_nanosep' or 'davies_hybrid'
    (WaterTAP's A with nanosep's molality basis; isolates the molality-basis effect)."""
    if kind == "ideal":
        return lambda c: np.zeros(np.shape(c))
    if kind == "davies_watertap":
        return davies(z, watertap_davies_A(T), watertap_molality(mw))
    if kind == "davies_nanosep":
        return davies(z, nanosep_davies_A(T), nanosep_molality(T))
    if kind == "davies_hybrid":
        return davies(z, watertap_davies_A(T), nanosep_molality(T))
    raise ValueError(kind)


class OneStepDSPMDE:
    """WaterTAP's DSPM-DE point equations (nanofiltration_DSPMDE_0D.py, watertap 1.8.0), on N steps.

    Per ion: lambda = smooth_min(1, r_s/r_p) (eps 1e-4), K_d = H(lambda)/(1 - lambda + 1e-8)^2,
    K_c (Dechadilok-Deen), ln Phi = 2 ln(1 - lambda) - Born (Stokes radius, eps_b); interfaces
    ln(g1 c1) = ln(gm cm) + ln Phi - z phi1 and ln(g2 c2) = ln(gp cp) + ln Phi - z (phi2 - phip)
    (phi = F psi/RT, wall phi = 0); pore electroneutrality sum z c + X = 0 at every node, permeate
    sum z c_p = 0; on each of the N steps of width h = dx/N
        J_v c_p = -K_d D (c_{k+1} - c_k)/h + K_c J_v cbar - z cbar K_d D (phi_{k+1} - phi_k)/h,
        cbar = (c_k + c_{k+1})/2.
    N = 1 is WaterTAP's model (NF l. 713-784); the scheme is second order in h, so N -> infinity
    is the exactly integrated extended Nernst-Planck equation (what nanosep solves spectrally).
    Optional linearised film (NF l. 790-827): J_v c_p = -k_i (c_m - c_b) + J_v c_m - z c_m D xi,
    sum z c_m = 0 (xi = F/RT dpsi/dx in the film).
    Unknowns: ln c (n x (N+1)), phi (N+1), ln c_p (n), phi_p [, ln c_m (n), xi]; solved with
    ``scipy.optimize.root`` (MINPACK hybrd) from the zero-flux Donnan equilibrium, continued in flux.
    """

    def __init__(self, z, r_s, D, c_b, *, r_p, dx, eps_p, X, T=T_K, eps_b=EPS_BULK_WATERTAP,
                 lng=None, steps: int = 1, k_film=None):
        self.z, self.D, self.cb = np.asarray(z, float), np.asarray(D, float), np.asarray(c_b, float)
        self.n, self.N, self.X, self.dx = len(self.z), int(steps), float(X), float(dx)
        self.lng = lng or (lambda c: np.zeros(np.shape(c)))
        r = np.asarray(r_s, float) / r_p
        lam = 0.5 * (1.0 + r - np.sqrt((1.0 - r) ** 2 + 1e-8))  # IDAES smooth_min(1, r, eps=1e-4)
        H = (1 + 9 / 8 * lam * np.log(lam) - 1.56034 * lam + 0.528155 * lam**2 + 1.91521 * lam**3
             - 2.81903 * lam**4 + 0.270788 * lam**5 + 1.10115 * lam**6 - 0.435933 * lam**7)
        self.kd = H / (1.0 - lam + 1e-8) ** 2
        self.kc = (1 + 3.867 * lam - 1.907 * lam**2 - 0.834 * lam**3) / (1 + 1.867 * lam - 0.741 * lam**2)
        born = (self.z**2 * ELEMENTARY_CHARGE**2 / (8 * math.pi * VACUUM_PERMITTIVITY * np.asarray(r_s, float))
                * (1 / eps_p - 1 / eps_b) / (BOLTZMANN * T))
        self.lnphi = 2.0 * np.log(1.0 - lam) - born
        self.k = None if k_film is None else np.asarray(k_film, float)
        self.RT_F = GAS_CONSTANT * T / FARADAY

    def peclet(self, jv: float) -> np.ndarray:
        """Pore Peclet number K_c J_v dx_e / (K_d D) per ion."""
        return self.kc * jv * self.dx / (self.kd * self.D)

    def _split(self, u):
        n, M = self.n, self.N + 1
        o = n * M
        lc, phi, lcp, phip = u[:o].reshape(n, M), u[o:o + M], u[o + M:o + M + n], u[o + M + n]
        if self.k is None:
            return lc, phi, lcp, phip, np.log(self.cb), 0.0
        return lc, phi, lcp, phip, u[o + M + n + 1:o + M + 2 * n + 1], u[-1]

    def residual(self, u, jv: float) -> np.ndarray:
        with np.errstate(all="ignore"):  # hybrd may probe huge ln c; the residual is then inf/nan
            return self._residual(u, jv)

    def _residual(self, u, jv: float) -> np.ndarray:
        z, lng = self.z, self.lng
        lc, phi, lcp, phip, lcm, xi = self._split(u)
        c, cp, cm = np.exp(lc), np.exp(lcp), np.exp(lcm)
        kdd, h = self.kd * self.D, self.dx / self.N
        cbar = 0.5 * (c[:, 1:] + c[:, :-1])
        flux = (-kdd[:, None] * (c[:, 1:] - c[:, :-1]) / h + (self.kc * jv)[:, None] * cbar
                - z[:, None] * cbar * kdd[:, None] * (phi[1:] - phi[:-1])[None, :] / h)
        jp = (jv * cp)[:, None]
        res = [lc[:, 0] + lng(c[:, 0]) - lcm - lng(cm) - self.lnphi + z * phi[0],              # entrance
               lc[:, -1] + lng(c[:, -1]) - lcp - lng(cp) - self.lnphi + z * (phi[-1] - phip),  # exit
               (z @ c + self.X) / (np.abs(z) @ c + abs(self.X)),                                # pore EN
               [(z @ cp) / (np.abs(z) @ cp)],                                                    # permeate EN
               ((jp - flux) / (kdd[:, None] / h * cbar + jp)).ravel()]                           # ENP steps
        if self.k is not None:
            res += [(jv * cp + self.k * (cm - self.cb) - jv * cm + z * cm * self.D * xi)
                    / (self.k * self.cb + jv * cm), [(z @ cm) / (np.abs(z) @ cm)]]
        return np.concatenate([np.ravel(a) for a in res])

    def guess(self) -> np.ndarray:
        """Zero-flux Donnan equilibrium (ideal): flat pore profile, permeate = feed."""
        a = self.cb * np.exp(self.lnphi)
        p0 = brentq(lambda p: float(np.sum(self.z * a * np.exp(-self.z * p)) + self.X), -50.0, 50.0)
        M = self.N + 1
        u = [np.repeat((np.log(a) - self.z * p0)[:, None], M, 1).ravel(), np.full(M, p0), np.log(self.cb), [0.0]]
        if self.k is not None:
            u += [np.log(self.cb), [0.0]]
        return np.concatenate(u)

    def refine_from(self, other: OneStepDSPMDE, u) -> np.ndarray:
        """Interpolate a solution with another step count onto this grid (initial guess)."""
        lc, phi, lcp, phip, lcm, xi = other._split(u)
        xo, xn = np.linspace(0, 1, other.N + 1), np.linspace(0, 1, self.N + 1)
        out = [np.array([np.interp(xn, xo, row) for row in lc]).ravel(), np.interp(xn, xo, phi), lcp, [phip]]
        if self.k is not None:
            out += [lcm, [xi]]
        return np.concatenate(out)

    def solve(self, jv: float, u0=None, tol: float = 1e-11):
        u0 = self.guess() if u0 is None else u0
        sol = root(self.residual, u0, args=(jv,), method="hybr", options={"xtol": 1e-14, "maxfev": 50000})
        res = float(np.max(np.abs(self.residual(sol.x, jv))))
        return sol.x, bool(np.isfinite(res) and res < tol)

    def sweep(self, fluxes, substeps: int = 8):
        """Solve at the (increasing) fluxes, each from the previous solution; sub-steps if a jump fails."""
        u_prev, j_prev, out = self.guess(), 0.0, []
        for jv in fluxes:
            u, ok = self.solve(jv, u_prev)
            if not ok:
                u = u_prev
                for jj in np.linspace(j_prev, jv, substeps + 1)[1:]:
                    u, ok = self.solve(jj, u)
                    if not ok:
                        break
            out.append((u, ok))
            if ok:
                u_prev, j_prev = u, jv
        return out

    def results(self, u) -> dict:
        _, _, lcp, _, lcm, _ = self._split(u)
        cp, cm = np.exp(lcp), np.exp(lcm)
        return {"R_int": 1 - cp / cm, "R_obs": 1 - cp / self.cb, "c_perm": cp, "c_wall": cm}


def reference_rejection(case: dict, fluxes_m_s, activity: str, steps: int = 1, k_film=None,
                        key: str = "R_int", start=None):
    """Rejections (F, n) of :class:`OneStepDSPMDE` for the case, with ``steps`` sub-steps.

    ``steps = 'inf'``: Richardson extrapolation (4 R(64) - R(32))/3 of the second-order scheme.
    Returns (R, ok, solutions, model); non-converged points are NaN.
    """
    if steps == "inf":
        r32, ok32, _, _ = reference_rejection(case, fluxes_m_s, activity, 32, k_film, key)
        r64, ok64, sols, mdl = reference_rejection(case, fluxes_m_s, activity, 64, k_film, key)
        return (4.0 * r64 - r32) / 3.0, ok32 & ok64, sols, mdl
    ions = case["ions"]
    names = list(ions)
    prop = lambda k: [ions[i][k] for i in names]
    lng = activity_function(activity, prop("charge"), prop("molar_mass_kg_mol"), T_K)
    kw = {"r_p": MEMBRANE["pore_radius_m"], "dx": MEMBRANE["thickness_m"], "eps_p": MEMBRANE["pore_dielectric"],
          "X": MEMBRANE["charge_density_mol_m3"], "lng": lng, "k_film": k_film}
    args = (prop("charge"), prop("stokes_radius_m"), prop("diffusivity_m2_s"), case["c"])
    one = OneStepDSPMDE(*args, steps=1, **kw)
    sols = one.sweep(list(fluxes_m_s))
    if steps != 1:  # refine each one-step solution onto N steps (one Newton solve each)
        fine = OneStepDSPMDE(*args, steps=steps, **kw)
        sols = [fine.solve(j, fine.refine_from(one, u)) if ok else (u, False)
                for (u, ok), j in zip(sols, fluxes_m_s)]
        one = fine
    R = np.array([one.results(u)[key] if ok else np.full(one.n, np.nan) for u, ok in sols])
    return R, np.array([ok for _, ok in sols]), sols, one


# =============================================================================
# the case, both engines
# =============================================================================
def make_case() -> dict:
    from peers import watertap_nf as wnf

    from nanosep.ions import IonDatabase

    ions, feed = wnf.watertap_test_feed()
    names = list(ions)  # Na+, Cl-, Ca+2, Mg+2, SO4-2
    db = IonDatabase.default().with_overrides({
        k: {"stokes_radius_nm": v["stokes_radius_m"] * 1e9, "diffusivity_m2_s": v["diffusivity_m2_s"],
            "molar_mass_kg_mol": v["molar_mass_kg_mol"], "source": "WaterTAP unit test (test_nanofiltration_DSPMDE_0D)"}
        for k, v in ions.items()})
    return {"ions": ions, "feed": feed, "names": names, "c": np.array([feed[k] for k in names]), "db": db}


def k_linear(case: dict, k: float) -> np.ndarray:
    """nanosep's per-ion linear-film coefficients k_i = k (D_i/D_ref)^(2/3) (solver.build_parameters)."""
    from nanosep.transport.options import D_REF_NACL
    D = np.array([case["ions"][i]["diffusivity_m2_s"] for i in case["names"]])
    return k * (D / D_REF_NACL) ** (2.0 / 3.0)


def ours(case: dict, fluxes_m_s, activity: str, polarization: str = "none", k: float | None = None, c=None):
    from nanosep.transport import TransportOptions, solve_batch

    fl = np.atleast_1d(np.asarray(fluxes_m_s, float))
    c = np.repeat(case["c"][None, :], fl.size, 0) if c is None else c
    opt = TransportOptions(activity=activity, polarization=polarization, bulk_dielectric=EPS_BULK_WATERTAP,
                           hindrance="dechadilok_deen",
                           mass_transfer_m_s=k if polarization != "none" else None)
    return solve_batch(case["names"], c, flux_m_s=fl, temperature_K=T_K, options=opt, ion_db=case["db"], **MEMBRANE)


def watertap_sweep(case: dict, fluxes_m_s, activity: str, mass_transfer="none", continuation_steps: int = 8):
    """Build one WaterTAP model and solve the fluxes in order (first cold, then warm)."""
    from peers import watertap_nf as wnf

    mdl = wnf.build_watertap_nf(case["ions"], case["feed"], temperature_K=T_K, activity=activity,
                                mass_transfer=mass_transfer, bulk_dielectric=EPS_BULK_WATERTAP, **MEMBRANE)
    rows = []
    for j in fluxes_m_s:
        t0 = time.perf_counter()
        try:
            r = wnf.solve_watertap_nf(mdl, float(j), continuation_steps=continuation_steps)
            r["flags"] = wnf.physicality_flags(r)
        except Exception as exc:  # noqa: BLE001 - report, keep sweeping
            r = {"ok": False, "termination": "exception", "message": repr(exc), "cold": not rows,
                 "solve_time_s": time.perf_counter() - t0, "iterations": None, "attempts": [], "flags": {}}
        rows.append(r)
    return mdl, rows


def _vec(d: dict | None, names) -> np.ndarray:
    return np.array([d[k] for k in names]) if d else np.full(len(names), np.nan)


def _physical(c_wall, c_perm, R_obs) -> bool:
    """Finite, positive wall and permeate concentrations, -1 <= R_obs <= 1."""
    arr = np.concatenate([np.ravel(c_wall), np.ravel(c_perm), np.ravel(R_obs)])
    return bool(np.all(np.isfinite(arr)) and np.all(np.asarray(c_wall) > 0) and np.all(np.asarray(c_perm) >= 0)
                and np.all(np.abs(R_obs) <= 1.0 + 1e-9))


# =============================================================================
# sections
# =============================================================================
def agreement(case: dict, fluxes_lmh, steps_list, csv_rows: list) -> dict:
    names = case["names"]
    fl = np.asarray(fluxes_lmh, float) * LMH
    out = {"fluxes_lmh": list(map(float, fluxes_lmh)), "ions": names}
    ref_model = OneStepDSPMDE([case["ions"][i]["charge"] for i in names],
                              [case["ions"][i]["stokes_radius_m"] for i in names],
                              [case["ions"][i]["diffusivity_m2_s"] for i in names], case["c"],
                              r_p=MEMBRANE["pore_radius_m"], dx=MEMBRANE["thickness_m"],
                              eps_p=MEMBRANE["pore_dielectric"], X=MEMBRANE["charge_density_mol_m3"])
    pe = np.array([ref_model.peclet(j) for j in fl])
    out["peclet"] = pe.tolist()
    out["K_d"], out["K_c"] = ref_model.kd.tolist(), ref_model.kc.tolist()
    for act in ACTIVITIES:
        print(f"\n## (1) agreement, no polarization, activity = {act}")
        t0 = time.perf_counter()
        mdl, wt = watertap_sweep(case, fl, act)
        t_wt = time.perf_counter() - t0
        R_wt = np.array([_vec(r.get("rejection_intrinsic_inlet") if r["ok"] else None, names) for r in wt])
        t0 = time.perf_counter()
        res = ours(case, fl, act)
        t_ours = time.perf_counter() - t0
        R_ours = res.rejection_intrinsic
        wt_conv = "ideal" if act == "ideal" else "davies_watertap"
        ns_conv = "ideal" if act == "ideal" else "davies_nanosep"
        t0 = time.perf_counter()
        R_ref1, ok1, _, _ = reference_rejection(case, fl, wt_conv, 1)
        # N-step convergence towards nanosep (nanosep's activity convention)
        conv = {}
        for N in sorted(set(steps_list) | {32, 64}):
            conv[N], _, sols_N, fine_N = reference_rejection(case, fl, ns_conv, N)
            if N == 64:
                sols, fine = sols_N, fine_N
        R_inf_ns = (4 * conv[64] - conv[32]) / 3
        # exponent of the per-step integrating factor, a_i = Pe_i - z_i (phi(L) - phi(0)), exact (N = 64) profile
        dphi = np.array([fine._split(u)[1][-1] - fine._split(u)[1][0] for u, _ in sols])
        a_exp = np.array([fine.peclet(j) for j in fl]) - fine.z[None, :] * dphi[:, None]
        R_inf_wt = R_inf_ns if act == "ideal" else reference_rejection(case, fl, wt_conv, "inf")[0]
        R_inf_hy = None if act == "ideal" else reference_rejection(case, fl, "davies_hybrid", "inf")[0]
        t_ref = time.perf_counter() - t0
        d_ours_wt = R_ours - R_wt
        d_ref1_wt = R_ref1 - R_wt
        d_disc = R_inf_wt - R_ref1                        # one-step discretization (WaterTAP's activity)
        d_act = R_inf_ns - R_inf_wt                       # activity convention (exact integration)
        d_rest = R_ours - R_inf_ns                        # nanosep vs exactly integrated reference
        sec = {
            "watertap_ok": [bool(r["ok"]) for r in wt], "ours_converged": res.converged.tolist(),
            "reference_1step_ok": ok1.tolist(), "pore_potential_drop_phi": dphi.tolist(),
            "exponent_a_per_flux_ion": a_exp.tolist(),
            "R_watertap": R_wt.tolist(), "R_ours": R_ours.tolist(), "R_ref_1step": R_ref1.tolist(),
            "R_ref_exact_nanosep_activity": R_inf_ns.tolist(), "R_ref_exact_watertap_activity": R_inf_wt.tolist(),
            "max_abs_ours_minus_watertap_per_flux_ion": np.abs(d_ours_wt).tolist(),
            "max_abs_ours_minus_watertap": float(np.nanmax(np.abs(d_ours_wt))),
            "max_abs_ref1_minus_watertap": float(np.nanmax(np.abs(d_ref1_wt))),
            "max_abs_discretization": float(np.nanmax(np.abs(d_disc))),
            "max_abs_activity_convention": float(np.nanmax(np.abs(d_act))),
            "max_abs_ours_minus_exact_reference": float(np.nanmax(np.abs(d_rest))),
            "max_abs_ours_minus_watertap_minus_discretization_minus_activity":
                float(np.nanmax(np.abs(d_ours_wt - d_disc - d_act))),
            "N_step_convergence_max_abs_vs_ours": {str(N): float(np.nanmax(np.abs(R - R_ours))) for N, R in conv.items()},
            "watertap_sweep_time_s": t_wt, "ours_time_s": t_ours, "reference_time_s": t_ref,
            "watertap_solve_time_s": [r["solve_time_s"] for r in wt], "watertap_cold": [r["cold"] for r in wt],
            "watertap_iterations": [r["iterations"] for r in wt],
        }
        if R_inf_hy is not None:
            sec["max_abs_molality_basis"] = float(np.nanmax(np.abs(R_inf_hy - R_inf_wt)))
            sec["max_abs_davies_A"] = float(np.nanmax(np.abs(R_inf_ns - R_inf_hy)))
            sec["davies_A_log10"] = {"watertap": watertap_davies_A(), "nanosep": nanosep_davies_A()}
            mw = np.array([case["ions"][i]["molar_mass_kg_mol"] for i in names])
            from nanosep import water
            sec["molality_divisor_kg_m3_feed"] = {"watertap": 1000.0 - float(case["c"] @ mw),
                                                 "nanosep": float(water.density(T_K))}
        out[act] = sec
        # ---- print
        print(f"WaterTAP sweep {t_wt:.1f} s ({sum(sec['watertap_ok'])}/{len(fl)} ok); nanosep {t_ours * 1e3:.0f} ms "
              f"for {len(fl)} cases; numpy reference {t_ref:.1f} s")
        print("flux   Pe(Mg)  max|a|  |R_ours - R_WT| per ion " + " ".join(f"{n:>8s}" for n in names)
              + "   1-step ref - WT   discr.    activity")
        def worst(v):   # max |v| of one flux, NaN where WaterTAP failed at that flux (no all-NaN warning)
            v = np.abs(v)
            return float(np.nanmax(v)) if np.isfinite(v).any() else float("nan")

        for b, j in enumerate(fluxes_lmh):
            print(f"{j:5.2f}  {pe[b, names.index('Mg+2')]:6.3f}  {np.abs(a_exp[b]).max():6.3f}  {'':23s}"
                  + " ".join(f"{v:8.1e}" for v in np.abs(d_ours_wt[b]))
                  + f"   {worst(d_ref1_wt[b]):8.1e}     {worst(d_disc[b]):8.1e}  "
                  + f"{worst(d_act[b]):8.1e}")
        print("N-step reference (nanosep activity) vs nanosep, max |dR|: "
              + ", ".join(f"N={N}: {v:.1e}" for N, v in sec["N_step_convergence_max_abs_vs_ours"].items())
              + f", Richardson(32,64): {sec['max_abs_ours_minus_exact_reference']:.1e}")
        print(f"max |R_ours - R_WT| = {sec['max_abs_ours_minus_watertap']:.2e}; 1-step reference reproduces WaterTAP "
              f"to {sec['max_abs_ref1_minus_watertap']:.1e}; ours - WT - (discretization + activity) = "
              f"{sec['max_abs_ours_minus_watertap_minus_discretization_minus_activity']:.1e}")
        if R_inf_hy is not None:
            print(f"Davies convention: molality basis {sec['max_abs_molality_basis']:.1e}, A "
                  f"{sec['max_abs_davies_A']:.1e} (A_log10 WaterTAP {watertap_davies_A():.5f}, nanosep "
                  f"{nanosep_davies_A():.5f}; divisor {sec['molality_divisor_kg_m3_feed']['watertap']:.1f} vs "
                  f"{sec['molality_divisor_kg_m3_feed']['nanosep']:.2f} kg/m3 in the feed)")
        for b, j in enumerate(fluxes_lmh):
            for i, n in enumerate(names):
                csv_rows.append({"section": "agreement", "activity": act, "polarization": "none", "flux_lmh": j,
                                 "ion": n, "peclet": pe[b, i], "R_ours": R_ours[b, i], "R_watertap": R_wt[b, i],
                                 "R_ref_1step": R_ref1[b, i], "R_ref_exact": R_inf_ns[b, i],
                                 "diff_ours_watertap": d_ours_wt[b, i], "diff_ref1_watertap": d_ref1_wt[b, i],
                                 "discretization": d_disc[b, i], "activity_convention": d_act[b, i],
                                 "watertap_ok": wt[b]["ok"], "ours_converged": bool(res.converged[b])})
        out[act]["_model"] = mdl  # reused by the speed section, removed before writing
    return out


def film(case: dict, fluxes_lmh, k: float, csv_rows: list, continuation_steps: int = 0) -> dict:
    names = case["names"]
    fl = np.asarray(fluxes_lmh, float) * LMH
    ki = k_linear(case, k)
    out = {"k_m_s": k, "k_lmh": k / LMH, "k_i_m_s": dict(zip(names, ki.tolist())),
           "k_i_lmh": dict(zip(names, (ki / LMH).tolist())), "fluxes_lmh": list(map(float, fluxes_lmh)),
           "film_thickness_m": None, "watertap_continuation_steps": continuation_steps}
    from nanosep.transport.options import D_REF_NACL
    out["film_thickness_m"] = D_REF_NACL / k
    print(f"\n## (2) linearised film, k = {k:.2e} m/s ({k / LMH:.0f} L/m2/h); k_i (L/m2/h): "
          + ", ".join(f"{n} {v / LMH:.1f}" for n, v in zip(names, ki))
          + f"; nanosep 'film' delta = D_ref/k = {out['film_thickness_m'] * 1e6:.0f} um")
    for act in ACTIVITIES:
        t0 = time.perf_counter()
        _, wt = watertap_sweep(case, fl, act, mass_transfer=dict(zip(names, ki.tolist())),
                              continuation_steps=continuation_steps)
        t_wt = time.perf_counter() - t0
        lin = ours(case, fl, act, "linear", k)
        nf = ours(case, fl, act, "film", k)
        ref, ref_ok, _, _ = reference_rejection(case, fl, "ideal" if act == "ideal" else "davies_watertap",
                                                    1, k_film=ki, key="R_obs")
        sec = {"watertap": [], "ours_linear": [], "ours_film": [], "reference_1step_linear_film_R_obs": ref.tolist(),
               "reference_ok": ref_ok.tolist(), "watertap_sweep_time_s": t_wt}
        print(f"\nactivity = {act}  (WaterTAP sweep {t_wt:.0f} s)")
        print("flux  J/k_min | WaterTAP linear film: status, R_obs " + " ".join(f"{n:>7s}" for n in names)
              + " | nanosep linear: R_obs | nanosep NP film: R_obs, max c_wall/c_bulk")
        for b, j in enumerate(fluxes_lmh):
            r = wt[b]
            R_w = _vec(r.get("rejection_observed_inlet"), names)
            cw_w = _vec(r.get("conc_wall_inlet"), names)
            cp_w = _vec(r.get("conc_permeate_inlet"), names)
            flags = r.get("flags", {})
            phys_w = bool(r["ok"]) and _physical(cw_w, cp_w, R_w) and not flags.get("unphysical", False)
            status = "ok" if phys_w else ("UNPHYS" if r["ok"] else "FAIL")
            R_l, R_f = lin.rejection_observed[b], nf.rejection_observed[b]
            phys_l = bool(lin.converged[b]) and _physical(lin.c_wall[b], lin.c_perm[b], R_l)
            phys_f = bool(nf.converged[b]) and _physical(nf.c_wall[b], nf.c_perm[b], R_f)
            cpm = float(np.max(nf.c_wall[b] / case["c"]))
            sec["watertap"].append({"flux_lmh": j, "ok": bool(r["ok"]), "termination": r.get("termination"),
                                    "physical": phys_w, "flags": {k_: v for k_, v in flags.items()},
                                    "R_obs": R_w.tolist(), "c_wall": cw_w.tolist(),
                                    "attempts": [a[0] for a in r.get("attempts", [])],
                                    "solve_time_s": r["solve_time_s"]})
            sec["ours_linear"].append({"flux_lmh": j, "converged": bool(lin.converged[b]), "physical": phys_l,
                                       "R_obs": R_l.tolist(), "c_wall": lin.c_wall[b].tolist()})
            sec["ours_film"].append({"flux_lmh": j, "converged": bool(nf.converged[b]), "physical": phys_f,
                                     "R_obs": R_f.tolist(), "c_wall": nf.c_wall[b].tolist(), "cp_modulus_max": cpm})
            show = lambda R: " ".join(f"{v:7.3f}" if np.isfinite(v) else "    nan" for v in R)
            print(f"{j:5.1f} {j * LMH / ki.min():5.2f}  | {status:6s} {show(R_w) if r['ok'] else show([np.nan] * 5)}"
                  f" | {'ok ' if phys_l else ('UNP' if lin.converged[b] else 'NC ')} "
                  f"{show(R_l if lin.converged[b] else [np.nan] * len(names))}"
                  f" | {'ok ' if phys_f else 'BAD'} {show(R_f)} {cpm:6.2f}")
            for i, n in enumerate(names):
                csv_rows.append({"section": "film", "activity": act, "polarization": "linear(WT)/film(ours)",
                                 "flux_lmh": j, "ion": n, "k_i_m_s": ki[i], "watertap_ok": r["ok"],
                                 "watertap_physical": phys_w, "R_obs_watertap_linear": R_w[i],
                                 "R_obs_ref_1step_linear": ref[b, i],
                                 "R_obs_ours_linear": R_l[i], "ours_linear_converged": bool(lin.converged[b]),
                                 "R_obs_ours_film": R_f[i], "ours_film_converged": bool(nf.converged[b]),
                                 "c_wall_ours_film": nf.c_wall[b, i], "c_wall_watertap": cw_w[i]})
        both = [b for b in range(len(fl)) if wt[b]["ok"] and ref_ok[b]]
        sec["max_abs_ref1_minus_watertap_where_both_converged"] = (
            float(np.max(np.abs(ref[both] - np.array([sec["watertap"][b]["R_obs"] for b in both])))) if both else None)
        sec["watertap_n_physical"] = sum(x["physical"] for x in sec["watertap"])
        sec["ours_film_n_physical"] = sum(x["physical"] for x in sec["ours_film"])
        sec["ours_linear_n_physical"] = sum(x["physical"] for x in sec["ours_linear"])
        print(f"physical points: WaterTAP {sec['watertap_n_physical']}/{len(fl)}, nanosep linear "
              f"{sec['ours_linear_n_physical']}/{len(fl)}, nanosep film {sec['ours_film_n_physical']}/{len(fl)}; "
              f"1-step numpy reference with the same linear film reproduces WaterTAP's converged points "
              f"(physical or not) to {sec['max_abs_ref1_minus_watertap_where_both_converged'] or float('nan'):.1e}")
        out[act] = sec
    return out


def cpu_timed(fn, *args, **kw) -> dict:
    """``fn(*args, **kw)`` (a result dict) with ``cpu_s``: CPU seconds of the call (all threads of this process)."""
    c0 = time.process_time()
    r = fn(*args, **kw)
    r["cpu_s"] = time.process_time() - c0
    return r


def speed(case: dict, agree: dict, cold_fluxes_lmh, n_single: int, n_feeds: int, n_fluxes: int) -> dict:
    from peers import watertap_nf as wnf

    out = {}
    names = case["names"]
    for act in ACTIVITIES:
        print(f"\n## (3) speed, activity = {act}, no polarization")
        cold = []
        for j in cold_fluxes_lmh:
            mdl = wnf.build_watertap_nf(case["ions"], case["feed"], temperature_K=T_K, activity=act,
                                        bulk_dielectric=EPS_BULK_WATERTAP, **MEMBRANE)
            r = wnf.solve_watertap_nf(mdl, j * LMH)
            cold.append({"flux_lmh": j, "ok": r["ok"], "build_s": mdl.build_time_s, "init_s": r["init_time_s"],
                         "init_solve_s": r["solve_time_s"], "total_s": mdl.build_time_s + r["solve_time_s"],
                         "iterations": r["iterations"]})
        # warm: the agreement sweep (steps of 5-10 L/m2/h from the previous point), then 1 % steps
        sec = agree[act]
        sweep_warm = [t for t, c, f in zip(sec["watertap_solve_time_s"], sec["watertap_cold"], agree["fluxes_lmh"])
                      if not c and f >= 5]
        mdl = sec["_model"]
        j0 = mdl._last_flux
        w1 = [cpu_timed(wnf.solve_watertap_nf, mdl, j0 * (1 - 0.01 * k)) for k in range(1, 6)]
        w1raw = [cpu_timed(wnf.solve_watertap_nf, mdl, j0 * (1 - 0.01 * k), solver="cyipopt") for k in range(6, 11)]
        wt = {
            "cold_total_s_median": statistics.median(c["total_s"] for c in cold),
            "cold": cold,
            "warm_sweep_s_median": statistics.median(sweep_warm),
            "warm_1pct_s_median": statistics.median(r["solve_time_s"] for r in w1),
            "warm_1pct_iterations": [r["iterations"] for r in w1],
            "warm_1pct_raw_cyipopt_s_median": statistics.median(r["solve_time_s"] for r in w1raw),
            "warm_1pct_cpu_s_median": statistics.median(r["cpu_s"] for r in w1),
            "warm_1pct_raw_cyipopt_cpu_s_median": statistics.median(r["cpu_s"] for r in w1raw),
            "warm_ok": all(r["ok"] for r in w1 + w1raw),
        }
        # nanosep single case
        fl = np.linspace(5, 100, 20) * LMH
        for _ in range(2):
            ours(case, fl[:1], act)
        lat, lat_cpu, conv1 = [], [], []
        for b in range(n_single):
            t0, c0 = time.perf_counter(), time.process_time()
            r = ours(case, fl[b % fl.size: b % fl.size + 1], act)
            lat.append(time.perf_counter() - t0)
            lat_cpu.append(time.process_time() - c0)
            conv1.append(bool(r.converged[0]))
        # batched: n_fluxes fluxes x n_feeds feeds (scaled salinity and divalent fraction, Cl- balances)
        rng = np.random.default_rng(20241121)
        feeds = []
        for f in range(n_feeds):
            c = case["c"].copy()
            if f:
                c *= np.exp(rng.uniform(np.log(0.1), np.log(1.5)))
                c[[names.index("Ca+2"), names.index("Mg+2"), names.index("SO4-2")]] *= np.exp(rng.uniform(-1, 1))
            z = np.array([case["ions"][i]["charge"] for i in names])
            icl = names.index("Cl-")
            c[icl] = (c @ z - c[icl] * z[icl]) / -z[icl]
            feeds.append(c)
        flb = np.linspace(5, 100, n_fluxes) * LMH
        C = np.repeat(np.array(feeds), n_fluxes, 0)
        FL = np.tile(flb, n_feeds)
        tb, tb_cpu = [], []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            rb = ours(case, FL, act, c=C)
            tb.append(time.perf_counter() - t0)
            tb_cpu.append(time.process_time() - c0)
        B = FL.size
        ns = {"single_latency_s_median": statistics.median(lat), "single_latency_s_min": min(lat),
              "single_converged": all(conv1), "n_single": n_single,
              "batch_cases": B, "batch_total_s_median": statistics.median(tb), "batch_total_s": tb,
              "batch_per_case_s": statistics.median(tb) / B, "batch_converged_fraction": float(rb.converged.mean()),
              "single_latency_cpu_s_median": statistics.median(lat_cpu),
              "batch_per_case_cpu_s": statistics.median(tb_cpu) / B}
        ratio = {
            "warm_1pct_vs_single": wt["warm_1pct_s_median"] / ns["single_latency_s_median"],
            "warm_1pct_vs_batched": wt["warm_1pct_s_median"] / ns["batch_per_case_s"],
            "warm_sweep_vs_single": wt["warm_sweep_s_median"] / ns["single_latency_s_median"],
            "warm_sweep_vs_batched": wt["warm_sweep_s_median"] / ns["batch_per_case_s"],
            "warm_raw_cyipopt_vs_single": wt["warm_1pct_raw_cyipopt_s_median"] / ns["single_latency_s_median"],
            "warm_raw_cyipopt_vs_batched": wt["warm_1pct_raw_cyipopt_s_median"] / ns["batch_per_case_s"],
            "cold_vs_single": wt["cold_total_s_median"] / ns["single_latency_s_median"],
            "cold_vs_batched": wt["cold_total_s_median"] / ns["batch_per_case_s"],
        }
        # the same ratios in CPU seconds (time.process_time): insensitive to other jobs on a shared host
        ratio_cpu = {
            "warm_1pct_vs_single": wt["warm_1pct_cpu_s_median"] / ns["single_latency_cpu_s_median"],
            "warm_1pct_vs_batched": wt["warm_1pct_cpu_s_median"] / ns["batch_per_case_cpu_s"],
            "warm_raw_cyipopt_vs_single": wt["warm_1pct_raw_cyipopt_cpu_s_median"] / ns["single_latency_cpu_s_median"],
            "warm_raw_cyipopt_vs_batched": wt["warm_1pct_raw_cyipopt_cpu_s_median"] / ns["batch_per_case_cpu_s"],
        }
        out[act] = {"watertap": wt, "nanosep": ns, "ratio": ratio, "ratio_cpu": ratio_cpu}
        cold_txt = ", ".join(f"{c['flux_lmh']:g} LMH {c['total_s']:.2f} s" for c in cold)
        print(f"WaterTAP cold build+init+solve median {wt['cold_total_s_median']:.2f} s "
              f"({cold_txt}); warm re-solve: sweep step "
              f"{wt['warm_sweep_s_median']:.3f} s, 1 % step {wt['warm_1pct_s_median']:.3f} s (cyipopt-watertap), "
              f"{wt['warm_1pct_raw_cyipopt_s_median']:.3f} s (plain cyipopt)")
        print(f"nanosep single case {ns['single_latency_s_median'] * 1e3:.1f} ms (median of {n_single}); batched "
              f"{B} cases in {ns['batch_total_s_median']:.3f} s = {ns['batch_per_case_s'] * 1e3:.2f} ms/case "
              f"(converged {ns['batch_converged_fraction']:.3f})")
        print("ratios WaterTAP/nanosep per case: " + ", ".join(f"{k} {v:.0f}x" for k, v in ratio.items()))
        print(f"CPU seconds: WaterTAP warm 1 % step {wt['warm_1pct_cpu_s_median']:.3f} s (cyipopt-watertap), "
              f"{wt['warm_1pct_raw_cyipopt_cpu_s_median']:.3f} s (plain cyipopt); nanosep single "
              f"{ns['single_latency_cpu_s_median'] * 1e3:.1f} ms, batched {ns['batch_per_case_cpu_s'] * 1e3:.2f} ms/case")
        print("CPU-time ratios WaterTAP/nanosep per case: " + ", ".join(f"{k} {v:.0f}x" for k, v in ratio_cpu.items()))
    return out


# =============================================================================
# plot, main
# =============================================================================
def plot(agree: dict, film_sec: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, fl = agree["ions"], np.array(agree["fluxes_lmh"])
    colors = dict(zip(names, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, ax = plt.subplots(2, 2, figsize=(12, 9))
    for a, act in zip(ax[0], ACTIVITIES):
        R_o, R_w = np.array(agree[act]["R_ours"]), np.array(agree[act]["R_watertap"])
        for i, n in enumerate(names):
            a.plot(fl, R_o[:, i], "-", color=colors[n], label=f"{n} nanosep")
            a.plot(fl, R_w[:, i], "o", mfc="none", color=colors[n], label=f"{n} WaterTAP")
        a.set(xlabel="J_v [L/m2/h]", ylabel="intrinsic rejection (point, inlet)",
              title=f"no polarization, {act}")
        a.grid(alpha=0.3)
    ax[0, 0].legend(fontsize=7, ncol=2)
    a = ax[1, 0]
    for act, ls in zip(ACTIVITIES, ("-", "--")):
        d = np.abs(np.array(agree[act]["R_ours"]) - np.array(agree[act]["R_watertap"]))
        disc = np.abs(np.array(agree[act]["R_ref_exact_watertap_activity"]) - np.array(agree[act]["R_ref_1step"]))
        for i, n in enumerate(names):
            a.loglog(fl, d[:, i], ls, color=colors[n], label=f"{n} |R_ours - R_WT| {act}" if act == "ideal" else None)
        if act == "ideal":
            a.loglog(fl, disc.max(1), "k:", lw=2, label="max one-step discretization error (reference)")
    a.set(xlabel="J_v [L/m2/h]", ylabel="|R_nanosep - R_WaterTAP|",
          title="difference (solid ideal, dashed Davies)")
    a.grid(alpha=0.3, which="both")
    a.legend(fontsize=7)
    a = ax[1, 1]
    if film_sec:
        ffl = np.array(film_sec["fluxes_lmh"])
        sec = film_sec["davies"] if "davies" in film_sec else film_sec["ideal"]
        Rw = np.array([r["R_obs"] if r["ok"] else [np.nan] * len(names) for r in sec["watertap"]])
        Rf = np.array([r["R_obs"] for r in sec["ours_film"]])
        for i, n in enumerate(names):
            a.plot(ffl, Rf[:, i], "-", color=colors[n], label=f"{n} nanosep NP film")
            a.plot(ffl, Rw[:, i], "x--", color=colors[n], label=f"{n} WaterTAP linear film")
        for n, v in film_sec["k_i_lmh"].items():
            a.axvline(v, color=colors[n], lw=0.6, alpha=0.5)
        a.set_ylim(-3, 1.1)
        a.set(xlabel="J_v [L/m2/h] (vertical lines: k_i)", ylabel="observed rejection",
              title=f"film, k = {film_sec['k_lmh']:.0f} L/m2/h, {'davies' if 'davies' in film_sec else 'ideal'}")
        a.grid(alpha=0.3)
        a.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer fluxes, fewer cold builds and timing repeats")
    p.add_argument("--k", type=float, default=1e-5, help="film mass-transfer coefficient k [m/s] (default 1e-5)")
    p.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--film-continuation", type=int, default=0,
                   help="WaterTAP flux-continuation steps after a failed film point (default 0: direct warm "
                        "solve + retry with default Ipopt options only; a failure costs 5-40 s per continuation)")
    p.add_argument("--skip", nargs="*", default=[], choices=["film", "speed"], help="sections to skip")
    p.add_argument("--out", type=Path, default=None, help="output folder (default results/benchmarks)")
    a = p.parse_args(argv)

    import torch
    torch.set_num_threads(a.torch_threads)
    for name in ("idaes", "pyomo", "watertap"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from peers import watertap_nf as wnf
    if not wnf.watertap_available():
        print("watertap / cyipopt / PyNumero ASL not available: nothing to compare", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    meta = metadata()
    print_metadata(meta)
    t0 = time.perf_counter()
    import idaes.core  # noqa: F401  (imports are not part of the timed builds)
    import watertap.property_models.multicomp_aq_sol_prop_pack
    import watertap.unit_models.nanofiltration_DSPMDE_0D  # noqa: F401
    wnf._use_cyipopt()
    import_s = time.perf_counter() - t0
    print(f"# watertap/idaes import {import_s:.1f} s (not included in any timing)")

    if a.quick:
        agree_fl = [0.25, 1, 2, 5, 10, 20, 30, 50, 70, 100]
        film_fl = [5, 10, 20, 30, 40, 50, 70, 100]
        steps = [1, 2, 4, 8, 16, 32, 64]
        cold_fl, n_single, n_feeds, n_fluxes = [30, 100], 20, 10, 20
    else:
        agree_fl = [0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100]
        film_fl = [5, 10, 15, 20, 25, 30, 35, 40, 50, 60, 70, 80, 90, 100]
        steps = [1, 2, 4, 8, 16, 32, 64]
        cold_fl, n_single, n_feeds, n_fluxes = [10, 30, 60, 100], 20, 10, 20

    case = make_case()
    print("# feed (mol/m3): " + ", ".join(f"{k} {case['feed'][k]:.3f}" for k in case["names"])
          + "; ion properties: WaterTAP unit-test values in both models")
    rows: list[dict] = []
    agree = agreement(case, agree_fl, steps, rows)
    film_sec = {} if "film" in a.skip else film(case, film_fl, a.k, rows, a.film_continuation)
    speed_sec = {} if "speed" in a.skip else speed(case, agree, cold_fl, n_single, n_feeds, n_fluxes)
    for act in ACTIVITIES:
        agree[act].pop("_model", None)
    meta_end = metadata()
    result = {"meta": meta, "loadavg_end": meta_end["loadavg_1_5_15"], "quick": a.quick,
              "watertap_import_s": import_s, "wall_time_s": time.perf_counter() - t_start,
              "case": {"feed_mol_m3": case["feed"], "ions": case["ions"], "membrane": MEMBRANE, "T_K": T_K,
                       "bulk_dielectric": EPS_BULK_WATERTAP,
                       "ion_properties": "WaterTAP unit-test values in both models"},
              "agreement": agree, "film": film_sec, "speed": speed_sec}
    out = a.out or results_dir()
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "peer_watertap.json", result)
    write_csv(out / "peer_watertap.csv", rows)
    plot(agree, film_sec, out / "peer_watertap_rejection.png")
    print(f"\n# load avg at end {meta_end['loadavg_1_5_15']}; wall time {result['wall_time_s']:.0f} s; wrote "
          f"{out / 'peer_watertap.json'}, .csv, {out / 'peer_watertap_rejection.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
