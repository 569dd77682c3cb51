"""The DSPM-DE engine tabulated over the pore radius and interpolated in ln r.

The EM algorithm (:mod:`.em_psd`) and the pore-size propagation (:mod:`.propagation`)
need the model rejection ``R(r)`` at many radii for a few fixed operating points.  The
engine is solved once at ``K`` radii (one batched :func:`~nanosep.transport.solve_batch`
call of ``K x P`` cases) and every quantity is interpolated in ``u = ln r`` with a
monotone piecewise-cubic (PCHIP) interpolant.  The Stokes radii of the feed ions are
always grid nodes: there the ion becomes sterically excluded (lambda = 1) and ``R(r)``
has a kink, which an interpolant must not smooth over.  Radii at which some case failed
to converge are dropped from the table (and listed), never silently interpolated through.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from nanosep.transport import TransportOptions, solve_batch
from nanosep.transport.results import PARTITION_KEYS
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import PchipInterpolator

from nanosep.errors import InvalidInputError
from nanosep.ions import IonDatabase

log = logging.getLogger(__name__)

__all__ = ["KINK_REFINEMENT", "RadiusTable", "radius_grid", "tabulate_radius"]

#: relative offsets of the extra nodes on both sides of each Stokes radius (breakpoint)
KINK_REFINEMENT = np.array([0.003, 0.01, 0.025, 0.05, 0.1])


def radius_grid(r_min_m: float, r_max_m: float, n: int, breakpoints_m: Sequence[float] = (),
                refinement: Sequence[float] | None = None) -> NDArray[np.float64]:
    """``n`` log-spaced radii in ``[r_min_m, r_max_m]`` plus the ``breakpoints_m`` inside it and nodes at
    relative offsets ``refinement`` (default :data:`KINK_REFINEMENT`) on both sides of each, sorted, unique."""
    offsets = KINK_REFINEMENT if refinement is None else np.asarray(refinement, dtype=float)
    if not (0 < r_min_m < r_max_m and np.isfinite(r_max_m)):
        raise InvalidInputError(f"radius range must satisfy 0 < r_min < r_max, got [{r_min_m!r}, {r_max_m!r}]")
    if n < 4:
        raise InvalidInputError(f"a radius table needs >= 4 nodes, got n={n!r}")
    r = np.geomspace(r_min_m, r_max_m, int(n))
    b = np.asarray([x for x in breakpoints_m if r_min_m < x < r_max_m], dtype=float)
    # R(r) changes fastest next to a kink: refine geometrically on both sides of each breakpoint
    refine = np.outer(b, np.concatenate([1 + offsets, 1 - offsets])).ravel()
    refine = refine[(refine > r_min_m) & (refine < r_max_m)]
    r = np.unique(np.concatenate([r, b, refine]))
    # drop nodes closer than 1e-3 in ln r to a breakpoint (keep the breakpoint itself)
    keep = np.ones(r.size, bool)
    for x in b:
        close = (np.abs(np.log(r / x)) < 1e-3) & ~np.isclose(r, x, rtol=1e-12, atol=0) & \
            ~np.isin(r, refine)
        keep &= ~close
    return r[keep]


@dataclass
class RadiusTable:
    """Engine results at radii ``radii_m`` (K,) for operating points ``p`` = 0..P-1.

    ``fields`` maps a name to an array whose first two axes are (K, P): ``rejection``
    and ``rejection_intrinsic`` (K, P, n), ``phi_<key>_feed`` (K, P, n) for the partition
    coefficients of :data:`~nanosep.transport.results.PARTITION_KEYS`, ``flux_split``
    (K, P, n, 3).  ``dropped_radii_m`` lists radii removed because a case failed.
    """

    ions: tuple[str, ...]
    radii_m: NDArray[np.float64]
    fields: dict[str, NDArray[np.float64]]
    dropped_radii_m: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    _interp: dict = field(default_factory=dict, repr=False)

    def interpolate(self, radii_m: ArrayLike, name: str = "rejection") -> NDArray[np.float64]:
        """``fields[name]`` at ``radii_m`` (S,), shape (S, ...); NaN outside the tabulated range."""
        if name not in self.fields:
            raise InvalidInputError(f"unknown table field {name!r}; have {sorted(self.fields)}")
        r = np.asarray(radii_m, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(r > 0, np.log(np.where(r > 0, r, 1.0)), -np.inf)
        vals = self.fields[name]
        x = np.log(self.radii_m)
        if np.isfinite(vals).all():
            if name not in self._interp:
                self._interp[name] = PchipInterpolator(x, vals, axis=0, extrapolate=False)
            return self._interp[name](u)
        # columns with NaN nodes (e.g. partition coefficients of blocked pores): each column on its
        # finite nodes; NaN outside their range
        flat = vals.reshape(vals.shape[0], -1)
        out = np.full((u.size, flat.shape[1]), np.nan)
        for j in range(flat.shape[1]):
            ok = np.isfinite(flat[:, j])
            if ok.sum() >= 2:
                out[:, j] = PchipInterpolator(x[ok], flat[ok, j], extrapolate=False)(u.ravel())
        return out.reshape(u.shape + vals.shape[1:])


def tabulate_radius(ions: Sequence[str], c_feed: ArrayLike, flux_m_s: ArrayLike, radii_m: ArrayLike, *,
                    thickness_m: float, pore_dielectric: float, charge_density_mol_m3: float,
                    temperature_K: ArrayLike = 298.15, options: TransportOptions | None = None,
                    ion_db: IonDatabase | None = None) -> RadiusTable:
    """Solve the engine at every radius x operating point (one batch) and keep the results.

    c_feed: (P, n) or (n,) mol/m3; flux_m_s, temperature_K: (P,) or scalars.
    Partition coefficients and flux splits of sterically blocked cases (pure-water
    permeate, reported NaN by the engine) stay NaN in the table.
    """
    options = TransportOptions() if options is None else options
    r = np.asarray(radii_m, dtype=float)
    J = np.atleast_1d(np.asarray(flux_m_s, dtype=float))
    c = np.atleast_2d(np.asarray(c_feed, dtype=float))
    P = max(J.size, c.shape[0])
    J = np.broadcast_to(J, (P,)).copy()
    c = np.broadcast_to(c, (P, c.shape[1])).copy()
    T = np.broadcast_to(np.atleast_1d(np.asarray(temperature_K, dtype=float)), (P,)).copy()
    K = r.size
    res = solve_batch(ions, np.tile(c, (K, 1)), flux_m_s=np.tile(J, K), pore_radius_m=np.repeat(r, P),
                      thickness_m=thickness_m, pore_dielectric=pore_dielectric,
                      charge_density_mol_m3=charge_density_mol_m3, temperature_K=np.tile(T, K),
                      options=options, ion_db=ion_db)
    n = len(res.ions)
    conv = res.converged.reshape(K, P)
    fields = {"rejection": res.rejection_observed.reshape(K, P, n),
              "rejection_intrinsic": res.rejection_intrinsic.reshape(K, P, n),
              "flux_split": res.flux_split.reshape(K, P, n, 3)}
    for key in PARTITION_KEYS:
        fields[f"phi_{key}_feed"] = res.partition_feed[key].reshape(K, P, n)
    ok = conv.all(axis=1)
    if not ok.all():
        log.warning("radius table: %d of %d radii dropped (engine did not converge): %s", (~ok).sum(), K,
                    np.round(r[~ok] * 1e9, 4).tolist())
    if ok.sum() < 4:
        raise InvalidInputError(f"radius table: only {int(ok.sum())} of {K} radii converged; cannot interpolate")
    return RadiusTable(ions=tuple(res.ions), radii_m=r[ok], fields={k: v[ok] for k, v in fields.items()},
                       dropped_radii_m=r[~ok])
