"""Solver set-up shared by the suite: cyipopt through Pyomo, and IDAES on top.

There is no ``ipopt`` executable on our machines. Ipopt comes from the PyPI
wheel ``cyipopt-wheels`` (Ipopt 3.14 + MUMPS) and Pyomo reaches it through
PyNumero, whose ASL library is built once per machine against Debian's
``libamplsolver-dev`` (``bash .ci/setup`` does both).

Use :func:`ipopt_solver` for Pyomo models and call
:func:`configure_idaes_cyipopt` once before initializing IDAES unit models.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from nanosep.errors import SolverSetupError

ASL_INCLUDE_DIR = "/usr/include/ampl-netlib-solvers"
ASL_LIBRARY = "/usr/lib/x86_64-linux-gnu/libamplsolver.so"
APT_INSTALL_ASL = "apt-get update && apt-get install -y libamplsolver-dev"
PYNUMERO_BUILD_COMMAND = (
    "python -m pyomo.contrib.pynumero.build "
    f"-DASL_INCLUDE_DIR={ASL_INCLUDE_DIR} -DASL_LIBRARY={ASL_LIBRARY}"
)
PIP_INSTALL_CYIPOPT = 'pip install "cyipopt-wheels>=1.7.0.dev0"'

#: Options every :func:`ipopt_solver` starts from; callers override any key.
#: Ipopt's own acceptable_constr_viol_tol (1e-2) would let "Solved To
#: Acceptable Level" pass a 1 % constraint violation, hence the tight values.
DEFAULT_IPOPT_OPTIONS: dict[str, Any] = {
    "tol": 1e-8,
    "constr_viol_tol": 1e-8,
    "acceptable_constr_viol_tol": 1e-8,
    "max_iter": 3000,
    "linear_solver": "mumps",  # the only one in cyipopt-wheels
    "honor_original_bounds": "yes",  # final point inside the variable bounds
    "sb": "yes",  # no Ipopt banner
}


def asl_headers_installed() -> bool:
    """True if Debian's libamplsolver-dev (header and library) is installed."""
    return os.path.isdir(ASL_INCLUDE_DIR) and os.path.exists(ASL_LIBRARY)


def pynumero_fix_command() -> str:
    """The exact shell command that builds the PyNumero ASL library here."""
    if asl_headers_installed():
        return PYNUMERO_BUILD_COMMAND
    return f"{APT_INSTALL_ASL} && {PYNUMERO_BUILD_COMMAND}"


def cyipopt_version() -> str:
    """Version of the importable ``cyipopt`` module; raises SolverSetupError."""
    try:
        import cyipopt
    except ImportError as exc:
        raise SolverSetupError(
            f"cyipopt is not importable ({exc})", fix=PIP_INSTALL_CYIPOPT
        ) from exc
    return str(getattr(cyipopt, "__version__", "unknown"))


def pynumero_library() -> str | None:
    """Path of the built PyNumero ASL library, or None if it is not built."""
    from pyomo.contrib.pynumero.asl import AmplInterface

    if not AmplInterface.available():
        return None
    return str(AmplInterface.libname)


def ensure_pynumero() -> str:
    """Check that cyipopt and the PyNumero ASL library are usable.

    Returns the library path. Raises :class:`SolverSetupError` carrying the
    exact command that fixes the set-up.
    """
    cyipopt_version()
    lib = pynumero_library()
    if lib is None:
        raise SolverSetupError(
            "the PyNumero ASL library (libpynumero_ASL.so) is not built, so "
            "Pyomo cannot hand models to cyipopt",
            fix=pynumero_fix_command(),
        )
    return lib


def ipopt_solver(options: Mapping[str, Any] | None = None):
    """A Pyomo ``SolverFactory('cyipopt')`` with :data:`DEFAULT_IPOPT_OPTIONS`.

    ``options`` are Ipopt options that override the defaults, e.g.
    ``{"tol": 1e-10, "print_level": 0}``. ``solve(model, tee=True)`` streams
    Ipopt's log. PyNumero passes a model's ``scaling_factor`` suffixes to
    Ipopt, which uses them only with ``{"nlp_scaling_method": "user-scaling"}``.
    Raises :class:`SolverSetupError` if the solver is unusable.
    """
    ensure_pynumero()
    import pyomo.environ as pyo

    merged = {**DEFAULT_IPOPT_OPTIONS, **dict(options or {})}
    return pyo.SolverFactory("cyipopt", options=merged)


def _options_alias(self):
    return self.config.options


def configure_idaes_cyipopt() -> None:
    """Make IDAES use cyipopt wherever it asks for its default solver.

    Sets ``idaes.cfg.default_solver = "cyipopt"``, which
    ``idaes.core.solvers.get_solver()`` and the legacy
    ``unit.initialize()`` read. Also gives Pyomo's cyipopt solver an
    ``options`` attribute (an alias of ``solver.config.options``), because
    IDAES sets options through ``solver.options[k] = v`` and would otherwise
    fail with AttributeError whenever ``optarg``/``solver_options`` are given.

    The new Initializer objects (``unit.default_initializer()``,
    ``BlockTriangularizationInitializer``) default to ``"ipopt_v2"`` whatever
    the config says: pass ``solver="cyipopt"`` to them. Idempotent.
    """
    ensure_pynumero()
    import idaes
    from pyomo.contrib.pynumero.algorithms.solvers.cyipopt_solver import (
        PyomoCyIpoptSolver,
    )

    if not hasattr(PyomoCyIpoptSolver, "options"):
        PyomoCyIpoptSolver.options = property(_options_alias)
    idaes.cfg.default_solver = "cyipopt"
