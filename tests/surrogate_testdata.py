"""Small synthetic surrogate datasets in the DESIGN.md layout, for the surrogate tests.

The outputs are smooth analytic functions of the (scaled) inputs, shaped like
rejections (values in (-1, 1)), so a tiny network fits them well and the
tests stay fast. A few cases are marked failed (converged = False, NaN
outputs) to exercise the explicit drop.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import qmc

ROOT = Path(__file__).resolve().parents[1]
NA2SO4_CASE = ROOT / "cases" / "surrogates" / "seed002_na2so4_element.yaml"
MIXTURE_CASE = ROOT / "cases" / "surrogates" / "seed002_nacl_na2so4_element.yaml"


def analytic_outputs(case, X: np.ndarray) -> np.ndarray:
    """Rejection-like smooth functions of the inputs mapped to [-1, 1] (in each input's transform t)."""
    u = []
    for j, v in enumerate(case.inputs):
        t, lo, hi = (v.transform.forward(a) for a in (X[:, j], v.low, v.high))
        u.append(2 * (t - lo) / (hi - lo) - 1)
    u = np.column_stack(u)
    w = np.linspace(0.8, -0.6, u.shape[1])
    cols = []
    for k in range(len(case.outputs)):
        s = u @ np.roll(w, k) + 0.3 * u[:, 0] * u[:, -1]
        cols.append(0.9 * np.tanh(0.8 + s) - 0.2 * k)
    return np.column_stack(cols)


def write_analytic_dataset(directory: Path, case, n: int = 600, seed: int = 3, n_failed: int = 7,
                           chunk_size: int = 250) -> Path:
    """Write design.parquet, chunks/chunk-*.parquet and manifest.json for ``case``."""
    directory = Path(directory)
    (directory / "chunks").mkdir(parents=True, exist_ok=True)
    u = qmc.Sobol(len(case.inputs), seed=seed).random_base2(int(np.ceil(np.log2(n))))[:n]
    cols = {}
    for j, v in enumerate(case.inputs):  # uniform in each input's transform t, as domain.design
        a, b = v.transform.forward(v.low), v.transform.forward(v.high)
        cols[v.name] = np.clip(v.transform.inverse(a + (b - a) * u[:, j]), v.low, v.high)
    design = pd.DataFrame({"case_id": np.arange(n), **cols})
    design.to_parquet(directory / "design.parquet")
    Y = analytic_outputs(case, design[case.input_names].to_numpy())
    frame = design.copy()
    for k, name in enumerate(case.output_names):
        frame[name] = Y[:, k]
    failed = np.zeros(n, bool)
    failed[np.random.default_rng(seed).choice(n, n_failed, replace=False)] = True
    frame["converged"] = ~failed
    frame["reason"] = np.where(failed, "synthetic failure", "")
    frame["newton_iterations"] = 5
    for name in case.output_names:
        frame.loc[failed, name] = np.nan
    n_chunks = 0
    for n_chunks, start in enumerate(range(0, n, chunk_size), start=1):
        frame.iloc[start:start + chunk_size].to_parquet(directory / "chunks" / f"chunk-{n_chunks - 1:05d}.parquet")
    (directory / "manifest.json").write_text(json.dumps({"case": case.to_dict(), "n_chunks": n_chunks,
                                                         "chunk_size": chunk_size, "synthetic": True}))
    return directory


def log_offset_mixture_case(directory: Path) -> Path:
    """The mixture case file with seed 002's full flux range, 0-50 um/s on a ``log_offset`` scale (offset
    0.01 um/s; the shipped case uses 1e-6 um/s), written into ``directory``: the embedding parity tests train a
    small synthetic net on it, with a ``log_offset`` input whose lower bound is 0."""
    import yaml

    d = yaml.safe_load(MIXTURE_CASE.read_text())
    d["inputs"] = [{"name": "flux_um_s", "low": 0.0, "high": 50.0, "scale": "log_offset", "offset": 0.01}
                   if v["name"] == "flux_um_s" else v for v in d["inputs"]]
    path = Path(directory) / MIXTURE_CASE.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def trained_export(base: Path, case_path: Path | None = None, hidden: int = 5) -> Path:
    """Train a small shallow net on the analytic data of ``case_path`` (default: the mixture case with a
    log_offset flux, :func:`log_offset_mixture_case`) and export it (ONNX + card).

    Cached under ``base``; the session fixture ``card_path`` of ``conftest.py`` calls it once
    so that the test modules of one run share a single training and export.
    """
    import torch
    from nanosep.surrogates.domain import load_surrogate_case
    from nanosep.surrogates.onnx_io import export_model_dir
    from nanosep.surrogates.training import train_case

    if case_path is None:
        case_path = log_offset_mixture_case(Path(base) / "case")
    case = load_surrogate_case(case_path)
    root = Path(base) / f"shared_{case.name}_{hidden}"
    card = root / "export" / f"{case.name}.card.json"
    if card.exists():
        return card
    torch.set_num_threads(1)
    data = write_analytic_dataset(root / "data", case, n=400)
    train_case(case_path, data, root / "model", hidden=hidden, restarts=1, seed=1, max_epochs=150)
    return export_model_dir(root / "model", root / "export", n_check=200)
