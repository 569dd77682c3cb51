"""``nanosep demo`` step: a small Pareto front of the seed 002 drinking-water plant, with the exact-model check.

Seed 002 sec. 3.2: one NF stage with permeate recirculation, 224 m3/h product, Na2SO4 feed
10 mol/m3, rejection from the shipped element surrogate (k = 1), no osmotic pressure (as the seed).
:func:`nanosep.flowsheets.pareto.run_pareto` solves the two anchors and :data:`DEMO_POINTS`
epsilon points with the local multi-start solver (in process), and re-simulates every design with
the exact transport engine along the channel (:mod:`nanosep.flowsheets.exact_check`).  The k = 1
surrogate sees only the stage *feed*: at seed 002's high recoveries the exact product is much less
pure than it promises, which is the seed's "k = 1 underestimates the cost" finding.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

log = logging.getLogger(__name__)

#: demo size: Pareto points and local starts per point
DEMO_POINTS = 5
DEMO_STARTS = 3
DEMO_FEED_NA2SO4_MOL_M3 = 10.0


def demo_problem():
    """The demo's :class:`~nanosep.flowsheets.pareto.ParetoProblem`."""
    from .pareto import ParetoProblem, PointSolver, RejectionChoice
    from .superstructure import PlantSpec

    c = DEMO_FEED_NA2SO4_MOL_M3
    spec = PlantSpec(feed_conc_mol_m3={"Na+": 2 * c, "SO4-2": c}, osmotic=False)
    return ParetoProblem(spec=spec, rejection=RejectionChoice("element"), solver=PointSolver("local", DEMO_STARTS),
                         n_points=DEMO_POINTS, name="demo_seed002_element_10mM")


def step_design(out_dir: Path, state) -> str:
    """Small Pareto front with the exact-model check; writes design_front.{json,csv,png} and the checkpoint folder."""
    from nanosep.demo import _md_table

    from .front_report import front_frame, plot_front
    from .pareto import run_pareto

    problem = demo_problem()
    front = run_pareto(problem, Path(out_dir) / "design_front", scheduler="sync", overwrite=True)
    df = front_frame(front)
    df.to_csv(Path(out_dir) / "design_front.csv", index=False)
    png = plot_front(front, Path(out_dir) / "design_front.png")
    ion = problem.limit_ion
    rows = []
    for _, r in df.iterrows():
        if not r["feasible"]:
            rows.append([f"{r['epsilon_mol_m3']:.3g}", "failed", "", "", "", "", "", "", "", str(r["message"])[:60]])
            continue
        rows.append([f"{r['epsilon_mol_m3']:.3g}", f"{r['cost_usd_per_year'] / 1e3:.1f}",
                     f"{r[f'product_{ion}_mol_m3']:.3g}", f"{r[f'exact_product_{ion}_mol_m3']:.3g}",
                     f"{100 * r[f'exact_rel_error_{ion}']:+.0f}" if math.isfinite(r[f"exact_rel_error_{ion}"]) else "n/a",
                     f"{r['stage1_n_modules']:.1f}", f"{r['pump1_dp_bar']:.2f}", f"{r['charge_mol_m3']:.0f}",
                     f"{r['recycle_fraction']:.2f}", f"{r['stage1_gamma']:.2f}"])
    lim = front.purity_limit
    text = [
        (f"Seed 002 sec. 3.2 plant: one NF stage with permeate recirculation, {problem.spec.product_m3_h:g} m3/h "
        f"product, Na2SO4 feed {DEMO_FEED_NA2SO4_MOL_M3:g} mol/m3, rejection from the shipped element surrogate "
        f"(k = 1), no osmotic pressure. Epsilon-constraint front of the annual operating cost against the product "
        f"{ion} concentration: {DEMO_POINTS} points, local cyipopt with {DEMO_STARTS} Sobol starts (+ the purest "
        f"design) per point, {front.seconds:.0f} s. Purest product found: {lim.get('c_min_mol_m3', math.nan):.3g} "
        f"mol/m3 (bounds binding there: {'; '.join(lim.get('binding_at_c_min', [])) or 'none'})."),
        _md_table(["epsilon [mol/m3]", "cost [kUSD/yr]", f"{ion} surrogate [mol/m3]", f"{ion} exact [mol/m3]",
                   "surrogate error [%]", "modules", "dP [bar]", "X [mol/m3]", "recycle", "recovery"], rows),
        ("Exact check: the same designs (flows and flux fixed) re-simulated with the transport engine along "
        "the channel (K -> infinity element chain, recycle loop closed). The k = 1 surrogate evaluates the "
        "rejection at the stage feed only, while the retentate concentrates along the channel at these "
        "recoveries: its product concentrations are far too optimistic (seed 002 sec. 3.3). Use the module "
        "surrogate (`cases/design/seed002_B2_module_10mM.yaml`, `nanosep optimize`) for designs that hold up."),
        f"![Pareto front]({png.name})",
        "Tables: `design_front.csv`; full record (design, solver status, exact check): `design_front/front.json`.",
    ]
    return "\n\n".join(text)
