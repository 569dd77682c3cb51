"""Small unit models for NF plants: feed, pump, mixer, splitter, sink, and the Arc that joins them.

Every function adds one ``pyo.Block`` to ``parent`` under ``name`` and returns it.  A unit block
holds its own :class:`~nanosep.flowsheets.properties.AqueousStream` blocks and plain-Python
attributes used by :mod:`.initialization`:

* ``inlets`` / ``outlets``  lists of stream blocks,
* ``decisions``             variables that the unit needs from outside (fixed by the user or free
                            for the optimizer), fixed temporarily while the unit is initialized alone.

Streams are joined by :func:`connect` (a ``pyomo.network.Arc`` between two ports);
:func:`expand_arcs` turns all Arcs into equality constraints before solving.  All plants are
isothermal; pressures stay absolute [Pa].
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyomo.environ as pyo
from pyomo.network import Arc

from nanosep.errors import InvalidInputError

from .properties import AqueousStream, canonical_ions

__all__ = ["ATMOSPHERIC_PA", "add_feed", "add_mixer", "add_pump", "add_sink", "add_splitter", "connect",
           "expand_arcs", "stream"]

u = pyo.units
#: absolute pressure of open tanks, permeate and product [Pa]
ATMOSPHERIC_PA = 101325.0


def stream(ions: Sequence[str], **kw):
    """An :class:`AqueousStream` (keywords: ``osmotic``, ``pitzer_parameters``, ...)."""
    return AqueousStream(ions=list(ions), **kw)


def _unit(parent, name: str) -> pyo.Block:
    if parent.component(name) is not None:
        raise InvalidInputError(f"{parent.name} already has a component {name!r}")
    b = pyo.Block()
    parent.add_component(name, b)
    b.inlets, b.outlets, b.decisions = [], [], []
    return b


def _same_state(b, src, dst, *, flow: bool = True, pressure: bool = True) -> None:
    """Constraints ``dst = src`` for concentrations, temperature and optionally flow and pressure."""
    b.eq_conc = pyo.Constraint(src.ions, rule=lambda _, i: dst.conc[i] == src.conc[i])
    b.eq_temperature = pyo.Constraint(expr=dst.temperature == src.temperature)
    if flow:
        b.eq_flow = pyo.Constraint(expr=dst.flow_vol == src.flow_vol)
    if pressure:
        b.eq_pressure = pyo.Constraint(expr=dst.pressure == src.pressure)


def add_feed(parent, name: str, ions: Sequence[str], *, flow_m3_s: float, conc_mol_m3: Mapping[str, float],
             pressure_Pa: float = ATMOSPHERIC_PA, temperature_K: float = 298.15, fix_flow: bool = True, **stream_kw):
    """A feed: one outlet stream with concentrations, pressure and temperature fixed (flow fixed if ``fix_flow``)."""
    b = _unit(parent, name)
    b.outlet = stream(ions, **stream_kw)
    given, _ = canonical_ions(list(conc_mol_m3))
    conc = dict(zip(given, (float(v) for v in conc_mol_m3.values())))
    missing = [i for i in b.outlet.ion_names if i not in conc]
    if missing:
        raise InvalidInputError(f"feed {name!r}: no concentration given for {missing}")
    b.outlet.set_state(flow_m3_s, conc, pressure_Pa, temperature_K, fix=True)
    if not fix_flow:
        b.outlet.flow_vol.unfix()
        b.decisions.append(b.outlet.flow_vol)
    b.outlets.append(b.outlet)
    return b


def add_pump(parent, name: str, ions: Sequence[str], *, efficiency: float = 0.8, max_dp_Pa: float = 40e5,
             **stream_kw):
    """A pump: ``p_out = p_in + dP`` and electric power ``work = Q_in dP / efficiency`` [W].

    ``deltaP`` [Pa] is the unit's decision; ``efficiency`` (pump and motor together) is a mutable Param.
    """
    if not 0 < efficiency <= 1:
        raise InvalidInputError(f"pump {name!r}: efficiency={efficiency!r} must be in (0, 1]")
    b = _unit(parent, name)
    b.inlet, b.outlet = stream(ions, **stream_kw), stream(ions, **stream_kw)
    b.efficiency = pyo.Param(initialize=efficiency, mutable=True, doc="pump x motor efficiency [-]")
    b.deltaP = pyo.Var(initialize=5e5, bounds=(0.0, max_dp_Pa), units=u.Pa, doc="pressure increase [Pa]")
    b.work = pyo.Var(initialize=5e4, bounds=(0.0, None), units=u.W, doc="electric power [W]")
    _same_state(b, b.inlet, b.outlet, pressure=False)
    b.eq_pressure = pyo.Constraint(expr=b.outlet.pressure == b.inlet.pressure + b.deltaP)
    b.eq_work = pyo.Constraint(expr=b.work * b.efficiency == b.inlet.flow_vol * b.deltaP, doc="W eta = Q dP")
    b.inlets.append(b.inlet)
    b.outlets.append(b.outlet)
    b.decisions.append(b.deltaP)
    return b


def add_mixer(parent, name: str, ions: Sequence[str], n_inlets: int = 2, **stream_kw):
    """A mixer of ``n_inlets`` streams: water and ion balances; outlet at the pressure and temperature of inlet 0.

    (Isothermal plant; the other inlets are let down to inlet 0's pressure, e.g. an atmospheric tank.)
    """
    if n_inlets < 1:
        raise InvalidInputError(f"mixer {name!r}: n_inlets={n_inlets!r} must be >= 1")
    b = _unit(parent, name)
    b.inlet_index = pyo.RangeSet(0, n_inlets - 1)
    b.inlet = pyo.Block(b.inlet_index)
    for k in b.inlet_index:
        b.inlet[k].state = stream(ions, **stream_kw)
    b.outlet = stream(ions, **stream_kw)
    ins = [b.inlet[k].state for k in b.inlet_index]
    b.eq_flow = pyo.Constraint(expr=b.outlet.flow_vol == sum(s.flow_vol for s in ins), doc="water balance")
    b.eq_ion = pyo.Constraint(b.outlet.ions, rule=lambda _, i: b.outlet.flow_vol * b.outlet.conc[i] == sum(
        s.flow_vol * s.conc[i] for s in ins), doc="ion balance")
    b.eq_pressure = pyo.Constraint(expr=b.outlet.pressure == ins[0].pressure)
    b.eq_temperature = pyo.Constraint(expr=b.outlet.temperature == ins[0].temperature)
    b.inlets.extend(ins)
    b.outlets.append(b.outlet)
    return b


def add_splitter(parent, name: str, ions: Sequence[str], n_outlets: int = 2, **stream_kw):
    """A splitter: outlet k takes the fraction ``split[k]`` of the inlet (sum = 1), same state otherwise.

    ``split[k]`` for k >= 1 are the unit's decisions (``split[0]`` closes the sum).
    """
    if n_outlets < 2:
        raise InvalidInputError(f"splitter {name!r}: n_outlets={n_outlets!r} must be >= 2")
    b = _unit(parent, name)
    b.inlet = stream(ions, **stream_kw)
    b.outlet_index = pyo.RangeSet(0, n_outlets - 1)
    b.outlet = pyo.Block(b.outlet_index)
    for k in b.outlet_index:
        b.outlet[k].state = stream(ions, **stream_kw)
    b.split = pyo.Var(b.outlet_index, initialize=1.0 / n_outlets, bounds=(0.0, 1.0), doc="split fraction [-]")
    b.eq_split_sum = pyo.Constraint(expr=sum(b.split[k] for k in b.outlet_index) == 1.0)
    b.eq_flow = pyo.Constraint(b.outlet_index, rule=lambda _, k: b.outlet[k].state.flow_vol == b.split[k] * b.inlet.flow_vol)
    b.eq_conc = pyo.Constraint(b.outlet_index, b.inlet.ions, rule=lambda _, k, i: b.outlet[k].state.conc[i] == b.inlet.conc[i])
    b.eq_pressure = pyo.Constraint(b.outlet_index, rule=lambda _, k: b.outlet[k].state.pressure == b.inlet.pressure)
    b.eq_temperature = pyo.Constraint(b.outlet_index, rule=lambda _, k: b.outlet[k].state.temperature == b.inlet.temperature)
    b.inlets.append(b.inlet)
    b.outlets.extend(b.outlet[k].state for k in b.outlet_index)
    b.decisions.extend(b.split[k] for k in b.outlet_index if k >= 1)
    return b


def add_sink(parent, name: str, ions: Sequence[str], **stream_kw):
    """A product or retentate sink: one inlet stream, no equations."""
    b = _unit(parent, name)
    b.inlet = stream(ions, **stream_kw)
    b.inlets.append(b.inlet)
    return b


def connect(parent, name: str, source, destination) -> Arc:
    """Arc ``parent.<name>`` from stream ``source`` to stream ``destination`` (their ports)."""
    if parent.component(name) is not None:
        raise InvalidInputError(f"{parent.name} already has a component {name!r}")
    arc = Arc(source=source.port, destination=destination.port)
    parent.add_component(name, arc)
    return arc


def expand_arcs(model) -> None:
    """Expand every Arc of ``model`` into equality constraints (``network.expand_arcs``)."""
    pyo.TransformationFactory("network.expand_arcs").apply_to(model)
