"""Shared helpers of the benchmark scripts: output directory, run metadata, CSV/JSON writers."""
from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results" / "benchmarks"

LMH = 1.0 / 3.6e6  # 1 L m-2 h-1 in m/s


def results_dir() -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except Exception:  # pragma: no cover - not a git checkout
        return "unknown"


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover
        return (float("nan"),) * 3


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not Linux
        pass
    return platform.processor() or "unknown"


def host_speed(repeats: int = 5) -> dict:
    """Two fixed workloads timed on this host (best of ``repeats``), to compare figures measured on different
    machines: ``python_loop_1e6_ms`` (10^6 additions in a Python loop: the interpreter's speed, which sets the cost of
    the Python around the kernel) and ``numba_lu40_us`` (one in-place LU without pivoting of a fixed diagonally
    dominant 40 x 40 matrix in numba: the small-matrix loop speed that sets the compiled kernel's cost; None without
    numba).  Measured 2026-11-23 on a Xeon @ 2.5 GHz KVM guest (2 vCPUs, tests running on the other): 103 ms, 44 us."""
    import time

    def loop():
        s = 0
        for i in range(1_000_000):
            s += i
        return s

    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        loop()
        best = min(best, time.perf_counter() - t0)
    out = {"python_loop_1e6_ms": round(1e3 * best, 2), "numba_lu40_us": None}
    try:
        import numpy as np
        from numba import njit
    except ImportError:  # pragma: no cover
        return out

    @njit(cache=False)
    def lu(A, B, n):
        for _ in range(n):
            B[:, :] = A
            m = B.shape[0]
            for k in range(m):
                inv = 1.0 / B[k, k]
                for r in range(k + 1, m):
                    f = B[r, k] * inv
                    for j in range(k + 1, m):
                        B[r, j] -= f * B[k, j]
        return B[m - 1, m - 1]

    A = np.add.outer(np.arange(40.0), np.arange(40.0)) % 7.0 + 40.0 * np.eye(40)
    B = np.empty_like(A)
    lu(A, B, 1)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        lu(A, B, 2000)
        best = min(best, (time.perf_counter() - t0) / 2000)
    out["numba_lu40_us"] = round(1e6 * best, 2)
    return out


def metadata() -> dict:
    """Where and when a benchmark ran (printed and stored next to the figures)."""
    try:
        import torch
        torch_threads = torch.get_num_threads()
        torch_version = torch.__version__
    except Exception:  # pragma: no cover
        torch_threads, torch_version = None, None
    import numpy
    return {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "commit": git_commit(),
        "host": platform.node(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch_version,
        "torch_threads": torch_threads,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "host_speed": host_speed(),
        "loadavg_1_5_15": [round(x, 2) for x in load_average()],
    }


def print_metadata(meta: dict) -> None:
    print(f"# date {meta['date']}  commit {meta['commit']}  host {meta['host']}")
    print(f"# cpus {meta['cpu_count']}  torch {meta['torch']} ({meta['torch_threads']} threads)  "
          f"load avg (1/5/15 min) {meta['loadavg_1_5_15']}")
    hs = meta.get("host_speed") or {}
    print(f"# cpu {meta.get('cpu_model')}  host speed: Python loop of 1e6 additions {hs.get('python_loop_1e6_ms')} ms, "
          f"numba 40 x 40 LU {hs.get('numba_lu40_us')} us (best of 5; compare hosts by these)")


def start_run(torch_threads: int | None = 1) -> dict:
    """A benchmark's first step: torch's intra-op threads set to ``torch_threads`` (None or 0: torch's default
    kept), then :func:`metadata`, printed and returned (measured after the thread setting, which it records)."""
    if torch_threads:
        import torch   # a hard dependency of nanosep
        torch.set_num_threads(torch_threads)
    meta = metadata()
    print_metadata(meta)
    return meta


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields: list[str] = []
    for r in rows:
        for k in r:
            if k not in fields:
                fields.append(k)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, default=_jsonable)


def _jsonable(o):
    try:
        import numpy as np
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except Exception:  # pragma: no cover
        pass
    return str(o)
