"""Rejection models for :func:`nanosep.flowsheets.stage.add_nf_stage`.

Each model is a small frozen dataclass with ``build(stage)`` (adds the constraints that determine
``stage.rejection[j]``) and ``initialize(stage)`` (sets its own variables from the current stage
inputs, a forward evaluation, no solve):

* :class:`ConstantRejection`   ``R_j`` = given constants (a stand-in with a closed form);
* :class:`ElementSurrogate`    one element surrogate (seed 002 Table 1, k = 1) at the stage feed,
                               embedded through OMLT (:func:`nanosep.surrogates.embedding.add_surrogate`,
                               formulation ``"full"``, ``"reduced"`` or ``"explicit"``, the last
                               without auxiliary variables, :mod:`nanosep.surrogates.explicit`);
* :class:`ModuleSurrogate`     the same with a module surrogate that also takes ``gamma`` =
                               F_perm / F_feed (seed 002 Table 3);
* :class:`ElementChain`        K element surrogates in series along the channel with ion balances
                               between elements (seed 002 eqs. 1-2, generalised as in
                               :mod:`nanosep.surrogates.module`);
* :class:`TwinRejection`       the exact DSPM-DE equations (:class:`nanosep.transport.pyomo_twin.DSPMDEBlock`).

Surrogate inputs are linked by name (the DESIGN.md vocabulary): ``charge_density_mol_m3`` ->
membrane X, ``thickness_nm`` -> membrane dx, ``flux_um_s`` / ``flux_L_m2_h`` -> stage flux,
``c_<ion>_mol_m3`` -> the element's inlet concentration, ``gamma`` -> stage recovery,
``temperature_K`` -> feed temperature.  Other inputs (e.g. ``pore_radius_nm``) are refused with
:class:`InvalidInputError`.  Ions without a ``rejection_<ion>`` output get their rejection from
permeate electroneutrality (``balance_with``; chosen automatically when exactly one ion lacks an output).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyomo.environ as pyo

from nanosep.errors import InvalidInputError

__all__ = ["ConstantRejection", "ElementChain", "ElementSurrogate", "ModuleSurrogate", "TwinRejection"]

log = logging.getLogger(__name__)
u = pyo.units


# ------------------------------------------------------------------------------ surrogate plumbing
def _input_expression(stage, name: str, conc_of):
    """The flowsheet expression (in the card's physical unit, dimensionless in Pyomo) for input ``name``."""
    mem = stage.membrane
    if name.startswith("c_") and name.endswith("_mol_m3"):
        ion = name[2:-len("_mol_m3")]
        if ion not in stage.feed.ion_names:
            raise InvalidInputError(f"surrogate input {name!r}: ion {ion!r} is not in the stream ions {stage.feed.ion_names}")
        return conc_of(ion) / (u.mol / u.m**3)
    table = {"charge_density_mol_m3": lambda: mem.charge_mol_m3, "thickness_nm": lambda: mem.thickness_nm,
             "flux_um_s": lambda: stage.flux / (u.m / u.s) * 1e6, "flux_L_m2_h": lambda: stage.flux / (u.m / u.s) * 3.6e6,
             "gamma": lambda: stage.gamma, "temperature_K": lambda: stage.feed.temperature / u.K}
    if name not in table:
        raise InvalidInputError(f"surrogate input {name!r} has no counterpart in the flowsheet "
                                f"(linkable: {sorted(table)} and c_<ion>_mol_m3)")
    return table[name]()


def _balance_ion(surrogate, ions: list[str], balance_with: str | None) -> tuple[list[str], str | None]:
    rejected = [n[len("rejection_"):] for n in surrogate.card.output_names if n.startswith("rejection_")]
    with_output = [i for i in ions if i in rejected]
    missing = [i for i in ions if i not in rejected]
    if balance_with is None and len(missing) == 1:
        balance_with = missing[0]
    if balance_with is not None and balance_with not in ions:
        raise InvalidInputError(f"balance_with={balance_with!r} is not one of {ions}")
    left = [i for i in missing if i != balance_with]
    if left:
        raise InvalidInputError(f"surrogate {surrogate.card.name!r} gives no rejection for {left} and only one ion "
                                f"can follow from electroneutrality; outputs: {surrogate.card.output_names}")
    return [i for i in with_output if i != balance_with], balance_with


def _embed(block, stage, surrogate, formulation: str, widen: float, conc_of) -> None:
    from nanosep.surrogates.embedding import add_surrogate

    add_surrogate(block, surrogate, formulation, widen=widen)
    exprs = {n: _input_expression(stage, n, conc_of) for n in surrogate.card.input_names}
    block.link_flowsheet = pyo.Constraint(list(exprs), rule=lambda b, n: b.inputs[n] == exprs[n],
                                          doc="surrogate input = flowsheet quantity")


def _set_inputs(block, surrogate, stage, conc_of) -> None:
    """Surrogate inputs from the current flowsheet values (clipped to the domain), then a forward pass."""
    from nanosep.surrogates.embedding import initialize_from_inputs

    for n in surrogate.card.input_names:
        v = float(pyo.value(_input_expression(stage, n, conc_of)))
        lo, hi = block.inputs[n].bounds
        block.inputs[n].set_value(min(max(v, lo), hi))
    initialize_from_inputs(block, surrogate)


def _permeate_balance(charges: Mapping[str, float], cp_of, ions: list[str]):
    return sum(charges[i] * cp_of(i) for i in ions) == 0


@dataclass(frozen=True)
class ConstantRejection:
    """``R_j = values[j]`` for every ion (canonical or accepted spelling)."""

    values: Mapping[str, float]

    def build(self, stage) -> None:
        from .properties import canonical_ions

        names, _ = canonical_ions(list(self.values))
        vals = dict(zip(names, (float(v) for v in self.values.values())))
        if missing := [i for i in stage.feed.ion_names if i not in vals]:
            raise InvalidInputError(f"ConstantRejection has no value for {missing}")
        stage.eq_rejection_model = pyo.Constraint(stage.feed.ions, rule=lambda b, j: b.rejection[j] == vals[j])

    def initialize(self, stage) -> None:
        for j in stage.feed.ion_names:
            stage.rejection[j].set_value(float(pyo.value(stage.eq_rejection_model[j].upper)))


@dataclass(frozen=True)
class ElementSurrogate:
    """One surrogate at the stage feed; ``stage.surrogate`` is the OMLT block (see the module docstring)."""

    surrogate: Any                      # nanosep.surrogates.onnx_io.Surrogate
    formulation: str = "full"
    balance_with: str | None = None
    widen: float = 0.0
    requires_gamma: bool = field(default=False, repr=False)

    def build(self, stage) -> None:
        names = self.surrogate.card.input_names
        if self.requires_gamma and "gamma" not in names:
            raise InvalidInputError(f"module surrogate {self.surrogate.card.name!r} has no 'gamma' input ({names})")
        if not self.requires_gamma and "gamma" in names:
            raise InvalidInputError(f"surrogate {self.surrogate.card.name!r} takes gamma: use ModuleSurrogate")
        ions = stage.feed.ion_names
        direct, bal = _balance_ion(self.surrogate, ions, self.balance_with)
        stage.surrogate = pyo.Block()
        _embed(stage.surrogate, stage, self.surrogate, self.formulation, self.widen, lambda i: stage.feed.conc[i])
        out = stage.surrogate.outputs
        stage.eq_rejection_model = pyo.Constraint(direct, rule=lambda b, j: b.rejection[j] == out[f"rejection_{j}"])
        if bal is not None:
            z = {i: stage.feed.charge[i] for i in ions}
            stage.eq_electroneutral_permeate = pyo.Constraint(
                expr=_permeate_balance(z, lambda i: stage.permeate.conc[i] / (u.mol / u.m**3), ions),
                doc=f"sum z c_perm = 0 (gives R of {bal})")

    def initialize(self, stage) -> None:
        _set_inputs(stage.surrogate, self.surrogate, stage, lambda i: stage.feed.conc[i])
        ions = stage.feed.ion_names
        direct, bal = _balance_ion(self.surrogate, ions, self.balance_with)
        for j in direct:
            stage.rejection[j].set_value(float(pyo.value(stage.surrogate.outputs[f"rejection_{j}"])))
        if bal is not None:
            c = {i: float(stage.feed.conc[i].value) for i in ions}
            cp = {i: (1 - stage.rejection[i].value) * c[i] for i in direct}
            zb = stage.feed.charge[bal]
            cpb = -sum(stage.feed.charge[i] * cp[i] for i in direct) / zb
            stage.rejection[bal].set_value(1.0 - cpb / c[bal] if c[bal] > 0 else 0.0)


def ModuleSurrogate(surrogate, formulation: str = "full", balance_with: str | None = None,
                    widen: float = 0.0) -> ElementSurrogate:
    """A module surrogate (inputs include ``gamma`` = F_perm / F_feed, seed 002 sec. 2.4) at the stage feed."""
    return ElementSurrogate(surrogate, formulation, balance_with, widen, requires_gamma=True)


@dataclass(frozen=True)
class ElementChain:
    """K element surrogates in series (``stage.chain``), equal area and flux per element.

    Per element k = 1..K and ion j (``c_0`` = stage feed, ``g`` = gamma)::

        c_p,k,j = (1 - R_k,j) c_k-1,j                       R_k from the surrogate at c_k-1
        (1 - k g / K) c_k,j = (1 - (k-1) g / K) c_k-1,j - (g / K) c_p,k,j      (seed 002 eq. 1)
        c_perm,j = mean_k c_p,k,j   i.e.  R_j c_feed,j = c_feed,j - mean_k c_p,k,j

    The retentate concentration then equals ``c_K`` through the stage balance.
    """

    surrogate: Any
    n_elements: int
    formulation: str = "full"
    balance_with: str | None = None
    widen: float = 0.0

    def build(self, stage) -> None:
        if self.n_elements < 1:
            raise InvalidInputError(f"n_elements={self.n_elements!r} must be >= 1")
        if "gamma" in self.surrogate.card.input_names:
            raise InvalidInputError("an element chain needs an element surrogate (no gamma input)")
        ions = stage.feed.ion_names
        direct, bal = _balance_ion(self.surrogate, ions, self.balance_with)
        K = self.n_elements
        stage.chain = ch = pyo.Block()
        ch.elements = pyo.RangeSet(1, K)
        ch.nodes = pyo.RangeSet(0, K)
        ch.conc = pyo.Var(ch.nodes, stage.feed.ions, initialize=1.0, bounds=(0.0, None), units=u.mol / u.m**3,
                          doc="concentration leaving element k (k = 0: stage feed) [mol/m3]")
        ch.conc_perm = pyo.Var(ch.elements, stage.feed.ions, initialize=0.5, bounds=(0.0, None), units=u.mol / u.m**3,
                               doc="permeate concentration of element k [mol/m3]")
        ch.element = pyo.Block(ch.elements)
        for k in ch.elements:
            _embed(ch.element[k], stage, self.surrogate, self.formulation, self.widen, lambda i, k=k: ch.conc[k - 1, i])
        g = stage.gamma
        ch.eq_inlet = pyo.Constraint(stage.feed.ions, rule=lambda b, j: b.conc[0, j] == stage.feed.conc[j])
        ch.eq_element_rejection = pyo.Constraint(ch.elements, direct, rule=lambda b, k, j: b.conc_perm[k, j] == (
            1.0 - b.element[k].outputs[f"rejection_{j}"]) * b.conc[k - 1, j])
        if bal is not None:
            z = {i: stage.feed.charge[i] for i in ions}
            ch.eq_element_electroneutral = pyo.Constraint(ch.elements, rule=lambda b, k: _permeate_balance(
                z, lambda i: b.conc_perm[k, i] / (u.mol / u.m**3), ions))
        ch.eq_ion = pyo.Constraint(ch.elements, stage.feed.ions, rule=lambda b, k, j: (1.0 - k * g / K) * b.conc[k, j] == (
            1.0 - (k - 1) * g / K) * b.conc[k - 1, j] - (g / K) * b.conc_perm[k, j], doc="seed 002 eq. 1 (balance form)")
        stage.eq_rejection_model = pyo.Constraint(stage.feed.ions, rule=lambda b, j: b.rejection[j] * b.feed.conc[j] == (
            b.feed.conc[j] - sum(ch.conc_perm[k, j] for k in ch.elements) / K))

    def initialize(self, stage) -> None:
        ch, K, ions = stage.chain, self.n_elements, stage.feed.ion_names
        direct, bal = _balance_ion(self.surrogate, ions, self.balance_with)
        g = float(stage.gamma.value)
        z = {i: float(stage.feed.charge[i]) for i in ions}
        for j in ions:
            ch.conc[0, j].set_value(float(stage.feed.conc[j].value))
        for k in range(1, K + 1):
            _set_inputs(ch.element[k], self.surrogate, stage, lambda i, k=k: ch.conc[k - 1, i])
            c = {j: float(ch.conc[k - 1, j].value) for j in ions}
            cp = {j: (1.0 - float(pyo.value(ch.element[k].outputs[f"rejection_{j}"]))) * c[j] for j in direct}
            if bal is not None:
                cp[bal] = max(-sum(z[i] * cp[i] for i in direct) / z[bal], 0.0)
            for j in ions:
                ch.conc_perm[k, j].set_value(cp[j])
                ch.conc[k, j].set_value(max(((1 - (k - 1) * g / K) * c[j] - g / K * cp[j]) / (1 - k * g / K), 0.0))
        for j in ions:
            cf = float(stage.feed.conc[j].value)
            stage.rejection[j].set_value(1.0 - np.mean([ch.conc_perm[k, j].value for k in range(1, K + 1)]) / cf)


@dataclass(frozen=True)
class TwinRejection:
    """Exact DSPM-DE rejection (``stage.twin``, flux mode) at the stage feed and flux.

    The twin's membrane (pore radius, effective thickness, dielectric constant, charge density)
    is fixed at build time: it does not follow the membrane block's X / dx decision variables.
    """

    pore_radius_m: float
    thickness_m: float
    pore_dielectric: float
    charge_density_mol_m3: float
    options: Any = None                 # nanosep.transport.TransportOptions
    temperature_K: float = 298.15

    def _case(self) -> dict:
        return {"pore_radius_m": self.pore_radius_m, "thickness_m": self.thickness_m,
                "pore_dielectric": self.pore_dielectric, "charge_density_mol_m3": self.charge_density_mol_m3,
                "temperature_K": self.temperature_K, "options": self.options}

    def build(self, stage) -> None:
        from nanosep.transport.pyomo_twin import DSPMDEBlock

        ions = stage.feed.ion_names
        z = [float(stage.feed.charge[i]) for i in ions]
        n_pos, n_neg = sum(q > 0 for q in z), sum(q < 0 for q in z)
        c0 = [1.0 if q == 0 else 1.0 / abs(q) / (n_pos if q > 0 else n_neg) for q in z]  # electroneutral start guess
        stage.twin = DSPMDEBlock(ions=ions, c_feed=c0, flux_m_s=max(float(stage.flux.value), 1e-9), **self._case())
        tw = stage.twin
        tw.conc_feed.unfix()
        tw.flux_vol.unfix()
        stage.eq_twin_feed = pyo.Constraint(stage.feed.ions, rule=lambda b, j: tw.conc_feed[j] == b.feed.conc[j] / (u.mol / u.m**3))
        stage.eq_twin_flux = pyo.Constraint(expr=tw.flux_vol == stage.flux / (u.m / u.s))
        stage.eq_rejection_model = pyo.Constraint(stage.feed.ions, rule=lambda b, j: b.rejection[j] * tw.conc_feed[j] == (
            tw.conc_feed[j] - tw.conc_perm[j]))

    def initialize(self, stage) -> None:
        from nanosep.transport.pyomo_twin import initialize_from_engine
        from nanosep.transport.solver import solve_batch

        tw, ions = stage.twin, stage.feed.ion_names
        c = np.array([[max(float(stage.feed.conc[i].value), 1e-9) for i in ions]])
        flux = max(float(stage.flux.value), 1e-9)
        for i, ci in zip(ions, c[0]):
            tw.conc_feed[i].set_value(float(ci))
        tw.flux_vol.set_value(flux)
        res = solve_batch(ions, c, flux_m_s=flux, strict=True, **{k: v for k, v in self._case().items() if v is not None})
        initialize_from_engine(tw, res, 0)
        for i in ions:
            stage.rejection[i].set_value(float(pyo.value(tw.rejection[i])))
