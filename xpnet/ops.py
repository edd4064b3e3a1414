"""Backend-specific fast paths behind small functions; the generic array-API form is the default.

:func:`weight_gradient` computes ``H.T @ dZ``, the one product that sums over the samples.
Multi-threaded BLAS splits that sum across threads once it is long (OpenBLAS does beyond
about 1,000 rows), so its last bits would depend on the thread count. On NumPy, long
products are cut into fixed row chunks assigned to a fixed number of lanes; each lane
sums its chunks in order with single-threaded BLAS, the lanes run in parallel on up to
``--threads`` threads, and the lane totals are added in lane order. The result is the
same bits whatever the thread count.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import array_api_compat

from .backend import blas_single_threaded, cpu_threads

SMALL = 256  # rows up to which BLAS never splits the sum: plain product (the tutorials live here)
ROWS = 2048  # rows per chunk
LANES = 4  # fixed number of partial sums: the summation order never depends on threads


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
