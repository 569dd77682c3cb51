"""Dataset generation through dask: cases per second and the overhead versus a direct call.

Case: ``cases/surrogates/seed002_nacl_na2so4_element.yaml`` (seed 002's NaCl + Na2SO4
element: X -1000..-10 mol/m3, 75-150 nm, 0-50 um/s, Cl- and SO4-2 0.01-50 mol/m3), a
scrambled Sobol design of ``--n`` points (default 10^5).

* dask: :func:`nanosep.surrogates.sampling.run_sampling` on a LocalCluster of 2 worker
  processes (or ``--scheduler tcp://host:port``), chunks written to Parquet in a
  temporary folder; the wall time includes starting and closing the cluster, which is
  also timed on its own.
* dask warm: the same on a LocalCluster started beforehand whose workers already imported
  the engine (what a long-lived cluster or ``--scheduler`` address costs per run).
* direct: the same rows mapped by ``engine_arguments`` and solved by ``solve_rows`` (one
  ``solve_batch`` call per chunk of the same size) in this process, one thread, no
  Parquet.  For large n only the first ``--direct-n`` rows (default 4096) are solved
  directly (a prefix of a Sobol sequence covers the domain evenly) and the time is
  scaled to n; the table says so.

Prints a table; writes results/benchmarks/sampling_dask.json.

    python benchmarks/sampling_dask.py [--quick] [--n N] [--scheduler tcp://host:port]
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, metadata, print_metadata, results_dir, write_json

CASE = REPO / "cases" / "surrogates" / "seed002_nacl_na2so4_element.yaml"


def cluster_startup_s(n_workers: int) -> float:
    """Wall time to start and close a LocalCluster + Client, with one trivial task per worker."""
    from nanosep.transport import parallel

    t = time.perf_counter()
    with parallel.client_for(None, n_workers) as (client, _):
        client.gather(client.map(lambda x: x, range(n_workers), pure=False))
    return time.perf_counter() - t


def run_warm(case, n: int, chunk_size: int, n_workers: int) -> tuple[float, float]:
    """run_sampling on an already started LocalCluster whose workers imported the engine.

    Returns (seconds of the warm run, seconds to start the cluster and import on the workers)."""
    from nanosep.surrogates.sampling import run_sampling
    from nanosep.transport import parallel

    t0 = time.perf_counter()
    with parallel.client_for(None, n_workers) as (client, _):
        client.run(lambda: __import__("nanosep.transport.solver") and None)
        t1 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="nanosep_sampling_") as tmp:
            run_sampling(case, Path(tmp), n=n, chunk_size=chunk_size, scheduler=client)
        t2 = time.perf_counter()
    return t2 - t1, t1 - t0


def run_direct(case, df, chunk_size: int) -> tuple[float, int]:
    """Solve the rows in this process (one torch thread), chunk by chunk; returns (seconds, converged)."""
    import torch
    from nanosep.surrogates.sampling import engine_arguments, solve_rows

    torch.set_num_threads(1)
    batch = engine_arguments(case, df)
    t = time.perf_counter()
    conv = 0
    for a in range(0, len(df), chunk_size):
        conv += int(solve_rows(batch.take(slice(a, a + chunk_size)))["converged"].sum())
    return time.perf_counter() - t, conv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="n = 2^13 (8192) and 2048 direct cases")
    ap.add_argument("--n", type=int, default=None, help="design size (default 100000; 8192 with --quick)")
    ap.add_argument("--scheduler", default=None, help="dask scheduler address (default: a LocalCluster)")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    ap.add_argument("--chunk-size", type=int, default=512, help="cases per chunk (default 512)")
    ap.add_argument("--direct-n", type=int, default=None, help="rows solved directly (default 4096; 2048 --quick)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for handler in logging.getLogger().handlers:       # distributed sets its loggers to INFO itself
        handler.setLevel(logging.WARNING)
    n = args.n or (8192 if args.quick else 100_000)
    direct_n = min(n, args.direct_n or (2048 if args.quick else 4096))

    from nanosep.surrogates.domain import design, load_surrogate_case
    from nanosep.surrogates.sampling import run_sampling

    meta = metadata()
    print_metadata(meta)
    case = load_surrogate_case(CASE)
    df = design(case, n=n)

    startup = cluster_startup_s(args.workers) if args.scheduler is None else float("nan")
    with tempfile.TemporaryDirectory(prefix="nanosep_sampling_") as tmp:
        rep = run_sampling(case, Path(tmp), n=n, chunk_size=args.chunk_size, scheduler=args.scheduler,
                           n_workers=args.workers)
    warm = run_warm(case, n, args.chunk_size, args.workers) if args.scheduler is None else (float("nan"),) * 2
    t_direct, conv_direct = run_direct(case, df.iloc[:direct_n], args.chunk_size)
    direct_rate = direct_n / t_direct
    dask_rate = n / rep.seconds
    t_direct_n = t_direct * n / direct_n
    rows = {
        "case": case.name, "n": n, "chunk_size": args.chunk_size, "scheduler": rep.scheduler,
        "workers": args.workers if args.scheduler is None else None,
        "dask_seconds": rep.seconds, "dask_cases_per_s": dask_rate,
        "dask_converged": rep.n_converged, "dask_failed": rep.n_failed,
        "cluster_startup_close_s": startup,
        "warm_client_seconds": warm[0], "warm_client_cases_per_s": n / warm[0],
        "warm_start_and_worker_imports_s": warm[1],
        "direct_n": direct_n, "direct_seconds": t_direct, "direct_cases_per_s": direct_rate,
        "direct_converged_fraction": conv_direct / direct_n,
        "direct_seconds_for_n": t_direct_n, "direct_extrapolated": direct_n < n,
        "speedup": t_direct_n / rep.seconds,
        "overhead_s": rep.seconds - t_direct_n / args.workers,
    }
    print(f"\n{case.name}: {n} Sobol cases, chunks of {args.chunk_size}")
    print(f"{'how':<44}{'wall s':>10}{'cases/s':>10}")
    print(f"{'dask ' + rep.scheduler + ' (incl. cluster start/close)':<44}{rep.seconds:>10.1f}{dask_rate:>10.0f}")
    if args.scheduler is None:
        print(f"{'  of which LocalCluster start + close (alone)':<44}{startup:>10.1f}")
    if args.scheduler is None:
        print(f"{'dask warm Client (workers imported nanosep)':<44}{warm[0]:>10.1f}{n / warm[0]:>10.0f}")
        print(f"{'  start + worker imports before it':<44}{warm[1]:>10.1f}")
    label = f"direct, 1 process, {direct_n} cases"
    print(f"{label:<44}{t_direct:>10.1f}{direct_rate:>10.0f}")
    if direct_n < n:
        print(f"{'direct scaled to ' + str(n) + ' cases':<44}{t_direct_n:>10.1f}")
    print(f"speed-up {rows['speedup']:.2f} on {args.workers} workers (ideal {args.workers}); "
          f"overhead vs ideal {rows['overhead_s']:.1f} s; converged {rep.n_converged}/{n} "
          f"(direct subset {conv_direct}/{direct_n})")
    path = results_dir() / "sampling_dask.json"
    write_json(path, {"meta": meta, "results": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
