"""Shared pytest fixtures. Keep this file small: fixtures used by one test
module belong in that module."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """A fresh folder for files a test writes (tables, plots, ONNX models)."""
    path = tmp_path / "results"
    path.mkdir()
    return path
