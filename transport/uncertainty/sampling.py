"""Scrambled-Sobol quasi-Monte-Carlo (and plain Monte-Carlo) samples of membrane parameters.

Seed 003 sec. 3.2 propagates the learned pore-size distribution with Sobol sequences.
Points come from :class:`scipy.stats.qmc.Sobol` (Owen-scrambled, seeded), are mapped to
standard normals by the inverse CDF, then to

* pore radii of the log-normal PSD (eqs. 21-22): ``r = exp(mu_x + sigma_x z)``, or
* a multivariate normal ``theta = m + L z`` with ``L L^T = C`` (a fit's mean and covariance).

``method="mc"`` draws the same transforms from pseudo-random uniforms (for comparison).
Sobol sample sizes should be powers of two (the balance properties hold only then);
other sizes are allowed and logged.
"""
from __future__ import annotations

import logging

import numpy as np
from nanosep.transport.psd import lognormal_parameters
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm, qmc

from nanosep.errors import InvalidInputError

log = logging.getLogger(__name__)

__all__ = ["SAMPLING_METHODS", "normal_points", "normal_samples", "radius_samples", "uniform_points"]

SAMPLING_METHODS = ("sobol", "mc")
_EPS = 1e-12


def uniform_points(n: int, d: int, method: str = "sobol", seed: int | None = 0) -> NDArray[np.float64]:
    """(n, d) points in the open unit cube: scrambled Sobol or pseudo-random."""
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise InvalidInputError(f"number of samples must be a positive integer, got {n!r}")
    if not (isinstance(d, (int, np.integer)) and d >= 1):
        raise InvalidInputError(f"dimension must be a positive integer, got {d!r}")
    if method == "sobol":
        eng = qmc.Sobol(int(d), scramble=True, seed=seed)
        m = int(np.log2(n))
        if 2**m == n:
            u = eng.random_base2(m)
        else:
            log.info("Sobol sample size %d is not a power of two; balance properties are lost", n)
            u = eng.random(int(n))
    elif method == "mc":
        u = np.random.default_rng(seed).random((int(n), int(d)))
    else:
        raise InvalidInputError(f"sampling method {method!r}: choose one of {SAMPLING_METHODS}")
    return np.clip(u, _EPS, 1.0 - _EPS)


def normal_points(n: int, d: int, method: str = "sobol", seed: int | None = 0) -> NDArray[np.float64]:
    """(n, d) standard-normal points by the inverse CDF of :func:`uniform_points`."""
    return norm.ppf(uniform_points(n, d, method, seed))


def radius_samples(mean_radius_m: float, std_radius_m: float, n: int, method: str = "sobol",
                   seed: int | None = 0) -> NDArray[np.float64]:
    """(n,) pore radii [m] from the log-normal PSD with radius mean/sd (eq. 22)."""
    mu_x, s = lognormal_parameters(mean_radius_m, std_radius_m)
    return np.exp(mu_x + s * normal_points(n, 1, method, seed)[:, 0])


def normal_samples(mean: ArrayLike, cov: ArrayLike, n: int, method: str = "sobol",
                   seed: int | None = 0) -> NDArray[np.float64]:
    """(n, d) samples of N(mean, cov); ``cov`` must be symmetric positive semi-definite.

    The factor is the Cholesky factor, or for a singular ``cov`` (e.g. some parameters
    held fixed) the symmetric square root from the eigen-decomposition.
    """
    m = np.asarray(mean, dtype=float).ravel()
    C = np.asarray(cov, dtype=float)
    d = m.size
    if C.shape != (d, d):
        raise InvalidInputError(f"covariance must be {d}x{d} for a mean of {d} entries, got shape {C.shape}")
    if not (np.isfinite(m).all() and np.isfinite(C).all()):
        raise InvalidInputError("mean and covariance must be finite")
    if not np.allclose(C, C.T, rtol=1e-10, atol=0):
        raise InvalidInputError("covariance is not symmetric")
    try:
        L = np.linalg.cholesky(C)
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(C)
        if w.min() < -1e-10 * max(w.max(), 0):
            raise InvalidInputError(f"covariance is not positive semi-definite (eigenvalue {w.min():.3g})") from None
        L = V * np.sqrt(np.clip(w, 0, None))
    return m[None, :] + normal_points(n, d, method, seed) @ L.T
