"""The ``nanosep`` command line.

Each command is a thin wrapper: it parses options and calls one function in a
module (imported lazily, so ``--help`` stays fast), then exits with the code
that function returns.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    name="nanosep",
    help="nanosep: nanofiltration modelling from ion transport to water networks.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main() -> None:
    """nanosep: nanofiltration modelling from ion transport to water networks."""


@app.command()
def doctor(
    as_json: bool = typer.Option(
        False, "--json", help="Print the results as JSON instead of a table."
    ),
) -> None:
    """Check the numerical stack by solving tiny problems with known answers.

    Covers numpy/scipy, cyipopt + PyNumero (Pyomo), IDAES, MAiNGO, CasADi,
    onnxruntime, torch, dask.distributed and (optional) watertap. Exits
    non-zero if any required component fails; each failure comes with the
    exact command that fixes it.
    """
    from nanosep.doctor import run_doctor

    raise typer.Exit(run_doctor(as_json=as_json))


@app.command()
def predict(
    case: Path = typer.Argument(..., help="Case file (YAML or JSON), e.g. cases/nf270_brackish.yaml."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the results as JSON instead of a table."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Also write the full result table (CSV) into this folder."
    ),
) -> None:
    """Solve a case file with the DSPM-DE transport engine and report the rejections.

    Prints the observed rejection of every ion at every flux (or pressure) of
    the case. Exits 2 for an invalid case file (the message names the field),
    1 if some operating point did not converge.
    """
    from nanosep.predict import run_predict

    raise typer.Exit(run_predict(case, as_json=as_json, out=out))


@app.command()
def demo(
    case: Path = typer.Option(
        Path("cases/nf270_brackish.yaml"), "--case", help="Case file (YAML or JSON)."
    ),
    out: Path = typer.Option(
        Path("results/demo"), "--out", help="Folder for the report, figures and tables."
    ),
) -> None:
    """Run a case through the transport engine and write a report with figures.

    Writes report.md, rejection_vs_flux.png, partition_coefficients.png,
    flux_contributions.png, profiles.png and CSV tables into the output folder.
    """
    from nanosep.demo import run_demo_cli

    raise typer.Exit(run_demo_cli(case, out))


if __name__ == "__main__":
    app()
