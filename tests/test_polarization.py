"""Sherwood correlations of the feed channel and their use by the film models."""
from __future__ import annotations

import numpy as np
import pytest

from nanosep import water
from nanosep.errors import InvalidInputError
from nanosep.transport import Membrane, TransportOptions, solve
from nanosep.transport.polarization import Channel, mass_transfer_coefficient

D = 1.5e-9


def test_schock_miquel_by_hand():
    """Sh = 0.065 Re^0.875 Sc^0.25 at 25 C, u = 0.1 m/s, d_h = 0.95 mm: k ~ 3.0e-5 m/s."""
    ch = Channel("schock_miquel", velocity_m_s=0.1, height_m=7.9e-4, hydraulic_diameter_m=9.5e-4)
    eta, rho = water.viscosity(298.15), water.density(298.15)
    re, sc = rho * 0.1 * 9.5e-4 / eta, eta / (rho * D)
    k_hand = 0.065 * re**0.875 * sc**0.25 * D / 9.5e-4
    assert mass_transfer_coefficient(ch, D) == pytest.approx(k_hand, rel=1e-12)
    assert 2.5e-5 < k_hand < 3.5e-5


@pytest.mark.parametrize("corr,exp_u,exp_d", [("leveque", 1 / 3, 2 / 3), ("schock_miquel", 0.875, 0.75),
                                              ("da_costa", 0.5, 2 / 3)])
def test_scaling_with_velocity_and_diffusivity(corr, exp_u, exp_d):
    ch1 = Channel(corr, velocity_m_s=0.1)
    ch2 = Channel(corr, velocity_m_s=0.2)
    k11, k21 = mass_transfer_coefficient(ch1, D), mass_transfer_coefficient(ch2, D)
    k12 = mass_transfer_coefficient(ch1, 2 * D)
    assert np.log(k21 / k11) / np.log(2) == pytest.approx(exp_u, rel=1e-9)
    assert np.log(k12 / k11) / np.log(2) == pytest.approx(exp_d, rel=1e-9)


def test_channel_drives_the_film_like_the_equivalent_k():
    ch = Channel("schock_miquel", velocity_m_s=0.1, hydraulic_diameter_m=9.5e-4)
    opts_ch = TransportOptions(polarization="film", channel=ch)
    d_ref = TransportOptions().reference_diffusivity_m2_s
    k = float(mass_transfer_coefficient(ch, water.diffusivity_at(d_ref, 298.15), 298.15))
    opts_k = TransportOptions(polarization="film", mass_transfer_m_s=k)
    m = Membrane(0.5e-9, 1e-6, 40.0, -50.0)
    feed = {"Na+": 20.0, "Cl-": 10.0, "SO4-2": 5.0}
    a = solve(m, feed, flux_m_s=[1e-5, 3e-5], options=opts_ch)
    b = solve(m, feed, flux_m_s=[1e-5, 3e-5], options=opts_k)
    np.testing.assert_allclose(a.rejection, b.rejection, atol=1e-10)
    # a faster cross-flow thins the film: less sulfate accumulates at the wall
    fast = solve(m, feed, flux_m_s=[3e-5], options=TransportOptions(
        polarization="film", channel=Channel("schock_miquel", velocity_m_s=0.3, hydraulic_diameter_m=9.5e-4)))
    assert fast.c_wall[0, 2] < a.c_wall[1, 2]


def test_bad_channel_and_ambiguous_options():
    with pytest.raises(InvalidInputError, match="velocity_m_s must be positive.*-0.1"):
        Channel(velocity_m_s=-0.1)
    with pytest.raises(InvalidInputError, match="correlation='magic'"):
        Channel("magic")
    with pytest.raises(InvalidInputError, match="exactly one of"):
        TransportOptions(polarization="film", mass_transfer_m_s=2e-5, channel=Channel())
