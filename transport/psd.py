"""Log-normal pore-size distribution (PSD) on top of the DSPM-DE engine (seed 003, eqs. 21-22).

Distribution
------------
The pore *number* density is log-normal (seed 003 eq. 21)::

    p(r) = exp(-(ln r - mu_x)^2 / (2 sigma_x^2)) / (r sigma_x sqrt(2 pi))

with ``mu_x = ln(mu_r^2 / sqrt(mu_r^2 + sigma_r^2))`` and
``sigma_x^2 = ln(1 + sigma_r^2 / mu_r^2)`` (eq. 22) from the mean ``mu_r`` and standard
deviation ``sigma_r`` of the radius.  Its moments are ``<r^k> = exp(k mu_x + k^2 sigma_x^2 / 2)``.

Weighting convention
--------------------
Pores are parallel straight cylinders of the same effective length ``dx_e`` under a
common applied pressure.  By Hagen-Poiseuille (seed 003 eq. D.9) the water flux per
unit open area of a pore of radius ``r`` is ``j(r) = r^2 dP / (8 mu dx_e) ∝ r^2`` and its
volumetric flow ``pi r^2 j(r) ∝ r^4``.  The user's ``flux_m_s`` is the membrane-average
flux ``Jbar`` per unit *pore* area, i.e. the open-area-weighted mean of ``j``::

    Jbar = ∫ p(r) r^2 j(r) dr / ∫ p(r) r^2 dr     =>     j(r) = Jbar r^2 <r^2> / <r^4>

(this fixes the unknown ``dP``; for a single radius ``j = Jbar``, so ``sigma_r -> 0``
recovers the single-pore model).  Each pore is solved with the DSPM-DE engine at its
own ``j(r)``, and the permeate streams mix in proportion to their flows::

    c_p,mix = ∫ p(r) r^2 j(r) c_p(r; j(r)) dr / ∫ p(r) r^2 j(r) dr = ∫ p(r) r^4 c_p(r) dr / <r^4>

The observed rejection is ``1 - c_p,mix / c_feed``.  Because every pore's permeate is
electroneutral, so is the mixture.

Quadrature
----------
``p(r) r^4 / <r^4>`` is again log-normal in ``r``, with ``ln r ~ N(mu_x + 4 sigma_x^2, sigma_x^2)``
(the flow-weighted distribution).  The integral is evaluated by Gauss-Hermite
quadrature (probabilists', ``numpy.polynomial.hermite_e.hermegauss``) in ``ln r`` against
that normal density: nodes ``r_k = exp(mu_x + 4 sigma_x^2 + sigma_x t_k)`` with weights
``w_k / sqrt(2 pi)`` (summing to 1).  All ``n_nodes x F`` (radius, flux) cases go to one
batched :func:`~nanosep.transport.solve_batch` call.  Ions larger than a node's pore
are excluded by the engine (zero permeate at ``lambda >= 1``).  A node where every
cation or every anion in the feed is excluded (and no neutral solute is present) cannot
pass any salt electroneutrally: its permeate is pure water (``c_p = 0``), set here
without calling the engine.  Nodes the engine fails on are reported in ``node_converged``
and make ``converged`` False for that flux.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from numpy.typing import ArrayLike, NDArray

from nanosep.errors import InvalidInputError
from nanosep.ions import IonDatabase

from .options import TransportOptions
from .results import BatchResult
from .solver import solve_batch

__all__ = ["PSDResult", "lognormal_parameters", "lognormal_pdf", "psd_nodes", "solve_with_psd"]


def _mean_std(mean_radius_m: float, std_radius_m: float) -> tuple[float, float]:
    mu, sd = float(mean_radius_m), float(std_radius_m)
    if not (np.isfinite(mu) and mu > 0):
        raise InvalidInputError(f"mean_radius_m must be positive and finite, got {mean_radius_m!r}")
    if not (np.isfinite(sd) and sd >= 0):
        raise InvalidInputError(f"std_radius_m must be >= 0 and finite, got {std_radius_m!r}")
    return mu, sd


def lognormal_parameters(mean_radius_m: float, std_radius_m: float) -> tuple[float, float]:
    """``(mu_x, sigma_x)`` of ln r from the radius mean and standard deviation (seed 003 eq. 22)."""
    mu, sd = _mean_std(mean_radius_m, std_radius_m)
    var_x = np.log1p((sd / mu) ** 2)
    return float(np.log(mu) - 0.5 * var_x), float(np.sqrt(var_x))


def lognormal_pdf(r: ArrayLike, mean_radius_m: float, std_radius_m: float) -> NDArray[np.float64]:
    """Pore number density p(r) [1/m] (seed 003 eq. 21); needs ``std_radius_m > 0``."""
    mu_x, s = lognormal_parameters(mean_radius_m, std_radius_m)
    if s == 0:
        raise InvalidInputError("lognormal_pdf needs std_radius_m > 0 (the density is a delta otherwise)")
    r = np.asarray(r, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.exp(-((np.log(r) - mu_x) ** 2) / (2 * s * s)) / (r * s * np.sqrt(2 * np.pi))
    return np.where(r > 0, out, 0.0)


def psd_nodes(mean_radius_m: float, std_radius_m: float,
              n_nodes: int = 16) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Quadrature of the flow-weighted PSD (module docstring).

    Returns ``(radii_m, weights, flux_factor)``, each (n_nodes,): node radii, flow
    weights (sum 1) and ``j(r_k) / Jbar = r_k^2 <r^2> / <r^4>``.
    """
    if not (isinstance(n_nodes, (int, np.integer)) and 1 <= n_nodes <= 200):
        raise InvalidInputError(f"n_nodes must be an integer in [1, 200], got {n_nodes!r}")
    mu_x, s = lognormal_parameters(mean_radius_m, std_radius_m)
    t, w = hermegauss(int(n_nodes))
    ln_r = mu_x + 4.0 * s * s + s * t
    radii = np.exp(ln_r)
    weights = w / w.sum()
    # <r^2>/<r^4> = exp(2 mu + 2 s^2) / exp(4 mu + 8 s^2)
    flux_factor = np.exp(2.0 * ln_r - 2.0 * mu_x - 6.0 * s * s)
    return radii, weights, flux_factor


@dataclass
class PSDResult:
    """Mixed permeate of a membrane with a log-normal PSD, one row per average flux.

    ``c_perm``/``rejection`` are (F, n); ``node_c_perm`` is (F, N, n) per pore radius
    ``radii_m`` (N,) run at ``node_flux_m_s`` (F, N) and mixed with ``weights`` (N,).
    ``nodes`` is the engine's :class:`BatchResult` if requested; it holds only the
    nodes that were solved (``solved_nodes``, indices into ``radii_m``), case ``f * M + m``.
    """

    ions: tuple[str, ...]
    charges: NDArray[np.float64]
    flux_m_s: NDArray[np.float64]
    c_feed: NDArray[np.float64]
    c_perm: NDArray[np.float64]
    converged: NDArray[np.bool_]
    node_converged: NDArray[np.bool_]
    radii_m: NDArray[np.float64]
    weights: NDArray[np.float64]
    node_flux_m_s: NDArray[np.float64]
    node_c_perm: NDArray[np.float64]
    solved_nodes: NDArray[np.int64] | None = None
    nodes: BatchResult | None = None

    @property
    def rejection(self) -> NDArray[np.float64]:
        """Observed rejection of the mixed permeate, 1 - c_perm / c_feed, (F, n)."""
        return 1.0 - self.c_perm / self.c_feed


def solve_with_psd(ions: Sequence[str], c_feed: ArrayLike, flux_m_s: ArrayLike, mean_radius_m: float,
                   std_radius_m: float, thickness_m: float, pore_dielectric: float, charge_density_mol_m3: float,
                   temperature_K: float = 298.15, options: TransportOptions | None = None,
                   n_nodes: int = 16, *, return_nodes: bool = False, ion_db: IonDatabase | None = None,
                   strict: bool = False) -> PSDResult:
    """DSPM-DE with a log-normal pore-size distribution (weighting: module docstring).

    Parameters (SI)
    ----------
    ions, c_feed: names and feed concentrations, (n,) or (F, n) mol/m3.
    flux_m_s: (F,) or scalar membrane-average water flux Jbar per unit pore area [m/s].
    mean_radius_m, std_radius_m: mean and standard deviation of the pore radius (eq. 22).
    thickness_m, pore_dielectric, charge_density_mol_m3, temperature_K: scalars,
        shared by all pores.
    options: engine options (default ``TransportOptions()``).
    n_nodes: Gauss-Hermite nodes (one engine case per node and flux, all in one call).
    return_nodes: keep the engine's per-node :class:`BatchResult`.
    strict: passed to :func:`solve_batch` (raise if any node fails to converge).
    """
    options = TransportOptions() if options is None else options
    J = np.atleast_1d(np.asarray(flux_m_s, dtype=float))
    if J.ndim != 1:
        raise InvalidInputError(f"flux_m_s must be a scalar or 1-D, got shape {J.shape}")
    F = J.size
    c = np.atleast_2d(np.asarray(c_feed, dtype=float))
    if c.shape[0] == 1 and F > 1:
        c = np.repeat(c, F, axis=0)
    if c.shape[0] != F:
        raise InvalidInputError(f"c_feed has {c.shape[0]} rows for {F} fluxes")
    for name, v in (("thickness_m", thickness_m), ("pore_dielectric", pore_dielectric),
                    ("charge_density_mol_m3", charge_density_mol_m3), ("temperature_K", temperature_K)):
        if np.ndim(v) != 0:
            raise InvalidInputError(f"{name} must be a scalar (shared by all pores), got shape {np.shape(v)}")
    radii, weights, factor = psd_nodes(mean_radius_m, std_radius_m, n_nodes)
    N = radii.size
    node_flux = J[:, None] * factor[None, :]                       # (F, N)
    db = ion_db or IonDatabase.default()
    z = np.array([db.get(i).charge for i in ions], dtype=float)
    rs = np.array([db.get(i).stokes_radius_m for i in ions])
    present = (c > 0).any(axis=0)
    excl = rs[None, :] >= radii[:, None]                           # (N, n)
    blocked = np.zeros(N, dtype=bool)
    if not (present & (z == 0)).any():
        for sign in (1.0, -1.0):
            grp = present & (np.sign(z) == sign)
            if grp.any():
                blocked |= excl[:, grp].all(axis=1)
    solved = np.flatnonzero(~blocked)
    M = solved.size
    n = len(ions)
    cp_nodes = np.zeros((F, N, n))
    node_conv = np.ones((F, N), dtype=bool)
    res = None
    if M:
        res = solve_batch(ions, np.repeat(c, M, axis=0), flux_m_s=node_flux[:, solved].ravel(),
                          pore_radius_m=np.tile(radii[solved], F), thickness_m=thickness_m,
                          pore_dielectric=pore_dielectric, charge_density_mol_m3=charge_density_mol_m3,
                          temperature_K=temperature_K, options=options, ion_db=ion_db, strict=strict)
        cp_nodes[:, solved, :] = res.c_perm.reshape(F, M, -1)
        node_conv[:, solved] = res.converged.reshape(F, M)
    names = res.ions if res is not None else tuple(db.get(i).name for i in ions)
    c_mix = np.einsum("k,fki->fi", weights, cp_nodes)
    return PSDResult(ions=tuple(names), charges=z, flux_m_s=J, c_feed=c, c_perm=c_mix,
                     converged=node_conv.all(axis=1), node_converged=node_conv, radii_m=radii,
                     weights=weights, node_flux_m_s=node_flux, node_c_perm=cp_nodes, solved_nodes=solved,
                     nodes=res if return_nodes else None)
