"""Shipped element surrogates vs the exact transport engine on a fresh held-out Sobol design (issue 3 target).

For every shipped element model (``surrogates/shipped/<name>``) a scrambled-Sobol design of its
surrogate case (``cases/surrogates/<name>.yaml``) is drawn with a seed no training design used
(default 31337, the seed of the held-out test sets in the cards), solved with the engine, and
compared with the ONNX surrogate (onnxruntime).  Reported per output: MAE and max |error| of
the rejection, and whether the issue-3 target (MAE <= 0.005, max <= 0.03) is met; failed engine
cases are counted and left out.

    python benchmarks/element_surrogate_accuracy.py [--n 4096] [--seed 31337] [--models a,b]

Prints a table and writes results/benchmarks/element_surrogate_accuracy.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import REPO, metadata, results_dir, write_json

MODELS = ("seed002_na2so4_element", "seed002_nacl_na2so4_element", "nf270_multi_ion_element")
MAE_TARGET, MAX_TARGET = 0.005, 0.03


def measure(name: str, n: int, seed: int) -> dict:
    """Per-output MAE / max |error| of the shipped model ``name`` on ``n`` fresh Sobol cases."""
    from nanosep.surrogates.demo_step import engine_outputs
    from nanosep.surrogates.domain import design, load_surrogate_case
    from nanosep.surrogates.onnx_io import load_shipped

    sur = load_shipped(name)
    case = load_surrogate_case(REPO / "cases" / "surrogates" / f"{name}.yaml")
    rows = design(case, n=n, method="sobol", seed=seed)
    t0 = time.perf_counter()
    y_eng, ok = engine_outputs(case, rows, sur.card.output_names)
    t_engine = time.perf_counter() - t0
    t0 = time.perf_counter()
    y_sur = sur.predict(rows[case.input_names].to_numpy()[ok])
    t_sur = time.perf_counter() - t0
    err = np.abs(y_sur - y_eng[ok])
    outputs = {o: {"mae": float(err[:, j].mean()), "max_abs": float(err[:, j].max()),
                   "meets": bool(err[:, j].mean() <= MAE_TARGET and err[:, j].max() <= MAX_TARGET)}
               for j, o in enumerate(sur.card.output_names)}
    return {"n": n, "n_failed": int((~ok).sum()), "seed": seed, "architecture": sur.card.architecture,
            "engine_s": t_engine, "surrogate_s": t_sur, "outputs": outputs}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=31337)
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args(argv)
    res = {"meta": metadata(), "models": {}}
    for name in args.models.split(","):
        r = measure(name, args.n, args.seed)
        res["models"][name] = r
        print(f"{name}: n = {r['n']} ({r['n_failed']} failed), hidden {r['architecture']['hidden']}, "
              f"engine {r['engine_s']:.1f} s, surrogate {r['surrogate_s']:.3f} s")
        for o, m in r["outputs"].items():
            print(f"  {o:18s} MAE {m['mae']:.5f}  max {m['max_abs']:.4f}  {'meets' if m['meets'] else 'MISSES'} target")
    write_json(results_dir() / "element_surrogate_accuracy.json", res)
    return res


if __name__ == "__main__":
    main()
