"""Activation functions, each paired with its backward pass written from the OUTPUT.

``forward(xp, Z) -> Y`` and ``backward(xp, dY, Y) -> dZ``: the derivative is taken from
the activation's output, as the tutorials do (sigmoid' = Y(1-Y), tanh' = 1-Y^2), so the
pre-activation never has to be kept or recomputed.

The operation order matches the tutorials bit for bit: Trask multiplies
``error * (Y * (1 - Y))`` and WildML ``dY * (1 - a1**2)``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ..errors import XpnetTypeError, check_choice


class Activation(NamedTuple):
    """A hidden-layer activation: its name and its forward and backward passes.

    Built-in ones are in :data:`HIDDEN`; a user-defined one works the same on every backend
    and every path, with no registration::

        softsign = Activation("softsign", lambda xp, Z: Z / (1 + xp.abs(Z)),
                              lambda xp, dY, Y: dY * (1 - xp.abs(Y)) ** 2)
        MLP([2, 16, 2], activation=softsign)

    ``forward(xp, Z) -> Y`` and ``backward(xp, dY, Y) -> dZ`` use only the array API
    namespace ``xp`` they are given, and take the derivative from the output ``Y``.
    """

    name: str
    forward: Callable  # (xp, Z) -> Y
    backward: Callable  # (xp, dY, Y) -> dZ


def _exp_limit(np_dtype) -> float:
    """Largest t with exp(t) finite in ``np_dtype`` (709.78 for float64, 88.72 for float32)."""
    t = np_dtype(np.log(np.finfo(np_dtype).max))
    with np.errstate(over="ignore"):
        while not np.isfinite(np.exp(t)):
            t = np.nextafter(t, np_dtype(0))
    return float(t)


_LIMIT32, _LIMIT64 = _exp_limit(np.float32), _exp_limit(np.float64)
_ONE = {np.dtype(t): np.ones((), t) for t in (np.float32, np.float64)}  # 0-d: no scalar conversion per call
_LIMITS: dict = {}


def exp_limit(dtype) -> float:
    """The overflow threshold of exp for an array dtype of any namespace (cached per dtype)."""
    key = (type(dtype), dtype)  # the type first: never compare dtypes of two libraries
    limit = _LIMITS.get(key)
    if limit is None:
        limit = _LIMITS[key] = _LIMIT32 if "32" in str(dtype) else _LIMIT64
    return limit


def sigmoid(xp, Z, stable: bool = True):
    """sigma(Z) = 1 / (1 + exp(-Z)), Trask's formula, without overflow (``stable`` is unused: the
    signature of every output activation, see :data:`OUTPUT_FUNCTIONS`).

    Where exp(-Z) would overflow the tutorial formula gives exactly 0; so does this one,
    without computing the overflowing exp (so no warning, same bits everywhere else).
    Inside :func:`overflow_quiet` NumPy arrays take the formula itself: there an overflowing
    exp is inf without a warning, and 1 / (1 + inf) is that same 0.
    """
    if type(Z) is np.ndarray and _QUIET.get():
        E = np.exp(-Z)
        np.add(E, _ONE.get(E.dtype, 1), out=E)  # a 0-d one: no scalar conversion per call
        return np.reciprocal(E, out=E)
    limit = exp_limit(Z.dtype)
    negZ = -Z
    return xp.where(negZ > limit, 0.0, 1 / (1 + xp.exp(xp.minimum(negZ, limit))))


_QUIET = contextvars.ContextVar("xpnet_overflow_quiet", default=False)


class overflow_quiet:
    """Within the block (this thread), NumPy overflow gives inf without a warning, and
    :func:`sigmoid` on NumPy arrays is the tutorials' formula as written.

    :func:`xpnet.fit` trains inside it: the guard's three extra operations were a third of a
    tiny tutorial step, and fit checks for non-finite results itself (at logging points).
    ``with quiet.outside():`` runs code with the caller's error state again (callbacks).
    """

    def __enter__(self):
        self._outer = np.geterr()
        self._errstate = np.errstate(over="ignore")
        self._errstate.__enter__()
        self._token = _QUIET.set(True)
        return self

    def __exit__(self, *exc):
        _QUIET.reset(self._token)
        return self._errstate.__exit__(*exc)

    @contextlib.contextmanager
    def outside(self):
        with np.errstate(**self._outer):
            token = _QUIET.set(False)
            try:
                yield
            finally:
                _QUIET.reset(token)


def sigmoid_backward(xp, dY, Y):
    """dZ = dY * (Y * (1 - Y))."""
    return dY * (Y * (1 - Y))


def tanh(xp, Z):
    """tanh(Z)."""
    return xp.tanh(Z)


def tanh_backward(xp, dY, Y):
    """dZ = dY * (1 - Y^2)."""
    return dY * (1 - Y * Y)


def relu(xp, Z):
    """max(Z, 0)."""
    return xp.where(Z > 0, Z, 0.0)


def relu_backward(xp, dY, Y):
    """dZ = dY where Y > 0, else 0."""
    return xp.where(Y > 0, dY, 0.0)


def identity(xp, Z, stable: bool = True):
    """Z."""
    return Z


def identity_backward(xp, dY, Y):
    """dZ = dY."""
    return dY


def softmax(xp, Z, stable: bool = True):
    """Row-wise softmax; ``stable`` subtracts the row max first (never overflows).

    ``stable=False`` is WildML's ``exp(Z) / sum(exp(Z))``, kept to reproduce its digits.
    """
    if stable:
        Z = Z - xp.max(Z, axis=1, keepdims=True)
    E = xp.exp(Z)
    return E / xp.sum(E, axis=1, keepdims=True)


HIDDEN = {
    "sigmoid": Activation("sigmoid", sigmoid, sigmoid_backward),
    "tanh": Activation("tanh", tanh, tanh_backward),
    "relu": Activation("relu", relu, relu_backward),
}
OUTPUTS = ("sigmoid", "softmax", "identity", "exp")  # "exp": Poisson regression (log link)
IDENTITY = Activation("identity", identity, identity_backward)


def get_hidden(name, argument: str = "activation") -> Activation:
    """The hidden-layer activation called ``name`` (an :class:`Activation` is returned as is)."""
    if isinstance(name, Activation):
        if not (isinstance(name.name, str) and name.name and callable(name.forward) and callable(name.backward)):
            raise XpnetTypeError(f"{argument}={name!r} needs a non-empty name and callable forward and backward")
        return name
    check_choice(argument, name, tuple(HIDDEN))
    return HIDDEN[name]


def is_builtin(activation: Activation) -> bool:
    """True for xpnet's own activations (the objects in :data:`HIDDEN`), False for user-defined ones."""
    return HIDDEN.get(activation.name) is activation


def exp_output(xp, Z, stable: bool = True):
    """exp(Z): the mean of a Poisson model under its log link."""
    return xp.exp(Z)


OUTPUT_FUNCTIONS = {"softmax": softmax, "sigmoid": sigmoid, "identity": identity,
                    "exp": exp_output}  # (xp, Z, stable) -> Y


def output_forward(xp, name: str, Z, stable: bool = True):
    """Apply the output activation ``name`` to logits ``Z``."""
    return OUTPUT_FUNCTIONS[name](xp, Z, stable)


__all__ = ["Activation", "HIDDEN", "OUTPUTS", "get_hidden", "is_builtin", "output_forward", "softmax"]
