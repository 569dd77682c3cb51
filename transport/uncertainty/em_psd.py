"""Expectation-maximization for the log-normal pore-size distribution (seed 003, sec. 2.4, eqs. 14-27, App. B).

Model
-----
The pore radius ``r`` is a latent variable with the log-normal density of seed 003
eq. 21, parametrized by ``theta = (mu_r, sigma_r^2)`` through eq. 22
(``u = ln r ~ N(mu_x, sigma_x^2)``).  Given ``r`` (and the other membrane parameters
fixed), the measured rejections of an experiment group ``g`` are independent Gaussians
around the DSPM-DE model (the likelihood behind eq. 13 and eq. 23)::

    ln p(R_g | r) = sum_{o in g} [ -(R_o^mod(r) - R_o^exp)^2 / (2 s_o^2) - ln(s_o sqrt(2 pi)) ]

and the marginal likelihood (eq. 18) is ``p(R | theta) = prod_g  int p(R_g | r) p(r | theta) dr``.

Seed 003 uses one group (one latent radius for all data).  Then the marginal likelihood
is maximized by a point mass at the best single radius (``sigma_r -> 0``): EM shrinks
``sigma_x^2`` like ``1/t`` and never stops at a finite width (its eq. 23 rescales the
exponent by ``1/(N_s N_w)``, which only slows that down).  ``sigma_r`` is identifiable
when the latent radius differs between groups - separate coupons, or experiments that
probe different effective pores - so groups are part of the data here; with ``G = 1``
the fit reports ``sigma_r`` at the grid-resolution floor and says so.

Quadrature
----------
The integral over ``r`` is done in ``u = ln r`` on a fixed uniform grid spanning the
engine's radius table (:mod:`.radius_table`), trapezoid weights.  A fixed grid is used
instead of Gauss-Hermite nodes of the current prior because ``p(R_g | r)`` is usually
much narrower than the prior: nodes placed by the prior miss its peak.  ``ln p(R_g | r)``
on the grid is computed once per set of membrane parameters (``LikelihoodGrid``), so an
EM iteration costs no engine solve.

E-step (eqs. 15-19): responsibilities ``w_gk = p(R_g|u_k) p(u_k|theta_t) dw_k / tau_g``
with ``tau_g`` the marginal of group ``g`` (eq. 18).  M-step (eq. 24 maximized in closed
form, where seed 003 used Nelder-Mead): ``Q(theta|theta_t) = sum_g sum_k w_gk ln N(u_k;
mu_x, sigma_x^2) + const``, so::

    mu_x = (1/G) sum_g sum_k w_gk u_k,     sigma_x^2 = (1/G) sum_g sum_k w_gk (u_k - mu_x)^2

then ``(mu_r, sigma_r)`` from eq. 22 inverted.  The marginal log likelihood never
decreases (App. B, eq. B.7); a test checks that.  Convergence: ``|d theta / theta| <
tol`` for ``theta = (mu_r, sigma_r^2)`` (seed 003: ``1e-4``).

:func:`direct_psd` maximizes the same marginal likelihood with scipy (L-BFGS-B on
``(mu_x, ln sigma_x)`` with the exact gradient) for comparison.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from nanosep.transport import TransportOptions
from nanosep.transport.psd import lognormal_parameters
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import logsumexp

from nanosep.errors import InvalidInputError
from nanosep.ions import IonDatabase

from .radius_table import RadiusTable, radius_grid, tabulate_radius
from .rejection_data import RejectionData

log = logging.getLogger(__name__)

__all__ = [
    "LikelihoodGrid",
    "PSDFit",
    "direct_psd",
    "em_psd",
    "fit_psd",
    "likelihood_grid",
    "lognormal_moments",
    "marginal_loglik",
]

_LOG_2PI = np.log(2.0 * np.pi)
_VERY_NEGATIVE = -1e250  # ln p outside the tabulated radii (keeps 0 * value finite in sums)


def lognormal_moments(mu_x: float, sigma_x: float) -> tuple[float, float]:
    """``(mu_r, sigma_r)`` of the radius from ``(mu_x, sigma_x)`` of ln r (eq. 22 inverted)."""
    mean = float(np.exp(mu_x + 0.5 * sigma_x**2))
    return mean, float(mean * np.sqrt(np.expm1(sigma_x**2)))


@dataclass(frozen=True)
class LikelihoodGrid:
    """``ll[g, k] = ln p(R_g | r = exp(u[k]))`` on a uniform grid ``u`` (ln m) with trapezoid ``log_w``."""

    u: NDArray[np.float64]
    log_w: NDArray[np.float64]
    ll: NDArray[np.float64]

    @property
    def du(self) -> float:
        return float(self.u[1] - self.u[0])

    @property
    def sigma_floor(self) -> float:
        """Smallest ``sigma_x`` the grid resolves (two grid steps)."""
        return 2.0 * self.du


def likelihood_grid(table: RadiusTable, data: RejectionData, n_grid: int = 1024) -> LikelihoodGrid:
    """Per-group log likelihood on ``n_grid`` points of ln r over the table's radius range."""
    if tuple(table.ions[: len(data.ions)]) != tuple(data.ions):
        raise InvalidInputError(f"radius table ions {table.ions} do not match the data ions {data.ions}")
    u = np.linspace(np.log(table.radii_m[0]), np.log(table.radii_m[-1]), int(n_grid))
    w = np.full(u.size, u[1] - u[0])
    w[[0, -1]] *= 0.5
    r = np.exp(u)
    obs = (data.point, data.ion_index)
    ro = table.interpolate(r, "rejection")[:, obs[0], obs[1]]
    ri = table.interpolate(r, "rejection_intrinsic")[:, obs[0], obs[1]]
    model = np.where(data.intrinsic[None, :], ri, ro)                        # (K, O)
    ll_obs = -0.5 * ((model - data.rejection) / data.sd) ** 2 - np.log(data.sd) - 0.5 * _LOG_2PI
    ll_obs = np.where(np.isfinite(ll_obs), ll_obs, _VERY_NEGATIVE)
    onehot = np.zeros((data.rejection.size, data.n_groups))
    onehot[np.arange(data.rejection.size), data.group] = 1.0
    ll = np.maximum((ll_obs @ onehot).T, _VERY_NEGATIVE)                    # (G, K)
    return LikelihoodGrid(u=u, log_w=np.log(w), ll=ll)


def _log_prior(u: NDArray[np.float64], mu_x: float, sigma_x: float) -> NDArray[np.float64]:
    """ln of the eq. 21 density of u = ln r (eq. 21 times the Jacobian r)."""
    return -0.5 * ((u - mu_x) / sigma_x) ** 2 - np.log(sigma_x) - 0.5 * _LOG_2PI


def _e_step(grid: LikelihoodGrid, mu_x: float, sigma_x: float) -> tuple[NDArray[np.float64], float]:
    """Responsibilities (G, K) (eq. 17 on the grid) and the marginal log likelihood (eq. 18)."""
    a = grid.ll + (_log_prior(grid.u, mu_x, sigma_x) + grid.log_w)[None, :]
    log_tau = logsumexp(a, axis=1)                                           # ln tau_g
    return np.exp(a - log_tau[:, None]), float(log_tau.sum())


def marginal_loglik(grid: LikelihoodGrid, mu_x: float, sigma_x: float) -> float:
    """``sum_g ln int p(R_g | r) p(r | theta) dr`` (eq. 18) by the grid quadrature."""
    return _e_step(grid, mu_x, sigma_x)[1]


@dataclass
class PSDFit:
    """A fitted log-normal pore-size distribution.

    mean_radius_m, std_radius_m: ``mu_r``, ``sigma_r`` [m]; ``mu_x``, ``sigma_x`` of ln r (eq. 22).
    loglik: marginal log likelihood (eq. 18); iterations: EM iterations or optimizer iterations;
    evaluations: marginal-likelihood evaluations; converged, message; seconds: wall time;
    at_floor: ``sigma_x`` hit the grid-resolution floor (sigma not identifiable from the data);
    history: rows ``(mu_r, sigma_r, loglik)`` per iteration.
    """

    method: str
    mean_radius_m: float
    std_radius_m: float
    mu_x: float
    sigma_x: float
    loglik: float
    iterations: int
    evaluations: int
    converged: bool
    seconds: float
    at_floor: bool = False
    message: str = ""
    history: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 3)))

    def summary(self) -> dict:
        """JSON-safe summary in nm."""
        return {"method": self.method, "mean_radius_nm": self.mean_radius_m * 1e9,
                "std_radius_nm": self.std_radius_m * 1e9, "mu_x": self.mu_x, "sigma_x": self.sigma_x,
                "loglik": self.loglik, "iterations": self.iterations, "evaluations": self.evaluations,
                "converged": self.converged, "seconds": self.seconds, "at_floor": self.at_floor,
                "message": self.message}


def _start(grid: LikelihoodGrid, mean_radius_m: float, std_radius_m: float) -> tuple[float, float]:
    mu_x, s = lognormal_parameters(mean_radius_m, std_radius_m)
    return mu_x, float(max(s, grid.sigma_floor))


def em_psd(grid: LikelihoodGrid, mean_radius_m: float, std_radius_m: float, tol: float = 1e-4,
           max_iter: int = 1000) -> PSDFit:
    """EM from the initial ``(mu_r, sigma_r)``; see the module docstring for the steps and the stop rule."""
    if not (0 < tol < 1):
        raise InvalidInputError(f"tol must be in (0, 1), got {tol!r}")
    t0 = time.perf_counter()
    mu_x, s = _start(grid, mean_radius_m, std_radius_m)
    theta = np.array([*lognormal_moments(mu_x, s)])
    theta[1] **= 2
    hist = []
    converged, at_floor, msg = False, False, f"no convergence in {max_iter} iterations"
    ll = -np.inf
    it = 0
    G = grid.ll.shape[0]
    for it in range(1, max_iter + 1):
        resp, ll = _e_step(grid, mu_x, s)                                    # E-step at theta_t
        hist.append((*lognormal_moments(mu_x, s), ll))
        mu_x = float((resp @ grid.u).sum() / G)                              # M-step, closed form
        s2 = float((resp * (grid.u[None, :] - mu_x) ** 2).sum() / G)
        s = float(max(np.sqrt(s2), grid.sigma_floor))
        at_floor = bool(s <= grid.sigma_floor)
        new = np.array([*lognormal_moments(mu_x, s)])
        new[1] **= 2
        change = np.max(np.abs(new - theta) / np.abs(theta))
        theta = new
        if change < tol:
            converged, msg = True, f"relative change {change:.2e} < {tol:g}"
            break
    ll = marginal_loglik(grid, mu_x, s)
    hist.append((*lognormal_moments(mu_x, s), ll))
    if at_floor:
        msg += "; sigma_x at the grid floor: the data do not identify a finite pore-size spread (one group?)"
    mean, sd = lognormal_moments(mu_x, s)
    return PSDFit("em", mean, sd, mu_x, s, ll, it, it + 1, converged, time.perf_counter() - t0, at_floor, msg,
                  np.asarray(hist))


def direct_psd(grid: LikelihoodGrid, mean_radius_m: float, std_radius_m: float, gtol: float = 1e-9) -> PSDFit:
    """Maximize the marginal likelihood directly (scipy L-BFGS-B on ``(mu_x, ln sigma_x)``, exact gradient)."""
    t0 = time.perf_counter()
    mu0, s0 = _start(grid, mean_radius_m, std_radius_m)
    hist: list = []
    floor = np.log(grid.sigma_floor)

    def fun(p):
        mu, ls = float(p[0]), float(p[1])
        s = np.exp(ls)
        resp, ll = _e_step(grid, mu, s)
        d = grid.u[None, :] - mu
        g_mu = float((resp * d).sum()) / s**2
        g_ls = float((resp * (d**2 / s**2 - 1.0)).sum())
        hist.append((*lognormal_moments(mu, s), ll))
        return -ll, -np.array([g_mu, g_ls])

    res = minimize(fun, np.array([mu0, np.log(s0)]), jac=True, method="L-BFGS-B",
                   bounds=[(grid.u[0], grid.u[-1]), (floor, np.log(3.0))], options={"gtol": gtol, "maxiter": 500})
    mu, s = float(res.x[0]), float(np.exp(res.x[1]))
    mean, sd = lognormal_moments(mu, s)
    at_floor = bool(res.x[1] <= floor + 1e-9)
    return PSDFit("direct", mean, sd, mu, s, -float(res.fun), int(res.nit), int(res.nfev), bool(res.success),
                  time.perf_counter() - t0, at_floor, str(res.message), np.asarray(hist))


def fit_psd(data: RejectionData, *, thickness_m: float, pore_dielectric: float, charge_density_mol_m3: float,
            mean_radius_m: float = 0.5e-9, std_radius_m: float = 0.1e-9, method: str = "em",
            radius_range_m: tuple[float, float] = (0.2e-9, 2.0e-9), n_table: int = 40, n_grid: int = 1024,
            tol: float = 1e-4, options: TransportOptions | None = None, ion_db: IonDatabase | None = None,
            table: RadiusTable | None = None) -> tuple[PSDFit, LikelihoodGrid, RadiusTable]:
    """Tabulate the engine over the radius (unless ``table`` is given), then fit by ``method`` ("em"/"direct")."""
    if method not in ("em", "direct"):
        raise InvalidInputError(f"method={method!r}: choose 'em' or 'direct'")
    if table is None:
        table = tabulate_radius(data.ions, data.c_feed_mol_m3, data.flux_m_s,
                                radius_grid(*radius_range_m, n_table, stokes_radii(data.ions, ion_db)),
                                thickness_m=thickness_m, pore_dielectric=pore_dielectric,
                                charge_density_mol_m3=charge_density_mol_m3, temperature_K=data.temperature_K,
                                options=options, ion_db=ion_db)
    grid = likelihood_grid(table, data, n_grid)
    fit = (em_psd(grid, mean_radius_m, std_radius_m, tol) if method == "em"
           else direct_psd(grid, mean_radius_m, std_radius_m))
    return fit, grid, table


def stokes_radii(ions: Sequence[str], ion_db: IonDatabase | None = None) -> list[float]:
    """Stokes radii [m] of ``ions`` (the kinks of R(r), used as radius-table nodes)."""
    db = ion_db or IonDatabase.default()
    return [db.get(i).stokes_radius_m for i in ions]
