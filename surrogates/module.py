"""K-element membrane module: elements in series along the feed channel (seed 002, secs. 2.3-2.4).

A module of recovery ``gamma = F_permeate / F_feed`` (seed 002 eq. 2) is cut into ``K``
equal elements in series.  Every element has the same area and transmembrane velocity, so
each withdraws the same permeate flow ``q = gamma F_feed / K``; the retentate of element
``k`` feeds element ``k + 1``.  With ``F_k = F_feed (1 - k gamma / K)`` the flow leaving
element ``k`` and ``c_k`` its concentrations (``c_0`` = module feed), per ion ``i``::

    permeate of element k:  c_p,k,i = (1 - R_k,i) c_k-1,i          R_k = R(inputs, c_k-1)
    ion balance:            F_k c_k,i = F_k-1 c_k-1,i - q c_p,k,i                          (1')
    module permeate:        c_perm,i = sum_k q c_p,k,i / (gamma F_feed) = mean_k c_p,k,i
    module retentate:       c_ret,i  = c_K,i        (flow (1 - gamma) F_feed)

Dividing (1') by ``F_k`` gives ``c_k = c_k-1 (1 + gamma R_k / (K - k gamma))``.  Seed 002
eq. 1 writes the same recursion with ``c_in(k)`` = concentration *entering* element ``k``
(``c_in(1)`` = feed, so ``c_in(k) = c_k-1``) and ``R(k-1)`` = rejection of element ``k-1``::

    c_in(k) = c_in(k-1) (1 + gamma R(k-1) / (K - (k-1) gamma))                    (seed 002 eq. 1)

i.e. the denominator ``K - (k-1) gamma`` is ``K F / F_feed`` of the stream leaving element
``k-1``.  For one salt the permeate is electroneutral, so both ions share one rejection and
the chain is exactly eq. 1 per ion (checked in ``tests/test_surrogate_module.py``).

Continuous limit (K -> infinity) for a rejection independent of concentration: with ``F``
the local feed-channel flow, ``d(F c) = (1 - R) c dF`` gives ``F dc = -R c dF``, so
``c(F) = c_feed (F / F_feed)^(-R)`` and (:func:`constant_rejection_limit`)::

    c_ret  = c_feed (1 - gamma)^(-R)
    c_perm = c_feed (1 - (1 - gamma)^(1 - R)) / gamma

The chain evaluates each element's rejection at its *inlet* (an explicit, first-order
march in the permeate flow), so the module permeate converges as O(1/K).  The last element
sees the feed fraction ``1 - (K-1) gamma / K``: the local step ``gamma / (K (1 - gamma))``
grows without bound as ``gamma -> 1``, the retentate concentration ``(1 - gamma)^(-R)``
diverges (its flow goes to zero), and the K needed for a given accuracy grows like
``1 / (1 - gamma)``.  Hence ``gamma`` must lie in the open interval (0, 1)
(:data:`GAMMA_OPEN`), and module data sets default to :data:`GAMMA_DATA_RANGE` =
[0.18, 0.95]: the lower end is seed 002's, the upper end caps the retentate at
``20^R`` times the feed instead of seed 002's ``gamma = 1``, whose retentate is undefined.

Element rejections come from an :class:`ElementModel`: :class:`EngineElement` (the exact
transport engine, one batched :func:`nanosep.transport.solve_batch` call per element over
all cases) or :class:`PredictorElement` (any callable ``(B, n_inputs) -> (B, n_outputs)`` in
physical units, e.g. an ONNX surrogate).  :func:`refine_elements` doubles ``K`` until the
module permeate changes by less than a relative tolerance; :func:`generate_module_dataset`
writes module-level data in the DESIGN.md dataset layout.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from nanosep.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: gamma must satisfy 0 < gamma < 1 (gamma = 1 leaves a zero-flow retentate of unbounded concentration)
GAMMA_OPEN = (0.0, 1.0)
#: default gamma range of module data sets: seed 002's lower end, upper end capped below 1 (module docstring)
GAMMA_DATA_RANGE = (0.18, 0.95)
#: relative electroneutrality tolerance of element permeates, |sum z c_p| <= EN_RTOL * sum |z| c_p
EN_RTOL = 1e-6


def concentration_input(name: str) -> str | None:
    """The ion of a ``c_<ion>_mol_m3`` input name, else None."""
    if name.startswith("c_") and name.endswith("_mol_m3"):
        return name[2:-len("_mol_m3")]
    return None


# ------------------------------------------------------------------------------------ elements
@dataclass(frozen=True)
class ElementResult:
    """Rejections of one element for ``B`` cases and ``n`` ions."""

    rejection: np.ndarray                 # (B, n) observed rejection 1 - c_p / c_in, -
    converged: np.ndarray                 # (B,) bool
    reason: np.ndarray                    # (B,) str, "" if converged
    iterations: np.ndarray                # (B,) int, Newton iterations (0 for predictors)


@runtime_checkable
class ElementModel(Protocol):
    """Rejection of one element: ``model(params, c_in) -> ElementResult``.

    ``params`` maps element input names of the DESIGN.md vocabulary (physical units, e.g.
    ``charge_density_mol_m3``, ``thickness_nm``, ``flux_um_s``) to arrays of shape (B,);
    ``c_in`` (B, n) holds the element's inlet concentrations in mol/m3, ions in ``ions`` order.
    """

    ions: tuple[str, ...]
    charges: np.ndarray

    def __call__(self, params: Mapping[str, np.ndarray], c_in: np.ndarray) -> ElementResult: ...


@dataclass(frozen=True)
class EngineElement:
    """Exact element: :func:`nanosep.transport.solve_batch` (one call per element, all cases).

    ``base`` holds the engine arguments (SI) of the fixed membrane and operation; element
    inputs in ``params`` override them per case (``thickness_nm`` -> ``thickness_m`` etc.).
    """

    ions: tuple[str, ...]
    charges: np.ndarray
    base: Mapping[str, Any]
    options: Any = None                  # nanosep.transport.TransportOptions
    ion_db: Any = None                   # nanosep.ions.IonDatabase

    @classmethod
    def from_case(cls, case, ions: Sequence[str] | None = None) -> EngineElement:
        """Element with the membrane, operation and model of a :class:`nanosep.casefile.CaseFile`
        (its first operating point); ``ions`` defaults to the feed ions and the balance ion."""
        e = case.to_engine()
        if "flux_m_s" not in e.drive:
            raise InvalidInputError("module elements run at a given flux; the base case gives a pressure")
        if ions is None:
            ions = list(e.feed)
            if e.balance_with is not None and e.balance_with not in ions:
                ions.append(e.balance_with)
        ions = [e.ion_db.get(i).name for i in ions]
        base = dict(e.membrane.as_kwargs(), flux_m_s=float(np.atleast_1d(e.drive["flux_m_s"])[0]),
                    temperature_K=float(e.temperature_K))
        charges = np.array([e.ion_db.get(i).charge for i in ions], dtype=float)
        return cls(tuple(ions), charges, base, e.options, e.ion_db)

    def engine_kwargs(self, params: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """``solve_batch`` keyword arguments: ``base`` overridden by the SI values of ``params``
        (the name -> argument map of :mod:`nanosep.surrogates.sampling`)."""
        from nanosep.units import lmh_to_m_s

        from .sampling import _ENGINE_ARG

        kw = dict(self.base)
        for name, value in params.items():
            if name == "flux_L_m2_h":
                kw["flux_m_s"] = np.asarray(lmh_to_m_s(np.asarray(value, dtype=float)), dtype=float)
            elif name in _ENGINE_ARG:
                arg, factor = _ENGINE_ARG[name]
                kw[arg] = np.asarray(value, dtype=float) * factor
            else:
                raise InvalidInputError(f"element input {name!r} is not an engine argument; "
                                        f"known: {sorted([*_ENGINE_ARG, 'flux_L_m2_h'])}")
        return kw

    def __call__(self, params: Mapping[str, np.ndarray], c_in: np.ndarray) -> ElementResult:
        from nanosep.transport import TransportOptions, solve_batch

        c_in = np.asarray(c_in, dtype=float)
        B = c_in.shape[0]
        kw = self.engine_kwargs(params)
        # J_v = 0: nothing is convected, permeate = feed, R = 0 (as nanosep.surrogates.sampling)
        run = np.flatnonzero(np.broadcast_to(np.asarray(kw["flux_m_s"], dtype=float), (B,)) != 0.0)
        rej, conv = np.zeros_like(c_in), np.ones(B, dtype=bool)
        reason, iters = np.full(B, "", dtype=object), np.zeros(B, dtype=int)
        if run.size:
            kw = {k: (v[run] if isinstance(v, np.ndarray) and v.ndim == 1 and v.size == B else v)
                  for k, v in kw.items()}
            res = solve_batch(self.ions, c_in[run], **kw, options=self.options or TransportOptions(),
                              ion_db=self.ion_db)
            c = c_in[run]
            with np.errstate(invalid="ignore", divide="ignore"):
                rej[run] = np.where(c > 0, 1.0 - res.c_perm / np.where(c > 0, c, 1.0), 0.0)
            conv[run], reason[run], iters[run] = res.converged, res.reason, res.iterations
        return ElementResult(rej, conv, reason, iters)


@dataclass(frozen=True)
class PredictorElement:
    """Adapter for any predictor ``predict(x) -> y`` in physical units (e.g. an ONNX surrogate).

    ``x`` (B, len(input_names)) is assembled from ``params`` and, for ``c_<ion>_mol_m3``
    inputs, from the element's inlet concentrations; ``y`` columns are ``output_names``
    (``rejection_<ion>``).  The rejection of ``balance_with`` (an ion without an output)
    follows from permeate electroneutrality, ``c_p,b = -sum_(j != b) z_j c_p,j / z_b``;
    ions with neither an output nor the balance role are an error.
    """

    predict: Callable[[np.ndarray], np.ndarray]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    ions: tuple[str, ...]
    charges: np.ndarray
    balance_with: str | None = None

    def __post_init__(self) -> None:
        rejected = {n[len("rejection_"):] for n in self.output_names if n.startswith("rejection_")}
        missing = [i for i in self.ions if i not in rejected and i != self.balance_with]
        if missing:
            raise InvalidInputError(f"predictor outputs {list(self.output_names)} give no rejection for "
                                    f"{missing}; add outputs or set balance_with to one of them")
        if self.balance_with is not None and self.balance_with not in self.ions:
            raise InvalidInputError(f"balance_with={self.balance_with!r} is not one of {list(self.ions)}")
        for name in self.input_names:
            ion = concentration_input(name)
            if ion is not None and ion not in self.ions:
                raise InvalidInputError(f"predictor input {name!r}: ion {ion!r} not in {list(self.ions)}")

    @classmethod
    def from_card(cls, card: Mapping[str, Any], predict: Callable[[np.ndarray], np.ndarray],
                  ions: Sequence[str], charges: Sequence[float], balance_with: str | None = None
                  ) -> PredictorElement:
        """Input/output names from a model card dict (DESIGN.md) and its physical-unit predictor."""
        return cls(predict, tuple(v["name"] for v in card["inputs"]), tuple(v["name"] for v in card["outputs"]),
                   tuple(ions), np.asarray(charges, dtype=float), balance_with)

    @classmethod
    def from_surrogate(cls, surrogate, ions: Sequence[str], charges: Sequence[float],
                       balance_with: str | None = None, policy: str = "raise") -> PredictorElement:
        """Element from a loaded :class:`nanosep.surrogates.onnx_io.Surrogate` (card names,
        ``surrogate.predict(x, policy)``).  Later elements see concentrated feeds: ``policy``
        ("raise", "warn", "clip") decides what happens when they leave the card's domain."""
        card = surrogate.card
        return cls(lambda x: surrogate.predict(x, policy), tuple(card.input_names), tuple(card.output_names),
                   tuple(ions), np.asarray(charges, dtype=float), balance_with)

    def __call__(self, params: Mapping[str, np.ndarray], c_in: np.ndarray) -> ElementResult:
        c_in = np.asarray(c_in, dtype=float)
        B = c_in.shape[0]
        cols = []
        for name in self.input_names:
            ion = concentration_input(name)
            if ion is not None:
                cols.append(c_in[:, self.ions.index(ion)])
            elif name in params:
                cols.append(np.broadcast_to(np.asarray(params[name], dtype=float), (B,)))
            else:
                raise InvalidInputError(f"predictor input {name!r} is missing from the element inputs {sorted(params)}")
        y = np.asarray(self.predict(np.stack(cols, axis=1)), dtype=float).reshape(B, len(self.output_names))
        rej = np.zeros_like(c_in)
        for j, name in enumerate(self.output_names):
            ion = name[len("rejection_"):] if name.startswith("rejection_") else None
            if ion in self.ions and ion != self.balance_with:
                rej[:, self.ions.index(ion)] = y[:, j]
        if self.balance_with is not None:
            b = self.ions.index(self.balance_with)
            cp = (1.0 - rej) * c_in
            cp[:, b] = 0.0
            cpb = -(cp @ self.charges) / self.charges[b]
            with np.errstate(invalid="ignore", divide="ignore"):
                rej[:, b] = np.where(c_in[:, b] > 0, 1.0 - cpb / np.where(c_in[:, b] > 0, c_in[:, b], 1.0), 0.0)
        ok = np.isfinite(rej).all(axis=1)
        reason = np.where(ok, "", "predictor returned a non-finite rejection").astype(object)
        return ElementResult(rej, ok, reason, np.zeros(B, dtype=int))


# ------------------------------------------------------------------------------------ the chain
@dataclass
class ModuleResult:
    """A K-element module for ``B`` cases and ``n`` ions (concentrations in mol/m3)."""

    ions: tuple[str, ...]
    n_elements: int
    gamma: np.ndarray                     # (B,)
    c_feed: np.ndarray                    # (B, n)
    c_permeate: np.ndarray                # (B, n) flow-weighted mixture of the element permeates
    c_retentate: np.ndarray               # (B, n) leaving element K
    converged: np.ndarray                 # (B,) every element converged, balances valid
    reason: np.ndarray                    # (B,) str
    iterations: np.ndarray                # (B,) Newton iterations summed over the elements
    balance_residual: np.ndarray          # (B,) max_i |feed - permeate - retentate|_i / feed_i (ion flows)
    c_inlet: np.ndarray | None = None     # (B, K, n) inlet of each element, c_inlet[:, 0] = feed
    c_permeate_elements: np.ndarray | None = None   # (B, K, n)

    @property
    def rejection(self) -> np.ndarray:
        """Module rejection ``1 - c_permeate / c_feed`` (B, n); NaN for absent ions."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.c_feed > 0, 1.0 - self.c_permeate / self.c_feed, np.nan)


def _check_inputs(c_feed, gamma, n_elements, ions: Sequence[str], n_cases: int = 1
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    from nanosep.transport.solver import feed_matrix

    if isinstance(n_elements, bool) or not isinstance(n_elements, (int, np.integer)) or n_elements < 1:
        raise InvalidInputError(f"n_elements must be an integer >= 1, got {n_elements!r}")
    c = feed_matrix(c_feed, ions)
    g = np.asarray(gamma, dtype=float)
    B = max(c.shape[0], g.size, n_cases)
    g = np.broadcast_to(g, (B,)).copy() if g.size in (1, B) else g
    if g.shape != (B,):
        raise InvalidInputError(f"gamma has {np.size(gamma)} values for {c.shape[0]} cases")
    bad = ~((g > GAMMA_OPEN[0]) & (g < GAMMA_OPEN[1]))
    if bad.any():
        raise InvalidInputError(f"gamma={float(g[bad][0])!r} (case {int(np.flatnonzero(bad)[0])}) outside the open "
                                f"interval (0, 1): gamma = F_permeate / F_feed (seed 002 eq. 2)")
    if c.shape[0] == 1 and B > 1:
        c = np.repeat(c, B, axis=0)
    if c.shape[0] != B:
        raise InvalidInputError(f"c_feed has {c.shape[0]} rows but gamma has {B} values")
    return c, g, int(n_elements)


def _n_cases(params: Mapping[str, Any]) -> int:
    return max([np.size(v) for v in params.values()], default=1)


def _batch_params(params: Mapping[str, Any], B: int) -> dict[str, np.ndarray]:
    out = {}
    for k, v in params.items():
        a = np.asarray(v, dtype=float)
        if a.size not in (1, B):
            raise InvalidInputError(f"element input {k!r} has {a.size} values for {B} cases")
        out[k] = np.broadcast_to(a.reshape(-1), (B,)) if a.size == 1 else a.reshape(B)
    return out


def run_module(element: ElementModel, params: Mapping[str, Any], c_feed, gamma, n_elements: int, *,
               keep_profiles: bool = False, en_rtol: float = EN_RTOL) -> ModuleResult:
    """March the feed through ``n_elements`` elements in series (module docstring, eq. 1').

    element: an :class:`ElementModel`; params: its element inputs other than concentrations
    (scalars or (B,) arrays, physical units); c_feed: (B, n) or (n,) module feed in mol/m3,
    ions in ``element.ions`` order; gamma: module recovery, scalar or (B,), in (0, 1).

    A case whose element fails, whose element permeate is not electroneutral (relative
    ``en_rtol``), or whose rejection exceeds 1 or drains the retentate is marked
    ``converged = False`` with the reason, drops out of later element calls and gets NaN.
    ``keep_profiles`` stores every element's inlet and permeate (B, K, n).
    """
    z = np.asarray(element.charges, dtype=float)
    c0, g, K = _check_inputs(c_feed, gamma, n_elements, element.ions, _n_cases(params))
    B, n = c0.shape
    prm = _batch_params(params, B)
    flow = c0.copy()                           # ion flow leaving the previous element, per unit feed flow
    perm_flow = np.zeros_like(c0)              # accumulated permeate ion flow
    ok = np.ones(B, dtype=bool)
    reason = np.full(B, "", dtype=object)
    iters = np.zeros(B, dtype=int)
    prof_in = np.full((B, K, n), np.nan) if keep_profiles else None
    prof_p = np.full((B, K, n), np.nan) if keep_profiles else None
    q = g / K                                  # permeate flow of each element / feed flow
    for k in range(1, K + 1):
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            break
        f_in = (K - (k - 1) * g[idx]) / K      # feed-channel flow entering element k / feed flow
        c_in = flow[idx] / f_in[:, None]
        res = element({name: v[idx] for name, v in prm.items()}, c_in)
        cp = np.where(c_in > 0, (1.0 - res.rejection) * c_in, 0.0)
        fail = np.full(idx.size, "", dtype=object)
        fail[~res.converged] = [f"element {k}: {r or 'not converged'}" for r in res.reason[~res.converged]]
        imbalance = np.abs(cp @ z) > en_rtol * np.maximum(cp @ np.abs(z), 1e-300)
        fail[(fail == "") & imbalance] = f"element {k}: permeate not electroneutral (rtol {en_rtol:g})"
        fail[(fail == "") & (cp < 0).any(axis=1)] = f"element {k}: rejection > 1 (negative permeate)"
        new_flow = flow[idx] - q[idx, None] * cp
        fail[(fail == "") & (new_flow < 0).any(axis=1)] = f"element {k}: permeate drains the retentate"
        fail[(fail == "") & ~np.isfinite(new_flow).all(axis=1)] = f"element {k}: non-finite permeate"
        good = fail == ""
        gi = idx[good]
        flow[gi] = new_flow[good]
        perm_flow[gi] += q[gi, None] * cp[good]
        iters[idx] += res.iterations
        bad = idx[~good]
        ok[bad], reason[bad] = False, fail[~good]
        if keep_profiles:
            prof_in[idx, k - 1], prof_p[idx, k - 1] = c_in, cp
    c_perm = perm_flow / g[:, None]
    c_ret = flow / (1.0 - g)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        resid = np.nanmax(np.where(c0 > 0, np.abs(c0 - perm_flow - flow) / np.where(c0 > 0, c0, 1.0), 0.0), axis=1)
    c_perm[~ok], c_ret[~ok], resid[~ok] = np.nan, np.nan, np.nan
    if not ok.all():
        log.warning("%d of %d module cases failed (first: %s)", int((~ok).sum()), B, reason[~ok][0])
    return ModuleResult(tuple(element.ions), K, g, c0, c_perm, c_ret, ok, reason, iters, resid, prof_in, prof_p)


def constant_rejection_limit(c_feed, rejection, gamma) -> tuple[np.ndarray, np.ndarray]:
    """K -> infinity module for a concentration-independent rejection ``R`` (module docstring).

    Returns ``(c_permeate, c_retentate)`` = ``(c_feed (1 - (1-gamma)^(1-R)) / gamma,
    c_feed (1-gamma)^(-R))``, from the continuous balance ``F dc/dF = -R c``.
    """
    c, R, g = (np.asarray(a, dtype=float) for a in (c_feed, rejection, gamma))
    return c * (1.0 - (1.0 - g) ** (1.0 - R)) / g, c * (1.0 - g) ** (-R)


# ------------------------------------------------------------------------------------ refinement
@dataclass
class Refinement:
    """Doubling sequence ``K = k_start, 2 k_start, ...`` of module permeates."""

    n_elements: list[int]                 # the K levels computed
    c_permeate: list[np.ndarray]          # per level, (B, n)
    change: list[np.ndarray]              # per level, (B,) max relative change vs the previous level (NaN first)
    k_converged: np.ndarray               # (B,) first K whose change < rtol (0: not reached, -1: case failed)
    rtol: float

    @property
    def converged(self) -> bool:
        """Every case that did not fail reached the tolerance."""
        return bool((self.k_converged != 0).all())

    @property
    def k(self) -> int:
        """The K that satisfies every case (the largest level computed if some case never did)."""
        return int(self.k_converged.max(initial=self.n_elements[0])) if self.converged else self.n_elements[-1]


def relative_change(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Max over ions (with a non-zero permeate) of ``|new - old| / |new|``, per case."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(np.abs(new) > 0, np.abs(new - old) / np.abs(new), 0.0)
    return np.max(r, axis=1)


def refine_elements(element: ElementModel, params: Mapping[str, Any], c_feed, gamma, *, rtol: float = 0.01,
                    k_start: int = 1, k_max: int = 1024) -> Refinement:
    """Double K from ``k_start`` until the module permeate changes by less than ``rtol`` (relative,
    every ion, every case) between K/2 and K, or K would exceed ``k_max``.

    For the first-order chain the change between K/2 and K estimates the error at K
    (``c_K = c_inf + a/K`` gives ``c_K/2 - c_K = a/K``).  Seed 002 sec. 2.3 uses 1 %.
    """
    if not 0 < rtol < 1:
        raise InvalidInputError(f"rtol={rtol!r} must be in (0, 1)")
    if k_max < k_start:
        raise InvalidInputError(f"k_max={k_max!r} is below k_start={k_start!r}")
    c0, g, _ = _check_inputs(c_feed, gamma, k_start, element.ions, _n_cases(params))
    prm = _batch_params(params, len(g))
    levels, perms, changes = [], [], []
    k_conv = np.zeros(len(g), dtype=int)
    K = k_start
    while K <= k_max:
        idx = np.flatnonzero(k_conv >= 0)           # failed cases drop out of later levels
        res = run_module(element, {n: v[idx] for n, v in prm.items()}, c0[idx], g[idx], K)
        perm = np.full_like(c0, np.nan)
        perm[idx] = res.c_permeate
        ch = np.full(len(g), np.nan) if not perms else relative_change(perm, perms[-1])
        k_conv[idx[~res.converged]] = -1
        k_conv[(k_conv == 0) & (ch < rtol)] = K
        levels.append(K), perms.append(perm), changes.append(ch)
        log.info("K = %d: max relative change %.3g", K, float(np.nanmax(ch)) if np.isfinite(ch).any() else np.nan)
        if (k_conv != 0).all():
            break
        K *= 2
    return Refinement(levels, perms, changes, k_conv, rtol)


# ------------------------------------------------------------------------------------ module data
def module_surrogate_case(element_case, gamma_range: tuple[float, float] = GAMMA_DATA_RANGE, *,
                          name: str | None = None, n: int | None = None):
    """The module-level surrogate case: the element case's inputs + ``gamma`` (linear, last),
    the same outputs (now module rejections), the same base and design (``n`` overrides)."""
    from .domain import surrogate_case_from_dict

    lo, hi = gamma_range
    if not GAMMA_OPEN[0] < lo < hi < GAMMA_OPEN[1]:
        raise InvalidInputError(f"gamma_range={gamma_range!r} must satisfy 0 < low < high < 1")
    d = element_case.to_dict()
    if "gamma" in [v["name"] for v in d["inputs"]]:
        raise InvalidInputError(f"surrogate case {d['name']!r} already has a gamma input")
    d["name"] = name or f"{d['name'].removesuffix('_element')}_module"
    d["description"] = (f"Module of K elements in series (surrogates/module.py, seed 002 eq. 1-2) built from "
                        f"{element_case.name}; gamma = F_permeate / F_feed in [{lo:g}, {hi:g}]. Element: "
                        + d.get("description", ""))
    d["inputs"] = [*d["inputs"], {"name": "gamma", "low": lo, "high": hi, "scale": "linear"}]
    if n is not None:
        d["design"] = {**d.get("design", {}), "n": int(n)}
    return surrogate_case_from_dict(d, source=f"module case from {element_case.name}")


def element_case(case):
    """The element-level surrogate case of a module case (its inputs without ``gamma``)."""
    from .domain import surrogate_case_from_dict

    d = case.to_dict()
    d["inputs"] = [v for v in d["inputs"] if v["name"] != "gamma"]
    return surrogate_case_from_dict(d, source=f"element case of {case.name}")


def module_feeds(case, frame) -> np.ndarray:
    """(B, n) module feeds of design rows, ions in ``case.ions`` order: the base feed, the
    ``c_<ion>_mol_m3`` inputs, the base's ``balance_with`` ion closing electroneutrality
    (:func:`nanosep.surrogates.sampling.engine_arguments`)."""
    from .sampling import engine_arguments

    ecase = element_case(case) if "gamma" in case.input_names else case
    batch = engine_arguments(ecase, frame)
    order = [batch.ions.index(i) for i in case.ions]
    return batch.c_feed[:, order]


def module_frame(case, frame, element: ElementModel, n_elements: int) -> pd.DataFrame:
    """Module outputs of design rows (DESIGN.md chunk columns): case_id, inputs,
    ``rejection_<ion>`` (1 - c_permeate / c_feed), ``permeate_<ion>_mol_m3``, converged, reason,
    newton_iterations (summed over the elements)."""
    import pandas as pd

    params = {v.name: frame[v.name].to_numpy(dtype=float) for v in case.inputs
              if v.ion is None and v.name != "gamma"}
    res = run_module(element, params, module_feeds(case, frame), frame["gamma"].to_numpy(dtype=float), n_elements)
    cols: dict[str, Any] = {name: frame[name].to_numpy() for name in ["case_id", *case.input_names]}
    rej = res.rejection
    for j, ion in enumerate(res.ions):
        cols[f"rejection_{ion}"] = rej[:, j]
    for j, ion in enumerate(res.ions):
        cols[f"permeate_{ion}_mol_m3"] = res.c_permeate[:, j]
    cols["converged"] = res.converged
    cols["reason"] = np.asarray([str(r) for r in res.reason], dtype=object)
    cols["newton_iterations"] = res.iterations.astype(np.int64)
    return pd.DataFrame(cols)


def generate_module_dataset(case, out_dir: str | Path, n_elements: int, *, element: ElementModel | None = None,
                            chunk_size: int = 256, progress: Callable[[int, int], None] | None = None) -> Path:
    """Write a module dataset (DESIGN.md layout) for the design of ``case`` (a module case,
    :func:`module_surrogate_case`) with ``n_elements`` elements per module.

    ``element`` defaults to the exact engine on the case's base (:class:`EngineElement`).
    The manifest (format, hash and atomic writers of :mod:`nanosep.surrogates.sampling`, plus a
    ``module`` section) is written first with ``complete: false``; each chunk of ``chunk_size``
    rows is written atomically as it finishes.  A second call with the same case, K and chunk
    size resumes (finished chunks are kept); any mismatch raises
    :class:`~nanosep.surrogates.sampling.DatasetMismatchError`.  ``progress(done, total)`` gets
    case counts.  The chunk loop is this module's (``sampling.run_sampling`` solves one engine
    call per row; a module row is K element calls with the mass balances in between).
    """
    from . import sampling as smp
    from .domain import design

    if "gamma" not in case.input_names:
        raise InvalidInputError(f"surrogate case {case.name!r} has no gamma input; build it with module_surrogate_case")
    if chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be >= 1, got {chunk_size!r}")
    out = Path(out_dir)
    (out / "chunks").mkdir(parents=True, exist_ok=True)
    if element is None:
        element = EngineElement.from_case(case.base_case, ions=case.ions)
    frame = design(case)
    module_feeds(case, frame)                       # validates every row before anything runs
    digest = smp.design_hash(frame)
    n_chunks = -(-len(frame) // chunk_size)
    module = {"n_elements": int(n_elements), "element": type(element).__name__,
              "balance": "seed 002 eq. 1-2, nanosep.surrogates.module"}
    mpath = out / "manifest.json"
    if mpath.exists():
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        mine = {"design_hash": digest, "chunk_size": int(chunk_size), "module": module,
                "surrogate_case": case.to_dict()}
        diff = [k for k, v in mine.items() if manifest.get(k) != v]
        if diff:
            raise smp.DatasetMismatchError(f"{out} holds a different module dataset ({', '.join(diff)} differ); "
                                           "use a new directory or delete it")
    else:
        smp._write_parquet_atomic(frame, out / "design.parquet")
        manifest = {
            "format": smp.FORMAT, "nanosep_version": smp._version(), "git_commit": smp._git_commit(),
            "engine_options": smp._options_dict(getattr(element, "options", None)),
            "surrogate_case": case.to_dict(),
            "design": {"method": case.design.method, "n": len(frame), "seed": case.design.seed},
            "design_hash": digest, "ions": list(case.ions), "chunk_size": int(chunk_size),
            "n_chunks": int(n_chunks), "module": module, "created": smp._now(), "complete": False}
        smp._write_json_atomic(manifest, mpath)
    bounds = [(a, min(a + chunk_size, len(frame))) for a in range(0, len(frame), chunk_size)]
    done = sum(b - a for i, (a, b) in enumerate(bounds) if smp._chunk_done(smp.chunk_path(out, i), b - a))
    if progress:
        progress(done, len(frame))
    for i, (a, b) in enumerate(bounds):
        path = smp.chunk_path(out, i)
        if smp._chunk_done(path, b - a):
            continue
        smp._write_parquet_atomic(module_frame(case, frame.iloc[a:b], element, n_elements), path)
        log.info("module chunk %d/%d written", i + 1, n_chunks)
        done += b - a
        if progress:
            progress(done, len(frame))
    conv, failed = smp._count(out, n_chunks)
    manifest.update(complete=True, updated=smp._now(), n_converged=conv, n_failed=failed)
    smp._write_json_atomic(manifest, mpath)
    return out
