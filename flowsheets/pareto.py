"""Epsilon-constraint Pareto fronts: annual operating cost vs product concentration (seed 002 sec. 2.6).

Seed 002 solves ``min C_operation s.t. c_product,limit-ion <= epsilon`` for a sequence of epsilons.
:func:`run_pareto` does this in four steps, writing everything to ``out_dir`` as it goes:

1. **anchors** (``anchors/cost.json``, ``anchors/purity.json``): the cheapest plant without a limit
   (its product concentration is the loosest useful epsilon) and the purest plant, found by minimizing
   the product concentration (local multi-start, :func:`.multistart.solve_multistart` with
   ``objective="purity"``; also for the global point solver, whose interface has no purity objective);
2. **grid**: ``n_points`` epsilons from ``c_min (1 + EPS_MARGIN)`` to the cost anchor's concentration,
   log-spaced (default) or linear; a case may fix either end (an epsilon below ``c_min`` gives a
   failed point with an infeasibility report naming the bounds that bind at the purest design);
   with the local solver every point also starts from the purest design (feasible for every epsilon
   >= c_min), besides its Sobol starts;
3. **points**, solved in parallel on dask (``scheduler``: ``"sync"`` in process, ``None``/``"local"``
   a LocalCluster, ``"tcp://..."`` a running scheduler, or a ``distributed.Client``; the client
   handling of :func:`nanosep.transport.parallel.client_for`).  Each point is one task
   (:func:`point_task`) that never raises: a failure becomes a :class:`DesignPoint` with
   ``feasible=False`` and the message.  Every point is written to ``points/point-NNN.json``
   (tmp file + rename) as soon as it is back, so a rerun skips finished points and Ctrl-C loses only
   the points in flight;
4. **repair** (local solver): a point that costs more than a point with a *smaller* epsilon (whose
   design is feasible for the larger epsilon too) was a poor local optimum: it is re-solved starting
   from that design, and if still worse, that design is taken (``extra["taken_from_epsilon"]``).  The
   front is then monotone: cost non-increasing as epsilon grows.

The point solver is ``"local"`` (cyipopt multi-start) or ``"global"``
(:func:`nanosep.flowsheets.global_opt.solve_global`, imported when first used).  The rejection model
is named: ``"element"`` (one element surrogate at the stage feed, k = 1, seed 002 case A),
``"chain"`` (``n_elements`` element surrogates in series, case B1 with 3), ``"module"`` (the module
surrogate with gamma, case B2).  After solving, every feasible point gets the exact-model check of
:mod:`.exact_check` (``DesignPoint.exact_check``; a failed check is recorded as ``{"error": ...}``).

``manifest.json`` holds the problem; a rerun with a different problem in the same folder raises
:class:`FrontMismatchError` (use another folder or ``overwrite=True``).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nanosep.errors import InvalidInputError

from .design_point import DesignPoint, _json_safe
from .errors import FlowsheetError
from .superstructure import PlantSpec

__all__ = ["EPS_MARGIN", "FrontMismatchError", "GlobalSolverUnavailableError", "InfeasibleSpecificationError",
           "ParetoFront", "ParetoProblem", "PointSolver", "RejectionChoice", "binding_bounds", "check_feed_domain",
           "epsilon_grid", "point_task", "run_pareto", "solve_point"]

log = logging.getLogger(__name__)

FORMAT = "nanosep.flowsheets.pareto/1"
#: the tightest epsilon of a default grid is c_min (1 + EPS_MARGIN)
EPS_MARGIN = 1e-3
#: default shipped surrogates of the rejection kinds (seed 002 Tables 1 and 3)
DEFAULT_SURROGATE = {"element": "seed002_na2so4_element", "chain": "seed002_na2so4_element",
                     "module": "seed002_na2so4_module"}
#: the epsilon passed to a solver that needs one when there is no limit: this x the limit ion's feed
#: concentration (a surrogate rejection >= -1 keeps every permeate below twice its feed; a huge value
#: upsets MAiNGO's relaxations of the reduced-space model)
NO_LIMIT_FACTOR = 2.0


class FrontMismatchError(InvalidInputError):
    """The output folder holds the checkpoint of a different Pareto problem."""


class GlobalSolverUnavailableError(FlowsheetError):
    """``solver="global"`` was asked for but :mod:`nanosep.flowsheets.global_opt` is not available."""


class InfeasibleSpecificationError(FlowsheetError):
    """No plant meets the specification at all (e.g. the cheapest-plant anchor fails); the message says why."""


# ------------------------------------------------------------------------------ problem description
@dataclass(frozen=True)
class RejectionChoice:
    """Which rejection model every stage gets: kind ``element`` / ``chain`` / ``module`` and its surrogate.

    ``surrogate`` is a shipped name (``surrogates/shipped/<name>.card.json``) or a path to a model card
    (``<name>.card.json`` next to ``<name>.onnx``); ``None`` takes :data:`DEFAULT_SURROGATE`.
    """

    kind: str = "element"
    surrogate: str | None = None
    n_elements: int = 3
    formulation: str = "full"

    def __post_init__(self) -> None:
        if self.kind not in DEFAULT_SURROGATE:
            raise InvalidInputError(f"rejection kind {self.kind!r}: choose one of {sorted(DEFAULT_SURROGATE)}")
        if self.kind == "chain" and self.n_elements < 1:
            raise InvalidInputError(f"n_elements={self.n_elements!r} must be >= 1")
        if self.formulation not in ("full", "reduced", "explicit"):
            raise InvalidInputError(f"formulation={self.formulation!r}: choose full, reduced or explicit")

    @property
    def surrogate_ref(self) -> str:
        return self.surrogate or DEFAULT_SURROGATE[self.kind]

    @property
    def label(self) -> str:
        return {"element": "element surrogate (k = 1)", "chain": f"{self.n_elements} element surrogates in series",
                "module": "module surrogate (gamma input)"}[self.kind]

    def load(self):
        """The :class:`nanosep.surrogates.onnx_io.Surrogate` (shipped name or card path)."""
        from nanosep.surrogates.onnx_io import load_shipped, load_surrogate

        ref = self.surrogate_ref
        if ref.endswith(".json") or os.sep in ref or "/" in ref:
            p = Path(ref)
            if not p.exists():
                raise InvalidInputError(f"surrogate card {ref!r} not found; train and export it first "
                                        "(nanosep sample / train / export, see cases/surrogates/)")
            return load_surrogate(p)
        return load_shipped(ref)

    def factory(self, surrogate=None) -> Callable[[int], Any]:
        """``rejection(i)`` for :func:`.superstructure.build_plant`."""
        from .rejection import ElementChain, ElementSurrogate, ModuleSurrogate

        sur = surrogate if surrogate is not None else self.load()
        if self.kind == "element":
            return lambda _i: ElementSurrogate(sur, self.formulation)
        if self.kind == "chain":
            return lambda _i: ElementChain(sur, self.n_elements, self.formulation)
        return lambda _i: ModuleSurrogate(sur, self.formulation)


@dataclass(frozen=True)
class PointSolver:
    """How one epsilon point is solved: ``local`` (multi-start cyipopt) or ``global`` (MAiNGO, global_opt)."""

    kind: str = "local"
    n_starts: int = 8
    seed: int = 0
    rel_gap: float = 1e-3
    time_limit_s: float = 300.0

    def __post_init__(self) -> None:
        if self.kind not in ("local", "global"):
            raise InvalidInputError(f"solver {self.kind!r}: choose local or global")
        if self.n_starts < 1:
            raise InvalidInputError(f"n_starts={self.n_starts!r} must be >= 1")
        if not (0 < self.rel_gap < 1):
            raise InvalidInputError(f"rel_gap={self.rel_gap!r} must be in (0, 1)")
        if not self.time_limit_s > 0:
            raise InvalidInputError(f"time_limit_s={self.time_limit_s!r} must be > 0")


@dataclass(frozen=True)
class ParetoProblem:
    """One front: the plant, the rejection model, the point solver, the grid and the exact check."""

    spec: PlantSpec
    rejection: RejectionChoice = RejectionChoice()
    solver: PointSolver = PointSolver()
    n_points: int = 10
    spacing: str = "log"
    epsilon_min_mol_m3: float | None = None
    epsilon_max_mol_m3: float | None = None
    exact_check: bool = True
    exact_rtol: float = 1e-3
    exact_case_file: str | None = None
    name: str = "front"

    def __post_init__(self) -> None:
        if self.n_points < 2:
            raise InvalidInputError(f"n_points={self.n_points!r} must be >= 2 (the two ends of the front)")
        if self.spacing not in ("log", "linear"):
            raise InvalidInputError(f"spacing={self.spacing!r}: choose log or linear")
        for k in ("epsilon_min_mol_m3", "epsilon_max_mol_m3"):
            v = getattr(self, k)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise InvalidInputError(f"{k}={v!r} must be a positive number")
        if (self.epsilon_min_mol_m3 is not None and self.epsilon_max_mol_m3 is not None
                and not self.epsilon_min_mol_m3 < self.epsilon_max_mol_m3):
            raise InvalidInputError(f"epsilon_min_mol_m3={self.epsilon_min_mol_m3!r} must be below "
                                    f"epsilon_max_mol_m3={self.epsilon_max_mol_m3!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["spec"]["feed_conc_mol_m3"] = dict(self.spec.feed_conc_mol_m3)
        return json.loads(json.dumps(d, default=str))

    @property
    def limit_ion(self) -> str:
        from .properties import canonical_ions

        return canonical_ions([self.spec.limit_ion])[0][0]


# ------------------------------------------------------------------------------ checks and reports
def check_feed_domain(spec: PlantSpec, surrogate) -> None:
    """Raise :class:`~nanosep.surrogates.onnx_io.OutOfDomainError` if a fresh-feed concentration lies outside the
    surrogate's ``c_<ion>_mol_m3`` domain (the message names the value and the domain); also an ion the surrogate
    needs but the feed lacks."""
    from nanosep.surrogates.onnx_io import OutOfDomainError

    from .properties import canonical_ions

    names, _ = canonical_ions(list(spec.feed_conc_mol_m3))
    feed = dict(zip(names, (float(v) for v in spec.feed_conc_mol_m3.values())))
    for v in surrogate.card.inputs:
        if not (v.name.startswith("c_") and v.name.endswith("_mol_m3")):
            continue
        ion = v.name[2:-len("_mol_m3")]
        if ion not in feed:
            raise InvalidInputError(f"surrogate {surrogate.card.name!r} needs a feed concentration of {ion} "
                                    f"(input {v.name}); the feed has {sorted(feed)}")
        if not v.low <= feed[ion] <= v.high:
            raise OutOfDomainError(f"feed {ion} = {feed[ion]:g} mol/m3 is outside the domain [{v.low:g}, {v.high:g}] "
                                   f"mol/m3 of surrogate {surrogate.card.name!r} (input {v.name})")


def binding_bounds(design: Mapping[str, Any], spec: PlantSpec, surrogate=None, rtol: float = 1e-4) -> list[str]:
    """Decisions (and surrogate inputs) of ``design`` that sit at a bound: what limits the purity of the purest plant."""
    out = []

    def at(name: str, value, lo: float, hi: float, what: str) -> None:
        if value is None or not math.isfinite(float(value)):
            return
        tol = rtol * max(hi - lo, 1e-12)
        for b, side in ((lo, "lower"), (hi, "upper")):
            if abs(float(value) - b) <= tol:
                out.append(f"{what} {name} = {float(value):.4g} at its {side} bound {b:g}")

    at("thickness_nm", design.get("thickness_nm"), 75.0, 150.0, "membrane")
    at("charge_mol_m3", design.get("charge_mol_m3"), -500.0, -100.0, "membrane")
    for i in range(1, int(design.get("n_stages", 1)) + 1):
        at(f"stage{i}_n_modules", design.get(f"stage{i}_n_modules"), *spec.n_modules_bounds, "stage")
        at(f"stage{i}_gamma", design.get(f"stage{i}_gamma"), 0.0, spec.max_recovery, "stage recovery")
        at(f"pump{i}_dp_bar", design.get(f"pump{i}_dp_bar"), 0.0, 40.0, "pump")
        if surrogate is not None:
            for v in surrogate.card.inputs:
                if v.name == "flux_um_s":
                    at(f"stage{i}_flux_um_s", design.get(f"stage{i}_flux_um_s"), v.low, v.high, "surrogate domain")
                if v.name == "gamma":
                    at(f"stage{i}_gamma", design.get(f"stage{i}_gamma"), v.low, v.high, "surrogate domain")
                if v.name.startswith("c_"):
                    c = (design.get(f"stage{i}_feed_conc_mol_m3") or {}).get(v.name[2:-len("_mol_m3")])
                    at(f"stage{i} feed {v.name}", c, v.low, v.high, "surrogate domain")
    if spec.recirculation:
        at("recycle_fraction", design.get("recycle_fraction"), 0.0, 1.0, "splitter")
    return out


def epsilon_grid(lo: float, hi: float, n: int, spacing: str = "log") -> np.ndarray:
    """``n`` epsilons from ``lo`` to ``hi`` (both included), log- or linearly spaced."""
    if not 0 < lo < hi:
        raise InvalidInputError(f"epsilon range [{lo!r}, {hi!r}] must satisfy 0 < low < high")
    return np.geomspace(lo, hi, n) if spacing == "log" else np.linspace(lo, hi, n)


# ------------------------------------------------------------------------------ one point
def _global_solver():
    try:
        from . import global_opt
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.endswith("global_opt"):
            raise GlobalSolverUnavailableError("solver 'global' needs nanosep.flowsheets.global_opt (solve_global), "
                                               "which is not installed in this tree; use solver 'local'") from None
        raise
    return global_opt.solve_global


def _no_limit(spec: PlantSpec) -> float:
    from .properties import canonical_ions

    names, _ = canonical_ions(list(spec.feed_conc_mol_m3))
    feed = dict(zip(names, (float(v) for v in spec.feed_conc_mol_m3.values())))
    return NO_LIMIT_FACTOR * feed[canonical_ions([spec.limit_ion])[0][0]]


def solve_point(problem: ParetoProblem, epsilon_mol_m3: float | None, *, objective: str = "cost",
                start_overrides: list[dict] | None = None, surrogate=None, check: bool | None = None) -> DesignPoint:
    """Solve one epsilon (``None``: no limit) with the problem's point solver, then the exact check (if asked)."""
    from .multistart import solve_multistart

    spec, s = problem.spec, problem.solver
    if objective == "purity" or s.kind == "local":
        sur = surrogate if surrogate is not None else problem.rejection.load()
        pt = solve_multistart(spec, problem.rejection.factory(sur), epsilon_mol_m3, n_starts=s.n_starts, seed=s.seed,
                              objective=objective, start_overrides=start_overrides)
    else:
        solve_global = _global_solver()
        eps = _no_limit(spec) if epsilon_mol_m3 is None else float(epsilon_mol_m3)
        pt = solve_global(spec, problem.rejection.kind, eps, n_elements=problem.rejection.n_elements,
                          surrogate=problem.rejection.surrogate_ref, rel_gap=s.rel_gap, time_limit_s=s.time_limit_s)
        if epsilon_mol_m3 is None:
            pt.epsilon_mol_m3 = math.nan
    if (problem.exact_check if check is None else check) and pt.feasible:
        pt.exact_check = _checked(problem, pt)
    return pt


def _checked(problem: ParetoProblem, pt: DesignPoint) -> dict[str, Any]:
    from .exact_check import exact_check

    try:
        return exact_check(pt, problem.spec, case_file=problem.exact_case_file,
                           surrogate_name=Path(problem.rejection.surrogate_ref).name.removesuffix(".card.json"),
                           rtol=problem.exact_rtol)
    except Exception as exc:  # noqa: BLE001 - the check is a report, not a reason to lose the point
        log.warning("exact check failed at epsilon %s: %s", pt.epsilon_mol_m3, exc)
        return {"error": f"{type(exc).__name__}: {exc}"}


def point_task(problem: ParetoProblem, index: int, epsilon_mol_m3: float, limit_threads: bool = True,
               starts: list[dict] | None = None) -> dict[str, Any]:
    """Dask task: one Pareto point as a JSON-safe dict; never raises (a failure is a failed point).
    ``limit_threads``: one BLAS/torch thread in this (worker) process; ``starts``: extra local start values."""
    if limit_threads:
        from nanosep.transport.parallel import _limit_threads

        _limit_threads()
    t0 = time.perf_counter()
    try:
        pt = solve_point(problem, epsilon_mol_m3, start_overrides=starts)
    except Exception as exc:
        log.exception("point %d (epsilon %g) failed", index, epsilon_mol_m3)
        pt = DesignPoint.failed(epsilon_mol_m3, problem.solver.kind, "error", f"{type(exc).__name__}: {exc}")
    pt.times_s["task"] = time.perf_counter() - t0
    d = pt.to_dict()
    d["index"] = int(index)
    return d


# ------------------------------------------------------------------------------ checkpoint files
_FLOAT_FIELDS = {f.name for f in dataclasses.fields(DesignPoint) if f.type in ("float", float)}


def point_from_dict(d: Mapping[str, Any]) -> DesignPoint:
    """Inverse of :meth:`DesignPoint.to_dict` (``None`` floats back to NaN)."""
    names = {f.name for f in dataclasses.fields(DesignPoint)}
    kw = {k: v for k, v in d.items() if k in names}
    for k in _FLOAT_FIELDS:
        if kw.get(k) is None and k in kw:
            kw[k] = math.nan
    return DesignPoint(**kw)


def _write_json_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, allow_nan=False), encoding="utf-8")
    os.replace(tmp, path)


def _point_path(out: Path, i: int) -> Path:
    return out / "points" / f"point-{i:03d}.json"


@dataclass
class ParetoFront:
    """The result of :func:`run_pareto` (points sorted by epsilon) and what this run did."""

    problem: ParetoProblem
    points: list[DesignPoint]
    anchors: dict[str, DesignPoint]
    out_dir: Path
    n_solved: int = 0
    repaired: list[int] = field(default_factory=list)
    seconds: float = 0.0
    purity_limit: dict[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> list[DesignPoint]:
        return [p for p in self.points if p.feasible]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; a non-finite figure (e.g. the purity limit when the purity step failed) becomes null."""
        return _json_safe({"format": FORMAT, "name": self.problem.name, "problem": self.problem.to_dict(),
                "limit_ion": self.problem.limit_ion,
                "anchors": {k: v.to_dict() for k, v in self.anchors.items()}, "purity_limit": self.purity_limit,
                "points": [p.to_dict() for p in self.points], "n_points": len(self.points),
                "n_feasible": len(self.feasible), "n_solved_this_run": self.n_solved, "repaired": self.repaired,
                "seconds": self.seconds})


# ------------------------------------------------------------------------------ the driver
def _load_or_solve(path: Path, solve: Callable[[], DesignPoint]) -> tuple[DesignPoint, bool]:
    if path.exists():
        return point_from_dict(json.loads(path.read_text(encoding="utf-8"))), False
    pt = solve()
    _write_json_atomic(pt.to_dict(), path)
    return pt, True


def _manifest(problem: ParetoProblem, out: Path, overwrite: bool) -> None:
    path = out / "manifest.json"
    mine = {"format": FORMAT, "problem": problem.to_dict()}
    if path.exists() and not overwrite:
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("problem") != mine["problem"]:
            diff = sorted(k for k in set(old.get("problem", {})) | set(mine["problem"])
                          if old.get("problem", {}).get(k) != mine["problem"].get(k))
            raise FrontMismatchError(f"{out} holds the checkpoint of a different front ({', '.join(diff)} differ); "
                                     "use another --out folder or overwrite")
        return
    if overwrite and out.exists():
        for p in [*(out / "points").glob("point-*.json"), *(out / "anchors").glob("*.json")]:
            p.unlink()
    _write_json_atomic(mine, path)


def _run_points(problem: ParetoProblem, todo: list[tuple[int, float]], scheduler, n_workers: int,
                on_point: Callable[[dict], None], starts: list[dict] | None) -> None:
    if not todo:
        return
    if scheduler == "sync":
        for i, eps in todo:
            on_point(point_task(problem, i, eps, False, starts))
        return
    from distributed import as_completed
    from nanosep.transport.parallel import client_for

    with client_for(scheduler, n_workers) as (client, label):
        log.info("solving %d points on %s", len(todo), label)
        futures = [client.submit(point_task, problem, i, eps, True, starts, pure=False) for i, eps in todo]
        index = {f.key: (i, eps) for f, (i, eps) in zip(futures, todo)}
        try:
            for fut in as_completed(futures, loop=client.loop):
                i, eps = index[fut.key]
                try:
                    d = fut.result()
                except Exception as exc:  # noqa: BLE001 - e.g. a lost worker
                    d = DesignPoint.failed(eps, problem.solver.kind, "error", f"{type(exc).__name__}: {exc}").to_dict()
                    d["index"] = i
                on_point(d)
        finally:
            for f in futures:
                f.cancel()


def _repair(problem: ParetoProblem, points: list[DesignPoint], surrogate) -> list[int]:
    """Make the cost non-increasing in epsilon (module docstring, step 4); returns the repaired indices."""
    repaired = []
    best: DesignPoint | None = None
    for k, p in enumerate(points):
        if best is not None and (not p.feasible or p.objective_usd_per_year > best.objective_usd_per_year * (1 + 1e-7)):
            eps = p.epsilon_mol_m3
            new = p
            if problem.solver.kind == "local":
                try:
                    new = solve_point(problem, eps, start_overrides=[_start_of(best.design)], surrogate=surrogate,
                                      check=False)
                except Exception as exc:  # noqa: BLE001 - fall back to the dominating design below
                    log.warning("repair solve at epsilon %g failed: %s", eps, exc)
            if not new.feasible or new.objective_usd_per_year > best.objective_usd_per_year * (1 + 1e-7):
                new = dataclasses.replace(best, epsilon_mol_m3=eps, extra={**best.extra,
                                                                           "taken_from_epsilon": best.epsilon_mol_m3})
            else:
                if problem.exact_check:
                    new.exact_check = _checked(problem, new)
            new.extra = {**new.extra, "repaired": True, "replaced": {"status": p.status, "feasible": p.feasible,
                                                                     "objective_usd_per_year": p.objective_usd_per_year,
                                                                     "message": p.message}}
            points[k] = new
            repaired.append(k)
            p = new
        if p.feasible and (best is None or p.objective_usd_per_year <= best.objective_usd_per_year):
            best = p
    return repaired


def _start_of(design: Mapping[str, Any]) -> dict[str, Any]:
    n = int(design.get("n_stages", 1))
    return {"thickness_nm": design["thickness_nm"], "charge_mol_m3": design["charge_mol_m3"],
            "recycle_fraction": design.get("recycle_fraction") or 0.0, "feed_m3_h": design.get("feed_m3_h"),
            "dp_bar": [design[f"pump{i}_dp_bar"] for i in range(1, n + 1)],
            "n_modules": [design[f"stage{i}_n_modules"] for i in range(1, n + 1)]}


def run_pareto(problem: ParetoProblem, out_dir: str | Path, *, scheduler: Any = "sync", n_workers: int = 2,
               overwrite: bool = False, progress: Callable[[int, int, str], None] | None = None) -> ParetoFront:
    """Solve (or resume) the front of ``problem`` into ``out_dir`` (module docstring); returns a :class:`ParetoFront`.

    ``progress(done, total, label)`` is called after the anchors and after every point (a callback that
    raises, e.g. KeyboardInterrupt, stops the run; finished points stay on disk).

    Raises:
        OutOfDomainError: the fresh feed lies outside the surrogate's concentration domain.
        InfeasibleSpecificationError: not even the cheapest plant without a limit could be solved.
        FrontMismatchError: ``out_dir`` holds a different problem's checkpoint.
        GlobalSolverUnavailableError: ``solver="global"`` without :mod:`.global_opt`.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    sur = problem.rejection.load()
    check_feed_domain(problem.spec, sur)
    if problem.solver.kind == "global":
        _global_solver()
    out.mkdir(parents=True, exist_ok=True)
    _manifest(problem, out, overwrite)
    total = problem.n_points + 2
    report = progress or (lambda done, tot, label: None)
    ion = problem.limit_ion

    n_solved = 0
    cost, new = _load_or_solve(out / "anchors" / "cost.json", lambda: solve_point(problem, None, surrogate=sur))
    n_solved += new
    report(1, total, "cheapest plant (no limit)")
    if not cost.feasible:
        raise InfeasibleSpecificationError(f"no feasible plant even without a purity limit ({cost.status}): {cost.message}")
    purity, new = _load_or_solve(out / "anchors" / "purity.json",
                                 lambda: solve_point(problem, None, objective="purity", surrogate=sur, check=False))
    n_solved += new
    report(2, total, "purest plant")
    c_max = float(cost.product_conc_mol_m3[ion])
    c_min = float(purity.product_conc_mol_m3[ion]) if purity.feasible else math.nan
    binding = binding_bounds(purity.design, problem.spec, sur) if purity.feasible else []
    limit = {"c_min_mol_m3": c_min, "binding_at_c_min": binding, "c_cheapest_mol_m3": c_max}
    lo = problem.epsilon_min_mol_m3 or (c_min * (1 + EPS_MARGIN) if math.isfinite(c_min) else c_max / 10.0)
    hi = problem.epsilon_max_mol_m3 or c_max
    if not lo < hi:
        raise InfeasibleSpecificationError(f"epsilon range [{lo:.4g}, {hi:.4g}] mol/m3 is empty: the cheapest plant "
                                           f"already gives {c_max:.4g} mol/m3 of {ion}")
    grid = epsilon_grid(lo, hi, problem.n_points, problem.spacing)

    done_pts: dict[int, DesignPoint] = {}
    for i in range(len(grid)):
        p = _point_path(out, i)
        if p.exists():
            done_pts[i] = point_from_dict(json.loads(p.read_text(encoding="utf-8")))
    todo = [(i, float(e)) for i, e in enumerate(grid) if i not in done_pts]
    log.info("front %s: %d of %d points to solve", problem.name, len(todo), len(grid))
    report(2 + len(done_pts), total, f"{len(done_pts)} points from the checkpoint")

    def on_point(d: dict) -> None:
        nonlocal n_solved
        i = int(d.pop("index"))
        pt = point_from_dict(d)
        if not pt.feasible and math.isfinite(c_min) and pt.epsilon_mol_m3 < c_min:
            pt.message = (f"infeasible: {ion} <= {pt.epsilon_mol_m3:.4g} mol/m3 is below the smallest product "
                          f"concentration found, {c_min:.4g} mol/m3; binding at the purest design: "
                          + ("; ".join(binding) or "no bound (a local optimum)") + f". Solver: {pt.message}")
        _write_json_atomic(pt.to_dict(), _point_path(out, i))
        done_pts[i] = pt
        n_solved += 1
        report(2 + len(done_pts), total, f"epsilon {pt.epsilon_mol_m3:.3g} mol/m3: "
                                         + ("ok" if pt.feasible else "failed"))

    # the purest design is feasible for every epsilon >= c_min: one more local start for every point
    starts = [_start_of(purity.design)] if purity.feasible else None
    _run_points(problem, todo, scheduler, n_workers, on_point, starts)
    points = [done_pts[i] for i in range(len(grid))]
    repaired = _repair(problem, points, sur)
    for k in repaired:
        _write_json_atomic(points[k].to_dict(), _point_path(out, k))
    front = ParetoFront(problem, points, {"cost": cost, "purity": purity}, out, n_solved, repaired,
                        time.perf_counter() - t0, limit)
    _write_json_atomic(front.to_dict(), out / "front.json")
    return front
