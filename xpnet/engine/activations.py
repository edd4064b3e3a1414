"""Activations listed once: each of xpnet's activations with every form the engine computes it in.

The array-API form (:mod:`xpnet.core.activations`) is the definition; the engine has faster
forms of the same function for xpnet's own activations, and this table is the one place
that lists them, with the error each is allowed against the definition (what
``tests/engine/test_activation_variants.py`` checks, variant by variant):

==========  =======================================  ================  ===================
activation  NumPy lanes (in place)                   numba loops code  compiled error, ulp
==========  =======================================  ================  ===================
tanh        ``np.tanh``; ``dY * (1 - Y*Y)``          0                 6 (f32), 3 (f64)
sigmoid     ``1 / (1 + exp(-Z))``, exp's argument    1                 6 (f32), 6 (f64)
            capped; ``dY * Y * (1 - Y)``
relu        ``max(Z, 0)``; ``dY * sign(Y)``          2                 exact
==========  =======================================  ================  ===================

The NumPy forms are exact (the same operations as the definition) but for the sigmoid's
capped ``exp``, which gives about 1e-39 (float32) or 1e-309 (float64) where the definition
underflows to 0. A user's own activation has no entry: it runs through its own functions
everywhere (the NumPy lanes call them; the compiled kernels decline it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.activations import HIDDEN, Activation, exp_limit

TANH, SIGMOID, RELU = 0, 1, 2  # the codes the compiled loops switch on


def _tanh(Z):
    np.tanh(Z, out=Z)


def _tanh_backward(dY, Y):
    """dY * (1 - Y * Y), as :func:`xpnet.activations.tanh_backward`, in the buffers of dY and Y."""
    return np.multiply(dY, tanh_slope(Y), out=dY)


def tanh_slope(Y, spare=None):
    """1 - Y * Y in Y's buffer."""
    np.multiply(Y, Y, out=Y)
    return np.subtract(1, Y, out=Y)


def _relu(Z):
    np.maximum(Z, 0, out=Z)


def _relu_backward(dY, Y):
    """dY where Y > 0, else 0 (:func:`xpnet.activations.relu_backward`)."""
    return np.multiply(dY, relu_slope(Y), out=dY)


def relu_slope(Y, spare=None):
    """1 where Y > 0, else 0, in Y's buffer: Y >= 0, so that is sign(Y)."""
    return np.sign(Y, out=Y)


def sigmoid_in_place(Z):
    """1 / (1 + exp(-Z)) in place, exp's argument capped where it would overflow (there the
    result is about 1e-39 in float32, 1e-309 in float64, where the generic form gives 0;
    NumPy's error state is per thread, so a lane cannot count on fit's quiet overflow)."""
    np.negative(Z, out=Z)
    np.minimum(Z, exp_limit(Z.dtype), out=Z)
    np.exp(Z, out=Z)
    np.add(Z, 1, out=Z)
    np.divide(1, Z, out=Z)


def _sigmoid_backward(dY, Y):
    """dY * Y * (1 - Y) (:func:`xpnet.activations.sigmoid_backward`)."""
    np.multiply(dY, Y, out=dY)
    np.subtract(1, Y, out=Y)
    return np.multiply(dY, Y, out=dY)


def sigmoid_slope(Y, spare):
    """Y * (1 - Y) in Y's buffer (``spare``: a buffer of Y's shape for 1 - Y)."""
    return np.multiply(Y, np.subtract(1, Y, out=spare), out=Y)


@dataclass(frozen=True)
class Variants:
    """One activation and every form of it the engine runs."""

    generic: Activation  # the definition: the array-API form, on every backend
    in_place: tuple  # NumPy lanes: (forward(Z) in place, backward(dY, Y) -> dZ in dY, slope(Y, spare) -> act'(Y) in Y)
    code: int  # numba-layers' elementwise loops (xpnet.engine.kernels.numba_elementwise)
    activate: str  # numba-fused's source template of the forward, of ``{z}``
    slope: str  # ... of the slope from the output, of ``{y}`` (relu: the delta itself is gated, see there)
    ulp: tuple  # the compiled forms' largest error against the definition, in ulp: (float32, float64)


TABLE = {
    "tanh": Variants(HIDDEN["tanh"], (_tanh, _tanh_backward, tanh_slope), TANH, "tanh({z})", "one - {y} * {y}",
                     (6, 3)),
    "sigmoid": Variants(HIDDEN["sigmoid"], (sigmoid_in_place, _sigmoid_backward, sigmoid_slope), SIGMOID,
                        "sigmoid({z})", "{y} * (one - {y})", (6, 6)),
    "relu": Variants(HIDDEN["relu"], (_relu, _relu_backward, relu_slope), RELU, "{z} if {z} > zero else zero",
                     "one if {y} > zero else zero", (0, 0)),
}
_BY_OBJECT = {v.generic: v for v in TABLE.values()}  # by the Activation itself: a user's of the same name is not it


def variants(act) -> Variants | None:
    """The engine's forms of ``act`` when it is one of xpnet's own activations, else None."""
    return _BY_OBJECT.get(act)


def in_place(act):
    """``(forward, backward, slope)`` in place for one of xpnet's activations, else None."""
    found = _BY_OBJECT.get(act)
    return None if found is None else found.in_place
