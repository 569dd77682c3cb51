"""Physics of the DSPM-DE engine: limits, conservation, convergence, published trends, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from nanosep.errors import ConvergenceError, ElectroneutralityError, InvalidInputError, UnknownIonError
from nanosep.ions import IonDatabase
from nanosep.transport import Membrane, TransportOptions, solve, solve_batch
from nanosep.transport.hindrance import hindrance
from nanosep import water

DB = IonDatabase.default()
NF270 = Membrane(pore_radius_m=0.5e-9, thickness_m=1.16e-6, pore_dielectric=43.86, charge_density_mol_m3=-63.0)
FLUXES = np.array([2e-6, 5e-6, 1e-5, 2e-5, 4e-5])


def _shp(solute: str, rp: float, L: float, jv: np.ndarray, T: float = 298.15) -> np.ndarray:
    """Seed 003 eq. D.8 written out independently of the engine."""
    ion = DB.get(solute)
    lam = ion.stokes_radius_m / rp
    kd, kc = hindrance(lam)
    phi = (1 - lam) ** 2
    pe = kc * jv * L / (kd * water.diffusivity_at(ion.diffusivity_m2_s, T))
    return 1 - kc * phi / (1 - (1 - kc * phi) * np.exp(-pe))


@pytest.mark.parametrize("solute,rp", [("glucose", 0.6e-9), ("sucrose", 0.8e-9), ("glycerol", 0.45e-9)])
def test_neutral_solute_reduces_to_closed_form_shp(solute, rp):
    m = Membrane(rp, 1e-6, 78.3, 0.0)
    res = solve(m, {solute: 10.0}, flux_m_s=FLUXES)
    np.testing.assert_allclose(res.rejection[:, 0], _shp(solute, rp, 1e-6, FLUXES), atol=1e-10)


def test_uncharged_membrane_equal_dielectric_matches_shp_for_a_neutral_solute_in_salt():
    """A neutral solute is blind to the electrolyte when X = 0 and eps_p = eps_b."""
    eps_b = float(water.relative_permittivity(298.15))
    m = Membrane(0.6e-9, 1e-6, eps_b, 0.0)
    res = solve(m, {"glucose": 5.0, "Na+": 50.0, "Cl-": 50.0}, flux_m_s=FLUXES)
    np.testing.assert_allclose(res.rejection[:, 0], _shp("glucose", 0.6e-9, 1e-6, FLUXES), atol=1e-10)


def test_large_uncharged_pores_do_not_reject():
    eps_b = float(water.relative_permittivity(298.15))
    m = Membrane(2e-6, 1e-6, eps_b, 0.0)
    res = solve(m, {"Na+": 10.0, "Mg+2": 5.0, "Cl-": 20.0}, flux_m_s=FLUXES)
    assert np.abs(res.rejection).max() < 1e-4


@pytest.mark.parametrize("polarization", ["none", "film", "linear"])
def test_electroneutrality_and_flux_conservation(polarization):
    opts = TransportOptions(activity="davies", polarization=polarization, mass_transfer_m_s=3e-5)
    feed = {"Na+": 40.0, "K+": 2.0, "Ca+2": 5.0, "Mg+2": 4.0, "Cl-": 50.0, "SO4-2": 5.0}
    # the linearized film is singular once J_v reaches the smallest k_i (here k_Mg ~ 1.7e-5 m/s)
    fluxes = FLUXES[:3] if polarization == "linear" else FLUXES[:4]
    res = solve(NF270, feed, flux_m_s=fluxes, options=opts)
    z = res.charges
    # permeate and every pore node are electroneutral
    assert np.abs(res.c_perm @ z).max() < 1e-10 * (res.c_perm @ np.abs(z)).max()
    en = np.einsum("i,bik->bk", z, res.c_layer) + NF270.charge_density_mol_m3
    assert np.abs(en).max() < 1e-9 * np.abs(NF270.charge_density_mol_m3)
    # the extended Nernst-Planck flux at the collocation nodes equals J_v c_p (solute mass balance)
    from nanosep.transport.chebyshev import diff_matrix
    lam = np.array([DB.get(i).stokes_radius_m for i in res.ions]) / NF270.pore_radius_m
    kd, kc = hindrance(lam)
    D = water.diffusivity_at(np.array([DB.get(i).diffusivity_m2_s for i in res.ions]), 298.15)
    Dm = diff_matrix(TransportOptions().nodes) / NF270.thickness_m
    c, phi = res.c_layer, res.phi_layer
    dc = np.einsum("km,bim->bik", Dm, c)
    dphi = phi @ Dm.T
    J = (-kd[None, :, None] * D[None, :, None] * (dc + z[None, :, None] * c * dphi[:, None, :])
         + kc[None, :, None] * c * res.flux_m_s[:, None, None])
    target = res.ion_flux[:, :, None]
    assert np.abs(J[:, :, 1:] - target).max() < 1e-9 * np.abs(res.c_feed * res.flux_m_s[:, None]).max()
    if polarization == "film":
        # film: what enters at the bulk equals what leaves through the membrane
        Df = diff_matrix(16) / (TransportOptions.__dataclass_fields__["reference_diffusivity_m2_s"].default / 3e-5)
        cf, pf = res.c_film, res.phi_film
        Jf = (-D[None, :, None] * (np.einsum("km,bim->bik", Df, cf) + z[None, :, None] * cf * (pf @ Df.T)[:, None, :])
              + cf * res.flux_m_s[:, None, None])
        assert np.abs(Jf[:, :, 1:] - target).max() < 1e-9 * np.abs(res.c_feed * res.flux_m_s[:, None]).max()


@pytest.mark.parametrize("polarization", ["none", "film"])
def test_spectral_convergence(polarization):
    feed = {"Na+": 40.0, "Ca+2": 5.0, "Mg+2": 4.0, "Cl-": 48.0, "SO4-2": 5.0}
    out = {}
    for n in (24, 48):
        opts = TransportOptions(activity="davies", polarization=polarization, mass_transfer_m_s=3e-5,
                                nodes=n, film_nodes=n)
        out[n] = solve(NF270, feed, flux_m_s=FLUXES[:4], options=opts).rejection
    assert np.abs(out[24] - out[48]).max() < 1e-9


def test_film_model_stays_regular_above_the_mass_transfer_coefficient():
    """The linearized film is singular as J_v -> k; the full film is not."""
    k = 1e-5
    feed = {"Na+": 20.0, "Cl-": 10.0, "SO4-2": 5.0}
    film = solve(NF270, feed, flux_m_s=[0.5 * k, 1.5 * k, 2.5 * k, 4 * k],
                 options=TransportOptions(polarization="film", mass_transfer_m_s=k))
    assert film.converged.all()
    r = film.rejection_intrinsic
    assert ((r > -1) & (r < 1)).all()
    # wall concentration of the well-rejected sulfate grows with flux (polarization)
    assert np.all(np.diff(film.c_wall[:, 2]) > 0)
    # a very thin film is the same as no film
    thin = solve(NF270, feed, flux_m_s=[k], options=TransportOptions(polarization="film", film_thickness_m=1e-12))
    none = solve(NF270, feed, flux_m_s=[k])
    np.testing.assert_allclose(thin.rejection, none.rejection, atol=1e-8)


def test_negative_sodium_rejection_in_mixed_chlorides():
    """Seed 003: Na+ is rejected negatively next to Mg+2/Ca+2 (NF270 pore size and dielectric, weak charge).

    The fast Na+ is dragged through with the chloride that the divalent cations leave
    behind; the effect fades with flux as convection takes over.
    """
    weak = Membrane(NF270.pore_radius_m, NF270.thickness_m, NF270.pore_dielectric, -5.0)
    feed = {"Na+": 20.0, "Mg+2": 20.0, "Ca+2": 10.0, "Cl-": 80.0}
    res = solve(weak, feed, flux_m_s=[5e-6, 1e-5, 4e-5], options=TransportOptions(activity="davies"))
    rej = res.rejection
    assert (rej[:2, 0] < -0.2).all()        # Na+ negatively rejected
    assert (rej[:, 1] > 0.8).all()          # Mg+2 well rejected
    assert rej[2, 0] > rej[1, 0]            # the effect fades as convection takes over


def test_monovalent_cation_rejection_follows_stokes_radius():
    """Steric + dielectric exclusion order chloride salts by cation Stokes radius (uncharged pores)."""
    rs = {}
    neutral = Membrane(NF270.pore_radius_m, NF270.thickness_m, NF270.pore_dielectric, 0.0)
    for cation in ("K+", "Na+", "Li+"):
        res = solve(neutral, {cation: 20.0, "Cl-": 20.0}, flux_m_s=[1e-5])
        rs[cation] = res.rejection[0, 0]
    assert rs["K+"] < rs["Na+"] < rs["Li+"]


def test_image_forces_exclude_and_are_self_consistent():
    feed = {"Na+": 20.0, "Cl-": 10.0, "SO4-2": 5.0}
    base = solve(NF270, feed, flux_m_s=[1e-5])
    img = solve(NF270, feed, flux_m_s=[1e-5], options=TransportOptions(image_forces=True))
    phi_im = img.partition_feed["image"][0]
    assert ((phi_im > 0) & (phi_im < 1)).all()
    # divalent ions feel four times the (log) image penalty of monovalent ones at the same interface
    ln = np.log(phi_im)
    assert ln[2] == pytest.approx(4 * ln[0], rel=1e-10)
    assert img.rejection[0, 2] >= base.rejection[0, 2]


def test_pressure_mode_matches_flux_mode():
    feed = {"Na+": 20.0, "Cl-": 10.0, "SO4-2": 5.0}
    p = solve(NF270, feed, pressure_pa=[5e5, 1e6])
    f = solve(NF270, feed, flux_m_s=p.flux_m_s)
    np.testing.assert_allclose(p.rejection, f.rejection, atol=1e-9)
    # Hagen-Poiseuille with the van 't Hoff osmotic pressure difference across the layer
    dpi = 8.314462618 * 298.15 * (p.c_wall.sum(1) - p.c_perm.sum(1))
    jv = NF270.pore_radius_m**2 * (np.array([5e5, 1e6]) - dpi) / (8 * water.viscosity(298.15) * NF270.thickness_m)
    np.testing.assert_allclose(p.flux_m_s, jv, rtol=1e-9)


def test_sterically_excluded_ion_is_fully_rejected_without_crash():
    m = Membrane(0.3e-9, 1e-6, 40.0, -20.0)  # Mg+2 (0.348 nm) cannot enter
    res = solve(m, {"Na+": 10.0, "Mg+2": 5.0, "Cl-": 20.0}, flux_m_s=[1e-5])
    assert res.rejection[0, 1] == 1.0
    assert np.isfinite(res.rejection).all()


def test_partition_split_multiplies_to_total():
    res = solve(NF270, {"Na+": 20.0, "Cl-": 10.0, "SO4-2": 5.0}, flux_m_s=[1e-5],
                options=TransportOptions(activity="davies", image_forces=True))
    p = res.partition_feed
    prod = p["steric"] * p["born"] * p["image"] * p["donnan"] * p["activity"]
    np.testing.assert_allclose(prod, p["total"], rtol=1e-10)


# ------------------------------------------------------------------ bad input
def test_non_electroneutral_feed_is_refused_with_the_imbalance():
    with pytest.raises(ElectroneutralityError, match=r"sum\(z c\) = \+10"):
        solve(NF270, {"Na+": 20.0, "Cl-": 10.0}, flux_m_s=[1e-5])


def test_balance_with_adds_the_counter_ion():
    res = solve(NF270, {"Na+": 20.0, "SO4-2": 5.0}, flux_m_s=[1e-5], balance_with="Cl-")
    assert res.c_feed[0, list(res.ions).index("Cl-")] == pytest.approx(10.0)


@pytest.mark.parametrize("feed,match", [({"Na+": -1.0, "Cl-": -1.0}, "negative feed concentration Na\\+=-1.0"),
                                        ({"Na+": np.nan, "Cl-": 1.0}, "non-finite")])
def test_bad_concentrations(feed, match):
    with pytest.raises(InvalidInputError, match=match):
        solve(NF270, feed, flux_m_s=[1e-5])


def test_unknown_ion_names_the_value():
    with pytest.raises(UnknownIonError, match="Xx\\+"):
        solve(NF270, {"Xx+": 1.0, "Cl-": 1.0}, flux_m_s=[1e-5])


def test_duplicate_ions_by_spelling_are_refused_naming_both():
    with pytest.raises(InvalidInputError, match=r"duplicate ions in \['Ca\+\+', 'Cl-', 'Ca2\+'\] "
                       r"\(canonical \['Ca\+2', 'Cl-', 'Ca\+2'\]\)"):
        solve_batch(["Ca++", "Cl-", "Ca2+"], [1.0, 4.0, 1.0], flux_m_s=1e-5, pore_radius_m=0.5e-9,
                    thickness_m=1e-6, pore_dielectric=40.0, charge_density_mol_m3=-10.0)


@pytest.mark.parametrize("kw,match", [({"flux_m_s": [-1e-5]}, "flux_m_s must be > 0"),
                                      ({"flux_m_s": [np.inf]}, "non-finite"),
                                      ({"temperature_K": 400.0, "flux_m_s": [1e-5]}, "temperature_K=400")])
def test_bad_operation(kw, match):
    with pytest.raises(InvalidInputError, match=match):
        solve(NF270, {"Na+": 1.0, "Cl-": 1.0}, **kw)


def test_bad_membrane():
    with pytest.raises(InvalidInputError, match="pore_radius_m.*-1e-09"):
        Membrane(-1e-9, 1e-6, 40, -10)


def test_non_convergence_raises_naming_the_case():
    opts = TransportOptions(max_iter=1, tol=1e-30)
    with pytest.raises(ConvergenceError, match="case 0 did not converge.*X=-63"):
        solve(NF270, {"Na+": 20.0, "Cl-": 10.0, "SO4-2": 5.0}, flux_m_s=[1e-5], options=opts)
    # non-strict: flagged, not raised, and no silent numbers
    res = solve(NF270, {"Na+": 20.0, "Cl-": 10.0, "SO4-2": 5.0}, flux_m_s=[1e-5], options=opts, strict=False)
    assert not res.converged[0] and res.reason[0]


def test_hindrance_correlations_agree_and_match_renkin():
    """Dechadilok-Deen and Bungay-Brenner K_d, K_c agree within 10% for lambda <= 0.4 (25% up to 0.6,
    where the correlations are known to diverge) and K_d follows Renkin's centreline form
    1 - 2.104 l + 2.09 l^3 - 0.95 l^5 within 10% for lambda <= 0.4.  (H = Phi K_d by mistake would be
    off by (1 - lambda)^-2, i.e. 2.8x at 0.4.)"""
    for hi, tol in ((0.4, 0.10), (0.6, 0.25)):
        lam = np.linspace(0.05, hi, 12)
        kd1, kc1 = hindrance(lam, "dechadilok_deen")
        kd2, kc2 = hindrance(lam, "bungay_brenner")
        np.testing.assert_allclose(kd1, kd2, rtol=tol)
        np.testing.assert_allclose(kc1, kc2, rtol=tol)
    lam = np.linspace(0.05, 0.6, 12)
    l = lam[lam <= 0.4]
    np.testing.assert_allclose(hindrance(l)[0], 1 - 2.104 * l + 2.09 * l**3 - 0.95 * l**5, rtol=0.10)


@pytest.mark.parametrize("model", ["dechadilok_deen", "bungay_brenner"])
def test_hindrance_is_monotone_up_to_exclusion(model):
    lam = np.linspace(0.01, 0.989, 400)  # clamped at LAMBDA_MAX = 0.99 above
    kd, kc = hindrance(lam, model)
    assert (kd > 0).all() and np.all(np.diff(kd) < 0)
    assert kd[0] == pytest.approx(1.0, abs=0.05) and kd[-1] < 1e-3


def test_excluded_ion_accumulates_in_the_film_with_zero_flux():
    """lambda >= 1: no pore concentration, no permeate; in the film it piles up as exp(J_v delta / D)."""
    m = Membrane(0.3e-9, 1e-6, 40.0, -20.0)  # Mg+2 (0.348 nm) cannot enter
    k = 2e-5
    res = solve(m, {"Na+": 10.0, "Mg+2": 5.0, "Cl-": 20.0}, flux_m_s=[5e-6, 1e-5],
                options=TransportOptions(polarization="film", mass_transfer_m_s=k))
    mg = 1
    assert (res.c_perm[:, mg] == 0).all() and (res.rejection_observed[:, mg] == 1.0).all()
    assert np.abs(res.c_layer[:, mg, :]).max() == 0.0
    assert (res.c_wall[:, mg] > res.c_feed[:, mg]).all()
    assert np.all(np.diff(res.c_wall[:, mg]) > 0)


def test_no_permeable_counter_ion_gives_pure_water_permeate():
    """If no present cation fits into the pores, no salt can cross: every charged species is rejected."""
    m = Membrane(0.33e-9, 1e-6, 40.0, -300.0)   # Mg+2 (0.348 nm) is the only cation
    res = solve_batch(["Na+", "Mg+2", "Cl-", "glycerol"], np.array([[0.0, 5.0, 10.0, 1.0], [10.0, 5.0, 20.0, 1.0]]),
                      flux_m_s=1e-5, pore_radius_m=m.pore_radius_m, thickness_m=m.thickness_m,
                      pore_dielectric=m.pore_dielectric, charge_density_mol_m3=m.charge_density_mol_m3)
    assert res.converged.all()
    assert (res.rejection[0, 1:3] == 1.0).all() and "pure-water" in res.reason[0]
    # the neutral solute still follows the closed-form hindered-pore model
    assert res.rejection[0, 3] == pytest.approx(_shp("glycerol", 0.33e-9, 1e-6, np.array([1e-5]))[0], abs=1e-12)
    # with Na+ present the salt passes and the case is solved by the full model
    assert res.reason[1] == "" and res.rejection[1, 0] < 1.0
