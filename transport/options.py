"""Model options of the transport engine (what physics is switched on, and how it is solved)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Optional, Union

from nanosep.errors import InvalidInputError

from .hindrance import HINDRANCE_MODELS
from .polarization import Channel

ACTIVITY_MODELS = ("ideal", "davies", "pitzer")
POLARIZATION_MODELS = ("none", "film", "linear")

#: Diffusivity that a user-given mass-transfer coefficient refers to (NaCl salt
#: diffusivity at 25 C, 1.61e-9 m2/s, Robinson & Stokes 1959); the film thickness is
#: ``delta = D_REF / k`` and the per-ion coefficients of the linearized film are
#: ``k_i = k (D_i / D_REF)^(2/3)`` (Leveque scaling, Sh ~ Sc^(1/3)).
D_REF_NACL = 1.61e-9


@dataclass(frozen=True)
class TransportOptions:
    """Physics and numerics switches.

    Attributes
    ----------
    activity: "ideal", "davies" or "pitzer" (seed 003 App. A).
    image_forces: include Yaroshchuk's image-force partitioning (seed 003 eqs. 5-8).
    image_screening: "pore" (Debye screening by the ions inside the pore at each
        interface, with the pore dielectric constant) or "bulk" (seed 003 eq. 8 as
        printed, which reduces to the bulk solution's screening length).
    matrix_dielectric: dielectric constant of the membrane matrix (seed 003: 4.5).
    bulk_dielectric: dielectric constant of the bulk solution; ``None`` uses pure
        water at the feed temperature (Malmberg & Maryott 1956).
    polarization: "none", "film" (Nernst-Planck across the film) or "linear" (eq. 2).
    mass_transfer_m_s: mass-transfer coefficient k [m/s] of a solute with
        diffusivity ``reference_diffusivity_m2_s``; film thickness = D_ref / k.
    film_thickness_m: alternative to ``mass_transfer_m_s``.
    channel: alternative to both: a :class:`~nanosep.transport.polarization.Channel`
        whose Sherwood correlation gives k at each case's temperature (per ion for
        the linearized film, for the reference solute for the full film).
    hindrance: "dechadilok_deen" or "bungay_brenner".
    nodes, film_nodes: Chebyshev intervals across the active layer and the film.
    tol: Newton tolerance on the scaled residuals (max norm).
    max_iter: Newton iteration limit per solve.
    coarse_grids: number of coarser grids (each with half the nodes of the next, at least 6
        layer / 4 film intervals) solved first, coarsest first; each converged solution,
        interpolated, starts Newton on the next grid.  0 solves on ``nodes`` directly.  The
        result is the solution on ``nodes``/``film_nodes`` either way (same equations and
        convergence test), only cheaper.
    grid_map_peclet: cases whose largest ion Peclet number ``K_c J_v dx_e / (K_d D)`` (at the
        given flux, or the pure-water flux in pressure mode) reaches this value solve on nodes
        clustered toward the permeate end of the active layer (:mod:`.grid_map`), which
        resolves the boundary layer of width ~dx_e/Pe; below it the plain Chebyshev grid.
        ``None`` never maps.
    resolution_tol: after the solve, every converged case whose Chebyshev resolution estimate
        (:meth:`DSPMDESystem.resolution`, the relative size of the last two Chebyshev
        coefficients of its profiles) exceeds this is re-solved on grids with twice the
        intervals (layer and film), started from the interpolated solution, until the estimate
        holds or ``max_nodes`` is reached; the answer is the finest grid's, its profiles sampled
        at the ``nodes`` grid (``BatchResult.nodes_used`` records the grid per case).  ``None``:
        no refinement (the estimate is still reported).
    max_nodes: the largest layer grid of that refinement (intervals; none if ``nodes`` is larger).
    bordered_min_unknowns: Newton systems with at least this many unknowns per case are factorized
        block-bordered (:mod:`.bordered`: one small LU per ion plus a Schur complement on the
        potentials), smaller ones by one dense LU; the solutions agree to round-off.  Measured
        (benchmarks/linear_solver.py): the bordered LU is 1.5-2.8x faster from ~380 unknowns
        (8 ions, or refined grids) and no faster at 258 (5 ions, film, 24 nodes), where the batched
        small LUs of LAPACK run far below its dense rate.  ``None``: always dense.
    compiled: the compiled (numba) Newton kernel of :mod:`.compiled` for the cases it covers (ideal,
        Davies or Pitzer activity, no polarization or the film, no image forces, flux given, charged
        ions; plain or mapped grids, sterically excluded ions): ``"auto"``
        uses it when numba imports, ``True`` requires numba, ``False`` never uses it.  The first use on a
        machine compiles it (~30-60 s, cached on disk by numba; later processes load it in ~0.7 s).  Same
        equations, grids, tolerance and resolution check as the engine; cases it does not converge are
        re-solved by the engine (``BatchResult.solver_path`` records the path of every case).
    """

    activity: Literal["ideal", "davies", "pitzer"] = "ideal"
    image_forces: bool = False
    image_screening: Literal["pore", "bulk"] = "pore"
    matrix_dielectric: float = 4.5
    bulk_dielectric: Optional[float] = None
    polarization: Literal["none", "film", "linear"] = "none"
    mass_transfer_m_s: Optional[float] = None
    film_thickness_m: Optional[float] = None
    channel: Optional[Channel] = None
    reference_diffusivity_m2_s: float = D_REF_NACL
    hindrance: str = "dechadilok_deen"
    nodes: int = 24
    film_nodes: int = 16
    tol: float = 1e-11
    max_iter: int = 60
    coarse_grids: int = 2
    grid_map_peclet: Optional[float] = 30.0
    resolution_tol: Optional[float] = 1e-9
    max_nodes: int = 48
    bordered_min_unknowns: Optional[int] = 300
    compiled: Union[bool, Literal["auto"]] = "auto"

    def __post_init__(self) -> None:
        if self.activity not in ACTIVITY_MODELS:
            raise InvalidInputError(f"activity={self.activity!r}: choose one of {ACTIVITY_MODELS}")
        if self.polarization not in POLARIZATION_MODELS:
            raise InvalidInputError(f"polarization={self.polarization!r}: choose one of {POLARIZATION_MODELS}")
        if self.hindrance not in HINDRANCE_MODELS:
            raise InvalidInputError(f"hindrance={self.hindrance!r}: choose one of {HINDRANCE_MODELS}")
        if self.image_screening not in ("pore", "bulk"):
            raise InvalidInputError(f"image_screening={self.image_screening!r}: choose 'pore' or 'bulk'")
        if self.polarization != "none":
            k, d, ch = self.mass_transfer_m_s, self.film_thickness_m, self.channel
            if sum(v is not None for v in (k, d, ch)) != 1:
                raise InvalidInputError(
                    f"polarization={self.polarization!r} needs exactly one of mass_transfer_m_s, film_thickness_m, "
                    f"channel (got {k!r}, {d!r}, {ch!r})")
            val = k if k is not None else d
            if ch is None and not (val > 0 and val < float("inf")):
                raise InvalidInputError(f"mass transfer / film thickness must be positive and finite, got {val!r}")
        if not (2 <= self.nodes <= 256) or not (2 <= self.film_nodes <= 256):
            raise InvalidInputError(f"nodes={self.nodes}, film_nodes={self.film_nodes}: must be in [2, 256]")
        if not (isinstance(self.coarse_grids, int) and 0 <= self.coarse_grids <= 4):
            raise InvalidInputError(f"coarse_grids={self.coarse_grids!r}: must be an integer in [0, 4]")
        if self.grid_map_peclet is not None and not self.grid_map_peclet > 0:
            raise InvalidInputError(f"grid_map_peclet={self.grid_map_peclet!r} must be > 0 (or None: no map)")
        if self.resolution_tol is not None and not (0 < self.resolution_tol < 1):
            raise InvalidInputError(f"resolution_tol={self.resolution_tol!r} must be in (0, 1) (or None: no refinement)")
        if self.bordered_min_unknowns is not None and not (isinstance(self.bordered_min_unknowns, int)
                                                            and self.bordered_min_unknowns >= 1):
            raise InvalidInputError(f"bordered_min_unknowns={self.bordered_min_unknowns!r}: must be an integer >= 1 "
                                    f"or None")
        if not (isinstance(self.max_nodes, int) and 2 <= self.max_nodes <= 256):
            raise InvalidInputError(f"max_nodes={self.max_nodes!r}: must be an integer in [2, 256]")
        if self.compiled not in (True, False, "auto"):
            raise InvalidInputError(f"compiled={self.compiled!r}: choose True, False or 'auto'")
        if not self.matrix_dielectric > 0:
            raise InvalidInputError(f"matrix_dielectric={self.matrix_dielectric!r} must be > 0")

    def with_(self, **kw) -> "TransportOptions":
        """A copy with some fields changed."""
        return replace(self, **kw)

    @property
    def film_thickness(self) -> Optional[float]:
        """Film thickness delta [m] (None without polarization or with a ``channel``: per case then)."""
        if self.polarization == "none" or self.channel is not None:
            return None
        if self.film_thickness_m is not None:
            return self.film_thickness_m
        return self.reference_diffusivity_m2_s / self.mass_transfer_m_s

    @property
    def mass_transfer(self) -> Optional[float]:
        """Mass-transfer coefficient k [m/s] of the reference solute (None without polarization)."""
        if self.polarization == "none" or self.channel is not None:
            return None
        if self.mass_transfer_m_s is not None:
            return self.mass_transfer_m_s
        return self.reference_diffusivity_m2_s / self.film_thickness_m
