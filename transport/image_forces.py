"""Dielectric exclusion by image forces in a cylindrical pore (seed 003 eqs. 5-8).

An ion of charge ``z e`` sits on the axis of a cylindrical pore of radius ``r_p``
filled with a solvent of relative permittivity ``eps_p`` that contains an
electrolyte with inverse Debye length ``kappa``; the pore is cut in a matrix of
relative permittivity ``eps_m`` without mobile ions.  Its excess solvation energy
``W`` - measured from the same ion in an unbounded solvent with the same ``eps_p``
and ``kappa``, so that the Born term carries the ``eps_p`` vs bulk difference -
(Yaroshchuk 2000, Adv. Colloid Interface Sci. 85:193; Yaroshchuk 2001, Sep.
Purif. Technol. 22-23:143; Szymczyk & Fievet 2005, J. Membr. Sci. 252:77) gives
the image-force partition coefficient (linearized Debye-Hueckel screening in the
pore, no mobile ions in the matrix)::

    ln Phi_im = -W / (k_B T) = -(2 alpha / pi) G(mu, eps_m / eps_p)                    (5)
    alpha     = z^2 e^2 / (8 pi eps0 eps_p r_p k_B T)            [dimensionless]       (6)
    G         = int_0^inf A(k) dk,   eta = sqrt(k^2 + mu^2),   mu = kappa r_p
    A(k)      = [K0(k) K1(eta) - b(k) K0(eta) K1(k)] / [I1(eta) K0(k) + b(k) I0(eta) K1(k)]
    b(k)      = (k / eta) (eps_m / eps_p)                                              (7)

Derivation of ``A`` (lengths in units of ``r_p``, potential in units of
``z e / (4 pi eps0 eps_p r_p)``, Fourier cosine transform in the axial
coordinate, ``1/R = (2/pi) int_0^inf K0(k rho) cos(k x) dk`` and its screened
analogue with ``eta``): inside, ``phi_k = K0(eta rho) + A I0(eta rho)``; outside,
``phi_k = B K0(k rho)``.  Continuity of ``phi`` and of ``eps d(phi)/d(rho)`` at
``rho = 1``::

    K0(eta) + A I0(eta) = B K0(k)
    eps_p eta (A I1(eta) - K1(eta)) = -eps_m k B K1(k)

and eliminating ``B`` gives ``A`` above.  The reaction potential at the ion is
``(2/pi) G``; the self-energy is half charge times it, ``W / (k_B T) = (2 alpha /
pi) G``.

Corrections to the printed seed equations (checked numerically in the tests):

* eq. 7 prints ``beta = (k/eta) (eps_p - eps_m)/(eps_p + eps_m)``; the matching
  gives the plain ratio ``eps_m / eps_p``.  With the printed beta, ``eps_m =
  eps_p`` gives ``A = K1(eta)/I1(eta) ~ 2/k^2`` at ``mu = 0`` (divergent) instead
  of the exact zero; for ``mu >> 1`` the ratio form reproduces the reflection
  coefficient ``(eta - r k)/(eta + r k)`` of a flat screened/unscreened interface.
* eq. 5 divides ``alpha`` by ``k_B T`` a second time; eq. 6 is already
  dimensionless (``F^2 / (N_A R T) = e^2 / (k_B T)``).

Properties of ``G(mu, r)``, ``r = eps_m/eps_p`` (verified in the tests):

* ``G(0, r)`` is finite for every ``r > 0``: ``A ~ ((1 - r)/r) ln(1/k)`` is
  integrable at ``k -> 0``; ``G(0, r)`` grows like ``r^{-1/2}`` up to a logarithm
  (field lines stay in the pore over a length ~ ``r_p (ln(1/r)/r)^{1/2}``), e.g.
  6.77 at r = 0.1125, 24.8 at 0.02, 551 at 1e-4.  It diverges only for ``r = 0``,
  where ``G ~ pi/mu`` (the field is confined to the pore: one-dimensional
  screening, ``W = z^2 e^2 / (4 pi eps0 eps_p r_p^2 kappa)``).
* ``dG/dmu (0+) = pi/2`` for every ``r > 0``: the loss of the Debye-Hueckel
  self-energy ``kappa z^2 e^2 / (8 pi eps0 eps_p)`` of the ion, whose screening
  cloud cannot extend into the matrix (near ``k ~ mu``, ``A(mu) - A(0) ->
  ln(eta/k)``, whose integral is ``pi mu / 2``).  ``G`` therefore *increases* with
  ``mu`` up to ``mu*(r)`` (5.3e-4, 0.0105, 0.057, 0.45 for r = 0.02, 0.1125, 0.3,
  1) and decreases beyond; ``G(mu, 1) > 0`` for ``mu > 0``.
* ``G`` decreases strictly with ``r`` (``dA/db < 0``).  For ``r > 1`` (more
  polarizable wall) ``G < 0`` at small ``mu`` but changes sign at ``mu`` = 0.47,
  2.8, 25 for r = 1.5, 3, 10: at large ``mu`` the truncated screening cloud
  outweighs the attractive image.
* ``G ~ e^{-2 mu}`` for ``mu >> 1``; it underflows to 0 for ``mu`` above ~350.

Numerics: ``k = s(mu) softplus(v(t))`` with ``v = t - e^{a-t} + e^{t-b}`` and
``s = (1 + mu)^(1/2) / 2``: logarithmic spacing for small ``k`` (the integrand
depends on ``ln k`` through ``K0(k)``), linear spacing for large ``k``,
double-exponential compression of both tails; the trapezoidal rule in ``t`` on
:data:`N_NODES` fixed nodes then converges geometrically.  Bessel functions are the
exponentially scaled ``i0e, i1e, k0e, k1e``, with ``A = e^{-2 eta} (scaled
ratio)``.  ``dG/dmu`` is the same rule applied to the analytic ``dA/dmu``.
Checked against an independent finite-volume solution of the axisymmetric
Poisson-Boltzmann (Debye-Hueckel) problem (``tests/test_image_forces.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
from numpy.polynomial import Chebyshev
from numpy.typing import ArrayLike
from scipy import special

from nanosep.constants import BOLTZMANN, ELEMENTARY_CHARGE, FARADAY, GAS_CONSTANT, VACUUM_PERMITTIVITY

__all__ = [
    "N_NODES",
    "image_alpha",
    "debye_mu",
    "image_integrand",
    "image_integral",
    "ln_phi_image",
    "ChebyshevImageIntegral",
    "image_integral_chebyshev",
    "pyomo_clenshaw_hook",
]

# ---- quadrature rule (trapezoid in t, see module docstring) -----------------------------
_A_LEFT, _B_RIGHT, _H = -12.0, 4.0, 0.35
_T = np.arange(-15.0, 7.0 + 1e-9, _H)
_V = _T - np.exp(_A_LEFT - _T) + np.exp(_T - _B_RIGHT)
_DV = 1.0 + np.exp(_A_LEFT - _T) + np.exp(_T - _B_RIGHT)
_X_NODES = np.logaddexp(0.0, _V)                      # k / s = softplus(v) > 0
_WEIGHTS = _H * _DV * 0.5 * (1.0 + np.tanh(0.5 * _V))  # h softplus'(v) dv/dt (times s: dk weights)
for _arr in (_X_NODES, _WEIGHTS):
    _arr.setflags(write=False)
N_NODES: int = _T.size  #: integrand evaluations per value of mu (63)
_CHUNK = 1024           # mu values per vectorized block (bounds temporary memory)


def image_alpha(z: ArrayLike, r_p: ArrayLike, eps_p: ArrayLike, T: ArrayLike) -> np.ndarray:
    """Dimensionless image-force strength, seed 003 eq. 6.

    ``alpha = z^2 e^2 / (8 pi eps0 eps_p r_p k_B T)`` = half the pore Bjerrum length
    over ``r_p``, times ``z^2``.  ``r_p`` in m, ``T`` in K.
    """
    z = np.asarray(z, dtype=float)
    return z**2 * ELEMENTARY_CHARGE**2 / (
        8.0 * np.pi * VACUUM_PERMITTIVITY * np.asarray(eps_p, dtype=float) * np.asarray(r_p, dtype=float)
        * BOLTZMANN * np.asarray(T, dtype=float)
    )


def debye_mu(r_p: ArrayLike, conc_mol_m3: ArrayLike, charges: ArrayLike, eps: ArrayLike, T: ArrayLike) -> np.ndarray:
    """Pore radius over Debye length, ``mu = r_p kappa`` (seed 003 eq. 8).

    ``kappa^2 = F^2 sum_i z_i^2 c_i / (eps0 eps R T)``.  ``conc_mol_m3`` has shape
    ``(..., n)`` (mol/m3), ``charges`` shape ``(n,)``; ``r_p`` (m), ``eps``
    (relative permittivity) and ``T`` (K) broadcast against ``(...)``.  Eq. 8 of the
    seed takes the pore-side concentrations (partition coefficients times the
    interface concentrations) and the bulk permittivity; pass whatever
    ``conc_mol_m3`` and ``eps`` the model uses.
    """
    c = np.asarray(conc_mol_m3, dtype=float)
    zz = np.asarray(charges, dtype=float)
    ionic = np.sum(zz**2 * c, axis=-1)  # 2 I, mol/m3
    kappa2 = FARADAY**2 * ionic / (VACUUM_PERMITTIVITY * np.asarray(eps, dtype=float) * GAS_CONSTANT * np.asarray(T, dtype=float))
    return np.asarray(r_p, dtype=float) * np.sqrt(kappa2)


def _integrand(k: np.ndarray, mu: np.ndarray, r: np.ndarray, derivative: bool):
    """``A(k)`` and optionally ``dA/dmu`` at fixed ``k`` (broadcasting arrays).

    Scaled Bessel functions (``i0e(x) = e^{-x} I0(x)``, ``k0e(x) = e^{x} K0(x)``,
    ...); with ``q = N / D``, ``N = k0e(k) k1e(eta) - b k0e(eta) k1e(k)``,
    ``D = i1e(eta) k0e(k) + b i0e(eta) k1e(k)``, ``A = e^{-2 eta} q``.
    ``k1e(eta)`` comes from the Wronskian ``I0 K1 + I1 K0 = 1/x`` (DLMF 10.28.2),
    which saves one Bessel evaluation (``sqrt(k*k) == k`` in IEEE arithmetic, so
    ``mu = 0`` reuses ``k1e(k)`` and ``A`` is exactly 0 for ``eps_m = eps_p``).  With ``K0' = -K1``, ``K1' = -K0 - K1/x``,
    ``I0' = I1``, ``I1' = I0 - I1/x`` (DLMF 10.29.2, 10.29.3) and
    ``db/deta = -b/eta`` the derivative simplifies to::

        dA/deta = e^{-2 eta} [b k1e(k) (k1e(eta) - q i1e(eta)) - k0e(k) (k0e(eta) + q i0e(eta))] / D

    and ``dA/dmu = (mu/eta) dA/deta``.
    """
    eta = np.sqrt(k * k + mu * mu)
    inv_eta = 1.0 / eta
    b = r * (k / eta)
    k0k, k1k = special.k0e(k), special.k1e(k)
    i0, i1, kk0 = special.i0e(eta), special.i1e(eta), special.k0e(eta)
    # eta == k (mu = 0): take k1e(k) itself, so that N vanishes exactly for eps_m = eps_p
    kk1 = np.where(eta == k, k1k, (inv_eta - i1 * kk0) / i0)
    e2 = np.exp(-2.0 * eta)
    bk1k = b * k1k
    den = i1 * k0k + bk1k * i0
    q = (k0k * kk1 - bk1k * kk0) / den
    a = e2 * q
    if not derivative:
        return a, None
    da = (bk1k * (kk1 - q * i1) - k0k * (kk0 + q * i0)) * (e2 * mu * inv_eta / den)
    return a, da


def image_integrand(k: ArrayLike, mu: ArrayLike, eps_ratio: ArrayLike) -> np.ndarray:
    """The integrand ``A(k; mu, eps_m/eps_p)`` of seed 003 eq. 5 (corrected eq. 7).

    Dimensionless; ``k > 0`` is the axial wavenumber times ``r_p``.  Broadcasts.
    ``A -> K1(mu)/I1(mu)`` (logarithmically slowly) as ``k -> 0`` for ``mu > 0`` and
    ``A ~ pi e^{-2 eta} (eta - r k)/(eta + r k)`` for ``k, mu >> 1``.
    """
    k, mu, r = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (k, mu, eps_ratio)))
    return _integrand(k, mu, r, derivative=False)[0]


def _check_inputs(mu: np.ndarray, r: np.ndarray) -> None:
    if np.any(mu < 0):
        raise ValueError("mu must be >= 0")
    if np.any(r < 0):
        raise ValueError("eps_ratio must be >= 0")


def image_integral(mu: ArrayLike, eps_ratio: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``G(mu, r)`` of seed 003 eq. 5 and its exact derivative ``dG/dmu``.

    Parameters
    ----------
    mu : array_like
        ``r_p kappa`` (dimensionless, >= 0).
    eps_ratio : array_like
        ``r = eps_m / eps_p`` (>= 0).  Broadcasts with ``mu``.

    Returns
    -------
    G, dG_dmu : ndarray
        Both of the broadcast shape.  Relative error of ``G`` <= 3e-12 against
        adaptive quadrature for ``mu`` in [1e-4, 200] and ``r`` in [0.02, 1]
        (<= 4e-11 for ``r`` in [1e-3, 10] and ``mu`` up to 350); ``dG/dmu`` to
        ~2e-11 relative there.  Below ``mu ~ 1e-6`` the rule no longer resolves the
        ``k ~ mu`` region: ``G`` stays within ~1e-10 absolute, but ``dG/dmu``
        drifts from its limit (1e-5 relative at ``mu = 1e-6``, 1e-2 at 1e-8); such
        ``mu`` need concentrations below 1e-9 mol/L.  ``mu = 0``: ``G(0, r)`` is
        finite for ``r > 0`` and ``dG/dmu`` returns the one-sided limit ``pi/2``; for ``r = 0`` (ideal
        insulating matrix) ``G = +inf``, ``dG/dmu = -inf`` (field lines confined to
        the pore: ``G ~ pi/mu``) - the caller must keep ``mu > 0`` or ``r > 0``.
        ``G`` underflows to 0 for ``mu`` above ~350.
    """
    mu_a = np.asarray(mu, dtype=float)
    r_a = np.asarray(eps_ratio, dtype=float)
    _check_inputs(mu_a, r_a)
    mu_b, r_b = np.broadcast_arrays(mu_a, r_a)
    shape = mu_b.shape
    m = mu_b.ravel()
    rr = r_b.ravel()
    g = np.empty(m.size)
    dg = np.empty(m.size)
    for lo in range(0, m.size, _CHUNK):
        sl = slice(lo, lo + _CHUNK)
        mc = m[sl, None]
        s = 0.5 * np.sqrt(1.0 + mc)
        k = s * _X_NODES
        a, da = _integrand(k, mc, rr[sl, None], derivative=True)
        g[sl] = (a @ _WEIGHTS) * s[:, 0]
        dg[sl] = (da @ _WEIGHTS) * s[:, 0]
    zero_mu = m == 0.0
    if np.any(zero_mu):
        dg[zero_mu] = 0.5 * np.pi
        both = zero_mu & (rr == 0.0)
        g[both] = np.inf
        dg[both] = -np.inf
    return g.reshape(shape), dg.reshape(shape)


def ln_phi_image(z: ArrayLike, r_p: ArrayLike, eps_p: ArrayLike, eps_m: ArrayLike, mu: ArrayLike,
                 T: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Image-force partitioning ``ln Phi_im`` and ``d ln Phi_im / d mu`` (seed 003 eqs. 5-7, corrected).

    ``ln Phi_im = -(2 alpha / pi) G(mu, eps_m/eps_p)`` with ``alpha`` from
    :func:`image_alpha`.  ``z`` charge number, ``r_p`` pore radius (m), ``eps_p``
    and ``eps_m`` relative permittivities of pore solvent and matrix, ``mu =
    r_p kappa`` (see :func:`debye_mu`), ``T`` (K).  All arguments broadcast.  At
    ``mu = 0`` with ``eps_m = 0`` the result is ``-inf`` (complete exclusion).
    """
    eps_p_a = np.asarray(eps_p, dtype=float)
    g, dg = image_integral(mu, np.asarray(eps_m, dtype=float) / eps_p_a)
    coef = (2.0 / np.pi) * image_alpha(z, r_p, eps_p_a, T)
    return -coef * g, -coef * dg


# ---- Chebyshev surrogate in ln(mu) for equation-oriented models --------------------------
def _identity(e: Any) -> Any:
    return e


def pyomo_clenshaw_hook(block: Any, name: str = "image_clenshaw") -> Callable[[Any], Any]:
    """A ``subexpression`` hook for :meth:`ChebyshevImageIntegral.of_log_mu` on Pyomo models.

    Adds ``<name>_b`` (``VarList``) and ``<name>_eq`` (``ConstraintList``) to
    ``block``; each call creates one variable ``v``, the constraint ``v == e``, and
    initializes ``v`` to the value of ``e`` when that is computable.  Use one hook
    per polynomial (a new ``name`` for each).
    """
    import pyomo.environ as pyo

    b = pyo.VarList()
    eq = pyo.ConstraintList()
    block.add_component(f"{name}_b", b)
    block.add_component(f"{name}_eq", eq)

    def hook(expr: Any) -> Any:
        v = b.add()
        v.set_value(pyo.value(expr, exception=False), skip_validation=True)
        eq.add(v == expr)
        return v

    return hook


@dataclass(frozen=True)
class ChebyshevImageIntegral:
    """Polynomial approximation ``G(mu) ~ P(ln mu)`` on ``[mu_min, mu_max]`` at fixed ``eps_ratio``.

    ``P`` is a :class:`numpy.polynomial.Chebyshev` series in ``x = ln mu`` with
    domain ``[ln mu_min, ln mu_max]`` (interpolant at Chebyshev points of the
    first kind).  ``max_abs_error`` is the largest ``|P - G|`` found on 2001
    points (log-spaced, off the interpolation nodes) against
    :func:`image_integral`.  Outside the interval the polynomial extrapolates
    badly: keep ``mu`` bounded in the model.
    """

    eps_ratio: float
    mu_min: float
    mu_max: float
    series: Chebyshev
    max_abs_error: float
    _dseries: Chebyshev = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_dseries", self.series.deriv())

    @property
    def degree(self) -> int:
        """Polynomial degree."""
        return self.series.degree()

    @property
    def coefficients(self) -> np.ndarray:
        """Chebyshev coefficients ``c_0..c_n`` in the mapped variable ``t`` in [-1, 1]."""
        return self.series.coef.copy()

    def __call__(self, mu: ArrayLike) -> np.ndarray:
        """``G`` at ``mu`` (numpy; ``ln`` applied here)."""
        return self.series(np.log(np.asarray(mu, dtype=float)))

    def derivative(self, mu: ArrayLike) -> np.ndarray:
        """``dG/dmu = P'(ln mu) / mu``."""
        mu = np.asarray(mu, dtype=float)
        return self._dseries(np.log(mu)) / mu

    def of_log_mu(self, log_mu: Any, subexpression: Optional[Callable[[Any], Any]] = None) -> Any:
        """``P(log_mu)`` by the Clenshaw recurrence, using only ``+``, ``-`` and ``*``.

        ``log_mu`` is anything with arithmetic operators: a float, a numpy array,
        or a Pyomo expression/variable.  The caller applies the logarithm, e.g.
        ``G = cheb.of_log_mu(pyo.log(m.mu))`` or, better, a variable ``m.ln_mu``
        (the system already solves for ``ln mu``), which keeps ``mu > 0``
        implicit and the model free of ``log``.

        Clenshaw (``t = (2 x - (x_lo + x_hi)) / (x_hi - x_lo)``)::

            b_{n+1} = b_{n+2} = 0,  b_j = c_j + 2 t b_{j+1} - b_{j+2} (j = n..1),
            P = c_0 + t b_1 - b_2

        Every ``b_j`` is used twice, so as a plain expression *tree* the result
        grows like the Fibonacci numbers of the degree, and Pyomo walks shared
        subtrees again (``pyo.value`` takes 0.5 s at degree 22; named
        ``pyo.Expression`` components do not help).  Pyomo input therefore needs
        ``subexpression``: a callable applied to each ``b_j`` that returns a
        reference to it, normally :func:`pyomo_clenshaw_hook` (an auxiliary
        variable ``v_j`` and the equality ``v_j == c_j + 2 t v_{j+1} - v_{j+2}``
        per degree, bilinear in ``t`` and ``v``: the equation-oriented form).
        Without it a Pyomo argument with degree > 20 raises ``ValueError``.
        Accurate to ``max_abs_error`` plus rounding (~1e-16 times the sum of
        ``|c_j|``) in floating point.
        """
        if subexpression is None:
            if type(log_mu).__module__.startswith("pyomo") and self.degree > 20:
                raise ValueError("Clenshaw on a Pyomo expression needs subexpression= "
                                 "(see pyomo_clenshaw_hook); the plain tree grows exponentially with the degree")
            subexpression = _identity
        lo, hi = self.series.domain
        t = log_mu * (2.0 / (hi - lo)) - (lo + hi) / (hi - lo)
        c = [float(x) for x in self.series.coef]
        if len(c) == 1:
            return c[0] + 0.0 * t
        b2: Any = 0.0
        b1: Any = c[-1]
        for cj in c[-2:0:-1]:
            b1, b2 = subexpression(cj + 2.0 * t * b1 - b2), b1
        return c[0] + t * b1 - b2


def image_integral_chebyshev(eps_ratio: float, mu_min: float, mu_max: float, degree: int = 100) -> ChebyshevImageIntegral:
    """Chebyshev interpolant of ``G(., eps_ratio)`` in ``ln mu`` on ``[mu_min, mu_max]``.

    ``0 < mu_min < mu_max``.  On ``[1e-3, 200]`` with ``eps_ratio`` in [0.02, 1]
    the absolute error is ~5e-12 at the default degree 100 (~4e-10 at degree 80,
    ~2e-7 at 60): the fit has to follow both the ``ln mu`` structure at small
    ``mu`` and ``e^{-2 mu}`` at large ``mu``; narrower intervals need far lower
    degrees.  The error found on a check grid is stored in ``max_abs_error``.
    Built from ``degree + 1`` evaluations of :func:`image_integral` plus 2001
    for the check (~0.1 s).
    """
    if not 0.0 < mu_min < mu_max:
        raise ValueError("need 0 < mu_min < mu_max")
    if degree < 0:
        raise ValueError("degree must be >= 0")
    r = float(eps_ratio)
    domain = [float(np.log(mu_min)), float(np.log(mu_max))]
    series = Chebyshev.interpolate(lambda x: image_integral(np.exp(x), r)[0], degree, domain=domain)
    x_chk = np.linspace(domain[0], domain[1], 2001)
    err = float(np.max(np.abs(series(x_chk) - image_integral(np.exp(x_chk), r)[0])))
    return ChebyshevImageIntegral(r, float(mu_min), float(mu_max), series, err)
