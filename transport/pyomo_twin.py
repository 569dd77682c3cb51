"""Equation-oriented twin of the transport engine: the same discretized DSPM-DE model as a Pyomo block.

:class:`DSPMDEBlock` writes the equations of :mod:`.system` for one case in physical form on the same
Chebyshev grid (node 0 = feed side), with every property number from :func:`.solver.build_parameters`.
Each Constraint's ``doc`` states its equation; concentrations mol/m3, potentials ``F psi/(R T)``.
Image forces: ``G`` is the series in ``ln mu`` of :func:`.image_forces.image_integral_chebyshev`, summed
as ``sum_j a_j cos(j acos t)`` (size linear in the degree; Clenshaw would nest its terms).  One scaling
mechanism: the engine's row scales in a ``scaling_factor`` suffix (Ipopt ``user-scaling``).  The block
is square with ``conc_feed`` and ``flux_vol`` (or ``pressure``) fixed; unfix or link them in a flowsheet.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyomo.environ as pyo
from idaes.core import ProcessBlockData, declare_process_block_class
from idaes.core.util.model_statistics import degrees_of_freedom
from pyomo.common.config import ConfigValue

from nanosep.errors import InvalidInputError
from nanosep.ions import IonDatabase
from nanosep.solvers import ipopt_solver

from . import chebyshev, grid_map
from .activity import make_activity_model
from .image_forces import image_integral_chebyshev
from .options import TransportOptions
from .results import BatchResult
from .solver import build_parameters, check_electroneutral, feed_equilibrium, solve_batch
from .system import DSPMDESystem

__all__ = ["DSPMDEBlock", "TwinResult", "build_twin", "initialize_from_engine",  # noqa: F822 (DSPMDEBlock: by IDAES)
           "solve_block", "solve_twin"]

log = logging.getLogger(__name__)

#: square, warm-started solves: tight tolerances, the start is kept (no push off the bounds c >= 0, tiny barrier)
TWIN_IPOPT_OPTIONS = {"tol": 1e-10, "constr_viol_tol": 1e-10, "acceptable_constr_viol_tol": 1e-10, "print_level": 0,
                      "nlp_scaling_method": "user-scaling", "bound_push": 1e-12, "bound_frac": 1e-12, "mu_init": 1e-11}
_CONFIG = (("ions", None, "ion names, any accepted spelling"), ("c_feed", None, "bulk feed [mol/m3], one per ion"),
           ("flux_m_s", None, "water flux J_v [m/s] (flux mode)"), ("pressure_pa", None, "dP [Pa] (pressure mode)"),
           ("pore_radius_m", None, "r_p [m]"), ("thickness_m", None, "effective thickness dx_e [m]"),
           ("pore_dielectric", None, "eps_p [-]"), ("charge_density_mol_m3", None, "signed membrane charge X [mol/m3]"),
           ("temperature_K", 298.15, "T [K]"), ("options", None, "TransportOptions (None: the defaults)"),
           ("ion_db", None, "IonDatabase (None: the packaged one)"),
           ("image_mu_range", (1e-3, 200.0), "[mu_min, mu_max] of the G(mu) fit"), ("image_degree", 100, "its degree"))
_CONC = pyo.NonNegativeReals  # domain of every concentration Var (keeps ln c defined in Ipopt's iterates)
_REQUIRED = ("ions", "c_feed", "pore_radius_m", "thickness_m", "pore_dielectric", "charge_density_mol_m3")


def _make_config(config) -> None:
    for name, default, doc in _CONFIG:
        config.declare(name, ConfigValue(default=default, doc=doc))


def _args(idx) -> tuple:
    """Index of a component data as a tuple (``()`` for scalar components)."""
    return () if idx is None else idx if isinstance(idx, tuple) else (idx,)


@declare_process_block_class("DSPMDEBlock")
class DSPMDEBlockData(ProcessBlockData):
    """One DSPM-DE case on the engine's collocation grid (see the module docstring)."""

    CONFIG = ProcessBlockData.CONFIG()
    _make_config(CONFIG)

    def build(self) -> None:
        super().build()
        self._set_physics()
        self._add_parameters()
        self._add_variables()
        {"film": self._add_film, "linear": self._add_linear_film}.get(self.options.polarization, self._add_no_film)()
        self._add_activity()
        self._add_image_forces()
        self._add_active_layer()
        self._add_partitioning()
        if self.prm.pressure is not None:
            hp, RT = float(self.prm.hp_coef[0]), float(self.prm.RT[0])
            self.eq_hagen_poiseuille = pyo.Constraint(expr=hp * self.flux_vol == self.pressure - RT * sum(
                self.conc_wall[i] - self.conc_perm[i] for i in self.ions), doc="8 eta dx_e J_v/r_p^2 = dP - RT sum dc")
        self._add_scaling()

    # ------------------------------------------------------------------ inputs -> BatchParameters
    def _set_physics(self) -> None:
        cfg = self.config
        if missing := [nm for nm in _REQUIRED if getattr(cfg, nm) is None]:
            raise InvalidInputError(f"DSPMDEBlock needs {missing}")
        if (cfg.flux_m_s is None) == (cfg.pressure_pa is None):
            raise InvalidInputError("give exactly one of flux_m_s and pressure_pa")
        ions = [(cfg.ion_db or IonDatabase.default()).get(i) for i in cfg.ions]
        self.ion_names = names = [ion.name for ion in ions]
        self.z = np.array([ion.charge for ion in ions], dtype=float)
        c = np.asarray(cfg.c_feed, dtype=float).reshape(1, -1)
        if c.shape[1] != len(names) or not (c > 0).all() or not np.isfinite(c).all():
            raise InvalidInputError(f"c_feed={c[0].tolist()} must be {len(names)} positive finite values "
                                    f"for {names} (the twin has no absent ions: give a trace instead)")
        check_electroneutral(names, self.z, c)
        self.options = opts = cfg.options or TransportOptions()
        pressure = None if cfg.pressure_pa is None else np.array([float(cfg.pressure_pa)])
        case = [np.array([float(v)]) for v in (1.0 if pressure is not None else cfg.flux_m_s, cfg.pore_radius_m,
                cfg.thickness_m, cfg.pore_dielectric, cfg.charge_density_mol_m3, cfg.temperature_K)]
        self.prm = prm = build_parameters(names, self.z, np.array([ion.stokes_radius_m for ion in ions]),
                                          np.array([ion.diffusivity_m2_s for ion in ions]), c, *case, opts, pressure)
        if pressure is not None:
            prm.flux = pressure / prm.hp_coef  # pure-water flux: the engine's starting value
        self.phi_donnan, scale = feed_equilibrium(prm)
        self.scale_ion = scale[0]
        self.scale_charge = max(float(c[0] @ np.abs(self.z) + abs(prm.charge[0])), 1e-300)
        self.neutral = bool(np.all(self.z == 0))

    def _per_ion(self, a) -> dict:
        return dict(zip(self.ion_names, np.asarray(a, dtype=float).ravel().tolist()))

    def _add_parameters(self) -> None:
        prm, N = self.prm, self.options.nodes
        self.ions = pyo.Set(initialize=self.ion_names, ordered=True, doc="ions (canonical names)")
        self.nodes = pyo.RangeSet(0, N, doc="Chebyshev nodes of the active layer, 0 = feed side")
        self.nodes_ode = pyo.RangeSet(1, N, doc="nodes where Nernst-Planck is collocated")
        self.charge = pyo.Param(self.ions, initialize=self._per_ion(self.z), doc="charge number z_i [-]")
        for name, arr, doc in (("diffusivity", prm.diff, "D_i at T [m2/s]"), ("hindrance_diffusive", prm.kd, "K_d [-]"),
                               ("hindrance_convective", prm.kc, "K_c [-]"),
                               ("ln_partition_fixed", prm.ln_phi_fixed, "ln(Phi_steric Phi_Born) [-]")):
            self.add_component(name, pyo.Param(self.ions, mutable=True, initialize=self._per_ion(arr), doc=doc))
        self.charge_density = pyo.Param(mutable=True, initialize=float(prm.charge[0]), doc="X [mol/m3]")
        self.thickness = pyo.Param(mutable=True, initialize=float(prm.thickness[0]), doc="dx_e [m]")

    def _add_variables(self) -> None:
        prm, c_b, s = self.prm, self._per_ion(self.prm.c_feed), self._per_ion(self.scale_ion)
        self.conc_feed = pyo.Var(self.ions, initialize=c_b, domain=_CONC, doc="bulk feed concentration c_b,i [mol/m3]")
        self.conc_feed.fix()
        self.flux_vol = pyo.Var(initialize=float(prm.flux[0]), doc="water flux J_v [m/s]")
        if prm.pressure is None:
            self.flux_vol.fix()
        else:
            self.pressure = pyo.Var(initialize=float(prm.pressure[0]), doc="applied pressure dP [Pa]")
            self.pressure.fix()
        self.conc_pore = pyo.Var(self.ions, self.nodes, initialize=lambda b, i, k: s[i], domain=_CONC,
                                 doc="pore concentration c_i(x_k) [mol/m3]")
        self.phi_pore = pyo.Var(self.nodes, initialize=float(self.phi_donnan[0]), doc="pore potential at x_k [-]")
        self.conc_perm = pyo.Var(self.ions, initialize=c_b, domain=_CONC, doc="permeate concentration c_p,i [mol/m3]")
        self.phi_perm = pyo.Var(initialize=0.0, doc="permeate potential [-]")
        self.flux_ion = pyo.Expression(self.ions, rule=lambda b, i: b.flux_vol * b.conc_perm[i],
                                       doc="ion flux J_i = J_v c_p,i [mol/(m2 s)]")
        self.rejection = pyo.Expression(self.ions, rule=lambda b, i: 1.0 - b.conc_perm[i] / b.conc_feed[i],
                                        doc="observed rejection 1 - c_p,i / c_b,i [-]")

    # ------------------------------------------------------------------ equations
    def _nernst_planck(self, c, phi, i, k, L, kd, kc, D_m):
        """Extended Nernst-Planck ion flux ``K_c J_v c - K_d D (dc/dx + z c dphi/dx)`` at node k [mol/(m2 s)]."""
        nodes = range(len(D_m))
        dc = sum(float(D_m[k, m]) * c[i, m] for m in nodes) / L
        dphi = sum(float(D_m[k, m]) * phi[m] for m in nodes) / L
        return kc * self.flux_vol * c[i, k] - kd * self.diffusivity[i] * (dc + self.charge[i] * c[i, k] * dphi)

    def _neutrality(self, c, X, phi):
        """``sum z c + X = 0`` (``phi = 0`` if every solute is neutral, as in the engine)."""
        return phi == 0 if self.neutral else sum(self.charge[i] * c[i] for i in self.ions) + X == 0

    def _add_no_film(self) -> None:
        self.conc_wall = pyo.Expression(self.ions, rule=lambda b, i: b.conc_feed[i], doc="c_w = c_b [mol/m3]")
        self.phi_wall = pyo.Expression(expr=0.0, doc="wall potential [-] (gauge)")

    def _add_film(self) -> None:
        """Unhindered Nernst-Planck across a film of thickness delta on its own grid, bulk feed at node 0."""
        Nf, delta = self.options.film_nodes, float(self.prm.film_thickness[0])
        Df, c_b = chebyshev.diff_matrix(Nf), self._per_ion(self.prm.c_feed)
        self.film_nodes = pyo.RangeSet(0, Nf, doc="film nodes, 0 = bulk side")
        self.film_nodes_ode = pyo.RangeSet(1, Nf)
        self.conc_film = pyo.Var(self.ions, self.film_nodes, initialize=lambda b, i, k: c_b[i], domain=_CONC,
                                 doc="film concentration c_i(y_k) [mol/m3]")
        self.phi_film = pyo.Var(self.film_nodes, initialize=0.0, doc="film potential at y_k [-]")
        self.conc_wall = pyo.Expression(self.ions, rule=lambda b, i: b.conc_film[i, Nf], doc="c_w [mol/m3]")
        self.phi_wall = pyo.Expression(expr=self.phi_film[Nf], doc="wall potential [-]")
        self.eq_ion_flux_film = pyo.Constraint(self.ions, self.film_nodes_ode, rule=lambda b, i, k: b.flux_ion[i] == (
            b._nernst_planck(b.conc_film, b.phi_film, i, k, delta, 1.0, 1.0, Df)),
            doc="J_v c_p,i = J_v c_ik - D_i (D c_i + z_i c_ik D phi)_k / delta")
        self.eq_film_bulk = pyo.Constraint(self.ions, rule=lambda b, i: b.conc_film[i, 0] == b.conc_feed[i])
        self.eq_film_gauge = pyo.Constraint(expr=self.phi_film[0] == 0.0, doc="phi = 0 in the bulk feed")
        self.eq_electroneutrality_film = pyo.Constraint(self.film_nodes_ode, rule=lambda b, k: b._neutrality(
            {i: b.conc_film[i, k] for i in b.ions}, 0.0, b.phi_film[k]), doc="sum z_i c_ik = 0")

    def _add_linear_film(self) -> None:
        """Seed 003 eq. 2 with the field ``w / delta_ref``; the wall potential is the gauge."""
        prm, c_b = self.prm, self._per_ion(self.prm.c_feed)
        k_i, xi = self._per_ion(prm.k_ion), 1.0 / float(prm.delta_ref[0])
        self.conc_wall = pyo.Var(self.ions, initialize=c_b, domain=_CONC, doc="wall concentration c_w,i [mol/m3]")
        self.film_field = pyo.Var(initialize=0.0, doc="w = delta_ref dphi/dy in the film [-]")
        self.phi_wall = pyo.Expression(expr=0.0, doc="wall potential [-] (gauge)")
        self.eq_film_linear = pyo.Constraint(self.ions, rule=lambda b, i: b.flux_ion[i] == k_i[i] * (
            b.conc_feed[i] - b.conc_wall[i]) + b.flux_vol * b.conc_wall[i] - b.charge[i] * b.conc_wall[i]
            * b.diffusivity[i] * b.film_field * xi, doc="J_v c_p = k_i (c_b - c_w) + J_v c_w - z_i c_w D_i w/delta_ref")
        self.eq_electroneutrality_wall = pyo.Constraint(expr=self._neutrality(self.conc_wall, 0.0, self.film_field))

    def _add_activity(self) -> None:
        """ln gamma at the wall, both pore ends and the permeate (same formula code as the engine)."""
        kind, N = self.options.activity, self.options.nodes
        T = float(self.config.temperature_K)
        model = None if kind == "ideal" else make_activity_model(kind, self.ion_names, T=T)
        sites = {"wall": lambda i: self.conc_wall[i], "pore_feed": lambda i: self.conc_pore[i, 0],
                 "pore_perm": lambda i: self.conc_pore[i, N], "perm": lambda i: self.conc_perm[i]}
        for site, conc in sites.items():
            lg = model.ln_gamma_pyomo([conc(i) for i in self.ion_names]) if model else [0.0] * len(self.ion_names)
            self.add_component(f"ln_gamma_{site}", pyo.Expression(self.ions, initialize=dict(zip(self.ion_names, lg)),
                                                                  doc=f"ln gamma_i at {site} [-]"))

    def _add_image_forces(self) -> None:
        """``ln Phi_im`` per interface (0 without image forces); ``ln mu`` unknowns and screening rows."""
        self.sides = pyo.Set(initialize=["feed", "perm"], ordered=True, doc="interfaces")
        prm = self.prm
        if prm.image is None:
            self.ln_partition_image = pyo.Expression(self.sides, self.ions, initialize=0.0, doc="ln Phi_im [-]")
            return
        lo, hi = self.config.image_mu_range
        self.image_fit = image_integral_chebyshev(float(prm.image.eps_ratio[0]), lo, hi, self.config.image_degree)
        self.ln_mu = pyo.Var(self.sides, initialize=0.0, bounds=(float(np.log(lo)), float(np.log(hi))),
                             doc="ln(r_p kappa) at each interface [-], bounded to the G(mu) fit")
        x_lo, x_hi = (float(v) for v in self.image_fit.series.domain)
        a = self.image_fit.coefficients.tolist()
        self.image_angle = pyo.Expression(self.sides, rule=lambda b, s: pyo.acos(
            (2.0 * b.ln_mu[s] - (x_lo + x_hi)) / (x_hi - x_lo)), doc="acos(t), t = ln mu mapped to [-1, 1] [-]")
        self.image_G = pyo.Expression(self.sides, rule=lambda b, s: a[0] + sum(
            a[j] * pyo.cos(j * b.image_angle[s]) for j in range(1, len(a))), doc="G(mu) = sum_j a_j T_j(t) [-]")
        coef = self._per_ion(prm.image_coef)
        self.ln_partition_image = pyo.Expression(self.sides, self.ions, rule=lambda b, s, i: -coef[i] * b.image_G[s],
                                                 doc="ln Phi_im = -(2 alpha_i/pi) G(mu) [-]")
        N, pore = self.options.nodes, prm.image_screening == "pore"
        at = {"feed": (lambda i: self.conc_pore[i, 0]) if pore else (lambda i: self.conc_wall[i]),
              "perm": (lambda i: self.conc_pore[i, N]) if pore else (lambda i: self.conc_perm[i])}
        scr = float(prm.screening_coef[0])
        self.eq_screening = pyo.Constraint(self.sides, rule=lambda b, s: 2.0 * b.ln_mu[s] == pyo.log(
            scr * sum(b.charge[i] ** 2 * at[s](i) for i in b.ions if b.charge[i] != 0)), doc="mu^2 = coef sum z^2 c")

    def _add_active_layer(self) -> None:
        # the engine's node map (grid_map.py) at a high Peclet number: d/dx = diag(1/g'(xi)) D_xi / dx_e
        N, a = self.options.nodes, self.prm.grid_map
        Dm = chebyshev.diff_matrix(N)
        if a is not None and a[0] > 0:
            Dm = Dm / grid_map.positions(chebyshev.nodes(N), a)[1][0][:, None]
        self.eq_ion_flux_pore = pyo.Constraint(self.ions, self.nodes_ode, rule=lambda b, i, k: b.flux_ion[i] == (
            b._nernst_planck(b.conc_pore, b.phi_pore, i, k, b.thickness, b.hindrance_diffusive[i],
                             b.hindrance_convective[i], Dm)),
            doc="J_v c_p,i = K_c J_v c_ik - K_d D_i (D c_i + z_i c_ik D phi)_k / dx_e")
        self.eq_electroneutrality_pore = pyo.Constraint(self.nodes, rule=lambda b, k: b._neutrality(
            {i: b.conc_pore[i, k] for i in b.ions}, b.charge_density, b.phi_pore[k]), doc="sum z_i c_ik + X = 0")

    def _add_partitioning(self) -> None:
        N = self.options.nodes
        ends = {"feed": (0, self.conc_wall, self.phi_wall, self.ln_gamma_wall, self.ln_gamma_pore_feed),
                "perm": (N, self.conc_perm, self.phi_perm, self.ln_gamma_perm, self.ln_gamma_pore_perm)}

        def partition(b, side, i):
            k, c_sol, phi_sol, lg_sol, lg_pore = ends[side]
            return (pyo.log(b.conc_pore[i, k]) - pyo.log(c_sol[i]) == b.ln_partition_fixed[i] + lg_sol[i] - lg_pore[i]
                    + b.ln_partition_image[side, i] - b.charge[i] * (b.phi_pore[k] - phi_sol))

        doc = "ln(c_pore/c_sol) = ln Phi_SB + ln Phi_im + ln g_sol - ln g_pore - z (phi_pore - phi_sol)"
        self.eq_partition_feed = pyo.Constraint(self.ions, rule=lambda b, i: partition(b, "feed", i), doc=doc)
        self.eq_partition_perm = pyo.Constraint(self.ions, rule=lambda b, i: partition(b, "perm", i), doc=doc)
        self.eq_electroneutrality_perm = pyo.Constraint(expr=self._neutrality(self.conc_perm, 0.0, self.phi_perm),
                                                        doc="sum z_i c_p,i = 0")

    def _add_scaling(self) -> None:
        """The engine's row scales (and typical variable sizes) as one ``scaling_factor`` suffix."""
        prm, j = self.prm, {i: n for n, i in enumerate(self.ion_names)}
        c_b, D, s, cs = prm.c_feed[0], prm.diff[0], self.scale_ion, 1.0 / self.scale_charge
        L, kd = float(prm.thickness[0]), prm.kd[0]
        rules = [(self.conc_pore, lambda i, k: 1.0 / s[j[i]]), (self.conc_feed, lambda i: 1.0 / c_b[j[i]]),
                 (self.conc_perm, lambda i: 1.0 / c_b[j[i]]), (self.flux_vol, lambda: 1.0 / prm.flux[0]),
                 (self.eq_ion_flux_pore, lambda i, k: L / (kd[j[i]] * D[j[i]] * s[j[i]]))]
        if self.options.polarization == "film":
            delta = float(prm.film_thickness[0])
            rules += [(self.conc_film, lambda i, k: 1.0 / c_b[j[i]]), (self.eq_film_bulk, lambda i: 1.0 / c_b[j[i]]),
                      (self.eq_ion_flux_film, lambda i, k: delta / (D[j[i]] * c_b[j[i]]))]
        elif self.options.polarization == "linear":
            rules += [(self.conc_wall, lambda i: 1.0 / c_b[j[i]]),
                      (self.eq_film_linear, lambda i: 1.0 / (prm.k_ion[0, j[i]] * c_b[j[i]]))]
        if not self.neutral:
            rules += [(con, lambda *a: cs) for con in self.component_objects(pyo.Constraint, descend_into=False)
                      if con.local_name.startswith("eq_electroneutrality")]
        if prm.pressure is not None:
            rules += [(c, lambda: 1.0 / prm.pressure[0]) for c in (self.pressure, self.eq_hagen_poiseuille)]
        self.scaling_factor = sf = pyo.Suffix(direction=pyo.Suffix.EXPORT)
        for comp, rule in rules:
            for idx, data in comp.items():
                sf[data] = float(rule(*_args(idx)))


# ---------------------------------------------------------------------- public functions
def build_twin(ions: Sequence[str], c_feed: Sequence[float], **case: Any) -> pyo.ConcreteModel:
    """A ConcreteModel holding one :class:`DSPMDEBlock` as ``m.twin``.

    ``case``: the keyword inputs of :func:`.solver.solve_batch` for one case, plus ``image_mu_range``
    and ``image_degree`` (see ``DSPMDEBlock.CONFIG``); unknown keys raise ``ValueError``.
    """
    m = pyo.ConcreteModel(name="dspmde_twin")
    m.twin = DSPMDEBlock(ions=list(ions), c_feed=np.asarray(c_feed, dtype=float).ravel(), **case)  # noqa: F821
    return m


def initialize_from_engine(block, result: BatchResult, case_index: int = 0) -> None:
    """Copy the engine's solution of case ``case_index`` into the Vars of ``block`` (fixes and unfixes nothing).

    Raises :class:`InvalidInputError` if the result was computed for other ions,
    options, feed or flux than those the block holds.
    """
    opts, prm = block.options, block.prm
    # the automatic refinement's settings do not change the equations on the twin's grid
    eng_opts = result.meta.get("options")
    same = ("resolution_tol", "max_nodes")
    if eng_opts is not None:
        eng_opts = eng_opts.with_(**{k: getattr(opts, k) for k in same})
    if tuple(result.ions) != tuple(block.ion_names) or eng_opts != opts:
        raise InvalidInputError(f"engine result ({result.ions}, {result.meta.get('options')}) does not match the "
                                f"twin ({block.ion_names}, {opts})")
    a = prm.grid_map if prm.grid_map is not None else np.zeros(1)
    if result.x_layer is not None and not np.allclose(result.x_layer[case_index], grid_map.positions(
            chebyshev.nodes(opts.nodes), a)[0][0], rtol=0.0, atol=1e-13):
        raise InvalidInputError(f"engine case {case_index} was solved on other nodes than the twin's (a mapped case "
                                f"that converged only on the plain grid, see grid_map.py): map strength {a[0]:.4g}")
    if result.nodes_used is not None and int(result.nodes_used[case_index]) != opts.nodes:
        # a refined case: its solution sampled at the twin's nodes is a starting point, not the twin's solution
        log.warning("engine case %d was refined to %d layer intervals; the twin (%d) starts from its samples and "
                    "converges to its own grid's answer (build the twin with nodes=%d to match the engine)",
                    case_index, int(result.nodes_used[case_index]), opts.nodes, int(result.nodes_used[case_index]))
    x = np.asarray(result.solution)[case_index:case_index + 1]  # same options, so the same Layout
    if result.converged[case_index] and np.isnan(x).any():
        absent = [i for i, cf in zip(result.ions, result.c_feed[case_index]) if not cf > 0]
        raise InvalidInputError(f"engine case {case_index} was solved with its present ions only (absent {absent}, "
                                "see solver._retry_present_ions): build the twin with the present ions")
    given, engine = [block.conc_feed[i].value for i in block.ion_names], list(result.c_feed[case_index])
    if prm.pressure is None:
        given, engine = given + [block.flux_vol.value], engine + [result.flux_m_s[case_index]]
    if not np.allclose(engine, given, rtol=1e-12, atol=0.0):
        raise InvalidInputError(f"engine case {case_index} has feed/flux {engine}, the twin {given}")
    if not result.converged[case_index]:
        log.warning("%s: engine case %d did not converge (%s)", block.name, case_index, result.reason[case_index])
    s = {k: np.asarray(v)[0] for k, v in DSPMDESystem(prm, opts.nodes, opts.film_nodes).unpack(x).items()}
    if prm.image is not None and not np.all((s["mu"] >= block.ln_mu["feed"].lb) & (s["mu"] <= block.ln_mu["feed"].ub)):
        raise InvalidInputError(f"{block.name}: engine mu = {np.exp(s['mu']).tolist()} is outside the G(mu) fit "
                                f"{block.config.image_mu_range}; pass image_mu_range=(...) covering it")
    j = {i: n for n, i in enumerate(block.ion_names)}
    values = [(block.conc_pore, lambda i, k: s["c"][j[i], k]), (block.phi_pore, lambda k: s["p"][k]),
              (block.conc_perm, lambda i: np.exp(s["v"][j[i]])), (block.phi_perm, lambda: s["pp"])]
    if opts.polarization == "film":
        values += [(block.conc_film, lambda i, k: s["cf"][j[i], k]), (block.phi_film, lambda k: s["pf"][k])]
    elif opts.polarization == "linear":
        values += [(block.conc_wall, lambda i: s["cm"][j[i]]), (block.film_field, lambda: s["w"])]
    if prm.image is not None:
        values.append((block.ln_mu, lambda side: s["mu"][0 if side == "feed" else 1]))
    if prm.pressure is not None:
        values.append((block.flux_vol, lambda: s["jv"]))
    for var, rule in values:
        for idx, data in var.items():
            data.set_value(float(rule(*_args(idx))))


@dataclass
class TwinResult:
    """Solution of the Pyomo twin; concentrations mol/m3, times s."""

    ions: tuple[str, ...]
    rejection: dict            # ion -> observed rejection 1 - c_p/c_b
    c_perm: dict               # ion -> permeate concentration
    c_wall: dict               # ion -> concentration at the membrane wall (feed side)
    flux_m_s: float
    termination: str
    converged: bool
    iterations: int
    times_s: dict              # "solve", and from solve_twin "engine", "build", "init"
    model: Any = field(default=None, repr=False)


def _values(comp) -> dict:
    return {i: float(pyo.value(comp[i])) for i in comp.index_set()}


def solve_block(block, solver_options: dict | None = None, tee: bool = False) -> TwinResult:
    """Solve the (square) twin with cyipopt (:data:`TWIN_IPOPT_OPTIONS`); checks degrees of freedom == 0 first."""
    dof = degrees_of_freedom(block)
    if dof != 0:
        raise InvalidInputError(f"{block.name} has {dof} degrees of freedom; fix conc_feed and flux_vol (or pressure)")
    iters = [0]

    def count(*args):  # old-style cyipopt callback: (nlp, alg_mod, iter_count, ...)
        iters[0] = int(args[2])
        return True

    solver = ipopt_solver({**TWIN_IPOPT_OPTIONS, **({"print_level": 5} if tee else {}), **(solver_options or {})})
    t0 = time.perf_counter()
    tc = solver.solve(block, tee=tee, intermediate_callback=count).solver.termination_condition
    t_solve = time.perf_counter() - t0
    return TwinResult(ions=tuple(block.ion_names), rejection=_values(block.rejection), c_perm=_values(block.conc_perm),
                      c_wall=_values(block.conc_wall), flux_m_s=float(block.flux_vol.value), termination=str(tc),
                      converged=tc == pyo.TerminationCondition.optimal, iterations=iters[0], times_s={"solve": t_solve},
                      model=block.model())


def solve_twin(ions: Sequence[str], c_feed: Sequence[float], *, engine_result: BatchResult | None = None,
               case_index: int = 0, solver_options: dict | None = None, tee: bool = False, **case: Any) -> TwinResult:
    """Build the twin, initialize it from the engine (running :func:`solve_batch` if no result is given), solve.

    ``case`` as in :func:`build_twin`; ``engine_result`` / ``case_index`` select an engine solution at hand.
    """
    t0 = time.perf_counter()
    if engine_result is None:
        engine_kw = {k: v for k, v in case.items() if k not in ("image_mu_range", "image_degree")}
        engine_result, case_index = solve_batch(ions, np.atleast_2d(c_feed), strict=True, **engine_kw), 0
    t1 = time.perf_counter()
    m = build_twin(ions, c_feed, **case)
    t2 = time.perf_counter()
    initialize_from_engine(m.twin, engine_result, case_index)
    t3 = time.perf_counter()
    out = solve_block(m.twin, solver_options, tee)
    out.times_s.update(engine=t1 - t0, build=t2 - t1, init=t3 - t2)
    return out
