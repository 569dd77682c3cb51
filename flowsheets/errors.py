"""Typed errors of the flowsheet layer (all :class:`nanosep.errors.NanosepError`)."""
from __future__ import annotations

from nanosep.errors import InvalidInputError, NanosepError

__all__ = ["DegreesOfFreedomError", "FlowsheetError", "InitializationError", "InvalidInputError",
           "StructuralSingularityError"]


class FlowsheetError(NanosepError):
    """A flowsheet model is not well posed or could not be prepared for solving."""


class DegreesOfFreedomError(FlowsheetError):
    """The degrees of freedom differ from the stated number; the message names free variables or extra equations."""


class StructuralSingularityError(FlowsheetError):
    """The Dulmage-Mendelsohn partition shows an over- or under-determined part; the message names its members."""


class InitializationError(FlowsheetError, RuntimeError):
    """Sequential initialization failed at a unit; the message names the unit and the solver status."""
