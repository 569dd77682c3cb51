"""``nanosep demo``: writes the report, figures and tables; the tables hold the engine's
numbers; a new step plugs in by being added to the step list."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from nanosep import demo
from nanosep.casefile import load_case
from nanosep.cli import app
from nanosep.predict import run_case

runner = CliRunner()

SMALL_CASE = {
    "name": "small demo case",
    "membrane": {"pore_radius_nm": 0.5, "thickness_um": 1.16, "pore_dielectric": 43.86,
                 "charge_density_mol_m3": -63.0},
    "feed": {"temperature_K": 298.15,
             "concentrations_mol_m3": {"Na+": 20.0, "Ca+2": 2.0, "Cl-": 14.0, "SO4-2": 5.0}},
    "operation": {"flux_L_m2_h": [10.0, 20.0, 40.0]},
    "model": {"activity": "davies", "polarization": "film", "mass_transfer_m_s": 2e-5},
}
FILES = ("report.md", "rejection_vs_flux.png", "partition_coefficients.png", "flux_contributions.png",
         "profiles.png", "rejection_vs_flux.csv", "partition_coefficients.csv", "flux_contributions.csv",
         "surrogate_parity.png", "surrogate_parity.csv", "surrogate_vs_flux.csv")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The CLI demo on a small case: (output folder, case path, CLI result)."""
    root = tmp_path_factory.mktemp("demo")
    case_path = root / "small.yaml"
    case_path.write_text(yaml.safe_dump(SMALL_CASE, sort_keys=False))
    out = root / "results"
    result = runner.invoke(app, ["demo", "--case", str(case_path), "--out", str(out)])
    return out, case_path, result


def test_demo_writes_every_file(demo_run):
    out, _, result = demo_run
    assert result.exit_code == 0, result.output
    for name in FILES:
        path = out / name
        assert path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_links_figures_and_has_every_section(demo_run):
    text = (demo_run[0] / "report.md").read_text()
    for png in (n for n in FILES if n.endswith(".png")):
        assert f"]({png})" in text
    for step in demo.STEPS:
        assert f"## {step.title}" in text
    for word in ("steric", "born", "image", "donnan", "activity", "diffusion", "convection", "migration",
                 "Newton iterations", "small demo case"):
        assert word in text


def test_csv_numbers_equal_the_engine(demo_run):
    out, case_path, _ = demo_run
    res = run_case(load_case(case_path))
    rej = pd.read_csv(out / "rejection_vs_flux.csv")
    at20 = rej[np.isclose(rej["flux_L_m2_h"], 20.0)].set_index("ion")
    for ion, value in res.case(1).rejection.items():
        assert at20.loc[ion, "rejection_observed"] == pytest.approx(value, rel=1e-12)
        assert at20.loc[ion, "rejection_intrinsic"] == pytest.approx(res.case(1).rejection_intrinsic[ion],
                                                                     rel=1e-12)
    part = pd.read_csv(out / "partition_coefficients.csv")
    part20 = part[np.isclose(part["flux_L_m2_h"], 20.0)].set_index("ion")
    for mech, values in res.case(1).partition("feed").items():
        for ion, value in values.items():
            assert part20.loc[ion, f"phi_{mech}_feed"] == pytest.approx(value, rel=1e-12)
    flux = pd.read_csv(out / "flux_contributions.csv")
    flux20 = flux[np.isclose(flux["flux_L_m2_h"], 20.0)].set_index("ion")
    for ion, split in res.case(1).flux_split.items():
        for name, value in split.items():
            assert flux20.loc[ion, f"{name}_flux_mol_m2_s"] == pytest.approx(value, rel=1e-12)
    fractions = flux[[f"{p}_fraction" for p in demo.FLUX_PARTS]].abs().sum(axis=1)
    np.testing.assert_allclose(fractions, 1.0, rtol=1e-12)


def test_csv_columns_carry_units(demo_run):
    header = pd.read_csv(demo_run[0] / "rejection_vs_flux.csv", nrows=0).columns
    assert {"flux_L_m2_h", "c_feed_mol_m3", "c_perm_mol_m3"} <= set(header)
    header = pd.read_csv(demo_run[0] / "flux_contributions.csv", nrows=0).columns
    assert "migration_flux_mol_m2_s" in header


def test_a_new_step_plugs_in(tmp_path, demo_run):
    def step_extra(out_dir: Path, state: demo.DemoState) -> str:
        (out_dir / "extra.txt").write_text(f"{len(state.result)} points")
        return "extra fragment"

    steps = (*demo.STEPS[:2], demo.DemoStep("extra", "An extra capability", step_extra))
    run = demo.run_demo(demo_run[1], tmp_path / "out", steps=steps)
    assert (tmp_path / "out" / "extra.txt").read_text() == "3 points"
    text = run.report.read_text()
    assert "## An extra capability\n\nextra fragment" in text
    assert set(run.seconds) == {"inputs", "sweep", "extra"}
    assert tmp_path / "out" / "extra.txt" in run.files


def test_bad_case_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**SMALL_CASE, "membrane": {**SMALL_CASE["membrane"], "pore_radius_nm": -1}}))
    result = runner.invoke(app, ["demo", "--case", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "membrane.pore_radius_nm: must be > 0 (got -1)" in result.stderr
    assert "Traceback" not in result.output


def test_default_case_resolves_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert demo.resolve_case_path(demo.DEFAULT_CASE).is_file()


def test_surrogate_step_agrees_with_the_engine(demo_run):
    """The shipped ONNX surrogate vs fresh engine solves (issue 3 target: max abs error <= 0.03)."""
    out = demo_run[0]
    for name in ("surrogate_parity.csv", "surrogate_vs_flux.csv"):
        t = pd.read_csv(out / name)
        eng = [c for c in t.columns if c.endswith("_engine")]
        assert eng, name
        for c in eng:
            e = t[c].to_numpy()
            s = t[c.removesuffix("_engine") + "_surrogate"].to_numpy()
            ok = np.isfinite(e)
            assert ok.mean() > 0.9
            assert np.abs(s[ok] - e[ok]).max() <= 0.03, (name, c)
            assert np.ptp(e[ok]) > 0.2  # the points span a real range of rejections
