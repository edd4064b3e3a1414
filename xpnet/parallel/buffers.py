"""The buffers processes add up: gradients in their own dtype, then the step's few numbers, exact.

:func:`pack` and :func:`unpack` stage arrays through one contiguous host buffer (MPI's
``Allreduce`` on NumPy memory); :func:`reduce_on_device` builds the same buffer on the device
for NCCL. :func:`encode` and :func:`decode` carry a step's row count, summed loss and
interrupt flag at the buffer's end so that their sums over the processes stay exact.
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend as _backend
from ..errors import XpnetValueError

DIGITS, BASE = 5, 256  # float32 buffers carry the row count as 5 base-256 digits: exact up to 2**40 rows


def buffer_dtype(arrays):
    """float32 when every array is float32 (float32 runs send half the bytes, and nothing is cast), else float64."""
    narrow = arrays and all(_backend.itemsize(a.dtype) == 4 for a in arrays)
    return np.float32 if narrow else np.float64


def tail_size(dtype) -> int:
    return 3 if dtype == np.float64 else DIGITS + 2


def encode(n_local: int, loss: float, flag: int, dtype) -> list:
    """``n_local``, ``loss`` and ``flag`` as numbers whose sums over the processes decode exactly.

    In float64, as they are (whole numbers are exact up to 2**53). In float32 a whole number is
    exact only up to 2**24, so the row count travels as base-256 digits: each digit's sum over
    P processes stays below 255 * P < 2**24 for P up to 65,793. The flag is 0 or 1 (sum <= P).
    The loss is the float32 run's own float32 sum, added in float32 as one process adds it.
    """
    if dtype == np.float64:
        return [float(n_local), loss, float(flag)]
    if not 0 <= n_local < BASE**DIGITS:
        raise XpnetValueError(f"{n_local} rows on one process is more than a float32 step buffer counts "
                              f"({BASE**DIGITS}); use float64")
    return [float((n_local // BASE**i) % BASE) for i in range(DIGITS)] + [loss, float(flag)]


def decode(tail, dtype) -> tuple:
    """``(rows, loss, flags)`` summed over the processes, from the end of a reduced step buffer."""
    values = [float(v) for v in _backend.to_numpy(tail).tolist()]
    if dtype == np.float64:
        return int(values[0]), values[1], values[2]
    n = sum(int(round(d)) * BASE**i for i, d in enumerate(values[:DIGITS]))
    return n, values[DIGITS], values[DIGITS + 1]


def reduce_on_device(backend, reducer, arrays, n_local: int, loss, flag: int, dtype) -> tuple:
    """The step buffer built, reduced and split on the device (the loss may stay a device array)."""
    xp = backend.xp
    kind = xp.float32 if dtype == np.float32 else xp.float64
    numbers = encode(n_local, 0.0, flag, dtype)
    head = xp.asarray(numbers[:-2], dtype=kind, device=backend.device)
    loss_part = xp.reshape(xp.astype(xp.asarray(0.0 if loss is None else loss, device=backend.device), kind), (1,))
    flag_part = xp.asarray([numbers[-1]], dtype=kind, device=backend.device)
    buffer = xp.concat([xp.reshape(xp.astype(a, kind, copy=False), (-1,)) for a in arrays]
                       + [head, loss_part, flag_part])
    reducer(buffer)
    out, offset = [], 0
    for a in arrays:
        size = math.prod(a.shape)
        out.append(xp.reshape(buffer[offset:offset + size], tuple(a.shape)))
        offset += size
    return out, buffer[offset:]


def pack(arrays, extra=(), dtype=np.float64) -> np.ndarray:
    """One contiguous host buffer of ``dtype``: every array flattened, then the ``extra`` numbers."""
    sizes = [math.prod(a.shape) for a in arrays]
    buffer = np.empty(sum(sizes) + len(extra), dtype=dtype)
    offset = 0
    for a, size in zip(arrays, sizes):
        buffer[offset:offset + size] = np.reshape(_backend.to_numpy(a), (-1,))
        offset += size
    buffer[offset:] = extra
    return buffer


def unpack(backend, buffer: np.ndarray, like) -> list:
    """Arrays shaped and typed like ``like``, on ``backend``'s device, read from ``buffer``."""
    out, offset = [], 0
    for a in like:
        size = math.prod(a.shape)
        host = np.reshape(buffer[offset:offset + size], tuple(a.shape))
        out.append(backend.asarray(host, dtype=a.dtype))
        offset += size
    return out
