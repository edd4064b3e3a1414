"""Primitives: the operations one forward and backward pass is written with (thinc's ``Ops``).

:class:`Ops` is the generic array-API version, used on every backend; NumPy's
:class:`~xpnet.engine.numpy_ops.NumpyOps` overrides some primitives and calls these for
everything else. The network math (:mod:`xpnet.core.network`) is written once against
these primitives; the driver of a full-batch pass (:mod:`xpnet.engine.fullbatch`) cuts
the rows into chunks and asks :meth:`Ops.lane` for the primitives one lane of chunks
runs with.

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

The NumPy overrides, lanes and the deterministic weight gradient live in
:mod:`xpnet.engine.numpy_ops`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .activations import OUTPUT_FUNCTIONS


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


class Ops:
    """The generic primitives: the array API only, on any backend (see the module docstring)."""

    name = "generic"  # what whole-pass kernels check (xpnet.engine.kernels): the library these primitives are for
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
        return H.T @ dZ, (self.xp.sum(dZ, axis=0) if bias else None), (dZ @ W.T if i else None)

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


