"""nanosep.transport: the multi-ion DSPM-DE pore model (seed 003) and its solvers.

Quick start::

    from nanosep.transport import Membrane, TransportOptions, solve
    m = Membrane.from_user_units(pore_radius_nm=0.5, thickness_um=1.0, pore_dielectric=40, charge_density_mol_m3=-50)
    res = solve(m, {"Na+": 100, "Cl-": 100}, flux_m_s=[5e-6, 1e-5])
    res.case(0).rejection
"""
from .membrane import Membrane
from .options import TransportOptions
from .results import BatchResult, CaseResult
from .solver import solve, solve_batch

__all__ = ["Membrane", "TransportOptions", "BatchResult", "CaseResult", "solve", "solve_batch"]
