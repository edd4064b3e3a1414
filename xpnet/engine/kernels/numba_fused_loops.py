"""The fused one-hidden-layer pass, generated per shape and compiled by numba.

One call runs a lane: for each of its chunks (the fixed blocks of the sum), rows go a few at
a time (:func:`~xpnet.engine.kernels.numba_fused.rows_per_block`: 8 or 4) through two sweeps over
the hidden units ``j``:

1. forward: ``z = b0[j] + sum_k x_k W0[k, j]``, ``y = act(z)``, kept in a (rows, width)
   buffer (a few KiB: it stays in the L1/L2 cache), and each row's logits ``sum_j y W1[j, c]``;
2. the output layer for those rows (:func:`~xpnet.engine.kernels.numba_elementwise.output_rows`:
   output, loss, delta);
3. backward: ``dW1[j, c] += y d_c``, ``g = (sum_c W1[j, c] d_c) act'(y)``, ``dW0[k, j] += x_k g``,
   ``db0[j] += g``.

The sums of a chunk start from zero and are added to the lane's at its end: the fixed
blocks, summed in a fixed order. The input width and the number of outputs are written into
the code (padded up to :data:`WIDTHS`), so every ``x_k``, logit and delta is a scalar in a
register and LLVM vectorizes the ``j`` loops; the rows past the real widths carry zero
weights and zero deltas. One function per activation, input and output width.

The source is generated from :data:`TEMPLATE` and compiled as if it were written in this
file (numba's on-disk cache is keyed by this file, so it follows the template); imports
numba: loaded only through :mod:`xpnet.engine.kernels.numba_support`.
"""

from __future__ import annotations

import threading

from numba import njit

from ..activations import TABLE
from .numba_elementwise import LOOPS, output_rows
from .numba_fused import WIDTHS, padded, rows_per_block
from .numba_math import sigmoid, tanh

_COMPILED: dict = {}
_LOCK = threading.Lock()

TEMPLATE = '''
def {name}(X, T, W0, b0, W1T, b1, chunks, acc, accb1, part, partb1, abuf, lbuf, dbuf, n_in, n_out, output, loss,
           stable, scale, with_loss):
    H = b0.shape[0]
    zero, one = X.dtype.type(0), X.dtype.type(1)
{weights}
    total = zero
    for q in range(chunks.shape[0]):
        start, stop = chunks[q, 0], chunks[q, 1]
        part[:] = zero
        partb1[:] = zero
        chunk_loss = zero
        for i0 in range(start, stop, {R}):
            rows = min({R}, stop - i0)
{inputs}
            for j in range(H):
{forward}
{logits}
            chunk_loss += output_rows(lbuf, b1, T, i0, rows, n_out, output, loss, stable, scale, with_loss, dbuf,
                                      partb1)
            for r in range(rows, {R}):
                for c in range(n_out):
                    dbuf[r, c] = zero
{deltas}
            for j in range(H):
{backward}
        acc += part
        accb1 += partb1
        total += chunk_loss
    return total
'''



def source(act: str, n_in: int, n_out: int, rows: int) -> tuple[str, str]:
    """``(name, source)`` of the lane function for activation ``act``, padded widths ``n_in``,
    ``n_out`` and ``rows`` rows a sweep."""
    D, C, R = n_in, n_out, rows
    name = f"fused_lane_{act}_{D}_{C}_{R}"
    body = 16 * " "

    def forward():
        lines = []
        for r in range(R):
            z = "b0[j]" + "".join(f" + x{r}_{k} * w0_{k}[j]" for k in range(D))
            lines.append(f"y = {TABLE[act].activate.format(z=f'({z})')}")
            lines.append(f"a{r}[j] = y")
            lines += [f"l{r}_{c} += y * w1_{c}[j]" for c in range(C)]
        return "\n".join(body + line for line in lines)

    def backward():
        lines = [f"y{r} = a{r}[j]" for r in range(R)]
        lines += [f"g1_{c}[j] += " + " + ".join(f"y{r} * d{r}_{c}" for r in range(R)) for c in range(C)]
        lines += [f"w{c} = w1_{c}[j]" for c in range(C)]
        for r in range(R):
            dot = " + ".join(f"w{c} * d{r}_{c}" for c in range(C))
            if act == "relu":
                lines.append(f"g{r} = ({dot}) if y{r} > zero else zero")
            else:
                lines.append(f"g{r} = ({dot}) * ({TABLE[act].slope.format(y=f'y{r}')})")
        lines += [f"g0_{k}[j] += " + " + ".join(f"x{r}_{k} * g{r}" for r in range(R)) for k in range(D)]
        lines.append("gb[j] += " + " + ".join(f"g{r}" for r in range(R)))
        return "\n".join(body + line for line in lines)

    weights = [f"w0_{k} = W0[{k}]" for k in range(D)] + [f"w1_{c} = W1T[{c}]" for c in range(C)]
    weights += [f"g1_{c} = part[{c}]" for c in range(C)] + [f"gb = part[{C}]"]
    weights += [f"g0_{k} = part[{C + 1 + k}]" for k in range(D)] + [f"a{r} = abuf[{r}]" for r in range(R)]
    inputs = [f"x{r}_{k} = X[i0 + {r}, {k}] if {r} < rows and {k} < n_in else zero" for r in range(R) for k in range(D)]
    inputs += [f"l{r}_{c} = zero" for r in range(R) for c in range(C)]
    text = TEMPLATE.format(
        name=name, R=R,
        weights="\n".join("    " + line for line in weights),
        inputs="\n".join(12 * " " + line for line in inputs),
        logits="\n".join(12 * " " + f"lbuf[{r}, {c}] = l{r}_{c}" for r in range(R) for c in range(C)),
        deltas="\n".join(12 * " " + f"d{r}_{c} = dbuf[{r}, {c}]" for r in range(R) for c in range(C)),
        forward=forward(), backward=backward())
    return name, text


def lane_function(act: str, n_in: int, n_out: int, rows: int):
    """The jitted lane function for activation ``act`` (``"tanh"``, ``"sigmoid"``, ``"relu"``),
    padded widths ``(n_in, n_out)`` and ``rows`` rows a sweep (generated and wrapped once per
    process; numba compiles it at its first call, or loads it from its cache)."""
    key = (act, n_in, n_out, rows)
    with _LOCK:
        if key not in _COMPILED:
            name, text = source(act, n_in, n_out, rows)
            exec(compile(text, __file__, "exec"), globals())  # a function of this module, as if written here
            _COMPILED[key] = njit(**LOOPS)(globals()[name])
        return _COMPILED[key]


__all__ = ["WIDTHS", "lane_function", "output_rows", "padded", "rows_per_block", "sigmoid", "source", "tanh"]
