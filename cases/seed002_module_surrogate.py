"""Study: module-level surrogate of seed 002 Table 3 (a whole K-element Na2SO4 module in one MLP).

Data: ``results/surrogates/data/seed002_na2so4_module`` (written by
``cases/seed002_module_refinement.py data``: 2048 Sobol points of the element inputs with
SO4-2 feed 1-50 mol/m3 plus gamma in [0.18, 0.95], each run through the exact-engine chain of
:mod:`nanosep.surrogates.module` at K = 256).  The module case is the one stored in the
dataset's manifest; the one change is the output transform: the network fits
``log10(1 - R_module) = log10(c_permeate / c_feed)`` (``log10_transmission``), so its error is
a relative error of the module permeate, the quantity of the target (1 % median against the
explicit chain).  Trained as in seed 002 (70/15/15, Levenberg-Marquardt, restarts); the card
kind is ``module_mlp``.

Run: ``nice -n 10 python cases/seed002_module_surrogate.py [--kind deep --hidden 20,20]``, then
``nanosep export results/surrogates/models/seed002_na2so4_module_<kind> --out surrogates/shipped``
and ``python benchmarks/module_surrogate.py`` for the comparison with the chain.  The compact
model for fast global solves (``seed002_na2so4_module_small``) is made the same way with a smaller
network and its own name: ``--kind deep --hidden 10,10 --name seed002_na2so4_module_small --out
results/surrogates/models/seed002_na2so4_module_small``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import typer
from nanosep.surrogates.card import CARD_SUFFIX, ModelCard
from nanosep.surrogates.dataset import load_xy
from nanosep.surrogates.domain import surrogate_case_from_dict
from nanosep.surrogates.training import save_model_dir, train_surrogate
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "results" / "surrogates" / "data" / "seed002_na2so4_module"
MODELS = ROOT / "results" / "surrogates" / "models"
console = Console()


def module_case(data: Path = DATA, name: str | None = None):
    """The module surrogate case of a module dataset (its manifest's case, log10_transmission outputs).

    ``name`` renames the case (and so the card and ONNX file), e.g. ``seed002_na2so4_module_small``.
    """
    d = json.loads((data / "manifest.json").read_text())["surrogate_case"]
    if name:
        d["name"] = name
    d["outputs"] = [{**o, "transform": "log10_transmission"} for o in d["outputs"]]
    return surrogate_case_from_dict(d, source=f"{data}/manifest.json")


def main(data: Path = typer.Option(DATA, help="module dataset folder"),
         kind: str = typer.Option("deep", help="shallow or deep"),
         hidden: str = typer.Option("20,20", help="hidden sizes, e.g. 14 or 20,20"),
         restarts: int = typer.Option(3, help="random restarts"),
         seed: int = typer.Option(0, help="split / initialization seed"),
         name: str = typer.Option(None, help="card name (default: the dataset's case name)"),
         out: Path = typer.Option(None, help="model folder (default results/surrogates/models/<name>_<kind>)")) -> None:
    """Train the module surrogate and write a model folder (card kind module_mlp)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    case = module_case(data, name)
    xy = load_xy(data, case.input_names, case.output_names)
    sizes = [int(h) for h in hidden.split(",")]
    res = train_surrogate(xy.X, xy.Y, input_scales=[v.transform for v in case.inputs],
                          input_low=[v.low for v in case.inputs], input_high=[v.high for v in case.inputs],
                          output_low=[o.low for o in case.outputs], output_high=[o.high for o in case.outputs],
                          kind=kind, hidden=sizes if kind == "deep" else sizes[0], restarts=restarts, seed=seed,
                          output_names=case.output_names, output_transforms=[o.transform for o in case.outputs])
    out = out or MODELS / f"{case.name}_{kind}"
    card_path = save_model_dir(out, case, res, xy)
    card = ModelCard.load(card_path)
    card.model_copy(update={"kind": "module_mlp"}).save(card_path)
    for name, m in res.metrics_test.items():
        console.print(f"{name}: test MAE {m['mae']:.2e}, max {m['max_abs']:.2e} (n_test {len(res.split.test)}); "
                      f"hidden {list(res.spec.hidden)}")
    console.print(f"wrote {out} ({card_path.name.removesuffix(CARD_SUFFIX)}, kind module_mlp)")


if __name__ == "__main__":
    typer.run(main)
