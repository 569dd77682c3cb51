"""Tests for transport/charge.py (membrane charge from pH, ionizable-group model)."""
from __future__ import annotations

import numpy as np
import pytest
from nanosep.transport import TransportOptions, solve_batch
from nanosep.transport.charge import IonizableGroups, charge_density, isoelectric_point

from nanosep.errors import InvalidInputError

AMPHOTERIC = IonizableGroups(acid_density_mol_m3=120.0, pKa=4.5, base_density_mol_m3=30.0, pKb=8.5)


def test_half_dissociated_at_pKa():
    g = IonizableGroups(acid_density_mol_m3=80.0, pKa=5.2)
    assert charge_density(g, 5.2) == pytest.approx(-40.0, rel=1e-15)
    gb = IonizableGroups(0.0, 4.0, base_density_mol_m3=50.0, pKb=9.0)
    assert charge_density(gb, 9.0) == pytest.approx(25.0, rel=1e-15)


def test_limits_and_scalar_return():
    assert isinstance(charge_density(AMPHOTERIC, 7.0), float)
    assert charge_density(AMPHOTERIC, -10.0) == pytest.approx(30.0, rel=1e-12)
    assert charge_density(AMPHOTERIC, 30.0) == pytest.approx(-120.0, rel=1e-12)
    assert np.isfinite(charge_density(AMPHOTERIC, [-400.0, 400.0])).all()


def test_matches_written_formula_and_is_monotone():
    pH = np.linspace(0.0, 14.0, 281)
    X = charge_density(AMPHOTERIC, pH)
    ref = -120.0 / (1 + 10 ** (4.5 - pH)) + 30.0 / (1 + 10 ** (pH - 8.5))
    np.testing.assert_allclose(X, ref, rtol=1e-13, atol=1e-12)
    assert np.all(np.diff(X) < 0)


def test_isoelectric_point():
    iep = isoelectric_point(AMPHOTERIC)
    assert abs(charge_density(AMPHOTERIC, iep)) < 1e-10
    # closed form: with h = 10^-pH, Ka = 10^-pKa, Kb = 10^-pKb, X = 0 reads
    # N_a Ka / (Ka + h) = N_b h / (h + Kb), i.e. N_b h^2 + (N_b - N_a) Ka h - N_a Ka Kb = 0
    Na, Nb, Ka, Kb = 120.0, 30.0, 10**-4.5, 10**-8.5
    h = np.roots([Nb, (Nb - Na) * Ka, -Na * Ka * Kb])
    h = h[h > 0][0]
    assert iep == pytest.approx(-np.log10(h), abs=1e-9)
    sym = IonizableGroups(50.0, 4.0, 50.0, 10.0)
    assert isoelectric_point(sym) == pytest.approx(7.0, abs=1e-10)


def test_isoelectric_point_needs_both_groups():
    with pytest.raises(InvalidInputError, match="base_density_mol_m3=0.0"):
        isoelectric_point(IonizableGroups(10.0, 4.0))


@pytest.mark.parametrize("kw, name", [
    ({"acid_density_mol_m3": -1.0, "pKa": 4.0}, "acid_density_mol_m3"),
    ({"acid_density_mol_m3": 1.0, "pKa": float("nan")}, "pKa"),
    ({"acid_density_mol_m3": 1.0, "pKa": 4.0, "base_density_mol_m3": float("inf")}, "base_density_mol_m3"),
    ({"acid_density_mol_m3": 1.0, "pKa": 4.0, "pKb": float("-inf")}, "pKb"),
])
def test_bad_groups_named(kw, name):
    with pytest.raises(InvalidInputError, match=name):
        IonizableGroups(**kw)


def test_bad_pH_named():
    with pytest.raises(InvalidInputError, match="pH"):
        charge_density(AMPHOTERIC, [7.0, np.nan])


def test_engine_with_pH_charge_matches_fixed_charge():
    """Solving at X(pH) for several pH in one batch equals solving each case at its fixed X."""
    iep = isoelectric_point(AMPHOTERIC)
    pH = np.array([3.0, iep, 5.0, 7.0, 9.0])
    X = charge_density(AMPHOTERIC, pH)
    fixed = [float(-120.0 / (1 + 10 ** (4.5 - p)) + 30.0 / (1 + 10 ** (p - 8.5))) for p in pH]
    kw = {"flux_m_s": 5e-6, "pore_radius_m": 0.55e-9, "thickness_m": 1.5e-6, "pore_dielectric": 40.0,
          "options": TransportOptions(), "strict": True}
    c = np.tile([20.0, 20.0], (pH.size, 1))
    batch = solve_batch(["Na+", "Cl-"], c, charge_density_mol_m3=X, **kw)
    for b, xb in enumerate(fixed):
        one = solve_batch(["Na+", "Cl-"], c[b], charge_density_mol_m3=xb, **kw)
        np.testing.assert_allclose(batch.rejection_observed[b], one.rejection_observed[0], rtol=0, atol=1e-9)
    # the uncharged membrane (pH = IEP) rejects NaCl least, and more charge rejects more
    R = batch.rejection_observed[:, 0]
    assert abs(X[1]) < 1e-10 and np.argmin(R) == 1
    assert np.all(np.diff(R[1:]) > 0)
