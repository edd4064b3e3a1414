"""Backend-specific fast paths behind one small interface; the generic array-API form is the default.

The thinc ``Ops`` pattern: :class:`Ops` implements the full-batch gradient pass with the
array API only (it calls :func:`xpnet.mlp.forward` and :func:`xpnet.mlp.backward_from_delta`,
so the math is written once); :class:`NumpyOps` overrides how the work is run on NumPy.
:func:`get_ops` picks the implementation for a backend.

**Full batch over row chunks.** :meth:`Ops.gradients` cuts the N rows into chunks of
:meth:`Ops.chunk_rows` rows (about ``chunk_bytes`` per activation buffer: ~1 MiB on NumPy,
so a chunk's activations stay in the CPU cache; 256 MiB elsewhere, which only bounds the
memory) and accumulates the chunks' gradients, so an epoch's peak memory depends on the
chunk, not on N x H. Chunk ``k`` goes to lane ``k % LANES``; each lane sums its chunks in
order and the lane totals are added in lane order, so the sum has the same bits however
many threads run the lanes (:class:`NumpyOps` runs them on ``cpu_threads()`` threads with
single-threaded BLAS; NumPy releases the GIL in BLAS and ufuncs). Up to one chunk of rows
(always for N <= ``SMALL``, where the tutorials live) the pass is the plain
``forward`` + ``backward``, operation for operation.

:func:`weight_gradient` computes ``H.T @ dZ``, the one product that sums over the samples.
Multi-threaded BLAS splits that sum across threads once it is long (OpenBLAS does beyond
about 1,000 rows), so its last bits would depend on the thread count. On NumPy, long
products are cut into fixed row chunks assigned to a fixed number of lanes; each lane
sums its chunks in order with single-threaded BLAS, the lanes run in parallel on up to
``--threads`` threads, and the lane totals are added in lane order. The result is the
same bits whatever the thread count.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from .backend import blas_single_threaded, cpu_threads

SMALL = 256  # rows up to which BLAS never splits the sum: plain product (the tutorials live here)
ROWS = 2048  # rows per chunk
LANES = 4  # fixed number of partial sums: the summation order never depends on threads
MIN_ROWS = 64  # fewest rows per chunk of the full-batch pass


def weight_gradient(xp, H, dZ):
    """``H.T @ dZ`` of shape (n_in, n_out), summed over the N rows deterministically."""
    n = H.shape[0]
    if n <= SMALL or not array_api_compat.is_numpy_namespace(xp):
        return H.T @ dZ
    chunks = [(start, min(start + ROWS, n)) for start in range(0, n, ROWS)]
    lanes = [chunks[k::LANES] for k in range(min(LANES, len(chunks)))]

    def lane_total(lane):
        total = None
        for a, b in lane:
            part = H[a:b].T @ dZ[a:b]
            total = part if total is None else total + part
        return total

    workers = min(cpu_threads(), len(lanes))
    with blas_single_threaded():
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                totals = list(pool.map(lane_total, lanes))
        else:
            totals = [lane_total(lane) for lane in lanes]
    result = totals[0]
    for t in totals[1:]:
        result = result + t
    return result


def _plain_product(xp, H, dZ):
    """``H.T @ dZ`` in one product (inside a chunk, whose rows are few)."""
    return H.T @ dZ


class Gradients(NamedTuple):
    """What a full-batch gradient pass returns."""

    dW: list  # per layer (n_in, n_out)
    db: list | None  # per layer (n_out,); None without bias units
    data_loss: Any = None  # 0-d array: the summed data loss of the pass (when asked for)


class Ops:
    """The generic array-API implementation (any backend); see the module docstring."""

    chunk_bytes = 1 << 28  # bytes per activation buffer of a chunk: only bounds the memory

    def __init__(self, xp):
        from . import mlp  # not at the top: mlp imports this module

        self.xp, self._forward, self._backward = xp, mlp.forward, mlp.backward_from_delta

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
        lanes = range(min(LANES, len(chunks)))

        def lane_total(k):
            total, scratch = None, {}  # scratch: this lane's buffers, private to this pass
            for a, z in chunks[k::LANES]:
                part = self._chunk(spec, W, b, X[a:z, ...], T[a:z, ...], reduction, n, with_loss, scratch=scratch)
                total = part if total is None else self._accumulate(total, part)
            return total

        totals = self._map(lane_total, lanes)
        return functools.reduce(self._accumulate, totals)

    def _chunk(self, spec, W, b, X, T, reduction, n, with_loss, whole=False, scratch=None) -> Gradients:
        """One chunk: forward, the output delta (scaled by 1/n for the mean), backward.

        ``scratch`` is a dict private to the chunk's lane in this pass (for buffers).
        """
        xp = self.xp
        Y, (inputs, Z) = self._forward(spec, xp, W, b, X)
        dZ = spec.loss.delta(xp, spec.output, Y, T)
        if reduction == "mean":
            dZ = dZ / n
        dW, db = self._backward(spec, xp, W, inputs, dZ, weight_gradient if whole else _plain_product)
        loss = spec.loss.total(xp, Z, Y, T, spec.stable) if with_loss else None
        return Gradients(dW, db, loss)

    def _map(self, fn, items) -> list:
        """``[fn(item) for item in items]``, in order (overrides may run them in parallel)."""
        return [fn(item) for item in items]

    def _accumulate(self, total: Gradients, part: Gradients) -> Gradients:
        """``total + part``, term by term (overrides may add into ``total``, which they own)."""
        return Gradients([a + c for a, c in zip(total.dW, part.dW)],
                         None if total.db is None else [a + c for a, c in zip(total.db, part.db)],
                         None if total.data_loss is None else total.data_loss + part.data_loss)


class NumpyOps(Ops):
    """NumPy: cache-sized chunks, lanes on threads with single-threaded BLAS, and no temporaries:
    hidden layers with an in-place form (:data:`IN_PLACE`) are computed in per-lane buffers
    with ``out=``, sums are added in place. Same operations, same order as :class:`Ops`."""

    chunk_bytes = 1 << 20

    def _chunk(self, spec, W, b, X, T, reduction, n, with_loss, whole=False, scratch=None) -> Gradients:
        if whole or not all(act.name in IN_PLACE for act in spec.hidden):
            return super()._chunk(spec, W, b, X, T, reduction, n, with_loss, whole)
        outputs, deltas = _lane_buffers(scratch, X.shape[0], spec.layer_sizes[1:-1], X.dtype)
        inputs, H = [], X
        for i, act in enumerate(spec.hidden):  # hidden layers: into the lane's buffers
            inputs.append(H)
            H = np.matmul(H, W[i], out=outputs[i])
            if b is not None:
                np.add(H, b[i], out=H)
            IN_PLACE[act.name][0](H)
        inputs.append(H)
        Y, (_, Z) = self._forward(spec, self.xp, W[-1:], None if b is None else b[-1:], H)  # output layer
        dZ = spec.loss.delta(self.xp, spec.output, Y, T)
        if reduction == "mean":
            dZ = dZ / n
        loss = spec.loss.total(self.xp, Z, Y, T, spec.stable) if with_loss else None
        dW, db = [None] * len(W), [None] * len(W) if spec.bias else None
        for i in range(len(W) - 1, -1, -1):
            dW[i] = inputs[i].T @ dZ
            if db is not None:
                db[i] = np.add.reduce(dZ, axis=0)
            if i:  # dZ = act'(dZ @ W.T) in the lane's delta buffer; the output buffer is used up
                dY = np.matmul(dZ, W[i].T, out=deltas[i - 1])
                dZ = IN_PLACE[spec.hidden[i - 1].name][1](dY, inputs[i])
        return Gradients(dW, db, loss)

    def _accumulate(self, total: Gradients, part: Gradients) -> Gradients:
        for a, c in zip(total.dW + (total.db or []), part.dW + (part.db or [])):
            np.add(a, c, out=a)  # same sum as a + c, without a new (n_in, n_out) array per chunk
        loss = None if total.data_loss is None else total.data_loss + part.data_loss
        return Gradients(total.dW, total.db, loss)

    def _map(self, fn, items) -> list:
        workers = min(cpu_threads(), len(items))
        with blas_single_threaded():
            if workers <= 1:
                return [fn(item) for item in items]
            with ThreadPoolExecutor(workers) as pool:
                return list(pool.map(fn, items))


def _lane_buffers(scratch: dict, rows: int, widths, dtype) -> tuple:
    """Outputs and deltas, one (rows, width) array each per hidden layer, made at a lane's
    first chunk and reused by its next ones (later chunks are never taller)."""
    if "buffers" not in scratch:
        scratch["buffers"] = [[np.empty((rows, w), dtype) for w in widths] for _ in range(2)]
    return tuple([buf[:rows] for buf in group] for group in scratch["buffers"])


def _tanh(Z):
    return np.tanh(Z, out=Z)


def _tanh_backward(dY, Y):
    """dY * (1 - Y * Y), as :func:`xpnet.activations.tanh_backward`, in the buffers of dY and Y."""
    np.multiply(Y, Y, out=Y)
    np.subtract(1, Y, out=Y)
    return np.multiply(dY, Y, out=dY)


def _relu(Z):
    return np.maximum(Z, 0, out=Z)


def _relu_backward(dY, Y):
    """dY where Y > 0, else 0 (:func:`xpnet.activations.relu_backward`)."""
    np.copyto(dY, 0, where=np.logical_not(Y > 0))
    return dY


IN_PLACE = {"tanh": (_tanh, _tanh_backward), "relu": (_relu, _relu_backward)}  # name: (forward, backward)


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
