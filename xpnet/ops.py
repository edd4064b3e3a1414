"""Backend-specific fast paths behind one small interface; the generic array-API form is the default.

The thinc ``Ops`` pattern: :class:`Ops` implements the full-batch gradient pass with the
array API only (it calls :func:`xpnet.mlp.forward_plain` and :func:`xpnet.mlp.backward_from_delta`,
so the math is written once); :class:`NumpyOps` overrides how the work is run on NumPy.
:func:`get_ops` picks the implementation for a backend.

**Full batch over row chunks.** :meth:`Ops.gradients` cuts the N rows into chunks of
:meth:`Ops.chunk_rows` rows and accumulates the chunks' gradients, so an epoch's peak
memory depends on the chunk, not on N x width. Chunk ``k`` goes to lane ``k % LANES``;
each lane sums its chunks in order and the lane totals are added in lane order, so the
sum has the same bits however many threads run the lanes. Up to ``SMALL`` rows (where
the tutorials live) the pass is the plain ``forward`` + ``backward``, operation for
operation, so the tutorials reproduce bit for bit.

**Generic** (:class:`Ops`, any backend): the chunks are the model's own ``forward`` and
``backward``; a chunk holds up to 256 MiB of activations, which only bounds the memory.

**NumPy** (:class:`NumpyOps`): chunks of about 1 MiB of activations, so they stay in the
CPU cache; the lanes run on ``cpu_threads()`` threads with single-threaded BLAS (NumPy
releases the GIL in BLAS and ufuncs). Inside a chunk nothing is allocated per layer:
every hidden layer is computed into the lane's buffers with ``out=`` and its activation
and derivative run in place; gradients are summed into the lane's accumulators. Three
shape-driven choices avoid BLAS's slow corners (measured with OpenBLAS, see the README):

* products with a dimension of at most ``THIN`` (the tutorials' 2 inputs and 2 classes)
  run as that many matrix-vector products: ``gemm`` is 2-3x slower there;
* a product with inner size 1 is a broadcast multiply (``gemm`` is about 4x slower);
* inputs up to ``FOLD`` features wide get a column of ones, so the first bias is added by
  the first product and its gradient comes out of the first weight gradient (two passes
  over the (rows, width) activations fewer).

The tutorials' nets (one hidden layer, a narrow input, few outputs) go further
(:meth:`_Plan.gram_chunk`): their activations are kept transposed, (width, rows), and the
first weight gradient is formed from the activation slopes without the back-propagated
delta. Up to ``SMALL`` rows NumPy runs the plain pass itself (:meth:`NumpyOps._small`),
with cheaper calls and the same bits.

The results equal the generic pass up to float rounding (the products sum in another
order), and have the same bits whatever the thread count.

:func:`weight_gradient` computes ``H.T @ dZ`` for the unchunked passes (minibatches):
multi-threaded BLAS splits that long sum across threads (OpenBLAS does beyond about 1,000
rows), so its last bits would depend on the thread count. On NumPy, long products are
cut into fixed row chunks on fixed lanes in the same way.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from .activations import exp_limit, output_forward
from .backend import blas_single_threaded, cpu_threads

SMALL = 256  # rows up to which the pass is the plain one (the tutorials live here)
ROWS = 2048  # rows per chunk of weight_gradient
LANES = 4  # fixed number of partial sums: the summation order never depends on threads
MIN_ROWS = 64  # fewest rows per chunk of the full-batch pass
THIN = 3  # product dimensions up to this run as matrix-vector products
FOLD = 16  # inputs up to this wide carry a column of ones for the first bias
GRAM = 16  # (inputs + 1) x outputs up to this: one-hidden-layer nets take _Plan.gram_chunk
PARALLEL_MIN = 1 << 19  # activations (rows x widest layer) from which lanes run on threads: waking
#                        two threads costs ~0.1 ms, a pass below this size about as much


class Gradients(NamedTuple):
    """What a full-batch gradient pass returns."""

    dW: list  # per layer (n_in, n_out)
    db: list | None  # per layer (n_out,); None without bias units
    data_loss: Any = None  # 0-d array: the summed data loss of the pass (when asked for)


def weight_gradient(xp, H, dZ):
    """``H.T @ dZ`` of shape (n_in, n_out), summed over the N rows deterministically."""
    n = H.shape[0]
    if n <= SMALL or not array_api_compat.is_numpy_namespace(xp):
        return H.T @ dZ
    chunks = [(start, min(start + ROWS, n)) for start in range(0, n, ROWS)]
    lanes = [chunks[k::LANES] for k in range(min(LANES, len(chunks)))]

    def lane_total(lane):
        total = None
        for a, z in lane:
            part = H[a:z].T @ dZ[a:z]
            total = part if total is None else total + part
        return total

    return functools.reduce(np.add, run_lanes(lane_total, lanes))


def run_lanes(fn, lanes, parallel: bool = True) -> list:
    """``[fn(lane) for lane in lanes]`` with single-threaded BLAS, on up to ``cpu_threads()``
    threads of a pool kept for the process (``parallel=False``: in this thread)."""
    workers = min(cpu_threads(), len(lanes)) if parallel else 1
    with blas_single_threaded():
        if workers <= 1:
            return [fn(lane) for lane in lanes]
        return list(_pool(workers).map(fn, lanes))


_POOLS: dict = {}  # worker count: ThreadPoolExecutor (starting threads costs ~0.5 ms a pass)
_POOLS_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    with _POOLS_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="xpnet-lane")
        return _POOLS[workers]


if hasattr(os, "register_at_fork"):  # a forked child has the pools' objects but not their threads
    os.register_at_fork(after_in_child=_POOLS.clear)


class Ops:
    """The generic array-API implementation (any backend); see the module docstring."""

    chunk_bytes = 1 << 28  # bytes per activation buffer of a chunk: only bounds the memory

    def __init__(self, xp):
        from . import mlp  # not at the top: mlp imports this module

        # chunks never carry dropout or batch norm: the plain forward, without mlp.forward's dispatch
        self.xp, self._forward, self._backward = xp, mlp.forward_plain, mlp.backward_from_delta

    def chunk_rows(self, layer_sizes, itemsize: int) -> int:
        """Rows per chunk: about ``chunk_bytes`` for the widest layer's activations, and at
        least the input width, so adding the first layer's (n_in, width) gradient once per
        chunk stays cheap next to the chunk's products (measured: 8% on 784 -> 1024 -> 10)."""
        return max(MIN_ROWS, layer_sizes[0], self.chunk_bytes // (max(layer_sizes[1:]) * itemsize))

    def gradients(self, spec, W, b, X, T, reduction: str, *, with_loss: bool = False,
                  rows: int | None = None) -> Gradients:
        """Gradients of the full-batch objective's data part on ``(X (N, n_in), T (N, n_out))``.

        ``reduction="mean"`` scales by 1/N. With ``with_loss`` also the summed data loss.
        ``rows`` overrides :meth:`chunk_rows` (tests use it to force chunking).
        """
        n = X.shape[0]
        if n > SMALL:  # small problems skip even the chunk size (their time goes per epoch)
            rows = rows or self.chunk_rows(spec.layer_sizes, _itemsize(X))
        if n <= SMALL or n <= rows:
            return self._chunk(spec, W, b, X, T, reduction, n, with_loss, whole=True)
        chunks = [(start, min(start + rows, n)) for start in range(0, n, rows)]

        def lane_total(k):
            total = None
            for a, z in chunks[k::LANES]:
                part = self._chunk(spec, W, b, X[a:z, ...], T[a:z, ...], reduction, n, with_loss)
                total = part if total is None else _add(total, part)
            return total

        return functools.reduce(_add, [lane_total(k) for k in range(min(LANES, len(chunks)))])

    def _chunk(self, spec, W, b, X, T, reduction, n, with_loss, whole=False) -> Gradients:
        """One chunk: forward, the output delta (scaled by 1/n for the mean), backward."""
        xp = self.xp
        Y, (inputs, Z) = self._forward(spec, xp, W, b, X)
        dZ = spec.loss.delta(xp, spec.output, Y, T)
        if reduction == "mean":
            dZ = dZ / n
        dW, db = self._backward(spec, xp, W, inputs, dZ, weight_gradient if whole and n > SMALL else _plain_product)
        loss = spec.loss.total(xp, Z, Y, T, spec.stable) if with_loss else None
        return Gradients(dW, db, loss)


def _plain_product(xp, H, dZ):
    """``H.T @ dZ`` in one product (inside a chunk, whose rows are few)."""
    return H.T @ dZ


def _add(total: Gradients, part: Gradients) -> Gradients:
    """``total + part``, term by term."""
    return Gradients([a + c for a, c in zip(total.dW, part.dW)],
                     None if total.db is None else [a + c for a, c in zip(total.db, part.db)],
                     None if total.data_loss is None else total.data_loss + part.data_loss)


class NumpyOps(Ops):
    """NumPy: cache-sized chunks on threads, in-place layers, BLAS's slow shapes avoided
    (see the module docstring). Equal to :class:`Ops` up to float rounding."""

    chunk_bytes = 1 << 20
    parallel_min = PARALLEL_MIN  # below this many activations a pass runs on one thread

    def gradients(self, spec, W, b, X, T, reduction: str, *, with_loss: bool = False,
                  rows: int | None = None) -> Gradients:
        n = X.shape[0]
        if n <= SMALL:  # the tutorials' plain pass
            return self._small(spec, W, b, X, T, reduction, with_loss)
        if len(W) == 1:  # no hidden layer: the whole net is the output layer
            return super().gradients(spec, W, b, X, T, reduction, with_loss=with_loss, rows=rows)
        rows = rows or self.pass_rows(spec.layer_sizes, X.dtype.itemsize, n)
        plan = _Plan(spec, W, b, n if reduction == "mean" else None, with_loss)
        chunks = [(start, min(start + rows, n)) for start in range(0, n, rows)]
        lanes = [chunks[k::LANES] for k in range(min(LANES, len(chunks)))]
        parallel = n * max(spec.layer_sizes[1:]) >= self.parallel_min
        return plan.combine(run_lanes(lambda lane: plan.lane_total(X, T, lane, min(rows, n)), lanes, parallel))

    def _small(self, spec, W, b, X, T, reduction, with_loss) -> Gradients:
        """The plain pass for up to ``SMALL`` rows: the operations of :func:`xpnet.mlp.forward_plain`
        and :func:`xpnet.mlp.backward_from_delta` in the same order, so the same bits (tested),
        with ``ndarray.dot`` for ``@`` and ``np.add.reduce`` for the array-API ``sum``, which
        cost half as much per call on tiny arrays (where the tutorials spend their time)."""
        xp, hidden, last = self.xp, spec.hidden, len(W) - 1
        inputs, H = [], X
        for i in range(last):
            inputs.append(H)
            Z = H.dot(W[i]) if b is None else H.dot(W[i]) + b[i]
            H = hidden[i].forward(xp, Z)
        inputs.append(H)
        Z = H.dot(W[last]) if b is None else H.dot(W[last]) + b[last]
        Y = output_forward(xp, spec.output, Z, spec.stable)
        dZ = spec.loss.delta(xp, spec.output, Y, T)
        if reduction == "mean":
            dZ = dZ / X.shape[0]
        dW, db = [None] * (last + 1), None if b is None else [None] * (last + 1)
        for i in range(last, -1, -1):
            dW[i] = inputs[i].T.dot(dZ)
            if db is not None:
                db[i] = np.add.reduce(dZ, axis=0)
            if i:
                dZ = hidden[i - 1].backward(xp, dZ.dot(W[i].T), inputs[i])
        return Gradients(dW, db, spec.loss.total(xp, Z, Y, T, spec.stable) if with_loss else None)

    def pass_rows(self, layer_sizes, itemsize: int, n: int) -> int:
        """Rows per chunk of an ``n``-row pass: :meth:`chunk_rows`, but small enough for a
        chunk per lane, so mid-sized problems use every thread too (bits never depend on
        the thread count: only on ``n``)."""
        return min(self.chunk_rows(layer_sizes, itemsize), max(MIN_ROWS, -(-n // LANES)))


class _Plan:
    """One NumPy pass: the prepared weights and, per layer, how its products run."""

    def __init__(self, spec, W, b, scale, with_loss):
        sizes = spec.layer_sizes
        self.spec, self.W, self.b, self.scale, self.with_loss = spec, W, b, scale, with_loss
        self.staged = sizes[0] <= FOLD  # the input chunk is copied, transposed, into the lane
        self.fold = self.staged and b is not None
        self.k = sizes[0] + self.fold  # inner size of the first product
        self.W0 = np.concatenate([W[0], b[0][None, :]]) if self.fold else W[0]  # (k, width 1)
        self.thin_out = sizes[-1] <= THIN
        self.WoutT = np.ascontiguousarray(W[-1].T) if self.thin_out else None  # (n_out, width)
        self.steps = [_IN_PLACE[act.name] for act in spec.hidden]
        # one hidden layer on a staged input with few outputs: gram_chunk, whose (width, k * n_out)
        # sums are contracted with W[1] at the end; their columns are padded to a multiple of 4
        # with zero rows of M (OpenBLAS's sgemm: @ (rows, 8) takes fewer instructions than @ (rows, 6))
        self.gram = len(W) == 2 and self.staged and self.k * sizes[-1] <= GRAM
        self.gram_cols = -(-self.k * sizes[-1] // 4) * 4
        self.W0T = np.ascontiguousarray(self.W0.T) if self.gram else None  # (width, k)
        self.W1T = np.ascontiguousarray(W[1].T) if self.gram else None  # (n_out, width)

    def lane_total(self, X, T, chunks, rows) -> "_Lane":
        """The sums of one lane's chunks (rows: the tallest chunk)."""
        lane = _Lane(self, rows, X.dtype)
        chunk = self.gram_chunk if self.gram else self.chunk
        for a, z in chunks:
            chunk(lane, X[a:z], T[a:z])
        return lane

    def chunk(self, lane: "_Lane", X, T) -> None:
        """Forward and backward on one chunk of rows; adds its gradients to ``lane``."""
        W, b, r = self.W, self.b, X.shape[0]
        if self.staged:
            xT = lane.xT[:, :r]
            xT[:X.shape[1]] = X.T  # the ones row of the folded bias was set with the buffer
            X = xT.T
        inputs, H = [X], _product(X, self.W0, lane.out[0][:r])
        if b is not None and not self.fold:
            np.add(H, b[0], out=H)
        self.steps[0][0](H)
        for i in range(1, len(W) - 1):
            inputs.append(H)
            H = _product(H, W[i], lane.out[i][:r])
            if b is not None:
                np.add(H, b[i], out=H)
            self.steps[i][0](H)
        inputs.append(H)
        if self.thin_out:
            Z = lane.logits[:, :r]
            for c in range(Z.shape[0]):
                np.matmul(H, self.WoutT[c], out=Z[c])
            Z = Z.T
        else:
            Z = np.matmul(H, W[-1], out=lane.logits[:r])
        dZ = self._output_delta(lane, Z, T)
        for i in range(len(W) - 1, -1, -1):
            self._add_weight_gradient(lane, i, inputs[i], dZ)
            if b is not None and not (i == 0 and self.fold):
                np.add(lane.db[i], np.add.reduce(dZ, axis=0), out=lane.db[i])
            if i:  # dZ = act'(dZ @ W.T) in the lane's delta buffer; inputs[i] is used up after this
                dZ = self.steps[i - 1][1](_product(dZ, W[i].T, lane.delta[i - 1][:r]), inputs[i])

    def _output_delta(self, lane, Z, T):
        """The output layer on (rows, n_out) arrays from its logits ``Z`` (bias not yet added):
        output, loss, and its delta."""
        spec = self.spec
        if self.b is not None:
            Z = Z + self.b[-1]
        Y = output_forward(np, spec.output, Z, spec.stable)
        dZ = spec.loss.delta(np, spec.output, Y, T)
        if self.with_loss:
            lane.loss = lane.loss + spec.loss.total(np, Z, Y, T, spec.stable)
        return dZ / self.scale if self.scale else dZ

    def _add_weight_gradient(self, lane, i, A, D) -> None:
        """``lane.dW[i] += A.T @ D``; thin sides as matrix-vector products (``dW[i]`` is
        kept transposed, (n_out, n_in), for a thin output layer)."""
        part = lane.part[i]
        if i == 0 and self.staged and self.k <= THIN:
            for j, column in enumerate(A.T):  # the staged input's columns are rows of the lane buffer
                np.matmul(column, D, out=part[j])
        elif i == len(self.W) - 1 and self.thin_out:
            for c, column in enumerate(np.ascontiguousarray(D.T)):
                np.matmul(column, A, out=part[c])
        else:
            np.matmul(A.T, D, out=part)
        np.add(lane.dW[i], part, out=lane.dW[i])

    def gram_chunk(self, lane: "_Lane", X, T) -> None:
        """:meth:`chunk` for one hidden layer on a narrow input with few outputs (the
        tutorials' nets), the activations kept transposed, (width, rows).

        The transposed layout makes the first product, (width, k) @ (k, rows), about twice
        as fast as (rows, k) @ (k, width) with OpenBLAS for small k (measured), and the
        first weight gradient never forms the back-propagated (rows, width) delta:
        ``dW0 = X.T @ ((dZ @ W1.T) * S)`` with S the activation's slopes is
        ``dW0[k, j] = sum_c W1[j, c] * G[j, (k, c)]`` where ``G = S.T @ M.T`` and
        ``M[(k, c), i] = X[i, k] * dZ[i, c]``; ``G`` is summed over the chunks and
        :meth:`combine` contracts it with ``W1``. Two passes over the activations fewer.
        """
        r = X.shape[0]
        xT = lane.xT[:, :r]
        xT[:X.shape[1]] = X.T  # the ones row of the folded bias was set with the buffer
        AT = np.matmul(self.W0T, xT, out=lane.buffer(0, r))
        self.steps[0][0](AT)
        ZT, n_out = lane.logits[:, :r], self.W1T.shape[0]
        if n_out <= THIN:
            for c in range(n_out):
                np.matmul(self.W1T[c], AT, out=ZT[c])
        else:
            np.matmul(self.W1T, AT, out=ZT)
        dZ = self._output_delta(lane, ZT.T, T)
        dZT, part = np.ascontiguousarray(dZ.T), lane.part[1]
        if n_out <= THIN:
            for c in range(n_out):
                np.matmul(AT, dZT[c], out=part[c])
        else:
            np.matmul(dZT, AT.T, out=part)
        np.add(lane.dW[1], part, out=lane.dW[1])
        if self.b is not None:
            np.add(lane.db[1], np.add.reduce(dZ, axis=0), out=lane.db[1])
        ST = self.steps[0][2](AT, lane.buffer(1, r))  # the slopes, in the activations' buffer
        M = lane.m[:, :r]
        for k in range(self.k):
            np.multiply(xT[k], dZT, out=M[k * n_out:(k + 1) * n_out])
        np.matmul(ST, M.T, out=lane.part[0])
        np.add(lane.dW[0], lane.part[0], out=lane.dW[0])

    def combine(self, lanes) -> Gradients:
        """The lane totals added in lane order, as (n_in, n_out) gradients and biases."""
        total = lanes[0]
        for lane in lanes[1:]:
            for a, c in zip(total.sums(), lane.sums()):
                np.add(a, c, out=a)
            total.loss = total.loss + lane.loss
        dW, db = list(total.dW), total.db
        if self.gram:  # dW0[k, j] = sum_c W1[j, c] * G[j, (k, c)]
            G = dW[0][:, :self.k * self.W1T.shape[0]].T.reshape(self.k, -1, dW[0].shape[0])
            dW[0] = np.add.reduce(G * self.W1T[None, :, :], axis=1)
        if self.thin_out or self.gram:
            dW[-1] = np.ascontiguousarray(dW[-1].T)
        if self.fold:
            db[0] = dW[0][-1].copy()
            dW[0] = dW[0][:-1].copy()
        return Gradients(dW, db, total.loss if self.with_loss else None)


class _Lane:
    """One lane's buffers (activations, deltas, logits, staged input) and running sums."""

    def __init__(self, plan: _Plan, rows: int, dtype):
        sizes = plan.spec.layer_sizes
        widths = sizes[1:-1]
        self.out = [np.empty((rows, w), dtype) for w in widths]
        self.delta = [np.empty((rows, w), dtype) for w in widths]
        transposed = plan.thin_out or plan.gram
        self.logits = np.empty((sizes[-1], rows) if transposed else (rows, sizes[-1]), dtype)
        if plan.staged:
            self.xT = np.empty((plan.k, rows), dtype)
            self.xT[sizes[0]:] = 1
        if plan.gram:
            self.m = np.zeros((plan.gram_cols, rows), dtype)  # rows past k * n_out stay 0
        first = (sizes[1], plan.gram_cols) if plan.gram else (plan.k, sizes[1])
        shapes = [first] + [(a, c) for a, c in zip(sizes[1:-1], sizes[2:])]
        if transposed:
            shapes[-1] = shapes[-1][::-1]
        self.dW = [np.zeros(s, dtype) for s in shapes]
        self.part = [np.empty(s, dtype) for s in shapes]  # one chunk's product, before it is added
        self.db = None if plan.b is None else [np.zeros((w,), dtype) for w in sizes[1:]]
        self.loss = dtype.type(0)

    def buffer(self, i: int, rows: int):
        """Hidden buffer ``i`` (0: activations, 1: deltas) of the first layer as a contiguous
        (width, rows) array, for :meth:`_Plan.gram_chunk`'s transposed layout."""
        width = self.out[0].shape[1]
        return (self.out, self.delta)[i][0].reshape(-1)[:width * rows].reshape(width, rows)

    def sums(self) -> list:
        return self.dW + (self.db or [])


def _product(A, B, out):
    """``A @ B`` into ``out``; with inner size 1 a broadcast multiply (OpenBLAS's gemm is slow there)."""
    if A.shape[1] == 1:
        return np.multiply(A, B, out=out)
    return np.matmul(A, B, out=out)


def _tanh(Z):
    np.tanh(Z, out=Z)


def _tanh_backward(dY, Y):
    """dY * (1 - Y * Y), as :func:`xpnet.activations.tanh_backward`, in the buffers of dY and Y."""
    return np.multiply(dY, _tanh_slope(Y), out=dY)


def _tanh_slope(Y, spare=None):
    """1 - Y * Y in Y's buffer."""
    np.multiply(Y, Y, out=Y)
    return np.subtract(1, Y, out=Y)


def _relu(Z):
    np.maximum(Z, 0, out=Z)


def _relu_backward(dY, Y):
    """dY where Y > 0, else 0 (:func:`xpnet.activations.relu_backward`)."""
    return np.multiply(dY, _relu_slope(Y), out=dY)


def _relu_slope(Y, spare=None):
    """1 where Y > 0, else 0, in Y's buffer: Y >= 0, so that is sign(Y)."""
    return np.sign(Y, out=Y)


def _sigmoid(Z):
    """1 / (1 + exp(-Z)) in place, exp's argument capped where it would overflow (there the
    result is about 1e-39 in float32, 1e-309 in float64, where the generic form gives 0)."""
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


def _sigmoid_slope(Y, spare):
    """Y * (1 - Y) in Y's buffer (``spare``: a buffer of Y's shape for 1 - Y)."""
    return np.multiply(Y, np.subtract(1, Y, out=spare), out=Y)


# name: (forward in place, backward(dY, Y) -> dZ in dY's buffer, slope(Y, spare) -> act' in Y's
# buffer); Y's buffer is used up by the last two
_IN_PLACE = {"tanh": (_tanh, _tanh_backward, _tanh_slope), "relu": (_relu, _relu_backward, _relu_slope),
             "sigmoid": (_sigmoid, _sigmoid_backward, _sigmoid_slope)}


def _itemsize(X) -> int:
    return 4 if "32" in str(X.dtype) else 8


_OPS: dict = {}


def get_ops(backend) -> Ops:
    """The :class:`Ops` for ``backend`` (a :class:`~xpnet.backend.Backend`): NumPy's override or the generic one."""
    ops = _OPS.get(backend.name)
    if ops is None or ops.xp is not backend.xp:
        cls = NumpyOps if array_api_compat.is_numpy_namespace(backend.xp) else Ops
        ops = _OPS[backend.name] = cls(backend.xp)
    return ops
