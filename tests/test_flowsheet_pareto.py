"""Epsilon-constraint Pareto fronts, multi-start, the exact-model check, design case files and `nanosep optimize`.

The default tests use the seed 002 single-stage plant (10 mol/m3 Na2SO4) with the shipped element surrogate,
few points and few starts, in process (scheduler "sync").
"""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from nanosep.flowsheets.design_case import design_case_from_dict, load_design_case
from nanosep.flowsheets.design_point import DesignPoint
from nanosep.flowsheets.exact_check import ExactPlant, exact_check
from nanosep.flowsheets.multistart import solve_multistart
from nanosep.flowsheets.pareto import (
    ParetoProblem,
    PointSolver,
    RejectionChoice,
    run_pareto,
)
from nanosep.flowsheets.superstructure import PlantSpec
from nanosep.surrogates.onnx_io import OutOfDomainError

from nanosep.errors import ElectroneutralityError, InvalidInputError

ROOT = Path(__file__).resolve().parents[1]
FEED = {"Na+": 20.0, "SO4-2": 10.0}
SPEC = PlantSpec(feed_conc_mol_m3=FEED, osmotic=False)
PROBLEM = ParetoProblem(spec=SPEC, rejection=RejectionChoice("element"), solver=PointSolver("local", n_starts=2),
                        n_points=4, exact_check=False, name="test_front")


def _engine_element():
    from nanosep.surrogates.domain import load_surrogate_case
    from nanosep.surrogates.module import EngineElement

    case = load_surrogate_case(ROOT / "cases" / "surrogates" / "seed002_na2so4_element.yaml")
    return EngineElement.from_case(case.base_case, ions=case.ions)


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    out = tmp_path_factory.mktemp("front")
    return run_pareto(PROBLEM, out, scheduler="sync")


# ------------------------------------------------------------------------------ the front
def test_front_is_monotone_and_every_feasible_point_meets_its_epsilon(front):
    pts = front.points
    assert len(pts) == PROBLEM.n_points and all(p.feasible for p in pts)
    eps = [p.epsilon_mol_m3 for p in pts]
    assert eps == sorted(eps)
    for p in pts:
        assert p.product_conc_mol_m3["SO4-2"] <= p.epsilon_mol_m3 * (1 + 1e-6) + 2e-8   # Ipopt's bound relaxation
        assert p.design["product_m3_h"] == pytest.approx(224.0, rel=1e-8)
    cost = np.array([p.objective_usd_per_year for p in pts])
    assert np.all(np.diff(cost) <= 1e-7 * cost[:-1]), cost
    # the loosest epsilon is the cheapest plant's own concentration: same cost as that anchor
    assert cost[-1] == pytest.approx(front.anchors["cost"].objective_usd_per_year, rel=1e-5)
    # the tightest epsilon is just above the purest plant's concentration, which is far below the cheapest one's
    c_min = front.purity_limit["c_min_mol_m3"]
    assert eps[0] == pytest.approx(c_min * 1.001, rel=1e-9) and c_min < 0.01 * eps[-1]
    assert front.purity_limit["binding_at_c_min"]          # something binds at the purity limit
    assert cost[0] > 1.5 * cost[-1]                        # purity costs


def test_front_files_and_multistart_record(front):
    d = json.loads((front.out_dir / "front.json").read_text())
    assert d["n_points"] == PROBLEM.n_points and len(d["points"]) == PROBLEM.n_points
    p = d["points"][1]
    assert p["solver"] == "cyipopt-multistart" and p["globally_optimal"] is None
    assert p["extra"]["n_starts"] == 1 + PROBLEM.solver.n_starts      # + the purest design as a start
    assert 1 <= p["extra"]["n_converged"] <= p["extra"]["n_starts"]
    for key in ("stage1_n_modules", "pump1_dp_bar", "thickness_nm", "charge_mol_m3", "recycle_fraction"):
        assert key in p["design"]


def test_resume_after_interrupt_gives_the_same_front_without_resolving(front, tmp_path):
    out = tmp_path / "resumed"
    (out / "anchors").mkdir(parents=True)
    for f in (front.out_dir / "anchors").glob("*.json"):     # same problem: the anchors carry over
        shutil.copy(f, out / "anchors" / f.name)
    calls = []

    def stop_after_first_point(done, total, label):
        calls.append(label)
        if label.startswith("epsilon"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_pareto(PROBLEM, out, scheduler="sync", progress=stop_after_first_point)
    assert len(list((out / "points").glob("point-*.json"))) == 1          # the finished point is on disk
    again = run_pareto(PROBLEM, out, scheduler="sync")
    assert again.n_solved == PROBLEM.n_points - 1
    for a, b in zip(again.points, front.points):
        assert a.epsilon_mol_m3 == pytest.approx(b.epsilon_mol_m3, rel=1e-12)
        assert a.objective_usd_per_year == pytest.approx(b.objective_usd_per_year, rel=1e-8)
    third = run_pareto(PROBLEM, out, scheduler="sync")
    assert third.n_solved == 0


def test_a_different_problem_in_the_same_folder_is_refused(front):
    from nanosep.flowsheets.pareto import FrontMismatchError

    with pytest.raises(FrontMismatchError, match="n_points"):
        run_pareto(dataclasses.replace(PROBLEM, n_points=7), front.out_dir, scheduler="sync")


def test_an_infeasible_epsilon_is_reported_with_the_binding_bounds(front, tmp_path):
    problem = dataclasses.replace(PROBLEM, n_points=2, epsilon_min_mol_m3=1e-9, epsilon_max_mol_m3=1.0)
    out = tmp_path / "infeasible"
    (out / "anchors").mkdir(parents=True)
    for f in (front.out_dir / "anchors").glob("*.json"):
        shutil.copy(f, out / "anchors" / f.name)
    res = run_pareto(problem, out, scheduler="sync")
    first, *rest = res.points
    assert not first.feasible and math.isnan(first.objective_usd_per_year)
    assert "infeasible" in first.message and "1e-09" in first.message and "at its upper bound" in first.message
    assert all(p.feasible for p in rest)                 # the rest of the front still completes
    saved = json.loads((out / "points" / "point-000.json").read_text())
    assert saved["feasible"] is False and saved["message"] == first.message


def test_feed_outside_the_surrogate_domain_is_a_typed_error(tmp_path):
    spec = PlantSpec(feed_conc_mol_m3={"Na+": 1.0, "SO4-2": 0.5}, osmotic=False)
    problem = ParetoProblem(spec=spec, rejection=RejectionChoice("module"), n_points=2)
    with pytest.raises(OutOfDomainError, match=r"SO4-2 = 0\.5 mol/m3 is outside the domain \[1, 50\]"):
        run_pareto(problem, tmp_path / "x", scheduler="sync")


def test_global_points_are_certified_and_no_worse_than_the_local_front(front):
    """MAiNGO on the reduced-space plant at two of the local front's epsilons: a certified gap <= 1e-3
    and a cost no higher than the multistart's (which can only be a local optimum)."""
    from nanosep.flowsheets.global_opt import solve_global

    for p in (front.points[1], front.points[-2]):
        g = solve_global(SPEC, "element", p.epsilon_mol_m3, rel_gap=1e-3, time_limit_s=120.0)
        assert g.feasible and g.globally_optimal, (g.status, g.message)
        assert g.relative_gap <= 1e-3 + 1e-12
        assert g.product_conc_mol_m3["SO4-2"] <= p.epsilon_mol_m3 * (1 + 1e-5) + 1e-7
        assert g.objective_usd_per_year <= p.objective_usd_per_year * (1 + 1e-3) + 1.0
        assert g.lower_bound_usd_per_year <= g.objective_usd_per_year


# ------------------------------------------------------------------------------ exact-model check
class _ConstantRejection:
    """An ElementModel with a concentration-independent rejection (closed-form module limit)."""

    ions = ("Na+", "SO4-2")
    charges = np.array([1.0, -2.0])

    def __init__(self, r: float) -> None:
        self.r = r

    def __call__(self, params, c_in):
        from nanosep.surrogates.module import ElementResult

        B = c_in.shape[0]
        return ElementResult(np.full_like(c_in, self.r), np.ones(B, bool), np.full(B, "", object), np.zeros(B, int))


def _design(gamma: float, recycle: float, flux: float = 20.0) -> dict:
    product = 224.0
    perm = product / (1 - recycle)
    fresh = perm / gamma - recycle * perm           # stage feed = fresh + recycle; gamma = perm / stage feed
    return {"n_stages": 1, "feed_m3_h": fresh, "recycle_fraction": recycle, "stage1_flux_um_s": flux,
            "stage1_gamma": gamma, "thickness_nm": 140.0, "charge_mol_m3": -450.0, "stage1_n_modules": 50.0,
            "pump1_dp_bar": 3.0, "area_module_m2": 60.0}


def test_exact_stage_is_the_analytical_limit_for_a_constant_rejection():
    from nanosep.surrogates.module import constant_rejection_limit

    plant = ExactPlant(_design(0.9, 0.0), FEED, _ConstantRejection(0.8), product_m3_h=224.0)
    cp = plant.stage_ode(np.array([[20.0, 10.0]]), 20.0, 0.9)
    ref, _ = constant_rejection_limit(np.array([20.0, 10.0]), 0.8, 0.9)
    np.testing.assert_allclose(cp[0], ref, rtol=1e-5)
    # the recycle loop with a constant rejection is linear: c = P (F0 c0 + R c) / (F0 + R) solved directly
    plant = ExactPlant(_design(0.9, 0.4), FEED, _ConstantRejection(0.8), product_m3_h=224.0)
    a = float(ref[1] / 10.0)                       # permeate per unit stage-feed concentration
    f0, r = plant.fresh, plant.recycle
    c_loop = a * f0 * 10.0 / (f0 + r - a * r)
    x, _ = plant.product_conc(np.array([2.0, 1.0]))
    assert x[1] == pytest.approx(c_loop, rel=1e-6) and x[0] == pytest.approx(2 * x[1], rel=1e-9)


def test_exact_check_agrees_with_an_independent_engine_chain():
    """ODE (K -> infinity) + Newton loop vs module.refine_elements' chain (Richardson) at the loop's stage feed."""
    from nanosep.surrogates.module import run_module

    el = _engine_element()
    d = _design(0.6, 0.3)
    pt = DesignPoint(1.0, "test", "optimal", True, objective_usd_per_year=1e5, product_conc_mol_m3={"Na+": 4.0, "SO4-2": 2.0},
                     design=d)
    ec = exact_check(pt, SPEC, el)
    c = np.array([ec["product_conc_mol_m3"][i]["exact"] for i in ("Na+", "SO4-2")])
    assert c[0] == pytest.approx(2 * c[1], rel=1e-8)                # electroneutral product
    plant = ExactPlant(d, FEED, el, product_m3_h=224.0)
    feed = (plant.fresh * np.array([20.0, 10.0]) + plant.recycle * c) / (plant.fresh + plant.recycle)
    params = {"charge_density_mol_m3": -450.0, "thickness_nm": 140.0, "flux_um_s": 20.0}
    c64, c128 = (run_module(el, params, feed, 0.6, k).c_permeate[0] for k in (64, 128))
    np.testing.assert_allclose(c, 2 * c128 - c64, rtol=1e-3)       # the loop is closed with the engine's permeate
    q = (0.4 * 140.0 - 25.0) * 1e-3 / 3600 / 1e5                   # seed 002 eq. 4, m s-1 Pa-1
    assert ec["pump_dp_bar"]["exact"][0] * 1e5 == pytest.approx(20e-6 / q, rel=1e-12)   # no osmotic term


def test_exact_check_exposes_k1_and_passes_the_module_surrogate(front):
    """Seed 002 sec. 3.3: k = 1 (rejection at the stage feed) is far too optimistic at high recovery; the module
    surrogate (trained on K = 256 exact chains) is not."""
    cheap = front.anchors["cost"]
    assert cheap.design["stage1_gamma"] > 0.9
    k1 = exact_check(cheap, SPEC, surrogate_name="seed002_na2so4_element")
    assert k1["product_conc_mol_m3"]["SO4-2"]["rel_error"] < -0.2
    mod = RejectionChoice("module")
    pt = solve_multistart(SPEC, mod.factory(), None, n_starts=2)
    assert pt.feasible and pt.design["stage1_gamma"] > 0.9
    m = exact_check(pt, SPEC, surrogate_name="seed002_na2so4_module")
    assert abs(m["product_conc_mol_m3"]["SO4-2"]["rel_error"]) < 0.03


def test_exact_cost_matches_the_flowsheet_costing_and_the_osmotic_pressure():
    spec = dataclasses.replace(SPEC, osmotic=True)
    pt = solve_multistart(spec, RejectionChoice("module").factory(), None, n_starts=1)
    assert pt.feasible
    ec = exact_check(pt, spec, surrogate_name="seed002_na2so4_module")
    # the float cost model at the design pressure reproduces the Pyomo objective
    assert ec["cost_recomputed_at_design_pressure_usd_per_year"] == pytest.approx(pt.objective_usd_per_year, rel=1e-6)
    # dP = J / Q + (pi_feed - pi_perm); the van 't Hoff difference for the module surrogate's own permeate
    q = (0.4 * pt.design["thickness_nm"] - 25.0) * 1e-3 / 3600 / 1e5
    cf = pt.design["stage1_feed_conc_mol_m3"]
    cp = pt.product_conc_mol_m3
    dpi = 8.314462618 * 298.15 * (sum(cf.values()) - sum(cp.values()))
    assert pt.design["pump1_dp_bar"] * 1e5 == pytest.approx(pt.design["stage1_flux_um_s"] * 1e-6 / q + dpi, rel=1e-5)
    # exact permeate is less pure: smaller osmotic difference, lower pressure and cost at the same flux
    exact_perm = ec["stage_permeate_mol_m3"][0]
    dpi_exact = 8.314462618 * 298.15 * (sum(cf.values()) - sum(exact_perm.values()))
    assert ec["pump_dp_bar"]["exact"][0] * 1e5 == pytest.approx(pt.design["stage1_flux_um_s"] * 1e-6 / q + dpi_exact,
                                                                rel=1e-3)


# ------------------------------------------------------------------------------ case files and CLI
def test_shipped_design_cases_load():
    files = sorted((ROOT / "cases" / "design").glob("*.yaml"))
    assert len(files) >= 10
    for f in files:
        case = load_design_case(f)
        problem = case.to_problem()
        assert problem.spec.product_m3_h == 224.0 and problem.name == case.name


def test_mixture_case_uses_the_shipped_mixture_surrogate_and_a_missing_card_is_named(tmp_path):
    case = load_design_case(ROOT / "cases" / "design" / "seed002_mixture_nacl_na2so4_1to1_10mM.yaml")
    sur = case.to_problem().rejection.load()
    assert sur.card.name == "seed002_nacl_na2so4_element"
    assert {"rejection_Cl-", "rejection_SO4-2"} <= set(sur.card.output_names)
    missing = tmp_path / "nowhere" / "mixture.card.json"
    with pytest.raises(InvalidInputError, match="mixture.card.json"):
        RejectionChoice("element", surrogate=str(missing)).load()


BASE = {"name": "t", "feed": {"concentrations_mol_m3": {"Na+": 20.0, "SO4-2": 10.0}}}


@pytest.mark.parametrize("change, pattern", [
    ({"product_m3_h": -5}, r"product_m3_h: must be > 0 \(got -5\)"),
    ({"product_L_s": 62}, r"product_L_s: unknown key; did you mean 'product_m3_h'"),
    ({"plant": {"n_stages": 3}}, r"plant\.n_stages.*\(got 3\)"),
    ({"rejection": {"kind": "kriging"}}, r"rejection\.kind.*kriging"),
    ({"pareto": {"epsilon_min_mol_m3": 2.0, "epsilon_max_mol_m3": 1.0}}, r"epsilon_min_mol_m3 = 2 must be below"),
    ({"limit_ion": "Ca+2"}, r"limit_ion 'Ca\+2' is not one of the feed ions"),
    ({"feed": {"concentrations_mol_m3": {"Na+": 20.0, "Xy-": 1.0}}}, r"Xy-"),
])
def test_design_case_errors_name_the_value(change, pattern):
    with pytest.raises(InvalidInputError, match=pattern):
        design_case_from_dict({**BASE, **change}, source="case.yaml")


def test_front_json_has_null_for_a_failed_purity_step(front, tmp_path):
    """A purity anchor that fails leaves NaN figures; front.json must still be strict JSON (null there)."""
    import dataclasses
    import math

    broken = dataclasses.replace(front, purity_limit={**front.purity_limit, "c_min_mol_m3": math.nan},
                                 seconds=math.inf)
    text = json.dumps(broken.to_dict(), allow_nan=False)
    d = json.loads(text)
    assert d["purity_limit"]["c_min_mol_m3"] is None and d["seconds"] is None
    assert d["n_points"] == len(front.points)


def test_charged_feed_is_an_electroneutrality_error():
    with pytest.raises(ElectroneutralityError, match=r"sum z c = 5"):
        design_case_from_dict({**BASE, "feed": {"concentrations_mol_m3": {"Na+": 25.0, "SO4-2": 10.0}}})


def test_cli_optimize_writes_the_front_and_prints_json(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from nanosep.cli import app

    # two local starts: the purity anchor is degenerate (one element at the stage feed, no recirculation: the
    # product purity does not depend on the feed flow), and from the spec's own start Ipopt walks along that flat
    # direction and stops with "search direction too small" at the optimum the second start certifies as optimal
    case = {**BASE, "name": "cli_test", "plant": {"recirculation": False}, "pareto": {"points": 2},
            "solver": {"starts": 2}, "exact_check": {"enabled": False}}
    path = tmp_path / "case.yaml"
    path.write_text(yaml.safe_dump(case))
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["optimize", str(path), "--json", "--out", str(out), "--scheduler", "sync"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout[res.stdout.index("{"):res.stdout.rindex("}") + 1])
    assert d["name"] == "cli_test" and d["n_points"] == 2 and d["n_feasible"] == 2
    for f in ("front.json", "front.csv", "front.png"):
        assert (out / f).stat().st_size > 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**case, "product_m3_h": "lots"}))
    res = CliRunner().invoke(app, ["optimize", str(bad), "--scheduler", "sync"])
    assert res.exit_code == 2 and "product_m3_h" in res.output and "lots" in res.output


# ------------------------------------------------------------------------------ slow
@pytest.mark.slow
def test_module_front_on_a_local_dask_cluster_with_exact_checks(tmp_path):
    problem = ParetoProblem(spec=SPEC, rejection=RejectionChoice("module"), solver=PointSolver("local", n_starts=4),
                            n_points=5, exact_check=True, name="slow_module")
    res = run_pareto(problem, tmp_path / "m", scheduler="local", n_workers=2)
    cost = np.array([p.objective_usd_per_year for p in res.points])
    assert all(p.feasible for p in res.points)
    assert np.all(np.diff(cost) <= 1e-7 * cost[:-1])
    err = [abs(p.exact_check["product_conc_mol_m3"]["SO4-2"]["rel_error"]) for p in res.points]
    # the purest design feeds its stage at the module surrogate's domain edge (c_SO4 = 1 mol/m3): ~6 % there
    assert err[0] < 0.1 and max(err[1:]) < 0.01, err


@pytest.mark.slow
def test_exact_ode_and_refined_chain_agree_on_a_recirculating_design():
    el = _engine_element()
    pt = DesignPoint(1.0, "test", "optimal", True, objective_usd_per_year=1e5,
                     product_conc_mol_m3={"Na+": 1.0, "SO4-2": 0.5}, design=_design(0.95, 0.5, flux=40.0))
    ode = exact_check(pt, SPEC, el, method="ode")
    chain = exact_check(pt, SPEC, el, method="chain", rtol=1e-3)
    a = ode["product_conc_mol_m3"]["SO4-2"]["exact"]
    b = chain["product_conc_mol_m3"]["SO4-2"]["exact"]
    assert a == pytest.approx(b, rel=2e-3) and chain["n_elements"] >= 64


@pytest.mark.slow
def test_global_point_solver(tmp_path):
    pytest.importorskip("nanosep.flowsheets.global_opt")
    problem = dataclasses.replace(PROBLEM, solver=PointSolver("global", time_limit_s=120.0), n_points=3, exact_check=True)
    res = run_pareto(problem, tmp_path / "g", scheduler="sync")
    assert all(p.solver != "cyipopt-multistart" for p in res.points)
    assert len(res.feasible) == 3
    for p in res.feasible:
        assert p.product_conc_mol_m3["SO4-2"] <= p.epsilon_mol_m3 * (1 + 1e-5) + 1e-7   # MAiNGO's feasibility tolerance
        assert p.exact_check is None or "error" not in p.exact_check
