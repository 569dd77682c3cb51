"""Speed of the Pitzer activity model, alone and as a share of a transport solve.

1. Per call, for the throughput benchmark's 5 ions (Na+ Cl- Mg+2 SO4-2 Ca+2) and B cases x 4
   solutions (concentration shape ``(4, B, 5)``, as the engine's film/pore interfaces call it):
   ``ln_gamma``, ``ln_gamma_and_jacobian``, model build and ``take`` of half the cases, with one
   temperature and with per-case temperatures (278-333 K).  Also the reference path (the
   generic formula with a complex-step Jacobian, what the Pyomo twin uses) when it exists.
2. Share of a solve: ``solve_batch`` on B cases of ``benchmarks/throughput.py`` (config
   ``pitzer_film``, one chunk, one worker): CPU time of the solve and of the activity calls
   (timers around the engine's activity wrapper), then the same solve under cProfile
   (cumulative time of the entry points into ``transport/pitzer.py`` / ``activity.py``).

All figures are CPU times (``time.process_time``, single-threaded code), not wall-clock:
the host is shared, and wall-clock times there scale with the load.

Prints the figures; writes results/benchmarks/activity_speed.json.

    python benchmarks/activity_speed.py [--batch 500] [--repeats 30] [--no-profile]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import results_dir, start_run, write_json
from nanosep.transport import solve_batch
from nanosep.transport.activity import make_activity_model
from throughput import CONFIGS, IONS, make_batch


def per_call(fn, repeats: int) -> float:
    """Median CPU time of ``fn()`` in seconds (one warm-up call first)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def call_times(B: int, repeats: int) -> dict:
    rng = np.random.default_rng(1)
    c = np.exp(rng.uniform(np.log(0.1), np.log(500.0), (4, B, len(IONS))))
    T = rng.uniform(278.0, 333.0, B)
    idx = np.arange(0, B, 2)
    out = {}
    for label, temp in (("one_T", float(T[0])), ("per_case_T", T)):
        model = make_activity_model("pitzer", IONS, T=temp)
        row = {
            "ln_gamma_ms": 1e3 * per_call(lambda m=model: m.ln_gamma(c), repeats),
            "ln_gamma_and_jacobian_ms": 1e3 * per_call(lambda m=model: m.ln_gamma_and_jacobian(c), repeats),
            "build_ms": 1e3 * per_call(lambda t=temp: make_activity_model("pitzer", IONS, T=t), repeats),
        }
        if np.ndim(temp) == 1:
            row["take_ms"] = 1e3 * per_call(lambda m=model: m.take(idx), repeats)
        row["reference_complex_step_ms"] = 1e3 * per_call(
            lambda m=model: m.ln_gamma_and_jacobian_complex_step(c), max(3, repeats // 5))
        out[label] = row
    return out


def timed_share(B: int, repeats: int = 2) -> dict:
    """CPU seconds of ``solve_batch`` and of the activity calls inside it (timers around the engine's
    activity wrapper, no profiler); the minimum over ``repeats`` solves."""
    from nanosep.transport import solver

    batch = make_batch(B)
    opt = CONFIGS["pitzer_film"]
    spent = {"call": 0.0, "values": 0.0, "take": 0.0}
    counts = dict.fromkeys(spent, 0)
    originals = {k: getattr(solver._ActivityFn, {"call": "__call__"}.get(k, k)) for k in spent}

    def wrap(key, fn):
        def timed(*args, **kw):
            t0 = time.process_time()
            try:
                return fn(*args, **kw)
            finally:
                spent[key] += time.process_time() - t0
                counts[key] += 1
        return timed

    best = None
    try:
        for key, fn in originals.items():
            setattr(solver._ActivityFn, {"call": "__call__"}.get(key, key), wrap(key, fn))
        solve_batch(IONS, options=opt, chunk_size=B, workers=1, **{k: v[:5] for k, v in batch.items()})  # warm-up
        for _ in range(repeats):
            for k in spent:
                spent[k], counts[k] = 0.0, 0
            t0 = time.process_time()
            res = solve_batch(IONS, options=opt, chunk_size=B, workers=1, **batch)
            total = time.process_time() - t0
            if best is None or total < best["solve_cpu_s"]:
                best = {"batch": B, "solve_cpu_s": total, "activity_cpu_s": dict(spent), "calls": dict(counts),
                        "activity_share": sum(spent.values()) / total, "converged_frac": float(np.mean(res.converged))}
    finally:
        for key, fn in originals.items():
            setattr(solver._ActivityFn, {"call": "__call__"}.get(key, key), fn)
    return best


def profile_share(B: int) -> dict:
    """The same solve under cProfile (as the issue's profile): total and the cumulative time of the
    activity code's entry points (profiler overhead inflates Python-heavy code)."""
    batch = make_batch(B)
    opt = CONFIGS["pitzer_film"]
    solve_batch(IONS, options=opt, chunk_size=B, workers=1, **{k: v[:5] for k, v in batch.items()})  # warm-up
    prof = cProfile.Profile()
    prof.enable()
    res = solve_batch(IONS, options=opt, chunk_size=B, workers=1, **batch)
    prof.disable()
    st = pstats.Stats(prof)
    total = st.total_tt
    own = ("pitzer", "activity")
    entry_cum, calls = 0.0, {}
    for (fname, _line, func), (_cc, nc, _tt, _ct, callers) in st.stats.items():
        mod = Path(fname).stem
        if mod in own and "/transport/" in fname.replace("\\", "/"):
            entry_cum += sum(v[3] for k, v in callers.items() if Path(k[0]).stem not in own)
            calls[f"{mod}.{func}"] = nc
    return {"batch": B, "profile_total_s": total, "activity_cumulative_s": entry_cum,
            "activity_share": entry_cum / total, "converged_frac": float(np.mean(res.converged)),
            "calls": dict(sorted(calls.items(), key=lambda kv: -kv[1])[:6])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--batch", type=int, default=500, help="cases B (default 500)")
    ap.add_argument("--repeats", type=int, default=30, help="timed calls per figure (median; default 30)")
    ap.add_argument("--no-profile", action="store_true", help="skip the solve_batch profile")
    ap.add_argument("--out", default="activity_speed", help="output stem in results/benchmarks/")
    a = ap.parse_args(argv)
    meta = start_run(1)
    times = call_times(a.batch, a.repeats)
    print(f"\nPitzer, ions {' '.join(IONS)}, concentrations shape (4, {a.batch}, {len(IONS)}); CPU ms, median of {a.repeats}")
    for label, row in times.items():
        print(f"  [{label}] " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    result = {"meta": meta, "ions": IONS, "batch": a.batch, "per_call": times}
    if not a.no_profile:
        share = timed_share(a.batch)
        cpu = share["activity_cpu_s"]
        print(f"\nsolve_batch pitzer_film, B = {a.batch}, 1 worker (CPU time, min of 2): solve {share['solve_cpu_s']:.2f} s, "
              f"activity {sum(cpu.values()):.3f} s = {100 * share['activity_share']:.1f} % "
              f"(ln gamma + Jacobian {cpu['call']:.3f} s in {share['calls']['call']} calls, values only "
              f"{cpu['values']:.3f} s in {share['calls']['values']}, take {cpu['take']:.3f} s in "
              f"{share['calls']['take']}); converged {share['converged_frac']:.3f}")
        prof = profile_share(a.batch)
        print(f"same solve under cProfile: total {prof['profile_total_s']:.2f} s, activity code (cumulative from "
              f"its entry points) {prof['activity_cumulative_s']:.3f} s = {100 * prof['activity_share']:.1f} %")
        print("  most called: " + ", ".join(f"{k} {v}" for k, v in prof["calls"].items()))
        result["timed"] = share
        result["profile"] = prof
    out = results_dir() / f"{a.out}.json"
    write_json(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
