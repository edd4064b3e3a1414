"""Bounded .npy and .npz readers: headers checked against the file, rows mapped or read by offset."""

from __future__ import annotations

import io
import math
import os
import struct
import zipfile
import zlib
from typing import NamedTuple

import numpy as np

from .. import memory
from ..data.rows import HostRows, block_rows, spans
from ..errors import XpnetValueError
from ..parallel.comm import shard_bounds
from .files import CHUNK, Table, _check_finite, _check_labels, _check_regular, _open, _target_index


# -- NPY and NPZ -------------------------------------------------------------------------------
def _read_npy(path, target, has_target, block, mapped: bool = False) -> Table:
    """The rows ``block`` picks of the 2-D ``.npy`` at ``path``: ``X`` mapped (``mapped``) or as float64."""
    with _open(path) as handle:
        header = _npy_header(handle, path, os.fstat(handle.fileno()).st_size)
        shape, _fortran, dtype = header
        if len(shape) != 2 or shape[1] < (2 if has_target else 1):
            raise XpnetValueError(f"data file {path!r}: the array has shape {shape}; expected (n_samples, "
                                  "n_features + 1) with the labels in the --target column (default: last)")
        _check_numbers(path, dtype, "the array")
        start, stop = block(shape[0])
        column = _target_index(path, [str(i) for i in range(shape[1])], target, has_target)
        features = [i for i in range(shape[1]) if i != column]
        count = stop - start
        labels = 0 if column is None else count * 8  # the label column, in memory as float64
        memory.require(labels + (0 if mapped else count * len(features) * 8), f"reading {count:,} rows of {path!r}")
        A = _map_rows(handle, header, start, stop)
        if A is None:  # empty, or a file that cannot be mapped: the rows are read, then converted
            memory.require(count * (shape[1] * dtype.itemsize + (len(features) * 8 if mapped else 0)),
                           f"reading {count:,} rows of {path!r}")
            A = _npy_rows(handle, header, start, stop)
    X = _feature_rows(A, features)
    y = _scan(X, A, column, lambda r, c: f"data file {path!r}: row {start + r}, column {features[c]} (counting from 0)",
              lambda r: f"data file {path!r}: row {start + r} (counting from 0)")
    return Table(_finish(X, mapped), y, [f"x{i}" for i in features], None if column is None else str(column), start,
                 shape[0], mapped=mapped and X.mapped)


def _map_rows(handle, header, start: int, stop: int) -> np.ndarray | None:
    """Rows ``[start, stop)`` of the array whose header was just read from ``handle`` (its data
    begins at the stream's position), as a read-only memory map of the file.

    Nothing is read: the pages come from the page cache as they are touched. None when
    there is nothing to map, or when the file cannot be mapped (a file system without
    ``mmap``, a ``ulimit -v`` smaller than the file): the caller reads the rows instead.
    """
    shape, fortran, dtype = header
    width, count = math.prod(shape[1:]), stop - start
    if not width or not count:
        return None
    offset = handle.tell()
    try:
        if fortran and len(shape) > 1:  # column-major: map the whole array, view the block's rows
            return np.memmap(handle, dtype=dtype, mode="r", offset=offset, shape=tuple(shape), order="F")[start:stop]
        return np.memmap(handle, dtype=dtype, mode="r", offset=offset + start * width * dtype.itemsize,
                         shape=(count, *shape[1:]), order="C")
    except (OSError, ValueError):
        return None
    finally:
        handle.seek(offset)  # np.memmap seeks to the end to measure the file


def _feature_rows(A: np.ndarray, features: list) -> HostRows:
    """The columns ``features`` of ``A`` as :class:`HostRows`: a strided view of ``A`` when they
    are contiguous (the label the first or last column, or none), else a column index."""
    if features == list(range(features[0], features[-1] + 1)):
        return HostRows(A[:, features[0]:features[-1] + 1])
    return HostRows(A, columns=np.asarray(features, dtype=np.int64))


def _scan(X: HostRows, A: np.ndarray, column, where_cell, where_label) -> np.ndarray | None:
    """One pass over the rows, a block at a time: the features are finite, and the labels
    (column ``column`` of ``A``, None: no labels) are copied out as float64 and checked.

    Returns the labels (N,) float64, or None. ``where_cell(row, column)`` and
    ``where_label(row)`` name a place for the error messages.
    """
    n = X.shape[0]
    y = None if column is None else np.empty(n, dtype=np.float64)
    numbers = A.dtype.kind == "f"  # integers and bools are always finite
    for start, stop in spans(n, block_rows(A.shape[1])):
        if numbers:
            _check_finite(X.raw(start, stop), lambda r, c, at=start: where_cell(at + r, c))
        if y is not None:
            y[start:stop] = A[start:stop, column]
    if y is not None:
        _check_labels(y, where_label, column)
    return y


def _finish(X: HostRows, mapped: bool):
    """``X`` as :class:`HostRows` when it is mapped and ``mapped`` is asked, else converted to float64."""
    return X if mapped and X.mapped else X.materialize()


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


def read_npy_rows(path, block, *, mapped: bool = False) -> np.ndarray:
    """Rows ``block(n_rows) -> [start, stop)`` of the ``.npy`` array at ``path``; the rest is never read.

    Returns an array of shape ``(stop - start, *row_shape)`` in the file's dtype. The
    header is checked against the file's size, and the block's size against the memory
    available, before the block is allocated. With ``mapped``, the block is a read-only
    memory map of the file instead (nothing read, no memory taken but page cache), unless
    the file cannot be mapped.
    """
    path = os.fspath(path)
    _check_regular(path)
    with _open(path) as handle:
        header = _npy_header(handle, path, os.fstat(handle.fileno()).st_size)
        start, stop = block(header[0][0])
        found = _map_rows(handle, header, start, stop) if mapped else None
        if found is not None:
            return found
        memory.require((stop - start) * math.prod(header[0][1:]) * header[2].itemsize,
                       f"reading {stop - start:,} rows of {path!r}")
        return _npy_rows(handle, header, start, stop)


NPY_HEADER_MAX = 10_000  # bytes of an .npy header read at most (NumPy's own default bound)


class NpyHeader(NamedTuple):
    """What an ``.npy`` header declares."""

    shape: tuple
    fortran: bool  # the data is in Fortran (column-major) order
    dtype: np.dtype


def read_npy_header(handle, where: str, size: int, *, limit: int = NPY_HEADER_MAX, exact: bool = False) -> NpyHeader:
    """The ``.npy`` header at the stream's position, bounded and checked against ``size`` (left after it).

    The one ``.npy`` header reader of xpnet (data files and checkpoints). At most ``limit``
    bytes of header are read: a longer one is refused from its length field, before it is
    read. ``size`` is the bytes the array may take from where its header begins (the file's,
    or the zip member's as its directory declares); an array claiming more is refused before
    anything of its size is allocated, and with ``exact`` one claiming less too. Python
    objects (pickles) are refused. Errors are one :class:`~xpnet.XpnetValueError` line
    beginning with ``where`` (how the caller names the array, e.g. ``"data file 'x.npy'"``).
    """
    magic = handle.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise XpnetValueError(f"{where}: not an .npy array (it does not begin with the .npy magic bytes)")
    if magic[6:] not in (b"\x01\x00", b"\x02\x00"):
        raise XpnetValueError(f"{where}: .npy format version {magic[6]}.{magic[7]} is not supported here; save it "
                              "with np.save")
    width = 2 if magic[6] == 1 else 4
    length_bytes = handle.read(width)
    length = int.from_bytes(length_bytes, "little")
    if len(length_bytes) == width and length > limit:
        raise XpnetValueError(f"{where}: its .npy header is {length} bytes long, more than the {limit} allowed")
    header = handle.read(length)
    if len(length_bytes) < width or len(header) < length:
        raise XpnetValueError(f"{where}: truncated inside its .npy header; the file is damaged: save it again")
    parse = np.lib.format.read_array_header_1_0 if width == 2 else np.lib.format.read_array_header_2_0
    try:
        shape, fortran, dtype = parse(io.BytesIO(length_bytes + header), max_header_size=limit)
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError) as exc:
        raise XpnetValueError(f"{where}: malformed .npy header ({' '.join(str(exc).split())[:200]})") from None
    if dtype.hasobject:
        raise XpnetValueError(f"{where}: holds Python objects (pickled); save arrays of numbers or text")
    if any(n < 0 for n in shape):
        raise XpnetValueError(f"{where}: damaged header (shape {shape})")
    claimed, held = math.prod(shape) * dtype.itemsize, size - (8 + width + length)
    declared = f"its header claims a {' x '.join(map(str, shape))} {dtype} array ({memory.format_bytes(claimed)})"
    if claimed > held:
        raise XpnetValueError(f"{where}: {declared} but the file holds {memory.format_bytes(max(held, 0))} of data; "
                              "the file is truncated or damaged: save it again")
    if exact and claimed < held:
        raise XpnetValueError(f"{where}: {declared} but {held - claimed} more bytes follow its data; the file is "
                              "damaged: save it again")
    return NpyHeader(tuple(shape), bool(fortran), dtype)


def _npy_header(handle, where, size: int) -> NpyHeader:
    """:func:`read_npy_header` for a data file (``where``: its path, or ``path[member]``),
    which must hold rows: a scalar is refused."""
    header = read_npy_header(handle, f"data file {where!r}", size)
    if not header.shape:
        raise XpnetValueError(f"data file {where!r}: holds a scalar; expected one row per sample")
    return header


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


def _read_npz(path, has_target, block, mapped: bool = False) -> Table:
    """The rows ``block`` picks of ``X`` and ``y`` in the ``.npz`` at ``path``; a stored (uncompressed)
    ``X`` is mapped when ``mapped`` is asked, a compressed one is always read (inflated) into memory."""
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
        what, count = f"reading {stop - start:,} rows of {path!r}", stop - start
        memory.require(count * (y_header[2].itemsize if y_header else 0), what)
        y = _npz_member(path, raw, archive, members["y"], (start, stop))[1] if y_shape is not None else None
        X = _npz_member(path, raw, archive, members["X"], (start, stop), mapped=True)[1] if mapped else None
        if X is None:  # compressed (or not to be mapped): read, in the file's dtype, then converted
            memory.require(count * X_shape[1] * (X_header[2].itemsize + 8), what)
            X = _npz_member(path, raw, archive, members["X"], (start, stop))[1]
    rows = HostRows(X)
    if X.dtype.kind == "f":
        for first, last in spans(X.shape[0], block_rows(X.shape[1])):
            _check_finite(rows.raw(first, last), lambda r, c, at=first: f"data file {path!r}: X[{start + at + r}, {c}]")
    if y is not None:
        _check_labels(y, lambda r: f"data file {path!r}: y[{start + r}]", "y")
    return Table(_finish(rows, mapped), y, [f"x{i}" for i in range(X_shape[1])], None if y is None else "y", start,
                 X_shape[0], mapped=mapped and rows.mapped)


def _open_zip(path, raw) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(raw)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise XpnetValueError(f"data file {path!r}: cannot read it as an .npz archive ({exc})") from None


def _npz_member(path, raw, archive, name, rows=None, mapped: bool = False) -> tuple:
    """``(header, rows [start, stop) of member name or None)``: stored members are read by
    offset in the file, compressed ones as a decompressed stream; with ``mapped``, a stored
    member's rows are mapped (:func:`_map_rows`) and None means they could not be. The
    member's npy header is checked against the size the zip directory declares (and that
    against the file) before anything is inflated."""
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
        if rows is None:
            return header, None
        if mapped:  # None when the member is compressed or cannot be mapped
            return header, None if compressed else _map_rows(handle, header, *rows)
        return header, _npy_rows(handle, header, rows[0], rows[1], compressed)
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


def load_npy_rows(path, rank: int = 0, size: int = 1, *, mapped: bool = False) -> np.ndarray:
    """Read (or, with ``mapped``, memory-map) only this process's block of rows of the ``.npy`` file at ``path``.

    Only rows ``shard_bounds(n_rows, rank, size)`` are read (by offset, after the header:
    :func:`xpnet.io.npy.read_npy_rows`), so no process ever holds the whole file. Returns
    an array of shape ``(stop - start, *row_shape)``: with ``mapped``, a read-only
    ``np.memmap`` of those rows, which training reads a chunk at a time.
    """
    return read_npy_rows(path, lambda n_rows: shard_bounds(n_rows, rank, size), mapped=mapped)
