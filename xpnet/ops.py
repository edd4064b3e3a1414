"""Primitives: the operations one forward and backward pass is written with (thinc's ``Ops``).

:class:`Ops` is the generic array-API version, used on every backend; :class:`NumpyOps`
overrides some primitives for NumPy and calls the generic version for everything else.
The model (:mod:`xpnet.mlp`) is written once against these primitives; the driver of a
full-batch pass (:mod:`xpnet.fullbatch`) cuts the rows into chunks and asks
:meth:`Ops.lane` for the primitives one lane of chunks runs with.

Primitives (``i`` is the layer index; the NumPy lanes keep a buffer per layer):

========================  ==================================================================
``affine(i, H, W, b)``    ``Z = H @ W``, then ``Z + b`` (in that order: the tutorials' bits)
``affine_backward(...)``  ``(H.T @ dZ, sum(dZ, axis=0), dZ @ W.T)``: a layer's weight and bias
                          gradients and the delta of the layer below (before its activation)
``activate(act, Z)``      ``act.forward(xp, Z)``
``activate_backward``     ``act.backward(xp, dY, Y)``, the slope taken from the output ``Y``
``dense(...)``            ``activate(act, affine(...))``: a hidden layer without batch norm
``dense_backward(...)``   ``affine_backward``, then ``activate_backward`` of the layer below (no
                          dropout or batch norm in between)
``output_delta(...)``     the output activation, the loss's delta (scaled) and its sum
``accumulate(a, b)``      ``a + b`` for :class:`Gradients`, chunk after chunk
========================  ==================================================================

**NumPy** (:class:`NumpyOps`): on tiny problems (the tutorials) the same operations with
cheaper calls (``ndarray.dot``, ``np.add.reduce``) and the same bits. A lane of a chunked
pass (:class:`NumpyLane`) computes into buffers it owns (``out=``): nothing is allocated
per layer and chunk, and xpnet's own activations run in place (an activation it does not
know runs through its own ``forward``/``backward``). Three shape-driven choices avoid
OpenBLAS's slow corners (measured):

* products with a dimension of at most ``THIN`` (the tutorials' 2 inputs and 2 classes)
  run as that many matrix-vector products: ``gemm`` is 2-3x slower there;
* a product with inner size 1 is a broadcast multiply (``gemm`` is about 4x slower);
* inputs up to ``FOLD`` features wide get a row of ones, so the first bias is added by the
  first product and its gradient comes out of the first weight gradient.

:func:`weight_gradient` is ``H.T @ dZ`` summed deterministically: multi-threaded BLAS
splits that long sum across threads (OpenBLAS does beyond about 1,000 rows), so its last
bits would depend on the thread count; on NumPy long products are cut into fixed row
chunks on fixed lanes instead (:func:`run_lanes`), whose totals are added in lane order.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from .activations import HIDDEN, OUTPUT_FUNCTIONS, exp_limit
from .backend import blas_single_threaded, cpu_threads

SMALL = 256  # rows up to which a pass is never chunked (the tutorials live here)
ROWS = 2048  # rows per chunk of weight_gradient
LANES = 4  # fixed number of partial sums: the summation order never depends on threads
THIN = 3  # product dimensions up to this run as matrix-vector products
FOLD = 16  # inputs up to this wide carry a row of ones for the first bias


class Gradients(NamedTuple):
    """The gradients of one pass, and what it measured on the way.

    In :meth:`xpnet.MLP.parameters` order by :meth:`flat`: weights, biases, then the
    batch-norm scales and shifts.
    """

    dW: list  # per layer (n_in, n_out)
    db: list | None  # per layer (n_out,); None without bias units
    data_loss: Any = None  # 0-d array: the summed data loss of the pass, when asked for
    dgamma: list | None = None  # batch norm: per hidden layer (width,)
    dbeta: list | None = None
    bn_stats: list | None = None  # batch norm: per hidden layer (mean, var) of the batch

    def flat(self) -> list:
        """The arrays in :meth:`xpnet.MLP.parameters` order."""
        out = list(self.dW) + (list(self.db) if self.db is not None else [])
        if self.dgamma is not None and self.dbeta is not None:
            out += list(self.dgamma) + list(self.dbeta)
        return out


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
    """The generic primitives: the array API only, on any backend (see the module docstring)."""

    name = "generic"  # what whole-pass kernels check (xpnet.kernels): the library these primitives are for
    chunk_bytes = 1 << 28  # bytes of activations per chunk of a full-batch pass: only bounds the memory
    parallel = False  # whether the lanes of a chunked pass run on threads

    def __init__(self, xp):
        self.xp = xp

    def lane(self, spec, W, b, rows: int, dtype) -> Ops:
        """The primitives for one lane of a chunked pass over chunks of up to ``rows`` rows
        of the weights ``W, b`` (generic: these very ones, allocating as they go)."""
        return self

    def affine(self, i: int, H, W, b):
        """``H @ W + b`` for layer ``i``: the product, then the bias."""
        Z = H @ W
        return Z if b is None else Z + b

    def affine_backward(self, i: int, H, dZ, W, bias: bool):
        """Layer ``i``'s ``(dW, db, dH)``: ``H.T @ dZ``, ``sum(dZ, axis=0)`` (None without ``bias``)
        and ``dZ @ W.T``, the gradient of its input (None for the first layer: never needed)."""
        dW = weight_gradient(self.xp, H, dZ)
        return dW, (self.xp.sum(dZ, axis=0) if bias else None), (dZ @ W.T if i else None)

    def activate(self, act, Z):
        """``act.forward(xp, Z)``."""
        return act.forward(self.xp, Z)

    def activate_backward(self, act, dY, Y):
        """``act.backward(xp, dY, Y)``: ``dY`` times the slope, taken from the output ``Y``."""
        return act.backward(self.xp, dY, Y)

    def dense(self, i: int, H, W, b, act):
        """Hidden layer ``i`` without batch norm: ``act(H @ W + b)``."""
        return self.activate(act, self.affine(i, H, W, b))

    def dense_backward(self, i: int, H, dZ, W, bias: bool, act, A):
        """Layer ``i``'s ``(dW, db, dZ_below)``: :meth:`affine_backward`, then the activation ``act``
        of the layer below (its output ``A``) backward, with nothing in between."""
        dW, db, dH = self.affine_backward(i, H, dZ, W, bias)
        return dW, db, self.activate_backward(act, dH, A)

    def output_delta(self, spec, Z, T, scale, with_loss: bool):
        """``(Y, dZ, loss)`` of the output layer from its logits ``Z``: the output, the loss's
        delta divided by ``scale`` (None: not divided), and the summed loss (when asked)."""
        xp = self.xp
        Y = OUTPUT_FUNCTIONS[spec.output](xp, Z, spec.stable)
        dZ = spec.loss.delta(xp, spec.output, Y, T)
        if scale is not None:
            dZ = dZ / scale
        return Y, dZ, spec.loss.total(xp, Z, Y, T, spec.stable) if with_loss else None

    def accumulate(self, total: Gradients | None, part: Gradients) -> Gradients:
        """``total + part``, term by term (``part`` when ``total`` is None)."""
        if total is None:
            return part
        return Gradients(*[None if a is None else _add_terms(a, c) for a, c in zip(total, part)])  # type: ignore[arg-type]


def _add_terms(a, c):
    if isinstance(a, list):
        return [x + y for x, y in zip(a, c)]
    return a + c


class NumpyOps(Ops):
    """NumPy: cheaper calls with the same bits on tiny problems; buffered, in-place lanes with
    threads on chunked passes (see the module docstring). Falls back to :class:`Ops` for
    what it does not specialise."""

    name = "numpy"
    chunk_bytes = 1 << 20  # a chunk's activations stay in the CPU's cache
    parallel = True

    def lane(self, spec, W, b, rows: int, dtype) -> Ops:
        if len(W) == 1:  # no hidden layer: nothing to keep in buffers
            return _NumpyAccumulating(self.xp)
        return NumpyLane(self.xp, spec, W, b, rows, dtype)

    # the same operations as Ops, with the same bits, at half the cost per call on tiny arrays
    def affine(self, i, H, W, b):
        Z = H.dot(W)
        return Z if b is None else Z + b

    def affine_backward(self, i, H, dZ, W, bias):
        dW = H.T.dot(dZ) if H.shape[0] <= SMALL else weight_gradient(self.xp, H, dZ)
        return dW, (np.add.reduce(dZ, axis=0) if bias else None), (dZ.dot(W.T) if i else None)

    # one call for a layer's two primitives (a tiny net's pass is mostly calls); the same operations
    def dense(self, i, H, W, b, act):
        Z = H.dot(W)
        return act.forward(self.xp, Z if b is None else Z + b)

    def dense_backward(self, i, H, dZ, W, bias, act, A):
        dW = H.T.dot(dZ) if H.shape[0] <= SMALL else weight_gradient(self.xp, H, dZ)
        return dW, (np.add.reduce(dZ, axis=0) if bias else None), act.backward(self.xp, dZ.dot(W.T), A)

    def accumulate(self, total, part):
        """Sums into arrays owned by ``total`` (a copy of the first part): parts may be buffers."""
        if total is None:
            return Gradients(*(None if a is None else _copy_terms(a) for a in part))
        for a, c in zip(total, part):
            if isinstance(a, list):
                for x, y in zip(a, c):
                    np.add(x, y, out=x)
        loss = None if total.data_loss is None else total.data_loss + part.data_loss
        return total._replace(data_loss=loss)


def _copy_terms(a):
    return [np.array(x, order="C") for x in a] if isinstance(a, list) else a


class _NumpyAccumulating(NumpyOps):
    """A NumPy lane without buffers (nets without a hidden layer)."""


class NumpyLane(NumpyOps):
    """The primitives of one lane of a chunked NumPy pass: buffers for chunks of up to
    ``rows`` rows and the weights prepared for them (folded bias, transposed thin output).

    Every hidden layer is computed into the lane's buffers and its activation and slope run
    in place: ``activate_backward`` uses up ``Y``'s buffer, which the backward pass no longer
    needs (layer ``i``'s weight gradient, from the same buffer, is taken first by
    ``affine_backward``). A lane belongs to one thread and one pass.
    """

    def __init__(self, xp, spec, W, b, rows, dtype):
        super().__init__(xp)
        sizes = spec.layer_sizes
        self.last = len(W) - 1
        self.staged = sizes[0] <= FOLD  # the input chunk is copied, transposed, into the lane
        self.fold = self.staged and b is not None
        self.k = sizes[0] + self.fold  # inner size of the first product
        self.W0 = np.concatenate([W[0], b[0][None, :]]) if self.fold else W[0]  # (k, width 1)
        self.thin_out = sizes[-1] <= THIN
        self.WoutT = np.ascontiguousarray(W[-1].T) if self.thin_out else None  # (n_out, width)
        widths = sizes[1:-1]
        self.out = [np.empty((rows, w), dtype) for w in widths]
        self.delta = [np.empty((rows, w), dtype) for w in widths]
        self.logits = np.empty((sizes[-1], rows) if self.thin_out else (rows, sizes[-1]), dtype)
        if self.staged:
            self.xT = np.empty((self.k, rows), dtype)
            self.xT[sizes[0]:] = 1
        shapes = [(self.k, sizes[1])] + list(zip(sizes[1:-1], sizes[2:]))
        if self.thin_out:
            shapes[-1] = shapes[-1][::-1]  # kept transposed, (n_out, width)
        self.part = [np.empty(s, dtype) for s in shapes]  # one chunk's weight gradient

    dense, dense_backward = Ops.dense, Ops.dense_backward  # through the lane's own buffered primitives

    def affine(self, i, H, W, b):
        r = H.shape[0]
        if i == self.last:
            if self.thin_out:
                ZT = self.logits[:, :r]
                for c in range(ZT.shape[0]):
                    np.matmul(H, self.WoutT[c], out=ZT[c])
                Z = ZT.T
            else:
                Z = np.matmul(H, W, out=self.logits[:r])
            return Z if b is None else Z + b  # a new (rows, n_out) array: the output layer's own
        if i == 0 and self.staged:
            xT = self.xT[:, :r]
            xT[:H.shape[1]] = H.T  # the ones row of the folded bias was set with the buffer
            H, W = xT.T, self.W0
        Z = _product(H, W, self.out[i][:r])
        if b is not None and not (i == 0 and self.fold):
            np.add(Z, b, out=Z)
        return Z

    def affine_backward(self, i, H, dZ, W, bias):
        dW, db = self._grads(i, H, dZ, bias)
        return dW, db, (_product(dZ, W.T, self.delta[i - 1][:dZ.shape[0]]) if i else None)

    def _grads(self, i, H, dZ, bias):
        part = self.part[i]
        if i == 0 and self.staged:
            A = self.xT[:, :H.shape[0]]  # the staged input, transposed (with the ones row)
            if self.k <= THIN:
                for j in range(self.k):
                    np.matmul(A[j], dZ, out=part[j])
            else:
                np.matmul(A, dZ, out=part)
            if self.fold:
                return part[:-1], part[-1]
            return part, (np.add.reduce(dZ, axis=0) if bias else None)
        if i == self.last and self.thin_out:
            for c, column in enumerate(np.ascontiguousarray(dZ.T)):
                np.matmul(column, H, out=part[c])
            dW = part.T
        else:
            dW = np.matmul(H.T, dZ, out=part)
        return dW, (np.add.reduce(dZ, axis=0) if bias else None)

    def activate(self, act, Z):
        steps = _IN_PLACE.get(act)
        if steps is None:
            return act.forward(self.xp, Z)
        steps[0](Z)
        return Z

    def activate_backward(self, act, dY, Y):
        steps = _IN_PLACE.get(act)
        if steps is None:
            return act.backward(self.xp, dY, Y)
        return steps[1](dY, Y)


def _product(A, B, out):
    """``A @ B`` into ``out``; with inner size 1 a broadcast multiply (OpenBLAS's gemm is slow there)."""
    if A.shape[1] == 1:
        return np.multiply(A, B, out=out)
    return np.matmul(A, B, out=out)


# -- xpnet's activations in place, for NumPy lanes ----------------------------------------------
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


# xpnet's own activations (the objects, so a user's activation of the same name is not taken for
# them): (forward in place, backward(dY, Y) -> dZ in dY's buffer, slope(Y, spare) -> act' in Y's buffer)
_IN_PLACE = {HIDDEN["tanh"]: (_tanh, _tanh_backward, tanh_slope),
             HIDDEN["relu"]: (_relu, _relu_backward, relu_slope),
             HIDDEN["sigmoid"]: (sigmoid_in_place, _sigmoid_backward, sigmoid_slope)}


def in_place(act):
    """``(forward, backward, slope)`` in place for one of xpnet's activations, else None."""
    return _IN_PLACE.get(act)


_OPS: dict = {}


def get_ops(backend) -> Ops:
    """The :class:`Ops` for ``backend`` (a :class:`~xpnet.backend.Backend`): NumPy's or the generic one."""
    ops = _OPS.get(backend.name)
    if ops is None or ops.xp is not backend.xp:
        cls = NumpyOps if array_api_compat.is_numpy_namespace(backend.xp) else Ops
        ops = _OPS[backend.name] = cls(backend.xp)
    return ops
