"""What ``auto`` weighs: the work of one epoch, and whether a GPU would gain on it.

A GPU gains when the CPU's time for an epoch exceeds the GPU's fixed cost for it by a
margin. That fixed cost is the host time of launching each array operation: CuPy spends
microseconds of Python and driver time per operation however small the arrays, while the
arithmetic itself is 10-100x faster than a CPU's. So ``auto`` picks CuPy when

    cpu_seconds = flops / CPU_FLOPS + bytes / CPU_BYTES  >=  GAIN * updates * layers * OPS_PER_LAYER * OP_SECONDS

No GPU was available to measure these constants: they come from published figures and
this project's CPU measurements (docs/scaling.md, "When auto picks the GPU"), and each
errs towards the CPU, so ``auto`` never moves a launch-bound problem to a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CPU_FLOPS = 1.5e11  # FLOP/s: the matmul peak measured on this project's 2-core VM (144-150 GFLOP/s); a
#                    laptop's 4-8 cores give more, and a CPU rarely sustains its peak on an MLP pass
CPU_BYTES = 1e10  # bytes/s a CPU streams through activations (one core's DRAM bandwidth, ~10-20 GB/s)
OP_SECONDS = 2e-5  # host time per CuPy operation: launch plus Python dispatch, 5-25 us published (CuPy's
#                   launch overhead measured at 25 us in numba/numba#3003; cuBLAS calls cost the most)
OPS_PER_LAYER = 12  # operations per layer and update: forward (matmul, bias, activation), backward (two
#                    matmuls, bias sum, slope), the update of W and b (plain SGD; Adam has more)
GAIN = 2.0  # CuPy only when the CPU would take at least twice the GPU's fixed cost


@dataclass(frozen=True)
class Work:
    """The work of one training epoch (every update, forward and backward)."""

    flops: float  # floating-point operations of the matrix products
    bytes: float  # bytes of activations written and read
    updates: int  # updates (minibatches) per epoch
    layers: int  # weight layers

    @property
    def cpu_seconds(self) -> float:
        """Lower bound of an epoch's time on the CPU."""
        return self.flops / CPU_FLOPS + self.bytes / CPU_BYTES

    @property
    def launch_seconds(self) -> float:
        """The GPU's fixed cost of an epoch: launching its operations."""
        return self.updates * self.layers * OPS_PER_LAYER * OP_SECONDS

    def gpu_gains(self) -> bool:
        return self.cpu_seconds >= GAIN * self.launch_seconds

    def describe(self) -> str:
        return (f"an epoch is {self.flops:.2g} FLOPs in {self.updates} update{'s' * (self.updates != 1)}: "
                f"~{_ms(self.cpu_seconds)} on a CPU against ~{_ms(self.launch_seconds)} of GPU launch overhead")


def epoch_work(layer_sizes, n_rows: int, batch_size: int | None = None, itemsize: int = 4) -> Work:
    """The :class:`Work` of an epoch over ``n_rows`` rows in batches of ``batch_size`` (None: all).

    Products: 2 FLOPs per weight and row forward, 4 backward (``dW`` and ``dX``). Bytes: every
    layer's activations of a row are written and read about six times (product, bias,
    activation, delta, slope, product).
    """
    sizes = [int(s) for s in layer_sizes]
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    n = max(int(n_rows), 1)
    updates = 1 if not batch_size or batch_size >= n else math.ceil(n / batch_size)
    return Work(flops=6.0 * n * weights, bytes=6.0 * itemsize * n * sum(sizes[1:]), updates=updates,
                layers=len(sizes) - 1)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2g} ms"
