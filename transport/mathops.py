"""Elementary functions for formula code shared by numpy and Pyomo.

Physics code that must produce both numbers and Pyomo expressions (activity
models) is written once against a small "ops" namespace: ``exp``, ``log``,
``sqrt``, plus two hooks whose meaning differs between back ends:

``stable(x, threshold, series, closed)``
    numpy evaluates ``series(x)`` where ``Re(x) < threshold`` and ``closed(x)``
    elsewhere (to avoid cancellation near 0); Pyomo always uses ``closed(x)``
    (smooth, no branch in the model).
``floor(x, tiny)``
    numpy replaces values with ``Re(x) < tiny`` by ``tiny`` (e.g. an ionic
    strength of exactly 0); Pyomo returns ``x`` unchanged.

The numpy back end is complex-safe (no ``abs``, no real-only functions), so a
complex-step derivative of any formula written against it is exact to round-off.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class NumpyOps:
    """numpy back end (real or complex arrays of any shape)."""

    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    sqrt = staticmethod(np.sqrt)

    @staticmethod
    def stable(x: Any, threshold: float, series: Callable[[Any], Any], closed: Callable[[Any], Any]) -> Any:
        x = np.asarray(x)
        small = np.real(x) < threshold
        if not np.any(small):
            return closed(x)
        x_big = np.where(small, 2.0 * threshold, x)
        x_small = np.where(small, x, 0.0)      # the series only where it is used (no overflow in the other branch)
        return np.where(small, series(x_small), closed(x_big))

    @staticmethod
    def floor(x: Any, tiny: float) -> Any:
        x = np.asarray(x)
        return np.where(np.real(x) < tiny, tiny, x)


class PyomoOps:
    """Pyomo back end: returns Pyomo expressions (imports Pyomo on first use)."""

    @staticmethod
    def exp(x: Any) -> Any:
        from pyomo.environ import exp

        return exp(x)

    @staticmethod
    def log(x: Any) -> Any:
        from pyomo.environ import log

        return log(x)

    @staticmethod
    def sqrt(x: Any) -> Any:
        from pyomo.environ import sqrt

        return sqrt(x)

    @staticmethod
    def stable(x: Any, threshold: float, series: Callable[[Any], Any], closed: Callable[[Any], Any]) -> Any:
        return closed(x)

    @staticmethod
    def floor(x: Any, tiny: float) -> Any:
        return x


def polyval(coeffs: tuple[float, ...], x: Any) -> Any:
    """``sum(coeffs[k] * x**k)`` by Horner's rule (works for arrays and expressions)."""
    acc: Any = coeffs[-1]
    for c in reversed(coeffs[:-1]):
        acc = acc * x + c
    return acc
