"""Where a fit's rows live: on the device, or streamed from a host source a chunk at a time; the memory check.

A row source (a memory map, :class:`~xpnet.engine.rows.HostRows`) is never copied whole:
:func:`residency` decides whether its rows are copied to the device (a block at a time) or
read in every pass (:mod:`xpnet.engine.stream`), and :func:`placed` makes the arrays (or
streams) the trainer holds. :func:`check_memory` refuses a run that would not fit before
anything of the data's size is copied.
"""

from __future__ import annotations

from ..backend import itemsize
from ..engine import fullbatch, stream
from ..engine.numpy_ops import get_ops
from ..engine.plan import takes_all_rows
from ..memory import check_fits, estimate_bytes
from .config import TrainConfig


def residency(model, config: TrainConfig, X, training: bool = True) -> str:
    """``"device"`` for arrays; for a row source, where its rows live (:func:`xpnet.engine.stream.residency`):
    streamed, unless the training pass takes all rows at once (``training``) or, off NumPy, the
    run fits the device with them."""
    if stream.source_of(X) is None:
        return "device"
    n = X.shape[0]
    streamable = not (training and full_batch(config, n) and takes_all_rows(model.spec, n))
    needed = estimate_bytes(model.layer_sizes, n, itemsize(model.dtype_name), rows_at_once(model, config, n))
    return stream.residency(model.backend, needed, streamable)


def placed(model, X, y, shared: bool, where: str = "device"):
    """``(X, T)`` validated on the model's device, or a source's rows streamed (``where``:
    :func:`residency`; checked once here, not in every epoch). Out of device memory on the way
    is xpnet's memory error, from :meth:`~xpnet.backend.Backend.asarray`."""
    source = stream.source_of(X)
    if source is None:
        X = model.as_inputs(X, allow_empty=shared)
        return X, model.as_targets(y, X.shape[0])
    stream.check_shape(source, model.layer_sizes[0], allow_empty=shared)
    n = source.shape[0]
    if where == "device":  # copied a block at a time: never a whole host copy
        return stream.resident(source, model.backend, model.dtype), model.as_targets(y, n)
    X = stream.StreamedRows(source, model.backend, model.dtype)
    X.check()
    return X, model.as_targets(y, n, streamed=True)


def check_memory(model, config: TrainConfig, n: int, placed: bool, streamed: bool = False) -> None:
    """Refuse a run that would not fit on the device, before its data is copied there (streamed
    data counts by its chunk buffers, a chunk computing and the next on its way, not the source)."""
    rows = rows_at_once(model, config, n)
    check_fits(model.backend, model.layer_sizes, n, itemsize(model.dtype_name), rows,
               resident_rows=2 * rows if streamed else None, placed=placed)


def rows_at_once(model, config: TrainConfig, n: int) -> int:
    """Rows whose activations a step holds at once: the chunks of a full-batch pass, else a batch."""
    return fullbatch.rows_at_once(get_ops(model.backend), model.layer_sizes, itemsize(model.dtype_name), n) \
        if full_batch(config, n) and not model.spec.dropout and model.bn is None else min(n, config.batch_size or n)


def full_batch(config: TrainConfig, n: int) -> bool:
    """Whether a step of ``config`` over ``n`` rows takes them all (no batch size, or one as large)."""
    return config.batch_size is None or config.batch_size >= n
