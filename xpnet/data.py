"""Your own data: load CSV / NPY / NPZ files, map labels, standardize, split.

    >>> from xpnet import data
    >>> table = data.load_file("iris.csv", target="species")     # doctest: +SKIP
    >>> labels = data.LabelMap.fit(table.y)                      # doctest: +SKIP
    >>> y = labels.encode(table.y)          # 0..C-1; labels.decode(y) maps back   # doctest: +SKIP

File formats
------------
``.csv``
    A header row, then numbers; ``target`` names the label column (default: the last
    column). Labels may be words (``setosa``) or whole numbers.
``.npz``
    Arrays ``X`` (N, F) and, for training, ``y`` (N,).
``.npy``
    One 2-D array; ``target`` is a column index (default: the last column). For
    prediction with ``has_target=False`` the whole array is ``X``.

Reading a block of rows
-----------------------
``load_file(path, block=...)`` reads only the rows ``[start, stop)`` that ``block``
chooses once it knows the file's row count, without ever holding the rest:

- ``.npy`` files and uncompressed ``.npz`` members (``np.savez``): the header gives the
  shape; the block is read by offset (one seek and one read per contiguous run: one run
  in C order, one per column in Fortran order).
- compressed ``.npz`` members (``np.savez_compressed``): decompressed as a stream,
  ``CHUNK`` (64 KiB) at a time; the bytes before the block are dropped.
- ``.csv``: a first streaming pass counts the rows (and checks every row's fields), a
  second one parses the numbers of the block's rows only.

:func:`xpnet.cli.prepare.prepare` with a communicator (``xpnet train --data FILE --distributed``) reads
each process's block this way; what needs all rows (the set of labels, the validation
split, the standardization statistics) is computed from small collectives instead.

Everything here is host-side NumPy: data is moved to the backend by the model.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import math
import os
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

from .errors import XpnetValueError

FORMATS = (".csv", ".npy", ".npz")
CHUNK = 1 << 16  # bytes read (or decompressed) at a time from a compressed .npz member
CONSTANT = 64 * np.finfo(np.float64).eps  # a feature whose std is below this times |mean| is constant


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


def load_file(path, target=None, *, has_target: bool = True, block=None) -> Table:
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
    """
    table, ext = _read(path, target, has_target, block)
    if ext != ".npz" and table.y is not None:
        table.y = _labels(table.y)
    return table


def _read(path, target, has_target, block) -> tuple[Table, str]:
    """The :class:`Table` of ``block``'s rows with untyped labels (CSV text, NPY numbers), and the file type."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise XpnetValueError(f"data file {path!r}: unknown file type {ext!r}; use one of {', '.join(FORMATS)}")
    if not os.path.isfile(path):
        raise XpnetValueError(f"data file {path!r}: no such file")
    block = block or (lambda n: (0, n))
    if ext == ".csv":
        return _read_csv(path, target, has_target, block), ext
    if ext == ".npz":
        return _read_npz(path, has_target, block), ext
    return _read_npy(path, target, has_target, block), ext


def _records(handle):
    """The non-blank records of a CSV file, as lists of fields."""
    return (row for row in csv.reader(handle) if any(cell.strip() for cell in row))


def _scan_csv(path) -> tuple[list, int]:
    """The header of a CSV and its number of data rows (one streaming pass; checks every row's fields)."""
    n_rows = 0
    with open(path, newline="") as handle:
        records = _records(handle)
        header: list[str] = next(records, [])
        for n_rows, row in enumerate(records, start=1):
            if len(row) != len(header):
                raise XpnetValueError(f"data file {path!r}: line {n_rows + 1} has {len(row)} fields, "
                                      f"the header has {len(header)}")
    if not n_rows:
        raise XpnetValueError(f"data file {path!r}: a CSV needs a header row and at least one data row")
    return [name.strip() for name in header], n_rows


def _read_csv(path, target, has_target, block) -> Table:
    header, n_rows = _scan_csv(path)
    column = _target_index(path, header, target, has_target)
    features = [i for i in range(len(header)) if i != column]
    start, stop = block(n_rows)
    X, labels = np.empty((stop - start, len(features))), []
    with open(path, newline="") as handle:  # the second pass: parse the block's rows only
        for r, row in enumerate(itertools.islice(_records(handle), 1 + start, 1 + stop)):
            try:
                X[r] = [float(row[i]) for i in features]
            except ValueError:
                i = next(i for i in features if not _is_number(row[i]))
                raise XpnetValueError(
                    f"data file {path!r}: line {start + r + 2}, column {header[i]!r} holds {row[i]!r}, not a number; "
                    f"only the target column (--target) may hold words") from None
            if column is not None:
                labels.append(row[column].strip())
    y = None if column is None else np.array(labels, dtype=str)
    return Table(X, y, [header[i] for i in features], None if column is None else header[column], start, n_rows)


def _is_number(text) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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


def _numeric(cells) -> np.ndarray | None:
    """Label cells as float64 numbers, or None when one of them is not a number."""
    if cells.dtype.kind in "biuf":
        return cells.astype(np.float64)
    try:
        return np.array([float(c) for c in cells], dtype=np.float64)
    except ValueError:
        return None


def _label_kind(values) -> str:
    """How :func:`_labels` types cells whose :func:`_numeric` values are ``values``:
    ``"i"`` whole numbers, ``"f"`` other numbers (no class labels), ``"U"`` words."""
    if values is None:
        return "U"
    return "i" if np.all(np.isfinite(values)) and np.all(values == np.round(values)) else "f"


def _labels(cells, kind: str | None = None) -> np.ndarray:
    """Whole numbers become int64 labels; anything else stays as strings.

    ``kind`` (see :func:`_label_kind`) may be decided elsewhere, e.g. over the cells of
    every process, so that a block of whole numbers in a column of words stays words.
    """
    values = None if kind == "U" else _numeric(cells)
    kind = kind or _label_kind(values)
    if kind == "U":
        return np.asarray(cells, dtype=str)
    assert values is not None  # kind "i" or "f": every cell is a number
    return values.astype(np.int64) if kind == "i" else values


def _read_npy(path, target, has_target, block) -> Table:
    with open(path, "rb") as handle:
        header = _npy_header(handle, path)
        shape = header[0]
        if len(shape) != 2 or shape[1] < (2 if has_target else 1):
            raise XpnetValueError(f"data file {path!r}: the array has shape {shape}; expected (n_samples, "
                                  "n_features + 1) with the labels in the --target column (default: last)")
        start, stop = block(shape[0])
        A = _npy_rows(handle, header, start, stop)
    column = _target_index(path, [str(i) for i in range(shape[1])], target, has_target)
    features = [i for i in range(shape[1]) if i != column]
    y = None if column is None else A[:, column].copy()  # a copy: a view would keep all of A alive
    return Table(np.asarray(A[:, features], dtype=np.float64), y, [f"x{i}" for i in features],
                 None if column is None else str(column), start, shape[0])


def read_npy_rows(path, block) -> np.ndarray:
    """Rows ``block(n_rows) -> [start, stop)`` of the ``.npy`` array at ``path``; the rest is never read.

    Returns an array of shape ``(stop - start, *row_shape)`` in the file's dtype.
    """
    path = os.fspath(path)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise XpnetValueError(f"cannot read rows of {path!r} as a .npy array: {exc}") from None
    with handle:
        header = _npy_header(handle, path)
        return _npy_rows(handle, header, *block(header[0][0]))


def _npy_header(handle, where) -> tuple:
    """``(shape, fortran_order, dtype)`` from the ``.npy`` header at the stream's position (left after it)."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        version = np.lib.format.read_magic(handle)
        if version not in readers:
            raise ValueError(f"format version {version} is not supported here; save it with np.save")
        shape, fortran, dtype = readers[version](handle)
    except ValueError as exc:
        raise XpnetValueError(f"data file {where!r}: not a .npy array ({exc})") from None
    if dtype.hasobject:
        raise XpnetValueError(f"data file {where!r}: holds Python objects (pickled); save arrays of numbers or text")
    if not shape:
        raise XpnetValueError(f"data file {where!r}: holds a scalar; expected one row per sample")
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
    with _open_zip(path) as archive:
        members = {name[:-4] if name.endswith(".npy") else name: name for name in archive.namelist()}
        if "X" not in members:
            raise XpnetValueError(f"data file {path!r}: an .npz needs an array named 'X' (and 'y'); "
                                  f"it has {list(members)}")
        X_shape = _npz_member(path, archive, members["X"])[0]
        y_shape = _npz_member(path, archive, members["y"])[0] if "y" in members else None
        if y_shape is None and has_target:
            raise XpnetValueError(f"data file {path!r}: the .npz has no 'y' array with the labels; "
                                  "save it with np.savez(path, X=X, y=y)")
        if len(X_shape) != 2:
            raise XpnetValueError(f"data file {path!r}: X has shape {X_shape}; expected (n_samples, n_features)")
        if y_shape is not None and (len(y_shape) != 1 or y_shape[0] != X_shape[0]):
            raise XpnetValueError(f"data file {path!r}: y has shape {y_shape}; expected ({X_shape[0]},)")
        start, stop = block(X_shape[0])
        X = _npz_member(path, archive, members["X"], (start, stop))[1]
        y = _npz_member(path, archive, members["y"], (start, stop))[1] if y_shape is not None else None
    return Table(np.asarray(X, dtype=np.float64), y, [f"x{i}" for i in range(X_shape[1])],
                 None if y is None else "y", start, X_shape[0])


def _open_zip(path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise XpnetValueError(f"data file {path!r}: cannot read it as an .npz archive ({exc})") from None


def _npz_member(path, archive, name, rows=None) -> tuple:
    """``(shape, rows [start, stop) of member name or None)``: stored members are read by
    offset in the file, compressed ones as a decompressed stream."""
    info = archive.getinfo(name)
    where = f"{path}[{name}]"
    if info.flag_bits & 1:
        raise XpnetValueError(f"data file {where!r}: encrypted members are not supported")
    with contextlib.ExitStack() as stack:
        compressed = info.compress_type != zipfile.ZIP_STORED
        if compressed:
            handle = stack.enter_context(archive.open(info))
        else:
            handle = stack.enter_context(open(path, "rb"))
            handle.seek(_member_start(handle, info, where))
        header = _npy_header(handle, where)
        return header[0], None if rows is None else _npy_rows(handle, header, rows[0], rows[1], compressed)


def _member_start(handle, info, where) -> int:
    """Where the bytes of the stored zip member ``info`` begin (after its local file header)."""
    handle.seek(info.header_offset)
    fixed = handle.read(30)
    if len(fixed) != 30 or fixed[:4] != b"PK\x03\x04":
        raise XpnetValueError(f"data file {where!r}: damaged zip archive (no local header)")
    name_length, extra_length = struct.unpack("<HH", fixed[26:30])
    return info.header_offset + 30 + name_length + extra_length


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
                                  "(words or whole numbers)")
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
    if not (isinstance(fraction, (int, float)) and 0 <= fraction < 1):
        raise XpnetValueError(f"--validation-fraction {fraction!r} must be in [0, 1), e.g. 0.2")
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
                              "pip install 'xpnet[sklearn]' (or pip install scikit-learn)") from None
    digits = sk_load_digits()
    return np.asarray(digits.data, dtype=np.float64) / 16.0, np.asarray(digits.target, dtype=np.int64)

