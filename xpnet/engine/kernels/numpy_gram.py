"""The tutorials' nets on NumPy: one hidden layer, a narrow input, few outputs, activations transposed.

The transposed layout, (width, rows), makes the first product, (width, k) @ (k, rows), about
twice as fast as (rows, k) @ (k, width) with OpenBLAS for small k (measured), and the first
weight gradient never forms the back-propagated (rows, width) delta:
``dW0 = X.T @ ((dZ @ W1.T) * S)`` with S the activation's slopes is
``dW0[k, j] = sum_c W1[j, c] * G[j, (k, c)]`` where ``G = S.T @ M.T`` and
``M[(k, c), i] = X[i, k] * dZ[i, c]``; ``G`` is summed over the chunks and :meth:`GramLanes.combine`
contracts it with ``W1``. Two passes over the activations fewer than the generic pass.

``X`` carries a row of ones (the folded bias) so the first bias and its gradient come out of
the first product. Equal to the generic pass up to float rounding (tested).
"""

from __future__ import annotations

import numpy as np

from ...core.activations import output_forward
from ...core.ops import Gradients
from ..activations import in_place
from ..numpy_ops import FOLD, SMALL, THIN

GRAM = 16  # (inputs + 1) x outputs up to this: the G sums stay small


class _Kernel:
    name = "numpy-gram"
    family = "numpy"

    def supports(self, spec, library: str, dtype: str, n_rows: int) -> bool:
        sizes = spec.layer_sizes
        return (library == "numpy" and n_rows > SMALL and len(sizes) == 3 and sizes[0] <= FOLD
                and (sizes[0] + spec.bias) * sizes[-1] <= GRAM and in_place(spec.hidden[0]) is not None)

    def prepare(self, spec, W, b, scale, with_loss):
        return GramLanes(spec, W, b, scale, with_loss)


KERNEL = _Kernel()


class GramLanes:
    """One pass: the prepared weights; :meth:`lane_total` per lane, :meth:`combine` at the end."""

    def __init__(self, spec, W, b, scale, with_loss):
        self.spec, self.b, self.scale, self.with_loss = spec, b, scale, with_loss
        self.k = spec.layer_sizes[0] + (b is not None)  # inner size of the first product
        self.n_out = spec.layer_sizes[-1]
        W0 = np.concatenate([W[0], b[0][None, :]]) if b is not None else W[0]  # (k, width)
        self.W0T = np.ascontiguousarray(W0.T)  # (width, k)
        self.W1T = np.ascontiguousarray(W[1].T)  # (n_out, width)
        self.activate, _, self.slope = in_place(spec.hidden[0])
        # M's rows padded to a multiple of 4 with zeros (OpenBLAS's sgemm: @ (rows, 8) takes fewer
        # instructions than @ (rows, 6))
        self.gram_cols = -(-self.k * self.n_out // 4) * 4

    def lane_total(self, X, T, chunks, rows) -> _Lane:
        lane = _Lane(self, rows, X.dtype)
        for a, z in chunks:
            self.chunk(lane, X[a:z], T[a:z])
        return lane

    def chunk(self, lane: _Lane, X, T) -> None:
        """Forward and backward on one chunk of rows; adds its sums to ``lane``."""
        r, n_out = X.shape[0], self.n_out
        xT = lane.xT[:, :r]
        xT[:X.shape[1]] = X.T  # the ones row of the folded bias was set with the buffer
        AT = np.matmul(self.W0T, xT, out=lane.buffer(lane.out, r))
        self.activate(AT)
        ZT = lane.logits[:, :r]
        if n_out <= THIN:
            for c in range(n_out):
                np.matmul(self.W1T[c], AT, out=ZT[c])
        else:
            np.matmul(self.W1T, AT, out=ZT)
        dZ = self._output_delta(lane, ZT.T, T)
        dZT = np.ascontiguousarray(dZ.T)
        if n_out <= THIN:
            for c in range(n_out):
                np.matmul(AT, dZT[c], out=lane.part1[c])
        else:
            np.matmul(dZT, AT.T, out=lane.part1)
        np.add(lane.dW1, lane.part1, out=lane.dW1)
        if lane.db1 is not None:
            np.add(lane.db1, np.add.reduce(dZ, axis=0), out=lane.db1)
        ST = self.slope(AT, lane.buffer(lane.spare, r))  # the slopes, in the activations' buffer
        M = lane.m[:, :r]
        for k in range(self.k):
            np.multiply(xT[k], dZT, out=M[k * n_out:(k + 1) * n_out])
        np.matmul(ST, M.T, out=lane.part0)
        np.add(lane.G, lane.part0, out=lane.G)

    def _output_delta(self, lane, Z, T):
        """The output layer from its logits (bias not yet added): output, loss and its delta."""
        spec = self.spec
        if self.b is not None:
            Z = Z + self.b[-1]
        Y = output_forward(np, spec.output, Z, spec.stable)
        dZ = spec.loss.delta(np, spec.output, Y, T)
        if self.with_loss:
            lane.loss = lane.loss + spec.loss.total(np, Z, Y, T, spec.stable)
        return dZ if self.scale is None else dZ / self.scale

    def combine(self, lanes) -> Gradients:
        """The lanes' sums added in lane order; ``dW0[k, j] = sum_c W1[j, c] * G[j, (k, c)]``."""
        total = lanes[0]
        for lane in lanes[1:]:
            for a, c in zip(total.sums(), lane.sums()):
                np.add(a, c, out=a)
            total.loss = total.loss + lane.loss
        G = total.G[:, :self.k * self.n_out].T.reshape(self.k, self.n_out, -1)
        dW0 = np.add.reduce(G * self.W1T[None, :, :], axis=1)  # (k, width)
        dW1 = np.ascontiguousarray(total.dW1.T)
        if self.b is None:
            return Gradients([dW0, dW1], None, total.loss if self.with_loss else None)
        return Gradients([dW0[:-1].copy(), dW1], [dW0[-1].copy(), total.db1], total.loss if self.with_loss else None)


class _Lane:
    """One lane's buffers (activations, slopes, logits, staged input, M) and running sums."""

    def __init__(self, plan: GramLanes, rows: int, dtype):
        self.width = width = plan.spec.layer_sizes[1]
        n_out = plan.n_out
        self.out = np.empty(width * rows, dtype)
        self.spare = np.empty(width * rows, dtype)
        self.logits = np.empty((n_out, rows), dtype)
        self.xT = np.empty((plan.k, rows), dtype)
        self.xT[plan.spec.layer_sizes[0]:] = 1
        self.m = np.zeros((plan.gram_cols, rows), dtype)  # rows past k * n_out stay 0
        self.G = np.zeros((width, plan.gram_cols), dtype)
        self.part0 = np.empty_like(self.G)
        self.dW1 = np.zeros((n_out, width), dtype)  # transposed
        self.part1 = np.empty_like(self.dW1)
        self.db1 = None if plan.b is None else np.zeros((n_out,), dtype)
        self.loss = dtype.type(0)

    def buffer(self, flat, rows: int):
        """A contiguous (width, rows) view of one of the lane's flat buffers."""
        return flat[:self.width * rows].reshape(self.width, rows)

    def sums(self) -> list:
        return [self.G, self.dW1] + ([self.db1] if self.db1 is not None else [])
