"""Activity-coefficient models for the transport solver: ideal, Davies, Pitzer.

A model is built once per ion set and temperature with :func:`make_activity_model`
and then evaluated many times, batched: concentrations ``c`` [mol m-3] of shape
``(..., n)`` give ``ln gamma`` of shape ``(..., n)``, and
:meth:`~ActivityModel.ln_gamma_and_jacobian` adds ``d ln gamma_i / d c_j`` of shape
``(..., n, n)``.  Concentrations are converted to molalities inside, with the
dilute approximation of :func:`nanosep.water.molality_from_concentration`
(``m = c / rho_w(T)``).  The Jacobian is a complex-step derivative (exact to
round-off; the formula code is complex-safe, see :mod:`nanosep.transport.mathops`),
except for Pitzer, which has a vectorized analytic Jacobian (the complex-step one stays
available as :meth:`~ActivityModelBase.ln_gamma_and_jacobian_complex_step`).
A model with per-case temperatures (``T`` of shape ``(B,)``) is restricted to a subset
of cases with :meth:`~ActivityModelBase.take` (no re-evaluation of parameters).

Each model's formula is written once against an "ops" namespace, so the same code
yields numpy arrays (:meth:`ln_gamma`) and Pyomo expressions (:meth:`ln_gamma_pyomo`).

Models (``kind``):

``ideal``
    ``ln gamma = 0``.
``davies``
    ``ln gamma_i = -A z_i^2 (sqrt(I)/(1 + sqrt(I)) - 0.3 I)`` (Davies, *Ion
    Association*, 1962), ``A = 3 A_phi(T)`` -- the natural-log Debye-Hueckel slope,
    1.176 kg^0.5 mol^-0.5 at 25 C (0.509 ln 10 = 1.172 in the usual log10 form);
    ``I`` in mol/kg.
``pitzer``
    Pitzer-Kim / Harvie-Moller-Weare multicomponent model, see
    :mod:`nanosep.transport.pitzer`.

Neutral solutes (charge 0) have ``ln gamma = 0`` in every model.  Negative
concentrations (Newton iterates) are accepted; an ionic strength at or below
1e-30 mol/kg is replaced by 1e-30 in the numpy path.
"""
from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from nanosep.transport.mathops import NumpyOps, PyomoOps

from nanosep import water
from nanosep.errors import InvalidInputError

I_TINY = 1.0e-30  #: floor of the ionic strength in the numpy path, mol/kg
_COMPLEX_STEP = 1.0e-30  #: complex-step size, mol/m3
KINDS = ("ideal", "davies", "pitzer")


@runtime_checkable
class ActivityModel(Protocol):
    """What the transport solver needs from an activity model."""

    ions: tuple[str, ...]
    charges: np.ndarray
    T: float

    def ln_gamma(self, c: Any) -> np.ndarray:
        """ln gamma, shape ``(..., n)``, for concentrations ``c`` [mol m-3] of shape ``(..., n)``."""

    def ln_gamma_and_jacobian(self, c: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(ln gamma (..., n), d ln gamma_i / d c_j (..., n, n))``, Jacobian in m3 mol-1."""

    def osmotic_coefficient(self, c: Any) -> np.ndarray:
        """Practical osmotic coefficient phi, shape ``(...)``."""

    def ln_gamma_pyomo(self, c: Sequence[Any]) -> list[Any]:
        """ln gamma as Pyomo expressions of the concentration expressions ``c`` [mol m-3]."""


class ActivityModelBase:
    """Shared machinery: unit conversion, batching, complex-step Jacobian, Pyomo wrapper.

    Subclasses implement ``_ln_gamma_terms(m, ops)`` and ``_osmotic_sum(m, ops)``
    (the sum ``sum_i m_i (phi - 1)``) on a list of per-species molalities.
    """

    kind: str = ""

    def __init__(self, ions: Sequence[str], charges: Sequence[int], T: float) -> None:
        if len(ions) != len(charges):
            raise InvalidInputError(f"{len(ions)} ions {list(ions)} but {len(charges)} charges {list(charges)}")
        z = []
        for name, q in zip(ions, charges):
            if isinstance(q, bool) or not isinstance(q, numbers.Real) or not float(q).is_integer():
                raise InvalidInputError(f"charge of {name!r} must be an integer, got {q!r}")
            z.append(int(q))
        self.ions: tuple[str, ...] = tuple(ions)
        self.charges: np.ndarray = np.array(z, dtype=int)
        self.charges.setflags(write=False)
        # a scalar T gives float parameters (also for Pyomo expressions); an array T of shape (B,)
        # gives per-case parameters that broadcast over a leading batch axis of concentrations (B, n)
        self.T = float(T) if np.ndim(T) == 0 else np.asarray(T, dtype=float)
        self.rho_w = water.density(self.T)  # also validates T
        self.A_phi = water.debye_huckel_aphi(self.T)
        if np.ndim(self.T) == 0:
            self.rho_w, self.A_phi = float(self.rho_w), float(self.A_phi)

    # --- subclass hooks -------------------------------------------------
    def _ln_gamma_terms(self, m: list[Any], ops: Any) -> list[Any]:
        raise NotImplementedError

    def _osmotic_sum(self, m: list[Any], ops: Any) -> Any:
        raise NotImplementedError

    # --- helpers ----------------------------------------------------------
    def _molality(self, c: Any) -> Any:
        """mol m-3 -> mol kg-1 (arrays or Pyomo expressions); the only unit conversion here."""
        if np.ndim(self.T) == 0:
            return water.molality_from_concentration(c, self.T)
        return c / self.rho_w[:, None]   # same dilute approximation, per case

    def _ionic_strength(self, m: list[Any], ops: Any) -> Any:
        terms = [0.5 * zi * zi * mi for zi, mi in zip(self.charges.tolist(), m) if zi != 0]
        return ops.floor(sum(terms) if terms else 0.0 * m[0], I_TINY)

    def _as_batch(self, values: Any, what: str) -> np.ndarray:
        a = np.asarray(values)
        if a.ndim == 0 or a.shape[-1] != len(self.ions):
            raise InvalidInputError(
                f"{what} must have last dimension {len(self.ions)} (ions {list(self.ions)}), got shape {a.shape}"
            )
        return a if np.iscomplexobj(a) else a.astype(float, copy=False)

    def _stack(self, terms: list[Any], like: np.ndarray) -> np.ndarray:
        if not terms:
            return np.zeros(like.shape, like.dtype)
        shape = like.shape[:-1]
        return np.stack([np.broadcast_to(t, shape) for t in terms], axis=-1).astype(like.dtype, copy=False)

    def _take_cases(self, idx: Any) -> None:
        """Hook of :meth:`take`: slice the subclass's per-case parameters (``self`` is the copy)."""

    # --- public API -------------------------------------------------------
    def take(self, idx: Any) -> ActivityModelBase:
        """The model for the cases ``idx`` (int or boolean index into the ``(B,)`` temperatures).

        Per-case parameters are sliced, not re-evaluated; a single-temperature model
        serves every subset and is returned unchanged.
        """
        if np.ndim(self.T) == 0:
            return self
        sub = copy.copy(self)
        sub.T, sub.rho_w, sub.A_phi = self.T[idx], self.rho_w[idx], self.A_phi[idx]
        sub._take_cases(idx)
        return sub

    def ln_gamma_molal_formula(self, m: Any) -> np.ndarray:
        """ln gamma for molalities ``m`` [mol kg-1] of shape ``(..., n)`` from the generic
        (numpy/Pyomo) formula code; complex-safe."""
        a = self._as_batch(m, "molalities")
        return self._stack(self._ln_gamma_terms([a[..., i] for i in range(a.shape[-1])], NumpyOps), a)

    def ln_gamma_molal(self, m: Any) -> np.ndarray:
        """ln gamma for molalities ``m`` [mol kg-1] of shape ``(..., n)``."""
        return self.ln_gamma_molal_formula(m)

    def ln_gamma(self, c: Any) -> np.ndarray:
        """ln gamma for concentrations ``c`` [mol m-3] of shape ``(..., n)``."""
        return self.ln_gamma_molal(self._molality(self._as_batch(c, "concentrations")))

    def ln_gamma_and_jacobian(self, c: Any) -> tuple[np.ndarray, np.ndarray]:
        """ln gamma and its exact Jacobian ``J[..., i, j] = d ln gamma_i / d c_j`` [m3 mol-1]."""
        return self.ln_gamma_and_jacobian_complex_step(c)

    def ln_gamma_complex_step_value(self, c: Any) -> np.ndarray:
        """ln gamma (..., n) exactly as :meth:`ln_gamma_and_jacobian_complex_step` returns it (the real part of its
        first probe, to the last bit), without the other ``n - 1`` probes that only make the Jacobian."""
        a = self._as_batch(c, "concentrations").astype(float)
        first = np.zeros(a.shape[-1])
        first[0] = 1.0
        return self.ln_gamma_molal_formula(self._molality(a + (1j * _COMPLEX_STEP) * first)).real.copy()

    def ln_gamma_and_jacobian_complex_step(self, c: Any) -> tuple[np.ndarray, np.ndarray]:
        """ln gamma and ``d ln gamma_i / d c_j`` [m3 mol-1] by a complex step through the generic
        formula code (exact to round-off; the reference for faster subclass paths)."""
        a = self._as_batch(c, "concentrations").astype(float)
        n = a.shape[-1]
        # probe directions on a leading axis so that per-case parameters (B,) still broadcast
        probe = a[None, ...] + (1j * _COMPLEX_STEP) * np.eye(n).reshape((n,) + (1,) * (a.ndim - 1) + (n,))
        out = self.ln_gamma_molal_formula(self._molality(probe))  # out[j, ..., i] = ln gamma_i(c + i h e_j)
        return out[0].real.copy(), np.moveaxis(out.imag / _COMPLEX_STEP, 0, -1)

    def osmotic_coefficient_molal(self, m: Any) -> np.ndarray:
        """Practical osmotic coefficient for molalities ``m`` [mol kg-1], shape ``(...)``."""
        a = self._as_batch(m, "molalities")
        cols = [a[..., i] for i in range(a.shape[-1])]
        total = sum(cols)
        return 1.0 + self._osmotic_sum(cols, NumpyOps) / total

    def osmotic_coefficient(self, c: Any) -> np.ndarray:
        """Practical osmotic coefficient for concentrations ``c`` [mol m-3]."""
        return self.osmotic_coefficient_molal(self._molality(self._as_batch(c, "concentrations")))

    def ln_gamma_pyomo(self, c: Sequence[Any]) -> list[Any]:
        """ln gamma as Pyomo expressions of concentration expressions ``c`` [mol m-3] (same formula)."""
        if len(c) != len(self.ions):
            raise InvalidInputError(f"expected {len(self.ions)} concentration expressions, got {len(c)}")
        return list(self._ln_gamma_terms([self._molality(ci) for ci in c], PyomoOps))

    def mean_activity_coefficient(self, salt_ions: Sequence[str] | Mapping[str, int], molality: Any) -> np.ndarray:
        """Mean molal activity coefficient of a single salt at salt molality ``molality`` [mol kg-1].

        ``salt_ions`` is ``(cation, anion)`` -- stoichiometry from the charges, e.g.
        Na2SO4 for ``("Na+", "SO4-2")`` -- or a mapping ``{ion: stoichiometric number}``.
        Names must be spelled as in ``self.ions``; the other ions are absent.
        ``gamma_pm = exp(sum nu_i ln gamma_i / sum nu_i)``.
        """
        nu = salt_stoichiometry(salt_ions, dict(zip(self.ions, self.charges.tolist())))
        mol = np.asarray(molality, dtype=float)
        m = np.zeros(mol.shape + (len(self.ions),))
        for ion, v in nu.items():
            m[..., self.ions.index(ion)] = v * mol
        lng = self.ln_gamma_molal(m)
        s = sum(v * lng[..., self.ions.index(ion)] for ion, v in nu.items())
        return np.exp(s / sum(nu.values()))


def salt_stoichiometry(salt_ions: Sequence[str] | Mapping[str, int], charges: Mapping[str, int]) -> dict[str, int]:
    """Stoichiometric numbers of a neutral salt: ``("Ca+2", "Cl-") -> {"Ca+2": 1, "Cl-": 2}``."""
    for ion in salt_ions:
        if ion not in charges:
            raise InvalidInputError(f"salt ion {ion!r} is not among the model ions {list(charges)}")
    if isinstance(salt_ions, Mapping):
        nu = {k: int(v) for k, v in salt_ions.items()}
    else:
        if len(salt_ions) != 2:
            raise InvalidInputError(f"give (cation, anion) or a mapping ion -> stoichiometry, got {salt_ions!r}")
        zc, za = charges[salt_ions[0]], charges[salt_ions[1]]
        if zc * za >= 0:
            raise InvalidInputError(f"salt {salt_ions!r} needs one cation and one anion, charges {zc}, {za}")
        g = math.gcd(abs(zc), abs(za))
        nu = {salt_ions[0]: abs(za) // g, salt_ions[1]: abs(zc) // g}
    if sum(v * charges[k] for k, v in nu.items()) != 0:
        raise InvalidInputError(f"salt {nu} is not electroneutral")
    return nu


class IdealActivity(ActivityModelBase):
    """``ln gamma = 0`` for every species; ``phi = 1``."""

    kind = "ideal"

    def _ln_gamma_terms(self, m: list[Any], ops: Any) -> list[Any]:
        return [0.0 * mi for mi in m] if ops is NumpyOps else [0.0 for _ in m]

    def _osmotic_sum(self, m: list[Any], ops: Any) -> Any:
        return 0.0 * m[0]


class DaviesActivity(ActivityModelBase):
    """Davies (1962) equation with the temperature-dependent slope ``A = 3 A_phi(T)``."""

    kind = "davies"

    @property
    def A_gamma(self) -> float:
        """Natural-log Debye-Hueckel slope ``3 A_phi``, kg^0.5 mol^-0.5."""
        return 3.0 * self.A_phi

    def _ln_gamma_terms(self, m: list[Any], ops: Any) -> list[Any]:
        s = ops.sqrt(self._ionic_strength(m, ops))
        f = s / (1.0 + s) - 0.3 * s * s
        return [-self.A_gamma * zi * zi * f if zi != 0 else 0.0 * mi for zi, mi in zip(self.charges.tolist(), m)]

    def _osmotic_sum(self, m: list[Any], ops: Any) -> Any:
        """``sum m_i (phi-1) = -2A [I f(I) - int_0^I f]`` (Gibbs-Duhem on the Davies ln gamma)."""
        I = self._ionic_strength(m, ops)
        s = ops.sqrt(I)
        inner = I * s / (1.0 + s) - 0.15 * I * I - I + 2.0 * s - 2.0 * ops.log(1.0 + s)
        return -2.0 * self.A_gamma * inner


def make_activity_model(
    kind: str,
    ions: Sequence[str],
    charges: Sequence[int] | None = None,
    T: float = 298.15,
    **options: Any,
) -> ActivityModelBase:
    """Build an activity model for ``ions`` (canonical names) at temperature ``T`` [K].

    Args:
        kind: ``"ideal"``, ``"davies"`` or ``"pitzer"``.
        ions: species names; for ``pitzer`` they select the interaction parameters.
        charges: valences; default: looked up in :meth:`nanosep.ions.IonDatabase.default`.
        T: temperature in K (273-373).
        options: passed to the model (``pitzer``: ``parameters=`` a parameter-set name
            or :class:`~nanosep.transport.pitzer.PitzerParameters`).
    """
    if charges is not None and np.ndim(charges) == 0:
        raise InvalidInputError(
            f"charges must be a sequence of integers, got {charges!r}; "
            f"pass the temperature by keyword: make_activity_model({kind!r}, ions, T={charges!r})"
        )
    if charges is None:
        from nanosep.ions import IonDatabase

        db = IonDatabase.default()
        charges = [db.get(name).charge for name in ions]
    if kind == "ideal":
        cls: type[ActivityModelBase] = IdealActivity
    elif kind == "davies":
        cls = DaviesActivity
    elif kind == "pitzer":
        from nanosep.transport.pitzer import PitzerActivity

        cls = PitzerActivity
    else:
        raise InvalidInputError(f"unknown activity model kind {kind!r}; choose one of {KINDS}")
    if options and kind != "pitzer":
        raise InvalidInputError(f"activity model {kind!r} takes no options, got {sorted(options)}")
    return cls(ions, charges, T, **options)


def mean_activity_coefficient(
    salt_ions: Sequence[str] | Mapping[str, int],
    molality: Any,
    *,
    kind: str = "pitzer",
    T: float = 298.15,
    **options: Any,
) -> np.ndarray:
    """Mean molal activity coefficient of one salt in water, e.g. ``(("Na+", "Cl-"), 1.0)``.

    Builds a ``kind`` model for the salt's ions only (any accepted spelling); see
    :meth:`ActivityModelBase.mean_activity_coefficient`.
    """
    from nanosep.ions import IonDatabase

    db = IonDatabase.default()
    if isinstance(salt_ions, Mapping):
        salt: Sequence[str] | Mapping[str, int] = {db.canonical(k): v for k, v in salt_ions.items()}
    else:
        salt = [db.canonical(k) for k in salt_ions]
    return make_activity_model(kind, list(salt), T=T, **options).mean_activity_coefficient(salt, molality)
