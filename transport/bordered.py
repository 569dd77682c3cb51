"""Block-bordered LU factorization of the DSPM-DE Newton matrix.

With the potentials (and the few other case-wide unknowns) held fixed, the collocated
Nernst-Planck equations of one ion involve only that ion's own concentrations: the
Jacobian is block diagonal in the ions, bordered by the potential-like unknowns.  The
only exceptions are the two interface rows of each ion (feed-side partitioning at pore
node 0 and permeate-side partitioning), which see every ion through the activity
coefficients.  Reordered as ``[U_1 .. U_n | G]`` (``U_i``: ion ``i``'s film and pore
concentrations, its ``ln c_p`` and linear-film wall value; ``G``: film and pore
potentials, permeate potential, image-force screening, ``J_v``, linear-film gradient)::

    [ A + E R   B ] [dU]   [r_U]
    [ C         D ] [dG] = [r_G]

with ``A = diag(A_11 .. A_nn)`` and ``E R`` the cross-ion part of the interface rows
(``E`` selects those ``2 n`` rows, ``R`` holds their entries in other ions' columns).
Tearing the coupling through ``w = R dU`` (``2 n`` extra border unknowns, rows
``w - R dU = 0``) gives a block-diagonal interior and a border of ``g + 2 n`` unknowns::

    S = D' - C' A^-1 B',   B' = [B  E],   C' = [C; -R],   D' = diag(D, I)

(the Schur complement; exact, no approximation).  Cost per case for ``n`` ions and ``m_i``
unknowns per ion: ``n`` LUs of ``m_i x m_i``, ``n`` solves with ``g + 2 n`` right-hand
sides and one ``(g + 2 n)``-square LU, instead of one LU of the whole ``(n m_i + g)``-square
matrix.  Pivoting is partial within each ion block and within ``S``; ``A_ii`` is the
collocated linear chain of one ion at fixed potentials, regular for finite positive
concentrations (checked in tests against the dense LU to round-off).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class BorderedStructure:
    """Index sets of the reordering (per-case vector positions).

    ``interior`` (n, m_i): the unknowns (= rows) of each ion; ``border`` (g,): the rest;
    ``coupled`` (n, k): local positions (in ``interior[i]``) of the rows of ion ``i`` that may
    have entries in other ions' columns (``k`` = 0 when nothing couples the ions).
    """

    interior: np.ndarray
    border: np.ndarray
    coupled: np.ndarray

    @property
    def size(self) -> int:
        return self.interior.size + self.border.size


class BorderedLU:
    """The factorization of a batch of Jacobians ``J`` (B, m, m) with a :class:`BorderedStructure`."""

    def __init__(self, J: np.ndarray, st: BorderedStructure):
        B = J.shape[0]
        I, G, P = st.interior, st.border, st.coupled
        n, mi = I.shape
        g, k = G.size, P.shape[1]
        gb = g + n * k
        self.st, self.shape = st, (B, n, mi, g, k)
        # numpy's fancy indexing gathers the blocks faster than torch's
        A = torch.from_numpy(J[:, I[:, :, None], I[:, None, :]])           # (B, n, mi, mi)
        Bp = torch.zeros((B, n, mi, gb), dtype=torch.float64)
        Bp[..., :g] = torch.from_numpy(J[:, I[:, :, None], G[None, None, :]])
        Cp = np.empty((B, gb, n * mi))
        Cp[:, :g] = J[:, G[:, None], I.ravel()[None, :]]
        if k:
            ion = np.arange(n)
            rows = I[ion[:, None], P]                                       # (n, k) global rows
            R = J[:, rows[:, :, None, None], I[None, None, :, :]]           # (B, n, k, n, mi)
            R[:, ion, :, ion, :] = 0.0                                      # own block stays in A
            Cp[:, g:] = -R.reshape(B, n * k, n * mi)
            # E: aux unknown (i, r) enters row P[i, r] of ion i with coefficient 1
            aux = g + ion[:, None] * k + np.arange(k)[None, :]              # (n, k)
            Bp[:, torch.from_numpy(ion[:, None]), torch.from_numpy(P), torch.from_numpy(aux)] = 1.0
        Cp = torch.from_numpy(Cp)
        self.lu_A, self.piv_A, info_A = torch.linalg.lu_factor_ex(A)
        X = torch.linalg.lu_solve(self.lu_A, self.piv_A, Bp)             # (B, n, mi, gb)
        S = -(Cp @ X.reshape(B, n * mi, gb))
        S[:, :g, :g] += torch.from_numpy(J[:, G[:, None], G[None, :]])
        if k:
            S[:, g:, g:] += torch.eye(n * k, dtype=torch.float64)
        self.lu_S, self.piv_S, info_S = torch.linalg.lu_factor_ex(S)
        self.X, self.Cp = X, Cp
        self.ok = ((info_A == 0).all(dim=1) & (info_S == 0)).numpy()

    def take(self, idx: np.ndarray) -> "BorderedLU":
        """The factorization of a subset of the cases."""
        out = object.__new__(BorderedLU)
        t = torch.from_numpy(np.asarray(idx))
        out.st, out.shape = self.st, (len(idx),) + self.shape[1:]
        for name in ("lu_A", "piv_A", "lu_S", "piv_S", "X", "Cp"):
            setattr(out, name, getattr(self, name)[t])
        out.ok = self.ok[idx]
        return out

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``J^-1 rhs`` for ``rhs`` (B, m)."""
        B, n, mi, g, k = self.shape
        gb = g + n * k
        I, G = self.st.interior, self.st.border
        y = torch.linalg.lu_solve(self.lu_A, self.piv_A, torch.from_numpy(rhs[:, I][..., None]))  # (B, n, mi, 1)
        t = -(self.Cp @ y.reshape(B, n * mi, 1))                                           # (B, gb, 1)
        t[:, :g, 0] += torch.from_numpy(rhs[:, G])
        dG = torch.linalg.lu_solve(self.lu_S, self.piv_S, t)                              # (B, gb, 1)
        dU = y - self.X @ dG[:, None]                                                      # (B, n, mi, 1)
        out = np.empty_like(rhs)
        out[:, I] = dU[..., 0].numpy()
        out[:, G] = dG[:, :g, 0].numpy()
        return out
