"""The repo's top-level folders install as ``nanosep.*`` and nothing else.

pyproject.toml maps ``transport/``, ``surrogates/``, ``flowsheets/``,
``control/`` and ``network/`` onto ``nanosep.transport`` ... through
setuptools' ``package-dir``. These tests prove it for a regular install (the
wheel) and for an editable install (a venv, imported from outside the repo),
so no bare top-level ``transport``/``control``/... module ever leaks out.

Both build from a copy of the tree in tmp_path, so the work tree gets no
``build/`` folder, whose stale files setuptools would put into later wheels.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("transport", "surrogates", "flowsheets", "control", "network")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _copy_tree(dest: Path) -> Path:
    """Copy what a build reads: the root's files and the package folders."""
    dest.mkdir()
    for item in REPO.iterdir():
        if item.is_file():
            shutil.copy2(item, dest / item.name)
    for folder in ("nanosep", *SUBPACKAGES):
        shutil.copytree(REPO / folder, dest / folder, ignore=IGNORE)
    return dest


def _pip(python: str | Path, *args: str, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run(
        [str(python), "-m", "pip", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, Path]:
    """Build the wheel once; return (wheel path, source copy)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy_tree(tmp / "src")
    out = tmp / "dist"
    _pip(
        sys.executable,
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(out),
        str(src),
        cwd=tmp,
    )
    (whl,) = out.glob("nanosep-*.whl")
    return whl, src


def test_wheel_has_only_the_nanosep_tree(wheel):
    whl, _ = wheel
    with zipfile.ZipFile(whl) as zf:
        names = zf.namelist()
        dist_info = next(
            n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD")
        )
        record = zf.read(f"{dist_info}/RECORD").decode()
        top_level = zf.read(f"{dist_info}/top_level.txt").decode().split()
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()

    assert {n.split("/")[0] for n in names} == {"nanosep", dist_info}
    recorded = {line.split(",")[0] for line in record.splitlines() if line}
    assert {n.split("/")[0] for n in recorded} == {"nanosep", dist_info}
    assert top_level == ["nanosep"]
    for sub in SUBPACKAGES:
        assert f"nanosep/{sub}/__init__.py" in names
        assert f"nanosep/{sub}/__init__.py" in recorded
    assert "nanosep = nanosep.cli:app" in entry_points


def test_wheel_carries_every_module_of_each_folder(wheel):
    """Each ``<folder>/**/*.py`` ships as ``nanosep/<folder>/**/*.py`` (nested subpackages included), and data files too."""
    whl, src = wheel
    with zipfile.ZipFile(whl) as zf:
        names = set(zf.namelist())
    expected = {f"nanosep/{p.name}" for p in (src / "nanosep").glob("*.py")}
    for sub in SUBPACKAGES:
        expected |= {f"nanosep/{sub}/{p.relative_to(src / sub).as_posix()}" for p in (src / sub).rglob("*.py")
                     if "__pycache__" not in p.parts}  # nested subpackages too (transport/characterization, ...)
    for pattern in ("*.csv", "*.json", "*.yaml"):  # package-data
        expected |= {
            f"nanosep/data/{p.name}" for p in (src / "nanosep/data").glob(pattern)
        }
    assert expected <= names, sorted(expected - names)
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n]


_PROBE = """
import importlib, importlib.util, json, sys
mods = ["nanosep"] + ["nanosep." + s for s in {subs!r}]
files = {{m: importlib.import_module(m).__file__ for m in mods}}
bare = {{s: importlib.util.find_spec(s) is not None
        for s in {subs!r} if s != "control"}}
ctl = importlib.util.find_spec("control")
print(json.dumps({{"files": files, "bare": bare,
                  "control": ctl.origin if ctl else None, "path0": sys.path[0]}}))
"""


def test_editable_install_imports_from_outside_the_repo(tmp_path):
    """A venv with ``pip install -e`` sees nanosep.* and no bare top-level names."""
    src = _copy_tree(tmp_path / "src")
    env_dir = tmp_path / "venv"
    # system site-packages give the dependencies and pip; the venv gets nanosep.
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    _pip(
        python,
        "install",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-e",
        str(src),
        cwd=tmp_path,
    )

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [str(python), "-c", _PROBE.format(subs=SUBPACKAGES)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    probe = json.loads(proc.stdout.strip().splitlines()[-1])

    # the venv's editable finder maps each package onto the copied tree
    assert Path(probe["files"]["nanosep"]) == src / "nanosep" / "__init__.py"
    for sub in SUBPACKAGES:
        assert Path(probe["files"][f"nanosep.{sub}"]) == src / sub / "__init__.py"
    assert probe["bare"] == {s: False for s in SUBPACKAGES if s != "control"}
    # python-control may be installed; if so it must not be our folder
    if probe["control"] is not None:
        assert not Path(probe["control"]).is_relative_to(src)
        assert not Path(probe["control"]).is_relative_to(REPO)
