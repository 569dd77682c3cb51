"""nanosep: nanofiltration across scales.

DSPM-DE ion transport (``nanosep.transport``), surrogates
(``nanosep.surrogates``), plant flowsheets (``nanosep.flowsheets``), control
(``nanosep.control``) and water networks (``nanosep.network``).

Importing ``nanosep`` is cheap: no solver or framework is imported here.
``nanosep doctor`` checks the numerical stack.
"""

from importlib import metadata as _metadata

from nanosep.errors import NanosepError, SolverSetupError

try:
    __version__ = _metadata.version("nanosep")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["NanosepError", "SolverSetupError", "__version__"]
