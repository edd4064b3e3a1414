"""One full-batch gradient pass over row chunks, on fixed lanes, on threads.

:func:`gradients` is the pass every update of :func:`xpnet.fit` takes (full batch or one
minibatch). It cuts the N rows into chunks and accumulates the chunks' gradients, so an
epoch's peak memory depends on the chunk, not on N x width:

* up to ``SMALL`` rows (where the tutorials live) nothing is chunked: it is
  :func:`xpnet.core.network.gradients` on all rows, operation for operation, so the tutorials'
  digits reproduce bit for bit;
* otherwise chunk ``k`` goes to lane ``k % LANES``; each lane sums its chunks in order and
  the lane totals are added in lane order, so the sum has the same bits however many
  threads run the lanes (NumPy runs them on ``cpu_threads()`` threads with single-threaded
  BLAS; other backends one after the other);
* a lane runs a whole-pass kernel when one supports the case (:mod:`xpnet.engine.kernels`), else
  the generic pass (:func:`xpnet.core.network.gradients`) with the lane's primitives
  (:meth:`xpnet.core.ops.Ops.lane`: on NumPy, buffers of its own and in-place activations).

Chunks hold about ``ops.chunk_bytes`` of activations of the widest layer: 1 MiB on NumPy
(they stay in the CPU's cache), 256 MiB elsewhere (there it only bounds the memory).
Dropout and batch norm need the whole batch at once (masks per row are fine, but batch
statistics are not): with them the pass is one chunk.
"""

from __future__ import annotations

import functools

from ..backend import itemsize
from ..core.network import gradients as model_gradients
from ..core.ops import Gradients, Ops
from . import kernels
from .numpy_ops import LANES, SMALL
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


def gradients(ops: Ops, spec, W, b, X, T, reduction: str, *, with_loss: bool = False, rows: int | None = None,
              kernel: str = "auto", bn=None, masks=None) -> Gradients:
    """The gradients of the data part of the objective on ``(X (N, n_in), T (N, n_out))``.

    ``reduction="mean"`` divides by N. With ``with_loss`` also the summed data loss.
    ``rows`` overrides the chunk size (tests use it to force chunking); ``kernel`` chooses
    which whole-pass kernels may run (:data:`xpnet.engine.kernels.CHOICES`); ``bn`` and ``masks``
    are batch norm and dropout (one chunk).
    """
    n = X.shape[0]
    scale = n if reduction == "mean" else None
    if n <= SMALL or bn is not None or masks is not None:
        return model_gradients(ops, spec, W, b, X, T, scale, with_loss, bn=bn, masks=masks)
    item = itemsize(X.dtype)
    rows = rows or pass_rows(ops, spec.layer_sizes, item, n)
    chosen = kernels.select(spec, ops.name, "float32" if item == 4 else "float64", n, kernel)
    plan = chosen.plan(spec, W, b, scale, with_loss) if chosen else GenericPlan(ops, spec, W, b, scale, with_loss)
    if n <= rows and chosen is None:
        return model_gradients(ops, spec, W, b, X, T, scale, with_loss)
    chunks = [(start, min(start + rows, n)) for start in range(0, n, rows)]
    lanes = [chunks[k::LANES] for k in range(min(LANES, len(chunks)))]
    parallel = ops.parallel and n * max(spec.layer_sizes[1:]) >= PARALLEL_MIN
    return plan.combine(run_lanes(lambda lane: plan.lane_total(X, T, lane, min(rows, n)), lanes, parallel))


def pass_name(ops: Ops, model, n: int, kernel: str = "auto") -> str:
    """What computes a pass of ``n`` rows for ``model``: a kernel's name, ``"generic"`` (chunks of the
    generic pass) or ``"plain"`` (one plain pass: tiny problems, dropout, batch norm)."""
    if n <= SMALL or model.spec.dropout or model.bn is not None:
        return "plain"
    chosen = kernels.select(model.spec, ops.name, model.dtype_name, n, kernel)
    return chosen.name if chosen else "generic"


def full_pass(ops: Ops, spec, n: int, kernel: str = "auto"):
    """The pass a run takes over its ``n`` rows, chosen once: a function of ``(W, b, X, T, scale,
    with_loss=False) -> Gradients`` (:func:`xpnet.core.network.gradients`' arguments after ``ops, spec``).
    Up to ``SMALL`` rows it is :func:`xpnet.core.network.gradients` itself (tiny problems spend their time
    in calls), else :func:`gradients` over row chunks."""
    if n <= SMALL:
        return functools.partial(model_gradients, ops, spec)
    return functools.partial(_chunked, ops, spec, kernel)


def _chunked(ops: Ops, spec, kernel: str, W, b, X, T, scale, with_loss: bool = False) -> Gradients:
    """:func:`gradients` with :func:`xpnet.core.network.gradients`' arguments (``scale``: the row count of a mean)."""
    return gradients(ops, spec, W, b, X, T, "sum" if scale is None else "mean", with_loss=with_loss, kernel=kernel)


class GenericPlan:
    """The generic pass on a lane of chunks: :func:`xpnet.core.network.gradients` with the lane's primitives."""

    def __init__(self, ops: Ops, spec, W, b, scale, with_loss: bool):
        self.ops, self.spec, self.W, self.b, self.scale, self.with_loss = ops, spec, W, b, scale, with_loss

    def lane_total(self, X, T, chunks, rows) -> Gradients:
        lane = self.ops.lane(self.spec, self.W, self.b, rows, X.dtype)
        total: Gradients | None = None
        for a, z in chunks:
            part = model_gradients(lane, self.spec, self.W, self.b, X[a:z, ...], T[a:z, ...], self.scale,
                                   self.with_loss)
            total = lane.accumulate(total, part)
        assert total is not None  # a lane has at least one chunk
        return total

    def combine(self, totals) -> Gradients:
        """The lane totals added in lane order."""
        return functools.reduce(self.ops.accumulate, totals)
