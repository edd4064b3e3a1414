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

Everything here is host-side NumPy: data is moved to the backend by the model.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np

from .errors import XpnetValueError

FORMATS = (".csv", ".npy", ".npz")


@dataclass
class Table:
    """Data read from a file: ``X`` float64 (N, F), ``y`` (N,) labels or None, column names."""

    X: np.ndarray
    y: np.ndarray | None
    feature_names: list
    target: str | None


def load_file(path, target=None, *, has_target: bool = True) -> Table:
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
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise XpnetValueError(f"data file {path!r}: unknown file type {ext!r}; use one of {', '.join(FORMATS)}")
    if not os.path.isfile(path):
        raise XpnetValueError(f"data file {path!r}: no such file")
    if ext == ".csv":
        return _load_csv(path, target, has_target)
    if ext == ".npz":
        return _load_npz(path, has_target)
    return _load_npy(path, target, has_target)


def _load_csv(path, target, has_target) -> Table:
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise XpnetValueError(f"data file {path!r}: a CSV needs a header row and at least one data row")
    header = [name.strip() for name in rows[0]]
    body = rows[1:]
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise XpnetValueError(f"data file {path!r}: line {number} has {len(row)} fields, the header has {len(header)}")
    column = _target_index(path, header, target, has_target)
    features = [i for i in range(len(header)) if i != column]
    X = np.empty((len(body), len(features)))
    for r, row in enumerate(body):
        for c, i in enumerate(features):
            try:
                X[r, c] = float(row[i])
            except ValueError:
                raise XpnetValueError(
                    f"data file {path!r}: line {r + 2}, column {header[i]!r} holds {row[i]!r}, not a number; "
                    f"only the target column (--target) may hold words") from None
    y = None if column is None else _labels([row[column].strip() for row in body])
    return Table(X, y, [header[i] for i in features], None if column is None else header[column])


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


def _labels(cells) -> np.ndarray:
    """Whole numbers become int64 labels; anything else stays as strings."""
    try:
        values = np.array([float(c) for c in cells])
    except ValueError:
        return np.array(cells, dtype=str)
    if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        return values.astype(np.int64)
    return values


def _load_npz(path, has_target) -> Table:
    with np.load(path, allow_pickle=False) as archive:
        if "X" not in archive.files:
            raise XpnetValueError(f"data file {path!r}: an .npz needs an array named 'X' (and 'y'); it has {archive.files}")
        X = np.asarray(archive["X"], dtype=np.float64)
        y = archive["y"] if "y" in archive.files else None
    if y is None and has_target:
        raise XpnetValueError(f"data file {path!r}: the .npz has no 'y' array with the labels; save it with np.savez(path, X=X, y=y)")
    if X.ndim != 2:
        raise XpnetValueError(f"data file {path!r}: X has shape {X.shape}; expected (n_samples, n_features)")
    if y is not None and (y.ndim != 1 or y.shape[0] != X.shape[0]):
        raise XpnetValueError(f"data file {path!r}: y has shape {y.shape}; expected ({X.shape[0]},)")
    return Table(X, y, [f"x{i}" for i in range(X.shape[1])], None if y is None else "y")


def _load_npy(path, target, has_target) -> Table:
    A = np.load(path, allow_pickle=False)
    if A.ndim != 2 or A.shape[1] < (2 if has_target else 1):
        raise XpnetValueError(f"data file {path!r}: the array has shape {A.shape}; expected (n_samples, n_features + 1)"
                              " with the labels in the --target column (default: last)")
    names = [str(i) for i in range(A.shape[1])]
    column = _target_index(path, names, target, has_target)
    features = [i for i in range(A.shape[1]) if i != column]
    y = None if column is None else _labels(A[:, column].tolist())
    return Table(np.asarray(A[:, features], dtype=np.float64), y, [f"x{i}" for i in features],
                 None if column is None else str(column))


@dataclass
class LabelMap:
    """Maps class labels (strings or integers) to 0..C-1 and back.

    ``classes`` is sorted (as :func:`numpy.unique` sorts); integer labels 0..C-1 map to themselves.
    """

    classes: list

    @classmethod
    def fit(cls, y) -> "LabelMap":
        y = np.asarray(y)
        if y.ndim != 1 or y.size == 0:
            raise XpnetValueError(f"labels have shape {y.shape}; expected a non-empty (n_samples,) column")
        if y.dtype.kind == "f":
            raise XpnetValueError("labels are fractional numbers; a classifier needs class labels (words or whole numbers)")
        return cls([v.item() for v in np.unique(y)])

    def encode(self, y) -> np.ndarray:
        """Labels -> int64 indices into ``classes``; unknown labels raise."""
        y = np.asarray(y)
        lookup = {value: i for i, value in enumerate(self.classes)}
        try:
            return np.array([lookup[v.item()] for v in y], dtype=np.int64)
        except KeyError as exc:
            raise XpnetValueError(f"label {exc.args[0]!r} was not seen in training; known labels: {self.classes}") from None

    def decode(self, indices) -> np.ndarray:
        """int indices -> the original labels."""
        return np.asarray(self.classes)[np.asarray(indices, dtype=np.int64)]


@dataclass
class Scaler:
    """Per-feature standardization ``(X - mean) / scale``; constant features keep scale 1."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X) -> "Scaler":
        X = np.asarray(X, dtype=np.float64)
        scale = X.std(axis=0)
        return cls(X.mean(axis=0), np.where(scale > 0, scale, 1.0))

    def transform(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.mean.shape[0]:
            raise XpnetValueError(f"X has shape {X.shape}; the model was trained on {self.mean.shape[0]} features")
        return (X - self.mean) / self.scale


def split(X, y, fraction: float, seed: int = 0):
    """Shuffle with ``seed`` and hold out ``fraction`` of the rows: ``(X_train, y_train, X_held, y_held)``.

    ``fraction=0`` returns the data unchanged and empty held-out arrays.
    """
    if not (isinstance(fraction, (int, float)) and 0 <= fraction < 1):
        raise XpnetValueError(f"--validation-fraction {fraction!r} must be in [0, 1), e.g. 0.2")
    n = X.shape[0]
    n_held = int(round(n * fraction))
    if fraction and (n_held < 1 or n - n_held < 1):
        raise XpnetValueError(f"--validation-fraction {fraction} of {n} samples leaves an empty part; "
                              f"use more data or a fraction between {1 / n:.3g} and {1 - 1 / n:.3g}")
    if not n_held:
        return X, y, X[:0], y[:0]
    order = np.random.default_rng(seed).permutation(n)
    held, kept = order[:n_held], order[n_held:]
    return X[kept], y[kept], X[held], y[held]


def load_digits():
    """scikit-learn's bundled 8x8 digits: ``X`` (1797, 64) in [0, 1] (pixels / 16), ``y`` 0..9."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise XpnetValueError("--dataset digits needs scikit-learn, which is not installed; "
                              "pip install 'xpnet[sklearn]' (or pip install scikit-learn)") from None
    digits = sk_load_digits()
    return np.asarray(digits.data, dtype=np.float64) / 16.0, np.asarray(digits.target, dtype=np.int64)


# The settings that decide which data a run trains on (saved in checkpoints, reused by
# --resume and `xpnet evaluate`). None means "the default".
DATA_KEYS = ("dataset", "data", "target", "standardize", "validation_fraction", "n_samples", "noise", "seed",
             "classes")


@dataclass
class Prepared:
    """Training data ready for a classifier, and the mapping needed to predict on new data."""

    X: np.ndarray  # (N, F) float64, standardized if asked
    y: np.ndarray  # (N,) int64 class indices 0..C-1
    X_held: np.ndarray  # (M, F) held-out rows (M may be 0)
    y_held: np.ndarray  # (M,)
    n_classes: int
    labels: LabelMap | None  # original labels (file data), None for built-in datasets
    scaler: Scaler | None
    feature_names: list | None
    source: str  # what the data is, for messages
    target: str | None = None  # the label column of a data file


def prepare(config: dict) -> Prepared:
    """Load, encode, split and standardize the data described by ``config`` (keys :data:`DATA_KEYS`).

    ``data`` (a file) wins over ``dataset``; ``dataset="digits"`` holds out 25% as a test
    split unless ``validation_fraction`` says otherwise; the split is drawn with ``seed``
    and the standardization is fitted on the training part only.
    """
    from . import datasets

    seed = int(config.get("seed") or 0)
    fraction = config.get("validation_fraction")
    labels = feature_names = target = None
    if config.get("data"):
        table = load_file(config["data"], config.get("target"))
        labels = LabelMap.fit(table.y)
        X, y, feature_names, target = table.X, labels.encode(table.y), table.feature_names, table.target
        source = f"{config['data']} (target {table.target!r}, classes {labels.classes})"
    elif config.get("dataset") == "digits":
        X, y = load_digits()
        fraction = 0.25 if fraction is None else fraction
        source = "digits (8x8 handwritten digits, pixels / 16)"
    else:
        name = config.get("dataset") or "moons"
        options = {"classes": config["classes"]} if config.get("classes") else {}
        X, y = datasets.load(name, n_samples=config.get("n_samples"), noise=config.get("noise"), seed=seed, **options)
        if y.ndim == 2:  # the tutorial tables: a 0/1 column becomes class labels
            y = y[:, 0].astype(np.int64)
        source = name
    n_classes = max(int(y.max()) + 1, 2)
    X, y, X_held, y_held = split(X, y, fraction or 0.0, seed)
    scaler = None
    if config.get("standardize"):
        scaler = Scaler.fit(X)
        X, X_held = scaler.transform(X), scaler.transform(X_held)
    return Prepared(X, y, X_held, y_held, n_classes, labels, scaler, feature_names, source, target)
