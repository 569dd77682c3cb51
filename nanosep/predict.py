"""``nanosep predict``: solve a case file with the transport engine and report the rejections.

:func:`run_case` is the library entry (case -> :class:`~nanosep.transport.BatchResult`);
:func:`predictions` turns a result into the JSON document printed by ``--json``::

    {"cases": [{"flux_L_m2_h": 20.0, "pressure_bar": 4.0,        # pressure_bar: pressure-driven cases only
                "converged": true,
                "rejection": {"Na+": 0.62, ...},                  # observed, 1 - c_perm / c_feed
                "rejection_intrinsic": {"Na+": 0.64, ...},        # 1 - c_perm / c_wall
                "permeate_mol_m3": {"Na+": 3.8, ...}}, ...]}

Ion names are canonical (``Ca+2``, ``SO4-2``); values that do not exist (an ion with
zero feed concentration) are ``null``.  :func:`run_predict` is the command itself:
exit code 0, 1 if some operating point did not converge, 2 for a bad case file.
"""
from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

from nanosep.casefile import CaseFile, load_case
from nanosep.errors import InvalidInputError, UnknownIonError
from nanosep.units import m_s_to_lmh

log = logging.getLogger(__name__)

EXIT_OK, EXIT_NOT_CONVERGED, EXIT_BAD_INPUT = 0, 1, 2
INPUT_ERRORS = (InvalidInputError, UnknownIonError)


def run_case(case: CaseFile, strict: bool = False):
    """Solve every operating point of ``case``; returns a :class:`~nanosep.transport.BatchResult`."""
    from nanosep.transport import solve

    e = case.to_engine()
    n = len(next(iter(e.drive.values())))
    log.info("solving %s: %d %s points, %d ions", case.name or "case", n, case.drive_kind, len(e.feed))
    result = solve(e.membrane, e.feed, **e.drive, temperature_K=e.temperature_K, options=e.options,
                   ion_db=e.ion_db, balance_with=e.balance_with, strict=strict)
    if not result.converged.all():
        log.warning("%d of %d operating points did not converge", int((~result.converged).sum()), n)
    return result


def _clean(d: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if math.isnan(v) else v) for k, v in d.items()}


def predictions(case: CaseFile, result) -> dict[str, Any]:
    """The ``--json`` document: one entry per operating point (see the module docstring)."""
    fluxes = m_s_to_lmh(result.flux_m_s)
    out = []
    for b in range(len(result)):
        c = result.case(b)
        entry: dict[str, Any] = {"flux_L_m2_h": float(fluxes[b])}
        if case.operation.pressure_bar is not None:
            entry["pressure_bar"] = float(case.operation.pressure_bar[b])
        entry["converged"] = c.converged
        entry["rejection"] = _clean(c.rejection)
        entry["rejection_intrinsic"] = _clean(c.rejection_intrinsic)
        entry["permeate_mol_m3"] = _clean(c.permeate_mol_m3)
        out.append(entry)
    return {"cases": out}


def write_frame(result, out_dir: Path, stem: str) -> Path:
    """Write ``result.to_frame()`` to ``out_dir/<stem>_predict.csv``; returns the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}_predict.csv"
    result.to_frame().to_csv(path, index=False)
    log.info("wrote %s", path)
    return path


def print_table(case: CaseFile, result, title: str) -> None:
    """Observed rejection (%) per ion and operating point as a rich table."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    table = Table(title=title, caption="observed rejection 1 - c_perm/c_feed, %")
    table.add_column("J_v [L/m2/h]", justify="right")
    pressure = case.operation.pressure_bar
    if pressure is not None:
        table.add_column("dP [bar]", justify="right")
    for ion in result.ions:
        table.add_column(ion, justify="right")
    table.add_column("converged")
    fluxes = m_s_to_lmh(result.flux_m_s)
    failures = []
    for b in range(len(result)):
        c = result.case(b)
        row = [f"{fluxes[b]:.2f}"] + ([f"{pressure[b]:g}"] if pressure is not None else [])
        row += ["n/a" if math.isnan(r) else f"{100 * r:.2f}" for r in c.rejection.values()]
        row.append("yes" if c.converged else "[bold red]no[/]")
        table.add_row(*row)
        if not c.converged:
            failures.append(f"J_v = {fluxes[b]:.2f} L/m2/h: {c.diagnostics['reason']}")
    console.print(table)
    for line in failures:
        console.print(f"not converged at {line}", markup=False, soft_wrap=True)


def report_input_error(command: str, exc: Exception, case_path: Path | None = None) -> int:
    """Print a bad-input error as one line on stderr (prefixed by the case file); returns :data:`EXIT_BAD_INPUT`."""
    message = " ".join(str(exc).split())
    if case_path is not None and not message.startswith(str(case_path)):
        message = f"{case_path}: {message}"
    print(f"nanosep {command}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run_predict(case_path: Path, as_json: bool = False, out: Path | None = None) -> int:
    """``nanosep predict``: load, solve, print (table or JSON), optionally write CSV; returns the exit code."""
    try:
        case = load_case(case_path)
        result = run_case(case)
    except INPUT_ERRORS as exc:
        return report_input_error("predict", exc, case_path)
    if as_json:
        print(json.dumps(predictions(case, result), indent=2))
    else:
        print_table(case, result, case.name or Path(case_path).stem)
    if out is not None:
        path = write_frame(result, Path(out), Path(case_path).stem)
        if not as_json:
            print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK if result.converged.all() else EXIT_NOT_CONVERGED
