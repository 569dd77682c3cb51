"""Design rows -> transport-engine arguments -> a resumable Parquet dataset (seed 002, section 2.1).

Seed 002 evaluates its ion-transport model offline over a Latin hypercube design and
keeps the converged points as training data.  :func:`run_sampling` does the same with
:func:`nanosep.transport.solve_batch`::

    from nanosep.surrogates.domain import load_surrogate_case
    from nanosep.surrogates.sampling import run_sampling
    case = load_surrogate_case("cases/surrogates/seed002_na2so4_element.yaml")
    report = run_sampling(case, "results/surrogates/data/seed002_na2so4_element")

The design is cut into chunks of ``chunk_size`` consecutive rows; each chunk is one
``solve_batch`` call (through :func:`nanosep.transport.parallel.guarded_task`, so a chunk
that raises becomes failed rows instead of an exception) on a dask scheduler, and is
written to ``chunks/chunk-NNNNN.parquet`` (tmp file + rename) as soon as it is back.
The directory layout and the manifest are those of ``surrogates/DESIGN.md``.

Resume: rerunning on the same directory skips the chunks already written.  The
manifest's design hash (sha256 of the design table's column names and values) must
equal the new design's, and the case's ``base`` and ``inputs`` (:data:`DATA_FIELDS`) must
be the same; otherwise :class:`DatasetMismatchError` names both, unless ``overwrite=True``.
Editing the outputs or the description does not invalidate the data.

Zero flux (in seed 002's domain, v = 0-50 um/s) is answered exactly without the engine:
with J_v = 0 nothing is convected and the permeate equals the feed, so every rejection is
0 (the limit of the engine's solution as J_v -> 0; tested).

Schedulers: ``"sync"`` (in process, one chunk after the other), ``"threads"``
(``n_workers`` threads in this process, torch limited to one thread meanwhile), and
the distributed ones of :mod:`nanosep.transport.parallel` (``None``/``"local"``: a
LocalCluster of ``n_workers`` processes; ``"tcp://host:port"``; a ``distributed.Client``),
whose client handling is reused.
"""
from __future__ import annotations

import concurrent.futures as cf
import datetime as _dt
import hashlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nanosep.errors import ElectroneutralityError, InvalidInputError
from nanosep.units import NM_TO_M, UM_TO_M, lmh_to_m_s

from .domain import SurrogateCase, design

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DatasetMismatchError",
    "EngineBatch",
    "SamplingReport",
    "design_hash",
    "engine_arguments",
    "run_sampling",
    "solve_rows",
]

DEFAULT_CHUNK_SIZE = 512
#: Fields of the surrogate case that change the data (a resume must not mix them); the
#: name, description, outputs and design section may change between runs.
DATA_FIELDS = ("base", "inputs")
FORMAT = "nanosep.surrogates.dataset/1"
ZERO_FLUX_REASON = ""  # exact answer, not a failure

#: input name -> (engine argument, factor to SI)
_ENGINE_ARG: dict[str, tuple[str, float]] = {
    "pore_radius_nm": ("pore_radius_m", NM_TO_M),
    "thickness_um": ("thickness_m", UM_TO_M),
    "thickness_nm": ("thickness_m", NM_TO_M),
    "pore_dielectric": ("pore_dielectric", 1.0),
    "charge_density_mol_m3": ("charge_density_mol_m3", 1.0),
    "flux_um_s": ("flux_m_s", UM_TO_M),
    "temperature_K": ("temperature_K", 1.0),
}


class DatasetMismatchError(InvalidInputError):
    """A dataset directory holds a different design or case than the run asks for."""


# ---------------------------------------------------------------------- rows -> engine arguments
@dataclass
class EngineBatch:
    """Arguments of :func:`nanosep.transport.solve_batch` for a block of design rows (SI units).

    ``c_feed`` is already electroneutral (the ``balance_with`` ion of the base filled in),
    so ``kwargs`` carries no ``balance_with``.  ``zero_flux`` marks rows with J_v = 0.
    """

    ions: list[str]
    c_feed: np.ndarray            # (B, n) mol/m3
    kwargs: dict[str, Any]        # flux_m_s or pressure_pa, membrane, temperature_K, options, ion_db
    zero_flux: np.ndarray         # (B,) bool

    def take(self, idx) -> EngineBatch:
        kw = {k: (v[idx] if isinstance(v, np.ndarray) and v.ndim == 1 else v) for k, v in self.kwargs.items()}
        return EngineBatch(self.ions, self.c_feed[idx], kw, self.zero_flux[idx])


def engine_arguments(case: SurrogateCase, rows: pd.DataFrame) -> EngineBatch:
    """Map design rows (one column per input, user units) to ``solve_batch`` arguments.

    Inputs override the base case: nm/um -> m, um/s and L m-2 h-1 -> m/s, ``c_<ion>_mol_m3``
    sets that ion's feed; the other ions keep their base value and the base's
    ``balance_with`` ion closes electroneutrality row by row.

    Raises:
        InvalidInputError: a ``gamma`` input (module level, not one element), a missing
            input column; :class:`ElectroneutralityError` naming the ``case_id`` if the
            balance ion would need a negative concentration.
    """
    from nanosep.transport.solver import balance_feed, check_electroneutral

    base = case.base_case
    e = base.to_engine()
    B = len(rows)
    missing = [nm for nm in case.input_names if nm not in rows.columns]
    if missing:
        raise InvalidInputError(f"design rows lack the input columns {missing}")
    kw: dict[str, Any] = dict(e.membrane.as_kwargs(), temperature_K=e.temperature_K)
    drive = next(iter(e.drive))
    kw[drive] = float(np.asarray(e.drive[drive])[0])
    ions = list(case.ions)
    c = np.array([[base.feed_mol_m3.get(i, 0.0) for i in ions]], dtype=float).repeat(B, axis=0)
    for v in case.inputs:
        x = rows[v.name].to_numpy(dtype=float)
        if v.ion is not None:
            c[:, ions.index(v.ion)] = x
        elif v.name == "flux_L_m2_h":
            kw.pop("pressure_pa", None)
            kw["flux_m_s"] = np.asarray(lmh_to_m_s(x), dtype=float)
        elif v.name in _ENGINE_ARG:
            arg, factor = _ENGINE_ARG[v.name]
            if arg == "flux_m_s":
                kw.pop("pressure_pa", None)
            kw[arg] = x * factor
        else:
            raise InvalidInputError(f"input {v.name!r} is a module-level input (nanosep.surrogates.module), "
                                    "not an argument of the single-element transport engine")
    db = e.ion_db
    z = np.array([db.get(i).charge for i in ions], dtype=float)
    if e.balance_with is not None:
        ids = rows["case_id"].to_numpy() if "case_id" in rows else np.arange(B)
        j = ions.index(e.balance_with)
        need = -(c @ z - c[:, j] * z[j]) / z[j]
        if (need < 0).any():
            b = int(np.flatnonzero(need < 0)[0])
            raise ElectroneutralityError(
                f"case_id {int(ids[b])}: {e.balance_with} cannot balance the feed "
                f"({dict(zip(ions, c[b].round(6).tolist()))}); it would need {need[b]:.6g} mol/m3; "
                "narrow the concentration inputs or choose another balance_with ion")
        ions, z, c = balance_feed(ions, z, c, e.balance_with, db)
    check_electroneutral(ions, z, c)
    for k in list(kw):
        if isinstance(kw[k], np.ndarray):
            kw[k] = np.ascontiguousarray(kw[k], dtype=float)
    flux = kw.get("flux_m_s")
    zero = np.zeros(B, bool) if flux is None else np.broadcast_to(np.asarray(flux) == 0.0, (B,)).copy()
    kw.update(options=e.options, ion_db=db)
    return EngineBatch(ions, c, kw, zero)


# ---------------------------------------------------------------------- one chunk
def solve_rows(batch: EngineBatch, limit_threads: bool = False) -> dict[str, np.ndarray]:
    """Solve a block of rows: the engine for J_v > 0, the exact answer for J_v = 0.

    Returns per-row arrays ``rejection`` and ``permeate_mol_m3`` (B, n), ``converged``,
    ``reason`` and ``newton_iterations`` (B,).  A ``solve_batch`` call that raises gives
    ``converged=False`` and ``reason="chunk failed: <Type>: <message>"`` on all its rows.
    """
    from nanosep.transport.parallel import ChunkFailure, guarded_task

    B = batch.c_feed.shape[0]
    c = batch.c_feed
    with np.errstate(invalid="ignore", divide="ignore"):
        rej = np.where(c > 0, 0.0, np.nan)          # J_v = 0: permeate = feed
    perm = c.copy()
    conv = np.ones(B, bool)
    reason = np.full(B, ZERO_FLUX_REASON, dtype=object)
    iters = np.zeros(B, np.int64)
    run = np.flatnonzero(~batch.zero_flux)
    if run.size:
        sub = batch.take(run)
        kw = dict(sub.kwargs, workers=1, chunk_size=max(1, run.size))
        out = guarded_task(sub.ions, sub.c_feed, kw, limit_threads)
        if isinstance(out, ChunkFailure):
            log.warning("%s\n%s", out.message, out.traceback)
            rej[run], perm[run] = np.nan, np.nan
            conv[run], reason[run] = False, out.message
        else:
            rej[run] = out.rejection_observed
            perm[run] = out.c_perm
            conv[run] = out.converged
            reason[run] = out.reason
            iters[run] = out.iterations
    return {"rejection": rej, "permeate_mol_m3": perm, "converged": conv, "reason": reason,
            "newton_iterations": iters}


def chunk_frame(rows: pd.DataFrame, batch: EngineBatch, out: dict[str, np.ndarray]) -> pd.DataFrame:
    """The chunk table of DESIGN.md (+ ``feed_<ion>_mol_m3``, the balanced feed)."""
    cols: dict[str, Any] = {name: rows[name].to_numpy() for name in rows.columns}
    for j, ion in enumerate(batch.ions):
        cols[f"feed_{ion}_mol_m3"] = batch.c_feed[:, j]
    for j, ion in enumerate(batch.ions):
        cols[f"rejection_{ion}"] = out["rejection"][:, j]
    for j, ion in enumerate(batch.ions):
        cols[f"permeate_{ion}_mol_m3"] = out["permeate_mol_m3"][:, j]
    cols["converged"] = out["converged"].astype(bool)
    cols["reason"] = np.asarray([str(r) for r in out["reason"]], dtype=object)
    cols["newton_iterations"] = out["newton_iterations"].astype(np.int64)
    return pd.DataFrame(cols)


# ---------------------------------------------------------------------- dataset directory
def design_hash(df: pd.DataFrame) -> str:
    """sha256 of a design table's content: column names, dtypes and values (row order matters)."""
    h = hashlib.sha256()
    for name in df.columns:
        arr = np.ascontiguousarray(df[name].to_numpy())
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()


def _write_parquet_atomic(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _write_json_atomic(data: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=False)
        return out.stdout.strip() or None
    except Exception:  # noqa: BLE001 - not a git checkout
        return None


def chunk_path(out_dir: Path, i: int) -> Path:
    return Path(out_dir) / "chunks" / f"chunk-{i:05d}.parquet"


def _chunk_done(path: Path, n_rows: int) -> bool:
    if not path.exists():
        return False
    try:
        import pyarrow.parquet as pq
        return pq.read_metadata(path).num_rows == n_rows
    except Exception:  # noqa: BLE001 - unreadable: recompute
        log.warning("%s is unreadable; recomputing it", path)
        return False


def _clear(out_dir: Path) -> None:
    for p in (out_dir / "chunks").glob("chunk-*.parquet*"):
        p.unlink()
    for name in ("design.parquet", "manifest.json"):
        (out_dir / name).unlink(missing_ok=True)


def _check_existing(out_dir: Path, new_hash: str, case: SurrogateCase, chunk_size: int | None,
                    overwrite: bool) -> int | None:
    """Compare with an existing manifest; returns its chunk size (None if nothing to resume)."""
    mpath = out_dir / "manifest.json"
    if not mpath.exists():
        if any((out_dir / "chunks").glob("chunk-*.parquet")):
            if not overwrite:
                raise DatasetMismatchError(f"{out_dir} holds chunk files but no manifest.json; "
                                           "use another directory or overwrite=True (--overwrite)")
            _clear(out_dir)
        return None
    try:
        old = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetMismatchError(f"{mpath} is unreadable ({exc}); use overwrite=True (--overwrite)") from None
    problem = None
    old_case, new_case = old.get("surrogate_case") or {}, case.to_dict()
    if old.get("design_hash") != new_hash:
        problem = (f"{out_dir} holds a dataset of design hash {old.get('design_hash')} but this run's design "
                   f"hash is {new_hash}")
    elif any(old_case.get(k) != new_case[k] for k in DATA_FIELDS):
        diff = [k for k in DATA_FIELDS if old_case.get(k) != new_case[k]]
        problem = f"{out_dir} holds a dataset of the same design but a different surrogate case (fields: {diff})"
    elif chunk_size is not None and old.get("chunk_size") != chunk_size:
        problem = (f"{out_dir} holds a dataset with chunk_size {old.get('chunk_size')}, this run asks for "
                   f"{chunk_size}")
    if problem is None:
        return int(old["chunk_size"])
    if not overwrite:
        raise DatasetMismatchError(problem + "; use another directory or overwrite=True (--overwrite)")
    log.warning("%s: overwriting", problem)
    _clear(out_dir)
    return None


# ---------------------------------------------------------------------- executors
Outcome = tuple[int, "dict[str, np.ndarray] | BaseException"]


def _completed(ex, fn, jobs: dict[int, tuple]) -> Iterator[Outcome]:
    """Submit every job to a concurrent.futures-style executor; yield (key, result or exception)
    as they finish.  Pending jobs are cancelled if the consumer stops early (Ctrl-C)."""
    futures = {ex.submit(fn, *args): key for key, args in jobs.items()}
    try:
        for fut in cf.as_completed(futures):
            try:
                yield futures[fut], fut.result()
            except Exception as exc:  # noqa: BLE001 - lost worker, (un)pickling: the caller keeps the rows
                yield futures[fut], exc
    finally:
        for f in futures:
            f.cancel()


def _one_by_one(fn, jobs: dict[int, tuple]) -> Iterator[Outcome]:
    """The ``"sync"`` scheduler: each job runs when the consumer asks for it."""
    for key, args in jobs.items():
        try:
            yield key, fn(*args)
        except Exception as exc:  # noqa: BLE001
            yield key, exc


@contextmanager
def _executor(scheduler, n_workers: int) -> Iterator[tuple[Callable, str, bool]]:
    """Yield (run(fn, jobs) -> iterator of outcomes, label, limit_threads_in_task)."""
    from nanosep.transport import parallel

    if scheduler == "sync":
        yield _one_by_one, "sync", False
    elif scheduler == "threads":
        with parallel.torch_threads(1), cf.ThreadPoolExecutor(n_workers) as ex:
            yield (lambda fn, jobs: _completed(ex, fn, jobs)), "threads", False
    else:
        from distributed import Client
        if not (scheduler is None or scheduler == "local" or isinstance(scheduler, Client)
                or (isinstance(scheduler, str) and "://" in scheduler)):
            raise InvalidInputError(f"scheduler={scheduler!r}: use 'sync', 'threads', None/'local' (a LocalCluster), "
                                    "an address 'tcp://host:port' or a distributed.Client")
        with parallel.client_for(scheduler, n_workers) as (client, label):
            ex = client.get_executor(pure=False)
            yield (lambda fn, jobs: _completed(ex, fn, jobs)), label, True


# ---------------------------------------------------------------------- the run
@dataclass
class SamplingReport:
    """What a :func:`run_sampling` call did."""

    out_dir: str
    n_cases: int
    n_chunks: int
    chunks_skipped: int
    chunks_solved: int
    n_converged: int
    n_failed: int
    n_zero_flux: int
    seconds: float
    scheduler: str

    @property
    def cases_per_second(self) -> float:
        solved = self.n_cases * self.chunks_solved / max(self.n_chunks, 1)
        return solved / self.seconds if self.seconds > 0 else float("nan")


def run_sampling(case: SurrogateCase, out_dir: str | Path, *, n: int | None = None, method: str | None = None,
                 seed: int | None = None, chunk_size: int | None = None, scheduler=None,
                 n_workers: int = 2, overwrite: bool = False,
                 progress: Callable[[int, int], Any] | None = None) -> SamplingReport:
    """Generate (or finish) the dataset of ``case`` in ``out_dir``.

    Args:
        n, method, seed: design overrides (default: the case's ``design`` section).
        chunk_size: rows per chunk/task (default :data:`DEFAULT_CHUNK_SIZE`, or the
            existing manifest's when resuming).
        scheduler: ``"sync"``, ``"threads"``, ``None``/``"local"`` (LocalCluster of
            ``n_workers`` processes), ``"tcp://host:port"`` or a ``distributed.Client``.
        overwrite: replace a dataset of a different design/case instead of refusing.
        progress: ``callable(done_cases, total_cases)``; called with the cases already
            on disk first, then after every chunk.

    Raises:
        DatasetMismatchError: ``out_dir`` holds another design or case (both hashes named).
        InvalidInputError / ElectroneutralityError: the design cannot be mapped to the engine.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    df = design(case, n=n, method=method, seed=seed)
    new_hash = design_hash(df)
    batch_all = engine_arguments(case, df)      # validates every row before anything runs
    (out_dir / "chunks").mkdir(parents=True, exist_ok=True)
    if chunk_size is not None and chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be >= 1, got {chunk_size!r}")
    old_chunk = _check_existing(out_dir, new_hash, case, chunk_size, overwrite)
    cs = old_chunk or chunk_size or DEFAULT_CHUNK_SIZE
    N = len(df)
    bounds = [(a, min(a + cs, N)) for a in range(0, N, cs)]
    mpath = out_dir / "manifest.json"
    if old_chunk is None:
        _write_parquet_atomic(df, out_dir / "design.parquet")
        manifest = {
            "format": FORMAT, "nanosep_version": _version(), "git_commit": _git_commit(),
            "engine_options": _options_dict(batch_all.kwargs["options"]),
            "surrogate_case": case.to_dict(), "design": {"method": method or case.design.method,
                                                          "n": N, "seed": case.design.seed if seed is None else seed},
            "design_hash": new_hash, "ions": list(batch_all.ions), "chunk_size": cs, "n_chunks": len(bounds),
            "created": _now(), "complete": False}
        _write_json_atomic(manifest, mpath)
    else:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        commit = _git_commit()
        if manifest.get("git_commit") != commit:
            log.warning("%s was started at commit %s, resuming at %s: check that the engine did not change",
                        out_dir, manifest.get("git_commit"), commit)
    todo = [i for i, (a, b) in enumerate(bounds) if not _chunk_done(chunk_path(out_dir, i), b - a)]
    skipped = len(bounds) - len(todo)
    done_cases = sum(b - a for i, (a, b) in enumerate(bounds) if i not in set(todo))
    log.info("%s: %d cases in %d chunks of <= %d; %d chunks already done, %d to solve",
             case.name, N, len(bounds), cs, skipped, len(todo))
    if progress is not None:
        progress(done_cases, N)
    label = "none"
    if todo:
        with _executor(scheduler, n_workers) as (run, label, limit):
            jobs = {i: (batch_all.take(slice(*bounds[i])), limit) for i in todo}
            outcomes = run(solve_rows, jobs)
            try:
                for i, out in outcomes:
                    a, b = bounds[i]
                    part = jobs[i][0]
                    if isinstance(out, BaseException):
                        msg = f"chunk failed: {type(out).__name__}: {out}"
                        log.warning("chunk %d: %s", i, msg, exc_info=out)
                        out = _failed_rows(part, msg)
                    frame = chunk_frame(df.iloc[a:b], part, out)
                    _write_parquet_atomic(frame, chunk_path(out_dir, i))
                    done_cases += b - a
                    log.info("chunk %d (cases %d-%d): %d of %d converged", i, a, b - 1,
                             int(frame["converged"].sum()), b - a)
                    if progress is not None:
                        progress(done_cases, N)
            finally:
                outcomes.close()
    conv, failed = _count(out_dir, len(bounds))
    seconds = time.perf_counter() - t0
    manifest.update(complete=True, updated=_now(), n_converged=conv, n_failed=failed, surrogate_case=case.to_dict())
    _write_json_atomic(manifest, mpath)
    report = SamplingReport(str(out_dir), N, len(bounds), skipped, len(todo), conv, failed,
                            int(batch_all.zero_flux.sum()), seconds, label)
    log.info("%s: %d converged, %d failed, %.1f s", case.name, conv, failed, seconds)
    return report


def _failed_rows(batch: EngineBatch, msg: str) -> dict[str, np.ndarray]:
    B, n = batch.c_feed.shape
    return {"rejection": np.full((B, n), np.nan), "permeate_mol_m3": np.full((B, n), np.nan),
            "converged": np.zeros(B, bool), "reason": np.full(B, msg, dtype=object),
            "newton_iterations": np.zeros(B, np.int64)}


def _count(out_dir: Path, n_chunks: int) -> tuple[int, int]:
    conv = failed = 0
    for i in range(n_chunks):
        p = chunk_path(out_dir, i)
        if p.exists():
            c = pd.read_parquet(p, columns=["converged"])["converged"]
            conv += int(c.sum())
            failed += int((~c).sum())
    return conv, failed


def _options_dict(options) -> dict:
    try:
        return asdict(options)
    except TypeError:
        return {"repr": repr(options)}


def _version() -> str:
    from nanosep import __version__
    return __version__


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------- the CLI command
def run_sample_cli(case_path: Path, out: Path | None, n: int | None, method: str | None, seed: int | None,
                   chunk_size: int | None, scheduler: str | None, n_workers: int, overwrite: bool,
                   extra: str | None = None) -> int:
    """``nanosep sample``: exit 0 when the dataset is complete (failed cases are counted, not an error),
    2 for bad input or a mismatched directory, 130 on Ctrl-C (rerun to resume). ``extra`` samples the
    case's ``training.extra_designs`` entry of that name instead of the main design."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    from nanosep.errors import UnknownIonError

    from .domain import load_surrogate_case

    console = Console(stderr=True)
    try:
        case = load_surrogate_case(case_path)
        if extra is not None:
            from .domain import extra_design_case

            case = extra_design_case(case, extra)
        out_dir = out or Path("results/surrogates/data") / case.name
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task(f"sampling {case.name}", total=None)
            report = run_sampling(case, out_dir, n=n, method=method, seed=seed, chunk_size=chunk_size,
                                  scheduler=scheduler, n_workers=n_workers, overwrite=overwrite,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total))
    except (InvalidInputError, UnknownIonError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    except KeyboardInterrupt:
        console.print("interrupted: the finished chunks are on disk; rerun the same command to resume")
        return 130
    table = Table(title=f"{case.name} -> {report.out_dir}")
    for col in ("cases", "chunks (skipped)", "converged", "failed", "zero flux", "wall s", "scheduler"):
        table.add_column(col, justify="right")
    table.add_row(str(report.n_cases), f"{report.n_chunks} ({report.chunks_skipped})", str(report.n_converged),
                  str(report.n_failed), str(report.n_zero_flux), f"{report.seconds:.1f}", report.scheduler)
    Console().print(table)
    return 0
