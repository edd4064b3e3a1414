"""One gradient pass over row chunks, on fixed lanes, on threads: the driver of the chunked passes.

:func:`chunked` cuts the N rows of a batch into chunks and accumulates the chunks'
gradients, so a pass's peak memory depends on the chunk, not on N x width. Which pass runs
is decided elsewhere (:func:`xpnet.engine.plan.choose`); this driver runs the chunked ones:

* chunk ``k`` goes to lane ``k % LANES``; each lane sums its chunks in order and the lane
  totals are added in lane order, so the sum has the same bits however many threads run
  the lanes (NumPy runs them on ``cpu_threads()`` threads with single-threaded BLAS; other
  backends one after the other);
* a lane runs a whole-pass kernel's lanes when the plan chose one (:mod:`xpnet.engine.kernels`),
  else the generic pass (:func:`xpnet.core.network.gradients`) with the lane's primitives
  (:meth:`xpnet.core.ops.Ops.lane`: on NumPy, buffers of its own and in-place activations).

Chunks hold about ``ops.chunk_bytes`` of activations of the widest layer: 1 MiB on NumPy
(they stay in the CPU's cache), 256 MiB elsewhere (there it only bounds the memory).
"""

from __future__ import annotations

import functools

from ..backend import itemsize
from ..core.network import gradients as network_gradients
from ..core.ops import Gradients, Ops
from .numpy_ops import LANES
from .threads import cpu_threads, run_lanes

MIN_ROWS = 64  # fewest rows per chunk
PARALLEL_MIN = 1 << 19  # activations (rows x widest layer) from which lanes run on threads: waking
#                        two threads costs ~0.1 ms, a pass below this size about as much


def chunk_rows(ops: Ops, layer_sizes, item: int) -> int:
    """Rows per chunk: about ``ops.chunk_bytes`` for the widest layer's activations, and at
    least the input width, so adding the first layer's (n_in, width) gradient once per chunk
    stays cheap next to the chunk's products (measured: 8% on 784 -> 1024 -> 10)."""
    return max(MIN_ROWS, layer_sizes[0], ops.chunk_bytes // (max(layer_sizes[1:]) * item))


def pass_rows(ops: Ops, layer_sizes, item: int, n: int) -> int:
    """Rows per chunk of an ``n``-row pass: :func:`chunk_rows`, but on threads small enough for a
    chunk per lane, so mid-sized problems use every thread too (the bits depend only on ``n``)."""
    rows = chunk_rows(ops, layer_sizes, item)
    return min(rows, max(MIN_ROWS, -(-n // LANES))) if ops.parallel else rows


def rows_at_once(ops: Ops, layer_sizes, item: int, n: int) -> int:
    """Rows whose activations a pass over ``n`` rows holds at once (for memory estimates): a chunk
    per lane running at the same time (one lane at a time where lanes do not run on threads)."""
    lanes = min(LANES, cpu_threads()) if ops.parallel else 1
    return min(n, lanes * chunk_rows(ops, layer_sizes, item))


def chunked(ops: Ops, spec, kernel, W, b, X, T, scale=None, with_loss: bool = False, rows: int | None = None
            ) -> Gradients:
    """The gradients of ``(X (N, n_in), T (N, n_out))`` by row chunks: ``kernel``'s lanes (a
    kernel from :mod:`xpnet.engine.plan`) or, with None, the generic pass's. ``scale`` divides
    the loss's delta (the row count of a mean; None for a sum); with ``with_loss`` also the
    summed data loss. ``rows`` overrides the chunk size (tests force chunking with it)."""
    n = X.shape[0]
    rows = rows or pass_rows(ops, spec.layer_sizes, itemsize(X.dtype), n)
    if n <= rows and kernel is None:
        return network_gradients(ops, spec, W, b, X, T, scale, with_loss)
    lanes = kernel.prepare(spec, W, b, scale, with_loss) if kernel is not None else \
        GenericLanes(ops, spec, W, b, scale, with_loss)
    chunks = [(start, min(start + rows, n)) for start in range(0, n, rows)]
    groups = [chunks[k::LANES] for k in range(min(LANES, len(chunks)))]
    parallel = ops.parallel and n * max(spec.layer_sizes[1:]) >= PARALLEL_MIN
    return lanes.combine(run_lanes(lambda group: lanes.lane_total(X, T, group, min(rows, n)), groups, parallel))


class GenericLanes:
    """The generic pass on a lane of chunks: :func:`xpnet.core.network.gradients` with the lane's primitives."""

    def __init__(self, ops: Ops, spec, W, b, scale, with_loss: bool):
        self.ops, self.spec, self.W, self.b, self.scale, self.with_loss = ops, spec, W, b, scale, with_loss

    def lane_total(self, X, T, chunks, rows) -> Gradients:
        lane = self.ops.lane(self.spec, self.W, self.b, rows, X.dtype)
        total: Gradients | None = None
        for a, z in chunks:
            part = network_gradients(lane, self.spec, self.W, self.b, X[a:z, ...], T[a:z, ...], self.scale,
                                     self.with_loss)
            total = lane.accumulate(total, part)
        assert total is not None  # a lane has at least one chunk
        return total

    def combine(self, totals) -> Gradients:
        """The lane totals added in lane order."""
        return functools.reduce(self.ops.accumulate, totals)
