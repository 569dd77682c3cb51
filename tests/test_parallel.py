"""solve_batch_parallel: same arrays as solve_batch, chunk-failure isolation, progress.

Two LocalClusters of two spawned workers are started (a module fixture, and the one the
default scheduler creates); with the workers' torch/nanosep imports the module takes
~16 s on an idle 2-core VM and ~30 s with the VM loaded at 4-5.
"""
from __future__ import annotations

import numpy as np
import pytest
from nanosep.transport import BatchResult, TransportOptions, parallel, solve_batch
from nanosep.transport.parallel import concat_results, solve_batch_parallel

from nanosep.errors import ConvergenceError, InvalidInputError, UnknownIonError

IONS = ["Na+", "Cl-", "SO4-2"]
B = 64


def _inputs(B: int = B, seed: int = 1):
    rng = np.random.default_rng(seed)
    so4 = rng.uniform(1, 30, B)
    cl = rng.uniform(1, 100, B)
    c = np.stack([cl + 2 * so4, cl, so4], axis=1)
    kw = {"flux_m_s": np.geomspace(1e-6, 3e-5, B), "pore_radius_m": 0.5e-9, "thickness_m": 1e-6,
              "pore_dielectric": 40.0, "charge_density_mol_m3": rng.uniform(-80, -20, B), "temperature_K": 298.15,
              "options": TransportOptions()}
    return c, kw


@pytest.fixture(scope="module")
def case():
    c, kw = _inputs()
    ref16 = solve_batch(IONS, c, chunk_size=16, **kw)   # same chunk boundaries as the parallel runs
    ref = solve_batch(IONS, c, **kw)                    # one chunk
    return c, kw, ref16, ref


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") \
            as cluster, distributed.Client(cluster, set_as_default=False) as cl:
        yield cl


def _fields(r: BatchResult):
    for name in r.__dataclass_fields__:
        v = getattr(r, name)
        if isinstance(v, np.ndarray):
            yield name, v
        elif isinstance(v, dict) and name != "meta":
            for k, a in v.items():
                yield f"{name}[{k}]", a


def assert_same(a: BatchResult, b: BatchResult, rows=slice(None)):
    """Bit-identical arrays (NaN == NaN) on the given case rows."""
    assert a.ions == b.ions
    fb = dict(_fields(b))
    for name, va in _fields(a):
        vb = fb[name]
        if name in ("charges", "x", "y_film"):
            np.testing.assert_array_equal(va, vb, err_msg=name)
        else:
            np.testing.assert_array_equal(va[rows], vb[rows], err_msg=name)


def test_threads_identical_to_in_process(case):
    c, kw, ref16, ref = case
    calls = []
    res = solve_batch_parallel(IONS, c, chunk_size=16, scheduler="threads", progress=lambda d, t: calls.append((d, t)),
                               **kw)
    assert res.meta["parallel"]["n_chunks"] == 4 and res.meta["parallel"]["chunks"][1] == (16, 32)
    assert len(res) == B and res.converged.all()
    assert_same(res, ref16)
    # against the single-chunk call: the solutions are those of the chunked call; the final
    # residual is a round-off-level diagnostic that depends on how many cases are evaluated together
    for name, va in _fields(ref):
        vb = dict(_fields(res))[name]
        if va.dtype.kind == "f":
            np.testing.assert_allclose(vb, va, rtol=1e-9, atol=kw["options"].tol if name == "residual" else 0,
                                       err_msg=name)
    # progress: (0, B) first, then once per chunk with increasing counts up to B
    assert calls[0] == (0, B) and calls[-1] == (B, B)
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(set(done)) == len(done) == 5


def test_local_cluster_identical_to_in_process(case, client):
    c, kw, ref16, _ = case
    calls = []
    res = solve_batch_parallel(IONS, c, chunk_size=16, scheduler=client, progress=lambda d, t: calls.append(d), **kw)
    assert res.meta["parallel"]["n_chunks"] == 4 and not res.meta["parallel"]["failures"]
    assert_same(res, ref16)
    assert calls == sorted(calls) and calls[0] == 0 and calls[-1] == B and len(calls) == 5
    assert client.status == "running"          # a Client passed in is not closed


def test_worker_side_input_error_isolated(case, client):
    """An input that raises inside a worker process (non-finite flux in case 40) fails only its chunk."""
    c, kw, ref16, _ = case
    kw = dict(kw, flux_m_s=kw["flux_m_s"].copy())
    kw["flux_m_s"][40] = np.nan
    # connect by address this time: the call opens (and closes) its own Client
    res = solve_batch_parallel(IONS, c, chunk_size=16, scheduler=client.scheduler.address, **kw)
    assert res.meta["parallel"]["scheduler"].startswith("tcp://")
    bad = np.zeros(B, bool)
    bad[32:48] = True
    assert not res.converged[bad].any() and res.converged[~bad].all()
    assert all(r.startswith("chunk failed: InvalidInputError: flux_m_s has non-finite values") for r in res.reason[bad])
    assert np.isnan(res.c_perm[bad]).all() and np.isnan(res.solution[bad]).all()
    np.testing.assert_array_equal(res.c_feed[bad], c[bad])
    for rows in (slice(0, 32), slice(48, B)):
        assert_same(res, ref16, rows)
    (f,) = res.meta["parallel"]["failures"]
    assert f["cases"] == (32, 48) and "Traceback" in f["traceback"]
    assert client.status == "running" and len(client.nthreads()) == 2   # the cluster is left running


def test_default_scheduler_creates_and_closes_a_local_cluster():
    c, kw = _inputs(8, seed=3)
    ref = solve_batch(IONS, c, chunk_size=2, **kw)
    res = solve_batch_parallel(IONS, c, **kw)          # LocalCluster(2 processes): 2 chunks per worker
    assert res.meta["parallel"]["scheduler"] == "local"
    assert res.meta["parallel"]["chunks"] == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert_same(res, ref)


def test_chunk_exception_isolated(case, monkeypatch):
    c, kw, ref16, _ = case
    task = parallel._solve_chunk_task
    bad_flux = kw["flux_m_s"][16]

    def flaky(ions, c_feed, kwargs, limit_threads=True):
        if kwargs["flux_m_s"][0] == bad_flux:
            raise RuntimeError("injected failure")
        return task(ions, c_feed, kwargs, limit_threads)

    monkeypatch.setattr(parallel, "_solve_chunk_task", flaky)
    calls = []
    res = solve_batch_parallel(IONS, c, chunk_size=16, scheduler="threads", progress=lambda d, t: calls.append(d),
                               **kw)
    bad = np.zeros(B, bool)
    bad[16:32] = True
    assert not res.converged[bad].any() and res.converged[~bad].all()
    assert set(res.reason[bad]) == {"chunk failed: RuntimeError: injected failure"}
    assert set(res.reason[~bad]) == {""}
    assert np.isnan(res.c_perm[bad]).all() and np.isnan(res.c_layer[bad]).all()
    assert np.isinf(res.residual[bad]).all() and (res.iterations[bad] == 0).all()
    np.testing.assert_array_equal(res.flux_m_s[bad], kw["flux_m_s"][bad])
    assert_same(res, ref16, ~bad)
    assert calls[-1] == B                                    # failed cases count as done
    with pytest.raises(ConvergenceError, match="case 16 did not converge"):
        solve_batch_parallel(IONS, c, chunk_size=16, scheduler="threads", strict=True, **kw)


def test_all_chunks_fail(monkeypatch):
    def boom(ions, c_feed, kwargs, limit_threads=True):
        raise RuntimeError("down")

    monkeypatch.setattr(parallel, "_solve_chunk_task", boom)
    c, kw = _inputs(10)
    res = solve_batch_parallel(IONS, c, chunk_size=4, scheduler="threads", **kw)
    assert len(res) == 10 and not res.converged.any()
    assert res.c_perm.shape == (10, 3) and res.c_layer.shape == (10, 3, 25) and res.flux_split.shape == (10, 3, 3)
    assert res.ions == ("Na+", "Cl-", "SO4-2") and res.charges.tolist() == [1, -1, -2]
    assert len(res.meta["parallel"]["failures"]) == 4     # 10 cases, 2 threads -> 4 chunks
    res.to_frame()                                           # still a usable result


def test_pressure_balance_and_rich_progress():
    rich_progress = pytest.importorskip("rich.progress")
    c = np.array([[50.0, 0.0, 10.0]] * 12)                   # Cl- added by balance_with
    kw = {"pressure_pa": np.linspace(2e5, 1e6, 12), "pore_radius_m": 0.5e-9, "thickness_m": 1e-6, "pore_dielectric": 40,
              "charge_density_mol_m3": -50, "balance_with": "Cl-"}
    ref = solve_batch(IONS, c, chunk_size=3, **kw)
    with rich_progress.Progress(disable=True) as prog:
        res = solve_batch_parallel(IONS, c, chunk_size=3, scheduler="threads", progress=prog, **kw)
        (task,) = prog.tasks
        assert task.completed == task.total == 12
    assert_same(res, ref)


def test_whole_batch_errors_raise_before_submitting():
    c, kw = _inputs(6)
    with pytest.raises(UnknownIonError):
        solve_batch_parallel(["Na+", "Cl-", "Xx+9"], c, scheduler="threads", **kw)
    with pytest.raises(InvalidInputError, match="pore_radius_m must be a scalar or have 6 entries"):
        solve_batch_parallel(IONS, c, scheduler="threads", **dict(kw, pore_radius_m=np.ones(5) * 5e-10))
    with pytest.raises(InvalidInputError, match="exactly one of"):
        solve_batch_parallel(IONS, c, scheduler="threads", pressure_pa=1e5, **kw)
    with pytest.raises(InvalidInputError, match="scheduler="):
        solve_batch_parallel(IONS, c, scheduler="gpu", **kw)


def test_concat_results_roundtrip(case):
    c, kw, ref16, _ = case
    parts = []
    for a, b in ((0, 16), (16, 64)):
        sub = {k: (v[a:b] if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        parts.append(solve_batch(IONS, c[a:b], chunk_size=16, **sub))
    assert_same(concat_results(parts), ref16)
