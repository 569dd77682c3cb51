"""Block-bordered LU of the Newton matrix (transport/bordered.py) against the dense LU.

What can be wrong: the index sets (an unknown in no block or in two), a cross-ion entry of the interface
rows left out of the tearing (activity models couple the ions only there), a wrong sign in the Schur
complement, pivoting inside the ion blocks that fails where the dense LU does not, and the subset
factorization (``take``) the damping test uses.  Checked on the engine's own Jacobians at a perturbed
initial guess (so the activity coupling, image forces, pressure mode and both film models are all live),
then on whole solves.
"""
from __future__ import annotations

import numpy as np
import pytest
from nanosep.transport import TransportOptions, solve_batch
from nanosep.transport.bordered import BorderedLU
from nanosep.transport.newton import DenseLU
from nanosep.transport.solver import build_parameters, feed_equilibrium
from nanosep.transport.system import DSPMDESystem

from nanosep.ions import IonDatabase

IONS = ["Na+", "Cl-", "Mg+2", "SO4-2", "Ca+2"]
FEED = np.array([[50.0, 40.0, 10.0, 20.0, 5.0], [5.0, 3.0, 1.0, 3.0, 1.0], [200.0, 180.0, 30.0, 50.0, 10.0]])

VARIANTS = {
    "pitzer_film_image": TransportOptions(activity="pitzer", polarization="film", mass_transfer_m_s=2e-5,
                                          image_forces=True),
    "davies_linear": TransportOptions(activity="davies", polarization="linear", mass_transfer_m_s=2e-5),
    "ideal_none": TransportOptions(),
    "davies_film_bulk_screening": TransportOptions(activity="davies", polarization="film", mass_transfer_m_s=2e-5,
                                                   image_forces=True, image_screening="bulk"),
}


def _system(options: TransportOptions, pressure: bool = False, pore_radius=0.5e-9, nodes=12, film_nodes=8):
    db = IonDatabase.default()
    z = np.array([db.get(i).charge for i in IONS], float)
    B = FEED.shape[0]
    prm = build_parameters(IONS, z, np.array([db.get(i).stokes_radius_m for i in IONS]),
                           np.array([db.get(i).diffusivity_m2_s for i in IONS]), FEED,
                           np.array([1e-5, 3e-6, 2e-5]), np.full(B, pore_radius), np.array([1e-6, 0.3e-6, 2e-6]),
                           np.array([40.0, 60.0, 30.0]), np.array([-50.0, -200.0, 30.0]),
                           np.array([298.15, 288.15, 318.15]), options,
                           pressure=np.array([5e5, 10e5, 15e5]) if pressure else None)
    phi0, scale = feed_equilibrium(prm)          # the engine's row scales and Donnan potential
    sys_ = DSPMDESystem(prm, nodes, film_nodes, scale)
    x = sys_.initial_guess(phi0)
    # away from the guess's symmetries: every entry of the Jacobian is generic
    x = x * (1.0 + 0.05 * np.random.default_rng(1).uniform(-1, 1, x.shape))
    return sys_, x


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("pressure", [False, True])
def test_bordered_solve_equals_dense_solve(name, pressure):
    sys_, x = _system(VARIANTS[name], pressure)
    F, J = sys_.evaluate(x)
    st = sys_.bordered_structure()
    # every unknown is in exactly one block
    assert np.array_equal(np.sort(np.concatenate([st.interior.ravel(), st.border])), np.arange(sys_.lay.size))
    assert st.coupled.shape[1] == (0 if sys_.prm.activity is None else 2)
    dense, bord = DenseLU(J), BorderedLU(J, st)
    assert dense.ok.all() and bord.ok.all()
    rhs = np.column_stack([-F, np.random.default_rng(2).normal(size=F.shape)]).reshape(F.shape[0], 2, -1)
    for r in (rhs[:, 0], rhs[:, 1]):
        d1, d2 = dense.solve(r), bord.solve(r)
        assert np.max(np.abs(d1 - d2)) <= 1e-10 * np.max(np.abs(d1))
        # and it solves the system itself: normwise backward error at round-off (the Jacobians at these
        # strongly excluding image-force states are ill-conditioned, so the forward residual is not)
        back = np.abs(np.einsum("bij,bj->bi", J, d2) - r).max(axis=1) / (
            np.abs(J).sum(axis=2).max(axis=1) * np.abs(d2).max(axis=1) + np.abs(r).max(axis=1))
        assert back.max() < 1e-13
    sub = np.array([2, 0])
    d_sub, d_all = bord.take(sub).solve(-F[sub]), dense.solve(-F)[sub]
    assert np.max(np.abs(d_sub - d_all)) <= 1e-10 * np.max(np.abs(d_all))


def test_activity_coupling_is_not_lost():
    """Pitzer couples the ions in the interface rows: dropping those entries (a plain block-diagonal
    interior) must give a different step, so the test above could see a missing tearing."""
    sys_, x = _system(VARIANTS["pitzer_film_image"])
    F, J = sys_.evaluate(x)
    st = sys_.bordered_structure()
    uncoupled = type(st)(st.interior, st.border, st.coupled[:, :0])
    d_true, d_drop = DenseLU(J).solve(-F), BorderedLU(J, uncoupled).solve(-F)
    assert np.max(np.abs(d_true - d_drop)) > 1e-6 * np.max(np.abs(d_true))


def test_excluded_ion_rows_stay_regular():
    """SO4-2 (Stokes radius 0.23 nm) does not fit into 0.22 nm pores: its rows become identities."""
    sys_, x = _system(VARIANTS["davies_linear"], pore_radius=0.22e-9)
    assert sys_.prm.excluded.any()
    F, J = sys_.evaluate(x)
    bord = BorderedLU(J, sys_.bordered_structure())
    assert bord.ok.all()
    d1, d2 = DenseLU(J).solve(-F), bord.solve(-F)
    assert np.max(np.abs(d1 - d2)) <= 1e-10 * np.max(np.abs(d1))


def test_whole_solves_agree_with_the_dense_newton():
    """Same Newton iterates up to round-off: same iteration counts, rejections to 1e-12."""
    feed = np.vstack([FEED, [[20.0, 21.0, 2.0, 2.0, 0.5]]])
    kw = dict(flux_m_s=np.array([1e-5, 3e-6, 2e-5, 5e-5]), pore_radius_m=0.5e-9, thickness_m=1e-6,
              pore_dielectric=40.0, charge_density_mol_m3=np.array([-50.0, -200.0, 30.0, -500.0]))
    base = VARIANTS["pitzer_film_image"]
    dense = solve_batch(IONS, feed, options=base.with_(bordered_min_unknowns=None), **kw)
    bord = solve_batch(IONS, feed, options=base.with_(bordered_min_unknowns=1), **kw)
    assert dense.converged.all() and bord.converged.all()
    assert np.array_equal(dense.iterations, bord.iterations)
    assert np.max(np.abs(dense.rejection - bord.rejection)) < 1e-12


def test_option_is_validated():
    from nanosep.errors import InvalidInputError
    with pytest.raises(InvalidInputError, match="bordered_min_unknowns=0"):
        TransportOptions(bordered_min_unknowns=0)
