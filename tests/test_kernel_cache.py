"""The compiled kernel's numba cache is reused only with the sources that produced it (transport/kernel_cache.py):
numba alone keys a cache entry on its own file, so an edited callee module would leave stale inlined code."""
from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from nanosep.transport import kernel_cache
from nanosep.transport.kernel_cache import KERNEL_MODULES, STAMP_NAME, invalidate_stale, sources_hash


def _fake(path: Path):
    return SimpleNamespace(_cache=SimpleNamespace(_cache_path=str(path)))


def test_stale_kernel_files_are_removed_and_others_kept(tmp_path):
    kernel = [tmp_path / "compiled._solve_case-190.py311.nbi", tmp_path / "compiled_system._factor-160.py311.1.nbc"]
    other = [tmp_path / "pitzer_other.f-1.py311.nbi", tmp_path / "compiled_notes.txt"]
    for f in kernel + other:
        f.write_bytes(b"x")
    removed = invalidate_stale([_fake(tmp_path), _fake(tmp_path)], digest="a" * 64)
    assert sorted(removed) == sorted(kernel)
    assert not any(f.exists() for f in kernel) and all(f.exists() for f in other)
    assert (tmp_path / STAMP_NAME).read_text().strip() == "a" * 64
    # same sources: a fresh cache file survives; changed sources: it goes
    fresh = tmp_path / "compiled_newton._newton-46.py311.nbi"
    fresh.write_bytes(b"y")
    assert invalidate_stale([_fake(tmp_path)], digest="a" * 64) == [] and fresh.exists()
    assert invalidate_stale([_fake(tmp_path)], digest="b" * 64) == [fresh] and not fresh.exists()


def test_sources_hash_follows_every_kernel_module(tmp_path):
    src = Path(kernel_cache.__file__).parent
    for stem in KERNEL_MODULES:
        shutil.copy(src / f"{stem}.py", tmp_path / f"{stem}.py")
    base = sources_hash(tmp_path)
    assert base == sources_hash(src)
    for stem in KERNEL_MODULES:
        f = tmp_path / f"{stem}.py"
        text = f.read_text()
        f.write_text(text + "\n# edited\n")
        assert sources_hash(tmp_path) != base, stem
        f.write_text(text)
    assert sources_hash(tmp_path) == base


def test_the_imported_kernel_stamped_its_cache_with_the_current_sources():
    compiled = pytest.importorskip("nanosep.transport.compiled")
    if not compiled.HAVE_NUMBA:
        pytest.skip("numba missing")
    dirs = kernel_cache.cache_directories(compiled._kernel_dispatchers())
    assert len(compiled._kernel_dispatchers()) >= 30 and dirs
    writable = [d for d in dirs if (d / STAMP_NAME).exists()]
    assert writable and all((d / STAMP_NAME).read_text().strip() == sources_hash() for d in writable)
