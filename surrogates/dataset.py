"""Read a surrogate dataset directory back (DESIGN.md, "Dataset directory").

``read_dataset`` concatenates all chunk files, checks them against the
manifest and the design, and ``split_xy`` drops failed cases explicitly (the
count is logged and returned) and returns ``X``/``Y`` in the case's declared
input/output order.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nanosep.errors import InvalidInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class XY:
    """Converged cases as arrays in the declared order."""

    X: np.ndarray                 # (N, n_in) physical inputs
    Y: np.ndarray                 # (N, n_out) physical outputs
    case_id: np.ndarray           # (N,)
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    n_failed_dropped: int
    manifest_hash: str = ""


def manifest_hash(directory: str | Path) -> str:
    """sha256 of ``manifest.json`` (identifies the dataset in the model card)."""
    return hashlib.sha256((Path(directory) / "manifest.json").read_bytes()).hexdigest()


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / "manifest.json"
    if not path.exists():
        raise InvalidInputError(f"dataset {directory} has no manifest.json (not a finished dataset directory)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path} is not valid JSON: {exc}") from exc


def read_dataset(directory: str | Path, *, require_complete: bool = True) -> pd.DataFrame:
    """All chunks of a dataset directory as one DataFrame sorted by ``case_id``.

    Checks: the manifest exists; the number of chunk files equals the
    manifest's ``n_chunks`` (when given); case ids are unique; and, when
    ``design.parquet`` is there and ``require_complete``, every design row has
    a result. Raises :class:`InvalidInputError` naming the problem.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    chunks = sorted((directory / "chunks").glob("chunk-*.parquet"))
    if not chunks:
        raise InvalidInputError(f"dataset {directory} has no chunks/chunk-*.parquet files")
    n_expected = manifest.get("n_chunks", manifest.get("number_of_chunks"))
    if require_complete and n_expected is not None and len(chunks) != int(n_expected):
        raise InvalidInputError(
            f"dataset {directory} has {len(chunks)} chunk files but the manifest lists {n_expected} "
            "(unfinished run? resume the sampling first)")
    frame = pd.concat([pd.read_parquet(p) for p in chunks], ignore_index=True)
    for col in ("case_id", "converged"):
        if col not in frame.columns:
            raise InvalidInputError(f"dataset {directory}: chunk files have no {col!r} column")
    dup = frame["case_id"].duplicated()
    if dup.any():
        raise InvalidInputError(f"dataset {directory}: case_id {int(frame.loc[dup, 'case_id'].iloc[0])} appears twice")
    design_path = directory / "design.parquet"
    if require_complete and design_path.exists():
        design = pd.read_parquet(design_path)
        if "design_hash" in manifest:
            from nanosep.surrogates.sampling import design_hash

            if design_hash(design) != manifest["design_hash"]:
                raise InvalidInputError(f"dataset {directory}: design.parquet does not match the manifest's "
                                        f"design_hash {manifest['design_hash'][:12]}... (file replaced or corrupt)")
        design_ids = design["case_id"]
        missing = np.setdiff1d(design_ids.to_numpy(), frame["case_id"].to_numpy())
        if missing.size:
            raise InvalidInputError(
                f"dataset {directory}: {missing.size} of {len(design_ids)} design cases have no result "
                f"(first missing case_id {int(missing[0])})")
    return frame.sort_values("case_id", ignore_index=True)


def split_xy(frame: pd.DataFrame, input_names: Sequence[str], output_names: Sequence[str],
             *, manifest_hash: str = "") -> XY:
    """Drop failed (not converged or non-finite) cases, logging how many, and return X/Y."""
    missing = [c for c in [*input_names, *output_names] if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"dataset has no column(s) {missing}; it has {sorted(frame.columns)}")
    X = frame[list(input_names)].to_numpy(dtype=np.float64)
    Y = frame[list(output_names)].to_numpy(dtype=np.float64)
    ok = frame["converged"].to_numpy(dtype=bool) & np.isfinite(X).all(axis=1) & np.isfinite(Y).all(axis=1)
    n_failed = int((~ok).sum())
    if n_failed:
        reasons = frame.loc[~ok, "reason"].value_counts().head(3).to_dict() if "reason" in frame else {}
        log.warning("dropping %d of %d cases that failed or are not finite (top reasons: %s)",
                    n_failed, len(frame), reasons)
    if not ok.any():
        raise InvalidInputError("dataset has no converged case")
    return XY(X=X[ok], Y=Y[ok], case_id=frame["case_id"].to_numpy()[ok], input_names=tuple(input_names),
              output_names=tuple(output_names), n_failed_dropped=n_failed, manifest_hash=manifest_hash)


def load_xy(directory: str | Path, input_names: Sequence[str], output_names: Sequence[str]) -> XY:
    """:func:`read_dataset` + :func:`split_xy`."""
    frame = read_dataset(directory)
    return split_xy(frame, input_names, output_names, manifest_hash=manifest_hash(directory))
