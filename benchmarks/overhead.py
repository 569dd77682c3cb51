"""Python time around the compiled kernel in ``solve_batch``: microseconds per case in each phase, cases/s.

The batches are benchmarks/throughput.py's (``make_batch``, ``IONS``, ``CONFIGS``: 5 ions, the Pitzer + film
target case, Davies + film, ideal without polarization).  Each (config, B, workers) point is solved
``--repeats`` times with ``chunk_size = ceil(B / workers)`` (as throughput.py); the median wall time gives
cases/s.  As many instrumented solves split the time of every thread into phases (exclusive CPU time of the
thread, ``time.thread_time``, or wall time with ``--wall-phases``; summed over the threads, per case, median
over the solves):

* ``kernel``: ``compiled.solve_cases`` (numba, GIL released), including its own Python set-up (grid operators,
  activity and guess parameters; ~1-2 ms per call);
* ``engine``: ``solver._solve_chunk`` (cases the kernel does not cover or fails);
* ``feed_equilibrium``, ``build_parameters``, ``resolution`` (``DSPMDESystem.resolution``);
* ``collect``: ``solver._collect`` without its activity calls; ``activity``: the host activity model (ln gamma at
  the interface points);
* ``concat_take``: ``BatchResult.concat`` / ``take`` (and ``put``);
* ``other``: the rest of the threads' time (refinement bookkeeping, set-up, the main thread's validation and
  assembly; its wait for the chunk threads is left out).

``non_kernel`` = everything but ``kernel`` and ``engine``: the Python time the kernel's speed cannot hide.  The
instrumentation (a few hundred wrapper calls) costs ~1 us per case.

    nice -n 10 python benchmarks/overhead.py [--batch-sizes 1000 4000] [--workers 1 2] [--repeats 5]

Writes results/benchmarks/overhead.json (``--out`` changes the stem).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import results_dir, start_run, write_json
from nanosep.transport import compiled, solver
from nanosep.transport.results import BatchResult
from nanosep.transport.system import DSPMDESystem
from throughput import CONFIGS, IONS, make_batch

#: phases that are not Python overhead: the solves themselves, and the main thread waiting for the chunk threads
SOLVE_PHASES = ("kernel", "engine", "wait")


class PhaseTimer:
    """Exclusive time per phase and thread: a call inside a timed call is charged to the inner phase.  ``clock``:
    ``time.thread_time`` (default: the thread's CPU time, robust on a shared machine; time spent waiting for the
    GIL or for a core is not counted) or ``time.perf_counter`` (wall)."""

    def __init__(self, clock=time.thread_time) -> None:
        self.clock = clock
        self.total: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._local = threading.local()
        self._lock = threading.Lock()

    def wrap(self, phase: str, fn):
        def timed(*args, **kwargs):
            stack = self._local.__dict__.setdefault("stack", [])
            now = self.clock()
            if stack:   # pause the enclosing phase
                outer, t_outer = stack[-1]
                self._add(outer, now - t_outer)
            stack.append([phase, now])
            try:
                return fn(*args, **kwargs)
            finally:
                end = self.clock()
                _, t0 = stack.pop()
                self._add(phase, end - t0, call=True)
                if stack:
                    stack[-1][1] = end
        return timed

    def _add(self, phase: str, dt: float, call: bool = False) -> None:
        with self._lock:
            self.total[phase] += dt
            self.calls[phase] += call


@contextlib.contextmanager
def instrumented(timer: PhaseTimer):
    """Wrap the phases of ``solve_batch`` (module attributes, restored on exit); names that a version of the
    solver does not have are skipped."""
    targets = [(compiled, "solve_cases", "kernel"), (solver, "_solve_chunk", "engine"),
               (solver, "feed_equilibrium", "feed_equilibrium"), (solver, "_collect", "collect"),
               (solver, "_refine", "other"), (solver, "build_parameters", "build_parameters"),
               (solver, "_solve_and_collect", "other"),
               (solver._ActivityFn, "__call__", "activity"), (solver._ActivityFn, "values", "activity"),
               (solver, "_interface_ln_gamma", "activity"),
               (DSPMDESystem, "resolution", "resolution"),
               (BatchResult, "take", "concat_take"), (BatchResult, "_map_cases", "concat_take"),
               (BatchResult, "put", "concat_take")]
    pool = solver.ThreadPoolExecutor

    class TimedPool(pool):
        def map(self, fn, *iterables, **kw):   # the main thread's wait for the chunk threads
            return timer.wrap("wait", lambda: list(super(TimedPool, self).map(fn, *iterables, **kw)))()

    targets.append((solver, "ThreadPoolExecutor", None))
    targets.append((solver, "solve_batch", "other"))
    saved = []
    try:
        for owner, name, phase in targets:
            raw = owner.__dict__.get(name)
            if raw is None:
                continue
            fn = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
            wrapped = TimedPool if phase is None else timer.wrap(phase, fn)
            if isinstance(raw, classmethod):
                wrapped = classmethod(wrapped)
            elif isinstance(raw, staticmethod):
                wrapped = staticmethod(wrapped)
            saved.append((owner, name, raw))
            setattr(owner, name, wrapped)
        yield timer
    finally:
        for owner, name, raw in reversed(saved):
            setattr(owner, name, raw)


def solve(batch: dict, B: int, options, workers: int):
    kw = {k: v[:B] for k, v in batch.items()}
    t0 = time.perf_counter()
    res = solver.solve_batch(IONS, options=options, chunk_size=max(1, math.ceil(B / workers)), workers=workers, **kw)
    return time.perf_counter() - t0, res


def measure(batch: dict, B: int, options, workers: int, repeats: int, clock) -> dict:
    """Median wall time of ``repeats`` solves, and the median phase split of ``repeats`` instrumented solves
    (us per case, summed over the threads)."""
    walls = [solve(batch, B, options, workers)[0] for _ in range(repeats)]
    splits, wall_i = [], []
    for _ in range(repeats):
        timer = PhaseTimer(clock)
        with instrumented(timer):
            # the whole solve_batch call on the main thread is the "other" phase's frame
            wall_i.append(solve(batch, B, options, workers)[0])
        splits.append(timer.total)
    us = {k: 1e6 * statistics.median(sp.get(k, 0.0) for sp in splits) / B for k in set().union(*splits)}
    non_kernel = sum(v for k, v in us.items() if k not in SOLVE_PHASES)
    wall = statistics.median(walls)
    return {"batch": B, "workers": workers, "repeats": repeats, "seconds_median": wall, "seconds_min": min(walls),
            "cases_per_s": B / wall, "us_per_case_wall": 1e6 * wall / B,
            "instrumented_seconds": statistics.median(wall_i), "kernel_us": us.get("kernel", 0.0),
            "engine_us": us.get("engine", 0.0), "non_kernel_us": non_kernel,
            "phases_us": {k: round(v, 2) for k, v in sorted(us.items())}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=["pitzer_film", "davies_film", "ideal_none"])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1000, 4000], help="batch sizes (default 1000 4000)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    ap.add_argument("--repeats", type=int, default=5, help="timed solves per point, median reported (default 5)")
    ap.add_argument("--wall-phases", action="store_true",
                    help="split the phases by wall time (default: each thread's CPU time, robust on a loaded host)")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--out", default="overhead", help="output stem in results/benchmarks/ (default overhead)")
    a = ap.parse_args(argv)
    meta = start_run(a.torch_threads)
    batch = make_batch(max(a.batch_sizes))
    clock = time.perf_counter if a.wall_phases else time.thread_time
    meta["phase_clock"] = "wall" if a.wall_phases else "thread CPU"
    rows = []
    print(f"{'config':<12} {'B':>5} {'w':>2} {'cases/s':>8} {'us/case':>8} {'kernel':>7} {'engine':>7} "
          f"{'non-kern':>8}   phases (us/case, {meta['phase_clock']} time summed over threads)")
    for cname in a.configs:
        opt = CONFIGS[cname]
        solve(batch, 50, opt, 1)   # warm-up: numba cache load, imports
        for B in a.batch_sizes:
            for w in a.workers:
                row = dict(config=cname, **measure(batch, B, opt, w, a.repeats, clock))
                rows.append(row)
                ph = " ".join(f"{k}={v:.1f}" for k, v in row["phases_us"].items() if k not in SOLVE_PHASES)
                print(f"{cname:<12} {B:>5} {w:>2} {row['cases_per_s']:>8.0f} {row['us_per_case_wall']:>8.1f} "
                      f"{row['kernel_us']:>7.1f} {row['engine_us']:>7.1f} {row['non_kernel_us']:>8.1f}   {ph}")
    meta["loadavg_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
    print(f"# load avg at end {meta['loadavg_end']}")
    out = results_dir() / f"{a.out}.json"
    write_json(out, {"meta": meta, "ions": IONS, "rows": rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
