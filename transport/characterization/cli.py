"""``nanosep fit DATA --case CASE.yaml``: characterize a membrane from measured rejections."""
from __future__ import annotations

import logging
from pathlib import Path
from time import perf_counter

from nanosep.errors import ConvergenceError, InvalidInputError, UnknownIonError

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2


def run_fit_cli(data: Path, case_path: Path, out: Path | None = None, profile: bool | None = None) -> int:
    """Load and validate the data and the fit case, fit, write the outputs; returns the exit code.

    Exit codes: 0 done, 2 invalid data or case (the message names the value), 1 the fit failed.
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from nanosep.measured import read_measured

    from .report import write_outputs
    from .spec import load_fit_case
    from .workflow import characterize

    console = Console(stderr=True)
    start = perf_counter()
    try:
        case = load_fit_case(case_path)
        _, db = case.engine_setup()
        table = read_measured(data, ion_db=db)
    except (InvalidInputError, UnknownIonError) as exc:
        console.print(f"nanosep fit: invalid input: {exc}", markup=False, soft_wrap=True)
        return EXIT_INPUT
    out = Path(out) if out is not None else Path("results") / "fit" / Path(case_path).stem
    with Progress(TextColumn("{task.description:<32}"), BarColumn(), TextColumn("{task.percentage:>3.0f} %"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("fitting", total=1.0)

        def on_progress(stage: str, fraction: float) -> None:
            progress.update(task, description=stage, completed=fraction)

        try:
            ch = characterize(table, case, profile=profile, progress=on_progress)
        except (InvalidInputError, UnknownIonError) as exc:
            progress.stop()
            console.print(f"nanosep fit: invalid input: {exc}", markup=False, soft_wrap=True)
            return EXIT_INPUT
        except ConvergenceError as exc:
            progress.stop()
            console.print(f"nanosep fit: {exc}", markup=False, soft_wrap=True)
            return EXIT_FAILED
        progress.update(task, description="writing outputs", completed=1.0)
        files = write_outputs(ch, out)
    for w in ch.fisher.warnings:
        console.print(f"warning: {w}", markup=False, soft_wrap=True)
    for name, value in ch.fit.values.items():
        console.print(f"{name:>40} = {value:.5g}  [{ch.fisher.lower[name]:.4g}, {ch.fisher.upper[name]:.4g}]",
                      markup=False)
    console.print(f"wrote {len(files)} files to {out} in {perf_counter() - start:.1f} s; report: {out / files['report']}",
                  markup=False, soft_wrap=True)
    return EXIT_OK
