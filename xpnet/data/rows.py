"""Rows of a host array read in bounded blocks: selected by index, converted to float64, standardized.

    >>> import numpy as np
    >>> from xpnet.data.rows import HostRows
    >>> data = np.arange(12, dtype=np.float32).reshape(4, 3)   # or np.load(path, mmap_mode="r")
    >>> rows = HostRows(data, index=np.array([3, 1]), columns=slice(0, 2))
    >>> rows.shape, rows.rows(0, 2).tolist()
    ((2, 2), [[9.0, 10.0], [3.0, 4.0]])

A :class:`HostRows` is what ``xpnet train --data big.npy`` hands to training instead of a
float64 copy of the file: ``data`` is a read-only memory map of the file (page cache, not
process memory), ``index`` the training rows in training order (a validation split is
arrays of row numbers, never a copy of ``X``), ``scaler`` the standardization, applied to
each chunk after its conversion. Memory is then bounded by the chunk, not the file: only
:meth:`HostRows.rows` / :meth:`HostRows.take` allocate, and only the rows asked for.

This module needs NumPy only (no other xpnet module), so any layer may use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

BLOCK_BYTES = 1 << 18  # float64 bytes converted at a time by the streaming passes (256 KiB: a cache's worth)


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
    an index, columns or scaler, a float64 ``data`` chunk may be a view of ``data``).
    """

    data: np.ndarray  # (M, W) real numbers, any dtype: often a read-only np.memmap (or a strided view of one)
    index: np.ndarray | None = None  # (N,) int64 rows of data, in order (None: every row of data, in order)
    columns: Any = None  # data's columns to keep: a slice or int array (None: all)
    scaler: Any = None  # .transform(float64 (n, F), copy=...) -> float64 (n, F), per chunk (None: no scaling)

    @property
    def shape(self) -> tuple[int, int]:
        """``(N, F)``: the selected rows and feature columns."""
        n = self.data.shape[0] if self.index is None else self.index.shape[0]
        columns = range(self.data.shape[1])
        return n, len(columns if self.columns is None else columns[self.columns] if isinstance(self.columns, slice)
                      else self.columns)

    def __len__(self) -> int:
        return self.shape[0]

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

    def take(self, positions) -> np.ndarray:
        """The rows at ``positions`` of the selection (any order: a minibatch), as :meth:`rows` gives them."""
        positions = np.asarray(positions, dtype=np.int64)
        picked = positions if self.index is None else self.index[positions]
        block = self.data[picked]
        return self._finish(block if self.columns is None else block[:, self.columns])

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

    def _finish(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, dtype=np.float64)
        if self.scaler is None:
            return block
        # a block read by index or converted is a new array: standardized in place, no second buffer
        return self.scaler.transform(block, copy=np.may_share_memory(block, self.data))
