"""Logarithmic unknowns for the permeate-end pore concentrations (a change of variables, not of equations).

At high water flux a strongly excluded co-ion (or a trace ion) can cross the active layer only
by diffusion at its exclusion-limited rate: its pore profile falls almost linearly from the
entrance value to ``c(L)``, and the permeate-side Donnan equilibrium makes ``c(L)/c(0)`` as
small as 1e-20 ... 1e-40 (e.g. a divalent co-ion against an exit Donnan jump of 15 thermal
voltages).  With ``c(L)`` as a linear unknown, that value sits below the round-off of the
collocation rows (which carry ``c(0)``-sized terms), Newton iterates make it zero or negative,
and ``ln c(L)`` in the permeate partitioning (seed 003 eqs. 3-10, mirrored) is undefined.
With ``u = ln c(L)`` as the unknown instead, the partitioning row is linear in ``u`` and the
collocation rows see ``exp(u)`` > 0: the same discrete equations, now solvable.

:func:`exit_mask` marks those unknowns, :func:`to_log` / :func:`from_log` convert solution
vectors, and :func:`wrap` turns an evaluator ``(x, idx, jacobian) -> (F, J)`` of the linear
unknowns into one of the transformed unknowns (chain rule on the Jacobian's columns).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .system import DSPMDESystem

EvalFn = Callable[[np.ndarray, np.ndarray, bool], object]


def exit_mask(system: DSPMDESystem) -> np.ndarray:
    """(B, m) bool: the pore concentrations at the permeate-end node, sterically excluded ions left out."""
    prm, lay = system.prm, system.lay
    n, M = prm.n_ions, system.N + 1
    mask = np.zeros((prm.batch, lay.size), bool)
    cols = lay["u"].start + np.arange(n) * M + M - 1
    mask[:, cols] = True if prm.excluded is None else ~prm.excluded
    return mask


def to_log(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Solution vectors with the masked (positive) entries replaced by their natural logs."""
    y = x.copy()
    y[mask] = np.log(np.maximum(x[mask], 1e-300))
    return y


def from_log(y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_log`."""
    x = y.copy()
    x[mask] = np.exp(y[mask])
    return x


def wrap(evaluate: EvalFn, mask: np.ndarray) -> EvalFn:
    """Evaluator of the transformed unknowns: ``F(y) = F_lin(x(y))``, ``dF/dy_j = dF/dx_j * x_j`` where logged."""

    def ev(y, idx, jacobian):
        msk = mask[idx]
        x = from_log(y, msk)
        out = evaluate(x, idx, jacobian)
        if not jacobian:
            return out
        F, J = out
        J *= np.where(msk, x, 1.0)[:, None, :]
        return F, J

    return ev
