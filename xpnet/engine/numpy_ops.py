"""NumPy's primitives: cheaper calls on tiny problems, buffered in-place lanes on chunked passes.

:class:`NumpyOps` overrides some of the generic primitives (:class:`xpnet.core.ops.Ops`)
and falls back to them for everything else; :func:`get_ops` gives a backend its primitives.

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

import array_api_compat
import numpy as np

from ..core.ops import Gradients, Ops
from .activations import in_place
from .threads import run_lanes

SMALL = 256  # rows up to which a pass is never chunked (the tutorials live here)
ROWS = 2048  # rows per chunk of weight_gradient
LANES = 4  # fixed number of partial sums: the summation order never depends on threads
THIN = 3  # product dimensions up to this run as matrix-vector products
FOLD = 16  # inputs up to this wide carry a row of ones for the first bias


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
        steps = in_place(act)
        if steps is None:
            return act.forward(self.xp, Z)
        steps[0](Z)
        return Z

    def activate_backward(self, act, dY, Y):
        steps = in_place(act)
        if steps is None:
            return act.backward(self.xp, dY, Y)
        return steps[1](dY, Y)


def _product(A, B, out):
    """``A @ B`` into ``out``; with inner size 1 a broadcast multiply (OpenBLAS's gemm is slow there)."""
    if A.shape[1] == 1:
        return np.multiply(A, B, out=out)
    return np.matmul(A, B, out=out)


_OPS: dict = {}


def get_ops(backend) -> Ops:
    """The :class:`Ops` for ``backend`` (a :class:`~xpnet.backend.Backend`): NumPy's or the generic one."""
    ops = _OPS.get(backend.name)
    if ops is None or ops.xp is not backend.xp:
        cls = NumpyOps if array_api_compat.is_numpy_namespace(backend.xp) else Ops
        ops = _OPS[backend.name] = cls(backend.xp)
    return ops
