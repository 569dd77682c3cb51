"""The batched DSPM-DE transport engine: inputs -> :class:`BatchResult`.

``solve_batch`` takes arrays (one entry per case), builds the spectral collocation
system of :mod:`.system` and solves it with the batched Newton method of
:mod:`.newton`.  The solve starts on coarse grids (``options.coarse_grids``, each
with half the nodes of the next): Newton on the coarsest grid from the closed-form
guess, then on each finer grid from the interpolant of the coarser solution, so
that the full grid typically needs one Newton iteration; the answer is always the
full grid's.  On every grid, cases that fail from the closed-form start with the interface activity
coefficients (:data:`.system.ACTIVITY_PASSES`) try the ideal start; cases that fail from their starting point are
re-solved by continuation in the water flux (or applied pressure) from the exact
zero-flux (Donnan equilibrium) solution; cases that fail that too are re-solved by a robust
continuation (logarithmic permeate-end unknowns, adaptive row scales), and a case that still fails
and has absent ions is re-solved with its present ions only.  These fallbacks run only for cases
that fail without them.  After the solve, every converged case whose Chebyshev resolution estimate
(the last coefficients of its profiles, :meth:`DSPMDESystem.resolution`) exceeds
``options.resolution_tol`` is re-solved on grids with twice the intervals, up to ``options.max_nodes``
(a posteriori p-refinement, :func:`_refine`); one that stays above 1e-6 is flagged
(``BatchResult.unresolved``).  Cases the compiled kernel of :mod:`.compiled` covers (ideal, Davies or
Pitzer activity, no polarization or the film, no image forces, flux given) are solved by it when
``options.compiled`` allows (same equations, grids and checks; its failures go to the engine).  Nothing
is silently dropped: a case that still fails is returned with ``converged = False`` and its reason, or raises
:class:`~nanosep.errors.ConvergenceError` naming its inputs if ``strict``.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from nanosep import water
from nanosep.constants import (
    BOLTZMANN,
    ELEMENTARY_CHARGE,
    FARADAY,
    GAS_CONSTANT,
    VACUUM_PERMITTIVITY,
)
from nanosep.errors import ConvergenceError, ElectroneutralityError, InvalidInputError
from nanosep.ions import IonDatabase

from . import chebyshev, compiled, grid_map, log_unknowns
from . import system as _system
from .hindrance import hindrance
from .newton import newton, single_thread_torch
from .options import TransportOptions
from .equilibrium import interface_equilibrium
from .partitioning import ln_born, ln_steric
from .polarization import mass_transfer_coefficient
from .results import BatchResult
from .system import BatchParameters, DSPMDESystem

log = logging.getLogger(__name__)

EN_RTOL = 1e-6  #: relative electroneutrality tolerance of a feed
LOG_STEP_CAP = 3.0  #: largest Newton change of a logarithmic unknown in the robust continuation
#: smallest starting fraction of the drive in the flux continuation's ordinary passes (:func:`_continuation`)
START_FLOOR = 1e-14
#: ... in its last fallback pass: none in effect (the start fraction where the zero-flux solution holds)
DEEP_START_FLOOR = 1e-300


# ---------------------------------------------------------------------- validation
def _as_batch(name: str, value, B: int) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(B, float(arr))
    if arr.shape != (B,):
        raise InvalidInputError(f"{name} must be a scalar or have {B} entries, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InvalidInputError(f"{name} has non-finite values at cases {np.flatnonzero(bad)[:5].tolist()}: "
                                f"{arr[bad][:5].tolist()}")
    return arr


def _positive(name: str, arr: np.ndarray) -> None:
    if (arr <= 0).any():
        b = int(np.flatnonzero(arr <= 0)[0])
        raise InvalidInputError(f"{name} must be > 0; case {b} has {float(arr[b])!r}")


def check_electroneutral(ions: Sequence[str], z: np.ndarray, c: np.ndarray, rtol: float = EN_RTOL) -> None:
    """Raise :class:`ElectroneutralityError` if any feed has |sum z c| > rtol * sum |z| c."""
    imbalance = c @ z
    scale = c @ np.abs(z)
    bad = np.abs(imbalance) > rtol * np.maximum(scale, 1e-300)
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        comp = ", ".join(f"{i}={v:g}" for i, v in zip(ions, c[b]))
        raise ElectroneutralityError(
            f"feed of case {b} is not electroneutral: sum(z c) = {imbalance[b]:+.6g} mol/m3 "
            f"({comp}); fix the composition or pass balance_with='<ion>' to add a counter-ion")


def balance_feed(ions: list[str], z: np.ndarray, c: np.ndarray, counter_ion: str,
                 db: IonDatabase) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Make every feed electroneutral by adding ``counter_ion`` (added to the ion list if absent).

    Raises :class:`ElectroneutralityError` if the counter-ion has the wrong sign
    for some case (its concentration would have to be negative).
    """
    name = db.get(counter_ion).name
    if name not in ions:
        ions = list(ions) + [name]
        z = np.append(z, db.get(name).charge)
        c = np.concatenate([c, np.zeros((c.shape[0], 1))], axis=1)
    j = ions.index(name)
    if z[j] == 0:
        raise ElectroneutralityError(f"balance_with={counter_ion!r} is not charged")
    others = c @ z - c[:, j] * z[j]
    cj = -others / z[j]
    if (cj < 0).any():
        b = int(np.flatnonzero(cj < 0)[0])
        raise ElectroneutralityError(
            f"cannot balance case {b} with {name}: it would need {cj[b]:.6g} mol/m3 (charge excess {others[b]:+.6g})")
    c = c.copy()
    c[:, j] = cj
    return ions, z, c


# ---------------------------------------------------------------------- physics set-up
class _ImageFn:
    """G(mu) and dG/dmu of the image-force integral for each case's dielectric ratio."""

    def __init__(self, eps_ratio: np.ndarray):
        self.eps_ratio = eps_ratio

    def __call__(self, mu):
        from .image_forces import image_integral
        return image_integral(mu, self.eps_ratio)

    def take(self, idx):
        return _ImageFn(self.eps_ratio[idx])


class _ActivityFn:
    """Batched activity coefficients ``c -> (ln gamma, d ln gamma / d c)`` with per-case T.

    One model serves the batch: with a single temperature its parameters are
    scalars, otherwise arrays over the cases (the activity models broadcast them).
    """

    def __init__(self, kind: str, ions: Sequence[str], T: np.ndarray, charges: Sequence[int] | None = None):
        from .activity import make_activity_model
        self.kind, self.ions, self.T = kind, tuple(ions), np.asarray(T, dtype=float)
        self.charges = None if charges is None else [int(q) for q in charges]
        uniform = bool(np.all(self.T == self.T[0]))
        self.model = make_activity_model(kind, list(ions), self.charges, T=float(self.T[0]) if uniform else self.T)

    def __call__(self, c):
        return self.model.ln_gamma_and_jacobian(c)

    def values(self, c):
        """ln gamma only (no Jacobian), for residual-only evaluations."""
        return self.model.ln_gamma(c)

    def values_as_called(self, c):
        """ln gamma exactly as ``self(c)[0]`` returns it (to the last bit), without its Jacobian where the model
        allows: Pitzer's real path computes the same ln gamma with or without the Jacobian; the complex-step models
        (:meth:`.activity.ActivityModelBase.ln_gamma_and_jacobian`, e.g. Davies) return the real part of their
        first probe, which is evaluated here alone (the other ``n - 1`` probes only make the Jacobian).  None for
        other models (call ``self(c)``)."""
        from .activity import ActivityModelBase
        from .pitzer import PitzerActivity
        model = self.model
        if type(model) is PitzerActivity:
            return model.ln_gamma(c)
        if type(model).ln_gamma_and_jacobian is ActivityModelBase.ln_gamma_and_jacobian:
            return model.ln_gamma_complex_step_value(c)
        return None

    def take(self, idx):
        sub = copy.copy(self)   # the model slices its per-case parameters (no rebuild)
        sub.T, sub.model = self.T[idx], self.model.take(idx)
        return sub


def ion_scale(prm: BatchParameters, phi0: np.ndarray, ln_phi: np.ndarray | None = None) -> np.ndarray:
    """Row scale of each ion: its Donnan-steric-dielectric pore concentration at the feed side (mol/m3);
    ``ln_phi`` (B, n): the ln partition coefficients without the Donnan factor (default: steric + Born)."""
    ln_phi = prm.ln_phi_fixed if ln_phi is None else ln_phi
    return np.maximum(prm.c_feed * np.exp(ln_phi - prm.z[None, :] * phi0[:, None]), 1e-300)


def feed_equilibrium(prm: BatchParameters) -> tuple[np.ndarray, np.ndarray]:
    """Zero-flux equilibrium with the feed (:func:`.equilibrium.interface_equilibrium`, image forces
    self-consistent): the Donnan potential (B,) and the ion row scales (B, n) [mol/m3]."""
    phi0, ln_phi, _ = interface_equilibrium(prm, prm.c_feed)
    return phi0, ion_scale(prm, phi0, ln_phi)


def build_parameters(ions: Sequence[str], z: np.ndarray, radius: np.ndarray, d25: np.ndarray,
                     c_feed: np.ndarray, flux: np.ndarray, pore_radius: np.ndarray, thickness: np.ndarray,
                     pore_dielectric: np.ndarray, charge: np.ndarray, T: np.ndarray,
                     options: TransportOptions, pressure: np.ndarray | None = None) -> BatchParameters:
    """Evaluate every property the collocation system needs for a batch (SI units)."""
    B, n = c_feed.shape
    diff = water.diffusivity_at(d25[None, :], T[:, None])
    eps_b = np.full(B, options.bulk_dielectric) if options.bulk_dielectric else water.relative_permittivity(T)
    lam = radius[None, :] / pore_radius[:, None]
    kd, kc = hindrance(lam, options.hindrance)
    ln_st = ln_steric(lam)
    ln_fixed = ln_st + ln_born(z[None, :], radius[None, :], pore_dielectric[:, None], eps_b[:, None], T[:, None])
    prm = BatchParameters(z=z, c_feed=c_feed, flux=flux, thickness=thickness, charge=charge, diff=diff,
                          kd=kd, kc=kc, ln_phi_fixed=ln_fixed, ln_steric=ln_st, excluded=lam >= 1.0,
                          polarization=options.polarization,
                          RT=GAS_CONSTANT * T)
    if options.channel is not None and options.polarization != "none":
        # Sherwood correlation at each case's temperature
        d_ref = water.diffusivity_at(options.reference_diffusivity_m2_s, T)
        k_ref = mass_transfer_coefficient(options.channel, d_ref, T)
        if options.polarization == "film":
            prm.film_thickness = d_ref / k_ref
        else:
            prm.k_ion = mass_transfer_coefficient(options.channel, diff, T[:, None])
            prm.delta_ref = d_ref / k_ref
    elif options.polarization == "film":
        prm.film_thickness = np.full(B, options.film_thickness)
    elif options.polarization == "linear":
        k = options.mass_transfer
        prm.k_ion = k * (diff / options.reference_diffusivity_m2_s) ** (2.0 / 3.0)
        prm.delta_ref = np.full(B, options.reference_diffusivity_m2_s / k)
    if options.activity != "ideal":
        prm.activity = _ActivityFn(options.activity, ions, T, z)
    if options.image_forces:
        eps_m = options.matrix_dielectric
        prm.image = _ImageFn(eps_m / pore_dielectric)
        alpha = (z[None, :] ** 2 * ELEMENTARY_CHARGE**2
                 / (8.0 * np.pi * VACUUM_PERMITTIVITY * pore_dielectric[:, None] * pore_radius[:, None]
                    * BOLTZMANN * T[:, None]))
        prm.image_coef = 2.0 * alpha / np.pi
        eps_scr = pore_dielectric if options.image_screening == "pore" else eps_b
        prm.screening_coef = pore_radius**2 * FARADAY**2 / (VACUUM_PERMITTIVITY * eps_scr * GAS_CONSTANT * T)
        prm.image_screening = options.image_screening
    if pressure is not None:
        prm.pressure = pressure
        prm.hp_coef = 8.0 * water.viscosity(T) * thickness / pore_radius**2
    if options.grid_map_peclet is not None:
        prm.grid_map = grid_map.strength(peclet_max(prm), options.grid_map_peclet)
    return prm


def peclet_max(prm: BatchParameters, present: np.ndarray | None = None) -> np.ndarray:
    """Largest ion Peclet number ``K_c J_v dx_e / (K_d D)`` of each case (B,), sterically excluded ions
    (and, given a (B, n) mask ``present``, absent ones) left out; in pressure mode at the pure-water flux
    ``dP / hp_coef`` (an upper bound)."""
    jv = prm.flux if prm.pressure is None else prm.pressure / prm.hp_coef
    with np.errstate(divide="ignore", invalid="ignore"):   # K_d = 0 for excluded ions (masked below)
        pe = prm.kc * (jv * prm.thickness)[:, None] / (prm.kd * prm.diff)
    if prm.excluded is not None:
        pe = np.where(prm.excluded, 0.0, pe)
    if present is not None:
        pe = np.where(present, pe, 0.0)
    return np.max(pe, axis=1)


# ---------------------------------------------------------------------- the solve
def _solve_chunk(prm: BatchParameters, options: TransportOptions):
    """Solve a chunk on the full grid (:func:`_solve_staged`); a case on a mapped grid that fails is retried on
    the plain Chebyshev grid (the solve without the map), and reported with the grid it converged on."""
    sys_, x, conv, iters, res, reason, steps = _solve_staged(prm, options)
    retry = np.flatnonzero(~conv & (prm.grid_map > 0)) if prm.grid_map is not None else np.zeros(0, int)
    if retry.size:
        sub = prm.take(retry)
        sub.grid_map = np.zeros(retry.size)
        _, x2, conv2, it2, res2, reason2, st2 = _solve_staged(sub, options)
        ok = retry[conv2]
        log.debug("%d of %d failed mapped-grid cases converged on the plain grid", ok.size, retry.size)
        iters[retry] += it2
        steps[retry] += st2
        if ok.size:
            prm.grid_map = prm.grid_map.copy()
            prm.grid_map[ok] = 0.0
            x[ok], conv[ok], res[ok], reason[ok] = x2[conv2], True, res2[conv2], ""
            sys_ = DSPMDESystem(prm, options.nodes, options.film_nodes, sys_.s)
    return sys_, x, conv, iters, res, reason, steps


def _solve_staged(prm: BatchParameters, options: TransportOptions):
    """Solve a chunk on the full grid, started (``options.coarse_grids``) from solutions on coarser grids."""
    phi0, scale = feed_equilibrium(prm)
    start = None
    coarse_its = np.zeros(prm.batch, int)
    coarse_steps = np.zeros(prm.batch, int)
    for nodes, film_nodes in coarse_grids(options):
        # Newton (and flux continuation) on fewer nodes; the interpolant of a converged coarse
        # solution starts Newton on the next finer grid, which then typically needs one iteration.
        # The answer is the full grid's either way (same equations, same convergence test).
        csys, xc, cconv, its, _, _, st = _solve_grid(prm, options, phi0, scale, nodes, film_nodes, start)
        start = (csys, xc, cconv)
        coarse_its += its
        coarse_steps += st
    sys_, x, conv, iters, res, reason, steps = _solve_grid(prm, options, phi0, scale, options.nodes,
                                                            options.film_nodes, start)
    return sys_, x, conv, iters + coarse_its, res, reason, steps + coarse_steps


def coarse_grids(options: TransportOptions) -> list[tuple[int, int]]:
    """(nodes, film_nodes) of the coarse grids that start the solve, coarsest first.

    The layer grid halves from ``options.nodes`` down to no fewer than 6 intervals.  The film keeps
    ``options.film_nodes`` on the first coarse grid and then has as many intervals as the layer (at least 4,
    at most ``film_nodes``): the film profile is smooth (film Peclet number ``J_v / k`` of order one), so the
    answer grid's film already resolves it, and a first-coarse-grid solution whose layer is resolved then
    meets the full grid's convergence test as interpolated, with no Newton step there.  Measured on the 5-ion
    Pitzer + film throughput batch (24 / 16 intervals, B = 1000, compiled kernel): 86 % of the cases need no
    Newton step on the full grid and its factorizations per case drop 0.86 -> 0.16 against halving the film
    with the layer ((6, 4), (12, 8)); kernel time per case -25 %.
    """
    grids: list[tuple[int, int]] = []
    n, nf = options.nodes, options.film_nodes
    for level in range(options.coarse_grids):
        if n // 2 < 6:
            break
        n = n // 2
        grids.insert(0, (n, nf if level == 0 else min(nf, max(n, 4))))
    return grids


def _solve_grid(prm: BatchParameters, options: TransportOptions, phi0, scale, nodes: int, film_nodes: int,
                start=None):
    """Newton from the closed-form guess (or a coarse solution), from the ideal closed-form guess where the one with
    the interface activity coefficients failed, then flux continuation for the failures."""
    B = prm.batch
    sys_ = DSPMDESystem(prm, nodes, film_nodes, scale)
    caps = sys_.step_caps()

    def make_eval(system):
        def ev(xs, idx, jac):
            sub = system._sub(idx)
            return sub.evaluate(xs, jac)
        return ev

    def newton_from(system, x0):
        _attach_subsetting(system)
        return newton(make_eval(system), x0, caps, options.tol, options.max_iter, system.norm_weights(),
                      factorize=system.factorizer(options.bordered_min_unknowns))

    x0 = sys_.initial_guess(phi0, "shp")
    if start is not None:
        csys, xc, cconv = start
        x0[cconv] = sys_.prolong(xc[cconv], csys)
    x, rep = newton_from(sys_, x0)
    conv = rep.converged.copy()
    iters = rep.iterations.copy()
    res = rep.residual.copy()
    reason = rep.reason.copy()
    # cases that fail from the start with the interface activity pass (system.ACTIVITY_PASSES) try the ideal
    # start before the continuation: every case that converged from it before the pass existed still does (on
    # robustness.py --quick sample 790 the continuation from the failed pass found a coarse-grid solution that
    # did not continue to the full grid)
    retry = np.flatnonzero(~conv & (np.ones(B, bool) if start is None else ~start[2]))
    if retry.size and prm.activity is not None and _system.ACTIVITY_PASSES > 0:
        rsys = DSPMDESystem(prm.take(retry), nodes, film_nodes, scale[retry])
        xr, rr = newton_from(rsys, rsys.initial_guess(phi0[retry], "shp", activity_passes=0))
        iters[retry] += rr.iterations
        ok = retry[rr.converged]
        x[ok], conv[ok], res[ok], reason[ok] = xr[rr.converged], True, rr.residual[rr.converged], ""
    steps = np.zeros(B, int)
    # cases that fail: flux continuation; those that still fail: the robust continuation, then the robust
    # continuation from the flux where the zero-flux start holds however small (fallbacks only, so every case
    # that converges without one keeps exactly its old arithmetic)
    for robust, floor, also in ((False, START_FLOOR, ""),
                                (True, START_FLOOR, " (also with log exit unknowns and adaptive row scales)"),
                                (True, DEEP_START_FLOOR, " (also with log exit unknowns and adaptive row scales, "
                                                         "from the flux where the zero-flux start holds)")):
        bad = np.flatnonzero(~conv)
        if not bad.size:
            break
        reason[bad] = "no convergence with adaptive flux continuation from the zero-flux solution" + also
        if floor < START_FLOOR:   # where the floor did not bind, the robust pass already started there: not again
            bad = bad[_start_fraction(prm.take(bad), scale[bad], floor) < START_FLOOR]
            if not bad.size:
                break
        xs, ok, it_sum, n_steps, res_c = _continuation(prm.take(bad), scale[bad], phi0[bad], caps, options,
                                                       nodes, film_nodes, robust=robust, floor=floor)
        x[bad[ok]] = xs[ok]
        conv[bad[ok]] = True
        iters[bad] += it_sum
        res[bad[ok]] = res_c[ok]
        reason[bad[ok]] = ""
        steps[bad] += n_steps
    return sys_, x, conv, iters, res, reason, steps


def _continuation(prm: BatchParameters, scale: np.ndarray, phi0: np.ndarray, caps: np.ndarray,
                  options: TransportOptions, nodes: int, film_nodes: int, start: float = 1e-4,
                  max_steps: int = 200, robust: bool = False, floor: float = START_FLOOR):
    """Adaptive continuation in ln(flux) (or ln(pressure)) from the exact zero-flux solution.

    Every case advances its own fraction ``f`` of the target drive from ``start``
    to 1; a converged step grows the next increment by 1.5, a failed one halves it
    and retries from the last converged point.  Returns (x, ok, iterations, steps, residual): the
    scaled residual max norm of the final (full-drive) Newton solve, in that solve's row scaling.

    ``robust`` (the fallback for cases that fail without it) changes how the same equations are
    solved, not the equations: the permeate-end pore concentrations are logarithmic unknowns
    (:mod:`.log_unknowns`), and every step scales the rows of each ion by the larger of its
    feed-Donnan estimate and its largest pore concentration at the last converged point (at
    high flux the polarized wall weakens the Donnan exclusion, and a co-ion's pore
    concentration can exceed the feed estimate by 1e8, which put the rows' round-off floor
    above the Newton tolerance).

    The first step is at the fraction ``f0 = 0.05 / max_i(q_i c_b,i / c_pore,i)`` of the drive, where the zero-flux
    start is close, clipped to ``[floor, start]``.  ``START_FLOOR`` (1e-14) bounds the steps of the ordinary
    passes; the last fallback (``DEEP_START_FLOOR``) starts where the zero-flux start holds, however small: with
    image forces a divalent co-ion can enter the pore at 1e-24 to 1e-41 of its feed, which moves that flux down
    to 1e-26 to 1e-39 of the target, and from 1e-14 not even the first step converged.
    """
    B = prm.batch
    target_flux = prm.flux.copy()
    target_p = None if prm.pressure is None else prm.pressure.copy()
    f0 = _start_fraction(prm, scale, floor, start)
    lnf = np.log(f0)
    dln = -lnf / 6.0
    work = prm.take(np.arange(B))
    work.flux = target_flux * f0
    if target_p is not None:
        work.pressure = target_p * f0
    system = DSPMDESystem(work, nodes, film_nodes, scale)
    x = system.initial_guess(phi0, "equilibrium")
    mask = log_unknowns.exit_mask(system) if robust else None
    if robust:
        x = log_unknowns.to_log(x, mask)
        caps = caps.copy()
        caps[mask.any(axis=0)] = LOG_STEP_CAP
    ok = np.zeros(B, bool)
    failed = np.zeros(B, bool)
    its = np.zeros(B, int)
    steps = np.zeros(B, int)
    res = np.full(B, np.inf)
    first = True
    for _ in range(max_steps):
        act = np.flatnonzero(~ok & ~failed)
        if act.size == 0:
            break
        trial = np.minimum(lnf[act] + (0.0 if first else dln[act]), 0.0)
        sub = work.take(act)
        sub.flux = target_flux[act] * np.exp(trial)
        if target_p is not None:
            sub.pressure = target_p[act] * np.exp(trial)
        sc = scale[act]
        if robust:
            c_last = system.unpack(log_unknowns.from_log(x[act], mask[act]))["c"]
            sc = np.maximum(sc, c_last.max(axis=2))
        ssys = DSPMDESystem(sub, nodes, film_nodes, sc)
        _attach_subsetting(ssys)
        ev = lambda xs, idx, jac: ssys._sub(idx).evaluate(xs, jac)
        wts = ssys.norm_weights()
        if robust:
            ev = log_unknowns.wrap(ev, mask[act])
            wts[mask[act]] = 1.0
        xn, rep = newton(ev, x[act], caps, options.tol, min(25, options.max_iter), wts,
                         factorize=ssys.factorizer(options.bordered_min_unknowns))
        its[act] += rep.iterations
        steps[act] += 1
        good = rep.converged
        x[act[good]] = xn[good]
        lnf[act[good]] = trial[good]
        dln[act[good]] *= 1.5
        dln[act[~good]] *= 0.5
        failed[act[~good & (dln[act] < 1e-3)]] = True
        final = good & (trial >= 0.0)
        ok[act[final]] = True
        res[act[final]] = rep.residual[final]
        first = False
    if robust:
        x = log_unknowns.from_log(x, mask)
    return x, ok, its, steps, res


def _start_fraction(prm: BatchParameters, scale: np.ndarray, floor: float, start: float = 1e-4) -> np.ndarray:
    """The flux continuation's first fraction of the drive (B,): ``0.05 / max_i(q_i c_b,i / c_pore,i)``, clipped to
    ``[floor, start]``.  The zero-flux (equilibrium) solution is close only while convection cannot outrun the
    exclusion-limited diffusion, ``q_i c_b,i / c_pore,i << 1`` for every ion (``q_i = J_v L / (K_d D_i)``, the pore
    concentration estimated by the row scale ``scale`` [mol/m3]; sterically excluded ions do not count)."""
    q = (prm.flux * prm.thickness)[:, None] / (prm.kd * prm.diff)
    r_ion = q * prm.c_feed / scale
    if prm.excluded is not None:
        r_ion = np.where(prm.excluded, 0.0, r_ion)
    return np.clip(0.05 / np.maximum(np.max(r_ion, axis=1), 1e-300), floor, start)


def _attach_subsetting(system: DSPMDESystem) -> None:
    """Give a system a cached ``_sub(idx)`` that returns the system of a subset of its cases."""
    cache = {}

    def _sub(idx):
        key = (idx.size, int(idx[0]) if idx.size else -1, int(idx[-1]) if idx.size else -1, hash(idx.tobytes()))
        if key not in cache:
            if idx.size == system.prm.batch and np.array_equal(idx, np.arange(idx.size)):
                cache[key] = system
            else:
                cache.clear()
                cache[key] = DSPMDESystem(system.prm.take(idx), system.N, system.Nf, system.s[idx])
        return cache[key]

    system._sub = _sub


def _solve_and_collect(prm: BatchParameters, options: TransportOptions, names: Sequence[str],
                       threads: int = 1) -> BatchResult:
    """Solve a chunk (:func:`_solve_chunk`), collect its results and refine the under-resolved cases.

    With ``options.compiled`` the cases the compiled kernel covers (:mod:`.compiled`) are solved by it
    (on ``threads`` numba threads), the others and its failures by the engine; both answers go through
    the same collection and resolution check/refinement (:func:`_refine`)."""
    fast = compiled.kernel_cases(options, prm)
    if not fast.any():
        out = _solve_chunk(prm, options)
        return _refine(_collect(*out, names, options), out[0], out[1], options, names)
    return _solve_with_kernel(prm, fast, options, names, threads)


def _solve_with_kernel(prm: BatchParameters, fast: np.ndarray, options: TransportOptions, names: Sequence[str],
                       threads: int) -> BatchResult:
    """The cases ``fast`` (B,) by the compiled kernel (:func:`.compiled.solve_cases`: the engine's starting
    guess, coarse grids and flux continuation), its failures and the other cases by the engine; every answer
    is collected and resolution-checked/refined as the engine's, and ``solver_path`` says who solved it."""
    idx = np.flatnonzero(fast)
    sub = prm if idx.size == prm.batch else prm.take(idx)   # every case eligible: no copy (same values)
    phi0, scale = feed_equilibrium(sub)
    both = coarse_grids(options) + [(options.nodes, options.film_nodes)]
    grids = [g for g, _ in both]
    film = options.polarization == "film"
    film_grids = [f for _, f in both] if film else None
    budget = min(options.max_iter, compiled.KERNEL_MAX_ITER)   # x0=None: the kernel builds the "shp" start
    x, status, its, res, steps = compiled.solve_cases(sub, scale, phi0, None, grids, options.tol, budget, threads,
                                                      film_grids)
    retry = np.flatnonzero(status == compiled.FAILED_COARSE)
    if retry.size:   # as the engine: a coarse failure starts the full grid from its closed-form guess
        rs = sub.take(retry)
        x[retry], status[retry], its2, res[retry], st2 = compiled.solve_cases(
            rs, scale[retry], phi0[retry], None, [options.nodes], options.tol, budget, threads,
            [options.film_nodes] if film else None)
        its[retry] += its2
        steps[retry] += st2
    ok = status == compiled.OK
    parts, order = [], []
    if ok.any():
        good = np.flatnonzero(ok)
        every = good.size == sub.batch
        ksys = DSPMDESystem(sub if every else sub.take(good), options.nodes, options.film_nodes, scale[good])
        k = good.size
        xg = x if every else x[good]
        part = _collect(ksys, xg, np.ones(k, bool), its[good], res[good], np.full(k, "", dtype=object),
                        steps[good], names, options)
        part.solver_path[:] = "compiled"
        part = _refine(part, ksys, xg, options, names, grid_solver=_solve_grid_kernel,
                       equilibrium=(phi0[good], scale[good]))
        part.solver_path[part.nodes_used > options.nodes] = "compiled+refined"
        parts.append(part)
        order.append(idx[good])
    rest = np.sort(np.concatenate([np.flatnonzero(~fast), idx[~ok]]))
    if rest.size:
        esub = prm.take(rest)
        out = _solve_chunk(esub, options)
        part = _refine(_collect(*out, names, options), out[0], out[1], options, names)
        part.solver_path[np.isin(rest, idx)] = "compiled->engine"
        parts.append(part)
        order.append(rest)
    log.debug("compiled kernel: %d of %d cases, %d re-solved by the engine", int(ok.sum()), prm.batch,
              int((~ok).sum()))
    if len(parts) == 1:   # one path solved the chunk: its cases are already in order
        return parts[0]
    merged = BatchResult.concat(parts)
    return merged.take(np.argsort(np.concatenate(order)))


def _solve_grid_kernel(prm: BatchParameters, options: TransportOptions, phi0, scale, nodes: int, film_nodes: int,
                       start):
    """:func:`_solve_grid` from a coarser solution (``start``) for cases the compiled kernel covers: the kernel
    from the interpolant of the coarser grid's solution (its Newton, then its flux continuation), the engine's
    ``_solve_grid`` for the cases it does not converge.  Same returns as ``_solve_grid``."""
    csys, xc, cconv = start
    film = options.polarization == "film"
    budget = min(options.max_iter, compiled.KERNEL_MAX_ITER)
    x, status, iters, res, steps = compiled.solve_cases(prm, scale, phi0, xc, [csys.N, nodes], options.tol, budget,
                                                        1, [csys.Nf, film_nodes] if film else None)
    conv = (status == compiled.OK) & cconv
    reason = np.full(prm.batch, "", dtype=object)
    bad = np.flatnonzero(~conv)
    if bad.size:
        sub = prm.take(bad)
        _, xb, conv[bad], iters[bad], res[bad], reason[bad], steps[bad] = _solve_grid(
            sub, options, phi0[bad], scale[bad], nodes, film_nodes, start=(csys, xc[bad], cconv[bad]))
        x[bad] = xb
    return DSPMDESystem(prm, nodes, film_nodes, scale), x, conv, iters, res, reason, steps


def _refine(result: BatchResult, sys_: DSPMDESystem, x: np.ndarray, options: TransportOptions,
            names: Sequence[str], grid_solver=None, equilibrium=None) -> BatchResult:
    """Re-solve converged cases whose resolution estimate exceeds ``options.resolution_tol`` on grids
    with twice the intervals (layer and film), each started from the interpolant of the last one,
    until the estimate holds or ``options.max_nodes`` is reached.

    A posteriori p-refinement: the estimate is the Chebyshev tail of the profiles
    (:meth:`DSPMDESystem.resolution`).  The answer of a refined case is its finest converged grid's
    (rejections, fluxes, partitioning and the flux split are computed there); its profiles and
    ``solution`` are sampled at the base grid's nodes, which are every 2^k-th node of the fine grid.
    A refinement that fails to converge keeps the coarser answer, flagged by ``resolution_error``
    (:attr:`BatchResult.unresolved`).  Cases that are resolved never reach this code path's solves.
    ``grid_solver``: the solve on each refined grid, :func:`_solve_grid` (default) or, for cases the compiled
    kernel solved, :func:`_solve_grid_kernel`.  ``equilibrium``: ``(phi0, scale)`` of :func:`feed_equilibrium`
    for the cases of ``sys_`` if the caller has them (else computed for the cases refined; per case, the same
    values).  The refined cases are written into ``result`` in place (:meth:`BatchResult.put`).
    """
    grid_solver = _solve_grid if grid_solver is None else grid_solver
    est = np.where(result.converged, sys_.resolution(x), np.nan)
    result.resolution_error = est
    result.nodes_used = np.full(len(result), sys_.N)
    tol = options.resolution_tol
    if tol is None:
        return result
    todo = np.flatnonzero(result.converged & (est > tol))
    cur_x = x[todo]                       # solutions of the cases ``todo`` on the grid (N, Nf)
    N, Nf = sys_.N, sys_.Nf
    done: list[tuple[np.ndarray, BatchResult]] = []   # (cases, their answers) per grid; a finer grid's win
    while todo.size and 2 * N <= max(options.max_nodes, options.nodes) and 2 * Nf <= 256:
        N2, Nf2 = 2 * N, 2 * Nf
        sub = sys_.prm.take(todo)
        # only its layout is used (prolongation): on the base grid, that of sys_
        coarse = sys_ if (N, Nf) == (sys_.N, sys_.Nf) else DSPMDESystem(sub, N, Nf)
        phi0, sub_scale = feed_equilibrium(sub) if equilibrium is None else (equilibrium[0][todo],
                                                                               equilibrium[1][todo])
        fsys, xf, conv, its, res, reason, steps = grid_solver(sub, options, phi0, sub_scale, N2, Nf2,
                                                              start=(coarse, cur_x, np.ones(todo.size, bool)))
        log.debug("refined %d cases to %d layer intervals: %d converged", todo.size, N2, int(conv.sum()))
        ok = np.flatnonzero(conv)
        if not ok.size:
            break
        est2 = fsys.resolution(xf)[ok]
        part = _sample_at_base(_collect(fsys, xf, conv, its, res, reason, steps, names, options).take(ok),
                               sys_, fsys, xf[ok])
        part.iterations = part.iterations + result.iterations[todo[ok]]
        part.continuation_steps = part.continuation_steps + result.continuation_steps[todo[ok]]
        part.nodes_used = np.full(ok.size, N2)
        part.resolution_error = est2
        done.append((todo[ok], part))
        more = est2 > tol
        N, Nf, cur_x, todo = N2, Nf2, xf[ok][more], todo[ok][more]
    for idx, part in done:   # after the loop: the sums above use the unrefined iteration counts
        result.put(idx, part)
    return result


def _sample_at_base(part: BatchResult, base: DSPMDESystem, fine: DSPMDESystem, xf: np.ndarray) -> BatchResult:
    """A fine-grid result with its profiles and solution vectors ``xf`` sampled at the base grid's nodes
    (every k-th fine node: exact, no interpolation)."""
    k = fine.N // base.N
    part.c_layer = part.c_layer[:, :, ::k]
    part.phi_layer = part.phi_layer[:, ::k]
    part.x_layer = part.x_layer[:, ::k]
    part.x = chebyshev.nodes(base.N)
    if part.c_film is not None:
        kf = fine.Nf // base.Nf
        part.c_film = part.c_film[:, :, ::kf]
        part.phi_film = part.phi_film[:, ::kf]
        part.y_film = chebyshev.nodes(base.Nf)
    part.solution = base.restrict(xf, fine)
    return part


def _interface_ln_gamma(sys_: DSPMDESystem, points: Sequence[np.ndarray]) -> list[np.ndarray]:
    """ln gamma (B, n) of the solutions ``points`` (each (B, n) mol/m3) as :meth:`DSPMDESystem._activity` returns
    it (zeros for ideal activity): one evaluation of the stacked points, without the Jacobian where the activity
    function can give the same values without it (:meth:`_ActivityFn.values_as_called`)."""
    act = sys_.prm.activity
    lg = None
    if act is not None and hasattr(act, "values_as_called"):
        lg = act.values_as_called(np.maximum(np.stack(points), 1e-300))
    return [sys_._activity(p)[0] for p in points] if lg is None else list(lg)


def _collect(sys_: DSPMDESystem, x, conv, iters, res, reason, steps, ions, options) -> BatchResult:
    prm = sys_.prm
    s = sys_.unpack(x)
    z = prm.z
    c = s["c"]
    cp = np.exp(s["v"])
    cw, pw = sys_.wall(s)
    jv = s["jv"] if prm.pressure is not None else prm.flux
    B, n, M = c.shape
    L = prm.thickness
    RT_F = prm.RT / FARADAY
    part_f, part_p = {}, {}
    ln_st = prm.ln_steric
    c0, cN = c[:, :, 0], c[:, :, -1]
    lg_w, lg_0, lg_N, lg_p = _interface_ln_gamma(sys_, (cw, c0, cN, cp))
    steric = np.exp(ln_st)
    born = np.exp(prm.ln_phi_fixed - ln_st)
    for side, dct, cf_, cpore, dphi, lg_b, lg_pore in (
            ("feed", part_f, cw, c0, s["p"][:, 0] - pw, lg_w, lg_0),
            ("perm", part_p, cp, cN, s["p"][:, -1] - s["pp"], lg_p, lg_N)):
        dct["steric"] = steric if side == "feed" else steric.copy()
        dct["born"] = born if side == "feed" else born.copy()
        if prm.image is not None:
            mu = np.exp(s["mu"][:, 0 if side == "feed" else 1])
            dct["image"] = np.exp(-prm.image_coef * prm.image(mu)[0][:, None])
        else:
            dct["image"] = np.ones((B, n))
        dct["donnan"] = np.exp(-z[None, :] * dphi[:, None])
        dct["activity"] = np.exp(lg_b - lg_pore)
        dct["total"] = cpore / cf_
    # flux split, layer-averaged with Clenshaw-Curtis weights (in-place products: the same arithmetic, in the same
    # order, as  -K_d D dc/dx,  K_c c J_v  and  -K_d D z c dphi/dx)
    Dm = sys_.D
    dxdxi = sys_.dxdxi   # (B, M) of the node map (ones without it)
    dcdx = np.einsum("km,bim->bik", Dm, c)
    dcdx /= L[:, None, None] * dxdxi[:, None, :]
    dpdx = (s["p"] @ Dm.T) / (L[:, None] * dxdxi)
    kdd = -prm.kd * prm.diff
    dif = np.multiply(kdd[:, :, None], dcdx, out=dcdx)
    mig = (kdd * z[None, :])[:, :, None] * c
    mig *= dpdx[:, None, :]
    con = prm.kc[:, :, None] * c
    con *= jv[:, None, None]
    w = chebyshev.cc_weights(sys_.N)
    split = np.stack([dif @ w, con @ w, mig @ w], axis=-1)
    if sys_.ginv is not None:   # mapped cases: the average over x is the integral over xi with the weight g'(xi)
        m = prm.grid_map > 0
        wg = (w[None, :] * dxdxi[m])[:, None, :]
        split[m] = np.stack([(dif[m] * wg).sum(-1), (con[m] * wg).sum(-1), (mig[m] * wg).sum(-1)], axis=-1)
    out = BatchResult(
        ions=tuple(ions), charges=z, flux_m_s=np.asarray(jv, float).copy(), converged=conv, iterations=iters,
        residual=res, reason=reason, c_feed=prm.c_feed, c_wall=cw.copy(), c_perm=cp, ion_flux=jv[:, None] * cp,
        partition_feed=part_f, partition_perm=part_p, donnan_feed_V=(s["p"][:, 0] - pw) * RT_F,
        donnan_perm_V=(s["p"][:, -1] - s["pp"]) * RT_F, flux_split=split, x=chebyshev.nodes(sys_.N),
        thickness_m=L, c_layer=c, phi_layer=s["p"], continuation_steps=steps, solution=x,
        x_layer=sys_.x_nodes.copy(), meta={"options": options}, solver_path=np.full(B, "engine", dtype=object))
    if prm.polarization == "film":
        out.y_film = chebyshev.nodes(sys_.Nf)
        out.c_film = s["cf"]
        out.phi_film = s["pf"]
    return out


def feed_matrix(c_feed, names: Sequence[str]) -> np.ndarray:
    """Feed concentrations as a checked (B, n) float array [mol/m3], one column per ion of ``names``.

    Raises:
        InvalidInputError: wrong column count, non-finite or negative values (naming ion, value and case).
    """
    c = np.atleast_2d(np.asarray(c_feed, dtype=float))
    if c.shape[1] != len(names):
        raise InvalidInputError(f"c_feed has {c.shape[1]} columns for {len(names)} ions {list(names)}")
    if not np.isfinite(c).all():
        raise InvalidInputError(f"c_feed has non-finite values: {c[~np.isfinite(c)][:5].tolist()}")
    if (c < 0).any():
        b, i = np.argwhere(c < 0)[0]
        raise InvalidInputError(f"negative feed concentration {names[i]}={float(c[b, i])!r} mol/m3 in case {b}")
    return c


def solve_batch(ions: Sequence[str], c_feed, *, flux_m_s=None, pressure_pa=None, pore_radius_m,
                thickness_m, pore_dielectric, charge_density_mol_m3, temperature_K=298.15,
                options: TransportOptions = TransportOptions(), ion_db: IonDatabase | None = None,
                balance_with: str | None = None, strict: bool = False, chunk_size: int = 4096,
                workers: int = 1) -> BatchResult:
    """Solve DSPM-DE for ``B`` cases at once.

    Parameters (SI; scalars broadcast to all cases)
    ----------
    ions: ion or neutral-solute names (any common spelling; canonicalized).
    c_feed: (B, n) or (n,) bulk feed concentrations, mol/m3.
    flux_m_s: water flux J_v [m/s] per case; or ``pressure_pa``: applied
        transmembrane pressure [Pa], the flux then follows from Hagen-Poiseuille
        with the osmotic pressure difference (van 't Hoff) across the layer.
    pore_radius_m, thickness_m (effective, dx/A_k), pore_dielectric [-],
    charge_density_mol_m3 (X, signed), temperature_K.
    balance_with: name of an ion added/adjusted to make every feed electroneutral.
    strict: raise :class:`ConvergenceError` if any case fails (else flag it).
    chunk_size, workers: cases are solved in chunks, ``workers`` threads at a time.
    """
    db = ion_db or IonDatabase.default()
    records, names = {}, []   # one database look-up per ion (name canonicalization is not free)
    for i in ions:
        rec = db.get(i)
        names.append(rec.name)
        records.setdefault(rec.name, rec)
    if len(records) != len(names):
        raise InvalidInputError(f"duplicate ions in {list(ions)} (canonical {names})")
    c = feed_matrix(c_feed, names)
    z = np.array([records[i].charge for i in names], dtype=float)
    if balance_with is not None:
        names, z, c = balance_feed(names, z, c, balance_with, db)
        for i in names:
            if i not in records:
                records[i] = db.get(i)
    check_electroneutral(names, z, c)
    if (flux_m_s is None) == (pressure_pa is None):
        raise InvalidInputError("give exactly one of flux_m_s and pressure_pa")
    drive = flux_m_s if flux_m_s is not None else pressure_pa
    B = max(c.shape[0], np.size(drive), np.size(pore_radius_m), np.size(thickness_m), np.size(pore_dielectric),
            np.size(charge_density_mol_m3), np.size(temperature_K))
    if c.shape[0] == 1 and B > 1:
        c = np.repeat(c, B, axis=0)
    if c.shape[0] != B:
        raise InvalidInputError(f"c_feed has {c.shape[0]} rows but the batch has {B} cases")
    rp = _as_batch("pore_radius_m", pore_radius_m, B)
    L = _as_batch("thickness_m", thickness_m, B)
    eps = _as_batch("pore_dielectric", pore_dielectric, B)
    X = _as_batch("charge_density_mol_m3", charge_density_mol_m3, B)
    T = _as_batch("temperature_K", temperature_K, B)
    for nm, arr in (("pore_radius_m", rp), ("thickness_m", L), ("pore_dielectric", eps), ("temperature_K", T)):
        _positive(nm, arr)
    if ((T < 273.15) | (T > 373.15)).any():
        b = int(np.flatnonzero((T < 273.15) | (T > 373.15))[0])
        raise InvalidInputError(f"temperature_K={float(T[b])!r} (case {b}) outside liquid water 273.15-373.15 K")
    if pressure_pa is not None:
        P = _as_batch("pressure_pa", pressure_pa, B)
        _positive("pressure_pa", P)
        flux0 = rp**2 * P / (8.0 * water.viscosity(T) * L)
    else:
        P = None
        flux0 = _as_batch("flux_m_s", flux_m_s, B)
        _positive("flux_m_s", flux0)
    # absent ions (c = 0) are carried at a negligible concentration and reported as NaN
    absent = c <= 0
    cmin = 1e-12 * np.maximum(c.sum(axis=1, keepdims=True), 1e-300)
    c_eff = np.where(absent, cmin, c)
    if absent.any():
        c_eff = _rebalance_trace(c_eff, z, absent)
    radius = np.array([records[i].stokes_radius_m for i in names])
    d25 = np.array([records[i].diffusivity_m2_s for i in names])
    if (z == 0).all() and (X != 0).any():
        raise InvalidInputError(f"charged membrane (X={X[X != 0][0]!r} mol/m3) with only neutral solutes {names}: "
                                "the pore cannot be electroneutral")

    # a case where no present cation (or no present anion) fits into the pores cannot pass salt:
    # the pore problem has no electroneutral solution and the permeate is pure water for every
    # charged species (neutral solutes follow the closed-form steric hindered-pore model)
    present = c > 0
    fits = present & (radius[None, :] < rp[:, None])
    blocked = (np.any(present & (z > 0), axis=1) & ~np.any(fits & (z > 0), axis=1)) | \
              (np.any(present & (z < 0), axis=1) & ~np.any(fits & (z < 0), axis=1))
    solve_idx = np.flatnonzero(~blocked)

    def run(idx):
        prm = build_parameters(names, z, radius, d25, c_eff[idx], flux0[idx], rp[idx], L[idx], eps[idx], X[idx],
                               T[idx], options, None if P is None else P[idx])
        return _solve_and_collect(prm, options, names, threads)

    chunks = [solve_idx[i:i + chunk_size] for i in range(0, solve_idx.size, chunk_size)]
    threads = workers if len(chunks) == 1 else 1   # the compiled kernel's numba threads per chunk
    with single_thread_torch():
        if workers > 1 and len(chunks) > 1:
            with ThreadPoolExecutor(workers) as ex:
                parts = list(ex.map(run, chunks))
        else:
            parts = [run(ch) for ch in chunks]
    if blocked.any():
        parts.append(_pure_water_permeate(np.flatnonzero(blocked), names, z, radius, d25, c, flux0, rp, L, T, P,
                                          options))
        result = BatchResult.concat(parts)
        order = np.argsort(np.concatenate([solve_idx, np.flatnonzero(blocked)]))
        result = result.take(order)
    else:
        result = BatchResult.concat(parts)
    retry = np.flatnonzero(~result.converged & absent.any(axis=1))
    if retry.size:
        with single_thread_torch():
            result = _retry_present_ions(result, retry, absent, names, z, radius, d25, c, flux0, rp, L, eps, X, T,
                                         P, options)
    result.c_feed = c
    if absent.any():
        for arr in (result.c_perm, result.c_wall):
            arr[absent] = np.nan
    excluded = (radius[None, :] >= rp[:, None]) & ~absent    # an absent ion stays NaN, excluded or not
    if excluded.any():
        result.c_perm[excluded] = 0.0
        result.ion_flux[excluded] = 0.0
    if strict and not result.converged.all():
        b = int(np.flatnonzero(~result.converged)[0])
        raise ConvergenceError(
            f"case {b} did not converge ({result.reason[b]}): J_v={flux0[b]:.4g} m/s, r_p={rp[b]:.4g} m, "
            f"dx_e={L[b]:.4g} m, eps_p={eps[b]:.4g}, X={X[b]:.4g} mol/m3, T={T[b]:.4g} K, "
            f"feed={dict(zip(names, c[b].round(6).tolist()))} mol/m3")
    return result


def _retry_present_ions(result: BatchResult, retry, absent, names, z, radius, d25, c, flux, rp, L, eps, X, T, P,
                        options: TransportOptions) -> BatchResult:
    """Fallback for failed cases with absent ions (c = 0): solve them with their present ions only.

    Absent ions are normally carried at a trace level (1e-12 of the feed) so that one system serves
    the batch; a trace co-ion at high flux has pore concentrations spanning 1e-30 and more, whose
    rows the Newton method cannot resolve.  Dropping them changes the other ions' answers by
    ~1e-12, far below any other error; the dropped ions are reported NaN (as always) and the
    case's ``solution`` row is NaN (its unknowns belong to the shorter ion list: solve such a case
    with its present ions to initialize the Pyomo twin from it).
    """
    m = result.solution.shape[1] if result.solution is not None else 0
    done_idx, parts = [], []
    for pat in np.unique(absent[retry], axis=0):
        grp = retry[(absent[retry] == pat).all(axis=1)]
        keep = np.flatnonzero(~pat)
        if not np.any(z[keep] != 0):
            continue
        sub_names = [names[k] for k in keep]
        prm = build_parameters(sub_names, z[keep], radius[keep], d25[keep], c[np.ix_(grp, keep)], flux[grp], rp[grp],
                               L[grp], eps[grp], X[grp], T[grp], options, None if P is None else P[grp])
        out = _solve_and_collect(prm, options, sub_names)
        ok = np.flatnonzero(out.converged)
        log.debug("%d of %d failed cases converged with their %d present ions only", ok.size, grp.size, keep.size)
        if ok.size:
            wide = out.take(ok).with_ions(tuple(names), z, keep, m)
            wide.iterations = wide.iterations + result.iterations[grp[ok]]
            parts.append(wide)
            done_idx.append(grp[ok])
    if not parts:
        return result
    done_idx = np.concatenate(done_idx)
    rest = np.setdiff1d(np.arange(len(result)), done_idx)
    merged = BatchResult.concat([result.take(rest)] + parts)
    return merged.take(np.argsort(np.concatenate([rest, done_idx])))


def _rebalance_trace(c, z, absent):
    """Keep the feed exactly electroneutral after giving absent ions a trace concentration."""
    imbalance = c @ z
    for b in np.flatnonzero(np.abs(imbalance) > 0):
        present = ~absent[b] & (z != 0)
        j = np.flatnonzero(present & (np.sign(z) == -np.sign(imbalance[b])))
        if j.size:
            c[b, j[0]] += -imbalance[b] / z[j[0]]
    return c


def _pure_water_permeate(idx, names, z, radius, d25, c, flux, rp, L, T, P, options) -> BatchResult:
    """Cases in which salt cannot pass: charged permeate 0, neutral solutes by eq. D.8 (no polarization)."""
    from .shp import shp_rejection

    n, k, M = len(names), idx.size, options.nodes + 1
    cf = c[idx]
    jv = flux[idx].copy()
    if P is not None:  # Hagen-Poiseuille with the full osmotic pressure of the rejected salt
        jv = rp[idx] ** 2 * (P[idx] - GAS_CONSTANT * T[idx] * cf[:, z != 0].sum(1)) / (
            8.0 * water.viscosity(T[idx]) * L[idx])
        jv = np.maximum(jv, 0.0)
    cp = np.zeros((k, n))
    for i in np.flatnonzero(z == 0):
        rej = shp_rejection(radius[i], water.diffusivity_at(d25[i], T[idx]), rp[idx], L[idx], np.maximum(jv, 1e-300),
                            options.hindrance)
        cp[:, i] = cf[:, i] * (1.0 - rej)
    nan = np.full((k, n), np.nan)
    part = {key: nan.copy() for key in ("steric", "born", "image", "donnan", "activity", "total")}
    return BatchResult(
        ions=tuple(names), charges=z, flux_m_s=jv, converged=np.ones(k, bool), iterations=np.zeros(k, int),
        residual=np.zeros(k), reason=np.full(k, "pure-water permeate: no cation/anion pair fits into the pores",
                                              dtype=object),
        c_feed=cf, c_wall=cf.copy(), c_perm=cp, ion_flux=jv[:, None] * cp, partition_feed=part,
        partition_perm={key: v.copy() for key, v in part.items()}, donnan_feed_V=np.full(k, np.nan),
        donnan_perm_V=np.full(k, np.nan), flux_split=np.full((k, n, 3), np.nan), x=chebyshev.nodes(options.nodes),
        thickness_m=L[idx], c_layer=np.full((k, n, M), np.nan), phi_layer=np.full((k, M), np.nan),
        y_film=chebyshev.nodes(options.film_nodes) if options.polarization == "film" else None,
        c_film=np.full((k, n, options.film_nodes + 1), np.nan) if options.polarization == "film" else None,
        phi_film=np.full((k, options.film_nodes + 1), np.nan) if options.polarization == "film" else None,
        continuation_steps=np.zeros(k, int), solution=None,
        x_layer=np.tile(chebyshev.nodes(options.nodes), (k, 1)), nodes_used=np.full(k, options.nodes),
        resolution_error=np.zeros(k), meta={"options": options},
        solver_path=np.full(k, "closed form", dtype=object))


def solve(membrane, feed_mol_m3: dict, *, flux_m_s=None, pressure_pa=None, temperature_K: float = 298.15,
          options: TransportOptions = TransportOptions(), ion_db: IonDatabase | None = None,
          balance_with: str | None = None, strict: bool = True) -> BatchResult:
    """Solve one membrane and feed at one or several fluxes (or pressures).

    ``feed_mol_m3`` maps ion names (any common spelling) to bulk concentrations
    [mol/m3]; ``membrane`` is a :class:`~nanosep.transport.membrane.Membrane`.
    Returns a :class:`BatchResult` with one case per flux; ``result.case(0)`` gives
    dictionaries keyed by ion.  With ``strict`` (default) a non-converged case
    raises :class:`ConvergenceError`.
    """
    ions = list(feed_mol_m3)
    c = np.array([feed_mol_m3[i] for i in ions], dtype=float)
    drive = np.atleast_1d(np.asarray(flux_m_s if flux_m_s is not None else pressure_pa, dtype=float))
    kw = {"flux_m_s": drive} if flux_m_s is not None else {"pressure_pa": drive}
    return solve_batch(ions, np.repeat(c[None, :], drive.size, axis=0), **kw, **membrane.as_kwargs(),
                       temperature_K=temperature_K, options=options, ion_db=ion_db,
                       balance_with=balance_with, strict=strict)
