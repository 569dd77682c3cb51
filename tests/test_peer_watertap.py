"""Harness sanity test for the WaterTAP NanofiltrationDSPMDE0D peer (benchmarks/peers/watertap_nf.py).

Runs the 5-ion (Na+, Cl-, Ca+2, Mg+2, SO4-2) composition of WaterTAP's own unit test
(test_nanofiltration_DSPMDE_0D.py, Cl- adjusted for electroneutrality) with r_p = 0.5 nm,
Delta x_e = 1.33 um, eps_p = 41.3, X = -27 mol/m3, at a fixed inlet water flux, no
concentration polarisation, on cyipopt. Cross-model agreement is checked elsewhere.
"""
from __future__ import annotations

import math

import pytest

pytestmark = [pytest.mark.peer, pytest.mark.slow]

wnf = pytest.importorskip("benchmarks.peers.watertap_nf")

if not wnf.watertap_available():  # pragma: no cover - depends on the optional peer stack
    pytest.skip("watertap / cyipopt / PyNumero ASL not available", allow_module_level=True)

FLUX = 30.0 * wnf.LMH_TO_M_S  # 30 L m-2 h-1


@pytest.fixture(scope="module")
def solved():
    ions, feed = wnf.watertap_test_feed()
    model = wnf.build_watertap_nf(
        ions,
        feed,
        temperature_K=298.15,
        pore_radius_m=0.5e-9,
        thickness_m=1.33e-6,
        pore_dielectric=41.3,
        charge_density_mol_m3=-27.0,
        activity="davies",
        mass_transfer="none",
    )
    cold = wnf.solve_watertap_nf(model, FLUX)
    warm = wnf.solve_watertap_nf(model, 1.01 * FLUX)
    return ions, feed, model, cold, warm


def test_feed_is_electroneutral(solved):
    ions, feed, *_ = solved
    assert set(feed) == {"Na+", "Cl-", "Ca+2", "Mg+2", "SO4-2"}
    assert abs(sum(ions[k]["charge"] * c for k, c in feed.items())) < 1e-9


@pytest.mark.parametrize("which", ["cold", "warm"])
def test_solve_optimal_and_sane(solved, which):
    _, feed, _, cold, warm = solved
    r = cold if which == "cold" else warm
    assert r["ok"], (r["termination"], r["message"], r["attempts"])
    assert r["termination"] == "optimal"
    # the flux specification is honoured at the inlet and the module is ~a single point
    target = FLUX if which == "cold" else 1.01 * FLUX
    assert r["flux_inlet_m_s"] == pytest.approx(target, rel=1e-8)
    assert r["flux_outlet_m_s"] == pytest.approx(target, rel=1e-3)
    assert r["recovery_vol"] < 1e-4
    for key in ("rejection_intrinsic_inlet", "rejection_intrinsic_watertap",
                "rejection_observed_inlet", "rejection_observed_watertap"):
        for ion, rej in r[key].items():
            assert math.isfinite(rej) and -1.0 <= rej <= 1.0, (key, ion, rej)
    # permeate electroneutrality (point permeate at x=0 and mixed permeate)
    assert abs(r["charge_balance_permeate_inlet"]) < 1e-8
    assert abs(r["charge_balance_permeate_mixed"]) < 1e-8
    # no film: wall concentration == bulk feed
    for ion, c in feed.items():
        assert r["conc_wall_inlet"][ion] == pytest.approx(c, rel=1e-9)
    flags = wnf.physicality_flags(r)
    assert not flags["unphysical"], flags


def test_warm_resolve_is_warm(solved):
    *_, cold, warm = solved
    assert cold["cold"] and not warm["cold"]
    assert warm["iterations"] <= 10
