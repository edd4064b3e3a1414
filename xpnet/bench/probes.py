"""Probes of the machine's limits as runners, so their samples interleave with an epoch's:
the matmul peak (:class:`MatmulProbe`) and a case's tanh floor (:class:`TanhFloor`)."""

from __future__ import annotations

import numpy as np

from ..backend import get_backend
from ..backend import itemsize as dtype_bytes
from ..engine.threads import cpu_threads, run_lanes
from .machine import default_ceiling_sizes
from .runners import Case


class MatmulProbe:
    """The matmul ceiling as a runner: one synced ``(n, n) @ (n, n)`` per :meth:`run`, so its
    samples can be interleaved with an epoch's (:func:`~xpnet.bench.time_interleaved`) and the
    peak is measured in the same moments as the step, not minutes apart on a machine whose
    speed moves. ``gflops(seconds)`` turns a sample into GFLOP/s."""

    def __init__(self, backend, dtype: str = "float32", size: int | None = None):
        self.backend = get_backend(backend)
        self.size = size or default_ceiling_sizes(self.backend)["matmul_size"]
        rng = np.random.default_rng(0)
        dt = self.backend.dtype(dtype)
        self.A, self.B = (self.backend.asarray(rng.standard_normal((self.size, self.size), dtype=np.dtype(dtype)), dt)
                          for _ in range(2))

    def run(self, epochs: int = 1) -> None:
        for _ in range(epochs):
            self.A @ self.B
        self.backend.sync()

    def gflops(self, seconds: float) -> float:
        return 2 * self.size**3 / seconds / 1e9


FLOOR_BYTES = 2**30  # the tanh floor's array at most: a larger case's floor is scaled from this many bytes


class TanhFloor:
    """The tanh floor of a case as a runner: the backend's ``tanh`` over ``rows x width``
    elements per :meth:`run`, so its samples interleave with the epoch's.

    On NumPy, ``np.tanh`` works in place on one preallocated array, cut into one block of
    rows per thread xpnet's gradient pass uses (:func:`~xpnet.engine.threads.run_lanes`): no
    allocation, every core busy, the least time any pass that evaluates those tanh's can take.
    Elsewhere it is the namespace's ``tanh`` on the whole array (a new array each time: the
    array API has no ``out=``), on the library's own threads. The best sample is the floor.

    An array of more than ``max_bytes`` (default :data:`FLOOR_BYTES`, far beyond any cache,
    where ``tanh`` runs at the memory's pace) is not allocated: the probe times the first
    ``measured_rows`` rows, and :meth:`floor_seconds` scales a sample by ``rows /
    measured_rows``.
    """

    def __init__(self, backend, dtype: str, rows: int, width: int, seed: int = 1, max_bytes: int = FLOOR_BYTES):
        self.backend = get_backend(backend)
        self.rows, self.width = int(rows), int(width)
        self.measured_rows = min(self.rows, max(1, int(max_bytes) // (self.width * dtype_bytes(dtype))))
        host = np.random.default_rng(seed).standard_normal((self.measured_rows, self.width), dtype=np.dtype(dtype))
        self.A = self.backend.asarray(host, self.backend.dtype(dtype))

    @staticmethod
    def bytes_needed(case: Case, max_bytes: int = FLOOR_BYTES) -> int:
        return min(case.n_samples * case.hidden * dtype_bytes(case.dtype), max_bytes)

    def run(self, epochs: int = 1) -> None:
        for _ in range(epochs):
            self._tanh()
        self.backend.sync()

    def _tanh(self) -> None:
        if self.backend.name != "numpy":
            self.A = self.backend.xp.tanh(self.A)
            return
        rows = self.measured_rows
        A, k = self.A, min(cpu_threads(), rows)
        edges = [rows * i // k for i in range(k + 1)]
        run_lanes(lambda ends: np.tanh(A[ends[0]:ends[1]], out=A[ends[0]:ends[1]]), list(zip(edges, edges[1:])))

    def floor_seconds(self, sample: float) -> float:
        """A sample of :meth:`run` as the time over all ``rows x width`` elements."""
        return sample * self.rows / self.measured_rows

    def elements_per_second(self, seconds: float) -> float:
        return self.measured_rows * self.width / seconds
