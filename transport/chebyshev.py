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
