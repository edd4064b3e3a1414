"""What one training step does, counted operation by operation, and the units people want.

* **matmul FLOPs**: ``2*m*k*n`` per ``(m, k) @ (k, n)`` product the step performs: per layer
  ``H @ W`` forward and ``H.T @ dZ`` backward, plus ``dZ @ W.T`` for every layer except the
  first (no gradient with respect to the input data is computed);
* **elementwise FLOPs**: one per output element of every elementwise operation (bias add,
  activation, softmax, ``1 - Y*Y``, update...) and one per input element of every
  reduction (row max and row sum of the softmax, ``db``); a ``tanh`` or ``exp`` counts as
  one (they are also tallied as ``transcendentals``);
* **bytes moved**: an estimate, every operand read once and every result written once,
  no cache reuse.

The counts are those of the step as :mod:`xpnet.mlp` writes it (a test counts the ufuncs
the generic pass really runs); faster paths arrange the same work differently, and GFLOP/s
always divides the counted FLOPs by the time.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backend import itemsize as dtype_bytes
from ..errors import check_choice

# The elementwise operations of each hidden activation as xpnet.activations writes them:
# forward ops as (operands read, is transcendental), backward ops as operands read; every
# operand is an (N, width) array (python scalars are not counted as reads).
_HIDDEN_OPS = {
    # tanh(Z) | dY * (1 - Y * Y)
    "tanh": ([(1, True)], [2, 1, 2]),
    # where(-Z > limit, 0, 1 / (1 + exp(clip(-Z)))) | dY * (Y * (1 - Y))
    "sigmoid": ([(1, False), (1, False), (1, True), (1, False), (1, False), (1, False), (2, False)], [1, 2, 2]),
    # where(Z > 0, Z, 0) | where(Y > 0, dY, 0)
    "relu": ([(1, False), (2, False)], [1, 2]),
}
ACTIVATIONS = tuple(_HIDDEN_OPS)  # the hidden activations a benchmark case may use


@dataclass(frozen=True)
class StepCost:
    """What one training step does, counted operation by operation (see the module doc)."""

    matmul_flops: int
    elementwise_flops: int  # includes the transcendentals, one each
    transcendentals: int  # tanh / exp evaluations
    bytes_moved: int  # estimate: operands read once, results written once

    @property
    def flops(self) -> int:
        return self.matmul_flops + self.elementwise_flops


class _Tally:
    def __init__(self):
        self.matmul = self.elementwise = self.transcendental = self.elements = 0

    def matmul_op(self, m, k, n):  # (m, k) @ (k, n)
        self.matmul += 2 * m * k * n
        self.elements += m * k + k * n + m * n

    def map_op(self, size, reads, transcendental=False):  # elementwise, `size` results
        self.elementwise += size
        self.transcendental += size if transcendental else 0
        self.elements += reads + size

    def reduce_op(self, size_in, size_out):
        self.elementwise += size_in
        self.elements += size_in + size_out


def step_cost(layer_sizes, n_samples: int, *, activation: str = "tanh", itemsize: int = 4,
              bias: bool = True, l2: float = 0.01) -> StepCost:
    """Count the work of one full-batch training step of xpnet's MLP with a softmax output.

    Follows the forward and backward of :mod:`xpnet.mlp` (stable softmax, cross-entropy,
    ``reduction="mean"``) and the update of :class:`xpnet.optim.SGD` without momentum.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``(n_inputs, hidden..., n_classes)``.
    n_samples : int
        Rows N of the batch.
    activation : {"tanh", "sigmoid", "relu"}
        Hidden activation.
    itemsize : int
        Bytes per element (4 for float32, 8 for float64), for ``bytes_moved``.
    bias : bool
        Whether the layers add a bias (``db`` is computed only then, as backward does).
    l2 : float
        L2 strength; 0 drops the two ``l2 * W`` terms of the update.

    Returns
    -------
    StepCost
    """
    check_choice("activation", activation, ACTIVATIONS)
    fwd_ops, bwd_ops = _HIDDEN_OPS[activation]
    sizes = [int(s) for s in layer_sizes]
    N, c, t = int(n_samples), sizes[-1], _Tally()
    pairs = list(zip(sizes[:-1], sizes[1:]))
    for i, (a, o) in enumerate(pairs):  # forward
        t.matmul_op(N, a, o)
        if bias:
            t.map_op(N * o, N * o + o)
        if i < len(pairs) - 1:  # hidden activation
            for reads, transcendental in fwd_ops:
                t.map_op(N * o, reads * N * o, transcendental)
    t.reduce_op(N * c, N)  # softmax: row max
    t.map_op(N * c, N * c + N)  # Z - max
    t.map_op(N * c, N * c, transcendental=True)  # exp
    t.reduce_op(N * c, N)  # row sum
    t.map_op(N * c, N * c + N)  # E / sum
    t.map_op(N * c, 2 * N * c)  # dZ = Y - T
    t.map_op(N * c, N * c)  # dZ / N (mean gradient)
    for i in range(len(pairs) - 1, -1, -1):  # backward
        a, o = pairs[i]
        t.matmul_op(a, N, o)  # dW = H.T @ dZ
        if bias:
            t.reduce_op(N * o, o)  # db = sum(dZ, axis=0)
        if i:
            t.matmul_op(N, o, a)  # dZ @ W.T (never for the input layer)
            for reads in bwd_ops:  # activation derivative from the layer's output
                t.map_op(N * a, reads * N * a)
    for a, o in pairs:  # update: W - lr * (g + l2 * W), b - lr * g (scalars are not reads)
        for reads in ([1, 2, 1, 2] if l2 else [1, 2]):
            t.map_op(a * o, reads * a * o)
        if bias:
            for reads in (1, 2):
                t.map_op(o, reads * o)
    return StepCost(t.matmul, t.elementwise, t.transcendental, t.elements * int(itemsize))


def units(case, seconds_per_epoch: float, ceilings: dict | None = None) -> dict:
    """The numbers people want for one case (a :class:`~xpnet.bench.Case`) timed at ``seconds_per_epoch``.

    Returns samples/s, epochs/s, the counted FLOPs and GFLOP/s, the bytes-moved estimate
    and GB/s, and -- given :func:`~xpnet.bench.measure_ceilings` output -- the percent of
    the matmul peak and the time over the matmul, bandwidth and activation floors.
    """
    cost = step_cost(case.layer_sizes, case.n_samples, activation=case.activation,
                     itemsize=dtype_bytes(case.dtype), l2=case.l2)
    s = seconds_per_epoch
    out = {
        "seconds_per_epoch": s,
        "samples_per_second": case.n_samples / s,
        "epochs_per_second": 1 / s,
        "flops": cost.flops,
        "matmul_flops": cost.matmul_flops,
        "elementwise_flops": cost.elementwise_flops,
        "transcendentals": cost.transcendentals,
        "gflops": cost.flops / s / 1e9,
        "bytes_moved": cost.bytes_moved,
        "gbytes_per_second": cost.bytes_moved / s / 1e9,
    }
    if ceilings:
        out.update(_against_ceilings(cost, s, ceilings))
    return out


def _against_ceilings(cost: StepCost, s: float, ceilings: dict) -> dict:
    matmul_floor = cost.matmul_flops / (ceilings["matmul_gflops"] * 1e9)
    bandwidth_floor = cost.bytes_moved / (ceilings["copy_gbytes_per_second"] * 1e9)
    activation_floor = cost.transcendentals / ceilings["activation_elements_per_second"]
    return {
        "percent_of_matmul_peak": 100 * cost.flops / s / 1e9 / ceilings["matmul_gflops"],
        "matmul_floor_seconds": matmul_floor,
        "bandwidth_floor_seconds": bandwidth_floor,
        "activation_floor_seconds": activation_floor,
        "time_over_matmul_floor": s / matmul_floor,
        "time_over_bandwidth_floor": s / bandwidth_floor,
        "time_over_activation_floor": s / activation_floor,
    }
