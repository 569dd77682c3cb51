"""Coverage of the reported confidence intervals (issue 5, sec. 4): exact on linear models, >= 90 % on synthetic data.

Fast: a linear least-squares model (where Fisher, profile-likelihood and likelihood-ratio intervals are
exact) checked against closed forms and by Monte Carlo coverage; one small engine problem for the
profile-statistic identities.  Slow: the engine coverage study of benchmarks/characterization.py
(100 noisy replicates, the truth inside the reported 95 % interval in >= 90 of them, per parameter).
"""
from __future__ import annotations

import numpy as np
import pytest
from nanosep.transport.characterization.fit import FitResult, fit_parameters
from nanosep.transport.characterization.intervals import (
    fisher_summary,
    joint_statistic,
    joint_threshold,
    profile_intervals,
    profile_statistic,
    reported_intervals,
)
from nanosep.transport.characterization.parameters import Slot

from nanosep.errors import InvalidInputError


class _LinearPmap:
    def __init__(self, p):
        self.slots = [Slot(f"b{k}", None, "linear", -1e3, 1e3) for k in range(p)]
        self.names = [s.name for s in self.slots]
        self.lower = np.full(p, -1e3)
        self.upper = np.full(p, 1e3)

    def __len__(self):
        return len(self.slots)

    def values(self, u):
        return {n: float(v) for n, v in zip(self.names, u)}


class LinearModel:
    """Residuals ``X u - y`` with the interface of RejectionModel that the intervals use."""

    def __init__(self, X):
        self.X = X
        self.pmap = _LinearPmap(X.shape[1])

    def residuals(self, obs, u):
        return self.X @ np.asarray(u, float) - obs

    def jacobian(self, obs, u):
        return self.X.copy()


def linear_fit(model, y) -> FitResult:
    u = np.linalg.lstsq(model.X, y, rcond=None)[0]
    r = model.residuals(y, u)
    return FitResult(model.pmap.names, u, model.pmap.values(u), r, model.X, float(r @ r), len(y), 0.0)


def _design(n=25, seed=0):
    rng = np.random.default_rng(seed)
    return np.column_stack([np.ones(n), rng.uniform(0, 1, n), rng.uniform(0, 1, n) ** 2])


def test_profile_statistic_is_the_exact_linear_likelihood_ratio():
    """Linear model: Delta(b_k) = (b_k - b_hat_k)^2 / (s^2 [(X^T X)^-1]_kk) (closed form), the joint statistic
    is (u - u_hat)^T X^T X (u - u_hat) / s^2, and both match the Fisher interval ends at q^2."""
    X = _design()
    model = LinearModel(X)
    rng = np.random.default_rng(1)
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=X.shape[0])
    fit = linear_fit(model, y)
    fs = fisher_summary(fit, model)
    C = np.linalg.inv(X.T @ X)
    for k, name in enumerate(model.pmap.names):
        value = fit.u[k] + 0.37
        exact = 0.37**2 / (fs.s2 * C[k, k])
        assert profile_statistic(fit, model, y, fs.s2, name, value) == pytest.approx(exact, rel=1e-7)
        assert profile_statistic(fit, model, y, fs.s2, name, fs.upper[name]) == pytest.approx(fs.quantile**2,
                                                                                               rel=1e-7)
    d = np.array([0.1, -0.2, 0.3])
    assert joint_statistic(fit, model, y, fs.s2, fit.u + d) == pytest.approx(d @ X.T @ X @ d / fs.s2, rel=1e-9)


def test_linear_monte_carlo_coverage_is_nominal():
    """2000 replicates of a 3-parameter linear model with 25 points: every interval kind covers 0.95 within
    the binomial 99.9 % band (+-0.016); known sigma with normal quantiles, estimated with t / F."""
    X = _design()
    model = LinearModel(X)
    beta = np.array([1.0, -2.0, 0.5])
    rng = np.random.default_rng(2)
    R = 2000
    hits = {"fisher_est": 0, "fisher_known": 0, "joint_est": 0, "joint_known": 0}
    for _ in range(R):
        y = X @ beta + 0.1 * rng.normal(size=X.shape[0])
        fit = linear_fit(model, y)
        # weights 1/sigma make the known-sigma problem: residuals scaled by 1/0.1
        fs = fisher_summary(fit, model, sigma="estimated")
        hits["fisher_est"] += fs.lower["b1"] <= beta[1] <= fs.upper["b1"]
        hits["joint_est"] += joint_statistic(fit, model, y, fs.s2, beta) <= joint_threshold(3, fit.dof)
        scaled = LinearModel(X / 0.1)
        fk = linear_fit(scaled, y / 0.1)
        fsk = fisher_summary(fk, scaled, sigma="known")
        hits["fisher_known"] += fsk.lower["b1"] <= beta[1] <= fsk.upper["b1"]
        hits["joint_known"] += (joint_statistic(fk, scaled, y / 0.1, 1.0, beta)
                                <= joint_threshold(3, fk.dof, sigma="known"))
    band = 3.29 * np.sqrt(0.95 * 0.05 / R)
    for kind, h in hits.items():
        assert abs(h / R - 0.95) < band, (kind, h / R)


def test_linear_profile_intervals_equal_fisher_and_reported_prefers_profile():
    X = _design()
    model = LinearModel(X)
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * np.random.default_rng(3).normal(size=X.shape[0])
    fit = linear_fit(model, y)
    fs = fisher_summary(fit, model)
    pr = profile_intervals(fit, model, y, fs, refine=2)
    for name in fs.names:
        width = fs.upper[name] - fs.lower[name]
        assert abs(pr.lower[name] - fs.lower[name]) < 1e-6 * width
        assert abs(pr.upper[name] - fs.upper[name]) < 1e-6 * width
    rep = reported_intervals(fs, pr)
    assert {v["method"] for v in rep.values()} == {"profile"}
    assert {v["method"] for v in reported_intervals(fs).values()} == {"fisher"}


def test_profile_statistic_rejects_unknown_slot_and_out_of_bounds_value():
    X = _design()
    model = LinearModel(X)
    y = X @ np.ones(3)
    fit = linear_fit(model, y + 0.01)
    with pytest.raises(InvalidInputError, match="nope"):
        profile_statistic(fit, model, y, 1.0, "nope", 1.0)
    with pytest.raises(InvalidInputError, match="5000"):
        profile_statistic(fit, model, y, 1.0, "b0", 5000.0)


def test_engine_profile_statistic_bounded_by_joint_statistic():
    """Engine problem (radius and charge free): the profile statistic at the true value of one slot is the
    minimum over the others, so 0 <= Delta_k(truth_k) <= joint statistic at the full truth; and at the
    profile interval's ends Delta = q^2 (to the regula-falsi accuracy)."""
    from test_characterization import TRUTH, make_problem

    free = ("pore_radius_nm", "charge_density_mol_m3")
    model, data, u_true = make_problem(TRUTH, free=free, noise_sd=0.003, seed=5)
    fit = fit_parameters(model, data, starts=0)
    fs = fisher_summary(fit, model)
    joint = joint_statistic(fit, model, data, fs.s2, u_true)
    assert joint > 0
    for name in fit.values:
        d = profile_statistic(fit, model, data, fs.s2, name, TRUTH[name])
        assert -1e-6 <= d <= joint * (1 + 1e-6) + 1e-9, (name, d, joint)
    pr = profile_intervals(fit, model, data, fs, refine=2)
    for name in fit.values:
        for end in (pr.lower[name], pr.upper[name]):
            assert profile_statistic(fit, model, data, fs.s2, name, end) == pytest.approx(fs.quantile**2, rel=0.03)


# ---------------------------------------------------------------------- slow: the coverage study
@pytest.mark.slow
def test_reported_intervals_cover_truth_in_90_of_100_replicates():
    """benchmarks/characterization.py coverage study (48 rows, noise sd 0.01, 4 parameters): the reported
    (profile-likelihood) 95 % interval contains the truth in >= 90 of 100 replicates, for every parameter.
    About an hour on a quiet 2-core machine."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from characterization import TRUTH as T
    from characterization import coverage_problem, coverage_replicate, coverage_summary

    model, obs, u_true = coverage_problem()
    rows = [coverage_replicate(model, obs, u_true, rep, full_profile=False) for rep in range(100)]
    s = coverage_summary(rows)
    for name in T:
        assert s[f"{name}_profile"] >= 0.90, (name, s)
    assert s["joint_region"] >= 0.90, s


# ---------------------------------------------------------------------- parameters.json covariance, Peclet screen
def test_parameters_json_covariance_is_consistent_and_readable_by_uq():
    """The covariance block: user-unit cov = D C_u D (its diagonal gives the delta-method se of the table,
    computed separately), mean_u maps back to the estimates, and a ``nanosep uq`` covariance study accepts
    ``parameters``/``mean``/``cov`` as they are."""
    import json

    from nanosep.transport.characterization.report import parameters_json
    from nanosep.transport.characterization.spec import fit_case_from_dict
    from nanosep.transport.characterization.workflow import characterize
    from nanosep.transport.uncertainty.uq_case import CovarianceStudy
    from test_characterization import BOUNDS, TRUTH, make_problem

    free = ("pore_radius_nm", "charge_density_mol_m3")
    _, data, _ = make_problem(TRUTH, free=free, noise_sd=0.003, seed=2)
    case = fit_case_from_dict({"model": {"activity": "davies"}, "fit": {"starts": 0, "profile": False},
                               "parameters": {n: {"initial": TRUTH[n], "bounds": BOUNDS[n], "fixed": n not in free}
                                              for n in TRUTH}})
    ch = characterize(data.table, case, curves=False)
    doc = json.loads(json.dumps(parameters_json(ch)))
    cov = doc["covariance"]
    assert cov["parameters"] == list(free)
    C = np.array(cov["cov"])
    for k, name in enumerate(free):
        assert np.sqrt(C[k, k]) == pytest.approx(doc["parameters"][name]["se"], rel=1e-9)
        assert cov["mean"][k] == pytest.approx(doc["parameters"][name]["estimate"], rel=1e-12)
        assert doc["parameters"][name]["interval_method"] == "fisher"
        assert doc["parameters"][name]["lower"] == doc["parameters"][name]["fisher_lower"]
    tr = cov["transformed"]
    assert tr["transform"] == ["log", "linear"]
    assert np.exp(tr["mean_u"][0]) == pytest.approx(cov["mean"][0], rel=1e-12)
    assert C[0, 1] == pytest.approx(tr["cov_u"][0][1] * cov["mean"][0], rel=1e-9)
    study = CovarianceStudy(parameters=cov["parameters"], mean=cov["mean"], cov=cov["cov"])
    assert study.parameters == list(free)


def test_peclet_estimate_matches_the_engine_and_screen_skips_high_peclet_points():
    """RejectionModel.peclet_max (closed form) agrees with the engine's own peclet_max on its property
    numbers; the global stage ranks points above the cap last without solving them."""
    from nanosep.transport.characterization.fit import screening_cases
    from nanosep.transport.solver import build_parameters, peclet_max
    from test_characterization import TRUTH, make_problem

    model, data, _ = make_problem(TRUTH)
    cases = data.cases
    db = model.ion_db
    names = [db.get(i).name for i in cases.ions]
    rng = np.random.default_rng(0)
    for _ in range(3):
        u = rng.uniform(model.pmap.lower, model.pmap.upper)
        inp = model.pmap.engine_inputs(u, cases)
        c = np.where(cases.c_feed > 0, cases.c_feed, 1e-12)
        prm = build_parameters(names, np.array([db.get(i).charge for i in names], float),
                               np.array([db.get(i).stokes_radius_m for i in names]),
                               np.array([db.get(i).diffusivity_m2_s for i in names]), c, cases.flux_m_s,
                               inp["pore_radius_m"], inp["thickness_m"], inp["pore_dielectric"],
                               inp["charge_density_mol_m3"], cases.temperature_K, model.options)
        present = cases.c_feed > 0
        pe_engine = np.max(np.where(present & ~prm.excluded, peclet_max_per_ion(prm), 0.0), axis=1)
        np.testing.assert_allclose(model.peclet_max(cases, u), pe_engine, rtol=1e-10)
        assert (pe_engine <= peclet_max(prm) * (1 + 1e-12)).all()
    # with a cap below every point's Peclet number no Sobol point is solved: only the initial values start
    fit = fit_parameters(model, data, starts=4, local_starts=2, screen_peclet_max=1e-9, max_iterations=1)
    assert len(fit.starts) == 1
    assert screening_cases(data).size > 0


def peclet_max_per_ion(prm):
    """Per-ion Peclet number from the engine's property numbers (B, n)."""
    return prm.kc * (prm.flux * prm.thickness)[:, None] / (prm.kd * prm.diff)
