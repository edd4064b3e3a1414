"""Jitted elementwise passes shared by the numba kernels: one pass each where NumPy makes several.

* :func:`bias_activate`: a hidden layer's bias and activation, in place (NumPy: 2 passes for
  tanh, 5 for the sigmoid);
* :func:`slope_backward`: the back-propagated delta times the activation's slope, in place,
  and the layer's bias gradient (the column sums) in the same pass (NumPy: 3-4 passes);
* :func:`output_rows`: the output layer from its logits: bias, output activation, the loss's
  delta (scaled), its column sums and the summed loss, row by row.

The math is :mod:`xpnet.activations` and :mod:`xpnet.losses` (the same formulas, the slopes
from the outputs), with the vectorizable functions of :mod:`xpnet.engine.kernels.numba_math`. Codes
for the activation, output and loss are run-time arguments, tested outside the inner loops,
so each function compiles once per dtype. Imports numba: loaded only through
:mod:`xpnet.engine.kernels.numba_support`.
"""

from __future__ import annotations

from typing import Any

from numba import njit

from ..activations import SIGMOID, TANH
from .numba_math import exp, log, log1p, sigmoid, tanh
from .numba_support import COMPILED_LOSSES, COMPILED_OUTPUTS

# reassociation lets LLVM vectorize the sums (their order is fixed by the compiled code, so the
# bits do not depend on threads); no nnan/ninf: NaN and inf flow as in NumPy
LOOPS: dict[str, Any] = {"nogil": True, "cache": True, "error_model": "numpy",
                         "fastmath": {"reassoc", "contract", "nsz"}}

OUTPUTS = {name: code for code, name in enumerate(COMPILED_OUTPUTS)}  # softmax 0, sigmoid 1, identity 2
LOSSES = {name: code for code, name in enumerate(COMPILED_LOSSES)}  # cross_entropy 0, squared 1, binary 2
SOFTMAX, IDENTITY = 0, 2
CROSS_ENTROPY, SQUARED, BINARY_CROSS_ENTROPY = 0, 1, 2


# Arrays are indexed, never sliced, inside the loops: a view costs an atomic reference count
# (numba's), and the lanes' threads share the weights' counts (measured: a fifth of a fused pass).
@njit(**LOOPS)
def bias_activate(Z, b, act):
    """``Z = act(Z + b)`` in place, row by row (``b`` zeros for a layer without bias)."""
    zero = Z.dtype.type(0)
    rows, width = Z.shape
    for i in range(rows):
        if act == TANH:
            for j in range(width):
                Z[i, j] = tanh(Z[i, j] + b[j])
        elif act == SIGMOID:
            for j in range(width):
                Z[i, j] = sigmoid(Z[i, j] + b[j])
        else:
            for j in range(width):
                v = Z[i, j] + b[j]
                Z[i, j] = v if v > zero else zero  # NaN -> 0, as xpnet.activations.relu


@njit(**LOOPS)
def slope_backward(dY, Y, act, db):
    """``dY = dY * act'(Y)`` in place (the slope from the output ``Y``); ``db`` = its column sums."""
    zero, one = dY.dtype.type(0), dY.dtype.type(1)
    rows, width = dY.shape
    for j in range(width):
        db[j] = zero
    for i in range(rows):
        if act == TANH:
            for j in range(width):
                v = dY[i, j] * (one - Y[i, j] * Y[i, j])
                dY[i, j] = v
                db[j] += v
        elif act == SIGMOID:
            for j in range(width):
                v = dY[i, j] * (Y[i, j] * (one - Y[i, j]))
                dY[i, j] = v
                db[j] += v
        else:
            for j in range(width):
                v = dY[i, j] if Y[i, j] > zero else zero
                dY[i, j] = v
                db[j] += v


@njit(**LOOPS)
def output_rows(Z, b, T, first, rows, n_out, output, loss, stable, scale, with_loss, dZ, db):
    """The output layer on rows ``[0, rows)`` of the logits ``Z`` (bias not yet added), whose
    targets are ``T``'s rows from ``first``: ``dZ`` gets the loss's delta (divided by ``scale``
    when it is positive), ``db`` adds its column sums; returns the summed loss (0 unless
    ``with_loss``). Columns from ``n_out`` are left alone."""
    zero, one, half = Z.dtype.type(0), Z.dtype.type(1), Z.dtype.type(0.5)
    total = zero
    for i in range(rows):
        ti = first + i
        if output == SOFTMAX:
            m = Z[i, 0] + b[0]
            if stable:
                for c in range(1, n_out):
                    m = max(m, Z[i, c] + b[c])
            else:  # the tutorials' plain exp(Z) / sum(exp(Z))
                m = zero
            s = zero
            for c in range(n_out):
                e = exp(Z[i, c] + b[c] - m)
                dZ[i, c] = e
                s += e
            picked = zero
            for c in range(n_out):
                y = dZ[i, c] / s
                dZ[i, c] = y - T[ti, c]
                if with_loss:
                    picked += (Z[i, c] + b[c] if T[ti, c] > zero else zero) if stable else y * T[ti, c]
            if with_loss:
                total += (m + log(s)) - picked if stable else -log(picked)
        else:
            for c in range(n_out):
                v = Z[i, c] + b[c]
                y = sigmoid(v) if output == SIGMOID else v
                e = y - T[ti, c]
                if loss == SQUARED:
                    dZ[i, c] = e * (y * (one - y)) if output == SIGMOID else e
                    if with_loss:
                        total += e * e * half
                else:  # binary cross-entropy, from the logits: softplus(v) - t v
                    dZ[i, c] = e
                    if with_loss:
                        total += (v if v > zero else zero) + log1p(exp(-abs(v))) - T[ti, c] * v
        for c in range(n_out):
            if scale > zero:
                dZ[i, c] = dZ[i, c] / scale
            db[c] += dZ[i, c]
    return total
