"""Membrane characterization by maximum likelihood, with uncertainty (seed 003 sec. 2.4, eq. 13; App. D).

Fit the latent DSPM-DE parameters {r_p, dx_e, zeta_p, chi_d} to measured rejections
(:func:`fit_parameters`), quantify how certain they are (:mod:`.intervals`: Fisher and
profile-likelihood intervals, correlations, identifiability), compare with the classical
four-step procedure (:mod:`.four_step`) and report (:mod:`.report`).
"""
from .design import Cases, Observations, observations_from_table
from .fit import FitResult, fit_parameters
from .intervals import fisher_summary, profile_intervals
from .likelihood import RejectionModel
from .parameters import ParameterMap
from .spec import FitCase, fit_case_from_dict, load_fit_case
from .workflow import characterize

__all__ = ["Cases", "FitCase", "FitResult", "Observations", "ParameterMap", "RejectionModel", "characterize",
           "fisher_summary", "fit_case_from_dict", "fit_parameters", "load_fit_case", "observations_from_table",
           "profile_intervals"]
