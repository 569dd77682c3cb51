"""Pitzer-Kim multicomponent activity model (Harvie, Moller & Weare form).

Equations (molalities m [mol kg-1], I = 1/2 sum m_i z_i^2, Z = sum m_i |z_i|,
b = 1.2; Harvie, Moller & Weare, Geochim. Cosmochim. Acta 48 (1984) 723,
eqs. 1-11; Pitzer, *Activity Coefficients in Electrolyte Solutions*, 2nd ed.,
CRC 1991, ch. 3; seed 003 Appendix A, eqs. A.1-A.15 with its typos corrected)::

    F = -A_phi [sqrt(I)/(1 + b sqrt(I)) + (2/b) ln(1 + b sqrt(I))]
        + sum_c sum_a m_c m_a B'_ca + sum_{c<c'} m_c m_c' Phi'_cc' + sum_{a<a'} m_a m_a' Phi'_aa'
    ln g_M = z_M^2 F + sum_a m_a (2 B_Ma + Z C_Ma) + sum_c m_c (2 Phi_Mc + sum_a m_a psi_Mca)
             + sum_{a<a'} m_a m_a' psi_aa'M + |z_M| sum_c sum_a m_c m_a C_ca        (anions alike)
    sum_i m_i (phi - 1) = 2 [ -A_phi I^1.5/(1 + b sqrt(I)) + sum_c sum_a m_c m_a (B^phi_ca + Z C_ca)
             + sum_{c<c'} m_c m_c' (Phi^phi_cc' + sum_a m_a psi_cc'a) + (anion pairs alike) ]
    B = b0 + b1 g(a1 sqrt I) + b2 g(a2 sqrt I);  B' = [b1 g'(a1 sqrt I) + b2 g'(a2 sqrt I)] / I
    B^phi = b0 + b1 exp(-a1 sqrt I) + b2 exp(-a2 sqrt I);  C = C^phi / (2 sqrt|z_M z_X|)
    g(x) = 2 [1 - (1 + x) e^-x] / x^2;  g'(x) = -2 [1 - (1 + x + x^2/2) e^-x] / x^2
    Phi = theta + Etheta(I);  Phi' = Etheta'(I);  Phi^phi = theta + Etheta + I Etheta'
    Etheta_ij = z_i z_j / (4 I) [J(x_ij) - J(x_ii)/2 - J(x_jj)/2],  x_ij = 6 z_i z_j A_phi sqrt(I)
    Etheta'_ij = -Etheta_ij / I + z_i z_j / (8 I^2) [x_ij J'(x_ij) - x_ii J'(x_ii)/2 - x_jj J'(x_jj)/2]

Choices:

* ``J(x)``: Pitzer's closed form (Pitzer, J. Solution Chem. 4 (1975) 249, eq. 47),
  ``J(x) = x / (4 + 4.581 x^-0.7237 exp(-0.0120 x^0.528))``, and its exact
  derivative -- smooth and branch-free, so the Pyomo expression is smooth.  It
  differs from the exact integral (and from Harvie's Chebyshev fit used by
  PHREEQC) by < 1.5 % of J for x >= 0.05 (7 % at x = 0.01, where J < 1e-4); in
  sea water this changes ln gamma by < 1e-3 (Mg, Ca, SO4) and 1.3e-4 (Na, Cl).
* alpha: as PHREEQC (src/pitzer.cpp, ``pitzer_tidy``): alpha1 = 2 if either ion is
  univalent, 1.4 for 2-2 pairs, 2 otherwise; alpha2 = 12 (univalent and 2-2
  pairs) or 50 (higher).  beta2 is used only if the parameter set gives it
  (PHREEQC 2025: CaCl2, CaSO4, MgSO4).
* Temperature: PHREEQC function ``P(T) = A0 + A1 (1/T - 1/Tr) + A2 ln(T/Tr) +
  A3 (T - Tr) + A4 (T^2 - Tr^2) + A5 (1/T^2 - 1/Tr^2)``, Tr = 298.15 K.
* A_phi(T) from :func:`nanosep.water.debye_huckel_aphi` (0.3921 at 25 C; PHREEQC
  uses 0.392 there).
* No MacInnes scaling of single-ion coefficients (PHREEQC applies it by default);
  mean activity and osmotic coefficients are unaffected by that convention.
* Numerics: ln gamma and its analytic Jacobian in real arithmetic
  (:meth:`PitzerActivity.ln_gamma_and_jacobian`; ``d/dI`` of ``B'`` and ``E-theta'``
  from ``g'`` and the exact second derivative of the closed-form ``J``); the same
  equations written once for numpy/Pyomo serve the Pyomo twin and, by a complex step,
  as the reference Jacobian.
* Missing cation-anion parameters are zero (a warning is logged once per pair);
  missing theta and psi are zero silently; E-theta is always included.
  Neutral solutes have ln gamma = 0 (no lambda/zeta parameters).

Default parameter set: PHREEQC ``pitzer.dat`` as of 2025 (``data/pitzer_parameters_phreeqc.csv``).
"""
from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import numpy as np

from nanosep.transport.activity import I_TINY, ActivityModelBase
from nanosep.transport.mathops import NumpyOps, polyval

from nanosep.constants import T_REF
from nanosep.errors import InvalidInputError, UnknownIonError
from nanosep.names import canonical_ion_name as _canonical_ion_name
from nanosep.names import split_ion_name as _split_ion_name

# pure functions of a name, called for every pair each time a model is built (the engine builds
# one per subset of cases): memoized
canonical_ion_name = lru_cache(maxsize=4096)(_canonical_ion_name)
split_ion_name = lru_cache(maxsize=4096)(_split_ion_name)

log = logging.getLogger(__name__)

PARAMETER_SETS = ("phreeqc2025", "phreeqc2012", "may2011")
DEFAULT_PARAMETER_SET = "phreeqc2025"
#: the models' default: PHREEQC pitzer.dat (2025) with the cation-anion pairs it lacks (e.g. every
#: nitrate: Na+, K+, Li+, Mg+2, Ca+2 with NO3-) filled from May et al. 2011 at their 25 C values
DEFAULT_PARAMETERS = ("phreeqc2025", "may2011")
B_PITZER = 1.2  #: kg^0.5 mol^-0.5, universal Pitzer constant b

# Pitzer (1975) eq. 47 constants of the closed-form J(x)
_J_C1, _J_C2, _J_C3, _J_C4 = 4.581, 0.7237, 0.0120, 0.528

_SERIES_SWITCH = 0.02  # below this argument g and g' use their Taylor series (numpy path)
_N_SERIES = 12
_warned: set[tuple[str, str]] = set()


def _series_coefficients() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Taylor coefficients of g(x) and g'(x) about 0 (exact rationals, then float)."""
    fact = [math.factorial(k) for k in range(_N_SERIES + 4)]
    g = tuple(float(Fraction(2 * (-1) ** j * (j + 1), fact[j + 2])) for j in range(_N_SERIES))

    def a(k: int) -> Fraction:  # coefficient of x^k in 1 - (1 + x + x^2/2) e^-x
        s = Fraction((-1) ** k, fact[k])
        if k >= 1:
            s += Fraction((-1) ** (k - 1), fact[k - 1])
        if k >= 2:
            s += Fraction((-1) ** (k - 2), 2 * fact[k - 2])
        return (1 if k == 0 else 0) - s

    gp = tuple(float(-2 * a(k + 2)) for k in range(_N_SERIES))  # g'(x) = -2 sum_k a(k+2) x^k
    return g, gp


_G_SERIES, _GP_SERIES = _series_coefficients()


def pitzer_g(x: Any, ops: Any) -> Any:
    """``g(x) = 2 [1 - (1 + x) exp(-x)] / x^2`` (HMW 1984 eq. 7; seed eq. A.9)."""
    return ops.stable(
        x, _SERIES_SWITCH, lambda t: polyval(_G_SERIES, t), lambda t: 2.0 * (1.0 - (1.0 + t) * ops.exp(-t)) / (t * t)
    )


def pitzer_gprime(x: Any, ops: Any) -> Any:
    """``g'(x) = -2 [1 - (1 + x + x^2/2) exp(-x)] / x^2`` (HMW 1984 eq. 8; seed eq. A.10)."""
    return ops.stable(
        x,
        _SERIES_SWITCH,
        lambda t: polyval(_GP_SERIES, t),
        lambda t: -2.0 * (1.0 - (1.0 + t + 0.5 * t * t) * ops.exp(-t)) / (t * t),
    )


def etheta_terms(x: Any, ops: Any) -> tuple[Any, Any]:
    """``(J(x), x J'(x))`` of Pitzer's (1975) closed form ``J = x / (4 + C1 x^-C2 exp(-C3 x^C4))``.

    The derivative is exact: ``x J' = J + J e (C2 + C3 C4 x^C4) / (4 + e)`` with
    ``e = C1 x^-C2 exp(-C3 x^C4)``; the powers are shared through ``log x``.
    """
    j, xjp, _ = _etheta_parts(x, ops)
    return j, xjp


def _etheta_parts(x: Any, ops: Any) -> tuple[Any, Any, tuple[Any, Any, Any, Any]]:
    """``J``, ``x J'`` and the intermediates ``(p, e, d, u)`` they share."""
    lx = ops.log(x)
    p = ops.exp(_J_C4 * lx)  # x^C4
    e = _J_C1 * ops.exp(-_J_C2 * lx - _J_C3 * p)
    d = 4.0 + e
    j = x / d
    u = _J_C2 + _J_C3 * _J_C4 * p
    return j, j + j * e * u / d, (p, e, d, u)


def etheta_terms_d2(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(J, K, x dK/dx)`` with ``K = x J'`` (numpy), for the analytic Jacobian.

    With the Euler operator ``D = x d/dx``: ``D e = -e u``, ``D u = C3 C4^2 x^C4``,
    ``D K = K + (e/d) [u K - 4 J u^2 / d + C3 C4^2 x^C4 J]`` (exact for the closed form).
    """
    j, k, (p, e, d, u) = _etheta_parts(x, NumpyOps)
    return j, k, k + (e / d) * (u * k - 4.0 * j * u * u / d + (_J_C3 * _J_C4 * _J_C4) * p * j)


def etheta_J(x: Any, ops: Any) -> Any:
    """Pitzer (1975) closed-form approximation of ``J0(x)``."""
    return etheta_terms(x, ops)[0]


def etheta_xJprime(x: Any, ops: Any) -> Any:
    """``x dJ/dx`` of :func:`etheta_J` (exact derivative of the closed form)."""
    return etheta_terms(x, ops)[1]


def etheta(
    zi: int, zj: int, I: Any, sqrt_I: Any, A_phi: float, ops: Any, cache: dict[int, tuple[Any, Any]] | None = None
) -> tuple[Any, Any]:
    """Unsymmetric mixing terms ``(E-theta, E-theta')`` for a like-sign pair (Pitzer 1975).

    ``cache`` (one dict per evaluation) shares ``J`` between pairs with the same
    ``x = 6 z z' A_phi sqrt(I)``.
    """
    cache = {} if cache is None else cache

    def jt(k: int) -> tuple[Any, Any]:
        if k not in cache:
            cache[k] = etheta_terms(6.0 * k * A_phi * sqrt_I, ops)
        return cache[k]

    (j_ij, d_ij), (j_ii, d_ii), (j_jj, d_jj) = jt(zi * zj), jt(zi * zi), jt(zj * zj)
    et = zi * zj / (4.0 * I) * (j_ij - 0.5 * j_ii - 0.5 * j_jj)
    etp = -et / I + zi * zj / (8.0 * I * I) * (d_ij - 0.5 * d_ii - 0.5 * d_jj)
    return et, etp


def phreeqc_temperature_function(coeffs: Sequence[float], T: float, Tr: float = T_REF) -> float:
    """PHREEQC PITZER temperature function ``P(T)`` from ``(A0, ..., A5)`` (missing A's are 0)."""
    a = list(coeffs) + [0.0] * (6 - len(coeffs))
    return (
        a[0]
        + a[1] * (1.0 / T - 1.0 / Tr)
        + a[2] * (math.log(T / Tr) if np.ndim(T) == 0 else np.log(T / Tr))
        + a[3] * (T - Tr)
        + a[4] * (T * T - Tr * Tr)
        + a[5] * (1.0 / (T * T) - 1.0 / (Tr * Tr))
    )


def phreeqc_temperature_functions(coeffs: np.ndarray, T: Any, Tr: float = T_REF) -> np.ndarray:
    """:func:`phreeqc_temperature_function` for many parameters at once.

    ``coeffs`` has shape ``(K, 6)``; returns shape ``(K,)`` for a scalar ``T`` and
    ``(B, K)`` for ``T`` of shape ``(B,)`` (same operation order, so the same values).
    """
    a = np.asarray(coeffs, dtype=float)
    t = np.asarray(T, dtype=float)[..., None]
    return (
        a[:, 0]
        + a[:, 1] * (1.0 / t - 1.0 / Tr)
        + a[:, 2] * np.log(t / Tr)
        + a[:, 3] * (t - Tr)
        + a[:, 4] * (t * t - Tr * Tr)
        + a[:, 5] * (1.0 / (t * t) - 1.0 / (Tr * Tr))
    )


def pitzer_alphas(z_cation: int, z_anion: int) -> tuple[float, float]:
    """``(alpha1, alpha2)`` by the PHREEQC rule (see module docstring)."""
    zc, za = abs(z_cation), abs(z_anion)
    if zc == 1 or za == 1:
        return 2.0, 12.0
    if zc == 2 and za == 2:
        return 1.4, 12.0
    return 2.0, 50.0


Coeffs = tuple[float, ...]


@dataclass(frozen=True)
class PitzerParameters:
    """Interaction parameters with PHREEQC temperature coefficients ``(A0, ..., A5)``.

    Keys use canonical ion names: ``binary[frozenset({c, a})][kind]`` with ``kind`` in
    ``beta0, beta1, beta2, Cphi``; ``theta[frozenset({i, j})]``; ``psi[(frozenset({i, j}), k)]``
    with ``i, j`` of like sign and ``k`` of the other sign.
    """

    label: str
    binary: Mapping[frozenset[str], Mapping[str, Coeffs]] = field(default_factory=dict)
    theta: Mapping[frozenset[str], Coeffs] = field(default_factory=dict)
    psi: Mapping[tuple[frozenset[str], str], Coeffs] = field(default_factory=dict)
    reference_T_only: bool = False  #: True if the values are 25 C values without T dependence
    #: binary pairs (of a combined set) whose values are 25 C values without T dependence
    reference_T_only_pairs: frozenset = frozenset()

    @staticmethod
    @cache
    def load(name: str = DEFAULT_PARAMETER_SET) -> PitzerParameters:
        """A packaged parameter set: ``phreeqc2025``, ``phreeqc2012`` or ``may2011`` (25 C binary only)."""
        if name in ("phreeqc2025", "phreeqc2012"):
            return _load_phreeqc(name[-4:])
        if name == "may2011":
            return _load_may2011()
        raise InvalidInputError(f"unknown Pitzer parameter set {name!r}; choose one of {PARAMETER_SETS}")

    def combined_with(self, fallback: PitzerParameters) -> PitzerParameters:
        """Parameters of ``self``, with pairs/triplets absent here taken from ``fallback``."""
        return PitzerParameters(
            label=f"{self.label}+{fallback.label}",
            binary={**fallback.binary, **self.binary},
            theta={**fallback.theta, **self.theta},
            psi={**fallback.psi, **self.psi},
            reference_T_only=self.reference_T_only,
            reference_T_only_pairs=self.reference_T_only_pairs | frozenset(
                k for k in fallback.binary if k not in self.binary
                and (fallback.reference_T_only or k in fallback.reference_T_only_pairs)),
        )


def _data_rows(name: str) -> list[dict[str, str]]:
    with resources.files("nanosep").joinpath("data", name).open("r", encoding="utf-8") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def _canon(name: str) -> str:
    return canonical_ion_name(name)


def _load_phreeqc(year: str) -> PitzerParameters:
    binary: dict[frozenset[str], dict[str, Coeffs]] = {}
    theta: dict[frozenset[str], Coeffs] = {}
    psi: dict[tuple[frozenset[str], str], Coeffs] = {}
    for row in _data_rows("pitzer_parameters_phreeqc.csv"):
        if not row["database_version"].startswith(f"phreeqc3_pitzer.dat_{year}"):
            continue
        coeffs = tuple(float(row[k] or 0.0) for k in ("value_25C_A0", "A1", "A2", "A3", "A4", "A5"))
        species = [_canon(row[k]) for k in ("species_1", "species_2", "species_3") if row[k]]
        kind = row["parameter"]
        if kind in ("beta0", "beta1", "beta2", "Cphi"):
            binary.setdefault(frozenset(species), {})[kind] = coeffs
        elif kind == "theta":
            theta[frozenset(species)] = coeffs
        elif kind == "psi":
            signs = [split_ion_name(s)[1] > 0 for s in species]
            odd = [s for s, pos in zip(species, signs) if signs.count(pos) == 1]
            like = [s for s, pos in zip(species, signs) if signs.count(pos) == 2]
            psi[(frozenset(like), odd[0])] = coeffs
    return PitzerParameters(label=f"phreeqc{year}", binary=binary, theta=theta, psi=psi)


def _is_known(name: str) -> bool:
    try:
        canonical_ion_name(name)
        return True
    except UnknownIonError:
        return False


def _split_salt(salt: str) -> tuple[str, str]:
    """Canonical ``(cation, anion)`` of a neutral salt formula: ``"Mg(NO3)2" -> ("Mg+2", "NO3-")``.

    The reading whose ions are known and balance the charges is taken (``MgCl2`` is
    Mg + 2 Cl, ``Na2SO4`` is 2 Na + SO4).
    """
    m = re.match(r"^(NH4|[A-Z][a-z]?)(\d*)(?:\(([A-Za-z0-9]+)\)(\d+)|([A-Za-z0-9]+?)(\d*))$", salt)
    if m is None:
        raise InvalidInputError(f"cannot split salt formula {salt!r}")
    cat, n_cat = m.group(1), int(m.group(2) or 1)
    readings = [(m.group(3), int(m.group(4)))] if m.group(3) else []
    if m.group(5):
        readings += [(m.group(5) + m.group(6), 1), (m.group(5), int(m.group(6) or 1))]
    for an, n_an in readings:
        try:
            c, a = _canon(cat), _canon(an)
        except UnknownIonError:
            continue
        if n_cat * split_ion_name(c)[1] + n_an * split_ion_name(a)[1] == 0:
            return c, a
    raise InvalidInputError(f"cannot read salt formula {salt!r} as a neutral cation-anion pair of known ions")


def _load_may2011() -> PitzerParameters:
    binary: dict[frozenset[str], dict[str, Coeffs]] = {}
    for row in _data_rows("pitzer_binary_May2011_via_pyEQL.csv"):
        if not row["beta0"]:
            continue
        key = frozenset(_split_salt(row["salt"]))
        binary[key] = {k: (float(row[k]),) for k in ("beta0", "beta1", "beta2", "Cphi")}
    return PitzerParameters(label="may2011", binary=binary, reference_T_only=True)


def _resolve_parameters(parameters: str | PitzerParameters | Sequence[str]) -> PitzerParameters:
    if isinstance(parameters, PitzerParameters):
        return parameters
    if isinstance(parameters, str):
        return PitzerParameters.load(parameters)
    return _combined_sets(tuple(parameters))


@cache
def _combined_sets(names: tuple[str, ...]) -> PitzerParameters:
    out = PitzerParameters.load(names[0])
    for name in names[1:]:
        out = out.combined_with(PitzerParameters.load(name))
    return out


_BINARY_KINDS = ("beta0", "beta1", "beta2", "Cphi")


@dataclass(frozen=True)
class _PitzerTables:
    """Temperature-independent structure of a Pitzer model for one ion set (index arrays).

    Pairs with all parameters zero (and symmetric like-sign pairs without theta) are left
    out; they contribute exactly zero.  ``coeffs`` stacks the PHREEQC temperature
    coefficients of ``beta0, beta1, beta2, Cphi`` (cation-anion pairs), ``theta`` (like
    pairs) and ``psi`` (triplets), in that order.
    """

    n: int
    z: tuple[int, ...]
    ca: np.ndarray  #: (Pc, 2) cation, anion index
    alphas: np.ndarray  #: (A,) distinct alpha values
    alpha_idx: np.ndarray  #: (Pc, 2) indices into ``alphas`` of alpha1, alpha2
    beta2: tuple[bool, ...]  #: (Pc,) pair has a beta2
    c_den: np.ndarray  #: (Pc,) 2 sqrt|z_c z_a|:  C = Cphi / c_den
    like: np.ndarray  #: (Pl, 2) like-sign pair indices
    ks: np.ndarray  #: (K,) distinct charge products z z' entering E-theta
    k_idx: np.ndarray  #: (Pl, 3) indices into ``ks`` of z_i z_j, z_i^2, z_j^2
    zz: np.ndarray  #: (Pl,) z_i z_j
    psi: np.ndarray  #: (Ps, 3) like pair i, j and the odd ion o
    coeffs: np.ndarray  #: (4 Pc + Pl + Ps, 6)
    missing: tuple[tuple[str, str], ...]  #: cation-anion pairs without parameters


def _zeros6() -> Coeffs:
    return (0.0,) * 6


def _six(coeffs: Coeffs | None) -> Coeffs:
    if not coeffs:
        return _zeros6()
    return tuple(float(v) for v in coeffs) + (0.0,) * (6 - len(coeffs))


def _build_tables(keys: tuple[str, ...], z: tuple[int, ...], p: PitzerParameters) -> _PitzerTables:
    n = len(z)
    cations = [i for i, q in enumerate(z) if q > 0]
    anions = [i for i, q in enumerate(z) if q < 0]
    ca, alpha_pairs, c_den, missing = [], [], [], []
    binary: list[list[Coeffs]] = [[], [], [], []]
    for c in cations:
        for a in anions:
            rec = p.binary.get(frozenset((keys[c], keys[a])))
            if rec is None:
                missing.append((keys[c], keys[a]))
                continue
            rows = [_six(rec.get(k)) for k in _BINARY_KINDS]
            if not any(any(r) for r in rows):
                continue
            ca.append((c, a))
            alpha_pairs.append(pitzer_alphas(z[c], z[a]))
            c_den.append(2.0 * math.sqrt(abs(z[c] * z[a])))
            for lst, r in zip(binary, rows):
                lst.append(r)
    alpha_values = sorted({a for pair in alpha_pairs for a in pair})
    alpha_idx = [[alpha_values.index(a) for a in pair] for pair in alpha_pairs]

    like, thetas, kprod = [], [], []
    for group in (cations, anions):
        for k, i in enumerate(group):
            for j in group[k + 1 :]:
                th = _six(p.theta.get(frozenset((keys[i], keys[j]))))
                if z[i] != z[j] or any(th):
                    like.append((i, j))
                    thetas.append(th)
                    kprod.append((z[i] * z[j], z[i] * z[i], z[j] * z[j]))
    ks = sorted({k for t in kprod for k in t})
    k_idx = [[ks.index(k) for k in t] for t in kprod]

    psi, psis = [], []
    for group, other in ((cations, anions), (anions, cations)):
        for k, i in enumerate(group):
            for j in group[k + 1 :]:
                for o in other:
                    ps = _six(p.psi.get((frozenset((keys[i], keys[j])), keys[o])))
                    if any(ps):
                        psi.append((i, j, o))
                        psis.append(ps)

    coeffs = np.array([r for lst in binary for r in lst] + thetas + psis, dtype=float).reshape(-1, 6)
    return _PitzerTables(
        n=n, z=z, ca=np.array(ca, dtype=int).reshape(-1, 2), alphas=np.array(alpha_values),
        alpha_idx=np.array(alpha_idx, dtype=int).reshape(-1, 2), beta2=tuple(any(r) for r in binary[2]),
        c_den=np.array(c_den), like=np.array(like, dtype=int).reshape(-1, 2), ks=np.array(ks, dtype=float),
        k_idx=np.array(k_idx, dtype=int).reshape(-1, 3), zz=np.array([t[0] for t in kprod], dtype=float),
        psi=np.array(psi, dtype=int).reshape(-1, 3), coeffs=coeffs, missing=tuple(missing),
    )


@lru_cache(maxsize=256)
def _tables_by_name(keys: tuple[str, ...], z: tuple[int, ...], names: str | tuple[str, ...]) -> _PitzerTables:
    return _build_tables(keys, z, _resolve_parameters(names))


class PitzerActivity(ActivityModelBase):
    """Pitzer model for a fixed ion set and temperature (parameters evaluated once at ``T``).

    Two implementations of the same equations (module docstring): the generic formula
    code (numpy or Pyomo, complex-safe; used for Pyomo expressions, the osmotic
    coefficient and the complex-step reference
    :meth:`~nanosep.transport.activity.ActivityModelBase.ln_gamma_and_jacobian_complex_step`)
    and a real-arithmetic numpy path with an analytic Jacobian (:meth:`ln_gamma`,
    :meth:`ln_gamma_and_jacobian`): one pass over the pairs on arrays over all cases,
    instead of the complex step's n complex passes.  They agree to ~1e-14 relative
    (tests/test_pitzer_fast.py).  The temperature functions of all parameters are
    evaluated once, at construction, in one array operation (per case for ``T`` of shape
    ``(B,)``); :meth:`take` slices them; the index tables of an ion set are cached.

    Args:
        ions: species names (canonical names select the parameters; other names get none).
        charges: valences.
        T: temperature, K (scalar, or shape ``(B,)`` for per-case parameters).
        parameters: a set name from :data:`PARAMETER_SETS`, a sequence of names (first
            wins, later ones fill gaps, e.g. ``("phreeqc2025", "may2011")``), or a
            :class:`PitzerParameters`.
    """

    kind = "pitzer"

    def __init__(
        self,
        ions: Sequence[str],
        charges: Sequence[int],
        T: float = T_REF,
        parameters: str | PitzerParameters | Sequence[str] = DEFAULT_PARAMETERS,
    ) -> None:
        super().__init__(ions, charges, T)
        self.parameters = _resolve_parameters(parameters)
        p = self.parameters
        if p.reference_T_only and np.any(np.abs(np.asarray(self.T) - T_REF) > 0.01):
            log.warning("Pitzer parameter set %r has 25 C values only; used unchanged at T = %s K", p.label, self.T)
        off_T = bool(np.any(np.abs(np.asarray(self.T) - T_REF) > 0.01))
        if off_T and p.reference_T_only_pairs:
            here = {canonical_ion_name(i) for i in self.ions if _is_known(i)}
            fixed = sorted("-".join(sorted(k)) for k in p.reference_T_only_pairs if k <= here)
            if fixed:
                log.warning("Pitzer parameters of %s (set %r) are 25 C values; used unchanged at T = %s K",
                            ", ".join(fixed), p.label, self.T)
        keys = []
        for name in self.ions:
            try:
                keys.append(canonical_ion_name(name))
            except UnknownIonError:
                keys.append(name)
        z = tuple(self.charges.tolist())
        if isinstance(parameters, PitzerParameters):
            self._tables = _build_tables(tuple(keys), z, p)
        else:
            names = parameters if isinstance(parameters, str) else tuple(parameters)
            self._tables = _tables_by_name(tuple(keys), z, names)
        for pair in self._tables.missing:
            if pair not in _warned:
                _warned.add(pair)
                log.warning("no Pitzer parameters for %s-%s in set %r: beta0 = beta1 = beta2 = Cphi = 0", *pair, p.label)
        self._set_parameter_values(phreeqc_temperature_functions(self._tables.coeffs, self.T))

    # --- parameters at T ------------------------------------------------------
    def _set_parameter_values(self, values: np.ndarray) -> None:
        """Split the parameter values ``(..., K)`` (leading axis: cases) into the arrays both paths use."""
        t = self._tables
        Pc, Pl = len(t.ca), len(t.like)
        self._values = values
        self._b0, self._b1, self._b2, cphi = (values[..., k * Pc : (k + 1) * Pc] for k in range(4))
        self._C = cphi / t.c_den
        self._theta = values[..., 4 * Pc : 4 * Pc + Pl]
        self._psi_values = values[..., 4 * Pc + Pl :]
        # per-pair parameters as floats (one T) or (B,) arrays, unpacked once for the pair loops
        cols = (lambda a: a.tolist()) if values.ndim == 1 else (lambda a: list(a.T))
        self._ca_par = list(zip(*(cols(a) for a in (self._b0, self._b1, self._b2, self._C)))) if Pc else []
        self._theta_par = cols(self._theta)
        self._psi_par = cols(self._psi_values)

    def _take_cases(self, idx: Any) -> None:
        self._set_parameter_values(self._values[idx])

    @property
    def tables(self) -> Any:
        """The index tables of the mixture: cation-anion pairs (``ca``, ``alpha_idx``, ``beta2``, ``alphas``),
        like pairs (``like``, ``k_idx``, ``ks``), triplets (``psi``), in the order of :meth:`pair_parameters`."""
        return self._tables

    def pair_parameters(self) -> tuple[np.ndarray, ...]:
        """``(beta0, beta1, beta2, C, theta, psi)`` at the model's temperature(s) [kg mol-1 powers as in seed
        003 App. A]: arrays ``(..., P)`` (leading axis: cases with a per-case temperature) per cation-anion pair
        (``C = Cphi / (2 sqrt|z_c z_a|)``), like pair and triplet of :attr:`tables`."""
        return self._b0, self._b1, self._b2, self._C, self._theta, self._psi_values

    # --- real-arithmetic numpy path with analytic Jacobian -------------------------
    def ln_gamma_molal(self, m: Any) -> np.ndarray:
        """ln gamma for molalities ``m`` [mol kg-1] of shape ``(..., n)`` (real path; complex input:
        the generic formula)."""
        a = self._as_batch(m, "molalities")
        if np.iscomplexobj(a):
            return self.ln_gamma_molal_formula(a)
        return self._ln_gamma_real(a, jacobian=False)[0]

    def ln_gamma_and_jacobian(self, c: Any) -> tuple[np.ndarray, np.ndarray]:
        """ln gamma and the analytic ``J[..., i, j] = d ln gamma_i / d c_j`` [m3 mol-1]."""
        a = self._as_batch(c, "concentrations").astype(float)
        lng, jac = self._ln_gamma_real(self._molality(a), jacobian=True)
        rho = self.rho_w if np.ndim(self.rho_w) == 0 else self.rho_w[:, None, None]
        return lng, jac / rho

    def _ln_gamma_real(self, m: np.ndarray, jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """ln gamma (and ``d ln gamma / d m``) on real arrays, pair by pair (terms as :meth:`_evaluate`).

        Every pair term has the form ``m_o W_p`` with ``W = 2X + Z C``, ``X = B`` (cation-anion)
        or ``Phi`` (like pairs), ``Y = dX/dI`` (``B'``, ``Phi'``), ``C = 0`` for like pairs:
        ``F = F_DH + sum_p m_i m_j Y_p``, ``ln g_k = z_k^2 F + |z_k| sum_p m_i m_j C_p
        + sum_{p ni k} m_o W_p + psi terms``.  Hence, with ``v^Y_k = sum_{p ni k} m_o Y_p``
        (likewise ``v^C``) and ``F_I = dF_DH/dI + sum_p m_i m_j dY_p/dI``::

            d ln g_k / d m_j = z_k^2 (F_I dI/dm_j + v^Y_j) + |z_k| v^C_j + 2 v^Y_k dI/dm_j
                               + |z_j| v^C_k + [W_p if {k, j} = p] + psi terms

        with ``dI/dm_j = z_j^2 / 2`` (0 where I is floored).  Arrays are per species of
        shape ``m.shape[:-1]`` (small temporaries: numpy's large ones cost page faults).
        """
        t = self._tables
        n = t.n
        z = t.z
        col = [m[..., i] for i in range(n)]
        zf = np.asarray(z, dtype=float)
        Iraw = m @ (0.5 * zf * zf)
        I = np.where(Iraw < I_TINY, I_TINY, Iraw)
        sI = np.sqrt(I)
        Z = m @ np.abs(zf)
        A = self.A_phi
        bs = 1.0 + B_PITZER * sI
        F = -A * (sI / bs + (2.0 / B_PITZER) * np.log(bs))
        zero = np.zeros(I.shape)
        L: list[Any] = [zero] * n
        csum: Any = zero
        if jacobian:
            FI = -A * (1.0 / (bs * bs) + 2.0 / bs) / (2.0 * sI)  # d F_DH / dI
            vY: list[Any] = [zero] * n
            vC: list[Any] = [zero] * n
            off: dict[tuple[int, int], Any] = {}

        def add_pair(i: int, j: int, W: Any, Y: Any, Yp: Any, C: Any | None) -> None:
            nonlocal F, csum, FI
            mi, mj = col[i], col[j]
            mm = mi * mj
            F = F + mm * Y
            L[i] = L[i] + mj * W
            L[j] = L[j] + mi * W
            if C is not None:
                csum = csum + mm * C
            if jacobian:
                FI = FI + mm * Yp
                vY[i] = vY[i] + mj * Y
                vY[j] = vY[j] + mi * Y
                if C is not None:
                    vC[i] = vC[i] + mj * C
                    vC[j] = vC[j] + mi * C
                off[(i, j)] = off[(j, i)] = W

        if len(t.ca):
            g, gp, h = {}, {}, {}
            for k, alpha in enumerate(t.alphas.tolist()):
                x = alpha * sI
                g[k], gp[k] = pitzer_g(x, NumpyOps), pitzer_gprime(x, NumpyOps)
                if jacobian:  # I^2 d(g'(x)/I)/dI = -2 g'(x) - x exp(-x) / 2
                    h[k] = -2.0 * gp[k] - 0.5 * x * np.exp(-x)
            I2 = I * I
            for (c, a), (k1, k2), (b0, b1, b2, C), with_b2 in zip(t.ca.tolist(), t.alpha_idx.tolist(),
                                                                 self._ca_par, t.beta2):
                X, Y = b0 + b1 * g[k1], b1 * gp[k1] / I
                Yp = b1 * h[k1] if jacobian else None
                if with_b2:
                    X, Y = X + b2 * g[k2], Y + b2 * gp[k2] / I
                    if jacobian:
                        Yp = Yp + b2 * h[k2]
                add_pair(c, a, 2.0 * X + Z * C, Y, Yp / I2 if jacobian else None, C)
        if len(t.like):
            parts = {}
            for kz, kv in enumerate(t.ks.tolist()):
                x = 6.0 * kv * A * sI
                parts[kz] = etheta_terms_d2(x) if jacobian else etheta_terms(x, NumpyOps)
            comb = lambda q, r: q[0][r] - 0.5 * q[1][r] - 0.5 * q[2][r]
            for (i, j), kk, th in zip(t.like.tolist(), t.k_idx.tolist(), self._theta_par):
                if z[i] == z[j]:
                    add_pair(i, j, 2.0 * th, zero, zero, None)
                    continue
                q = [parts[k] for k in kk]
                zz = float(z[i] * z[j])
                et = zz / (4.0 * I) * comb(q, 0)
                sK = comb(q, 1)
                etp = -et / I + zz / (8.0 * I * I) * sK
                etpp = None
                if jacobian:
                    I3 = I * I * I
                    etpp = -etp / I + et / (I * I) - zz * sK / (4.0 * I3) + zz * comb(q, 2) / (16.0 * I3)
                add_pair(i, j, 2.0 * (th + et), etp, etpp, None)
        for (i, j, o), ps in zip(t.psi.tolist(), self._psi_par):
            mi, mj, mo = col[i], col[j], col[o]
            qi, qj, qo = mi * ps, mj * ps, mo * ps
            L[i] = L[i] + mj * qo
            L[j] = L[j] + mi * qo
            L[o] = L[o] + mi * qj
            if jacobian:
                for key, v in (((i, j), qo), ((j, i), qo), ((i, o), qj), ((o, i), qj), ((j, o), qi), ((o, j), qi)):
                    off[key] = off[key] + v if key in off else v
        lng = np.empty(m.shape)
        for i, q in enumerate(z):
            lng[..., i] = L[i] + (q * q) * F + abs(q) * csum if q != 0 else 0.0
        if not jacobian:
            return lng, None

        z2 = zf * zf
        dI2 = z2 * (Iraw >= I_TINY)[..., None]  # 2 dI/dm_j (0 where I is floored)
        vYa, vCa = np.stack(vY, axis=-1), np.stack(vC, axis=-1)
        dF = (0.5 * FI)[..., None] * dI2 + vYa  # dF/dm_j
        az = np.abs(zf)
        jac = np.empty(m.shape + (n,))
        for k, q in enumerate(z):  # row by row: small temporaries
            row = vYa[..., k : k + 1] * dI2 + vCa[..., k : k + 1] * az
            if q != 0:
                row = row + (q * q) * dF + abs(q) * vCa
            jac[..., k, :] = row
        for (i, j), v in off.items():
            jac[..., i, j] += v
        return lng, jac

    # --- generic formula code (numpy and Pyomo) --------------------------------
    def _evaluate(self, m: list[Any], ops: Any, osmotic: bool) -> tuple[list[Any], Any]:
        t = self._tables
        z = list(t.z)
        A = self.A_phi
        I = self._ionic_strength(m, ops)
        sI = ops.sqrt(I)
        Z = sum(abs(q) * mi for q, mi in zip(z, m) if q != 0)
        F = -A * (sI / (1.0 + B_PITZER * sI) + (2.0 / B_PITZER) * ops.log(1.0 + B_PITZER * sI))
        osm = -A * I * sI / (1.0 + B_PITZER * sI) if osmotic else 0.0
        lng: list[Any] = [0.0 * mi for mi in m]
        csum: Any = 0.0
        for k, (c, a) in enumerate(t.ca.tolist()):
            b0, b1, b2, C = self._ca_par[k]
            a1, a2 = t.alphas[t.alpha_idx[k]].tolist()
            B, Bp, Bphi = b0, 0.0, b0
            for beta, alpha in ((b1, a1), (b2, a2)):
                if np.any(beta != 0.0):
                    x = alpha * sI
                    B = B + beta * pitzer_g(x, ops)
                    Bp = Bp + beta * pitzer_gprime(x, ops) / I
                    Bphi = Bphi + beta * ops.exp(-x)
            mm = m[c] * m[a]
            F = F + mm * Bp
            lng[c] = lng[c] + m[a] * (2.0 * B + Z * C)
            lng[a] = lng[a] + m[c] * (2.0 * B + Z * C)
            csum = csum + mm * C
            if osmotic:
                osm = osm + mm * (Bphi + Z * C)
        jcache: dict[int, tuple[Any, Any]] = {}
        for k, (i, j) in enumerate(t.like.tolist()):
            th = self._theta_par[k]
            Phi, Phip, Phiphi = th, 0.0, th
            if z[i] != z[j]:
                et, etp = etheta(z[i], z[j], I, sI, A, ops, jcache)
                Phi, Phip, Phiphi = th + et, etp, th + et + I * etp
            F = F + m[i] * m[j] * Phip
            lng[i] = lng[i] + 2.0 * m[j] * Phi
            lng[j] = lng[j] + 2.0 * m[i] * Phi
            if osmotic:
                osm = osm + m[i] * m[j] * Phiphi
        for k, (i, j, o) in enumerate(t.psi.tolist()):
            ps = self._psi_par[k]
            lng[i] = lng[i] + m[j] * m[o] * ps
            lng[j] = lng[j] + m[i] * m[o] * ps
            lng[o] = lng[o] + m[i] * m[j] * ps
            if osmotic:
                osm = osm + m[i] * m[j] * m[o] * ps
        for i, q in enumerate(z):
            if q != 0:
                lng[i] = lng[i] + q * q * F + abs(q) * csum
        return lng, 2.0 * osm

    def _ln_gamma_terms(self, m: list[Any], ops: Any) -> list[Any]:
        return self._evaluate(m, ops, osmotic=False)[0]

    def _osmotic_sum(self, m: list[Any], ops: Any) -> Any:
        return self._evaluate(m, ops, osmotic=True)[1]
