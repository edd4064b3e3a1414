"""The data of `xpnet train` (and of `xpnet evaluate` without --data): from the run's settings
to training and held-out arrays, encoded, split and standardized; with --distributed, this
process's rows only.

    >>> from xpnet.cli.prepare import prepare
    >>> prepared = prepare({"dataset": "moons", "validation_fraction": 0.2, "standardize": True})

The files themselves are read by :mod:`xpnet.data`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..data import LabelMap, Scaler, _label_kind, _labels, _numeric, _read, load_digits, load_file, split, split_order

# The settings that decide which data a run trains on (saved in checkpoints, reused by
# --resume and `xpnet evaluate`). None means "the default".
DATA_KEYS = ("dataset", "data", "target", "standardize", "validation_fraction", "n_samples", "noise", "seed",
             "classes")


@dataclass
class Prepared:
    """Training data ready for a classifier, and the mapping needed to predict on new data.

    In a data-parallel run (``prepare(config, comm)``) the arrays hold this process's rows
    only; ``rows`` says where they stand in the training order of all processes' rows,
    and ``n_samples`` and ``n_held`` count the rows of all processes.
    """

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
    rows: np.ndarray | None = None  # positions of X's rows in the global training order (None: all, in order)
    n_samples: int = -1  # training rows of all processes (-1: X.shape[0])
    n_held: int = -1  # held-out rows of all processes (-1: X_held.shape[0])

    def __post_init__(self):
        self.n_samples = self.X.shape[0] if self.n_samples < 0 else self.n_samples
        self.n_held = self.X_held.shape[0] if self.n_held < 0 else self.n_held


def prepare(config: dict, comm=None) -> Prepared:
    """Load, encode, split and standardize the data described by ``config`` (keys :data:`DATA_KEYS`).

    ``data`` (a file) wins over ``dataset``; ``dataset="digits"`` holds out 25% as a test
    split unless ``validation_fraction`` says otherwise; the split is drawn with ``seed``
    and the standardization is fitted on the training part only.

    With ``comm`` (a :class:`xpnet.distributed.Communicator` of several processes) the
    result holds this process's rows only, and the data of all processes together equals
    what one process gets (up to rounding in the standardization): a data file is read
    a block per process (:func:`xpnet.data.load_file` with ``block=comm.bounds``; see
    :func:`_prepare_shard`); a built-in dataset is generated and prepared whole, then each
    process keeps its contiguous block of the training and of the held-out rows.
    """
    if comm is None or comm.size == 1:
        return _prepare_whole(config)
    if config.get("data"):
        return _prepare_shard(config, comm)
    whole = _prepare_whole(config)
    start, stop = comm.bounds(whole.X.shape[0])
    first, last = comm.bounds(whole.X_held.shape[0], allow_empty=True)
    return dataclasses.replace(whole, X=whole.X[start:stop], y=whole.y[start:stop], X_held=whole.X_held[first:last],
                               y_held=whole.y_held[first:last], rows=np.arange(start, stop),
                               n_samples=whole.X.shape[0], n_held=whole.X_held.shape[0])


def _prepare_whole(config: dict) -> Prepared:
    from .. import datasets

    seed = int(config.get("seed") or 0)
    fraction = config.get("validation_fraction")
    labels = feature_names = target = None
    if config.get("data"):
        table = load_file(config["data"], config.get("target"))
        labels = LabelMap.fit(table.y)
        X, y, feature_names, target = table.X, labels.encode(table.y), table.feature_names, table.target
        source = _file_source(config["data"], table.target, labels)
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


def _file_source(path, target, labels) -> str:
    return f"{path} (target {target!r}, classes {labels.classes})"


def _prepare_shard(config: dict, comm) -> Prepared:
    """This process's part of a data file, prepared as one process prepares the whole file.

    Each process reads only its block of file rows (``comm.bounds``). The classes are the
    union of every block's labels (gathered: a few values per process); the validation
    split is the permutation one process draws, of which each process keeps the positions
    whose file rows it holds (so its training rows need not be contiguous in the training
    order: ``Prepared.rows`` says where they stand); the standardization statistics come
    from :meth:`xpnet.data.Scaler.fit` over all processes.
    """
    table, ext = _read(config["data"], config.get("target"), True, comm.bounds)
    labels, y_block = _shared_labels(table.y, ext, comm)
    n_rows = table.n_rows
    assert n_rows is not None  # a block read counts the file's rows
    order = split_order(n_rows, config.get("validation_fraction") or 0.0, int(config.get("seed") or 0))
    kept, held = order if order is not None else (np.arange(n_rows), np.arange(0))
    rows, mine = _own_positions(kept, table.start, table.X.shape[0])
    held_mine = _own_positions(held, table.start, table.X.shape[0])[1]
    X, y, X_held, y_held = table.X[mine], y_block[mine], table.X[held_mine], y_block[held_mine]
    feature_names, target = table.feature_names, table.target
    del table  # the block's rows now live in X and X_held only
    scaler = None
    if config.get("standardize"):
        scaler = Scaler.fit(X, comm)
        X, X_held = scaler.transform(X), scaler.transform(X_held)
    return Prepared(X, y, X_held, y_held, max(len(labels.classes), 2), labels, scaler, feature_names,
                    _file_source(config["data"], target, labels), target, rows=rows,
                    n_samples=len(kept), n_held=len(held))


def _own_positions(order: np.ndarray, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``(positions, rows)``: the positions in ``order`` (file rows) of the rows
    ``[start, start + count)`` that a process holds, ascending, and those rows minus ``start``."""
    positions = np.flatnonzero((order >= start) & (order < start + count))
    return positions, order[positions] - start


def _shared_labels(cells, ext: str, comm) -> tuple[LabelMap, np.ndarray]:
    """The :class:`LabelMap` of all processes' labels (the classes one process finds in the
    whole file) and this block's labels encoded with it.

    CSV and NPY cells are typed alike everywhere (:func:`xpnet.data._labels`: words as soon as one
    process has a word); then the sorted distinct labels of every block are gathered
    (a few values per process) and merged.
    """
    if ext != ".npz":
        kinds = comm.allgather(_label_kind(_numeric(cells)))
        cells = _labels(cells, "U" if "U" in kinds else "f" if "f" in kinds else "i")
    labels = LabelMap.fit(np.concatenate(comm.allgather(np.unique(cells))))
    return labels, labels.encode(cells)
