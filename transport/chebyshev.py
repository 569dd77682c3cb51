"""Chebyshev collocation on [0, 1] (seed 003, Appendix E, eqs. E.1-E.2).

Gauss-Lobatto nodes ordered from x = 0 (feed side) to x = 1 (permeate side), the
spectral differentiation matrix (Trefethen, *Spectral Methods in MATLAB*, 2000,
ch. 6) mapped to [0, 1], and Clenshaw-Curtis weights for layer averages.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=64)
def nodes(n_intervals: int) -> np.ndarray:
    """Chebyshev-Gauss-Lobatto points on [0, 1], increasing; ``n_intervals + 1`` points."""
    if n_intervals < 2:
        raise ValueError(f"n_intervals must be >= 2, got {n_intervals}")
    k = np.arange(n_intervals + 1)
    x = 0.5 * (1.0 - np.cos(np.pi * k / n_intervals))
    x.setflags(write=False)
    return x


@lru_cache(maxsize=64)
def diff_matrix(n_intervals: int) -> np.ndarray:
    """First-derivative matrix D on the nodes of :func:`nodes` (d/dx on [0, 1]).

    Built with the negative-sum trick for the diagonal, which keeps D @ 1 = 0 to
    machine precision (Baltensperger & Trummer 2003).
    """
    n = n_intervals
    x = nodes(n)
    c = np.ones(n + 1)
    c[0] = c[-1] = 2.0
    c = c * (-1.0) ** np.arange(n + 1)
    dx = x[:, None] - x[None, :]
    d = np.outer(c, 1.0 / c) / (dx + np.eye(n + 1))
    d = d - np.diag(d.sum(axis=1))
    d.setflags(write=False)
    return d


@lru_cache(maxsize=64)
def cc_weights(n_intervals: int) -> np.ndarray:
    """Clenshaw-Curtis quadrature weights on [0, 1] for the nodes of :func:`nodes`."""
    n = n_intervals
    theta = np.pi * np.arange(n + 1) / n
    w = np.zeros(n + 1)
    v = np.ones(n - 1)
    if n % 2 == 0:
        w[0] = w[n] = 1.0 / (n**2 - 1)
        for k in range(1, n // 2):
            v -= 2.0 * np.cos(2 * k * theta[1:-1]) / (4 * k**2 - 1)
        v -= np.cos(n * theta[1:-1]) / (n**2 - 1)
    else:
        w[0] = w[n] = 1.0 / n**2
        for k in range(1, (n - 1) // 2 + 1):
            v -= 2.0 * np.cos(2 * k * theta[1:-1]) / (4 * k**2 - 1)
    w[1:-1] = 2.0 * v / n
    w = 0.5 * w  # [-1, 1] -> [0, 1]
    w.setflags(write=False)
    return w


@lru_cache(maxsize=64)
def interp_matrix(n_from: int, n_to: int) -> np.ndarray:
    """Matrix P (n_to + 1, n_from + 1): values on :func:`nodes` (n_from) -> the interpolant on nodes (n_to).

    Barycentric formula with the Chebyshev-Gauss-Lobatto weights (-1)^j delta_j,
    delta = 1/2 at the end points (Berrut & Trefethen, SIAM Rev. 46, 2004, eq. 5.2).
    """
    xf, xt = nodes(n_from), nodes(n_to)
    w = (-1.0) ** np.arange(n_from + 1)
    w[0] *= 0.5
    w[-1] *= 0.5
    diff = xt[:, None] - xf[None, :]
    exact = diff == 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = w[None, :] / diff
        P = terms / terms.sum(axis=1, keepdims=True)
    rows = exact.any(axis=1)
    P[rows] = exact[rows].astype(float)
    P.setflags(write=False)
    return P


@lru_cache(maxsize=64)
def coefficient_matrix(n_intervals: int) -> np.ndarray:
    """Matrix C (n+1, n+1): values on :func:`nodes` -> Chebyshev coefficients of the interpolant.

    ``f(x) = sum_j a_j T_j(2x - 1)`` with ``a = C @ f`` (a discrete cosine transform of type I;
    Trefethen, *Approximation Theory and Approximation Practice*, 2013, ch. 3).  Our nodes run
    from x = 0, where ``2x - 1 = -cos(0)``, so the signs of odd coefficients are flipped relative
    to the usual ordering; magnitudes, which is what :func:`tail` uses, are the same.
    """
    n = n_intervals
    k = np.arange(n + 1)
    C = np.cos(np.pi * np.outer(k, k) / n) * (2.0 / n)
    C[:, [0, n]] *= 0.5
    C[[0, n], :] *= 0.5
    C = C * ((-1.0) ** k)[:, None]
    C.setflags(write=False)
    return C


def tail(values: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """Resolution estimate of profiles sampled on :func:`nodes`: ``max(|a_{n-1}|, |a_n|) / scale``.

    ``values`` (..., n+1); ``scale`` is the largest coefficient magnitude of each profile, at least
    ``floor`` (``floor = 1`` makes the estimate absolute for profiles of order one or smaller, e.g.
    dimensionless potentials).  For an analytic profile the Chebyshev coefficients
    decay geometrically, so the last two bound the truncation (interpolation) error of the
    profile; a resolved profile has them at round-off.  Zero profiles give 0.
    """
    v = np.asarray(values, dtype=float)
    a = np.abs(v @ coefficient_matrix(v.shape[-1] - 1).T)
    den = np.maximum(a.max(axis=-1), floor)
    last = a[..., -2:].max(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, last / np.where(den > 0, den, 1.0), 0.0)
