"""The ``nanosep`` command line.

Each command is a thin wrapper: it parses options and calls one function in a
module (imported lazily, so ``--help`` stays fast), then exits with the code
that function returns.
"""

from __future__ import annotations

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


if __name__ == "__main__":
    app()
