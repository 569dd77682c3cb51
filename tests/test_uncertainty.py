"""Tests for nanosep.transport.uncertainty: pore-size EM and bilevel fit, QMC propagation, ablation, pH, `nanosep uq`."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from nanosep.transport import solve_batch
from nanosep.transport.charge import IonizableGroups
from nanosep.transport.psd import lognormal_parameters
from nanosep.transport.shp import shp_rejection
from nanosep.transport.uncertainty import (
    RejectionData,
    bilevel_fit,
    direct_psd,
    em_psd,
    fit_psd,
    marginal_loglik,
)
from nanosep.transport.uncertainty.ablation import ablation_sweep
from nanosep.transport.uncertainty.em_psd import stokes_radii
from nanosep.transport.uncertainty.ph_optimization import optimize_ph, selectivity_vs_ph
from nanosep.transport.uncertainty.propagation import (
    PARAMETERS,
    propagate,
    propagate_radii,
)
from nanosep.transport.uncertainty.radius_table import radius_grid, tabulate_radius
from nanosep.transport.uncertainty.sampling import normal_samples, radius_samples
from nanosep.transport.uncertainty.uq_case import load_uq_case
from scipy.stats import norm

from nanosep import water
from nanosep.errors import InvalidInputError
from nanosep.ions import IonDatabase

torch.set_num_threads(1)

IONS = ["Na+", "Mg+2", "Cl-", "SO4-2"]
FEED = np.array([10.0, 5.0, 10.0, 5.0])
FEED_NACL = np.array([20.0, 1.0, 20.0, 1.0])
FLUX = np.array([5.0, 15.0, 30.0]) / 3.6e6
MEM = {"thickness_m": 1.0e-6, "pore_dielectric": 40.0, "charge_density_mol_m3": -30.0}
TRUE_MEAN, TRUE_SD = 0.6e-9, 0.1e-9


def synthetic(groups: int, sd: float, seed: int = 1, membrane: dict = MEM, sd_model: float | None = None,
              feeds: tuple = (FEED,)):
    """Data of ``groups`` experiments whose radii are exact log-normal quantiles (sample mean/sd of ln r = truth),
    each measured at every feed x flux of FLUX."""
    mux, sx = lognormal_parameters(TRUE_MEAN, TRUE_SD)
    z = norm.ppf((np.arange(groups) + 0.5) / groups)
    if groups > 1:
        z = (z - z.mean()) / z.std()
    r = np.exp(mux + sx * z)
    cf = np.repeat(np.asarray(feeds, dtype=float), FLUX.size, axis=0)          # (P, n)
    J = np.tile(FLUX, len(feeds))
    P = J.size
    res = solve_batch(IONS, np.tile(cf, (groups, 1)), flux_m_s=np.tile(J, groups),
                      pore_radius_m=np.repeat(r, P), **membrane)
    assert res.converged.all()
    R = res.rejection_observed.reshape(groups, P, len(IONS))
    g, p, i = np.meshgrid(np.arange(groups), np.arange(P), np.arange(len(IONS)), indexing="ij")
    y = R + np.random.default_rng(seed).normal(0, sd, R.shape) if sd > 0 else R
    return RejectionData.from_arrays(IONS, cf, J, p.ravel(), i.ravel(), y.ravel(),
                                     sd_model or max(sd, 1e-3), g.ravel()), r


@pytest.fixture(scope="module")
def em_case():
    data, r = synthetic(24, 0.005)
    fit, grid, table = fit_psd(data, **MEM, mean_radius_m=0.8e-9, std_radius_m=0.3e-9)
    return data, r, fit, grid, table


# ---------------------------------------------------------------------- EM (seed 003 eqs. 14-27)
def test_em_and_direct_recover_generating_psd(em_case):
    _, _r, em, grid, _ = em_case
    direct = direct_psd(grid, 0.8e-9, 0.3e-9)
    assert em.converged and direct.converged
    for fit in (em, direct):
        assert fit.mean_radius_m == pytest.approx(TRUE_MEAN, rel=0.01)
        assert fit.std_radius_m == pytest.approx(TRUE_SD, rel=0.05)
    # the two maximizers of the same marginal likelihood agree far inside the statistical tolerance
    assert em.mean_radius_m == pytest.approx(direct.mean_radius_m, rel=1e-4)
    assert em.std_radius_m == pytest.approx(direct.std_radius_m, rel=1e-3)
    assert em.loglik == pytest.approx(direct.loglik, abs=1e-4)
    assert em.iterations >= 2 and direct.evaluations >= 2


def test_em_never_decreases_marginal_likelihood(em_case):
    """Appendix B, eq. B.7, from a poor start with noisier data (more iterations)."""
    data, _ = synthetic(12, 0.03, seed=3)
    _, grid, _ = fit_psd(data, **MEM, table=em_case[4])
    fit = em_psd(grid, 1.2e-9, 0.05e-9, tol=1e-6)
    ll = fit.history[:, 2]
    assert fit.iterations > 5
    assert np.all(np.diff(ll) >= -1e-9 * np.abs(ll[:-1]))
    assert fit.loglik == pytest.approx(marginal_loglik(grid, fit.mu_x, fit.sigma_x))


def test_em_mstep_is_the_q_maximizer(em_case):
    """The closed-form M-step maximizes Q (eq. 24): nudging (mu_x, sigma_x) away from it lowers Q."""
    _, _, _, grid, _ = em_case
    from nanosep.transport.uncertainty.em_psd import _e_step, _log_prior
    mu0, s0 = lognormal_parameters(0.7e-9, 0.2e-9)
    resp, _ = _e_step(grid, mu0, s0)
    G = grid.ll.shape[0]
    mu = float((resp @ grid.u).sum() / G)
    s = float(np.sqrt((resp * (grid.u - mu) ** 2).sum() / G))

    def Q(m, sd):
        return float((resp * _log_prior(grid.u, m, sd)[None, :]).sum())
    best = Q(mu, s)
    for dm, ds in ((1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)):
        assert Q(mu + dm, s + ds) < best


def test_single_group_sigma_not_identifiable(em_case):
    """One latent radius for all data (seed 003's set-up): the ML spread collapses to the grid floor."""
    data, _ = synthetic(1, 0.005)
    _, grid, _ = fit_psd(data, **MEM, table=em_case[4])
    fit = direct_psd(grid, 0.6e-9, 0.1e-9)
    assert fit.at_floor
    assert fit.mean_radius_m == pytest.approx(TRUE_MEAN, rel=0.02)


def test_rejection_data_from_tidy_table():
    from nanosep.measured import load_fdl2021
    t = load_fdl2021()
    d = RejectionData.from_table(t)
    assert d.rejection.size == len(t) and d.n_groups == t["dominant_salt"].nunique()
    # every observation's operating point carries its own row's flux and feed
    np.testing.assert_allclose(d.flux_m_s[d.point] * 3.6e6, t["flux_L_m2_h"].to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(d.c_feed_mol_m3[d.point, d.ion_index], t[[f"c_feed_{i}_mol_m3" for i in t["ion"]]]
                               .to_numpy()[np.arange(len(t)), np.arange(len(t))], rtol=1e-12)
    with pytest.raises(InvalidInputError, match="group_column"):
        RejectionData.from_table(t, group_column="no_such_column")


@pytest.mark.slow
def test_bilevel_recovers_membrane_and_psd():
    """Seed 003 eq. 28: upper level over (dx_e, eps_p, X), EM inside; data at known values, no noise."""
    data, _ = synthetic(16, 0.0, sd_model=0.005, feeds=(FEED, FEED_NACL))
    res = bilevel_fit(data, start={"thickness_m": 1.25e-6, "pore_dielectric": 37.0, "charge_density_mol_m3": -40.0},
                      bounds={"thickness_m": (0.3e-6, 3e-6), "pore_dielectric": (25.0, 60.0),
                              "charge_density_mol_m3": (-120.0, 0.0)})
    # the thickness is the weakest direction (a ridge with the radius: 1.3 um costs only ~3 log-likelihood units)
    assert res.parameters["thickness_m"] == pytest.approx(1.0e-6, rel=0.06)
    assert res.parameters["pore_dielectric"] == pytest.approx(40.0, rel=0.01)
    assert res.parameters["charge_density_mol_m3"] == pytest.approx(-30.0, rel=0.03)
    assert res.psd.mean_radius_m == pytest.approx(TRUE_MEAN, rel=0.02)
    assert res.psd.std_radius_m == pytest.approx(TRUE_SD, rel=0.05)
    # the maximum found is at least as likely as the generating parameters (EM at the truth)
    table = tabulate_radius(data.ions, data.c_feed_mol_m3, data.flux_m_s,
                            radius_grid(0.25e-9, 1.6e-9, 24, stokes_radii(IONS), refinement=(0.01, 0.05)), **MEM)
    truth, _, _ = fit_psd(data, **MEM, table=table, mean_radius_m=TRUE_MEAN, std_radius_m=TRUE_SD)
    assert res.loglik >= truth.loglik - 0.5


# ---------------------------------------------------------------------- QMC propagation
LI_MG = (["Li+", "Mg+2", "Cl-"], np.array([49.0, 84.3, 217.6]))
NF270 = {"thickness_m": 1.16e-6, "pore_dielectric": 43.86, "charge_density_mol_m3": -63.0}


def test_sigma_to_zero_is_single_pore():
    ions, c = LI_MG
    J = np.array([10.0, 30.0]) / 3.6e6
    r = radius_samples(0.5e-9, 1e-9 * 0.5e-9, 16)
    X = np.column_stack([r] + [np.full(r.size, NF270[p]) for p in PARAMETERS[1:]])
    direct = propagate(ions, c, J, X)
    table = propagate_radii(ions, c, J, r, **NF270)
    one = solve_batch(ions, np.tile(c, (2, 1)), flux_m_s=J, pore_radius_m=0.5e-9, **NF270)
    for res in (direct, table):
        assert res.converged.all()
        np.testing.assert_allclose(res.rejection, np.broadcast_to(one.rejection_observed, res.rejection.shape),
                                   atol=1e-6)
    np.testing.assert_allclose(direct.partition["donnan"][0], one.partition_feed["donnan"], rtol=1e-6)


def test_table_interpolation_matches_direct_solves():
    ions, c = LI_MG
    J = np.array([5.0, 15.0, 50.0]) / 3.6e6
    r = radius_samples(0.5e-9, 0.13e-9, 32, seed=5)
    X = np.column_stack([r] + [np.full(r.size, NF270[p]) for p in PARAMETERS[1:]])
    d = propagate(ions, c, J, X)
    t = propagate_radii(ions, c, J, r, **NF270, n_table=96)
    err = np.abs(d.rejection - t.rejection)
    assert np.nanmax(err) < 5e-3            # steep band just above the Mg2+ Stokes radius
    assert np.nanmedian(err) < 1e-5
    np.testing.assert_allclose(t.partition["total"], d.partition["total"], atol=5e-3)


def test_qmc_error_decreases_faster_than_mc():
    """Mean Li+ rejection over the PSD: a 200-node Gauss-Hermite reference of the same interpolated engine."""
    ions, c = LI_MG
    mean, sd = 0.6e-9, 0.1e-9
    mux, sx = lognormal_parameters(mean, sd)
    t, w = np.polynomial.hermite_e.hermegauss(200)
    nodes = np.exp(mux + sx * t)
    used = nodes[w / w.sum() > 1e-16]
    table = tabulate_radius(ions, c, 15 / 3.6e6, radius_grid(used.min(), used.max(), 64), **NF270)

    def f(r):
        return table.interpolate(np.clip(r, table.radii_m[0], table.radii_m[-1]), "rejection")[:, 0, 0]
    ref = float(np.sum(w * f(nodes)) / w.sum())
    rmse = {}
    for method in ("sobol", "mc"):
        for n in (64, 1024):
            errs = [np.mean(f(radius_samples(mean, sd, n, method, seed))) - ref for seed in range(8)]
            rmse[method, n] = float(np.sqrt(np.mean(np.square(errs))))
    assert rmse["sobol", 1024] < rmse["mc", 1024] / 4
    # QMC converges faster than n^-1/2: its error ratio over 16x more samples beats MC's (~4)
    assert rmse["sobol", 64] / rmse["sobol", 1024] > 1.5 * rmse["mc", 64] / rmse["mc", 1024]


def test_covariance_samples_and_delta_method():
    """Sample moments reproduce (mean, cov); the propagated rejection variance matches the delta method."""
    mean = np.array([0.5e-9, 1.16e-6, 43.86, -63.0])
    sds = np.array([0.005e-9, 0.02e-6, 0.3, 1.5])
    corr = np.eye(4)
    corr[0, 3] = corr[3, 0] = -0.5
    cov = corr * np.outer(sds, sds)
    Z = normal_samples(mean, cov, 4096)
    np.testing.assert_allclose(Z.mean(axis=0), mean, rtol=1e-4)
    np.testing.assert_allclose(np.cov(Z.T) / np.outer(sds, sds), corr, atol=0.01)
    ions, c = LI_MG
    J = [15 / 3.6e6]
    res = propagate(ions, c, J, normal_samples(mean, cov, 128))
    assert res.converged.all()
    # finite-difference gradient of R_Li+ at the mean (independent of the sampler)
    h = sds * 0.5
    P = np.repeat(mean[None, :], 9, axis=0)
    for j in range(4):
        P[1 + 2 * j, j] += h[j]
        P[2 + 2 * j, j] -= h[j]
    fd = propagate(ions, c, J, P).rejection[:, 0, 0]
    grad = np.array([(fd[1 + 2 * j] - fd[2 + 2 * j]) / (2 * h[j]) for j in range(4)])
    var_delta = grad @ cov @ grad
    var_qmc = res.rejection[:, 0, 0].var(ddof=1)
    assert var_qmc == pytest.approx(var_delta, rel=0.15)
    assert res.rejection[:, 0, 0].mean() == pytest.approx(fd[0], abs=0.1 * np.sqrt(var_delta))


def test_failures_are_recorded_not_raised():
    ions, c = LI_MG
    X = np.array([[0.5e-9, 1.16e-6, 43.86, -63.0], [-0.1e-9, 1.16e-6, 43.86, -63.0], [0.5e-9, 1e-6, np.nan, 0.0]])
    res = propagate(ions, c, [1e-5], X)
    assert res.converged.tolist() == [[True], [False], [False]]
    assert np.isnan(res.rejection[1:]).all()
    assert "pore_radius_m" in res.reason[1, 0] and "pore_dielectric" in res.reason[2, 0]
    frame = res.to_frame()
    assert len(frame) == 3 * len(ions) and frame["reason"].str.startswith("non-physical").sum() == 2 * len(ions)


def test_bad_sampling_inputs():
    with pytest.raises(InvalidInputError, match="positive semi-definite"):
        normal_samples([0, 0], [[1, 2], [2, 1]], 8)
    with pytest.raises(InvalidInputError, match="sampling method"):
        radius_samples(0.5e-9, 0.1e-9, 8, method="halton")


# ---------------------------------------------------------------------- ablation and pH
def test_ablation_thickness_neutral_solute_matches_closed_form():
    """Glucose at X = 0: the sweep must follow the steric hindered-pore rejection (seed 003 eq. D.8)."""
    T = 298.15
    thick = np.array([0.3e-6, 1e-6, 3e-6])
    mem = {"pore_radius_m": 0.6e-9, "thickness_m": 1e-6, "pore_dielectric": 40.0, "charge_density_mol_m3": 0.0}
    tab = ablation_sweep(["glucose"], [10.0], 5e-6, mem, "thickness_m", thick, temperature_K=T)
    glu = IonDatabase.default().get("glucose")
    D = float(water.diffusivity_at(glu.diffusivity_m2_s, T))
    ref = shp_rejection(glu.stokes_radius_m, D, 0.6e-9, thick, 5e-6)
    np.testing.assert_allclose(tab["value_base"].to_numpy(), ref, atol=1e-6)
    assert np.all(np.diff(tab["value_base"].to_numpy()) > 0)


def test_ablation_with_psd_bands_contain_nominal():
    ions, c = LI_MG
    mem = dict(pore_radius_m=0.5e-9, **NF270)
    tab = ablation_sweep(ions, c, 15 / 3.6e6, mem, "charge_density_mol_m3", [-100.0, 0.0, 50.0],
                         [("Li+", "Mg+2")], std_radius_m=0.05e-9, psd_samples=16)
    sel = tab[tab["quantity"] == "selectivity"]
    assert len(sel) == 3 and (sel["q05"] <= sel["q95"]).all()
    one = solve_batch(ions, c, flux_m_s=15 / 3.6e6, pore_radius_m=0.5e-9, **{**NF270, "charge_density_mol_m3": 0.0})
    rej = tab[(tab["quantity"] == "rejection") & (tab["value"] == 0.0)]["value_base"].to_numpy()
    np.testing.assert_allclose(rej, one.rejection_observed[0], atol=1e-10)


def test_ph_optimum_is_the_maximum_of_a_fine_scan():
    """Mg2+/Na+ has an interior optimum near the isoelectric point (seed 003 Fig. 4A)."""
    ions, c = ["Na+", "Mg+2", "Cl-", "SO4-2"], [20.0, 5.0, 10.0, 10.0]
    groups = IonizableGroups(65.0, 4.0, 35.0, 5.0)
    kw = {"pore_radius_m": 0.5e-9, "thickness_m": 1.16e-6, "pore_dielectric": 43.86}
    opt = optimize_ph(ions, c, 15 / 3.6e6, groups, ("Mg+2", "Na+"), ph_range=(2.0, 10.0), n_grid=17, **kw)
    fine = np.linspace(3.0, 6.0, 121)
    s = selectivity_vs_ph(ions, c, 15 / 3.6e6, groups, fine, ("Mg+2", "Na+"), **kw)
    k = int(np.nanargmax(s))
    assert 0 < k < fine.size - 1                         # interior maximum
    assert opt.selectivity >= s[k] * (1 - 1e-6)
    assert abs(opt.pH - fine[k]) <= fine[1] - fine[0]
    assert opt.selectivity_ratio > 1


# ---------------------------------------------------------------------- nanosep uq
CASE = """
name: tiny uq
membrane: {pore_radius_nm: 0.5, thickness_um: 1.16, pore_dielectric: 43.86, charge_density_mol_m3: -63}
feed: {temperature_K: 298.15, concentrations_mol_m3: {Li+: 49.0, Mg+2: 84.3, Cl-: 217.6}}
operation: {flux_L_m2_h: [10, 30]}
uq:
  pairs: [[Li+, Mg+2]]
  psd: {std_radius_nm: 0.1, samples: 8, engine: direct}
  covariance: {parameters: [charge_density_mol_m3], cov: [[25.0]], samples: 8}
  ablation: {flux_L_m2_h: 10, thickness_um: [0.8, 1.6]}
  ph: {flux_L_m2_h: 10, groups: {acid_density_mol_m3: 65, pKa: 4.0, base_density_mol_m3: 35, pKb: 5.0}, n_grid: 5}
"""


def test_uq_cli_writes_results_and_resumes(tmp_path, monkeypatch):
    from nanosep.transport.uncertainty import uq_study
    case = tmp_path / "case.yaml"
    case.write_text(CASE)
    out = tmp_path / "out"
    assert uq_study.run_uq_cli(case, out, None) == 0
    for name in ("psd_samples.parquet", "psd_summary.csv", "psd_violins.png", "covariance_violins.png",
                 "ablation_thickness_um.csv", "ablation_thickness_um.png", "ph_Lip_Mgp2.png", "summary.json"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["studies"]["psd"]["samples"] == 8
    first = pd.read_parquet(out / "psd_samples.parquet")
    # resume: the checkpointed chunks are reused, the engine is not called for them again
    calls = []
    real = uq_study.propagate
    monkeypatch.setattr(uq_study, "propagate", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert uq_study.run_uq_cli(case, out, None) == 0
    assert calls == []
    pd.testing.assert_frame_equal(first, pd.read_parquet(out / "psd_samples.parquet"))


def test_uq_case_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(CASE.replace("std_radius_nm: 0.1", "std_radius_nm: -0.1"))
    with pytest.raises(InvalidInputError, match="uq.psd.std_radius_nm"):
        load_uq_case(bad)
    bad.write_text(CASE.replace("pairs: [[Li+, Mg+2]]", "pairs: [[Li+, Na+]]"))
    with pytest.raises(InvalidInputError, match="Na"):
        load_uq_case(bad)
    bad.write_text(CASE.replace("  ph:", "  phh:"))
    with pytest.raises(InvalidInputError, match="phh"):
        load_uq_case(bad)


def test_shipped_uq_case_is_valid():
    from pathlib import Path
    case = load_uq_case(Path(__file__).resolve().parents[1] / "cases" / "uq" / "nf270_li_mg_brine.yaml")
    assert case.uq.psd.samples == 4096 and len(case.operation.flux_L_m2_h) == 10
