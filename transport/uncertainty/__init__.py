"""Uncertainty of DSPM-DE membranes: pore-size EM and bilevel fit, QMC propagation, ablation and pH studies.

Seed 003 (Rehman, Sheriff & Lienhard, Water Research 243 (2023) 120325) sections 2.4-3.4 and
Appendix B.  One idea per module:

* :mod:`.rejection_data` - measured rejections as arrays (from the tidy table of :mod:`nanosep.measured`)
* :mod:`.radius_table` - the engine tabulated over the pore radius, interpolated in ln r
* :mod:`.em_psd` - EM for the log-normal pore-size distribution (eqs. 14-27) and the direct maximum
* :mod:`.bilevel` - the bilevel scheme (eq. 28): membrane parameters outside, EM inside
* :mod:`.sampling` - scrambled-Sobol (and plain Monte-Carlo) samples of the PSD or a parameter covariance
* :mod:`.propagation` - samples through the batched engine: rejection, selectivity, partition, flux split
* :mod:`.ablation` - one-parameter sweeps with selectivities (Fig. 4)
* :mod:`.ph_optimization` - the pH of best selectivity through the ionizable-group charge model
* :mod:`.plots` - violin, ablation and pH figures (Agg)
* :mod:`.uq_case`, :mod:`.uq_study` - the ``nanosep uq`` case file and runner (checkpointed)
"""
from .ablation import ablation_sweep
from .bilevel import BilevelResult, bilevel_fit
from .em_psd import (
           LikelihoodGrid,
           PSDFit,
           direct_psd,
           em_psd,
           fit_psd,
           likelihood_grid,
           marginal_loglik,
)
from .ph_optimization import PHOptimum, optimize_ph, selectivity_vs_ph
from .propagation import (
           PARAMETERS,
           PropagationResult,
           propagate,
           propagate_radii,
           selectivity,
)
from .radius_table import RadiusTable, radius_grid, tabulate_radius
from .rejection_data import RejectionData
from .sampling import normal_samples, radius_samples

__all__ = [
           "PARAMETERS",
           "BilevelResult",
           "LikelihoodGrid",
           "PHOptimum",
           "PSDFit",
           "PropagationResult",
           "RadiusTable",
           "RejectionData",
           "ablation_sweep",
           "bilevel_fit",
           "direct_psd",
           "em_psd",
           "fit_psd",
           "likelihood_grid",
           "marginal_loglik",
           "normal_samples",
           "optimize_ph",
           "propagate",
           "propagate_radii",
           "radius_grid",
           "radius_samples",
           "selectivity",
           "selectivity_vs_ph",
           "tabulate_radius",
]
