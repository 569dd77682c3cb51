"""The four DSPM-DE membrane parameters (seed 003: r_p, dx_e, zeta_p, chi_d)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nanosep.errors import InvalidInputError
from nanosep.units import NM_TO_M, UM_TO_M


@dataclass(frozen=True)
class Membrane:
    """A homogeneous DSPM-DE active layer.

    Attributes (SI)
    ----------
    pore_radius_m: mean pore radius r_p [m].
    thickness_m: effective thickness dx_e = dx / A_k [m].
    pore_dielectric: dielectric constant inside the pores zeta_p [-].
    charge_density_mol_m3: volumetric charge density X [mol/m3], signed.
    """

    pore_radius_m: float
    thickness_m: float
    pore_dielectric: float
    charge_density_mol_m3: float

    def __post_init__(self) -> None:
        for name in ("pore_radius_m", "thickness_m", "pore_dielectric"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise InvalidInputError(f"Membrane.{name} must be positive and finite, got {v!r}")
        if not np.isfinite(self.charge_density_mol_m3):
            raise InvalidInputError(f"Membrane.charge_density_mol_m3 must be finite, got {self.charge_density_mol_m3!r}")

    @classmethod
    def from_user_units(cls, pore_radius_nm: float, thickness_um: float, pore_dielectric: float,
                        charge_density_mol_m3: float) -> "Membrane":
        """Build from nm / um (the units of case files)."""
        return cls(pore_radius_nm * NM_TO_M, thickness_um * UM_TO_M, pore_dielectric, charge_density_mol_m3)

    def as_kwargs(self) -> dict:
        """Keyword arguments of :func:`nanosep.transport.solve_batch`."""
        return {"pore_radius_m": self.pore_radius_m, "thickness_m": self.thickness_m,
                "pore_dielectric": self.pore_dielectric, "charge_density_mol_m3": self.charge_density_mol_m3}
