"""The discretized DSPM-DE equations of a batch of cases: residual and analytic Jacobian.

Unknowns are the pore (and film) concentrations ``c`` [mol/m3] at the Chebyshev
nodes, the dimensionless potential ``phi = F psi / (R T)``, and the natural logs of
the permeate concentrations (``v = ln c_p``) and of the image-force screening
parameters.  The extended Nernst-Planck equation (seed 003 eq. 1) with
``J_i = J_v c_p,i`` is made dimensionless with the layer thickness ``L`` and
``K_d D_i``::

    dc_i/dxi + z_i c_i dphi/dxi - Pe_i c_i + (J_v L / (K_d D_i)) c_p,i = 0,   Pe_i = K_c J_v L / (K_d D_i)

and collocated at the Chebyshev nodes ``xi_1..xi_N`` of [0, 1] (seed 003 App. E), or, for cases
with ``grid_map`` > 0 (high Peclet numbers), at the mapped nodes ``x = g(xi)`` of :mod:`.grid_map`
with ``d/dx = diag(1/g'(xi)) D_xi``;
node 0 carries the feed-side partitioning condition (eqs. 3-10), written in
logarithmic form so that it is linear in ``ln c`` and ``phi``.  Electroneutrality
``sum z_i c_i + X = 0`` (eq. 9, with ``z_i`` where the printed equation has
``z_i^2``) holds at every node.  The permeate side has the mirrored partitioning,
permeate electroneutrality (eq. 12) fixes the permeate potential.

Concentration polarization (``polarization``):

* ``"film"`` - the same Nernst-Planck equations without hindrance or fixed charge,
  solved across the film of thickness ``delta`` on its own Chebyshev grid, with the
  bulk feed at ``y = 0`` (gauge ``phi = 0``) and electroneutrality in the film.
  It stays regular for any flux, including ``J_v`` above the mass-transfer coefficient.
* ``"linear"`` - seed 003 eq. 2 (one linearized step with a potential gradient
  ``xi`` and per-ion ``k_i``), as in WaterTAP; singular as ``J_v -> k_i``.
* ``"none"`` - the membrane wall sees the bulk feed.

Optionally the water flux is an unknown (``pressure`` mode) closed by
Hagen-Poiseuille with the van 't Hoff osmotic pressure difference across the
active layer: ``J_v = r_p^2 (dP - R T sum(c_wall - c_p)) / (8 eta dx_e)``.
The image-force screening parameters ``ln mu`` at both interfaces are unknowns
too, so the self-consistent image-force partitioning (eqs. 5-8) is part of the
same Newton system.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from . import chebyshev, grid_map
from .bordered import BorderedLU, BorderedStructure
from .newton import DenseLU
from .equilibrium import interface_equilibrium
from .partitioning import donnan_potential

EXCLUDED_PERMEATE = 1e-30  #: permeate/feed ratio carried for sterically excluded ions (reported as 0)
#: smallest concentration [mol/m3] whose ``d ln c / dc = 1 / c`` enters the Jacobian (a pore-end concentration below
#: it, e.g. a co-ion at 1e-310 at the exit of a strongly charged pore at high flux, would overflow 1 / c to inf)
TINY_C = 1e-300
TRACE_FRACTION = 1e-10     #: feed share below which an ion is a trace (an absent ion carried at 1e-12)
#: floor of the closed-form film start (:meth:`DSPMDESystem.initial_guess`), times the feed.  The closed-form film
#: profile ``c_p + (c_b - c_p) exp(Pe_f y)`` is negative near the wall for an ion whose (clipped) permeate guess
#: exceeds its feed at a large film Peclet number; ``ln c_w`` is then not finite at the start, Newton fails at once
#: and the case goes to the flux continuation (17 % of the 5-ion Pitzer + film benchmark cases, ~3x the cost of the
#: others).  Floored, the start is finite and Newton converges from it (kernel, 0.3 % continue; measured floors 1e-6,
#: 1e-2, 0.1, 0.5: 3.3, 0.7, 0.3, 0.1 % continue, the fewest Newton iterations at 0.1-0.5; the answers equal to
#: 1e-14, the same roots); 0 keeps the unfloored profile
FILM_FLOOR = 0.1
#: passes of the closed-form start (:meth:`DSPMDESystem.initial_guess`, Davies and Pitzer) that put the interface
#: activity coefficients into the partitioning: the ideal start leaves its entry and exit rows off by ln(g_w / g_0),
#: ln(g_p / g_N) (about 1 for divalent ions in the 5-ion Pitzer + film benchmark batch; Newton's first steps are then
#: damped).  Each pass evaluates ln gamma at the last pass's wall, pore entrance, pore exit and permeate and solves
#: the start again with ``ln Phi + ln g_w - ln g_0`` at the entrance (its Donnan potential re-solved) and ``ln Phi +
#: ln g_p - ln g_N`` at the exit, the wall kept.  Measured on that batch (compiled kernel): factorizations /
#: iterations on the 6-interval grid 4.54 / 6.42 -> 2.51 / 4.65 (ideal activity: 2.6 / 4.45); 2 passes 2.47 / 4.43,
#: 3 no better; rejections equal to 2.5e-15.  0: the ideal start
ACTIVITY_PASSES = 1

ActivityFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
ImageFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class BatchParameters:
    """Per-case numbers the residual needs, all SI and already temperature-corrected.

    Shapes: ``(B,)`` per case, ``(B, n)`` per case and ion.
    """

    z: np.ndarray                 # (n,) charges
    c_feed: np.ndarray            # (B, n) bulk feed, mol/m3
    flux: np.ndarray              # (B,) J_v, m/s (initial value in pressure mode)
    thickness: np.ndarray         # (B,) effective thickness dx_e, m
    charge: np.ndarray            # (B,) X, mol/m3
    diff: np.ndarray              # (B, n) bulk diffusivities at T, m2/s
    kd: np.ndarray                # (B, n)
    kc: np.ndarray                # (B, n)
    ln_phi_fixed: np.ndarray      # (B, n) ln(steric * Born)
    ln_steric: np.ndarray         # (B, n) ln steric part (reporting only)
    excluded: Optional[np.ndarray] = None         # (B, n) bool: lambda >= 1, the ion cannot enter the pores
    polarization: str = "none"
    film_thickness: Optional[np.ndarray] = None   # (B,) m, "film"
    k_ion: Optional[np.ndarray] = None            # (B, n) m/s, "linear"
    delta_ref: Optional[np.ndarray] = None        # (B,) m, scale of the linear-film gradient
    activity: Optional[ActivityFn] = None         # c (..., n) -> (ln gamma, d ln gamma / d c)
    image: Optional[ImageFn] = None               # mu (B,) -> (G, dG/dmu) per case
    image_coef: Optional[np.ndarray] = None       # (B, n) 2 alpha_i / pi
    screening_coef: Optional[np.ndarray] = None   # (B,) mu^2 = coef * sum z^2 c
    image_screening: str = "pore"
    pressure: Optional[np.ndarray] = None         # (B,) applied dP, Pa -> J_v unknown
    hp_coef: Optional[np.ndarray] = None          # (B,) 8 eta dx_e / r_p^2, Pa s/m
    RT: Optional[np.ndarray] = None               # (B,) J/mol
    grid_map: Optional[np.ndarray] = None         # (B,) strength a of the node map x = g(xi) (grid_map.py); 0: none

    @property
    def batch(self) -> int:
        return self.c_feed.shape[0]

    @property
    def n_ions(self) -> int:
        return self.c_feed.shape[1]

    def take(self, idx: np.ndarray) -> "BatchParameters":
        """The parameters of a subset of cases (callables are shared)."""
        out = {}
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            if isinstance(v, np.ndarray) and name != "z" and v.ndim >= 1 and v.shape[0] == self.batch:
                out[name] = v[idx]
            else:
                out[name] = v
        sub = BatchParameters(**out)
        if self.activity is not None and hasattr(self.activity, "take"):
            sub.activity = self.activity.take(idx)
        if self.image is not None and hasattr(self.image, "take"):
            sub.image = self.image.take(idx)
        return sub


@dataclass
class Layout:
    """Where each block of unknowns sits in the per-case vector."""

    n: int
    nodes: int          # N intervals in the active layer
    film_nodes: int     # N_f intervals in the film ("film" only)
    polarization: str
    image: bool
    pressure: bool
    blocks: dict = field(default_factory=dict)
    size: int = 0

    def __post_init__(self) -> None:
        n, M = self.n, self.nodes + 1
        pos = 0

        def add(name, length):
            nonlocal pos
            self.blocks[name] = slice(pos, pos + length)
            pos += length

        if self.polarization == "film":
            Mf = self.film_nodes + 1
            add("uf", n * Mf)
            add("pf", Mf)
        elif self.polarization == "linear":
            add("um", n)
            add("w", 1)
        add("u", n * M)
        add("p", M)
        add("v", n)
        add("pp", 1)
        if self.image:
            add("mu", 2)
        if self.pressure:
            add("jv", 1)
        self.size = pos

    def __getitem__(self, name: str) -> slice:
        return self.blocks[name]


class DSPMDESystem:
    """Residual ``F(x)`` and Jacobian ``dF/dx`` of a batch (see module docstring)."""

    def __init__(self, prm: BatchParameters, nodes: int = 16, film_nodes: int = 16,
                 ion_scale: Optional[np.ndarray] = None):
        self.prm = prm
        self.N = nodes
        self.Nf = film_nodes
        self.lay = Layout(prm.n_ions, nodes, film_nodes, prm.polarization,
                          prm.image is not None, prm.pressure is not None)
        self.D = chebyshev.diff_matrix(nodes)
        # node positions x = g(xi) of the active layer (B, M) and 1/g'(xi); ginv is None without a map
        # (plain Chebyshev grid, the same arithmetic as before the map existed)
        a = prm.grid_map if prm.grid_map is not None else np.zeros(prm.batch)
        mapped = bool(np.any(a > 0))
        if mapped:
            self.x_nodes, dxdxi = grid_map.positions(chebyshev.nodes(nodes), a)
        else:   # every case on the plain grid: the values grid_map.positions gives for a = 0 (exactly), directly
            self.x_nodes, dxdxi = np.tile(chebyshev.nodes(nodes), (prm.batch, 1)), np.ones((prm.batch, nodes + 1))
        self.dxdxi = dxdxi
        self.ginv = 1.0 / dxdxi if mapped else None
        self.Df = chebyshev.diff_matrix(film_nodes) if prm.polarization == "film" else None
        self.cscale = np.maximum((prm.c_feed @ np.abs(prm.z)) + np.abs(prm.charge), 1e-300)
        # rows of ion i are divided by s_i, the order of its pore concentration
        self.s = ion_scale if ion_scale is not None else prm.c_feed.copy()
        self.neutral = bool(np.all(prm.z == 0))

    # ------------------------------------------------------------------ helpers
    def unpack(self, x: np.ndarray) -> dict:
        """Split the unknown vectors (B, m) into named arrays."""
        lay, n, M = self.lay, self.prm.n_ions, self.N + 1
        B = x.shape[0]
        out = {
            "c": x[:, lay["u"]].reshape(B, n, M),
            "p": x[:, lay["p"]],
            "v": x[:, lay["v"]],
            "pp": x[:, lay["pp"]][:, 0],
        }
        if self.prm.polarization == "film":
            Mf = self.Nf + 1
            out["cf"] = x[:, lay["uf"]].reshape(B, n, Mf)
            out["pf"] = x[:, lay["pf"]]
        elif self.prm.polarization == "linear":
            out["cm"] = x[:, lay["um"]]
            out["w"] = x[:, lay["w"]][:, 0]
        if self.prm.image is not None:
            out["mu"] = x[:, lay["mu"]]
        out["jv"] = x[:, lay["jv"]][:, 0] if self.prm.pressure is not None else self.prm.flux
        return out

    def wall(self, s: dict) -> tuple[np.ndarray, np.ndarray]:
        """Concentration (mol/m3) and phi of the solution at the membrane wall (feed side)."""
        pol = self.prm.polarization
        if pol == "film":
            return s["cf"][:, :, -1], s["pf"][:, -1]
        if pol == "linear":
            return s["cm"], np.zeros(s["cm"].shape[0])
        return self.prm.c_feed, np.zeros(self.prm.batch)

    def wall_columns(self) -> Optional[np.ndarray]:
        """Columns of the wall concentrations (None if the wall is the fixed bulk feed)."""
        pol, n = self.prm.polarization, self.prm.n_ions
        if pol == "film":
            Mf = self.Nf + 1
            return self.lay["uf"].start + np.arange(n) * Mf + Mf - 1
        if pol == "linear":
            return np.arange(self.lay["um"].start, self.lay["um"].stop)
        return None

    def _activity(self, c, jacobian: bool = True):
        if self.prm.activity is None:
            return np.zeros(c.shape), None
        if not jacobian and hasattr(self.prm.activity, "values"):
            return self.prm.activity.values(np.maximum(c, 1e-300)), None
        return self.prm.activity(np.maximum(c, 1e-300))

    # ------------------------------------------------------------------ one Nernst-Planck layer
    def _layer(self, F, J, c, p, Dm, rows_c, rows_p, kd, kc, L, jv, cp, charge, scale, ginv=None):
        """Collocated ENP + electroneutrality of one layer (nodes 1..N; node 0 rows are set by the caller).

        ``ginv`` (B, M): 1/g'(xi) of a mapped grid (d/dx = diag(1/g') D_xi), or None.

        Row of ion i at node k, divided by ``scale_i``::

            (D c_i)_k + z_i c_ik (D phi)_k - Pe_i c_ik + q_i c_p,i,   q_i = J_v L/(K_d D_i),  Pe_i = K_c q_i
        """
        prm, z = self.prm, self.prm.z
        B, n, M = c.shape
        q = (jv * L)[:, None] / (kd * prm.diff)
        pe = kc * q
        Dc = np.einsum("km,bim->bik", Dm, c)
        Dp = p @ Dm.T
        if ginv is not None:
            Dc = Dc * ginv[:, None, :]
            Dp = Dp * ginv
        R = (Dc + z[None, :, None] * c * Dp[:, None, :] - pe[:, :, None] * c + (q * cp)[:, :, None]) / scale[:, :, None]
        F[:, rows_c[:, 1:].ravel()] = R[:, :, 1:].reshape(B, -1)
        F[:, rows_p[1:]] = (np.einsum("i,bik->bk", z, c[:, :, 1:]) + charge[:, None]) / self.cscale[:, None]
        if self.neutral:
            F[:, rows_p[1:]] = p[:, 1:]
        if J is None:
            return
        rows_v = np.arange(self.lay["v"].start, self.lay["v"].stop)
        inv = (1.0 / scale)[:, :, None, None]
        r = rows_c[:, 1:, None]                                      # (n, N, 1): ENP rows of all ions
        Dm4 = Dm[None, None, 1:, :] if ginv is None else Dm[None, None, 1:, :] * ginv[:, None, 1:, None]
        J[:, r, rows_c[:, None, :]] = Dm4 * inv
        J[:, rows_c[:, 1:], rows_c[:, 1:]] += (z[None, :, None] * Dp[:, None, 1:] - pe[:, :, None]) * inv[..., 0]
        J[:, r, rows_p[None, None, :]] = z[None, :, None, None] * c[:, :, 1:, None] * Dm4 * inv
        J[:, rows_c[:, 1:], rows_v[:, None]] = (q * cp)[:, :, None] * inv[..., 0]
        if prm.pressure is not None:
            J[:, rows_c[:, 1:], self.lay["jv"].start] = ((-pe[:, :, None] * c[:, :, 1:] + (q * cp)[:, :, None])
                                                         * inv[..., 0] / jv[:, None, None])
        if not self.neutral:
            J[:, rows_p[None, 1:], rows_c[:, 1:]] = (z[None, :, None] / self.cscale[:, None, None])
        if self.neutral:
            J[:, rows_p[1:], rows_p[1:]] = 1.0

    # ------------------------------------------------------------------ residual + Jacobian
    def evaluate(self, x: np.ndarray, jacobian: bool = True):
        """Return ``F`` (B, m) and, if asked, ``J`` (B, m, m)."""
        prm, lay = self.prm, self.lay
        B, n, M = x.shape[0], prm.n_ions, self.N + 1
        z = prm.z
        s = self.unpack(x)
        c, p, pp, jv = s["c"], s["p"], s["pp"], s["jv"]
        cp = np.exp(s["v"])
        F = np.zeros((B, lay.size))
        J = np.zeros((B, lay.size, lay.size)) if jacobian else None
        sc = self.s
        rows_u = np.arange(lay["u"].start, lay["u"].stop).reshape(n, M)
        rows_p = np.arange(lay["p"].start, lay["p"].stop)
        rows_v = np.arange(lay["v"].start, lay["v"].stop)
        i_pp = lay["pp"].start
        self._layer(F, J, c, p, self.D, rows_u, rows_p, prm.kd, prm.kc, prm.thickness, jv, cp, prm.charge, sc,
                    self.ginv)
        # electroneutrality at node 0
        F[:, rows_p[0]] = (c[:, :, 0] @ z + prm.charge) / self.cscale
        if jacobian:
            J[:, rows_p[0], rows_u[:, 0]] = z[None, :] / self.cscale[:, None]
        if self.neutral:
            F[:, rows_p[0]] = p[:, 0]
            if jacobian:
                J[:, rows_p[0], rows_u[:, 0]] = 0.0
                J[:, rows_p[0], rows_p[0]] = 1.0

        cw, pw = self.wall(s)
        wcols = self.wall_columns()
        if prm.activity is None:
            lg_w = lg_0 = lg_N = lg_p = np.zeros((B, n))
            dlg_w = dlg_0 = dlg_N = dlg_p = None
        else:  # one vectorized call for the four solutions (wall, pore entrance, pore exit, permeate)
            lg4, dlg4 = self._activity(np.stack([cw, c[:, :, 0], c[:, :, -1], cp]), jacobian)
            lg_w, lg_0, lg_N, lg_p = lg4
            dlg_w, dlg_0, dlg_N, dlg_p = (None,) * 4 if dlg4 is None else dlg4

        ln_im_f = ln_im_p = 0.0
        if prm.image is not None:
            mu = np.exp(s["mu"])
            Gf, dGf = prm.image(mu[:, 0])
            Gp, dGp = prm.image(mu[:, 1])
            ln_im_f = -prm.image_coef * Gf[:, None]
            ln_im_p = -prm.image_coef * Gp[:, None]
            dln_im_f = -prm.image_coef * (dGf * mu[:, 0])[:, None]
            dln_im_p = -prm.image_coef * (dGp * mu[:, 1])[:, None]

        # feed side (log form, linear in ln c and phi):
        #   ln c_i(0+) - ln c_w,i - ln Phi_i - ln g_w,i + ln g_0,i + z_i (phi_0 - phi_w) = 0
        c0, cN = c[:, :, 0], c[:, :, -1]
        if prm.excluded is not None and prm.excluded.any():
            c0 = np.where(prm.excluded, 1.0, c0)   # rows replaced in _exclude
            cN = np.where(prm.excluded, 1.0, cN)
        with np.errstate(divide="ignore", invalid="ignore"):
            l0, lN, lw = np.log(c0), np.log(cN), np.log(cw)
        r0 = rows_u[:, 0]
        rN = rows_u[:, -1]
        F[:, r0] = l0 - lw - prm.ln_phi_fixed - ln_im_f - lg_w + lg_0 + z[None, :] * (p[:, 0] - pw)[:, None]
        # permeate side: ln c_i(L-) - ln c_p,i - ln Phi_i - ln g_p,i + ln g_N,i + z_i (phi_N - phi_p) = 0
        F[:, rows_v] = lN - s["v"] - prm.ln_phi_fixed - ln_im_p - lg_p + lg_N + z[None, :] * (p[:, -1] - pp)[:, None]
        F[:, i_pp] = (cp @ z) / self.cscale
        if self.neutral:
            F[:, i_pp] = pp
        if jacobian:
            J[:, r0, r0] += 1.0 / np.maximum(c0, TINY_C)   # d ln c / dc, finite below 1/TINY_C
            J[:, r0, rows_p[0]] = z[None, :]
            J[:, rows_v, rN] += 1.0 / np.maximum(cN, TINY_C)
            J[:, rows_v, rows_v] -= 1.0
            J[:, rows_v, rows_p[-1]] = z[None, :]
            J[:, rows_v, i_pp] = -z[None, :]
            if self.neutral:
                J[:, i_pp, i_pp] = 1.0
            else:
                J[:, i_pp, rows_v] = z[None, :] * cp / self.cscale[:, None]
            if dlg_0 is not None:
                J[:, r0[:, None], r0[None, :]] += dlg_0
                J[:, rows_v[:, None], rN[None, :]] += dlg_N
                J[:, rows_v[:, None], rows_v[None, :]] -= dlg_p * cp[:, None, :]
            if wcols is not None:
                J[:, r0, wcols] -= 1.0 / cw
                if dlg_w is not None:
                    J[:, r0[:, None], wcols[None, :]] -= dlg_w
                if prm.polarization == "film":
                    J[:, r0, lay["pf"].stop - 1] = -z[None, :]
            if prm.image is not None:
                J[:, r0, lay["mu"].start] = -dln_im_f
                J[:, rows_v, lay["mu"].start + 1] = -dln_im_p

        # image-force screening  2 ln mu = ln(coef * sum z^2 c)
        if prm.image is not None:
            zz = z**2
            im0 = lay["mu"].start
            if prm.image_screening == "pore":
                cf_, cp_ = c[:, :, 0], c[:, :, -1]
            else:  # "bulk": the solution on the fluid side of each interface (seed 003 eq. 8 as printed)
                cf_, cp_ = cw, cp
            sf, sp = np.maximum(cf_ @ zz, 1e-300), np.maximum(cp_ @ zz, 1e-300)
            F[:, im0] = 2.0 * s["mu"][:, 0] - np.log(prm.screening_coef * sf)
            F[:, im0 + 1] = 2.0 * s["mu"][:, 1] - np.log(prm.screening_coef * sp)
            if jacobian:
                J[:, im0, im0] = 2.0
                J[:, im0 + 1, im0 + 1] = 2.0
                if prm.image_screening == "pore":
                    J[:, im0, r0] = -zz[None, :] / sf[:, None]
                    J[:, im0 + 1, rN] = -zz[None, :] / sp[:, None]
                else:
                    if wcols is not None:
                        J[:, im0, wcols] = -zz[None, :] / sf[:, None]
                    J[:, im0 + 1, rows_v] = -zz[None, :] * cp_ / sp[:, None]

        if prm.polarization == "film":
            self._film(F, J, s, jv, cp)
        elif prm.polarization == "linear":
            self._linear_film(F, J, s, jv, cp)

        # Hagen-Poiseuille with van 't Hoff osmotic pressure
        if prm.pressure is not None:
            ij = lay["jv"].start
            dP = prm.pressure
            F[:, ij] = (jv * prm.hp_coef - dP + prm.RT * (cw.sum(1) - cp.sum(1))) / dP
            if jacobian:
                J[:, ij, ij] = prm.hp_coef / dP
                if wcols is not None:
                    J[:, ij, wcols] = (prm.RT / dP)[:, None]
                J[:, ij, rows_v] = -(prm.RT / dP)[:, None] * cp
        if prm.excluded is not None and prm.excluded.any():
            self._exclude(F, J, c, s["v"], rows_u, rows_v)
        return (F, J) if jacobian else F

    def _exclude(self, F, J, c, v, rows_u, rows_v):
        """Sterically excluded ions (lambda >= 1): no pore concentration, no flux, no permeate.

        Their pore rows become ``c_ik = 0`` and their permeate row fixes ``c_p`` at a
        negligible ``EXCLUDED_PERMEATE`` times the feed (so that ``ln c_p`` stays finite);
        they remain in the polarization film, where they accumulate with zero flux.
        """
        prm = self.prm
        for i in np.flatnonzero(prm.excluded.any(axis=0)):
            b = np.flatnonzero(prm.excluded[:, i])
            rows = rows_u[i]
            F[np.ix_(b, rows)] = c[b, i, :] / self.s[b, i, None]
            F[b, rows_v[i]] = v[b, i] - np.log(EXCLUDED_PERMEATE * prm.c_feed[b, i])
            if J is not None:
                allrows = np.append(rows, rows_v[i])
                J[np.ix_(b, allrows, np.arange(J.shape[2]))] = 0.0
                J[b[:, None], rows[None, :], rows[None, :]] = 1.0 / self.s[b, i, None]
                J[b, rows_v[i], rows_v[i]] = 1.0

    # ------------------------------------------------------------------ polarization layers
    def _film(self, F, J, s, jv, cp):
        """Unhindered ENP across the film: bulk feed at y = 0 (phi = 0), wall at y = delta."""
        prm, lay = self.prm, self.lay
        n, Mf = prm.n_ions, self.Nf + 1
        cf, pf = s["cf"], s["pf"]
        rows_c = np.arange(lay["uf"].start, lay["uf"].stop).reshape(n, Mf)
        rows_p = np.arange(lay["pf"].start, lay["pf"].stop)
        ones = np.ones_like(prm.kd)
        zero = np.zeros(prm.batch)
        scale = prm.c_feed
        self._layer(F, J, cf, pf, self.Df, rows_c, rows_p, ones, ones, prm.film_thickness, jv, cp, zero, scale)
        F[:, rows_c[:, 0]] = (cf[:, :, 0] - prm.c_feed) / scale
        F[:, rows_p[0]] = pf[:, 0]
        if J is not None:
            J[:, rows_c[:, 0], rows_c[:, 0]] = 1.0 / scale
            J[:, rows_p[0], rows_p[0]] = 1.0

    def _linear_film(self, F, J, s, jv, cp):
        """Seed 003 eq. 2: J_i = -k_i (c_m - c_b) + J_v c_m - z_i c_m D_i xi, with xi = w / delta_ref."""
        prm, lay = self.prm, self.lay
        z = prm.z
        cm, w = s["cm"], s["w"]
        cb = prm.c_feed
        k = prm.k_ion
        xi = (w / prm.delta_ref)[:, None]
        scale = k * cb
        rows = np.arange(lay["um"].start, lay["um"].stop)
        iw = lay["w"].start
        rows_v = np.arange(lay["v"].start, lay["v"].stop)
        F[:, rows] = (k * (cm - cb) - jv[:, None] * cm + z * cm * prm.diff * xi + jv[:, None] * cp) / scale
        F[:, iw] = (cm @ z) / self.cscale
        if J is None:
            return
        J[:, rows, rows] = (k - jv[:, None] + z * prm.diff * xi) / scale
        J[:, rows, iw] = z * cm * prm.diff / prm.delta_ref[:, None] / scale
        J[:, rows, rows_v] = jv[:, None] * cp / scale
        J[:, iw, rows] = z / self.cscale[:, None]
        if prm.pressure is not None:
            J[:, rows, lay["jv"].start] = (cp - cm) / scale

    # ------------------------------------------------------------------ initial guess
    def initial_guess(self, donnan_phi0: np.ndarray, shape: str = "shp",
                      activity_passes: int | None = None) -> np.ndarray:
        """A starting point built from per-ion closed-form solutions.

        ``shape="equilibrium"`` is the exact zero-flux limit (permeate = feed, flat
        Donnan-partitioned profiles); ``"shp"`` uses, for each ion at the actual
        flux, the steric-hindered-pore profile with the feed-side Donnan factor
        (seed 003 eq. D.8 generalised), which is close at high Peclet numbers.
        With the film, four passes update the wall from the film's closed form.
        ``activity_passes`` (default :data:`ACTIVITY_PASSES`; ``"shp"`` with an activity model only) further
        passes put the interface activity coefficients of the last pass into the partitioning (seed 003 eqs.
        9-10 with ``gamma``): ``ln Phi + ln g_w - ln g_0`` at the entrance, its Donnan potential re-solved, and
        ``ln Phi + ln g_p - ln g_N`` at the exit, the wall kept.
        """
        prm, lay = self.prm, self.lay
        B, n, M = prm.batch, prm.n_ions, self.N + 1
        z = prm.z
        x = np.zeros((B, lay.size))
        xg = self.x_nodes   # (B, M) node positions in [0, 1]
        c_wall = prm.c_feed
        passes = 1 if (shape == "equilibrium" or prm.polarization == "none") else 4
        # without image forces the partition coefficients (but the Donnan factor) do not depend on the
        # solution; with them, the wall's equilibrium is solved self-consistently (equilibrium.py)
        ln_fixed, ln_mu = prm.ln_phi_fixed, None
        act = ACTIVITY_PASSES if activity_passes is None else int(activity_passes)
        act = act if (shape == "shp" and prm.activity is not None) else 0
        pe = np.minimum((prm.kc * prm.flux[:, None] * prm.thickness[:, None]) / (prm.kd * prm.diff), 600.0)
        ex = np.exp(-pe)

        def permeate(c0, ln_out, delta):
            # per-ion SHP solution with the exit Donnan jump delta = phi_N - phi_p
            kphi_out = np.exp(ln_out - z[None, :] * delta[:, None])
            return prm.kc * c0 / np.maximum(1.0 - (1.0 - prm.kc * kphi_out) * ex, 1e-300), kphi_out

        def exit_jump(c0, ln_out, phi_d):
            # permeate electroneutrality fixes the exit jump: bisection on sum z c_p(delta) (decreasing)
            # bounded to a few thermal voltages around the feed-side Donnan potential: where the
            # permeate cannot be balanced by the jump (high-Peclet counter-ions) the bound keeps
            # the guess sane and Newton does the rest
            if np.all(z == 0):
                return np.zeros(B)
            lo, hi = phi_d - 6.0, phi_d + 6.0
            for _ in range(70):
                mid = 0.5 * (lo + hi)
                f = permeate(c0, ln_out, mid)[0] @ z
                lo = np.where(f < 0, mid, lo)
                hi = np.where(f < 0, hi, mid)
            return 0.5 * (lo + hi)

        def permeate_floor(ln_phi):
            # the start's permeate floor, 1e-10 of the feed times the image-force partition coefficient: with
            # image forces a divalent co-ion's permeate can be e-600 of its feed, and from 1e-10 (ln c_p capped at
            # 3 per Newton step) Newton crawled there and ran out of iterations
            lo = 1e-10 * prm.c_feed
            if prm.image is not None:
                lo = np.maximum(lo * np.exp(np.minimum(ln_phi - prm.ln_phi_fixed, 0.0)), 1e-300)
            return lo

        def pore_pass(c_wall, ln_in, ln_out, phi_d, ln_phi):
            # one pass at the wall c_wall: entrance partitioning with ln_in at the Donnan potential phi_d, the
            # permeate with ln_out and the exit jump from permeate electroneutrality, the layer profile (ln_phi:
            # the partitioning without activity, for the permeate floor)
            c0 = c_wall * np.exp(ln_in - z[None, :] * phi_d[:, None])
            delta = exit_jump(c0, ln_out, phi_d)
            cp, kphi = permeate(c0, ln_out, delta)
            cp = np.clip(cp, permeate_floor(ln_phi), 10.0 * prm.c_feed)
            # c(x) = cp/Kc + (Phi' cp - cp/Kc) exp(Pe (x - 1)), written from the permeate side (no overflow) as
            # the weighted sum (cp/Kc) (1 - e) + Phi' cp e of its two ends: the difference form lost the exit value
            # Phi' cp to cancellation where it is below 1e-16 cp/Kc (a co-ion strongly excluded at the exit), and
            # its node then started at 1e-300
            cinf = cp / prm.kc
            t = pe[:, :, None] * (xg[:, None, :] - 1.0)
            prof_c = cinf[:, :, None] * -np.expm1(t) + (kphi * cp)[:, :, None] * np.exp(t)
            return c0, cp, kphi, delta, np.log(np.maximum(prof_c, 1e-300))

        def next_wall(cp):
            # the wall from the polarization's closed form (film or linear) at the permeate cp
            c_wall = prm.c_feed
            if prm.polarization == "film":
                pe_f = np.minimum(prm.flux[:, None] * prm.film_thickness[:, None] / prm.diff, 600.0)
                c_wall = cp + (prm.c_feed - cp) * np.exp(pe_f)
            elif prm.polarization == "linear":
                ratio = np.minimum(prm.flux[:, None] / prm.k_ion, 50.0)
                c_wall = cp + (prm.c_feed - cp) * np.exp(ratio)
            return np.maximum(c_wall, 1e-6 * prm.c_feed)

        for k in range(passes):
            if prm.image is not None:
                donnan_phi0, ln_fixed, ln_mu = interface_equilibrium(prm, c_wall)
            elif k > 0:
                donnan_phi0 = donnan_potential(z, c_wall, prm.ln_phi_fixed, prm.charge)
            if shape == "equilibrium":
                cp = prm.c_feed.copy()
                c0 = c_wall * np.exp(ln_fixed - z[None, :] * donnan_phi0[:, None])
                prof = np.repeat(np.log(c0)[:, :, None], M, axis=2)
                delta = donnan_phi0
                break
            c0, cp, kphi, delta, prof = pore_pass(c_wall, ln_fixed, ln_fixed, donnan_phi0, ln_fixed)
            c_used, c_wall = c_wall, next_wall(cp)
        for _ in range(act):                  # the activity passes: the last pass's wall, its interface ln gamma
            # a case whose pass is not finite (ln gamma extrapolated far outside its range) keeps the last pass
            with np.errstate(over="ignore", invalid="ignore"):
                lg = self._activity(np.stack([c_used, c0, kphi * cp, cp]), jacobian=False)[0]
                ln_in, ln_out = ln_fixed + lg[0] - lg[1], ln_fixed + lg[3] - lg[2]
                phi_a = donnan_potential(z, c_used, ln_in, prm.charge)
                new = pore_pass(c_used, ln_in, ln_out, phi_a, ln_fixed)
            good = np.isfinite(phi_a) & np.isfinite(new[3]) & np.isfinite(new[1]).all(axis=1)
            good &= ~np.isnan(new[4]).any(axis=(1, 2)) & ~np.isposinf(new[4]).any(axis=(1, 2))
            c0, cp, kphi, delta, prof = (np.where(good.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)
                                         for a, b in zip(new, (c0, cp, kphi, delta, prof)))
            donnan_phi0 = np.where(good, phi_a, donnan_phi0)
        if act and prm.polarization == "linear":  # the linear film's wall unknowns start at the last permeate's wall
            c_wall = next_wall(cp)
        if prm.excluded is not None and prm.excluded.any():
            prof = np.where(prm.excluded[:, :, None], -np.inf, prof)
            cp = np.where(prm.excluded, EXCLUDED_PERMEATE * prm.c_feed, cp)
        x[:, lay["u"]] = np.exp(prof).reshape(B, -1)
        x[:, lay["p"]] = donnan_phi0[:, None]
        x[:, lay["v"]] = np.log(cp)
        x[:, lay["pp"]] = (np.zeros(B) if shape == "equilibrium" else donnan_phi0 - delta)[:, None]
        if prm.polarization == "film":
            Mf = self.Nf + 1
            y = chebyshev.nodes(self.Nf)
            pe_f = np.minimum(prm.flux[:, None] * prm.film_thickness[:, None] / prm.diff, 600.0)
            cf = cp[:, :, None] + (prm.c_feed - cp)[:, :, None] * np.exp(pe_f[:, :, None] * y[None, None, :])
            if FILM_FLOOR > 0:
                cf = np.maximum(cf, FILM_FLOOR * prm.c_feed[:, :, None])
            x[:, lay["uf"]] = cf.reshape(B, -1)
        elif prm.polarization == "linear":
            x[:, lay["um"]] = c_wall
        if prm.image is not None:
            x[:, lay["mu"].start] = ln_mu
            x[:, lay["mu"].start + 1] = ln_mu
        if prm.pressure is not None:
            x[:, lay["jv"]] = prm.flux[:, None]
        return x

    def prolong(self, x_coarse: np.ndarray, coarse: "DSPMDESystem") -> np.ndarray:
        """Interpolate solution vectors of ``coarse`` (same cases, fewer nodes) onto this system's grids.

        Profiles are carried by their Chebyshev interpolants (in the mapped coordinate xi, the same
        map on both grids); the node-free unknowns
        (permeate, potentials of the permeate, image and linear-film unknowns, J_v) are copied.
        """
        B = x_coarse.shape[0]
        n = self.prm.n_ions
        x = np.zeros((B, self.lay.size))
        for name, lay_from in coarse.lay.blocks.items():
            src = x_coarse[:, lay_from]
            if name in ("u", "p", "uf", "pf"):
                film = name in ("uf", "pf")
                P = chebyshev.interp_matrix(coarse.Nf if film else coarse.N, self.Nf if film else self.N)
                rows = n if name in ("u", "uf") else 1
                src = (src.reshape(B, rows, P.shape[1]) @ P.T).reshape(B, rows * P.shape[0])
            x[:, self.lay[name]] = src
        return x

    def restrict(self, x_fine: np.ndarray, fine: "DSPMDESystem") -> np.ndarray:
        """Sample solution vectors of ``fine`` (same cases, ``k`` times the intervals, k a whole number)
        at this system's nodes: the Gauss-Lobatto nodes of N intervals are every k-th node of k N
        intervals, so this is exact pointwise (no interpolation); node-free unknowns are copied."""
        B = x_fine.shape[0]
        n = self.prm.n_ions
        x = np.zeros((B, self.lay.size))
        for name, lay_to in self.lay.blocks.items():
            src = x_fine[:, fine.lay[name]]
            if name in ("u", "p", "uf", "pf"):
                film = name in ("uf", "pf")
                nf, nc = (fine.Nf, self.Nf) if film else (fine.N, self.N)
                if nf % nc:
                    raise ValueError(f"cannot restrict {nf} to {nc} intervals")
                rows = n if name in ("u", "uf") else 1
                src = src.reshape(B, rows, nf + 1)[:, :, :: nf // nc].reshape(B, -1)
            x[:, lay_to] = src
        return x

    def resolution(self, x: np.ndarray) -> np.ndarray:
        """A posteriori resolution estimate (B,) of solutions ``x``: the largest Chebyshev tail
        (:func:`chebyshev.tail`, the last two coefficients) of every profile of the active layer and the
        film (in the grid coordinate, mapped or not), concentrations relative to each ion's largest value,
        potentials absolute (relative to max(1, largest coefficient)).  Trace ions (feed below
        ``TRACE_FRACTION`` of the total) and sterically excluded ones are left out: their answers are not
        reported.  Measured over benchmarks/robustness.py samples, a tail below 1e-9 bounds the change of
        every rejection under node doubling to < 1e-10 (transport/solver.py, ``_refine``)."""
        s = self.unpack(x)
        prm = self.prm
        skip = prm.c_feed < TRACE_FRACTION * prm.c_feed.sum(axis=1, keepdims=True)
        if prm.excluded is not None:
            skip = skip | prm.excluded
        est = [np.where(skip, 0.0, chebyshev.tail(s["c"])).max(axis=1),
               chebyshev.tail(s["p"], floor=1.0)]
        if prm.polarization == "film":
            est.append(np.where(skip, 0.0, chebyshev.tail(s["cf"])).max(axis=1))
            est.append(chebyshev.tail(s["pf"], floor=1.0))
        out = np.max(np.stack(est), axis=0)
        return np.where(np.isfinite(out), out, np.inf)

    def bordered_structure(self) -> BorderedStructure:
        """The ion blocks and the border of the Jacobian (:mod:`.bordered`): ion ``i`` owns its film and
        pore concentrations, ``ln c_p,i`` and linear-film wall value (and their rows); potentials,
        screening, ``J_v`` and the linear-film gradient form the border.  With an activity model the
        feed- and permeate-side partitioning rows of each ion see every ion (``coupled``)."""
        lay, n = self.lay, self.prm.n_ions
        parts = []
        if self.prm.polarization == "film":
            parts.append(np.arange(lay["uf"].start, lay["uf"].stop).reshape(n, -1))
        parts.append(np.arange(lay["u"].start, lay["u"].stop).reshape(n, -1))
        parts.append(np.arange(lay["v"].start, lay["v"].stop)[:, None])
        if self.prm.polarization == "linear":
            parts.append(np.arange(lay["um"].start, lay["um"].stop)[:, None])
        interior = np.concatenate(parts, axis=1)
        border = np.setdiff1d(np.arange(lay.size), interior.ravel())
        if self.prm.activity is None:
            coupled = np.zeros((n, 0), int)
        else:
            r0 = lay["u"].start + np.arange(n) * (self.N + 1)
            rv = np.arange(lay["v"].start, lay["v"].stop)
            coupled = np.stack([np.argmax(interior == r0[:, None], axis=1),
                                np.argmax(interior == rv[:, None], axis=1)], axis=1)
        return BorderedStructure(interior, border, coupled)

    def factorizer(self, bordered_min_unknowns: Optional[int]) -> Callable[[np.ndarray], object]:
        """The Jacobian factorization for :func:`.newton.newton`: :class:`.bordered.BorderedLU` when the
        system has at least ``bordered_min_unknowns`` unknowns per case, else :class:`.newton.DenseLU`."""
        if bordered_min_unknowns is None or self.lay.size < bordered_min_unknowns:
            return DenseLU
        st = self.bordered_structure()
        return lambda J: BorderedLU(J, st)

    def norm_weights(self) -> np.ndarray:
        """Typical magnitude of every unknown (B, m), for the scaled norms of the Newton method."""
        prm, lay = self.prm, self.lay
        B, n = prm.batch, prm.n_ions
        w = np.ones((B, lay.size))
        w[:, lay["u"]] = np.repeat(self.s, self.N + 1, axis=1)
        if prm.polarization == "film":
            w[:, lay["uf"]] = np.repeat(prm.c_feed, self.Nf + 1, axis=1)
        elif prm.polarization == "linear":
            w[:, lay["um"]] = prm.c_feed
        if prm.pressure is not None:
            w[:, lay["jv"]] = prm.flux[:, None]
        return w

    def step_caps(self) -> np.ndarray:
        """Largest allowed Newton change of each unknown (the step is scaled to respect them)."""
        cap = np.full(self.lay.size, np.inf)   # concentrations and J_v: no cap
        for name in ("p", "pf", "v", "pp", "mu"):
            if name in self.lay.blocks:
                cap[self.lay[name]] = 3.0          # potentials, ln c_p, ln mu
        return cap
