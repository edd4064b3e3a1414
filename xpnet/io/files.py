"""Opening files safely (regular files only, never blocking), and the table every data reader returns."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.labels import _numeric
from ..errors import XpnetValueError
from .atomic import kind_of

FORMATS = (".csv", ".npy", ".npz")

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-", "missing"})  # cells read as missing values
NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # POSIX; elsewhere there are no FIFOs to block on
CHUNK = 1 << 16  # bytes read (or decompressed) at a time: a .npz member, a pass over a CSV


@dataclass
class Table:
    """Data read from a file: ``X`` float64 (N, F), ``y`` (N,) labels or None, column names.

    A block read (``load_file(..., block=...)``) holds file rows ``[start, start + N)``
    of the file's ``n_rows``. A mapped table (``load_file(..., mapped=True)`` of an
    ``.npy`` or a stored ``.npz`` member) has ``mapped`` True and ``X`` a
    :class:`~xpnet.data.rows.HostRows` over a read-only memory map of the file (the
    file's dtype, read a chunk at a time), not an array.
    """

    X: Any  # np.ndarray (N, F) float64, or HostRows when mapped
    y: np.ndarray | None
    feature_names: list
    target: str | None
    start: int = 0  # the file row of X[0]
    n_rows: int | None = None  # rows in the whole file
    mapped: bool = False  # X is HostRows over a memory map of the file


def check_regular(path, name: str, expected: str, missing: str = "") -> os.stat_result:
    """The ``stat`` of ``path``, refused unless it is an existing regular file (nothing is opened).

    Errors are one line beginning with ``name`` (how the caller calls the file, e.g.
    ``"data file 'x.csv'"``): no such file (followed by ``missing``, a hint), cannot read it,
    or it is a directory or another kind of file, with the fix "give the path of
    ``expected``".
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise XpnetValueError(f"{name}: no such file{missing}") from None
    except OSError as exc:
        raise XpnetValueError(f"{name}: cannot read it ({exc.strerror or exc}); check its path and "
                              "permissions") from None
    _refuse_special(info, name, expected)
    return info


def _refuse_special(info: os.stat_result, name: str, expected: str) -> None:
    if stat.S_ISREG(info.st_mode):
        return
    kind = kind_of(info.st_mode)
    what = "a directory" if stat.S_ISDIR(info.st_mode) else \
        f"not a regular file{f' (it is {kind})' if kind else ''}"
    raise XpnetValueError(f"{name}: is {what}; give the path of {expected}")


def open_regular(path, name: str, expected: str, missing: str = ""):
    """``path`` opened for reading bytes, refused unless it is an existing regular file.

    Checked before it is opened (:func:`check_regular`), so a FIFO or device is never opened
    for reading; opened non-blocking (were it swapped for a FIFO since, opening does not
    hang) and checked again on the open file. Errors as :func:`check_regular`'s.
    """
    check_regular(path, name, expected, missing)
    try:
        handle = open(path, "rb", opener=_open_nonblocking)
    except OSError as exc:
        raise XpnetValueError(f"{name}: cannot open it ({exc.strerror or exc}); check that it is readable "
                              "(permissions)") from None
    try:
        _refuse_special(os.fstat(handle.fileno()), name, expected)
        if NONBLOCK:
            os.set_blocking(handle.fileno(), True)  # a regular file: reads behave as usual
    except BaseException:
        handle.close()
        raise
    return handle


def _open_nonblocking(path, flags: int) -> int:
    # O_NONBLOCK: opening a FIFO for reading does not wait for a writer
    return os.open(path, flags | NONBLOCK | getattr(os, "O_CLOEXEC", 0))


DATA_FILES = f"a {', '.join(FORMATS)} file"


def _check_regular(path) -> None:
    check_regular(path, f"data file {path!r}", DATA_FILES)


def _open(path):
    """``path`` opened for reading bytes; a one-line error when it cannot be."""
    return open_regular(path, f"data file {path!r}", DATA_FILES)


def _check_finite(X: np.ndarray, where) -> None:
    """Refuse NaN (a missing value) and infinities in ``X``; ``where(row, column)`` names a cell."""
    if X.size and not np.isfinite(X).all():
        r, c = (int(i) for i in np.argwhere(~np.isfinite(X))[0])
        value = X[r, c]
        fix = " (a missing value); xpnet does not fill in missing values: fill them in or drop those rows" \
            if np.isnan(value) else "; xpnet needs finite numbers: replace it or drop the row"
        raise XpnetValueError(f"{where(r, c)} is {value}{fix}")


def _check_labels(cells: np.ndarray, where, name) -> None:
    """Refuse empty (or NaN) labels; ``where(row)`` names a row (file included)."""
    if cells.dtype.kind in "US":
        empty = np.flatnonzero(np.char.str_len(cells) == 0) if cells.size else np.zeros(0, dtype=np.intp)
    elif cells.dtype.kind in "fc":
        empty = np.flatnonzero(~np.isfinite(cells))
    else:
        return
    if empty.size:
        _empty_label(where(int(empty[0])), name, cells[empty[0]])


def _check_missing_numbers(cells: np.ndarray, where, name) -> None:
    """Refuse a missing-value marker (``NA``, ``?``...) in a target column of numbers, which
    would otherwise turn every label into a word; ``where(row)`` names a row."""
    if cells.dtype.kind != "U" or not cells.size:
        return
    marked = np.isin(np.char.lower(cells), list(MISSING))
    if marked.any() and not marked.all() and _numeric(cells[~marked]) is not None:
        r = int(np.flatnonzero(marked)[0])
        raise XpnetValueError(f"{where(r)}: the label (column {name!r}) is {str(cells[r])!r}, a missing label in a "
                              "column of numbers; give every row a label or drop the unlabelled rows")


def _empty_label(where: str, name, value=""):
    what = "is empty" if isinstance(value, str) else f"is {value}"
    raise XpnetValueError(f"{where}: the label (column {name!r}) {what}, a missing label; give every row a label "
                          "or drop the unlabelled rows")


def _target_index(path, header, target, has_target):
    if target is None:
        return len(header) - 1 if has_target else None
    if isinstance(target, str) and target in header:
        return header.index(target)
    try:
        index = int(target)
    except (TypeError, ValueError):
        index = None
    if index is not None and -len(header) <= index < len(header):
        return index % len(header)
    if not has_target:
        return None
    raise XpnetValueError(f"--target {target!r} is not a column of {path!r}; the columns are {', '.join(header)}")
