"""The per-output training recipe of a surrogate case file (its optional ``training:`` section).

Seed 002 trains one shallow net for all outputs (sec. 2.2). Where one output is much harder than
the others (the Cl- rejection of the NaCl + Na2SO4 mixture swings from 0.99 to -9 while SO4-2
stays within 0..1), one net per output, each with its own size and Levenberg-Marquardt budget,
merged exactly afterwards (:mod:`nanosep.surrogates.merge`), reaches the issue-3 accuracy with
far fewer weights. The recipe declares it::

    training:
      seed: 0
      validation_fraction: 0.1
      nets:                                   # in output order; each output exactly once
        - {outputs: [rejection_Cl-], hidden: [30, 30], epochs: 300, rounds: 2, round_epochs: 40}
        - {outputs: [rejection_SO4-2], hidden: [20, 20], epochs: 160}
      extra_designs:                          # more samples where the error is (sub-domains)
        - {name: lowcl, n: 8192, seed: 6161, bounds: {c_Cl-_mol_m3: [0.01, 0.05]}}

Residual weights (:func:`nanosep.surrogates.training.fit_lm`): a net fitting ``u = log10(1 - R)``
weighs each residual by ``|dR/du| = ln10 (1 - R)`` (floored at ``weight_floor * ln10``), so the
least-squares fit is in ``R``; then ``rounds`` error-weighted rounds multiply each point's weight
by ``1 + |R error| / error_ref`` (capped at ``weight_cap`` times the base weight), a minimax-like
push on the largest errors. ``warm_output_scaling: refit`` lets a warm start change its output scaling (e.g. after a declared
output cap is widened) by re-targeting the output layers first. ``extra_designs`` are Sobol/LHS designs of the case's domain with
some input bounds narrowed (``nanosep sample CASE --extra NAME``); their data join the pool.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class ExtraDesign(_Section):
    """A design of a sub-domain: the case's inputs with the ``bounds`` given here replaced."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.+-]+$")]
    n: Annotated[int, Field(ge=1)]
    seed: int = 0
    method: Literal["sobol", "lhs"] = "sobol"
    bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> ExtraDesign:
        for k, (lo, hi) in self.bounds.items():
            if not lo < hi:
                raise ValueError(f"extra design {self.name!r}: bounds of {k!r} need low < high, got [{lo}, {hi}]")
        return self


class OutputNet(_Section):
    """One net of the recipe: which outputs it fits, its hidden sizes and its LM budget."""

    outputs: Annotated[list[str], Field(min_length=1)]
    hidden: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)]
    output_activation: Literal["tanh", "identity"] = "tanh"
    epochs: Annotated[int, Field(ge=0)] = 300
    max_fail: Annotated[int, Field(ge=1)] = 8
    restarts: Annotated[int, Field(ge=1)] = 1
    weight_floor: Annotated[float, Field(gt=0)] = 0.2
    rounds: Annotated[int, Field(ge=0)] = 0
    round_epochs: Annotated[int, Field(ge=1)] = 40
    error_ref: Annotated[float, Field(gt=0)] = 0.01
    weight_cap: Annotated[float, Field(ge=1)] = 30.0


class TrainingRecipe(_Section):
    """The ``training:`` section: per-output nets (merged block-diagonally), extra designs."""

    nets: Annotated[list[OutputNet], Field(min_length=1)]
    seed: int = 0
    #: with a warm start: "keep" its output scalings (the nets continue as they are), or "refit" them from
    #: the data and the declared output caps and re-target each net's output layer by weighted least
    #: squares on its last hidden layer (:mod:`nanosep.surrogates.retarget`) before the fits
    warm_output_scaling: Literal["keep", "refit"] = "keep"
    validation_fraction: Annotated[float, Field(gt=0, lt=0.5)] = 0.1
    extra_designs: list[ExtraDesign] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> TrainingRecipe:
        names = [d.name for d in self.extra_designs]
        for i, nm in enumerate(names):
            if nm in names[:i]:
                raise ValueError(f"training.extra_designs: name {nm!r} is used twice")
        return self

    @property
    def output_order(self) -> list[str]:
        """The outputs in the order of the merged net (nets in order, their outputs in order)."""
        return [o for net in self.nets for o in net.outputs]

    def extra(self, name: str) -> ExtraDesign:
        for d in self.extra_designs:
            if d.name == name:
                return d
        raise KeyError(name)
