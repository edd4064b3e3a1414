"""The exceptions xpnet raises: every one derives from :class:`XpnetError`.

Bad input raises :class:`XpnetValueError` (a ``ValueError``) or :class:`XpnetTypeError`
(a ``TypeError``), so ``except ValueError`` keeps working for callers who do not know
xpnet. Messages name the argument, the value and the fix.
"""

from __future__ import annotations


class XpnetError(Exception):
    """Base class of every error xpnet raises on purpose."""


class XpnetValueError(XpnetError, ValueError):
    """An argument has the right type but a bad value (shape, range, unknown name...)."""


class XpnetTypeError(XpnetError, TypeError):
    """An argument has the wrong type."""


class BackendUnavailableError(XpnetValueError):
    """The requested array backend cannot be used here (not installed, or no device)."""


def check_choice(argument: str, value, choices) -> None:
    """Raise a clear error unless ``value`` is one of ``choices``."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise XpnetValueError(f"{argument}={value!r} is not known; choose one of {listed}")


def check_positive(argument: str, value, *, integer: bool = False) -> None:
    """Raise a clear error unless ``value`` is a finite number > 0 (an int if asked)."""
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise XpnetTypeError(
            f"{argument} must be a {'whole' if integer else 'real'} number, got {value!r}"
        )
    if not value > 0 or value != value or value == float("inf"):
        raise XpnetValueError(f"{argument}={value!r} must be a finite number greater than 0")
