"""Your own data: load CSV / NPY / NPZ files, type labels, standardize, split.

    >>> from xpnet import data
    >>> table = data.load_file("iris.csv", target="species")     # doctest: +SKIP
    >>> data.infer_task(table.y)                                 # doctest: +SKIP
    'classification'
    >>> labels = data.LabelMap.fit(table.y)                      # doctest: +SKIP
    >>> y = labels.encode(table.y)          # 0..C-1; labels.decode(y) maps back   # doctest: +SKIP

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
  shape; the block is read by offset (one seek and one read per contiguous run: one run
  in C order, one per column in Fortran order).
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

import codecs
import contextlib
import csv
import io
import math
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from . import memory
from .errors import Interval, XpnetValueError, check_choice

FORMATS = (".csv", ".npy", ".npz")
CHUNK = 1 << 16  # bytes read (or decompressed) at a time: a .npz member, a pass over a CSV
CONSTANT = 64 * np.finfo(np.float64).eps  # a feature whose std is below this times |mean| is constant
DELIMITERS = (",", ";", "\t")  # the CSV delimiters sniffed, in order of preference
FIELD_LIMIT = 128 * 1024  # the longest CSV cell accepted, in characters (Python's csv module's own limit)
SAMPLE_BYTES = 1 << 16  # the start of a CSV read to sniff its delimiter and header
SAMPLE_ROWS = 100  # ... at most this many records of it
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-", "missing"})  # cells read as missing values
TASKS = ("classification", "regression")


@dataclass
class Table:
    """Data read from a file: ``X`` float64 (N, F), ``y`` (N,) labels or None, column names.

    A block read (``load_file(..., block=...)``) holds file rows ``[start, start + N)``
    of the file's ``n_rows``.
    """

    X: np.ndarray
    y: np.ndarray | None
    feature_names: list
    target: str | None
    start: int = 0  # the file row of X[0]
    n_rows: int | None = None  # rows in the whole file


def load_file(path, target=None, *, has_target: bool = True, block=None, header: bool | None = None) -> Table:
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
    table, ext = _read(path, target, has_target, block, header)
    if ext != ".npz" and table.y is not None:
        table.y = typed_labels(table.y)
    return table


def _read(path, target, has_target, block, header=None) -> tuple[Table, str]:
    """The :class:`Table` of ``block``'s rows with untyped labels (CSV text or numbers, NPY numbers), and the type."""
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
            return _read_npz(path, has_target, block), ext
        return _read_npy(path, target, has_target, block), ext
    except OSError as exc:  # e.g. an I/O error in the middle of the file
        raise XpnetValueError(f"data file {path!r}: cannot read it ({exc.strerror or exc})") from None


def _check_regular(path) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise XpnetValueError(f"data file {path!r}: no such file") from None
    except OSError as exc:
        raise XpnetValueError(f"data file {path!r}: cannot read it ({exc.strerror}); check its path and "
                              "permissions") from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise XpnetValueError(f"data file {path!r}: is {kind}; give the path of a {', '.join(FORMATS)} file")


def _open(path):
    """``path`` opened for reading bytes; a one-line error when it cannot be."""
    try:
        return open(path, "rb")
    except OSError as exc:
        raise XpnetValueError(f"data file {path!r}: cannot open it ({exc.strerror or exc}); check that it is "
                              "readable (permissions)") from None


# -- CSV ---------------------------------------------------------------------------------------
@dataclass
class _Csv:
    """What the first pass learns of a CSV file."""

    path: str
    delimiter: str
    names: list  # the column names (the header's, or "0", "1", ...)
    rows: np.ndarray  # int64 byte offset where each data row starts
    end: int  # the byte offset just past the last record
    numeric: list  # per column: the sampled data cells are all numbers
    quoted: bool  # some line holds a '"': parse with quotes
    blank: bool  # some line is blank: filtered out before numpy.loadtxt (which warns or takes it for a row)


def _read_csv(path, target, has_target, block, header) -> Table:
    layout = _scan_csv(path, header, target)
    names = layout.names
    column = _target_index(path, names, target, has_target)
    features = [i for i in range(len(names)) if i != column]
    if has_target and not features:
        raise XpnetValueError(f"data file {path!r}: has one column ({names[0]!r}); a CSV needs feature columns "
                              "and a label column")
    n_rows = len(layout.rows)
    start, stop = block(n_rows)
    X, cells = _parse_rows(layout, start, stop, features, column)
    _check_finite(X, lambda r, c: f"data file {path!r}: line {_line_at(layout, start + r)}, column "
                                  f"{names[features[c]]!r}")
    if cells is not None:
        _check_labels(cells, lambda r: f"data file {path!r}: line {_line_at(layout, start + r)}", names[column])
        _check_missing_numbers(cells, lambda r: f"data file {path!r}: line {_line_at(layout, start + r)}",
                               names[column])
    return Table(X, cells, [names[i] for i in features], None if column is None else names[column], start, n_rows)


def _scan_csv(path, header, target) -> _Csv:
    """The first pass: delimiter, header and column names from the start of the file, then
    the offset of every record and the checks of every line (:func:`_scan_lines`)."""
    with _open(path) as handle:
        begin = len(codecs.BOM_UTF8) if handle.read(3) == codecs.BOM_UTF8 else 0
        handle.seek(begin)
        sample = handle.read(SAMPLE_BYTES)
        if len(sample) == SAMPLE_BYTES:
            sample += handle.readline()  # the sample ends at the end of a line
        delimiter, records = _sniff(sample.decode("utf-8", errors="replace"))
        if not records:
            raise XpnetValueError(f"data file {path!r}: is empty; a CSV needs rows of numbers (and a header row "
                                  "naming the columns)")
        has_header = _detect_header(records, target) if header is None else header
        width = len(records[0])
        starts, end, quoted, blank = _scan_lines(path, handle, begin, delimiter, width)
        names = [name.strip() for name in records[0]] if has_header else [str(i) for i in range(width)]
        if has_header:
            _check_names(path, names)
        rows = starts[1:] if has_header else starts
        if not len(rows):
            raise XpnetValueError(f"data file {path!r}: a CSV needs at least one data row"
                                  + (" after its header row" if has_header else ""))
        for offset, line in _long_lines(handle, starts, end):  # rare: only lines longer than a cell may be
            _check_cells(path, line, delimiter, offset)
    body = records[1:] if has_header else records
    numeric = [all(_is_number(row[i]) for row in body if i < len(row) and row[i].strip()) for i in range(width)]
    return _Csv(path, delimiter, names, rows, end, numeric, quoted, blank)


def _sniff(text: str) -> tuple[str, list]:
    """The delimiter of the CSV sample ``text`` and its first records, split with it.

    Each of :data:`DELIMITERS` splits the sample's non-blank lines; the one whose first
    line has the most fields (more than one) and that most other lines agree with wins,
    ties going to the earlier one. A sample of one column gives ``","``.
    """
    lines = [line for line in text.split("\n")[:SAMPLE_ROWS + 1] if line.strip()][:SAMPLE_ROWS]
    best, best_score, best_rows = ",", (0.0, 0), None
    for delimiter in DELIMITERS:
        try:
            rows = list(csv.reader(lines, delimiter=delimiter))
        except csv.Error:  # a cell over csv's limit, a NUL byte: the full pass names the line
            continue
        width = len(rows[0]) if rows else 0
        score = (sum(len(row) == width for row in rows) / len(rows), width) if width > 1 else (0.0, 0)
        if score > best_score:
            best, best_score, best_rows = delimiter, score, rows
    if best_rows is None:
        try:
            best_rows = list(csv.reader(lines, delimiter=best))
        except csv.Error:
            best_rows = [line.split(best) for line in lines]
    return best, best_rows


def _detect_header(records: list, target) -> bool:
    """Whether the first of ``records`` names the columns.

    It does when it holds the ``target`` name, or when one of its cells is not a number
    and, below it, its column holds numbers (or no column does), or its column holds a
    few words repeated (labels) of which this one is not (a name, not a class). A row
    of numbers is data, and so is a row whose words may be labels (a headerless file of
    numbers and labels, as UCI's iris.data).
    """
    first, below = records[0], records[1:]
    if isinstance(target, str) and not _is_number(target) and target in (cell.strip() for cell in first):
        return True
    columns = [[row[i].strip() for row in below if i < len(row) and row[i].strip()] for i in range(len(first))]
    numeric = [bool(cells) and all(_is_number(c) for c in cells) for cells in columns]
    words = [i for i, cell in enumerate(first) if cell.strip() and not _is_number(cell)]
    if words and not any(numeric):
        return True
    return any(numeric[i] or _not_a_label(first[i].strip(), columns[i]) for i in words)


def _not_a_label(cell: str, below: list) -> bool:
    """Whether ``cell``, atop a column of words ``below``, is no label: the column repeats a
    few labels (at most half as many distinct as cells) and ``cell`` is not one of them."""
    distinct = set(below)
    return bool(below) and 2 * len(distinct) <= len(below) and cell not in distinct


def _check_names(path, names: list) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise XpnetValueError(f"data file {path!r}: columns {seen[name]} and {i} (counting from 0) are both named "
                                  f"{name!r}; give every column its own name in the header (columns are picked by "
                                  "name)")
        seen[name] = i


def _scan_lines(path, handle, begin: int, delimiter: str, width: int) -> tuple[np.ndarray, int, bool, bool]:
    """The first pass over a CSV's bytes from ``begin``, a chunk at a time, vectorised.

    Returns ``(starts, end, quoted, blank)``: the byte offset of every non-blank line
    (int64), the end of the file, whether a ``"`` occurs, whether a line is blank.
    Checks the text (UTF-8, no NUL byte, quotes closed on the line that opens them) and
    that the delimiters outside quotes add up to ``width`` fields a line (the line at
    fault is then searched for, :func:`_check_fields`).
    """
    handle.seek(begin)
    sep = ord(delimiter)
    size = min(1 << 20, max(CHUNK, os.fstat(handle.fileno()).st_size >> 5))  # a 32nd of the file, 64 KiB to 1 MiB
    decoder = codecs.getincrementaldecoder("utf-8")()
    found: list[np.ndarray] = []
    pos, lines, separators = begin, 0, 0  # where the chunk starts; complete lines and delimiters before it
    start, text, inside = begin, False, 0  # the line in progress: its start, non-blank, inside quotes
    quoted = blank = False
    while chunk := handle.read(size):
        a = np.frombuffer(chunk, dtype=np.uint8)
        _check_text(path, decoder, chunk, a, pos, lines)
        newlines = np.flatnonzero(a == 10)
        if inside or (a == 34).any():
            quoted = True
            in_quotes = ((np.cumsum(a == 34, dtype=np.uint8) + inside) & 1).astype(bool)  # parity: uint8 may wrap
            if newlines.size and in_quotes[newlines].any():
                _unclosed_quote(path, lines + int(np.flatnonzero(in_quotes[newlines])[0]) + 1)
            separators += int(np.count_nonzero((a == sep) & ~in_quotes))
            inside = int(in_quotes[-1])
        else:
            separators += int(np.count_nonzero(a == sep))
        heads = np.concatenate(([0], newlines + 1))  # where each line (or part of one) starts in the chunk
        has_text = _segments_with_text(chunk, a, heads)
        has_text[0] |= text
        done = newlines.size  # segments 0..done-1 end in this chunk
        blank |= not has_text[:done].all()
        if done:
            found.append(np.concatenate(([start], pos + heads[1:done]))[has_text[:done]])
            start = pos + int(heads[done])
        text = bool(has_text[done])
        pos, lines = pos + a.size, lines + done
    if decoder.getstate()[0]:
        _not_utf8(path, lines + 1)
    if inside:
        _unclosed_quote(path, lines + 1)
    if text:  # the last line has no newline
        found.append(np.array([start], dtype=np.int64))
    blank |= not text and pos > start  # ... and is blank
    starts = np.concatenate(found).astype(np.int64) if found else np.zeros(0, dtype=np.int64)
    if separators != (width - 1) * len(starts):
        _check_fields(path, handle, begin, delimiter, width)
    return starts, pos, quoted, blank


def _segments_with_text(chunk: bytes, a: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """Which segments of the chunk (from each of ``heads`` to the next) hold more than whitespace.

    A segment whose first byte is not whitespace has text; the few others (blank lines,
    lines that begin with spaces) are looked at one by one.
    """
    has_text = np.zeros(heads.size, dtype=bool)
    inner = heads[heads < a.size]  # the last segment is empty when the chunk ends with a newline
    has_text[:inner.size] = _TEXT_BYTE[a[inner]]
    for k in np.flatnonzero(~has_text[:inner.size]):
        has_text[k] = bool(chunk[heads[k]:heads[k + 1] if k + 1 < heads.size else a.size].strip())
    return has_text


_TEXT_BYTE = np.ones(256, dtype=bool)
_TEXT_BYTE[[9, 10, 11, 12, 13, 32]] = False  # the bytes that bytes.strip() strips


def _check_fields(path, handle, begin: int, delimiter: str, width: int) -> None:
    """Raise the error for the first line whose number of fields is not ``width`` (a slow pass: on error only)."""
    handle.seek(begin)
    for line, raw in enumerate(handle, start=1):
        text = raw.decode("utf-8")
        if text.strip():
            fields = len(next(csv.reader([text], delimiter=delimiter, strict=False), []))
            if fields != width:
                raise XpnetValueError(f"data file {path!r}: line {line} has {fields} fields, the first row has "
                                      f"{width}; every row needs one cell per column (delimiter {delimiter!r})")


def _check_text(path, decoder, chunk: bytes, a: np.ndarray, pos: int, lines: int) -> None:
    """UTF-8 and no NUL byte in ``chunk`` (at byte ``pos``, after ``lines`` lines)."""
    if not a.min():
        line = lines + int(np.count_nonzero(a[:np.flatnonzero(a == 0)[0]] == 10)) + 1
        raise XpnetValueError(f"data file {path!r}: line {line} holds a NUL byte, which a text CSV never does; is "
                              "it a binary file? (save the table as CSV text, .npy or .npz)")
    pending = decoder.getstate()[0]
    if not pending and a.max() < 128:  # ASCII: nothing to decode
        return
    try:
        decoder.decode(chunk)
    except UnicodeDecodeError as exc:
        where = max(exc.start - len(pending), 0)
        _not_utf8(path, lines + int(np.count_nonzero(a[:where] == 10)) + 1, chunk[where:where + 1])


def _not_utf8(path, line: int, byte: bytes = b""):
    shown = f" (byte 0x{byte.hex()})" if byte else ""
    raise XpnetValueError(f"data file {path!r}: line {line} is not UTF-8 text{shown}; save the file as UTF-8 "
                          "(e.g. iconv -f latin1 -t utf-8 old.csv > new.csv)")


def _unclosed_quote(path, line: int):
    raise XpnetValueError(f"data file {path!r}: line {line} opens a '\"' quote that it does not close; xpnet reads "
                          "one record per line: close the quote (a '\"' inside a quoted cell is written '\"\"')")


def _long_lines(handle, starts: np.ndarray, end: int):
    """``(offset, text)`` of the lines longer than :data:`FIELD_LIMIT` bytes (only they may hold a cell too long)."""
    ends = np.append(starts[1:], end)
    for offset in starts[(ends - starts) > FIELD_LIMIT]:
        handle.seek(int(offset))
        yield int(offset), handle.readline().decode("utf-8")


def _check_cells(path, line: str, delimiter: str, offset: int) -> None:
    try:
        cells = next(csv.reader([line], delimiter=delimiter, strict=False), [])
    except csv.Error:  # csv refuses a cell over its own limit (FIELD_LIMIT unless changed)
        cells = None
    if cells is None or any(len(cell) > FIELD_LIMIT for cell in cells):
        raise XpnetValueError(f"data file {path!r}: line {_line_number(path, offset)} holds a cell longer than "
                              f"{FIELD_LIMIT:,} characters, the most a cell may hold; is it a CSV table of numbers?")


def _line_number(path, offset: int) -> int:
    """The line (counting from 1) that starts at byte ``offset`` of ``path`` (read again: for error messages only)."""
    count = 0
    with _open(path) as handle:
        while offset > 0:
            chunk = handle.read(min(CHUNK, offset))
            if not chunk:
                break
            count += chunk.count(b"\n")
            offset -= len(chunk)
    return count + 1


def _line_at(layout: _Csv, row: int) -> int:
    """The line of data row ``row`` of the file."""
    return _line_number(layout.path, int(layout.rows[row]))


class _ByteRange(io.RawIOBase):
    """The bytes ``[start, stop)`` of a file, as a stream (so NumPy parses a block without the rest)."""

    def __init__(self, path, start: int, stop: int):
        super().__init__()
        self._file = _open(path)
        self._file.seek(start)
        self._left = stop - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        size = min(len(buffer), self._left)
        if size <= 0:
            return 0
        got = self._file.readinto(memoryview(buffer)[:size]) or 0
        self._left -= got
        return got

    def close(self) -> None:
        self._file.close()
        super().close()


@contextlib.contextmanager
def _lines(layout: _Csv, start: int, stop: int):
    """The text lines of data rows ``[start, stop)``: a stream, filtered of blank lines when the file has some."""
    end = int(layout.rows[stop]) if stop < len(layout.rows) else layout.end
    with io.TextIOWrapper(io.BufferedReader(_ByteRange(layout.path, int(layout.rows[start]), end), CHUNK),
                          encoding="utf-8", newline="") as text:
        yield (line for line in text if line.strip()) if layout.blank else text


def _parse_rows(layout: _Csv, start: int, stop: int, features: list, column) -> tuple[np.ndarray, np.ndarray | None]:
    """``(X, label cells)`` of data rows ``[start, stop)``: features as float64, the target column as
    float64 when it holds numbers (else stripped strings), None without a target.

    NumPy's C parser reads the block's bytes as a stream (:func:`numpy.loadtxt`); when it
    refuses a cell, :func:`_diagnose` reads the block again, cell by cell, to name the
    line, the column and the fix.
    """
    count = stop - start
    memory.require(count * (len(features) + 1) * 8 * 2, f"reading {count:,} rows of {layout.path!r}")
    if not count:
        return np.zeros((0, len(features))), None if column is None else np.zeros(0)
    numeric = column is None or layout.numeric[column]
    try:
        return _loadtxt(layout, start, stop, features, column, numeric)
    except ValueError as exc:
        _diagnose(layout, start, stop, features, column)
        if not numeric:
            raise XpnetValueError(f"data file {layout.path!r}: cannot read rows {start}..{stop - 1} ({exc})") from None
    try:  # the target column holds a word below the sampled rows: labels are words
        return _loadtxt(layout, start, stop, features, column, False)
    except ValueError as exc:
        raise XpnetValueError(f"data file {layout.path!r}: cannot read rows {start}..{stop - 1} ({exc})") from None


def _loadtxt(layout: _Csv, start: int, stop: int, features: list, column, numeric: bool):
    """:func:`_parse_rows` with NumPy's parser: one pass when the target holds numbers, two when words."""
    if column is None:
        return _loadtxt_columns(layout, start, stop, features, np.float64), None
    if numeric:  # one pass: the features, then the target, in one array
        A = _loadtxt_columns(layout, start, stop, [*features, column], np.float64)
        return A[:, :-1], A[:, -1].copy()
    X = _loadtxt_columns(layout, start, stop, features, np.float64)
    return X, np.char.strip(_loadtxt_columns(layout, start, stop, [column], str)[:, 0])


def _loadtxt_columns(layout: _Csv, start: int, stop: int, columns: list, dtype) -> np.ndarray:
    """Columns ``columns`` of data rows ``[start, stop)`` as a 2-D array of ``dtype`` (:func:`numpy.loadtxt`)."""
    with _lines(layout, start, stop) as lines:
        return np.loadtxt(lines, dtype=dtype, delimiter=layout.delimiter, comments=None, usecols=columns, ndmin=2,
                          quotechar='"' if layout.quoted else None)


def _diagnose(layout: _Csv, start: int, stop: int, features: list, column) -> None:
    """Raise the error for the first cell of rows ``[start, stop)`` that is not a number
    (features) or is empty (target); return when none is found.

    Lines are split at ``\\n`` only, as :func:`_scan_lines` splits them, so the line
    numbers are the file's.
    """
    path, names = layout.path, layout.names
    end = int(layout.rows[stop]) if stop < len(layout.rows) else layout.end
    first = _line_at(layout, start)
    with io.BufferedReader(_ByteRange(path, int(layout.rows[start]), end), CHUNK) as lines:
        for line, raw in enumerate(lines, start=first):
            text = raw.decode("utf-8")
            if not text.strip():
                continue
            cells = next(csv.reader([text], delimiter=layout.delimiter, strict=False), [])
            if len(cells) != len(names):
                raise XpnetValueError(f"data file {path!r}: line {line} has {len(cells)} fields, the first row has "
                                      f"{len(names)}; every row needs one cell per column (delimiter "
                                      f"{layout.delimiter!r})")
            for i in features:
                cell = cells[i].strip() if i < len(cells) else ""
                if cell.lower() in MISSING:
                    raise XpnetValueError(f"data file {path!r}: line {line}, column {names[i]!r} "
                                          + ("is empty" if not cell else f"holds {cell!r}") + " (a missing value); "
                                          "xpnet does not fill in missing values: fill them in or drop those rows")
                if not _is_number(cell):
                    raise XpnetValueError(f"data file {path!r}: line {line}, column {names[i]!r} holds {cell[:40]!r}, "
                                          "not a number; only the target column (--target) may hold words")
            if column is not None and not (cells[column].strip() if column < len(cells) else ""):
                _empty_label(f"data file {path!r}: line {line}", names[column])


def _is_number(text) -> bool:
    """Whether ``text`` is a number as NumPy's parser reads one (Python's ``float`` without ``_``)."""
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return "_" not in text


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


# -- labels and tasks --------------------------------------------------------------------------
def _numeric(cells) -> np.ndarray | None:
    """Label cells as float64 numbers, or None when one of them is not a number."""
    cells = np.asarray(cells)
    if cells.dtype.kind in "biuf":
        return cells.astype(np.float64)
    try:
        return np.array([float(c) for c in cells], dtype=np.float64)
    except ValueError:
        return None


def _label_kind(values) -> str:
    """How :func:`typed_labels` types cells whose :func:`_numeric` values are ``values``:
    ``"i"`` whole numbers, ``"f"`` other numbers (a regression target), ``"U"`` words."""
    if values is None:
        return "U"
    return "i" if np.all(np.isfinite(values)) and np.all(values == np.round(values)) else "f"


def typed_labels(cells, kind: str | None = None) -> np.ndarray:
    """Label cells typed: whole numbers become int64, other numbers float64, anything else strings.

    ``kind`` (``"i"``, ``"f"`` or ``"U"``, see :func:`_label_kind`) may be decided elsewhere,
    e.g. over the cells of every process, so that a block of whole numbers in a column of
    words stays words.
    """
    values = None if kind == "U" else _numeric(cells)
    kind = kind or _label_kind(values)
    if kind == "U":
        return np.asarray(cells, dtype=str)
    assert values is not None  # kind "i" or "f": every cell is a number
    return values.astype(np.int64) if kind == "i" else values


def infer_task(y) -> str:
    """``"regression"`` when the target ``y`` holds numbers that are not all whole, else ``"classification"``.

    Words and whole numbers are class labels; any fractional number makes the column a
    regression target. ``y`` as :func:`load_file` returns it (or any array of labels).
    """
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        return "classification"
    return "regression" if _label_kind(y.astype(np.float64)) == "f" else "classification"


def regression_targets(y, where: str = "the target") -> np.ndarray:
    """``y`` as float64 regression targets (N,); a clear error when it holds words."""
    values = _numeric(y)
    if values is None:
        word = next(str(c) for c in np.asarray(y) if not _is_number(str(c)))
        raise XpnetValueError(f"--task regression needs numbers in {where}, which holds {word!r}; use --task "
                              "classification (or auto) for class labels")
    return values


def check_task(task) -> str:
    """``task`` when it is ``"auto"``, ``"classification"`` or ``"regression"``; else a clear error."""
    check_choice("task", task, ("auto", *TASKS))
    return task


# -- NPY and NPZ -------------------------------------------------------------------------------
def _read_npy(path, target, has_target, block) -> Table:
    with _open(path) as handle:
        header = _npy_header(handle, path, os.fstat(handle.fileno()).st_size)
        shape, dtype = header[0], header[2]
        if len(shape) != 2 or shape[1] < (2 if has_target else 1):
            raise XpnetValueError(f"data file {path!r}: the array has shape {shape}; expected (n_samples, "
                                  "n_features + 1) with the labels in the --target column (default: last)")
        _check_numbers(path, dtype, "the array")
        start, stop = block(shape[0])
        memory.require((stop - start) * shape[1] * (dtype.itemsize + 8), f"reading {stop - start:,} rows of {path!r}")
        A = _npy_rows(handle, header, start, stop)
    column = _target_index(path, [str(i) for i in range(shape[1])], target, has_target)
    features = [i for i in range(shape[1]) if i != column]
    y = None if column is None else A[:, column].copy()  # a copy: a view would keep all of A alive
    X = np.asarray(A[:, features], dtype=np.float64)
    _check_finite(X, lambda r, c: f"data file {path!r}: row {start + r}, column {features[c]} (counting from 0)")
    if y is not None:
        _check_labels(y, lambda r: f"data file {path!r}: row {start + r} (counting from 0)", column)
    return Table(X, y, [f"x{i}" for i in features], None if column is None else str(column), start, shape[0])


def _check_numbers(where, dtype: np.dtype, what: str, labels: bool = False) -> None:
    """Refuse arrays xpnet cannot read as numbers (text only as ``labels``), with the fix."""
    kind = dtype.kind
    if kind in "biuf" or (labels and kind in "US"):
        return
    fixes = {"c": "complex numbers; xpnet would have to drop the imaginary part: save the real and imaginary parts "
                  "as two columns",
             "M": "dates and times; convert them to numbers first (e.g. seconds since a start)",
             "m": "time spans; convert them to numbers first (e.g. seconds)",
             "U": "text; save the numbers as numbers (labels that are words go in .npz's y or a .csv)",
             "S": "bytes; save the numbers as numbers (labels that are words go in .npz's y or a .csv)"}
    fix = fixes.get(kind, "values that are not plain numbers; save a 2-D array of numbers")
    raise XpnetValueError(f"data file {where!r}: {what} holds {fix} (dtype {dtype})")


def read_npy_rows(path, block) -> np.ndarray:
    """Rows ``block(n_rows) -> [start, stop)`` of the ``.npy`` array at ``path``; the rest is never read.

    Returns an array of shape ``(stop - start, *row_shape)`` in the file's dtype. The
    header is checked against the file's size, and the block's size against the memory
    available, before the block is allocated.
    """
    path = os.fspath(path)
    _check_regular(path)
    with _open(path) as handle:
        header = _npy_header(handle, path, os.fstat(handle.fileno()).st_size)
        start, stop = block(header[0][0])
        memory.require((stop - start) * math.prod(header[0][1:]) * header[2].itemsize,
                       f"reading {stop - start:,} rows of {path!r}")
        return _npy_rows(handle, header, start, stop)


def _npy_header(handle, where, size: int) -> tuple:
    """``(shape, fortran_order, dtype)`` from the ``.npy`` header at the stream's position (left after it).

    ``size``: the bytes the array may take from where its header begins (the file's or
    the zip member's); a header that claims more is refused before anything is allocated.
    """
    begin = handle.tell()
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        version = np.lib.format.read_magic(handle)
        if version not in readers:
            raise ValueError(f"format version {version} is not supported here; save it with np.save")
        shape, fortran, dtype = readers[version](handle)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise XpnetValueError(f"data file {where!r}: not a .npy array ({exc})") from None
    if dtype.hasobject:
        raise XpnetValueError(f"data file {where!r}: holds Python objects (pickled); save arrays of numbers or text")
    if not shape:
        raise XpnetValueError(f"data file {where!r}: holds a scalar; expected one row per sample")
    if any(n < 0 for n in shape):
        raise XpnetValueError(f"data file {where!r}: damaged header (shape {shape})")
    claimed = math.prod(shape) * dtype.itemsize
    held = size - (handle.tell() - begin)
    if claimed > held:
        raise XpnetValueError(f"data file {where!r}: its header claims a {' x '.join(map(str, shape))} {dtype} array "
                              f"({memory.format_bytes(claimed)}) but the file holds {memory.format_bytes(max(held, 0))}"
                              " of data; the file is truncated or damaged: save it again")
    return shape, fortran, dtype


def _npy_rows(handle, header, start: int, stop: int, compressed: bool = False) -> np.ndarray:
    """Rows ``[start, stop)`` of the array whose header was just read from ``handle``.

    Only those rows are read: one contiguous run in C order, one run per column (per
    trailing index) in Fortran order. ``compressed``: the stream cannot seek, so the bytes
    before each run are read and dropped (:func:`_skip_to`).
    """
    shape, fortran, dtype = header
    n, width, count = shape[0], math.prod(shape[1:]), stop - start
    if not width or not count:
        return np.empty((count, *shape[1:]), dtype=dtype)
    base = handle.tell()
    if fortran and len(shape) > 1:
        runs = [(k * n + start, count) for k in range(width)]
    else:
        runs = [(start * width, count * width)]
    out = np.empty((len(runs), runs[0][1]), dtype=dtype)
    for (first, _items), row in zip(runs, out):
        _skip_to(handle, base + first * dtype.itemsize, compressed)
        _read_into(handle, row)
    if len(runs) > 1:
        return np.ascontiguousarray(np.reshape(out.T, (count, *shape[1:]), order="F"))
    return np.reshape(out, (count, *shape[1:]))


def _skip_to(handle, position: int, compressed: bool) -> None:
    if not compressed:
        handle.seek(position)
        return
    left = position - handle.tell()
    while left > 0:  # a compressed stream: decompress and drop, a chunk at a time
        left -= len(handle.read(min(CHUNK, left)) or _truncated(handle))


def _read_into(handle, array: np.ndarray) -> None:
    """Fill ``array`` from ``handle``, at most ``CHUNK`` bytes per call (a zip member's
    ``readinto`` goes through a temporary bytes object of the size asked for)."""
    view, done = array.view(np.uint8).data, 0
    while done < len(view):
        got = handle.readinto(view[done:done + CHUNK])
        done += got or _truncated(handle)


def _truncated(handle):
    raise XpnetValueError(f"data file {getattr(handle, 'name', '')!r}: the array ends before its header says")


def _read_npz(path, has_target, block) -> Table:
    with _open(path) as raw, _open_zip(path, raw) as archive:
        members = {name[:-4] if name.endswith(".npy") else name: name for name in archive.namelist()}
        if "X" not in members:
            raise XpnetValueError(f"data file {path!r}: an .npz needs an array named 'X' (and 'y'); "
                                  f"it has {list(members)}")
        X_header = _npz_member(path, raw, archive, members["X"])[0]
        y_header = _npz_member(path, raw, archive, members["y"])[0] if "y" in members else None
        X_shape, y_shape = X_header[0], None if y_header is None else y_header[0]
        if y_shape is None and has_target:
            raise XpnetValueError(f"data file {path!r}: the .npz has no 'y' array with the labels; "
                                  "save it with np.savez(path, X=X, y=y)")
        if len(X_shape) != 2:
            raise XpnetValueError(f"data file {path!r}: X has shape {X_shape}; expected (n_samples, n_features)")
        if y_shape is not None and (len(y_shape) != 1 or y_shape[0] != X_shape[0]):
            raise XpnetValueError(f"data file {path!r}: y has shape {y_shape}; expected ({X_shape[0]},)")
        _check_numbers(f"{path}[X]", X_header[2], "X")
        if y_header is not None:
            _check_numbers(f"{path}[y]", y_header[2], "y", labels=True)
        start, stop = block(X_shape[0])
        need = (stop - start) * (X_shape[1] * (X_header[2].itemsize + 8) + (y_header[2].itemsize if y_header else 0))
        memory.require(need, f"reading {stop - start:,} rows of {path!r}")
        X = _npz_member(path, raw, archive, members["X"], (start, stop))[1]
        y = _npz_member(path, raw, archive, members["y"], (start, stop))[1] if y_shape is not None else None
    X = np.asarray(X, dtype=np.float64)
    _check_finite(X, lambda r, c: f"data file {path!r}: X[{start + r}, {c}]")
    if y is not None:
        _check_labels(y, lambda r: f"data file {path!r}: y[{start + r}]", "y")
    return Table(X, y, [f"x{i}" for i in range(X_shape[1])], None if y is None else "y", start, X_shape[0])


def _open_zip(path, raw) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(raw)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise XpnetValueError(f"data file {path!r}: cannot read it as an .npz archive ({exc})") from None


def _npz_member(path, raw, archive, name, rows=None) -> tuple:
    """``(header, rows [start, stop) of member name or None)``: stored members are read by
    offset in the file, compressed ones as a decompressed stream. The member's npy header
    is checked against the size the zip directory declares (and that against the file)
    before anything is inflated."""
    info = archive.getinfo(name)
    where = f"{path}[{name.removesuffix('.npy')}]"
    if info.flag_bits & 1:
        raise XpnetValueError(f"data file {where!r}: encrypted members are not supported")
    compressed = info.compress_type != zipfile.ZIP_STORED
    if compressed:
        try:
            handle = archive.open(info)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
            raise XpnetValueError(f"data file {where!r}: cannot read this member ({exc})") from None
    else:
        handle = raw
        begin = _member_start(raw, info, where)
        if begin + info.file_size > os.fstat(raw.fileno()).st_size:
            raise XpnetValueError(f"data file {where!r}: the archive says the member holds {info.file_size} bytes, "
                                  "more than the file; the file is truncated or damaged")
        raw.seek(begin)
    try:
        header = _npy_header(handle, where, info.file_size)
        return header, None if rows is None else _npy_rows(handle, header, rows[0], rows[1], compressed)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:  # a bad CRC, a damaged or short deflate stream
        raise XpnetValueError(f"data file {where!r}: damaged member ({exc}); save the archive again") from None
    finally:
        if compressed:
            handle.close()


def _member_start(handle, info, where) -> int:
    """Where the bytes of the stored zip member ``info`` begin (after its local file header)."""
    handle.seek(info.header_offset)
    fixed = handle.read(30)
    if len(fixed) != 30 or fixed[:4] != b"PK\x03\x04":
        raise XpnetValueError(f"data file {where!r}: damaged zip archive (no local header)")
    name_length, extra_length = struct.unpack("<HH", fixed[26:30])
    return info.header_offset + 30 + name_length + extra_length


# -- label maps, standardization, splits ------------------------------------------------------
@dataclass
class LabelMap:
    """Maps class labels (strings or integers) to 0..C-1 and back.

    ``classes`` is sorted (as :func:`numpy.unique` sorts); integer labels 0..C-1 map to themselves.
    """

    classes: list

    @classmethod
    def fit(cls, y) -> LabelMap:
        y = np.asarray(y)
        if y.ndim != 1 or y.size == 0:
            raise XpnetValueError(f"labels have shape {y.shape}; expected a non-empty (n_samples,) column")
        if y.dtype.kind == "f":
            raise XpnetValueError("labels are fractional numbers; a classifier needs class labels "
                                  "(words or whole numbers); for a numeric target use --task regression")
        return cls([v.item() for v in np.unique(y)])

    def encode(self, y) -> np.ndarray:
        """Labels -> int64 indices into ``classes``; unknown labels raise."""
        y = np.asarray(y)
        lookup = {value: i for i, value in enumerate(self.classes)}
        try:
            return np.array([lookup[v.item()] for v in y], dtype=np.int64)
        except KeyError as exc:
            raise XpnetValueError(f"label {exc.args[0]!r} was not seen in training; "
                                  f"known labels: {self.classes}") from None

    def decode(self, indices) -> np.ndarray:
        """int indices -> the original labels."""
        return np.asarray(self.classes)[np.asarray(indices, dtype=np.int64)]


@dataclass
class Scaler:
    """Per-feature standardization ``(X - mean) / scale``; constant features keep scale 1.

    A feature counts as constant when its standard deviation is below ``CONSTANT`` times
    its mean's magnitude (what rounding leaves of a column of one repeated value).
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X, comm=None) -> Scaler:
        """Fit on ``X`` (N, F); with a communicator of several processes, on all of their rows.

        Over processes the statistics come from two small float64 ``Allreduce`` calls: the
        count and per-feature sums give the global mean, then the sums of squared
        deviations from it give the (population) variance, as two passes over the
        concatenated rows would. They equal one process's up to rounding.
        """
        X = np.asarray(X, dtype=np.float64)
        if comm is None or comm.size == 1:
            mean, std = X.mean(axis=0), X.std(axis=0)
        else:
            n, *sums = comm.sum_floats([X.shape[0], *np.sum(X, axis=0)])
            mean = np.asarray(sums) / n
            std = np.sqrt(np.asarray(comm.sum_floats(np.sum((X - mean) ** 2, axis=0))) / n)
        return cls(mean, np.where(std > CONSTANT * np.abs(mean), std, 1.0))

    def transform(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.mean.shape[0]:
            raise XpnetValueError(f"X has shape {X.shape}; the model was trained on {self.mean.shape[0]} features")
        Z = X - self.mean
        Z /= self.scale  # in place: one array of X's size, not two
        return Z


@dataclass
class TargetScaler:
    """Standardization of a regression target: ``z = (y - mean) / scale``, and back.

    A model trains on ``z``; :meth:`inverse_transform` puts its predictions back in the
    target's own units (for reports: RMSE, MAE in those units). A constant target keeps
    scale 1, as :class:`Scaler`'s constant features do.
    """

    mean: float
    scale: float

    @classmethod
    def fit(cls, y, comm=None) -> TargetScaler:
        """Fit on the targets ``y`` (N,); with a communicator, on all processes' rows (see :meth:`Scaler.fit`)."""
        fitted = Scaler.fit(np.reshape(np.asarray(y, dtype=np.float64), (-1, 1)), comm)
        return cls(float(fitted.mean[0]), float(fitted.scale[0]))

    def transform(self, y) -> np.ndarray:
        """Targets (N,) in their own units -> standardized float64 (N,)."""
        return (np.asarray(y, dtype=np.float64) - self.mean) / self.scale

    def inverse_transform(self, z) -> np.ndarray:
        """Standardized values (e.g. predictions) -> the target's own units, float64."""
        return np.asarray(z, dtype=np.float64) * self.scale + self.mean


def split(X, y, fraction: float, seed: int = 0):
    """Shuffle with ``seed`` and hold out ``fraction`` of the rows: ``(X_train, y_train, X_held, y_held)``.

    ``fraction=0`` returns the data unchanged and empty held-out arrays.
    """
    order = split_order(X.shape[0], fraction, seed)
    if order is None:
        return X, y, X[:0], y[:0]
    kept, held = order
    return X[kept], y[kept], X[held], y[held]


def split_order(n: int, fraction: float, seed: int = 0):
    """``(kept, held)``: the rows of ``n`` that :func:`split` keeps and holds out, in its order.

    One permutation of ``range(n)`` drawn with ``seed``; the first ``round(n * fraction)``
    are held out. None when ``fraction`` is 0 (nothing held out, rows in file order).
    """
    Interval(0, 1, "left").check("--validation-fraction", fraction, "e.g. 0.2")
    n_held = int(round(n * fraction))
    if fraction and (n_held < 1 or n - n_held < 1):
        raise XpnetValueError(f"--validation-fraction {fraction} of {n} samples leaves an empty part; "
                              f"use more data or a fraction between {1 / n:.3g} and {1 - 1 / n:.3g}")
    if not n_held:
        return None
    order = np.random.default_rng(seed).permutation(n)
    return order[n_held:], order[:n_held]


def load_digits():
    """scikit-learn's bundled 8x8 digits: ``X`` (1797, 64) in [0, 1] (pixels / 16), ``y`` 0..9."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise XpnetValueError("--dataset digits needs scikit-learn, which is not installed; "
                              "pip install scikit-learn (in a clone of xpnet: pip install '.[sklearn]')") from None
    digits = sk_load_digits()
    return np.asarray(digits.data, dtype=np.float64) / 16.0, np.asarray(digits.target, dtype=np.int64)
