"""Deeper or wider nets: the generic pass, its elementwise work fused by numba around the BLAS products.

Takes any net with at least one hidden layer whose activations are xpnet's own (tanh,
sigmoid, relu), any output and loss, on NumPy, for passes of more than ``ops.SMALL`` rows.
Each lane runs :func:`xpnet.core.network.gradients` itself -- the one forward and backward -- with
the primitives of a :class:`JitLane`: the :class:`xpnet.core.ops.NumpyLane` buffers and BLAS
products, but each layer walked once per direction by compiled loops
(:mod:`~xpnet.engine.kernels.numba_elementwise`):

* forward, after a layer's product: its bias and activation in one pass (the lane learns
  the layer from ``affine(i, ...)`` and adds the bias inside ``activate``);
* the output layer: bias, output activation, the loss's delta, its column sums (the output
  bias gradient) and the loss in one pass;
* backward, after ``dZ @ W.T``: the delta times the activation's slope and that layer's
  bias gradient in one pass (``affine_backward`` takes the column sums from it).

NumPy's lane makes 2 passes for tanh's forward (bias, tanh), 5 for the sigmoid's, and 4 for a
backward step (``Y*Y``, ``1 - Y``, the product, the column sums).
"""

from __future__ import annotations

import functools

import numpy as np

from ...core.network import gradients as model_gradients
from ..activations import TABLE, in_place
from ..numpy_ops import SMALL, NumpyLane, NumpyOps
from . import numba_support


class _Kernel(numba_support.Kernel):
    name = "numba-layers"

    def supports(self, spec, library: str, dtype: str, n_rows: int) -> bool:
        return (library == "numpy" and n_rows > SMALL and len(spec.layer_sizes) >= 3
                and all(in_place(act) is not None for act in spec.hidden) and numba_support.ready(spec, dtype))

    def prepare(self, spec, W, b, scale, with_loss):
        return LayersLanes(spec, W, b, scale, with_loss)

    def dispatchers(self, spec, dtype: str) -> list:
        jitted = numba_support.jitted("numba_elementwise")
        return [jitted.bias_activate, jitted.slope_backward, jitted.output_rows]


KERNEL = _Kernel()


class LayersLanes:
    """:func:`xpnet.core.network.gradients` on each chunk of a lane with a :class:`JitLane`; lanes added in order."""

    def __init__(self, spec, W, b, scale, with_loss: bool):
        self.jitted = numba_support.jitted("numba_elementwise")
        self.spec, self.W, self.b, self.scale, self.with_loss = spec, W, b, scale, with_loss

    def lane_total(self, X, T, chunks, rows):
        lane = JitLane(np, self.spec, self.W, self.b, rows, X.dtype, self.jitted)
        total = None
        for a, z in chunks:
            part = model_gradients(lane, self.spec, self.W, self.b, X[a:z], T[a:z], self.scale, self.with_loss)
            total = lane.accumulate(total, part)
        return total

    def combine(self, totals):
        """The lane totals added in lane order."""
        return functools.reduce(NumpyOps(np).accumulate, totals)


class JitLane(NumpyLane):
    """A :class:`~xpnet.core.ops.NumpyLane` whose bias + activation, output layer and delta x slope
    (with the bias gradient) are one compiled pass each. Belongs to one thread and one pass."""

    def __init__(self, xp, spec, W, b, rows, dtype, jitted):
        super().__init__(xp, spec, W, b, rows, dtype)
        self.jitted, self.dtype = jitted, np.dtype(dtype)
        widths = spec.layer_sizes[1:]
        self.codes = {v.generic: v.code for v in TABLE.values()}
        self.no_bias = [np.zeros(w, dtype) for w in widths]
        self.biases = [np.ascontiguousarray(c) for c in b] if b is not None else self.no_bias
        self.column_sums = [np.empty(w, dtype) for w in widths]  # each layer's bias gradient, from its delta's pass
        self.out_codes = (jitted.OUTPUTS[spec.output], jitted.LOSSES[spec.loss.name], spec.stable)
        self.delta_out = np.empty((rows, widths[-1]), dtype)
        self.pending = None  # the bias of the layer whose product affine() just computed
        self.backward_layer = 0  # the layer affine_backward() just did: activate_backward's delta is for the one below

    def affine(self, i, H, W, b):
        Z = super().affine(i, H, W, None)  # the bias goes into activate() / output_delta()
        self.pending = self.no_bias[i] if b is None or (i == 0 and self.fold) else self.biases[i]
        return Z

    def activate(self, act, Z):
        self.jitted.bias_activate(Z, self.pending, self.codes[act])  # xpnet's own activations only (supports())
        return Z

    def output_delta(self, spec, Z, T, scale, with_loss):
        Z = np.ascontiguousarray(Z)  # thin outputs are kept transposed
        rows, n_out = Z.shape
        dZ = self.delta_out[:rows]
        sums = self.column_sums[-1]
        sums[:] = 0
        loss = self.jitted.output_rows(Z, self.pending, np.ascontiguousarray(T), 0, rows, n_out, *self.out_codes,
                                       self.dtype.type(scale or 0), with_loss, dZ, sums)
        return None, dZ, (self.dtype.type(loss) if with_loss else None)

    def affine_backward(self, i, H, dZ, W, bias):
        self.backward_layer = i
        return super().affine_backward(i, H, dZ, W, bias)

    def _grads(self, i, H, dZ, bias):
        dW, db = super()._grads(i, H, dZ, False)  # the folded first layer still gives its bias gradient
        return dW, (self.column_sums[i] if bias and db is None else db)

    def activate_backward(self, act, dY, Y):
        self.jitted.slope_backward(dY, Y, self.codes[act], self.column_sums[self.backward_layer - 1])
        return dY
