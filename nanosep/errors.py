"""Exception hierarchy for nanosep.

Every error raised on purpose by nanosep derives from :class:`NanosepError`,
so callers can catch the whole family with one ``except`` clause. Add new
classes here, one per failure kind, each with a one-line docstring.
"""

from __future__ import annotations


class NanosepError(Exception):
    """Base class of all errors raised by nanosep."""


class SolverSetupError(NanosepError):
    """A solver, or a native library it needs, is missing or mis-configured.

    ``fix`` holds the exact shell command that repairs the set-up, when one
    is known; it is also appended to the message.
    """

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.fix = fix
        super().__init__(f"{message}\nFix: {fix}" if fix else message)


class InvalidInputError(NanosepError, ValueError):
    """A value given by the user is out of range, not finite, or inconsistent; the message names it."""


class UnknownIonError(NanosepError, KeyError):
    """An ion or solute name that the ion database does not know; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError would repr() its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ElectroneutralityError(InvalidInputError):
    """A feed (or permeate) that is not electroneutral; the message gives sum(z c) and the composition."""


class ConvergenceError(NanosepError, RuntimeError):
    """A numerical solve did not converge; the message names the case and its inputs."""
