"""CSV files: a vectorised scan of the bytes, then NumPy's C parser on the rows wanted."""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import os
from dataclasses import dataclass

import numpy as np

from .. import memory
from ..data.labels import _is_number
from ..errors import XpnetValueError
from .files import (
    CHUNK,
    MISSING,
    Table,
    _check_finite,
    _check_labels,
    _check_missing_numbers,
    _empty_label,
    _open,
    _target_index,
)

DELIMITERS = (",", ";", "\t")  # the CSV delimiters sniffed, in order of preference

FIELD_LIMIT = 128 * 1024  # the longest CSV cell accepted, in characters (Python's csv module's own limit)


SAMPLE_BYTES = 1 << 16  # the start of a CSV read to sniff its delimiter and header


SAMPLE_ROWS = 100  # ... at most this many records of it




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
    layout, features, column = _csv_columns(path, target, has_target, header)
    n_rows = len(layout.rows)
    start, stop = block(n_rows)
    X, cells = _csv_block(layout, start, stop, features, column)
    names = layout.names
    return Table(X, cells, [names[i] for i in features], None if column is None else names[column], start, n_rows)


def _csv_columns(path, target, has_target, header) -> tuple[_Csv, list, int | None]:
    """``(layout, feature columns, target column or None)`` of the CSV at ``path`` (its first pass)."""
    layout = _scan_csv(path, header, target)
    names = layout.names
    column = _target_index(path, names, target, has_target)
    features = [i for i in range(len(names)) if i != column]
    if has_target and not features:
        raise XpnetValueError(f"data file {path!r}: has one column ({names[0]!r}); a CSV needs feature columns "
                              "and a label column")
    return layout, features, column


def _csv_block(layout: _Csv, start: int, stop: int, features: list, column) -> tuple[np.ndarray, np.ndarray | None]:
    """``(X, label cells)`` of data rows ``[start, stop)`` (:func:`_parse_rows`), checked: finite
    features, no empty or missing label, errors naming the line."""
    path, names = layout.path, layout.names
    X, cells = _parse_rows(layout, start, stop, features, column)
    _check_finite(X, lambda r, c: f"data file {path!r}: line {_line_at(layout, start + r)}, column "
                                  f"{names[features[c]]!r}")
    if cells is not None:
        _check_labels(cells, lambda r: f"data file {path!r}: line {_line_at(layout, start + r)}", names[column])
        _check_missing_numbers(cells, lambda r: f"data file {path!r}: line {_line_at(layout, start + r)}",
                               names[column])
    return X, cells


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


