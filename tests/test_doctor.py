"""``nanosep doctor``: every check solves its tiny problem to the known answer
on this machine, and the CLI reports and exits accordingly."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from nanosep import doctor, solvers
from nanosep.cli import app
from nanosep.errors import NanosepError, SolverSetupError

runner = CliRunner()


def test_cyipopt_solves_hs071_through_pyomo():
    r = doctor.check_cyipopt()
    assert r.status == "ok", r.detail
    # honor_original_bounds projects x0 onto its bound: f* up to ~3e-7 high
    assert r.value == pytest.approx(17.0140171, abs=1e-5)


def test_idaes_heater_solves_through_cyipopt():
    r = doctor.check_idaes()
    assert r.status == "ok", r.detail
    # Q / (F rho cp) = 4e4 / (1e-3 * 55388 * 75.327) K above the 303.15 K feed
    assert r.value == pytest.approx(
        303.15 + 4.0e4 / (1e-3 * 55388.0 * 75.327), abs=1e-6
    )
    import idaes

    assert idaes.cfg.default_solver == "cyipopt"


def test_maingo_proves_global_optimum_of_six_hump_camel():
    r = doctor.check_maingo()
    assert r.status == "ok", r.detail
    assert r.value == pytest.approx(-1.0316284535, abs=1e-7)


def test_casadi_ipopt_solves_hs071():
    r = doctor.check_casadi()
    assert r.status == "ok", r.detail
    assert r.value == pytest.approx(17.0140171, abs=1e-6)


def test_onnxruntime_runs_tiny_graph():
    r = doctor.check_onnxruntime()
    assert r.status == "ok", r.detail
    assert r.value == pytest.approx(math.tanh(2.0), rel=1e-6)


@pytest.mark.parametrize(
    "check",
    [
        doctor.check_nanosep,
        doctor.check_numpy_scipy,
        doctor.check_torch,
        doctor.check_dask,
    ],
)
def test_import_checks_pass(check):
    r = check()
    assert r.status == "ok", r.detail
    assert r.fix == ""


def test_torch_is_the_cpu_build():
    r = doctor.check_torch()
    assert r.value == 11.0
    assert "2.13.0" in r.detail and "CPU only" in r.detail


def test_watertap_is_optional():
    r = doctor.check_watertap()
    assert r.required is False
    assert r.status in {"ok", "optional"}


def test_ipopt_solver_defaults_and_overrides():
    opts = solvers.ipopt_solver({"tol": 1e-6, "print_level": 0}).config.options
    assert opts["tol"] == 1e-6
    assert opts["print_level"] == 0
    assert opts["max_iter"] == solvers.DEFAULT_IPOPT_OPTIONS["max_iter"]


def test_idaes_get_solver_takes_options_through_cyipopt():
    solvers.configure_idaes_cyipopt()
    from idaes.core.solvers import get_solver

    solver = get_solver(solver_options={"tol": 1e-9})
    assert solver.config.options["tol"] == 1e-9
    assert solver.options is solver.config.options


def test_missing_pynumero_raises_typed_error_with_exact_fix(monkeypatch):
    monkeypatch.setattr(solvers, "pynumero_library", lambda: None)
    with pytest.raises(SolverSetupError) as err:
        solvers.ensure_pynumero()
    assert isinstance(err.value, NanosepError)
    assert err.value.fix.endswith(
        "python -m pyomo.contrib.pynumero.build "
        "-DASL_INCLUDE_DIR=/usr/include/ampl-netlib-solvers "
        "-DASL_LIBRARY=/usr/lib/x86_64-linux-gnu/libamplsolver.so"
    )
    r = doctor.check_cyipopt()
    assert (r.status, r.fix) == ("fail", err.value.fix)
    assert "PyNumero ASL" in r.detail


def test_exit_code_follows_required_checks(monkeypatch, capsys):
    def bad():
        return doctor._run("broken", lambda: 1 / 0, "do this")

    def missing_peer():
        return doctor._run("peer", lambda: 1 / 0, "pip it", required=False)

    monkeypatch.setattr(doctor, "CHECKS", (doctor.check_numpy_scipy, missing_peer))
    assert doctor.run_doctor() == 0
    assert "optional" in capsys.readouterr().out
    monkeypatch.setattr(doctor, "CHECKS", (doctor.check_numpy_scipy, bad))
    assert doctor.run_doctor(as_json=True) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["checks"][1] | {"seconds": 0} == {
        "component": "broken",
        "status": "fail",
        "fix": "do this",
        "required": True,
        "detail": "ZeroDivisionError: division by zero",
        "seconds": 0,
        "value": None,
    }


def test_cli_doctor_exits_zero_here():
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True
    assert report["seconds"] < 30
    by_name = {c["component"]: c for c in report["checks"]}
    assert by_name["cyipopt + PyNumero (Pyomo)"]["value"] == pytest.approx(
        17.0140171, abs=1e-5
    )


def test_cli_doctor_table():
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "nanosep doctor" in result.output
    assert "all required components work" in result.output


@pytest.mark.parametrize("args", [["--help"], ["doctor", "--help"], []])
def test_cli_help(args):
    result = runner.invoke(app, args)
    assert "Usage" in result.output
    if args:
        assert result.exit_code == 0
    if "doctor" in args:
        assert "--json" in result.output
