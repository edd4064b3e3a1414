"""CSV to .npy, streaming: the table converted a block of rows at a time, the .npy header written first.

    >>> from xpnet.io.convert import csv_to_npy
    >>> csv_to_npy("big.csv", "big.npy", target="label")     # doctest: +SKIP
    {'rows': 20000000, 'features': 32, ...}

A CSV is always read into memory to train on it (its numbers are text); an ``.npy`` is
memory-mapped and read a chunk at a time (docs/data.md). This converts one into the other
in bounded memory: the first pass of the CSV reader (:func:`xpnet.io.csv._scan_csv`)
counts the rows, so the ``.npy`` header (shape ``(rows, features + 1)``) is written first;
then :data:`~xpnet.data.rows.BLOCK_BYTES` worth of rows at a time are parsed by the same
vectorised reader that ``xpnet train --data file.csv`` uses, checked the same way (errors
name the line), and appended. The file is written atomically: a failure leaves no
partial ``.npy`` behind.

The ``.npy`` holds the features, in the CSV's order, then the label column last (where
``xpnet train --data file.npy`` looks by default). Labels must be numbers (class numbers
or a regression target): an ``.npy`` holds no words. Column names are not kept (an
``.npy`` names its columns ``x0``, ``x1``, ...); they are returned for the record.
"""

from __future__ import annotations

import io
import os

import numpy as np

from ..data.labels import _numeric
from ..data.rows import block_rows, spans
from ..errors import XpnetValueError
from .atomic import atomic_write, check_destination
from .csv import _csv_block, _csv_columns, _line_at
from .files import _check_regular

DTYPES = ("float64", "float32")  # what the .npy may hold


def csv_to_npy(source, dest, target=None, *, header: bool | None = None, dtype: str = "float64",
               rows_at_once: int | None = None) -> dict:
    """Convert the CSV table at ``source`` into the ``.npy`` file ``dest``, in bounded memory.

    Parameters
    ----------
    source : str or PathLike
        A ``.csv`` file, read as ``xpnet train --data`` reads it (docs/data.md).
    dest : str or PathLike
        The ``.npy`` to write (replaced atomically if it exists).
    target : str or int, optional
        The label column (a header name or an index); default the last column.
    header : bool, optional
        Whether the first row names the columns; default detected.
    dtype : {"float64", "float32"}
        The numbers of the ``.npy``. float64 keeps every value the CSV holds (training on
        the ``.npy`` then equals training on the CSV); float32 halves the file.
    rows_at_once : int, optional
        Rows parsed per block (default: about 8 MiB of float64).

    Returns
    -------
    dict
        ``rows``, ``features``, ``feature_names``, ``target`` (the label column's name),
        ``dtype``, ``bytes`` (the ``.npy``'s size) and ``dest``.

    Raises
    ------
    XpnetValueError
        One line: what the CSV reader refuses (naming the line), labels that are words,
        values that float32 cannot hold, a destination that cannot be written (checked
        before the CSV is read) or a disk too small for the ``.npy``.
    """
    source, dest = os.fspath(source), os.fspath(dest)
    _check_names(source, dest, dtype)
    _check_regular(source)
    check_destination(dest)
    layout, features, column = _csv_columns(source, target, True, header)
    assert column is not None  # has_target: there is a label column
    n, width, kind = len(layout.rows), len(features) + 1, np.dtype(dtype)
    head = _npy_header(n, width, kind)
    _check_space(dest, len(head) + n * width * kind.itemsize)
    step = rows_at_once or block_rows(width)

    def write(handle) -> None:
        handle.write(head)
        for start, stop in spans(n, step):
            X, cells = _csv_block(layout, start, stop, features, column)
            assert cells is not None  # a label column was asked for
            handle.write(_rows(layout, start, X, cells, [*features, column], kind).data)  # no copy: C order

    try:
        atomic_write(dest, write)
    except OSError as exc:
        raise XpnetValueError(f"cannot write {dest!r}: {exc.strerror or exc}; nothing was written") from None
    names = layout.names
    return {"rows": n, "features": len(features), "feature_names": [names[i] for i in features],
            "target": names[column], "dtype": kind.name, "bytes": os.stat(dest).st_size, "dest": dest}


def _check_names(source: str, dest: str, dtype: str) -> None:
    if os.path.splitext(source)[1].lower() != ".csv":
        raise XpnetValueError(f"{source!r}: xpnet convert reads a .csv table (.npy and stored .npz files are "
                              "memory-mapped as they are)")
    if os.path.splitext(dest)[1].lower() != ".npy":
        raise XpnetValueError(f"{dest!r}: xpnet convert writes an .npy file; give a name ending in .npy")
    if dtype not in DTYPES:
        raise XpnetValueError(f"dtype {dtype!r} must be one of {', '.join(DTYPES)}")


def _npy_header(n: int, width: int, dtype: np.dtype) -> bytes:
    """The ``.npy`` header of a C-ordered ``(n, width)`` array of ``dtype`` (format 1.0, or 2.0 if it must)."""
    out = io.BytesIO()
    info = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (n, width)}
    try:
        np.lib.format.write_array_header_1_0(out, info)
    except ValueError:  # a header over 64 KiB: never for two numbers, but format 2.0 holds it
        out = io.BytesIO()
        np.lib.format.write_array_header_2_0(out, info)
    return out.getvalue()


def _check_space(dest: str, size: int) -> None:
    """Refuse early when the destination's file system has less free space than the ``.npy`` needs."""
    try:
        info = os.statvfs(os.path.dirname(os.path.abspath(dest)))
    except (OSError, AttributeError):  # not POSIX, or gone: the write itself will tell
        return
    free = info.f_bavail * info.f_frsize
    if size > free:
        from ..memory import format_bytes

        raise XpnetValueError(f"cannot write {dest!r}: the .npy needs {format_bytes(size)} but its disk has "
                              f"{format_bytes(free)} free; free some space or write it elsewhere")


def _rows(layout, start: int, X: np.ndarray, cells: np.ndarray, columns: list, dtype: np.dtype) -> np.ndarray:
    """The block's rows as the ``.npy`` holds them: the features, then the labels, in ``dtype``
    (``columns``: the CSV's column of each, the label column last)."""
    values = _numeric(cells)
    if values is None:
        where = next(i for i, cell in enumerate(cells) if _numeric([cell]) is None)
        raise XpnetValueError(f"data file {layout.path!r}: line {_line_at(layout, start + where)}: the label "
                              f"{str(cells[where])!r} (column {layout.names[columns[-1]]!r}) is a word; an .npy holds "
                              "numbers only: number the classes (0, 1, ...) in the CSV, or train on the CSV itself")
    out = np.empty((X.shape[0], X.shape[1] + 1), dtype=dtype)
    with np.errstate(over="ignore"):
        out[:, :-1], out[:, -1] = X, values
    if dtype != np.float64 and not np.isfinite(out).all():
        r, c = (int(i) for i in np.argwhere(~np.isfinite(out))[0])
        value = values[r] if c == X.shape[1] else X[r, c]
        raise XpnetValueError(f"data file {layout.path!r}: line {_line_at(layout, start + r)}, column "
                              f"{layout.names[columns[c]]!r} holds {float(value)!r}, beyond what {dtype} holds; "
                              "convert with --dtype float64")
    return out
