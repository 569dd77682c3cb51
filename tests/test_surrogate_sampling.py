"""Sampling: engine arguments, agreement with a direct solve_batch call, resume, failures, zero flux.

A reduced Na2SO4 domain (X -200..-100 mol/m3, SO4-2 4-40 mol/m3) where the engine converges
quickly keeps the module at a few seconds; runs use the in-process ``"sync"`` scheduler
(one ``"threads"`` run checks that the scheduler does not change the data).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nanosep.transport.solver as solver_mod
import numpy as np
import pandas as pd
import pytest
import yaml
from nanosep.surrogates import sampling
from nanosep.surrogates.domain import (
    design,
    load_surrogate_case,
    surrogate_case_from_dict,
)
from nanosep.surrogates.sampling import (
    DatasetMismatchError,
    chunk_path,
    engine_arguments,
    run_sampling,
    solve_rows,
)
from nanosep.transport import TransportOptions, solve_batch

from nanosep.errors import InvalidInputError

CASES = Path(__file__).resolve().parents[1] / "cases" / "surrogates"
N, CHUNK = 24, 8


def _small_dict() -> dict:
    d = yaml.safe_load((CASES / "seed002_na2so4_element.yaml").read_text())
    d["inputs"][0].update(low=-200, high=-100)
    d["inputs"][2].update(low=5.0)
    d["inputs"][3].update(low=4.0, high=40.0)
    d["design"] = {"method": "lhs", "n": N, "seed": 7}
    return d


@pytest.fixture(scope="module")
def case():
    return surrogate_case_from_dict(_small_dict())


def _read(out: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted((out / "chunks").glob("chunk-*.parquet"))],
                     ignore_index=True)


@pytest.fixture(scope="module")
def reference(case, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    report = run_sampling(case, out, chunk_size=CHUNK, scheduler="sync")
    return out, report, _read(out)


@pytest.fixture
def count_calls(monkeypatch):
    """Count solve_batch calls (the chunk task looks the function up at call time)."""
    calls = []
    real = solver_mod.solve_batch

    def counting(ions, c, **kw):
        calls.append(np.shape(c)[0])
        return real(ions, c, **kw)

    monkeypatch.setattr(solver_mod, "solve_batch", counting)
    return calls


# ---------------------------------------------------------------------- engine arguments
def test_engine_arguments_units_and_balance(case):
    rows = pd.DataFrame({"case_id": [0, 1], "charge_density_mol_m3": [-150.0, -120.0], "thickness_nm": [100.0, 80.0],
                         "flux_um_s": [20.0, 0.0], "c_SO4-2_mol_m3": [5.0, 12.5]})
    b = engine_arguments(case, rows)
    assert b.ions == ["Na+", "SO4-2"]
    np.testing.assert_allclose(b.kwargs["thickness_m"], [1.0e-7, 8.0e-8], rtol=1e-15)
    np.testing.assert_allclose(b.kwargs["flux_m_s"], [2.0e-5, 0.0], rtol=1e-15)
    np.testing.assert_array_equal(b.kwargs["charge_density_mol_m3"], [-150.0, -120.0])
    assert b.kwargs["pore_radius_m"] == pytest.approx(1.2e-9, rel=1e-15)
    assert b.kwargs["pore_dielectric"] == 78.30334375
    np.testing.assert_allclose(b.c_feed, [[10.0, 5.0], [25.0, 12.5]], rtol=1e-15)
    np.testing.assert_array_equal(b.zero_flux, [False, True])


def test_engine_arguments_mixture_and_user_units():
    d = yaml.safe_load((CASES / "seed002_nacl_na2so4_element.yaml").read_text())
    d["inputs"][1] = {"name": "thickness_um", "low": 0.05, "high": 0.2}
    d["inputs"][2] = {"name": "flux_L_m2_h", "low": 0.0, "high": 180.0}
    d.pop("training", None)   # its extra designs bound the replaced flux_um_s input
    case = surrogate_case_from_dict(d)
    df = design(case, n=64)
    b = engine_arguments(case, df)
    z = np.array([1.0, -1.0, -2.0])
    np.testing.assert_allclose(b.c_feed @ z, 0.0, atol=1e-12)                        # electroneutral
    np.testing.assert_allclose(b.c_feed[:, 0], df["c_Cl-_mol_m3"] + 2 * df["c_SO4-2_mol_m3"], rtol=1e-13)
    np.testing.assert_allclose(b.kwargs["thickness_m"], df["thickness_um"] * 1e-6, rtol=1e-15)
    np.testing.assert_allclose(b.kwargs["flux_m_s"], df["flux_L_m2_h"] / 3.6e6, rtol=1e-14)


def test_balance_ion_that_cannot_balance_names_case():
    d = yaml.safe_load((CASES / "nf270_multi_ion_element.yaml").read_text())
    d["inputs"][5].update(high=80.0)          # SO4-2 up to 80 mol/m3: Cl- would go negative
    case = surrogate_case_from_dict(d)
    with pytest.raises(InvalidInputError, match=r"case_id \d+: Cl- cannot balance"):
        engine_arguments(case, design(case, n=256))


# ---------------------------------------------------------------------- the dataset
def test_dataset_equals_direct_solve_batch(case, reference):
    _, report, df = reference
    assert len(df) == N and df["case_id"].tolist() == list(range(N))
    assert report.n_converged == N and df["converged"].all() and (df["reason"] == "").all()
    so4 = df["c_SO4-2_mol_m3"].to_numpy()
    # an independent, hand-written mapping of the case file (pore radius, dielectric from the YAML)
    ref = solve_batch(["Na+", "SO4-2"], np.column_stack([2 * so4, so4]), flux_m_s=df["flux_um_s"] * 1e-6,
                      pore_radius_m=1.2e-9, thickness_m=df["thickness_nm"] * 1e-9, pore_dielectric=78.30334375,
                      charge_density_mol_m3=df["charge_density_mol_m3"].to_numpy(),
                      temperature_K=298.15, options=TransportOptions(activity="ideal", polarization="none"))
    for j, ion in enumerate(ref.ions):
        np.testing.assert_allclose(df[f"rejection_{ion}"], ref.rejection_observed[:, j], rtol=0, atol=1e-12)
        np.testing.assert_allclose(df[f"permeate_{ion}_mol_m3"], ref.c_perm[:, j], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(df["newton_iterations"], ref.iterations)
    # electroneutral permeate: the two rejections of a single salt agree
    np.testing.assert_allclose(df["rejection_Na+"], df["rejection_SO4-2"], atol=1e-8)


def test_directory_layout_and_manifest(case, reference):
    out, _, df = reference
    manifest = json.loads((out / "manifest.json").read_text())
    d = pd.read_parquet(out / "design.parquet")
    assert manifest["design_hash"] == sampling.design_hash(d)
    assert d.equals(design(case))
    assert manifest["n_chunks"] == 3 and manifest["chunk_size"] == CHUNK and manifest["complete"]
    assert manifest["surrogate_case"] == case.to_dict()
    assert manifest["n_converged"] == N and manifest["ions"] == ["Na+", "SO4-2"]
    assert not list(out.rglob("*.tmp"))
    cols = set(df.columns)
    assert {"converged", "reason", "newton_iterations", "rejection_SO4-2", "permeate_Na+_mol_m3"} <= cols


def test_threads_scheduler_gives_the_same_rows(case, reference, tmp_path):
    _, _, df = reference
    run_sampling(case, tmp_path, chunk_size=CHUNK, scheduler="threads", n_workers=2)
    pd.testing.assert_frame_equal(_read(tmp_path), df)


def test_resume_skips_finished_chunks(case, reference, tmp_path, count_calls):
    _, _, df = reference

    class Stop(Exception):
        pass

    def interrupt(done, total):
        if done >= 2 * CHUNK:
            raise Stop

    with pytest.raises(Stop):
        run_sampling(case, tmp_path, chunk_size=CHUNK, scheduler="sync", progress=interrupt)
    assert len(count_calls) == 2
    assert not json.loads((tmp_path / "manifest.json").read_text())["complete"]
    mtimes = [chunk_path(tmp_path, i).stat().st_mtime_ns for i in range(2)]
    seen = []
    report = run_sampling(case, tmp_path, scheduler="sync", progress=lambda d, t: seen.append(d))
    assert len(count_calls) == 3                       # only the third chunk was solved again
    assert (report.chunks_skipped, report.chunks_solved) == (2, 1)
    assert seen == [2 * CHUNK, N]
    assert [chunk_path(tmp_path, i).stat().st_mtime_ns for i in range(2)] == mtimes
    pd.testing.assert_frame_equal(_read(tmp_path), df)
    run_sampling(case, tmp_path, scheduler="sync")     # complete: nothing to do
    assert len(count_calls) == 3


def test_mismatched_design_refuses(case, reference, tmp_path):
    out = tmp_path / "ref"
    shutil.copytree(reference[0], out)
    old = json.loads((out / "manifest.json").read_text())["design_hash"]
    new = sampling.design_hash(design(case, seed=8))
    with pytest.raises(DatasetMismatchError, match=f"{old}.*{new}"):
        run_sampling(case, out, seed=8, scheduler="sync")
    d = _small_dict()
    d["base"]["membrane"]["pore_radius_nm"] = 1.0
    with pytest.raises(DatasetMismatchError, match="different surrogate case.*base"):
        run_sampling(surrogate_case_from_dict(d), out, scheduler="sync")
    d = _small_dict()
    d["outputs"][0]["low"] = -2.0                  # outputs do not change the data: resumes (nothing to do)
    assert run_sampling(surrogate_case_from_dict(d), out, scheduler="sync").chunks_solved == 0
    with pytest.raises(DatasetMismatchError, match="chunk_size 8, this run asks for 4"):
        run_sampling(case, out, chunk_size=4, scheduler="sync")
    # overwrite replaces it
    other = tmp_path / "other"
    run_sampling(case, other, n=8, chunk_size=CHUNK, scheduler="sync")
    report = run_sampling(case, other, n=16, chunk_size=CHUNK, scheduler="sync", overwrite=True)
    assert report.chunks_solved == 2 and len(_read(other)) == 16


def test_failing_chunk_rows_are_kept_with_reason(case, reference, tmp_path, monkeypatch):
    _, _, df = reference
    real = solver_mod.solve_batch
    bad_flux = df["flux_um_s"].iloc[CHUNK + 3] * 1e-6     # a case of the second chunk

    def flaky(ions, c, **kw):
        if np.any(np.asarray(kw["flux_m_s"]) == bad_flux):
            raise RuntimeError("boom in the engine")
        return real(ions, c, **kw)

    monkeypatch.setattr(solver_mod, "solve_batch", flaky)
    report = run_sampling(case, tmp_path, chunk_size=CHUNK, scheduler="sync")
    got = _read(tmp_path)
    assert len(got) == N and report.n_failed == CHUNK and report.n_converged == N - CHUNK
    bad = got.iloc[CHUNK:2 * CHUNK]
    assert (~bad["converged"]).all()
    assert (bad["reason"] == "chunk failed: RuntimeError: boom in the engine").all()
    assert bad["rejection_SO4-2"].isna().all()
    pd.testing.assert_frame_equal(got.drop(index=range(CHUNK, 2 * CHUNK)),
                                  df.drop(index=range(CHUNK, 2 * CHUNK)))


@pytest.mark.slow
def test_local_cluster_gives_the_same_rows(case, reference, tmp_path):
    """Two spawned worker processes (~20-40 s with the cluster start-up)."""
    pytest.importorskip("distributed")
    _, _, df = reference
    report = run_sampling(case, tmp_path, chunk_size=CHUNK, scheduler="local", n_workers=2)
    assert report.scheduler == "local"
    pd.testing.assert_frame_equal(_read(tmp_path), df)


# ---------------------------------------------------------------------- zero flux
def test_zero_flux_exact_and_limit_of_small_flux(case, count_calls):
    v = np.array([0.0, 1e-6, 1e-4, 1e-2, 1.0])                         # um/s
    rows = pd.DataFrame({"case_id": range(5), "charge_density_mol_m3": -150.0, "thickness_nm": 100.0,
                         "flux_um_s": v, "c_SO4-2_mol_m3": 5.0})
    b = engine_arguments(case, rows)
    out = solve_rows(b)
    assert count_calls == [4]                                             # the zero-flux row skipped the engine
    assert out["converged"].all() and out["newton_iterations"][0] == 0
    np.testing.assert_array_equal(out["rejection"][0], [0.0, 0.0])
    np.testing.assert_array_equal(out["permeate_mol_m3"][0], b.c_feed[0])
    r = out["rejection"][1:, 1]
    assert np.all(np.diff(r) > 0)                                        # rejection grows with flux ...
    assert 0 < r[0] < 1e-5                                               # ... from 0 at J_v -> 0
    assert r[1] / r[0] == pytest.approx(100.0, rel=1e-3)                 # linear in J_v near 0


def test_all_zero_flux_chunk_and_gamma_input(case):
    rows = pd.DataFrame({"case_id": [0], "charge_density_mol_m3": [-150.0], "thickness_nm": [100.0],
                         "flux_um_s": [0.0], "c_SO4-2_mol_m3": [5.0]})
    out = solve_rows(engine_arguments(case, rows))
    assert out["converged"].all() and (out["rejection"] == 0).all()
    d = _small_dict()
    d["inputs"].append({"name": "gamma", "low": 0.18, "high": 1.0})
    with pytest.raises(InvalidInputError, match="'gamma' is a module-level input"):
        engine_arguments(surrogate_case_from_dict(d), design(surrogate_case_from_dict(d), n=4))


# ---------------------------------------------------------------------- CLI
def test_cli_sample(tmp_path):
    from typer.testing import CliRunner

    from nanosep.cli import app

    case_file = tmp_path / "small.yaml"
    case_file.write_text(yaml.safe_dump(_small_dict()))
    out = tmp_path / "data"
    res = CliRunner().invoke(app, ["sample", str(case_file), "--out", str(out), "--n", "8", "--scheduler", "sync"])
    assert res.exit_code == 0, res.output
    assert len(_read(out)) == 8 and (out / "manifest.json").exists()
    res = CliRunner().invoke(app, ["sample", str(case_file), "--out", str(out), "--n", "16", "--scheduler", "sync"])
    assert res.exit_code == 2 and "design hash" in res.output


def test_shipped_nf270_case_maps(tmp_path):
    case = load_surrogate_case(CASES / "nf270_multi_ion_element.yaml")
    b = engine_arguments(case, design(case, n=256))
    assert b.kwargs["options"].activity == "davies" and b.kwargs["options"].polarization == "film"
    assert (b.c_feed[:, case.ions.index("Cl-")] > 0).all()
