"""Rows streamed to the device a chunk at a time: a host source read where a pass reaches it, and its targets.

    >>> import numpy as np, xpnet
    >>> from xpnet.engine.rows import HostRows
    >>> from xpnet.engine.stream import StreamedRows
    >>> backend = xpnet.get_backend("numpy")
    >>> X = StreamedRows(HostRows(np.arange(12.0).reshape(6, 2)), backend, backend.dtype("float32"))
    >>> X.shape, X[2:4].tolist()                  # rows 2 and 3, read and converted now
    ((6, 2), [[4.0, 5.0], [6.0, 7.0]])

Training data that is a memory map (``np.load(path, mmap_mode="r")``) or a
:class:`~xpnet.engine.rows.HostRows` is never copied whole. :func:`residency` decides where
its rows live: on the device as today ("device"), or read from the source chunk by chunk in
every pass ("streamed"): always on NumPy (whose device is the host: the point is not to copy
the file), and on other backends when they do not fit the device. Streamed, the trainer
holds a :class:`StreamedRows` and a :class:`StreamedTargets`: ``X[a:b]`` and ``T[a:b]``
read, convert (the model's dtype, the standardization) and send to the device rows
``[a, b)``, and the targets are made per chunk (one-hot for softmax, the weight column of
weighted losses). The chunked pass (:func:`xpnet.engine.fullbatch.chunked`) reads the same
chunks in the same lanes as from an array on the device, so the results are the same bits.

While a chunk computes, the next one is on its way: its pages are advised to the kernel
(:meth:`~xpnet.engine.rows.HostRows.prefetch`), and on CuPy its copy to the device runs on a
second stream from pinned host buffers (:func:`xpnet.backend.chunk_uploader`; other
backends copy a chunk when it is used, through the same :meth:`StreamedRows.read`).
"""

from __future__ import annotations

import copy

import numpy as np

from ..backend import chunk_uploader, get_backend, itemsize
from ..core import inputs
from ..errors import XpnetTypeError, XpnetValueError
from ..memory import HEADROOM
from .rows import HostRows, block_rows, spans

RESIDENCIES = ("device", "streamed")  # FitResult.data_residency: where the training rows live
FILL_BYTES = 1 << 22  # float64 bytes of a source converted at a time when its rows are copied to the device


def source_of(X) -> HostRows | None:
    """``X`` as a :class:`HostRows` when it is a row source (a 2-D memory map or a HostRows), else None."""
    if isinstance(X, HostRows):
        return X
    if isinstance(X, np.memmap) and X.ndim == 2:
        return HostRows(X)
    return None


def residency(backend, needed: int, streamable: bool = True) -> str:
    """Where the rows of a source live in training: ``"streamed"`` on NumPy (the device is the
    host: a copy would only duplicate the file) and on a device without room for ``needed``
    bytes (the run with its rows resident), else ``"device"``. ``streamable`` False (a pass
    over all rows at once: dropout or batch norm in full batch, or a tiny one) keeps them resident."""
    if not streamable:
        return "device"
    if backend.name == "numpy":
        return "streamed"
    free = backend.available_memory()
    return "device" if free is None or needed <= HEADROOM * free else "streamed"


def host_dtype(dtype) -> np.dtype:
    """The NumPy dtype of a backend's float dtype."""
    return np.dtype("float32" if itemsize(dtype) == 4 else "float64")


def check_shape(rows: HostRows, n_in: int, allow_empty: bool = False) -> None:
    """The checks :func:`xpnet.core.inputs.as_inputs` makes, for a source."""
    if rows.shape[1] != n_in:
        raise XpnetValueError(f"X has shape {rows.shape}; the model expects (n_samples, {n_in})")
    if rows.shape[0] == 0 and not allow_empty:
        raise XpnetValueError("X is empty; pass at least one sample")


def resident(rows: HostRows, backend, dtype):
    """All rows of a source on the device in ``dtype``, copied a block at a time (never a whole
    host copy: the peak on the host is one block), checked finite and in range."""
    n, width = rows.shape
    host = host_dtype(dtype)
    step = block_rows(width, FILL_BYTES)
    if backend.name == "numpy":
        out = np.empty((n, width), dtype=host)
        for a, z in spans(n, step):
            out[a:z] = _checked(rows, a, rows.chunk(a, z, host))
        return out
    out = backend.xp.empty((n, width), dtype=dtype, device=backend.device)
    for a, z in spans(n, step):
        out[a:z, :] = backend.asarray(_checked(rows, a, rows.chunk(a, z, host)), dtype)
    return out


class StreamedRows:
    """The rows of a host source as the device sees them, read a chunk at a time.

    ``X[a:b]`` (also ``X[a:b, ...]``) reads rows ``[a, b)`` of ``rows``, converts them to
    ``dtype`` and returns them on ``backend``'s device; :meth:`take` gathers rows by position
    (a minibatch). It has the ``shape``, ``dtype`` and ``ndim`` of the array it stands for,
    and refuses to become one (``np.asarray(X)`` raises: a whole copy is what it avoids).

    ``verify``: check every chunk for NaN, Inf and values beyond ``dtype``'s range (default:
    unless the source is known finite and cannot overflow); :meth:`check` does it once for
    all, in one pass. Reads are not thread-safe on CuPy (one reader at a time, as its lanes
    run); on NumPy each lane reads its own chunks on its own thread.
    """

    ndim = 2

    def __init__(self, rows: HostRows, backend, dtype, *, verify: bool | None = None):
        self.rows, self.backend = rows, backend
        self.shape = rows.shape
        self.host_dtype = host_dtype(dtype)
        self.dtype = self.host_dtype if backend.name == "numpy" else dtype  # what an array's .dtype is
        self.verify = not _safe(rows, self.host_dtype) if verify is None else verify
        self.uploader = None if backend.name == "numpy" else chunk_uploader(backend) or _Staged(backend, dtype)
        self._next: dict | None = None  # span -> the span read after it (None: the following rows)
        self._pending: tuple | None = None  # (span, ticket): the chunk on its way to the device

    def __repr__(self) -> str:
        return f"StreamedRows({self.shape[0]} x {self.shape[1]}, {self.host_dtype}, {self.backend.describe()})"

    def __array__(self, *args, **kwargs):
        raise XpnetTypeError("streamed rows are read a chunk at a time (X[a:b]); converting them whole is the copy "
                             "streaming avoids")

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        a, z = _span(key, self.shape[0])
        return self.read(a, z)

    def read(self, a: int, z: int):
        """Rows ``[a, z)`` on the device, with the chunk read after them set on its way."""
        following = self._following(a, z)
        uploader = self.uploader
        if uploader is None:  # NumPy: the host chunk is the device's; the kernel reads the next one's pages
            if following is not None:
                self.rows.prefetch(*following)
            return self._host(a, z)
        pending, self._pending = self._pending, None
        ticket = pending[1] if pending is not None and pending[0] == (a, z) else uploader.start(self._host(a, z))
        chunk = uploader.finish(ticket)
        if following is not None:
            self._pending = (following, uploader.start(self._host(*following)))
            after = self._following(*following)
            if after is not None:
                self.rows.prefetch(*after)
        return chunk

    def take(self, positions):
        """The rows at ``positions`` (host integers, any order) on the device: a minibatch."""
        host = self.rows.take(positions, self.host_dtype)
        if self.verify:
            _checked(self.rows, None, host)
        return host if self.uploader is None else self.backend.asarray(host, self.dtype)

    def subset(self, positions) -> StreamedRows:
        """The rows at ``positions``, streamed likewise (nothing read)."""
        return StreamedRows(self.rows.subset(positions), self.backend, self.dtype, verify=self.verify)

    def reading(self, groups, parallel: bool) -> StreamedRows:
        """This source as a pass over the lanes ``groups`` (lists of spans) reads it: each chunk
        sets the next one of its lane on its way (lanes on threads), or the next one read at
        all (lanes one after another)."""
        order = groups if parallel else [[span for group in groups for span in group]]
        view = copy.copy(self)
        view._next = {span: after for group in order for span, after in zip(group, group[1:])}
        view._pending = None
        return view

    def check(self) -> None:
        """Check every row once (NaN, Inf, beyond the dtype's range), so chunks need no check."""
        if self.verify:
            with np.errstate(over="ignore"):  # beyond the dtype's range is inf here, refused by name below
                for block in self.rows.unordered_blocks():
                    _checked(self.rows, None, block.astype(self.host_dtype), block)
        self.verify = False

    def _following(self, a: int, z: int):
        if self._next is not None:
            return self._next.get((a, z))
        n = self.shape[0]
        return (z, min(n, 2 * z - a)) if a < z < n else None

    def _host(self, a: int, z: int) -> np.ndarray:
        block = self.rows.chunk(a, z, self.host_dtype)
        return _checked(self.rows, a, block) if self.verify else block


class StreamedTargets:
    """The targets of streamed rows, made a chunk at a time: ``T[a:b]``, :meth:`take` and
    :meth:`subset` as for :class:`StreamedRows`.

    Softmax keeps the class numbers (int64, one per row) and makes one-hot rows per chunk;
    other outputs keep the targets in the model's dtype (N, n_out) on the host. With
    ``weights`` (N,), each chunk ends with a column of them (the weighted loss's targets).
    Checked when made, as :func:`xpnet.core.inputs.as_targets` checks.
    """

    ndim = 2

    def __init__(self, backend, dtype, output: str, n_out: int, y, n: int, weights=None):
        self.backend, self.output, self.n_out = backend, output, n_out
        self.host_dtype = host_dtype(dtype)
        self.dtype = self.host_dtype if backend.name == "numpy" else dtype
        if output == "softmax":
            self.values = inputs.class_labels(y, n, n_out)
            self.eye = np.eye(n_out, dtype=self.host_dtype)
        else:
            self.values = inputs.as_targets(get_backend("numpy"), self.host_dtype.type, output, n_out, y, n)
        self.weights = weights
        self.shape = (n, n_out + (weights is not None))

    def __array__(self, *args, **kwargs):
        raise XpnetTypeError("streamed targets are made a chunk at a time (T[a:b])")

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        a, z = _span(key, self.shape[0])
        return self._device(slice(a, z))

    def take(self, positions):
        return self._device(np.asarray(positions, dtype=np.int64))

    def subset(self, positions) -> StreamedTargets:
        positions = np.asarray(positions, dtype=np.int64)
        out = copy.copy(self)
        out.values = self.values[positions]
        out.weights = None if self.weights is None else self.weights[positions]
        out.shape = (positions.shape[0], self.shape[1])
        return out

    def with_weights(self, weights) -> StreamedTargets:
        """These targets with a last column of ``weights`` (N,) >= 0 (checked as the resident ones are)."""
        w = inputs.to_device(get_backend("numpy"), self.host_dtype.type, weights, "sample_weight")
        if tuple(w.shape) != (self.shape[0],):
            raise XpnetValueError(f"sample_weight has shape {tuple(w.shape)}; expected ({self.shape[0]},), one per "
                                  "row of X")
        if np.any(w < 0):
            raise XpnetValueError("sample_weight holds negative values; weights must be >= 0")
        out = copy.copy(self)
        out.weights = w
        out.shape = (self.shape[0], self.n_out + 1)
        return out

    def _device(self, rows):
        T = self.eye[self.values[rows]] if self.output == "softmax" else self.values[rows]
        if self.weights is not None:
            T = np.concatenate([T, self.weights[rows][:, None]], axis=1)
        return T if self.backend.name == "numpy" else self.backend.asarray(T, self.dtype)


class _Staged:
    """Chunks copied to the device when used: :meth:`start` keeps the host chunk, :meth:`finish`
    copies it (the protocol of CuPy's overlapping uploader, without the overlap)."""

    def __init__(self, backend, dtype):
        self.backend, self.dtype = backend, dtype

    def start(self, host: np.ndarray):
        return host

    def finish(self, ticket):
        return self.backend.asarray(ticket, self.dtype)


def _span(key, n: int) -> tuple[int, int]:
    """``(a, z)`` of a row slice ``[a:z]`` or ``[a:z, ...]`` / ``[a:z, :]``."""
    if isinstance(key, tuple) and len(key) == 2 and (key[1] is Ellipsis or key[1] == slice(None)):
        key = key[0]
    if not isinstance(key, slice) or key.step not in (None, 1):
        raise XpnetTypeError(f"streamed rows are read by row slices ([a:b]), not {key!r}; use .take(positions)")
    a, z, _ = key.indices(n)
    return a, max(a, z)


def _safe(rows: HostRows, dtype: np.dtype) -> bool:
    """Whether every value of ``rows`` is finite in ``dtype`` without looking: integers (they fit
    float32), or floats scanned finite that ``dtype`` holds, without a standardization."""
    kind = rows.data.dtype.kind
    return rows.scaler is None and (kind in "biu" or (rows.checked and kind == "f"
                                                      and rows.data.dtype.itemsize <= dtype.itemsize))


def _checked(rows: HostRows, start, block: np.ndarray, wide: np.ndarray | None = None) -> np.ndarray:
    """``block`` (rows converted to the model's dtype), refused with the place and the fix when a
    value is NaN, Inf or beyond the dtype's range (``wide``: the same rows in float64, if at hand)."""
    finite = np.isfinite(block)
    if finite.all():
        return block
    r, c = (int(i[0]) for i in np.nonzero(~finite))
    where = f" (row {start + r}, column {c})" if start is not None else ""
    if wide is None and start is not None:
        wide = rows.rows(start, start + r + 1)
    value = float(wide[r, c]) if wide is not None else float("nan")
    if np.isfinite(value):
        raise XpnetValueError(f"X holds {value:.3g}{where}, beyond {block.dtype}'s range (+-"
                              f"{float(np.finfo(block.dtype).max):.3g}); rescale the data or use dtype='float64'")
    raise XpnetValueError(f"X contains NaN or Inf{where}; clean or impute those values first")
