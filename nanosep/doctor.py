"""``nanosep doctor``: check every piece of the numerical stack on this machine.

Each ``check_*`` function imports one component, runs a tiny problem with a
known answer through it and returns a :class:`CheckResult`; ``value`` holds
the number it verified (an optimum, a network output). A check never raises:
a failure becomes ``status="fail"`` (or ``"optional"`` for a peer package
that the suite can do without) with the exact command that fixes it.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from time import perf_counter
from typing import Any

from nanosep.errors import SolverSetupError

OK, FAIL, OPTIONAL = "ok", "fail", "optional"

SETUP_FIX = "bash .ci/setup"
PIP_FIX = 'pip install -e ".[peers,dev]"'

#: Hock-Schittkowski problem 71, the classic Ipopt example: optimum value.
HS071_OPTIMUM = 17.014017145179164
#: Six-hump camel function on [-3, 3] x [-2, 2]: global minimum (two minimizers).
CAMEL_OPTIMUM = -1.0316284534898774
#: Output of the tiny ONNX graph tanh(x @ [2, -1] + 0.5) at x = [1, 0.5].
ONNX_EXPECTED = math.tanh(2.0)


@dataclass
class CheckResult:
    """Outcome of one doctor check."""

    component: str
    status: str  # "ok", "fail" or "optional"
    detail: str
    fix: str = ""
    required: bool = True
    seconds: float = 0.0
    value: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


class WrongAnswerError(Exception):
    """A component ran but gave a wrong answer."""


def _run(
    component: str,
    body: Callable[[], tuple[str, float | None]],
    fix: str,
    required: bool = True,
) -> CheckResult:
    """Time ``body`` (returning detail and value) and turn errors into results."""
    start = perf_counter()
    try:
        detail, value = body()
    except SolverSetupError as exc:
        status = FAIL if required else OPTIONAL
        detail, value, fix = str(exc).split("\nFix:")[0], None, exc.fix or fix
    except Exception as exc:  # a doctor reports, never raises
        status = FAIL if required else OPTIONAL
        detail, value = f"{type(exc).__name__}: {exc}".strip(), None
    else:
        status, fix = OK, ""
    return CheckResult(
        component,
        status,
        detail,
        fix,
        required,
        round(perf_counter() - start, 2),
        value,
    )


def _expect(name: str, got: float, expected: float, rel: float = 1e-6) -> None:
    if not math.isclose(got, expected, rel_tol=rel, abs_tol=rel):
        raise WrongAnswerError(f"{name} = {got!r}, expected {expected!r}")


def _version(dist: str) -> str:
    return metadata.version(dist)


# --- the checks ---------------------------------------------------------------


def check_nanosep() -> CheckResult:
    """nanosep and its sub-packages import from one place."""

    def body():
        import importlib

        import nanosep

        for sub in ("transport", "surrogates", "flowsheets", "control", "network"):
            importlib.import_module(f"nanosep.{sub}")
        return f"{nanosep.__version__} at {nanosep.__path__[0]}", None

    return _run("nanosep", body, PIP_FIX)


def check_numpy_scipy() -> CheckResult:
    """numpy and scipy versions, and one scipy root solve."""

    def body():
        import numpy
        import scipy
        from scipy.optimize import brentq

        root = brentq(lambda x: x * x - 2.0, 0.0, 2.0, xtol=1e-14)
        _expect("sqrt(2) by brentq", root, math.sqrt(2.0), rel=1e-12)
        return f"numpy {numpy.__version__}, scipy {scipy.__version__}", root

    return _run("numpy / scipy", body, PIP_FIX)


def _hs071_pyomo():
    import pyomo.environ as pyo

    m = pyo.ConcreteModel()
    m.x = pyo.Var(range(4), bounds=(1, 5), initialize={0: 1, 1: 5, 2: 5, 3: 1})
    x = m.x
    m.obj = pyo.Objective(expr=x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2])
    m.prod = pyo.Constraint(expr=x[0] * x[1] * x[2] * x[3] >= 25)
    m.norm = pyo.Constraint(expr=sum(x[i] ** 2 for i in range(4)) == 40)
    return m


def check_cyipopt() -> CheckResult:
    """cyipopt imports, PyNumero ASL is built, SolverFactory('cyipopt') solves HS071."""

    def body():
        import pyomo.environ as pyo

        from nanosep.solvers import cyipopt_version, ensure_pynumero, ipopt_solver

        version = cyipopt_version()
        ensure_pynumero()
        m = _hs071_pyomo()
        res = ipopt_solver({"tol": 1e-10}).solve(m)
        if res.solver.termination_condition != pyo.TerminationCondition.optimal:
            raise WrongAnswerError(f"termination {res.solver.termination_condition}")
        value = pyo.value(m.obj)
        _expect("HS071 optimum", value, HS071_OPTIMUM)
        return f"cyipopt {version}, PyNumero ASL built; HS071 f*={value:.8f}", value

    return _run("cyipopt + PyNumero (Pyomo)", body, SETUP_FIX)


_HEATER_FEED_CONC = {  # mol/m3; H2O equals the package's dens_mol
    "H2O": 55388.0,
    "NaOH": 100.0,
    "EthylAcetate": 100.0,
    "SodiumAcetate": 0.0,
    "Ethanol": 0.0,
}


def check_idaes() -> CheckResult:
    """idaes.core imports; a Heater flowsheet initializes and solves via cyipopt."""

    def body():
        import idaes.logger as idaeslog
        import pyomo.environ as pyo
        from idaes.core import FlowsheetBlock
        from idaes.core.solvers import get_solver
        from idaes.core.util.model_statistics import degrees_of_freedom
        from idaes.models.properties.examples.saponification_thermo import (
            SaponificationParameterBlock,
        )
        from idaes.models.unit_models import Heater

        from nanosep.solvers import configure_idaes_cyipopt

        configure_idaes_cyipopt()
        m = pyo.ConcreteModel()
        m.fs = FlowsheetBlock(dynamic=False)
        m.fs.props = SaponificationParameterBlock()
        m.fs.heater = Heater(property_package=m.fs.props, has_pressure_change=False)
        inlet = m.fs.heater.inlet
        inlet.flow_vol.fix(1e-3)
        inlet.temperature.fix(303.15)
        inlet.pressure.fix(101325.0)
        for comp, conc in _HEATER_FEED_CONC.items():
            inlet.conc_mol_comp[0, comp].fix(conc)
        m.fs.heater.heat_duty.fix(4.0e4)
        if degrees_of_freedom(m) != 0:
            raise WrongAnswerError(f"degrees of freedom {degrees_of_freedom(m)} != 0")
        m.fs.heater.initialize(outlvl=idaeslog.WARNING)  # default solver: cyipopt
        res = get_solver(solver_options={"tol": 1e-10}).solve(m)
        if not pyo.check_optimal_termination(res):
            raise WrongAnswerError(f"termination {res.solver.termination_condition}")
        p = m.fs.props
        heat_capacity_flow = 1e-3 * pyo.value(p.dens_mol) * pyo.value(p.cp_mol)
        t_out = pyo.value(m.fs.heater.outlet.temperature[0])
        _expect("Heater outlet T", t_out, 303.15 + 4.0e4 / heat_capacity_flow)
        version = _version("idaes-pse")
        return f"idaes-pse {version}; Heater via cyipopt, T_out={t_out:.6f} K", t_out

    return _run("IDAES (cyipopt)", body, SETUP_FIX)


def check_maingo() -> CheckResult:
    """MAiNGO proves the global optimum of the six-hump camel function."""

    def body():
        import maingopy as mp

        class SixHumpCamel(mp.MAiNGOmodel):
            def __init__(self):
                super().__init__()

            def get_variables(self):
                return [
                    mp.OptimizationVariable(mp.Bounds(-3, 3), mp.VT_CONTINUOUS, "x"),
                    mp.OptimizationVariable(mp.Bounds(-2, 2), mp.VT_CONTINUOUS, "y"),
                ]

            def evaluate(self, v):
                x, y = v
                out = mp.EvaluationContainer()
                out.objective = (
                    (4 - 2.1 * x**2 + x**4 / 3) * x**2 + x * y + (-4 + 4 * y**2) * y**2
                )
                return out

        model = SixHumpCamel()  # keep a reference: MAiNGO holds it weakly
        solver = mp.MAiNGO(model)
        for key, val in {
            "loggingDestination": mp.LOGGING_NONE,
            "writeResultFile": False,  # else MAiNGOresult.txt lands in the cwd
            "epsilonA": 1e-8,
            "epsilonR": 1e-8,
        }.items():
            solver.set_option(key, val)
        status = solver.solve()
        if status != mp.GLOBALLY_OPTIMAL:
            raise WrongAnswerError(f"status {status}, expected GLOBALLY_OPTIMAL")
        value = solver.get_objective_value()
        _expect("six-hump camel optimum", value, CAMEL_OPTIMUM, rel=1e-6)
        return f"maingopy {_version('maingopy')}; global f*={value:.8f}", value

    return _run("MAiNGO (global)", body, 'pip install "maingopy>=0.8"')


def check_casadi() -> CheckResult:
    """CasADi's nlpsol('ipopt') (its bundled Ipopt) solves HS071."""

    def body():
        import casadi as ca

        x = ca.SX.sym("x", 4)
        nlp = {
            "x": x,
            "f": x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2],
            "g": ca.vertcat(x[0] * x[1] * x[2] * x[3], ca.sumsqr(x)),
        }
        opts = {"ipopt.print_level": 0, "ipopt.sb": "yes", "print_time": False}
        solver = ca.nlpsol("hs071", "ipopt", nlp, opts)
        sol = solver(x0=[1, 5, 5, 1], lbx=1, ubx=5, lbg=[25, 40], ubg=[ca.inf, 40])
        if not solver.stats()["success"]:
            raise WrongAnswerError(f"status {solver.stats()['return_status']}")
        value = float(sol["f"])
        _expect("HS071 optimum", value, HS071_OPTIMUM)
        return f"casadi {ca.__version__}; HS071 f*={value:.8f}", value

    return _run("CasADi nlpsol(ipopt)", body, 'pip install "casadi>=3.6,<4"')


def check_onnxruntime() -> CheckResult:
    """onnxruntime runs a two-node graph built with onnx.helper."""

    def body():
        import numpy as np
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [
                helper.make_node("Gemm", ["x", "W", "b"], ["h"]),
                helper.make_node("Tanh", ["h"], ["y"]),
            ],
            "tiny",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
            [
                helper.make_tensor("W", TensorProto.FLOAT, [2, 1], [2.0, -1.0]),
                helper.make_tensor("b", TensorProto.FLOAT, [1], [0.5]),
            ],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 9  # readable by any onnxruntime >= 1.16
        onnx.checker.check_model(model)
        sess = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        (y,) = sess.run(None, {"x": np.array([[1.0, 0.5]], dtype=np.float32)})
        value = float(y[0, 0])
        _expect("tanh(2)", value, ONNX_EXPECTED, rel=1e-6)
        return f"onnxruntime {ort.__version__}, onnx {onnx.__version__}", value

    return _run("onnxruntime", body, 'pip install "onnxruntime>=1.18,<2" "onnx>=1.16"')


def check_torch() -> CheckResult:
    """torch imports; reports version and device."""

    def body():
        import torch

        value = float(torch.tensor([[1.0, 2.0]]) @ torch.tensor([[3.0], [4.0]]))
        _expect("[1,2].[3,4]", value, 11.0)
        cuda = "CUDA available" if torch.cuda.is_available() else "CPU only"
        return f"torch {torch.__version__}, {cuda}", value

    return _run("torch", body, "pip install torch==2.13.0")


def check_dask() -> CheckResult:
    """dask.distributed imports."""

    def body():
        import dask
        import dask.distributed

        return (
            f"dask {dask.__version__}, distributed {dask.distributed.__version__}",
            None,
        )

    return _run("dask.distributed", body, 'pip install "dask[distributed]>=2024.1"')


def check_numba() -> CheckResult:
    """numba and the compiled transport kernel (transport/compiled.py): compiles (or loads from numba's cache)
    and solves one NaCl case to the engine's rejection (value: the largest rejection difference)."""

    def body():
        import numba
        import numpy as np

        from nanosep.transport import TransportOptions, compiled, solve_batch

        if not compiled.HAVE_NUMBA:
            raise SolverSetupError("numba does not import: the compiled transport kernel is off",
                                   fix="pip install numba")
        seconds = compiled.compile_kernels()
        case = dict(c_feed=np.array([[10.0, 10.0]]), flux_m_s=np.array([5e-6]), pore_radius_m=np.array([0.6e-9]),
                    thickness_m=np.array([1e-6]), pore_dielectric=np.array([50.0]),
                    charge_density_mol_m3=np.array([-50.0]))
        ions = ("Na+", "Cl-")
        res = solve_batch(ions, options=TransportOptions(compiled=True), **case)
        ref = solve_batch(ions, options=TransportOptions(compiled=False), **case)
        if res.solver_path[0] != "compiled":
            raise WrongAnswerError(f"solver_path {res.solver_path[0]!r}, expected 'compiled'")
        diff = float(np.max(np.abs(res.rejection - ref.rejection)))
        _expect("kernel - engine rejection", diff, 0.0, rel=1e-9)
        return f"numba {numba.__version__}, kernel ready in {seconds:.1f} s, agrees with the engine ({diff:.0e})", diff

    return _run("numba (compiled kernel)", body, "pip install numba", required=False)


def check_watertap() -> CheckResult:
    """Optional peer: watertap and its NF DSPM-DE unit model import."""

    def body():
        from watertap.unit_models.nanofiltration_DSPMDE_0D import (  # noqa: F401
            NanofiltrationDSPMDE0D,
        )

        return f"watertap {_version('watertap')} (NanofiltrationDSPMDE0D)", None

    return _run("watertap (peer)", body, 'pip install -e ".[peers]"', required=False)


CHECKS: tuple[Callable[[], CheckResult], ...] = (
    check_nanosep,
    check_numpy_scipy,
    check_cyipopt,
    check_idaes,
    check_maingo,
    check_casadi,
    check_onnxruntime,
    check_torch,
    check_dask,
    check_numba,
    check_watertap,
)


def run_checks() -> list[CheckResult]:
    """Run every check in :data:`CHECKS`, in order."""
    return [check() for check in CHECKS]


def all_required_ok(results: list[CheckResult]) -> bool:
    return all(r.ok for r in results if r.required)


def results_as_dict(results: list[CheckResult], seconds: float) -> dict[str, Any]:
    return {
        "ok": all_required_ok(results),
        "seconds": round(seconds, 2),
        "python": sys.version.split()[0],
        "checks": [asdict(r) for r in results],
    }


def print_table(results: list[CheckResult], seconds: float) -> None:
    """Print the results as a rich table, then the fix commands verbatim."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=140)
    styles = {OK: "green", FAIL: "bold red", OPTIONAL: "yellow"}
    table = Table(title="nanosep doctor", show_lines=False)
    for col in ("Component", "Status", "Detail", "Fix"):
        table.add_column(col, overflow="fold")
    for r in results:
        status = f"[{styles[r.status]}]{r.status}[/]"
        table.add_row(r.component, status, r.detail, r.fix)
    console.print(table)
    for r in results:
        if r.fix:
            console.print(f"fix {r.component}: {r.fix}", markup=False, soft_wrap=True)
    n_fail = sum(r.status == FAIL for r in results)
    n_opt = sum(r.status == OPTIONAL for r in results)
    verdict = "all required components work" if n_fail == 0 else f"{n_fail} failed"
    console.print(f"{verdict}; {n_opt} optional missing; {seconds:.1f} s", markup=False)


def run_doctor(as_json: bool = False) -> int:
    """Run the checks, report them, and return the process exit code."""
    start = perf_counter()
    results = run_checks()
    seconds = perf_counter() - start
    if as_json:
        print(json.dumps(results_as_dict(results, seconds), indent=2))
    else:
        print_table(results, seconds)
    return 0 if all_required_ok(results) else 1
