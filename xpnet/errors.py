"""The exceptions xpnet raises, and the one place arguments are checked.

Bad input raises :class:`XpnetValueError` (a ``ValueError``) or :class:`XpnetTypeError`
(a ``TypeError``), so ``except ValueError`` keeps working for callers who do not know
xpnet. Messages name the argument, the value and the fix.

Numeric arguments are checked against an :class:`Interval` (scikit-learn's
``_parameter_constraints`` are the model): NumPy scalars count as numbers, booleans do not.

    >>> Interval(0, 1, closed="left").check("momentum", 0.9)
    0.9
    >>> check_number("epochs", 10, low=0, closed="neither", integer=True)
    10
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass


class XpnetError(Exception):
    """Base class of every error xpnet raises on purpose."""


class XpnetValueError(XpnetError, ValueError):
    """An argument has the right type but a bad value (shape, range, unknown name...)."""


class XpnetTypeError(XpnetError, TypeError):
    """An argument has the wrong type."""


class BackendUnavailableError(XpnetValueError):
    """The requested array backend cannot be used here (not installed, or no device)."""


class XpnetWarning(UserWarning):
    """Something the user should know that does not stop the run (the CLI shows it as one line)."""


def check_choice(argument: str, value, choices) -> None:
    """Raise a clear error unless ``value`` is one of ``choices``."""
    if not isinstance(value, (str, int, float, type(None))) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise XpnetValueError(f"{argument}={value!r} is not known; choose one of {listed}")


def is_number(value, *, integer: bool = False) -> bool:
    """True for Python and NumPy real numbers (whole ones when ``integer``), never for bools."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return False
    return isinstance(value, numbers.Integral if integer else numbers.Real)


@dataclass(frozen=True)
class Interval:
    """The numbers between ``low`` and ``high`` (None: unbounded on that side).

    ``closed`` says which ends belong to it: ``"both"``, ``"left"``, ``"right"`` or
    ``"neither"``. ``integer`` asks for whole numbers; ``inf`` lets ``math.inf`` in
    (as the upper end of an unbounded interval, e.g. scikit-learn's ``n_iter_no_change``).
    """

    low: float | None = None
    high: float | None = None
    closed: str = "both"
    integer: bool = False
    inf: bool = False

    def __contains__(self, value) -> bool:
        if not is_number(value, integer=self.integer) and not (self.inf and _is_inf(value)):
            return False
        if not isinstance(value, numbers.Integral) and (math.isnan(value) or (math.isinf(value) and not self.inf)):
            return False  # (whole numbers are never NaN; math.isnan would overflow on 10**400)
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not left)):
            return False
        return not (self.high is not None and (value > self.high or (value == self.high and not right)))

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a finite number" if not self.inf else "a number"
        parts = []
        if self.low is not None:
            parts.append(f"{'>=' if self.closed in ('both', 'left') else '>'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<=' if self.closed in ('both', 'right') else '<'} {self.high:g}")
        return kind + (" " + " and ".join(parts) if parts else "")

    def check(self, argument: str, value, hint: str = ""):
        """``value`` unchanged when it is in the interval; else a clear error naming ``argument``."""
        if value in self:
            return value
        hint = f"; {hint}" if hint else ""
        if not is_number(value, integer=self.integer) and not (self.inf and _is_inf(value)):
            if is_number(value) and self.integer:
                raise XpnetValueError(f"{argument}={value!r} must be {self.describe()}{hint}")
            raise XpnetTypeError(f"{argument}={value!r} must be {self.describe()}{hint}")
        raise XpnetValueError(f"{argument}={value!r} must be {self.describe()}{hint}")


def _is_inf(value) -> bool:
    return is_number(value) and math.isinf(value) and value > 0


def check_number(argument: str, value, *, low=None, high=None, closed: str = "both", integer: bool = False,
                 hint: str = ""):
    """:meth:`Interval.check` in one call; returns ``value``."""
    return Interval(low, high, closed, integer).check(argument, value, hint)


def check_positive(argument: str, value, *, integer: bool = False) -> None:
    """Raise a clear error unless ``value`` is a finite number > 0 (a whole one if asked)."""
    Interval(0, None, "neither", integer).check(argument, value)


def check_bool(argument: str, value) -> bool:
    """``value`` when it is True or False (NumPy's too); else a clear error."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise XpnetTypeError(f"{argument}={value!r} must be True or False")
