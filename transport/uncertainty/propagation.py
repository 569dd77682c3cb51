"""Propagation of parameter samples through the DSPM-DE engine (seed 003 secs. 3.2 and 3.4, Figs. 3B and 5).

Each sample is one membrane ``(r_p, dx_e, zeta_p, X_d)`` (:data:`PARAMETERS`, SI); all
samples x all fluxes go to :func:`~nanosep.transport.solve_batch` in batches.  Outputs per
sample, flux and ion: rejection, feed-side partition coefficients (steric, Born, image,
Donnan, activity, total) and the layer-averaged diffusive / convective / electromigrative
flux split; selectivities ``S_a/b = (1 - R_a) / (1 - R_b)`` follow from the rejections.

A non-physical sample (r_p, dx_e or zeta_p <= 0, e.g. the tail of a wide normal) or an
engine failure is recorded as NaN with its reason - never raised.  For a pore-size
distribution alone (one varying parameter) :func:`propagate_radii` can instead
interpolate an engine table in ln r (:mod:`.radius_table`), which is much cheaper for
thousands of samples; its accuracy is checked against the direct solve in the tests.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from nanosep.transport import TransportOptions, solve_batch
from nanosep.transport.results import FLUX_PARTS, PARTITION_KEYS
from numpy.typing import ArrayLike, NDArray

from nanosep.errors import InvalidInputError, NanosepError
from nanosep.ions import IonDatabase
from nanosep.units import m_s_to_lmh

from .em_psd import stokes_radii
from .radius_table import radius_grid, tabulate_radius

log = logging.getLogger(__name__)

__all__ = ["PARAMETERS", "PropagationResult", "propagate", "propagate_radii", "selectivity"]

PARAMETERS: tuple[str, ...] = ("pore_radius_m", "thickness_m", "pore_dielectric", "charge_density_mol_m3")


def selectivity(rejection_a: ArrayLike, rejection_b: ArrayLike) -> NDArray[np.float64]:
    """``S_a/b = (1 - R_a) / (1 - R_b)``: passage of ``a`` relative to ``b`` (inf where R_b = 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (1.0 - np.asarray(rejection_a, float)) / (1.0 - np.asarray(rejection_b, float))


@dataclass
class PropagationResult:
    """Engine outputs for S samples x F fluxes x n ions.

    samples (S, 4) in :data:`PARAMETERS` order; rejection (S, F, n); partition: key ->
    (S, F, n) feed side; flux_split (S, F, n, 3) in ``FLUX_PARTS`` order, mol/(m2 s);
    converged (S, F); reason (S, F) ("" where converged).
    """

    ions: tuple[str, ...]
    flux_m_s: NDArray[np.float64]
    samples: NDArray[np.float64]
    rejection: NDArray[np.float64]
    partition: dict[str, NDArray[np.float64]]
    flux_split: NDArray[np.float64]
    converged: NDArray[np.bool_]
    reason: NDArray[np.object_]

    def __len__(self) -> int:
        return self.samples.shape[0]

    def ion_index(self, ion: str) -> int:
        if ion not in self.ions:
            raise InvalidInputError(f"ion {ion!r} is not in the result {list(self.ions)}")
        return self.ions.index(ion)

    def selectivity(self, a: str, b: str) -> NDArray[np.float64]:
        """(S, F) selectivity ``S_a/b``."""
        return selectivity(self.rejection[..., self.ion_index(a)], self.rejection[..., self.ion_index(b)])

    @classmethod
    def concat(cls, parts: Sequence[PropagationResult]) -> PropagationResult:
        """Stack results of sample chunks (same ions and fluxes)."""
        p0 = parts[0]
        return cls(p0.ions, p0.flux_m_s, np.concatenate([p.samples for p in parts]),
                   np.concatenate([p.rejection for p in parts]),
                   {k: np.concatenate([p.partition[k] for p in parts]) for k in p0.partition},
                   np.concatenate([p.flux_split for p in parts]), np.concatenate([p.converged for p in parts]),
                   np.concatenate([p.reason for p in parts]))

    def to_frame(self) -> pd.DataFrame:
        """Tidy: one row per sample, flux and ion (parameters in SI, flux in L m-2 h-1)."""
        S, F, n = self.rejection.shape
        idx = np.indices((S, F, n)).reshape(3, -1)
        df = pd.DataFrame({"sample": idx[0], "flux_L_m2_h": np.round(m_s_to_lmh(self.flux_m_s), 9)[idx[1]],
                           "ion": np.asarray(self.ions, dtype=object)[idx[2]]})
        for j, name in enumerate(PARAMETERS):
            df[name] = self.samples[idx[0], j]
        df["converged"] = self.converged[idx[0], idx[1]]
        df["reason"] = self.reason[idx[0], idx[1]]
        df["rejection"] = self.rejection.ravel()
        for k, v in self.partition.items():
            df[f"phi_{k}_feed"] = v.ravel()
        frac = self.flux_fractions()
        for j, part in enumerate(FLUX_PARTS):
            df[f"{part}_flux_mol_m2_s"] = self.flux_split[..., j].ravel()
            df[f"{part}_fraction"] = frac[..., j].ravel()
        return df

    def flux_fractions(self) -> NDArray[np.float64]:
        """(S, F, n, 3) signed share of each mechanism, ``part / sum |parts|`` (in [-1, 1]; the net flux
        can be near zero while its parts are not, so it is not used as the normaliser)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.flux_split / np.abs(self.flux_split).sum(axis=-1, keepdims=True)

    def summary(self, pairs: Sequence[tuple[str, str]] = ()) -> pd.DataFrame:
        """Mean, sd, 5/50/95 % quantiles and the number of finite samples per flux and quantity."""
        rows = []
        J = np.round(m_s_to_lmh(self.flux_m_s), 9)

        def add(quantity: str, species: str, values: NDArray[np.float64]) -> None:
            for f in range(values.shape[1]):
                v = values[:, f]
                v = v[np.isfinite(v)]
                q = np.quantile(v, [0.05, 0.5, 0.95]) if v.size else [np.nan] * 3
                rows.append({"flux_L_m2_h": float(J[f]), "quantity": quantity, "species": species,
                             "mean": float(v.mean()) if v.size else np.nan,
                             "sd": float(v.std(ddof=1)) if v.size > 1 else np.nan,
                             "q05": float(q[0]), "q50": float(q[1]), "q95": float(q[2]), "n_finite": int(v.size)})

        for i, ion in enumerate(self.ions):
            add("rejection", ion, self.rejection[..., i])
            for k in ("steric", "born", "donnan", "total"):
                add(f"phi_{k}_feed", ion, self.partition[k][..., i])
        for a, b in pairs:
            add("selectivity", f"{a}/{b}", self.selectivity(a, b))
        return pd.DataFrame(rows)


def _empty(ions: tuple[str, ...], J: NDArray, samples: NDArray, reason: str) -> PropagationResult:
    S, F, n = samples.shape[0], J.size, len(ions)
    nan = np.full((S, F, n), np.nan)
    return PropagationResult(ions, J, samples, nan, {k: nan.copy() for k in PARTITION_KEYS},
                             np.full((S, F, n, 3), np.nan), np.zeros((S, F), bool), np.full((S, F), reason, object))


def propagate(ions: Sequence[str], c_feed: ArrayLike, flux_m_s: ArrayLike, samples: ArrayLike, *,
              temperature_K: float = 298.15, options: TransportOptions | None = None,
              ion_db: IonDatabase | None = None, chunk_cases: int = 4096, workers: int = 1,
              progress: Callable[[int], None] | None = None) -> PropagationResult:
    """Solve every sample (rows of ``samples``, :data:`PARAMETERS` order, SI) at every flux.

    c_feed: (n,) mol/m3, one composition; flux_m_s: (F,).  Cases are sent to the engine in
    batches of about ``chunk_cases``; ``progress(k)`` is called with the number of samples done.
    """
    options = TransportOptions() if options is None else options
    db = ion_db or IonDatabase.default()
    names = tuple(db.get(i).name for i in ions)
    c = np.asarray(c_feed, dtype=float).ravel()
    J = np.atleast_1d(np.asarray(flux_m_s, dtype=float))
    X = np.atleast_2d(np.asarray(samples, dtype=float))
    if X.shape[1] != len(PARAMETERS):
        raise InvalidInputError(f"samples must have {len(PARAMETERS)} columns {PARAMETERS}, got shape {X.shape}")
    _S, F = X.shape[0], J.size
    out = _empty(names, J, X, "")
    bad = ~np.isfinite(X).all(axis=1) | (X[:, :3] <= 0).any(axis=1)
    for s in np.flatnonzero(bad):
        out.reason[s, :] = ("non-physical sample: " + ", ".join(
            f"{p}={v:.4g}" for p, v in zip(PARAMETERS, X[s]) if not (np.isfinite(v) and (v > 0 or p.startswith("charge")))))
    good = np.flatnonzero(~bad)
    per = max(1, chunk_cases // F)
    done = int(bad.sum())
    for start in range(0, good.size, per):
        idx = good[start:start + per]
        try:
            res = solve_batch(names, np.tile(c, (idx.size * F, 1)), flux_m_s=np.tile(J, idx.size),
                              pore_radius_m=np.repeat(X[idx, 0], F), thickness_m=np.repeat(X[idx, 1], F),
                              pore_dielectric=np.repeat(X[idx, 2], F),
                              charge_density_mol_m3=np.repeat(X[idx, 3], F), temperature_K=temperature_K,
                              options=options, ion_db=db, workers=workers,
                              chunk_size=max(1, -(-idx.size * F // workers)))
        except NanosepError as exc:
            out.reason[idx, :] = f"engine error: {exc}"
            log.warning("propagation: engine error on %d samples: %s", idx.size, exc)
        else:
            n = len(names)
            conv = res.converged.reshape(idx.size, F)
            rej = res.rejection_observed.reshape(idx.size, F, n)
            out.rejection[idx] = np.where(conv[..., None], rej, np.nan)
            for k in PARTITION_KEYS:
                out.partition[k][idx] = np.where(conv[..., None], res.partition_feed[k].reshape(idx.size, F, n), np.nan)
            out.flux_split[idx] = np.where(conv[..., None, None], res.flux_split.reshape(idx.size, F, n, 3), np.nan)
            out.converged[idx] = conv
            out.reason[idx] = np.asarray(res.reason, dtype=object).reshape(idx.size, F)
        done += idx.size
        if progress is not None:
            progress(done)
    return out


def propagate_radii(ions: Sequence[str], c_feed: ArrayLike, flux_m_s: ArrayLike, radii_m: ArrayLike, *,
                    thickness_m: float, pore_dielectric: float, charge_density_mol_m3: float,
                    temperature_K: float = 298.15, options: TransportOptions | None = None,
                    ion_db: IonDatabase | None = None, n_table: int = 48) -> PropagationResult:
    """Pore-radius samples through an engine table interpolated in ln r (``n_table`` log-spaced
    nodes over the sample range plus the ions' Stokes radii), instead of one solve per sample."""
    r = np.asarray(radii_m, dtype=float).ravel()
    if not (np.isfinite(r).all() and (r > 0).all()):
        raise InvalidInputError("radius samples must be positive and finite")
    J = np.atleast_1d(np.asarray(flux_m_s, dtype=float))
    lo, hi = r.min() * (1 - 1e-9), r.max() * (1 + 1e-9)
    if hi / lo < 1.0 + 1e-6:   # all samples equal (sigma -> 0): a tiny bracket around them
        lo, hi = r.min() * (1 - 1e-4), r.max() * (1 + 1e-4)
    S = r.size
    samples = np.column_stack([r, np.full(S, thickness_m), np.full(S, pore_dielectric),
                               np.full(S, charge_density_mol_m3)])
    try:
        table = tabulate_radius(ions, c_feed, J, radius_grid(lo, hi, n_table, stokes_radii(ions, ion_db)),
                                thickness_m=thickness_m, pore_dielectric=pore_dielectric,
                                charge_density_mol_m3=charge_density_mol_m3, temperature_K=temperature_K,
                                options=options, ion_db=ion_db)
    except NanosepError as exc:
        log.warning("propagate_radii: radius table failed: %s", exc)
        db = ion_db or IonDatabase.default()
        return _empty(tuple(db.get(i).name for i in ions), J, samples, f"radius table failed: {exc}")
    out = _empty(table.ions, J, samples, "")
    out.rejection[:] = table.interpolate(r, "rejection")
    for k in PARTITION_KEYS:
        out.partition[k][:] = table.interpolate(r, f"phi_{k}_feed")
    out.flux_split[:] = table.interpolate(r, "flux_split")
    out.converged[:] = np.isfinite(out.rejection).all(axis=-1)
    out.reason[~out.converged] = "outside the converged radius table"
    return out
