"""Your own data: load CSV / NPY / NPZ files into a :class:`~xpnet.io.files.Table`.

    >>> from xpnet.data.labels import LabelMap, infer_task
    >>> from xpnet.io.tables import load_file
    >>> table = load_file("iris.csv", target="species")          # doctest: +SKIP
    >>> infer_task(table.y)                                      # doctest: +SKIP
    'classification'
    >>> labels = LabelMap.fit(table.y)                           # doctest: +SKIP
    >>> y = labels.encode(table.y)          # 0..C-1; labels.decode(y) maps back   # doctest: +SKIP
    >>> big = load_file("big.npy", mapped=True)   # .X: HostRows over a memory map  # doctest: +SKIP

File formats (the rules in full, with examples: docs/data.md)
-------------------------------------------------------------
``.csv``
    UTF-8 text (a byte-order mark is dropped), one record per line; the delimiter is
    sniffed (comma, semicolon or tab) and ``"`` quotes fields. A first row whose cells
    are numbers (in the columns that hold numbers below it) is data and the columns are
    named by index ``"0"``, ``"1"``, ...; otherwise it is the header (``header=True`` /
    ``False`` decide instead). ``target`` names the label column (a name or an index;
    default: the last column). Feature cells must be finite numbers: an empty cell,
    ``NA`` or ``nan`` is a missing value and is refused with its line and column.
    Labels may be words, whole numbers or (regression) any numbers; an empty label is
    refused. Column names must be distinct; a cell may hold at most ``FIELD_LIMIT``
    characters.
``.npz``
    Arrays ``X`` (N, F) of numbers and, for training, ``y`` (N,); other members are never
    read.
``.npy``
    One 2-D array of numbers; ``target`` is a column index (default: the last column).
    For prediction with ``has_target=False`` the whole array is ``X``.

Complex, datetime, structured and object arrays are refused, and so is any array whose
header claims more bytes than the file (or the zip member) holds, or more than the memory
this process may use (:func:`xpnet.memory.require`, checked before anything of that size
is allocated).

Reading a block of rows
-----------------------
``load_file(path, block=...)`` reads only the rows ``[start, stop)`` that ``block``
chooses once it knows the file's row count, without ever holding the rest:

- ``.npy`` files and uncompressed ``.npz`` members (``np.savez``): the header gives the
  shape; with ``mapped=True`` the block is memory-mapped (nothing read; ``Table.X`` is a
  :class:`~xpnet.data.rows.HostRows` over the map, the label column copied out), otherwise
  mapped and converted to float64 a block of rows at a time (or, where the file cannot be
  mapped, read by offset: one seek and one read per contiguous run: one run in C order,
  one per column in Fortran order).
- compressed ``.npz`` members (``np.savez_compressed``): decompressed as a stream,
  ``CHUNK`` (64 KiB) at a time; the bytes before the block are dropped.
- ``.csv``: a first pass over the bytes (vectorised, ``CHUNK`` at a time) finds where
  every record starts and checks the text (UTF-8, no NUL byte, every record's number of
  fields, closed quotes); the second one parses the block's bytes only, with NumPy's C
  parser (:func:`numpy.loadtxt`).

:func:`xpnet.cli.prepare.prepare` with a communicator (``xpnet train --data FILE --distributed``) reads
each process's block this way; what needs all rows (the set of labels, the validation
split, the standardization statistics) is computed from small collectives instead.

Everything here is host-side NumPy: data is moved to the backend by the model.
"""

from __future__ import annotations

import os

from ..data.labels import typed_labels
from ..errors import XpnetValueError
from .csv import _read_csv
from .files import FORMATS, Table, _check_regular
from .npy import _read_npy, _read_npz


def load_file(path, target=None, *, has_target: bool = True, block=None, header: bool | None = None,
              mapped: bool = False) -> Table:
    """Read ``path`` (``.csv``, ``.npy`` or ``.npz``) into a :class:`Table`.

    Parameters
    ----------
    path : str or PathLike
    target : str or int, optional
        The label column: a CSV header name (or index), an ``.npy`` column index. Default:
        the last column. Ignored for ``.npz`` (which holds ``X`` and ``y``).
    has_target : bool, default True
        False for prediction: a CSV/NPY target column is dropped if ``target`` names one
        that exists, otherwise every column is a feature; an ``.npz`` ``y`` is optional.
    block : callable, optional
        ``block(n_rows) -> (start, stop)``: read only those rows (see the module
        docstring), e.g. ``comm.bounds`` for this process's rows. Default: all rows.
    header : bool, optional
        Whether a CSV's first row names the columns. Default (None): detected, a first
        row of numbers is data (see the module docstring).
    mapped : bool, default False
        Map ``.npy`` files and stored ``.npz`` members instead of reading them: ``X`` is
        then a :class:`~xpnet.data.rows.HostRows` over a read-only memory map (the
        file's numbers, converted a chunk at a time when read) and ``Table.mapped`` is
        True. CSV and compressed ``.npz`` members are read into memory either way.

    Returns
    -------
    Table
        ``y`` typed by :func:`typed_labels`: int64 for whole numbers, float64 for other
        numbers (a regression target), strings for words.

    Raises
    ------
    XpnetValueError
        One line naming the file, the line (CSV) or the array index where the problem is,
        and the fix: unreadable or malformed files, missing values, duplicate column
        names, arrays too large for the memory available...
    """
    table, ext = _read(path, target, has_target, block, header, mapped)
    if ext != ".npz" and table.y is not None:
        table.y = typed_labels(table.y)
    return table


def _read(path, target, has_target, block, header=None, mapped: bool = False) -> tuple[Table, str]:
    """The :class:`Table` of ``block``'s rows with untyped labels (CSV text or numbers, NPY numbers as
    float64), and the type; ``mapped``: see :func:`load_file`."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise XpnetValueError(f"data file {path!r}: unknown file type {ext!r}; use one of {', '.join(FORMATS)}")
    if header is not None and header not in (True, False):
        raise XpnetValueError(f"header={header!r} must be True, False or None (detect)")
    _check_regular(path)
    block = block or (lambda n: (0, n))
    try:
        if ext == ".csv":
            return _read_csv(path, target, has_target, block, header), ext
        if ext == ".npz":
            return _read_npz(path, has_target, block, mapped), ext
        return _read_npy(path, target, has_target, block, mapped), ext
    except OSError as exc:  # e.g. an I/O error in the middle of the file
        raise XpnetValueError(f"data file {path!r}: cannot read it ({exc.strerror or exc})") from None





