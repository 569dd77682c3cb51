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


@app.command()
def sample(
    case: Path = typer.Argument(..., help="Surrogate case file, e.g. cases/surrogates/seed002_na2so4_element.yaml."),
    out: Path | None = typer.Option(
        None, "--out", help="Dataset folder (default results/surrogates/data/<case name>)."
    ),
    n: int | None = typer.Option(None, "--n", help="Design size (default: the case's design.n)."),
    method: str | None = typer.Option(None, "--method", help="sobol or lhs (default: the case's)."),
    seed: int | None = typer.Option(None, "--seed", help="Design seed (default: the case's)."),
    chunk_size: int | None = typer.Option(None, "--chunk-size", help="Cases per chunk file (default 512)."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="local (default: a LocalCluster), threads, sync, or tcp://host:port."
    ),
    workers: int = typer.Option(2, "--workers", help="Workers of the LocalCluster or threads."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a dataset of a different design in --out instead of refusing."
    ),
    extra: str | None = typer.Option(
        None, "--extra", help="Sample the case's training.extra_designs entry NAME (default --out: results/surrogates/data/<case>_NAME)."
    ),
) -> None:
    """Sample a surrogate case's domain and solve every point with the transport engine.

    Writes design.parquet, chunks/chunk-*.parquet and manifest.json; rerunning on the
    same folder resumes (finished chunks are skipped). Exits 2 for an invalid case
    file or a folder that holds a different design.
    """
    from nanosep.surrogates.sampling import run_sample_cli

    raise typer.Exit(run_sample_cli(case, out, n, method, seed, chunk_size, scheduler, workers, overwrite,
                                   extra=extra))


@app.command()
def train(
    case: Path = typer.Argument(..., help="Surrogate case file, e.g. cases/surrogates/seed002_na2so4_element.yaml."),
    data: Path = typer.Option(..., "--data", help="Dataset folder written by `nanosep sample`."),
    out: Path = typer.Option(..., "--out", help="Folder for the model state, card, CV curve, plots and metrics."),
    kind: str = typer.Option("shallow", "--kind", help="shallow (one tanh hidden layer, seed 002), deep (tanh 20-20), or recipe (the case's training: section: per-output nets, merged)."),
    hidden: str = typer.Option("auto", "--hidden", help="auto (k-fold CV, then n +- 3), a hidden size N, or sizes N,M for --kind deep."),
    folds: int = typer.Option(5, "--folds", help="Folds of the hidden-size cross-validation."),
    restarts: int = typer.Option(3, "--restarts", help="Random restarts per candidate; the best on validation wins."),
    seed: int = typer.Option(0, "--seed", help="Seed of the 70/15/15 split and the initializations."),
    output_activation: str = typer.Option("tanh", "--output-activation", help="tanh (seed 002) or identity."),
    max_hidden: int = typer.Option(30, "--max-hidden", help="Largest hidden size scanned by the CV."),
    extra_data: list[Path] | None = typer.Option(
        None, "--extra-data", help="--kind recipe: dataset folder of an extra design (repeatable; default: "
        "<data>_<extra name> next to --data for every training.extra_designs entry)."),
    warm_start: Path | None = typer.Option(
        None, "--warm-start", help="--kind recipe: start from this model card's nets (e.g. the shipped model)."),
) -> None:
    """Train an element surrogate on a dataset as in seed 002 (70/15/15, early stopping, CV of n).

    Writes model.pt, <name>.card.json, cv_curve.csv/.png, parity.png,
    error_histogram.png, metrics.csv and candidates.csv into --out. Exits 2 for
    invalid input (the message names it).
    """
    from nanosep.surrogates.training import run_train_cli

    raise typer.Exit(run_train_cli(case, data, out, kind, hidden, folds, restarts, seed, output_activation, max_hidden,
                                  extra_data=extra_data, warm_start=warm_start))


@app.command()
def export(
    model_dir: Path = typer.Argument(..., help="Model folder written by `nanosep train`."),
    out: Path = typer.Option(..., "--out", help="Folder for <name>.onnx and <name>.card.json."),
) -> None:
    """Export a trained surrogate to ONNX (float64, Gemm/Tanh only) with its model card.

    The card gets the ONNX sha256; the file is reloaded, checked against the card
    and compared with torch (onnxruntime) before the command succeeds.
    """
    from nanosep.surrogates.onnx_io import run_export_cli

    raise typer.Exit(run_export_cli(model_dir, out))


@app.command()
def uq(
    case: Path = typer.Argument(..., help="UQ case file (YAML/JSON with a 'uq' section), e.g. cases/uq/nf270_li_mg_brine.yaml."),
    out: Path | None = typer.Option(None, "--out", help="Results folder (default results/uq/<case name>)."),
    samples: int | None = typer.Option(None, "--samples", help="Override the sample count of the propagation studies."),
) -> None:
    """Propagate pore-size and parameter uncertainty, run ablation sweeps and the pH optimization.

    Writes <study>_samples.parquet, <study>_summary.csv, violin plots, ablation and pH
    tables and plots, and summary.json into the results folder. Propagation chunks are
    checkpointed: rerunning an interrupted command resumes. Exits 2 for an invalid case file.
    """
    from nanosep.transport.uncertainty.uq_study import run_uq_cli

    raise typer.Exit(run_uq_cli(case, out, samples))


@app.command()
def fit(
    data: Path = typer.Argument(..., help="Measured-data table (CSV or Parquet, columns of nanosep.measured)."),
    case: Path = typer.Option(..., "--case", help="Fit case (YAML/JSON), e.g. cases/characterization/fdl2021_nf270.yaml."),
    out: Path | None = typer.Option(None, "--out", help="Results folder (default results/fit/<case name>)."),
    profile: bool | None = typer.Option(
        None, "--profile/--no-profile", help="Profile-likelihood intervals (default: the case's fit.profile)."
    ),
) -> None:
    """Fit membrane parameters to measured rejections by maximum likelihood, with uncertainty.

    Writes parameters.json (estimates, Fisher and profile intervals, correlation,
    identifiability), parameters.csv, correlation.csv, predictions.csv, parity.png
    (+-15 % bands), rejection_vs_flux.png (uncertainty bands) and report.md. Exits 2
    for invalid data or case (the message names the value), 1 if the fit failed.
    """
    from nanosep.transport.characterization.cli import run_fit_cli

    raise typer.Exit(run_fit_cli(data, case, out, profile))


@app.command()
def optimize(
    case: Path = typer.Argument(..., help="Design case file, e.g. cases/design/seed002_B2_module_10mM.yaml."),
    as_json: bool = typer.Option(False, "--json", help="Also print the front (front.json) to stdout."),
    out: Path | None = typer.Option(None, "--out", help="Results folder (default results/design/<case name>)."),
    points: int | None = typer.Option(None, "--points", help="Pareto points (default: the case's pareto.points)."),
    solver: str | None = typer.Option(None, "--solver", help="local (cyipopt multi-start) or global (MAiNGO); default: the case's."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="local (default: a LocalCluster), sync (in process), or tcp://host:port."
    ),
    workers: int = typer.Option(2, "--workers", help="Workers of the LocalCluster."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard a checkpoint of a different front in --out."),
) -> None:
    """Epsilon-constraint Pareto front (annual cost vs product concentration) of a plant design case.

    Solves the two anchors and the epsilon points (in parallel on dask), checks every design with
    the exact transport model, and writes front.json, front.csv and front.png. Rerunning on the same
    folder resumes. Exits 2 for invalid input (the message names the value), 1 if some point failed.
    """
    from nanosep.flowsheets.front_report import run_optimize_cli

    raise typer.Exit(run_optimize_cli(case, as_json, out, points, solver, scheduler, workers, overwrite))


if __name__ == "__main__":
    app()
