"""Shared pytest fixtures. Keep this file small: fixtures used by one test
module belong in that module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """A fresh folder for files a test writes (tables, plots, ONNX models)."""
    path = tmp_path / "results"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def card_path(tmp_path_factory) -> Path:
    """Model card of a small surrogate trained on synthetic data and exported to ONNX (built once per run)."""
    from surrogate_testdata import trained_export

    return trained_export(tmp_path_factory.mktemp("trained_export"))


# benchmarks/ is not an installed package: the peer tests import its harnesses from the repo root
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
