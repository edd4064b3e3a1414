"""Rows of a host array read in bounded chunks: selected by index, converted, standardized, prefetched.

    >>> import numpy as np
    >>> from xpnet.engine.rows import HostRows
    >>> data = np.arange(12, dtype=np.float32).reshape(4, 3)   # or np.load(path, mmap_mode="r")
    >>> rows = HostRows(data, index=np.array([3, 1]), columns=slice(0, 2))
    >>> rows.shape, rows.rows(0, 2).tolist()
    ((2, 2), [[9.0, 10.0], [3.0, 4.0]])

A :class:`HostRows` is what ``xpnet train --data big.npy`` hands to training instead of a
copy of the file: ``data`` is a read-only memory map of the file (page cache, not process
memory), ``index`` the training rows in training order (a validation split is arrays of row
numbers, never a copy of ``X``), ``scaler`` the standardization, applied to each chunk after
its conversion. Memory is then bounded by the chunk, not the file: only :meth:`HostRows.rows`,
:meth:`HostRows.chunk` and :meth:`HostRows.take` allocate, and only the rows asked for.
:meth:`HostRows.prefetch` asks the kernel to read a chunk's pages ahead of their use.

This module needs NumPy only (no other xpnet module), so any layer may use it; the trainer
reads it through :mod:`xpnet.engine.stream`.
"""

from __future__ import annotations

import functools
import mmap
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

BLOCK_BYTES = 1 << 18  # float64 bytes converted at a time by the streaming passes (256 KiB: a cache's worth)
GATHERED_SPAN = 2  # rows picked by an increasing index are prefetched as one range up to this many times their count


def block_rows(width: int, budget: int | None = None) -> int:
    """Rows per block so that a float64 block of ``width`` columns takes about ``budget`` bytes
    (default :data:`BLOCK_BYTES`)."""
    return max(1, (budget or BLOCK_BYTES) // (8 * max(1, width)))


def spans(n: int, step: int) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` of consecutive blocks of ``step`` rows covering ``range(n)``."""
    for start in range(0, n, step):
        yield start, min(start + step, n)


@dataclass(frozen=True)
class HostRows:
    """The rows ``data[index][:, columns]``, read a chunk at a time as float64 through ``scaler``.

    Nothing is read or copied until a chunk is asked for; :meth:`rows`, :meth:`take` and
    :meth:`blocks` return float64 arrays of the chunk's rows only (read-only use: without
    an index, columns or scaler, a float64 ``data`` chunk may be a view of ``data``), and
    :meth:`chunk` the same numbers in another float dtype. ``rows[a:b]`` is the selection's
    rows ``[a, b)``, itself a :class:`HostRows` (nothing read).
    """

    data: np.ndarray  # (M, W) real numbers, any dtype: often a read-only np.memmap (or a strided view of one)
    index: np.ndarray | None = None  # (N,) int64 rows of data, in order (None: every row of data, in order)
    columns: Any = None  # data's columns to keep: a slice or int array (None: all)
    scaler: Any = None  # .transform(float64 (n, F), copy=...) -> float64 (n, F), per chunk (None: no scaling)
    checked: bool = False  # the values are known finite (xpnet's file readers scanned them when they opened the file)

    @property
    def shape(self) -> tuple[int, int]:
        """``(N, F)``: the selected rows and feature columns."""
        n = self.data.shape[0] if self.index is None else self.index.shape[0]
        columns = range(self.data.shape[1])
        return n, len(columns if self.columns is None else columns[self.columns] if isinstance(self.columns, slice)
                      else self.columns)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        """``rows[a:b]``: the rows ``[a, b)`` of the selection, a :class:`HostRows` (nothing read), as
        a slice of an array is a view; ``rows[mask]`` (bools, one a row) or ``rows[positions]``
        (integers): those rows read, as :meth:`take` gives them, as such an index copies."""
        if not isinstance(key, slice):
            positions = np.asarray(key)
            if positions.dtype == bool and positions.shape == (self.shape[0],):
                positions = np.flatnonzero(positions)
            if positions.ndim != 1 or positions.dtype.kind not in "iu":
                raise TypeError(f"HostRows takes a slice of rows, a mask or positions (1-D), not {key!r}")
            return self.take(positions)
        if key.step not in (None, 1):
            raise TypeError(f"HostRows takes a slice of consecutive rows, not {key!r}; use .take(positions)")
        start, stop, _ = key.indices(self.shape[0])
        if self.index is not None:
            return replace(self, index=self.index[start:stop])
        return replace(self, data=self.data[start:max(start, stop)])

    @property
    def mapped(self) -> bool:
        """Whether ``data`` is (a view of) a memory-mapped file."""
        return isinstance(self.data, np.memmap)

    def raw(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` of the selection in ``data``'s dtype, neither converted nor scaled
        (a view of ``data`` when there is no index and the columns are a slice)."""
        if self.index is None:
            block = self.data[start:stop]
        else:
            block = self.data[self.index[start:stop]]
        return block if self.columns is None else block[:, self.columns]

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` of the selection as float64 (n, F), standardized when there is a scaler."""
        return self._finish(self.raw(start, stop))

    def chunk(self, start: int, stop: int, dtype) -> np.ndarray:
        """Rows ``[start, stop)`` as a C-contiguous array of the float ``dtype``: the numbers of
        :meth:`rows`, converted (float data without a scaler in one copy, or none when ``data``
        holds them so already; the same numbers: a float rounds to ``dtype`` once either way)."""
        return self._finish(self.raw(start, stop), dtype)

    def take(self, positions, dtype=np.float64) -> np.ndarray:
        """The rows at ``positions`` of the selection (any order: a minibatch), as :meth:`rows`
        gives them (as :meth:`chunk` gives them in ``dtype``)."""
        positions = np.asarray(positions, dtype=np.int64)
        picked = positions if self.index is None else self.index[positions]
        block = self.data[picked]
        return self._finish(block if self.columns is None else block[:, self.columns], dtype)

    def subset(self, positions) -> HostRows:
        """The rows at ``positions`` of the selection, as a selection (nothing read)."""
        positions = np.asarray(positions, dtype=np.int64)
        return replace(self, index=positions if self.index is None else self.index[positions])

    def blocks(self, size: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, rows(start, stop))`` over the whole selection, ``size`` rows at a time
        (default: :func:`block_rows` of the width)."""
        n, width = self.shape
        for start, stop in spans(n, size or block_rows(width)):
            yield start, stop, self.rows(start, stop)

    def unordered_blocks(self, size: int | None = None) -> Iterator[np.ndarray]:
        """The selection's rows as float64 blocks (as :meth:`rows` gives them), in ``data``'s order
        when the index picks distinct rows, else in the selection's order.

        For what does not depend on the rows' order but for rounding (sums, statistics): a
        memory map is then read front to back, ``size`` of its rows at a time (default
        :func:`block_rows`), which is several times faster than gathering rows in a shuffled
        order. Costs one bool per row of ``data``.
        """
        n, width = self.shape
        step = size or block_rows(width)
        if self.index is not None and n:
            picked = np.zeros(self.data.shape[0], dtype=bool)
            picked[self.index] = True
            if np.count_nonzero(picked) == n:  # distinct rows: any order holds the same rows
                whole = replace(self, index=None)
                for start, stop in spans(self.data.shape[0], step):
                    block = whole.raw(start, stop)[picked[start:stop]]
                    if block.shape[0]:
                        yield whole._finish(block)
                return
        for start, stop in spans(n, step):
            yield self.rows(start, stop)

    def materialize(self) -> np.ndarray:
        """The whole selection as one float64 (N, F) array, filled a block at a time (never a
        second copy of the data: the peak is the result and one block). ``data`` itself when
        it is a float64 array in memory and there is nothing to pick, convert or scale."""
        if self.index is None and self.columns is None and self.scaler is None and not self.mapped \
                and self.data.dtype == np.float64:
            return self.data
        n, width = self.shape
        out = np.empty((n, width), dtype=np.float64)
        for start, stop in spans(n, block_rows(width)):
            out[start:stop] = self.rows(start, stop)  # one block alive at a time
        return out

    def with_scaler(self, scaler) -> HostRows:
        """The same rows read through ``scaler`` (a copy of this description, not of the data)."""
        return replace(self, scaler=scaler)

    def prefetch(self, start: int, stop: int) -> None:
        """Ask the kernel to read the pages of rows ``[start, stop)`` of a memory map now, in the
        background (``madvise(MADV_WILLNEED)`` on their bytes), so that reading them later finds
        them in the page cache. Rows picked by an increasing index are advised as the range they
        span when it is not much wider than they are; otherwise (shuffled rows, data in memory,
        no ``madvise``) nothing is done."""
        where = self._map
        if where is None or stop <= start:
            return
        first, last = start, stop - 1
        if self.index is not None:
            first, last = int(self.index[start]), int(self.index[stop - 1])
            if not 0 <= last - first < GATHERED_SPAN * (stop - start):
                return
        mm, base, size = where
        data = self.data
        low = data.ctypes.data + first * data.strides[0] - base  # byte offsets in the map
        high = min(size, data.ctypes.data + last * data.strides[0] + data.strides[0] - base)
        low -= low % mmap.PAGESIZE  # madvise starts on a page
        if high > low >= 0:
            try:
                mm.madvise(mmap.MADV_WILLNEED, low, high - low)
            except (OSError, ValueError):  # a hint only: a closed or odd map reads as it would have
                pass

    @functools.cached_property
    def _map(self) -> tuple | None:
        """``(mmap, its address, its size)`` of a memory-mapped ``data`` whose rows advance in memory
        (what :meth:`prefetch` advises), else None."""
        mm = getattr(self.data, "_mmap", None)
        if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_WILLNEED") \
                or self.data.ndim != 2 or self.data.strides[0] <= 0:
            return None
        try:
            base = np.frombuffer(mm, dtype=np.uint8, count=1).ctypes.data
        except (TypeError, ValueError):  # closed, or empty
            return None
        return mm, base, len(mm)

    def _finish(self, block: np.ndarray, dtype=np.float64) -> np.ndarray:
        dtype = np.dtype(dtype)
        if self.scaler is None and (dtype == np.float64 or (block.dtype.kind == "f" and block.dtype.itemsize <= 8)):
            # float16/32/64 -> float32 rounds once directly or through float64: the same number
            with np.errstate(over="ignore"):  # a value beyond dtype's range is inf: whoever checks says where
                return np.ascontiguousarray(block, dtype=dtype)
        block = np.asarray(block, dtype=np.float64)
        if self.scaler is not None:
            # a block read by index or converted is a new array: standardized in place, no second buffer
            block = self.scaler.transform(block, copy=np.may_share_memory(block, self.data))
        if dtype == np.float64:
            return block
        with np.errstate(over="ignore"):
            return block.astype(dtype)
