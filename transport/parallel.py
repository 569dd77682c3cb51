"""Solve large batches across processes (or machines) with dask.

:func:`solve_batch_parallel` cuts a batch into chunks, solves every chunk with one
:func:`~nanosep.transport.solver.solve_batch` call (``strict=False``) as a dask task,
and concatenates the chunk results in case order::

    from nanosep.transport.parallel import solve_batch_parallel
    res = solve_batch_parallel(["Na+", "Cl-"], c_feed, flux_m_s=flux, pore_radius_m=0.5e-9,
                               thickness_m=1e-6, pore_dielectric=40, charge_density_mol_m3=-50)

Every case is solved independently of the others, so the result equals that of one
in-process ``solve_batch`` call: bit for bit when the in-process call uses the same
chunk boundaries, and otherwise up to round-off in the final ``residual`` diagnostic
(its value depends on how many cases are evaluated together; the solutions agreed
bit for bit in the tests).

Schedulers (``scheduler=``)
---------------------------
* ``None`` / ``"local"``: a :class:`distributed.LocalCluster` (``n_workers`` processes,
  default 2, one thread each) created for the call and closed after it.
* ``"threads"``: dask's threaded scheduler in this process (``n_workers`` threads).
  torch is limited to one intra-op thread for the duration of the call (then
  restored; this is process-wide).  No start-up cost (see the table below).
* ``"processes"``: dask's local multiprocessing scheduler (a fresh spawn pool per call).
* ``"sync"``: dask's synchronous scheduler (debugging).
* ``"tcp://host:port"`` (any string with ``://``): ``distributed.Client(address)``;
  the client is closed after the call, the cluster is left running.
* a :class:`distributed.Client`: used as is and not closed.

Worker processes set ``OMP/MKL/OPENBLAS_NUM_THREADS=1`` and ``torch.set_num_threads(1)``
in the task itself, so that ``n_workers`` processes on ``n_workers`` cores do not
oversubscribe them (distributed's nannies already export the variables before a worker
starts; that is what limits numpy's BLAS, which reads them only at import).

Failures
--------
An exception inside a chunk (including a per-case input error such as a negative or
non-finite concentration, or a lost worker) does not lose the other chunks: the cases
of that chunk come back with ``converged=False``, ``reason="chunk failed: <Type>:
<message>"``, NaN results and ``iterations=0``; the traceback is logged and kept in
``result.meta["parallel"]["failures"]``.  Errors that concern the whole batch
(unknown ions, inconsistent shapes, neither or both of flux and pressure) are raised
before anything is submitted.  With ``strict=True`` a :class:`ConvergenceError` naming
the first failed case is raised after all chunks are back.

Overhead and throughput
-----------------------
Measured 2026-11-21 (commit 53c6a49 + work in progress) on a 2-core VM shared with
other jobs (load average 3-5 during the runs, so parallel gains are understated):
2000 cases of Na+/Cl-/SO4-2 (100/60/20 mol/m3), ideal, no polarization, r_p 0.5 nm,
dx 1 um, eps_p 40, X -50 mol/m3, J_v 1e-6..3e-5 m/s; torch limited to one thread.

=========================================== ============ ==========
how                                          wall time     cases/s
=========================================== ============ ==========
``solve_batch`` in-process (workers=1)       3.0-4.4 s     450-660
``scheduler=None`` (fresh LocalCluster(2))   10-18 s       110-190
a warm ``Client`` (2 processes, 4 chunks)    2.2-4.4 s     460-900
``scheduler="threads"`` (2 threads)          2.1-3.5 s     580-930
``scheduler="processes"`` (spawn pool)       7.7-8.4 s     240-260
=========================================== ============ ==========

* A fresh LocalCluster costs ~8-14 s per call: ~1-2 s to start the scheduler and two
  spawned workers, ~3 s per worker (~6 s for two on two busy cores) to import
  torch/nanosep on the first task, and ~2-3 s to close.  In-process the engine solves
  a few hundred such cases per second, so with an ideal 2x speed-up the break-even is
  ~10,000 cases; use it for slow physics (Pitzer, film polarization, image forces) or
  big sweeps, and pass a long-lived ``Client`` to pay the start-up once.
* On a warm Client: ~40-50 ms per call and ~10-30 ms per chunk (scheduling, pickling
  the inputs and the result, which carries the full profiles ``c_layer``,
  ``solution``, ...).  Use chunks of a few hundred cases or more; the batch is split
  into at least :data:`CHUNKS_PER_WORKER` chunks per worker thread, because expensive
  cases (high flux, continuation) tend to sit together in a sweep.
* The speed-up is bounded by the free cores and by the slowest chunk.  The threaded
  scheduler has no start-up cost and, since the LU factorizations and most batched
  numpy kernels release the GIL, did as well as two processes on this workload.
"""
from __future__ import annotations

import logging
import math
import os
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from itertools import pairwise
from typing import Any

import numpy as np

from nanosep.errors import ConvergenceError, InvalidInputError
from nanosep.ions import IonDatabase

from .options import TransportOptions
from .results import BatchResult, SHARED_FIELDS

log = logging.getLogger(__name__)

__all__ = ["SHARED_FIELDS", "ChunkFailure", "client_for", "concat_results", "guarded_task", "solve_batch_parallel",
           "torch_threads"]

#: BatchResult fields that are the same for every case (not stacked by :func:`concat_results`).
#: Environment variables set to 1 in worker processes.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: Per-case parameters of solve_batch (scalar or one entry per case).
_PER_CASE = ("flux_m_s", "pressure_pa", "pore_radius_m", "thickness_m", "pore_dielectric",
             "charge_density_mol_m3", "temperature_K")
_LOCAL_SCHEDULERS = ("threads", "processes", "sync")
DEFAULT_OPTIONS = TransportOptions()
#: Minimum number of chunks per worker thread: cases of very different cost (high flux,
#: continuation) tend to sit together in a sweep, and two chunks per worker balance the
#: load at a per-chunk cost of ~10-30 ms.
CHUNKS_PER_WORKER = 2


# ---------------------------------------------------------------------- results
def concat_results(parts: Sequence[BatchResult]) -> BatchResult:
    """Concatenate :class:`BatchResult` objects along the case axis (in the given order).

    Per-case arrays and the arrays of dict fields are stacked; the fields of
    :data:`SHARED_FIELDS` are taken from the first part (the ion lists must agree).
    """
    parts = list(parts)
    if not parts:
        raise InvalidInputError("concat_results needs at least one BatchResult")
    try:
        return BatchResult.concat(parts)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


@dataclass
class ChunkFailure:
    """What a task returns instead of raising (so the scheduler never retries or aborts)."""

    n_cases: int
    message: str
    traceback: str = ""


def _failure_message(exc: BaseException) -> str:
    return f"chunk failed: {type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------- the task
def _limit_threads() -> None:
    """One BLAS/OpenMP/torch thread in this (worker) process."""
    for var in THREAD_ENV:
        os.environ[var] = "1"
    import torch
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _solve_chunk_task(ions, c_feed, kwargs: dict, limit_threads: bool = True) -> BatchResult:
    """The work of one chunk: ``solve_batch(ions, c_feed, **kwargs, strict=False)``."""
    if limit_threads:
        _limit_threads()
    from .solver import solve_batch
    return solve_batch(ions, c_feed, strict=False, **kwargs)


def guarded_task(ions, c_feed, kwargs: dict, limit_threads: bool = True):
    """Task body: :func:`_solve_chunk_task`, or a :class:`ChunkFailure` instead of an exception
    (so that the scheduler neither retries nor aborts the other chunks)."""
    try:
        return _solve_chunk_task(ions, c_feed, kwargs, limit_threads)
    except Exception as exc:  # noqa: BLE001 - isolate the chunk, report its cause
        return ChunkFailure(int(np.shape(c_feed)[0]), _failure_message(exc), traceback.format_exc())


# ---------------------------------------------------------------------- helpers
def _batch_size(c: np.ndarray, per_case: dict) -> int:
    sizes = [c.shape[0]] + [np.size(v) for v in per_case.values() if v is not None]
    return max(sizes)


def _prepare(ions, c_feed, per_case: dict, db: IonDatabase):
    """Whole-batch checks and broadcasting; returns (names, c (B, n), per_case sliceable, B)."""
    names = [db.get(i).name for i in ions]  # UnknownIonError for the whole batch
    if len(set(names)) != len(names):
        raise InvalidInputError(f"duplicate ions in {list(ions)} (canonical {names})")
    c = np.atleast_2d(np.asarray(c_feed, dtype=float))
    if c.ndim != 2 or c.shape[1] != len(names):
        raise InvalidInputError(f"c_feed has shape {np.shape(c_feed)} for {len(names)} ions {names}")
    if (per_case["flux_m_s"] is None) == (per_case["pressure_pa"] is None):
        raise InvalidInputError("give exactly one of flux_m_s and pressure_pa")
    B = _batch_size(c, per_case)
    if c.shape[0] == 1 and B > 1:
        c = np.repeat(c, B, axis=0)
    if c.shape[0] != B:
        raise InvalidInputError(f"c_feed has {c.shape[0]} rows but the batch has {B} cases")
    out = {}
    for name, v in per_case.items():
        if v is None:
            continue
        arr = np.asarray(v)
        if arr.ndim == 0:
            out[name] = v                      # scalar: broadcast by every chunk's solve_batch
        elif arr.shape == (B,):
            out[name] = arr
        else:
            raise InvalidInputError(f"{name} must be a scalar or have {B} entries, got shape {arr.shape}")
    return names, c, out, B


def _chunk_bounds(B: int, chunk_size: int, parallelism: int) -> list[tuple[int, int]]:
    """Near-equal chunks of at most ``chunk_size`` cases, and at least
    :data:`CHUNKS_PER_WORKER` per worker thread (``parallelism``) when ``B`` allows."""
    if chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be >= 1, got {chunk_size!r}")
    k = min(B, max(math.ceil(B / chunk_size), CHUNKS_PER_WORKER * parallelism, 1))
    edges = np.linspace(0, B, k + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in pairwise(edges) if b > a]


def _failed_part(n: int, msg: str, template: BatchResult | None, c_chunk: np.ndarray,
                 per_chunk: dict, names: list[str], charges: np.ndarray,
                 options: TransportOptions) -> BatchResult:
    """A BatchResult of ``n`` failed cases shaped like ``template`` (or from the options if None)."""
    if template is None:
        from . import chebyshev
        template = _skeleton(names, charges, c_chunk.shape[1], options, chebyshev)

    def blank(arr: np.ndarray) -> np.ndarray:
        shape = (n,) + arr.shape[1:]
        if arr.dtype.kind == "b":
            return np.zeros(shape, bool)
        if arr.dtype.kind in "iu":
            return np.zeros(shape, arr.dtype)
        if arr.dtype.kind == "O":
            return np.full(shape, msg, dtype=object)
        return np.full(shape, np.nan)

    out = {}
    for f in fields(template):
        v = getattr(template, f.name)
        if f.name in SHARED_FIELDS or v is None:
            out[f.name] = v
        elif isinstance(v, dict):
            out[f.name] = {k: blank(a) for k, a in v.items()}
        elif isinstance(v, np.ndarray):
            out[f.name] = blank(v)
        else:
            out[f.name] = v
    res = BatchResult(**out)
    res.converged = np.zeros(n, bool)
    res.reason = np.full(n, msg, dtype=object)
    res.residual = np.full(n, np.inf)
    if res.c_feed.shape == c_chunk.shape:
        res.c_feed = c_chunk.astype(float, copy=True)
    for name, attr in (("flux_m_s", "flux_m_s"), ("thickness_m", "thickness_m")):
        v = per_chunk.get(name)
        if v is not None:
            try:
                setattr(res, attr, np.broadcast_to(np.asarray(v, float), (n,)).copy())
            except (TypeError, ValueError):
                pass
    return res


def _skeleton(names, charges, n_ions, options: TransportOptions, chebyshev) -> BatchResult:
    """Zero-case BatchResult used as the template when every chunk failed."""
    from .results import PARTITION_KEYS
    M = len(chebyshev.nodes(options.nodes))
    def e(*shape):
        return np.zeros((0, *shape))

    film = options.polarization == "film"
    Mf = len(chebyshev.nodes(options.film_nodes)) if film else 0
    return BatchResult(
        ions=tuple(names) if len(names) == n_ions else tuple(names) + ("?",) * (n_ions - len(names)),
        charges=charges if len(charges) == n_ions else np.full(n_ions, np.nan), flux_m_s=e(), converged=np.zeros(0, bool),
        iterations=np.zeros(0, int), residual=e(), reason=np.zeros(0, object), c_feed=e(n_ions),
        c_wall=e(n_ions), c_perm=e(n_ions), ion_flux=e(n_ions),
        partition_feed={k: e(n_ions) for k in PARTITION_KEYS}, partition_perm={k: e(n_ions) for k in PARTITION_KEYS},
        donnan_feed_V=e(), donnan_perm_V=e(), flux_split=e(n_ions, 3), x=chebyshev.nodes(options.nodes),
        thickness_m=e(), c_layer=e(n_ions, M), phi_layer=e(M),
        y_film=chebyshev.nodes(options.film_nodes) if film else None,
        c_film=e(n_ions, Mf) if film else None, phi_film=e(Mf) if film else None,
        continuation_steps=np.zeros(0, int), solution=None, meta={"options": options})


class _Progress:
    """Adapts ``progress`` (callable(done, total), a rich Progress, or None)."""

    def __init__(self, progress, total: int):
        self.total, self.done = total, 0
        self._fn: Callable[[int, int], Any] | None = None
        if progress is None:
            return
        if hasattr(progress, "add_task") and hasattr(progress, "update"):
            task = progress.add_task("DSPM-DE cases", total=total)
            self._fn = lambda done, tot: progress.update(task, completed=done)
        elif callable(progress):
            self._fn = progress
        else:
            raise InvalidInputError(f"progress must be callable(done, total) or a rich Progress, got {progress!r}")
        self._fn(0, total)

    def add(self, n: int) -> None:
        self.done += n
        if self._fn is not None and n:
            self._fn(self.done, self.total)


@contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch intra-op threads (restored afterwards)."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def _env(values: dict):
    """Temporarily set environment variables (inherited by processes spawned meanwhile)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---------------------------------------------------------------------- runners
def _run_local(kind: str, tasks: list, n_workers: int, prog: _Progress) -> list:
    import dask
    from dask.callbacks import Callback

    def posttask(key, result, dsk, state, worker_id):
        if isinstance(result, (BatchResult, ChunkFailure)):
            prog.add(len(result) if isinstance(result, BatchResult) else result.n_cases)

    limit = kind == "processes"
    delayed = [dask.delayed(guarded_task, pure=False)(ions, c, kw, limit) for ions, c, kw in tasks]
    scheduler = {"threads": "threads", "processes": "processes", "sync": "sync"}[kind]
    with Callback(posttask=posttask):
        if kind == "threads":
            with torch_threads(1):
                return list(dask.compute(*delayed, scheduler=scheduler, num_workers=n_workers))
        if kind == "processes":
            with _env({v: "1" for v in THREAD_ENV}):
                return list(dask.compute(*delayed, scheduler=scheduler, num_workers=n_workers))
        return list(dask.compute(*delayed, scheduler=scheduler))


def _run_distributed(client, tasks: list, prog: _Progress) -> list:
    from distributed import as_completed

    futures = [client.submit(guarded_task, ions, c, kw, True, pure=False) for ions, c, kw in tasks]
    index = {f.key: i for i, f in enumerate(futures)}
    out: list = [None] * len(futures)
    try:
        for fut in as_completed(futures, loop=client.loop):
            i = index[fut.key]
            try:
                out[i] = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker, (un)pickling errors
                out[i] = ChunkFailure(int(np.shape(tasks[i][1])[0]), _failure_message(exc),
                                       traceback.format_exc())
            prog.add(len(out[i]) if isinstance(out[i], BatchResult) else out[i].n_cases)
    finally:
        for f in futures:
            f.release()
    return out


@contextmanager
def client_for(scheduler, n_workers: int):
    """Yield (client, label) for the distributed schedulers, closing what this call created."""
    from distributed import Client
    if isinstance(scheduler, Client):
        yield scheduler, "client"
        return
    if scheduler is None or scheduler == "local":
        from distributed import LocalCluster
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR,
                               env={v: "1" for v in THREAD_ENV})
        try:
            client = Client(cluster, set_as_default=False)
            try:
                yield client, "local"
            finally:
                client.close()
        finally:
            cluster.close()
        return
    client = Client(scheduler, set_as_default=False)
    try:
        yield client, str(scheduler)
    finally:
        client.close()


def _parallelism(scheduler, n_workers: int) -> int:
    """Worker threads of a Client, or of a local scheduler."""
    from distributed import Client
    if isinstance(scheduler, Client):
        return max(1, sum(scheduler.nthreads().values()))
    return 0 if scheduler == "sync" else n_workers


# ---------------------------------------------------------------------- the API
def solve_batch_parallel(ions: Sequence[str], c_feed, *, flux_m_s=None, pressure_pa=None, pore_radius_m,
                         thickness_m, pore_dielectric, charge_density_mol_m3, temperature_K=298.15,
                         options: TransportOptions = DEFAULT_OPTIONS, ion_db: IonDatabase | None = None,
                         balance_with: str | None = None, strict: bool = False, chunk_size: int = 2048,
                         workers: int = 1, scheduler=None, n_workers: int | None = None,
                         progress=None) -> BatchResult:
    """:func:`~nanosep.transport.solver.solve_batch` with the chunks solved as dask tasks.

    Inputs and result are those of ``solve_batch`` (see its docstring); in addition

    chunk_size: largest number of cases per task.  The batch is split into near-equal
        chunks, and into at least two per worker thread (so a batch smaller than
        ``chunk_size`` is still spread over the workers, and uneven chunks balance).
    scheduler: ``None``/``"local"`` (a LocalCluster created and closed by the call),
        ``"threads"``, ``"processes"``, ``"sync"``, an address ``"tcp://host:port"``,
        or an existing :class:`distributed.Client` (used, not closed).
    n_workers: worker processes of the LocalCluster, or threads/processes of the
        local dask schedulers (default 2); ignored for an address or a Client.
    progress: ``callable(done_cases, total_cases)``, called with 0 first and then
        after every chunk with increasing counts, or a ``rich.progress.Progress``
        (a task is added to it and advanced).
    workers: threads inside each chunk's ``solve_batch`` call (default 1).
    strict: raise :class:`ConvergenceError` after gathering if any case failed.

    A chunk that raises does not abort the batch: its cases come back with
    ``converged=False`` and ``reason="chunk failed: ..."`` (module docstring).
    ``result.meta["parallel"]`` records the scheduler, chunk bounds, failed chunks
    and timings.
    """
    t0 = time.perf_counter()
    n_workers = 2 if n_workers is None else int(n_workers)
    if n_workers < 1:
        raise InvalidInputError(f"n_workers must be >= 1, got {n_workers!r}")
    if workers < 1:
        raise InvalidInputError(f"workers must be >= 1, got {workers!r}")
    db = ion_db or IonDatabase.default()
    per_case = {"flux_m_s": flux_m_s, "pressure_pa": pressure_pa, "pore_radius_m": pore_radius_m,
                "thickness_m": thickness_m, "pore_dielectric": pore_dielectric,
                "charge_density_mol_m3": charge_density_mol_m3, "temperature_K": temperature_K}
    names, c, per_case, B = _prepare(ions, c_feed, per_case, db)
    shared = {"options": options, "ion_db": ion_db, "balance_with": balance_with, "workers": workers}
    prog = _Progress(progress, B)

    def make_tasks(parallelism: int):
        bounds = _chunk_bounds(B, chunk_size, parallelism)
        tasks = []
        for a, b in bounds:
            kw = {k: (v[a:b] if isinstance(v, np.ndarray) else v) for k, v in per_case.items()}
            kw.update(shared, chunk_size=max(1, math.ceil((b - a) / workers)))
            tasks.append((names, c[a:b], kw))
        return bounds, tasks

    from distributed import Client
    local = isinstance(scheduler, str) and scheduler in _LOCAL_SCHEDULERS
    if not (local or scheduler is None or scheduler == "local" or isinstance(scheduler, Client)
            or (isinstance(scheduler, str) and "://" in scheduler)):
        raise InvalidInputError(f"scheduler={scheduler!r}: use None, 'local', 'threads', 'processes', 'sync', "
                                "an address 'tcp://host:port' or a distributed.Client")
    if local:
        label = scheduler
        bounds, tasks = make_tasks(_parallelism(scheduler, n_workers))
        t1 = time.perf_counter()
        outs = _run_local(scheduler, tasks, n_workers, prog)
        t2 = time.perf_counter()
    else:
        with client_for(scheduler, n_workers) as (client, label):
            bounds, tasks = make_tasks(_parallelism(client, n_workers))
            t1 = time.perf_counter()
            outs = _run_distributed(client, tasks, prog)
            t2 = time.perf_counter()

    template = next((o for o in outs if isinstance(o, BatchResult)), None)
    parts, failures = [], []
    for i, ((a, b), (_, cc, kw), o) in enumerate(zip(bounds, tasks, outs)):
        if isinstance(o, ChunkFailure):
            log.warning("cases %d-%d: %s\n%s", a, b - 1, o.message, o.traceback)
            failures.append({"chunk": i, "cases": (a, b), "message": o.message, "traceback": o.traceback})
            parts.append(_failed_part(b - a, o.message, template, cc, kw, names,
                                      np.array([db.get(nm).charge for nm in names], float), options))
        else:
            parts.append(o)
    result = concat_results(parts)
    result.meta = dict(result.meta)
    result.meta["parallel"] = {
        "scheduler": label, "n_chunks": len(bounds), "chunks": bounds, "failures": failures,
        "seconds_setup": t1 - t0, "seconds_solve": t2 - t1,
        "seconds_total": time.perf_counter() - t0}
    if strict and not result.converged.all():
        b = int(np.flatnonzero(~result.converged)[0])
        raise ConvergenceError(f"case {b} did not converge ({result.reason[b]}); "
                               f"{int((~result.converged).sum())} of {B} cases failed")
    return result
