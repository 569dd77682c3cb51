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
        "loadavg_1_5_15": [round(x, 2) for x in load_average()],
    }


def print_metadata(meta: dict) -> None:
    print(f"# date {meta['date']}  commit {meta['commit']}  host {meta['host']}")
    print(f"# cpus {meta['cpu_count']}  torch {meta['torch']} ({meta['torch_threads']} threads)  "
          f"load avg (1/5/15 min) {meta['loadavg_1_5_15']}")


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
