"""numba's on-disk cache of the compiled kernel, invalidated by a hash of the kernel's sources.

numba keys each cached function on the timestamp and size of its own source file only. A kernel
function whose file did not change therefore keeps machine code in which an older version of a
callee from another module (``compiled_system``, ``compiled_newton``, ...) is inlined: after an
upgrade or an edit of one kernel module, a process can load stale code and return wrong answers.
:func:`invalidate_stale` removes the kernel's cache files whenever the SHA-256 of the kernel
modules' sources differs from the stamp written beside them, so a cache is only ever reused with
exactly the sources that produced it.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

#: the modules whose jitted functions make up the kernel (file stems in this package)
KERNEL_MODULES = ("compiled", "compiled_system", "compiled_newton", "compiled_guess", "compiled_activity",
                  "compiled_shooting")
#: file written into each cache directory with the hash of the sources its files were compiled from
STAMP_NAME = "nanosep_kernel_sources.sha256"


def sources_hash(directory: Path | None = None) -> str:
    """SHA-256 (hex) of the kernel modules' source files, in :data:`KERNEL_MODULES` order."""
    directory = Path(__file__).resolve().parent if directory is None else Path(directory)
    h = hashlib.sha256()
    for stem in KERNEL_MODULES:
        h.update(stem.encode())
        h.update((directory / f"{stem}.py").read_bytes())
    return h.hexdigest()


def cache_directories(dispatchers: Iterable[object]) -> set[Path]:
    """The on-disk cache directories of numba dispatchers compiled with ``cache=True`` (numba's locator:
    ``__pycache__`` beside the source, or a mirror of it under ``NUMBA_CACHE_DIR``)."""
    out = set()
    for d in dispatchers:
        path = getattr(getattr(d, "_cache", None), "_cache_path", None)
        if path:
            out.add(Path(path))
    return out


def invalidate_stale(dispatchers: Iterable[object], digest: str | None = None) -> list[Path]:
    """Remove the kernel's cache files (``<module>.*.nbi`` / ``.nbc`` of :data:`KERNEL_MODULES`) from every
    cache directory of ``dispatchers`` whose stamp differs from ``digest`` (default :func:`sources_hash`),
    then write the stamp. Returns the removed files. Must run before the first call compiles or loads
    anything. A directory that cannot be written is left alone (numba then does not cache there either)."""
    digest = sources_hash() if digest is None else digest
    removed: list[Path] = []
    for directory in cache_directories(dispatchers):
        stamp = directory / STAMP_NAME
        try:
            if stamp.exists() and stamp.read_text().strip() == digest:
                continue
            if directory.is_dir():
                for f in directory.iterdir():
                    if f.suffix in (".nbi", ".nbc") and f.name.split(".", 1)[0] in KERNEL_MODULES:
                        f.unlink(missing_ok=True)
                        removed.append(f)
            directory.mkdir(parents=True, exist_ok=True)
            tmp = stamp.with_name(f"{STAMP_NAME}.{os.getpid()}.tmp")
            tmp.write_text(digest + "\n")
            tmp.replace(stamp)
        except OSError as exc:   # read-only install: numba cannot cache there either
            log.debug("kernel cache %s not checked: %s", directory, exc)
    if removed:
        log.info("kernel sources changed: removed %d stale numba cache files", len(removed))
    return removed
