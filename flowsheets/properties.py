"""A light state block for dilute multi-ion aqueous streams (IDAES-style, declarative).

:class:`AqueousStream` holds, with Pyomo units:

* ``flow_vol``     volumetric flow of the (dilute) solution [m3/s],
* ``conc[i]``      molar concentration of ion ``i`` [mol/m3],
* ``pressure``     absolute pressure [Pa],
* ``temperature``  [K],

and, as expressions, the ion molar flows ``flow_mol[i] = flow_vol * conc[i]`` [mol/s] and the
osmotic pressure [Pa]

    pi = phi R T sum_i c_i                                  (van 't Hoff for phi = 1)

``osmotic = "van_t_hoff"`` (default) sets ``phi = 1``; ``osmotic = "pitzer"`` uses the practical
osmotic coefficient of :class:`nanosep.transport.pitzer.PitzerActivity` written as a Pyomo
expression of the concentrations (the same formula code the activity model evaluates in numpy,
at the fixed parameter temperature ``pitzer_temperature_K``; ``T`` in ``R T`` is the stream's
variable).  Molalities use the activity module's dilute conversion ``m = c / rho_w``, so
``phi R T sum c`` is the osmotic pressure to the same order.  ``osmotic = None`` omits it.

``port`` (a ``pyomo.network.Port``) carries the four state variables; flowsheets connect ports
with Arcs (:func:`nanosep.flowsheets.unit_models.connect`).
"""
from __future__ import annotations

from collections.abc import Sequence

import pyomo.environ as pyo
from idaes.core import ProcessBlockData, declare_process_block_class
from pyomo.common.config import ConfigValue
from pyomo.network import Port

from nanosep.errors import InvalidInputError
from nanosep.ions import IonDatabase

__all__ = ["GAS_CONSTANT", "OSMOTIC_MODELS", "AqueousStream", "canonical_ions"]  # noqa: F822 (AqueousStream: by IDAES)

#: molar gas constant R [J/(mol K)] (CODATA 2018, exact)
GAS_CONSTANT = 8.314462618
OSMOTIC_MODELS = ("van_t_hoff", "pitzer", None)

u = pyo.units


def canonical_ions(ions: Sequence[str]) -> tuple[list[str], dict[str, int]]:
    """Canonical ion names and charges from the packaged ion database (any accepted spelling)."""
    if not ions:
        raise InvalidInputError("a stream needs at least one ion")
    db = IonDatabase.default()
    got = [db.get(i) for i in ions]
    names = [ion.name for ion in got]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"ions {list(ions)} name the same ion twice")
    return names, {ion.name: int(ion.charge) for ion in got}


@declare_process_block_class("AqueousStream")
class AqueousStreamData(ProcessBlockData):
    """State of one dilute aqueous stream (see the module docstring)."""

    CONFIG = ProcessBlockData.CONFIG()
    CONFIG.declare("ions", ConfigValue(default=None, doc="ion names, any accepted spelling"))
    CONFIG.declare("osmotic", ConfigValue(default="van_t_hoff", doc="'van_t_hoff', 'pitzer' or None"))
    CONFIG.declare("pitzer_parameters", ConfigValue(default=None, doc="Pitzer parameter set (None: the default)"))
    CONFIG.declare("pitzer_temperature_K", ConfigValue(default=298.15, doc="T of the Pitzer parameters [K]"))

    def build(self) -> None:
        super().build()
        cfg = self.config
        if cfg.ions is None:
            raise InvalidInputError("AqueousStream needs ions=[...]")
        if cfg.osmotic not in OSMOTIC_MODELS:
            raise InvalidInputError(f"osmotic={cfg.osmotic!r}; choose one of {OSMOTIC_MODELS}")
        self.ion_names, charges = canonical_ions(cfg.ions)
        self.ions = pyo.Set(initialize=self.ion_names, ordered=True, doc="ions (canonical names)")
        self.charge = pyo.Param(self.ions, initialize=charges, doc="charge number z_i [-]")
        self.flow_vol = pyo.Var(initialize=0.06, bounds=(0.0, None), units=u.m**3 / u.s, doc="volumetric flow [m3/s]")
        self.conc = pyo.Var(self.ions, initialize=1.0, bounds=(0.0, None), units=u.mol / u.m**3,
                            doc="ion concentration [mol/m3]")
        self.pressure = pyo.Var(initialize=1.0e5, bounds=(0.0, None), units=u.Pa, doc="absolute pressure [Pa]")
        self.temperature = pyo.Var(initialize=298.15, bounds=(273.15, 373.15), units=u.K, doc="temperature [K]")
        self.flow_mol = pyo.Expression(self.ions, rule=lambda b, i: b.flow_vol * b.conc[i], doc="ion flow [mol/s]")
        if cfg.osmotic is not None:
            self.gas_constant = pyo.Param(initialize=GAS_CONSTANT, units=u.J / u.mol / u.K, doc="R [J/(mol K)]")
            self.osmotic_coefficient = pyo.Expression(expr=self._osmotic_coefficient(), doc="practical phi [-]")
            self.osmotic_pressure = pyo.Expression(
                expr=self.osmotic_coefficient * self.gas_constant * self.temperature * sum(self.conc[i] for i in self.ions),
                doc="pi = phi R T sum c [Pa]")
        self.port = Port(initialize={"flow_vol": self.flow_vol, "conc": self.conc, "pressure": self.pressure,
                                     "temperature": self.temperature})

    def _osmotic_coefficient(self):
        if self.config.osmotic == "van_t_hoff":
            return 1.0
        from nanosep.transport.activity import make_activity_model
        from nanosep.transport.mathops import PyomoOps

        kw = {} if self.config.pitzer_parameters is None else {"parameters": self.config.pitzer_parameters}
        model = make_activity_model("pitzer", self.ion_names, [self.charge[i] for i in self.ion_names],
                                    T=float(self.config.pitzer_temperature_K), **kw)
        m = [model._molality(self.conc[i] / (u.mol / u.m**3)) for i in self.ion_names]  # dimensionless mol/kg
        return 1.0 + model._osmotic_sum(m, PyomoOps) / sum(m)

    def set_state(self, flow_m3_s: float | None = None, conc_mol_m3: dict | None = None,
                  pressure_Pa: float | None = None, temperature_K: float | None = None, fix: bool = False) -> None:
        """Set (and optionally fix) state values; ``None`` leaves a value alone."""
        pairs = [(self.flow_vol, flow_m3_s), (self.pressure, pressure_Pa), (self.temperature, temperature_K)]
        pairs += [(self.conc[i], v) for i, v in (conc_mol_m3 or {}).items()]
        for var, val in pairs:
            if val is not None:
                var.set_value(float(val))
                if fix:
                    var.fix()

    def state_vars(self) -> list:
        """Every state variable data object (flow, concentrations, pressure, temperature)."""
        return [self.flow_vol, *self.conc.values(), self.pressure, self.temperature]
