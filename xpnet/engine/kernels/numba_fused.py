"""The tutorials' nets in one fused pass, compiled by numba: forward, loss delta and every gradient per row block.

Takes one hidden layer (tanh, sigmoid or relu: xpnet's own) between at most
:data:`MAX_INPUTS` inputs and at most :data:`MAX_OUTPUTS` outputs (not both above 4 and 2:
see :func:`fits`), any width, any output and loss, with or without biases, float32 or
float64, on NumPy, for passes of more than ``ops.SMALL`` rows: the tutorials' nets (moons
2 -> H -> 2, XOR 3 -> H -> 1, iris 4 -> H -> 3) at any N and H. Each lane runs one compiled call over its chunks
(:mod:`~xpnet.engine.kernels.numba_fused_loops`): no (rows x width) array is ever written to memory
(a few rows of activations stay in the cache), every gradient is summed in the same sweep,
and the call releases the GIL, so the lanes run in parallel on the driver's threads. Sums
start from zero in every chunk and are added in chunk, then lane order: the bits do not
depend on the thread count.

Wider inputs or more outputs make each hidden unit's work a small matrix product, which
BLAS does better, and LLVM stops vectorizing the sweeps once they carry that many sums
(measured on AVX-512: 8 -> 1024 -> 4 ran 10x slower than 8 -> 1024 -> 2, 16 -> 1024 -> 16
100x): those nets take :mod:`~xpnet.engine.kernels.numba_layers`.
"""

from __future__ import annotations

import numpy as np

from ...core.ops import Gradients
from ..activations import in_place
from ..numpy_ops import SMALL
from . import numba_support

WIDTHS = (1, 2, 4, 8)  # input widths and output counts the code is written for (padded up)
MAX_INPUTS = 8  # inputs (features) up to this
MAX_OUTPUTS = 4  # outputs up to this
MAX_PADDED = 10  # padded inputs + padded outputs up to this (8 -> H -> 4 does not vectorize)


def padded(width: int) -> int:
    """The smallest of :data:`WIDTHS` that holds ``width``."""
    return next(w for w in WIDTHS if w >= width)


def fits(n_in: int, n_out: int) -> bool:
    """Whether the compiled sweeps take ``n_in`` inputs and ``n_out`` outputs: every pair up to
    8 and 4 but 5-8 inputs with 3-4 outputs."""
    return 1 <= n_in <= MAX_INPUTS and 1 <= n_out <= MAX_OUTPUTS and padded(n_in) + padded(n_out) <= MAX_PADDED


def rows_per_block(n_in: int, n_out: int) -> int:
    """Rows per sweep for padded widths: more rows share each load of the weights and sums,
    until LLVM no longer vectorizes the sweeps (measured on AVX-512, ns per row and hidden
    unit: 2 -> H -> 2 0.31 with 8 rows, 0.31 with 4, 0.57 with 1; 4 -> H -> 4 0.59 with 4,
    2.3 with 8)."""
    return 8 if n_in + n_out <= 4 else 4


class _Kernel(numba_support.Kernel):
    name = "numba-fused"

    def supports(self, spec, library: str, dtype: str, n_rows: int) -> bool:
        sizes = spec.layer_sizes
        return (library == "numpy" and n_rows > SMALL and len(sizes) == 3 and fits(sizes[0], sizes[2])
                and in_place(spec.hidden[0]) is not None and numba_support.ready(spec, dtype))

    def prepare(self, spec, W, b, scale, with_loss):
        return FusedLanes(spec, W, b, scale, with_loss)

    def dispatchers(self, spec, dtype: str) -> list:
        loops = numba_support.jitted("numba_fused_loops")
        n_in, n_out = padded(spec.layer_sizes[0]), padded(spec.layer_sizes[-1])
        return [loops.lane_function(spec.hidden[0].name, n_in, n_out, rows_per_block(n_in, n_out))]


KERNEL = _Kernel()


class FusedLanes:
    """One pass: the weights padded for the compiled shape; :meth:`lane_total` per lane, :meth:`combine`."""

    def __init__(self, spec, W, b, scale, with_loss):
        loops = numba_support.jitted("numba_fused_loops")
        codes = numba_support.jitted("numba_elementwise")
        n_in, width, n_out = spec.layer_sizes
        self.n_in, self.n_out, self.with_loss = n_in, n_out, with_loss
        self.pad_in, self.pad_out = padded(n_in), padded(n_out)
        self.rows = rows_per_block(self.pad_in, self.pad_out)
        self.fn = loops.lane_function(spec.hidden[0].name, self.pad_in, self.pad_out, self.rows)
        self.dtype = dtype = W[0].dtype
        self.W0 = np.zeros((self.pad_in, width), dtype)
        self.W0[:n_in] = W[0]
        self.W1T = np.zeros((self.pad_out, width), dtype)
        self.W1T[:n_out] = W[1].T
        self.b0 = np.zeros(width, dtype) if b is None else np.ascontiguousarray(b[0])
        self.b1 = np.zeros(self.pad_out, dtype)
        self.has_bias = b is not None
        if b is not None:
            self.b1[:n_out] = b[1]
        self.codes = (codes.OUTPUTS[spec.output], codes.LOSSES[spec.loss.name], spec.stable, dtype.type(scale or 0),
                      with_loss)

    def lane_total(self, X, T, chunks, rows) -> tuple:
        """``(sums, output bias sums, loss)`` of one lane's chunks, in one compiled call."""
        dtype, width = self.dtype, self.b0.shape[0]
        acc = np.zeros((self.pad_out + 1 + self.pad_in, width), dtype)  # dW1 (transposed), db0, dW0 rows
        accb1 = np.zeros(self.pad_out, dtype)
        buffers = (np.empty_like(acc), np.empty_like(accb1), np.empty((self.rows, width), dtype),
                   np.empty((self.rows, self.pad_out), dtype), np.zeros((self.rows, self.pad_out), dtype))
        loss = self.fn(np.ascontiguousarray(X), np.ascontiguousarray(T), self.W0, self.b0, self.W1T, self.b1,
                       np.asarray(chunks, np.int64).reshape(-1, 2), acc, accb1, *buffers, self.n_in, self.n_out,
                       *self.codes)
        return acc, accb1, dtype.type(loss)

    def combine(self, totals) -> Gradients:
        """The lanes' sums added in lane order, cut back to the real shapes."""
        acc, accb1, loss = totals[0]
        for other, other_b1, other_loss in totals[1:]:
            np.add(acc, other, out=acc)
            np.add(accb1, other_b1, out=accb1)
            loss = loss + other_loss
        first = self.pad_out + 1
        dW = [acc[first:first + self.n_in].copy(), np.ascontiguousarray(acc[:self.n_out].T)]
        db = [acc[self.pad_out].copy(), accb1[:self.n_out].copy()] if self.has_bias else None
        return Gradients(dW, db, loss if self.with_loss else None)
