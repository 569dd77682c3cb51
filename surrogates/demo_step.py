"""``nanosep demo`` step: the shipped element surrogate against the transport engine.

Loads the shipped ONNX surrogate (onnxruntime, card-checked), draws fresh Sobol
points in its declared domain (a seed the training design did not use), solves
them with the exact engine and reports the errors; then compares rejection-vs-flux
curves of surrogate and engine at two feed concentrations.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: the shipped surrogate the demo checks, and its surrogate case (cases/surrogates/<name>.yaml)
DEMO_SURROGATE = "seed002_na2so4_element"
#: fresh points: a Sobol seed different from every training design in cases/surrogates/
DEMO_SEED = 777
DEMO_POINTS = 32


def engine_outputs(case, rows: pd.DataFrame, output_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Engine values of ``output_names`` (``rejection_<ion>`` or ``permeate_<ion>_mol_m3``) for design rows.

    Returns (values (N, n_out), converged (N,)).
    """
    from nanosep.surrogates.sampling import chunk_frame, engine_arguments, solve_rows

    batch = engine_arguments(case, rows)
    frame = chunk_frame(rows, batch, solve_rows(batch))   # the dataset's own column layout
    return frame[list(output_names)].to_numpy(), frame["converged"].to_numpy(bool)


def _curve_rows(card, flux_name: str, flux: np.ndarray, fixed: dict[str, float]) -> pd.DataFrame:
    """Rows for a flux sweep: every other input at the domain centre (geometric for log inputs) or ``fixed``."""
    cols = {}
    for v in card.inputs:
        if v.name == flux_name:
            cols[v.name] = flux
        elif v.name in fixed:
            cols[v.name] = np.full(flux.size, fixed[v.name])
        else:
            mid = np.sqrt(v.low * v.high) if v.scale == "log" else 0.5 * (v.low + v.high)
            cols[v.name] = np.full(flux.size, mid)
    return pd.DataFrame(cols)


def step_surrogate(out_dir: Path, state) -> str:
    """Parity of the shipped surrogate vs the engine on fresh in-domain points, and a flux sweep.

    ``state`` (the demo's DemoState) is not used: the step has its own case, the
    surrogate case file ``cases/surrogates/<DEMO_SURROGATE>.yaml``.
    """
    from nanosep.demo import _figure, _md_table, _save, resolve_case_path
    from nanosep.surrogates.domain import design, load_surrogate_case
    from nanosep.surrogates.onnx_io import load_shipped

    sur = load_shipped(DEMO_SURROGATE)
    card = sur.card
    case_path = resolve_case_path(Path("cases/surrogates") / f"{DEMO_SURROGATE}.yaml")
    case = load_surrogate_case(case_path)
    names = card.output_names

    rows = design(case, n=DEMO_POINTS, method="sobol", seed=DEMO_SEED)
    y_eng, ok = engine_outputs(case, rows, names)
    y_sur = sur.predict(rows)
    err = np.abs(y_sur - y_eng)[ok]
    table = rows.copy()
    for j, n in enumerate(names):
        table[f"{n}_engine"] = y_eng[:, j]
        table[f"{n}_surrogate"] = y_sur[:, j]
    table["converged"] = ok
    table.to_csv(out_dir / "surrogate_parity.csv", index=False)

    fig, axes = _figure(2, (10.0, 4.2))
    ax = axes[0]
    lo, hi = float(np.nanmin(y_eng)), float(np.nanmax(y_eng))
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    for j, n in enumerate(names):
        ax.scatter(y_eng[ok, j], y_sur[ok, j], s=14, label=n)
    ax.set_xlabel("transport engine")
    ax.set_ylabel("ONNX surrogate")
    ax.set_title(f"{DEMO_POINTS} fresh Sobol points")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)

    flux_name = next(v.name for v in card.inputs if v.name.startswith("flux_"))
    flux_var = next(v for v in card.inputs if v.name == flux_name)
    flux = np.linspace(flux_var.low, flux_var.high, 26)
    conc_name = next((v.name for v in card.inputs if v.name.startswith("c_")), None)
    ax = axes[1]
    sweep_rows = []
    for k, c in enumerate((5.0, 20.0) if conc_name else (None,)):
        fixed = {conc_name: c} if conc_name else {}
        r = _curve_rows(card, flux_name, flux, fixed)
        ye, oke = engine_outputs(case, r, names)
        ys = sur.predict(r)
        label = f"{conc_name} = {c:g}" if conc_name else ""
        ax.plot(flux[oke], ye[oke, 0], "o", ms=4, color=f"C{k}", label=f"engine {label}")
        ax.plot(flux, ys[:, 0], "-", color=f"C{k}", label=f"surrogate {label}")
        sweep_rows.append(r.assign(**{f"{names[0]}_engine": ye[:, 0], f"{names[0]}_surrogate": ys[:, 0]}))
    pd.concat(sweep_rows).to_csv(out_dir / "surrogate_vs_flux.csv", index=False)
    ax.set_xlabel(f"{flux_name}")
    ax.set_ylabel(names[0])
    ax.set_title("rejection vs flux, other inputs at the domain centre")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    png = _save(fig, out_dir / "surrogate_parity.png")

    metric_rows = []
    for j, n in enumerate(names):
        test = card.metrics.get("test", {}).get(n) if card.metrics else None
        metric_rows.append([n, f"{err[:, j].mean():.2e}", f"{err[:, j].max():.2e}",
                            f"{getattr(test, 'mae', float('nan')):.2e}", f"{getattr(test, 'max_abs', float('nan')):.2e}"])
    arch = card.architecture
    return "\n\n".join([
        f"Shipped surrogate `{card.name}` ({card.kind}, hidden layers {arch.get('hidden')}, "
        f"{arch.get('activation')}), loaded from ONNX with its model card; inputs "
        + ", ".join(f"{v.name} [{v.low:g}, {v.high:g}]" for v in card.inputs)
        + f". Engine case: `{case_path}`.",
        f"Against the engine on {int(ok.sum())} of {DEMO_POINTS} fresh Sobol points (seed {DEMO_SEED}, not a "
        "training design; only converged engine cases count):",
        _md_table(["output", "MAE here", "max abs here", "card: test MAE", "card: test max abs"], metric_rows),
        f"![surrogate vs engine]({png})",
        "Tables: `surrogate_parity.csv`, `surrogate_vs_flux.csv`.",
    ])
