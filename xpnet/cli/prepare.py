"""The data of `xpnet train` (and of `xpnet evaluate` without --data): from the run's settings
to training, validation and test arrays, encoded, split and standardized; with --distributed,
this process's rows only.

    >>> from xpnet.cli.prepare import prepare
    >>> prepared = prepare({"dataset": "moons", "validation_fraction": 0.2, "standardize": True})
    >>> prepared.task, prepared.X.shape, prepared.X_val.shape, prepared.X_test.shape
    ('classification', (160, 2), (40, 2), (0, 2))

Held-out rows, honestly: the **test** rows (``--dataset digits``: a fixed 25%) are set
aside first and are only ever reported; the **validation** rows (``--validation-fraction``;
by default 20% of a data file, or 10% of a built-in dataset with ``--early-stopping``) come
from what is left, the training part, and may steer training (early stopping). Both
standardizations (the inputs' with ``standardize``, a regression target's always) are fitted
on the training rows only.

The files themselves are read by :mod:`xpnet.io.tables`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import numpy as np

from .. import memory
from ..data.datasets import load_digits
from ..data.labels import LabelMap, _label_kind, _numeric, check_task, regression_targets, task_of, typed_labels
from ..data.preprocess import Scaler, TargetScaler, split, split_order
from ..engine.rows import HostRows, spans
from ..errors import XpnetValueError
from ..io.tables import _read
from ..parallel.comm import Communicator

# The settings that decide which data a run trains on (saved in checkpoints, reused by
# --resume and `xpnet evaluate`). None means "the default".
DATA_KEYS = ("dataset", "data", "target", "header", "task", "standardize", "validation_fraction", "early_stopping",
             "n_samples", "noise", "seed", "classes")
DIGITS_TEST_FRACTION = 0.25  # --dataset digits: the test rows, set aside before anything else
EARLY_STOPPING_FRACTION = 0.1  # the validation rows --early-stopping takes when --validation-fraction is not given
DATA_FILE_FRACTION = 0.2  # the validation rows a data file keeps by default (--validation-fraction 0: none)
MIN_DEFAULT_HOLDOUT = 20  # rows a data file needs for that default: fewer keep every row for training
LARGE_CSV_BYTES = 256 << 20  # a CSV file this large gets a note: it is held in memory, an .npy would be mapped
LABEL_BLOCK = 1 << 20  # labels typed, counted and encoded this many at a time


@dataclass
class Prepared:
    """Data ready for training, held-out rows, and the mappings needed to predict on new data.

    Three disjoint sets of rows: training (``X``, ``y``), validation (``X_val``, ``y_val``:
    may steer training, e.g. early stopping) and test (``X_test``, ``y_test``: only ever
    reported; ``--dataset digits`` only). Either held-out set may be empty (0 rows).

    ``y`` holds class indices 0..C-1 (int64) for ``task == "classification"``, and
    standardized float64 targets for ``"regression"``: ``target_scaler.inverse_transform``
    gives them (and a model's predictions) back in the target's own units.

    In a data-parallel run (``prepare(config, comm)``) the arrays hold this process's rows
    only; ``rows`` says where they stand in the training order of all processes' rows,
    and ``n_samples``, ``n_val`` and ``n_test`` count the rows of all processes.

    Data that is not in memory (``prepare(config, stream=True)`` of an ``.npy`` file or
    an ``.npz`` with a stored ``X``: ``mapped`` is True): ``X`` and ``X_val`` are then
    :class:`~xpnet.engine.rows.HostRows`, not arrays: the file's rows, memory-mapped, picked
    by index in training (or validation) order, and read through ``scaler`` (fitted, not
    yet applied) a chunk at a time, as float64, by whoever reads them (``X.rows(start,
    stop)``, ``X.take(positions)``, ``X.materialize()``). ``y`` and ``y_val`` are arrays
    as always (one number per row). :func:`materialize` turns such a ``Prepared`` into
    one of arrays, which is what ``prepare`` returns without ``stream``.
    """

    X: np.ndarray | HostRows  # (N, F) float64 training rows, standardized if asked (HostRows when mapped)
    y: np.ndarray  # (N,) int64 class indices 0..C-1, or float64 standardized regression targets
    X_val: np.ndarray | HostRows  # (V, F) validation rows, from the training part (V may be 0)
    y_val: np.ndarray  # (V,)
    X_test: np.ndarray  # (T, F) test rows, never used in training (T may be 0)
    y_test: np.ndarray  # (T,)
    task: str  # "classification" or "regression"
    n_classes: int  # classes of a classifier (at least 2); 0 for regression (see n_outputs)
    labels: LabelMap | None  # original labels (file data, classification), None for built-in datasets
    scaler: Scaler | None  # the inputs' standardization (--standardize), fitted on the training rows
    target_scaler: TargetScaler | None  # regression: the target's standardization, fitted on the training rows
    feature_names: list | None
    source: str  # what the data is, for messages
    target: str | None = None  # the label column of a data file
    rows: np.ndarray | None = None  # positions of X's rows in the global training order (None: all, in order)
    n_samples: int = -1  # training rows of all processes (-1: X.shape[0])
    n_val: int = -1  # validation rows of all processes (-1: X_val.shape[0])
    n_test: int = -1  # test rows of all processes (-1: X_test.shape[0])
    mapped: bool = False  # X and X_val are HostRows over a memory-mapped file, read through `scaler` per chunk
    notes: tuple = ()  # one-line remarks for the user (the CLI prints them), e.g. a large CSV held in memory
    task_reason: str = ""  # why the task is what it is (a sentence, for the summary)
    validation_fraction: float = 0.0  # the fraction of the training part held out for validation

    def __post_init__(self):
        self.n_samples = self.X.shape[0] if self.n_samples < 0 else self.n_samples
        self.n_val = self.X_val.shape[0] if self.n_val < 0 else self.n_val
        self.n_test = self.X_test.shape[0] if self.n_test < 0 else self.n_test

    @property
    def n_outputs(self) -> int:
        """The model's output width: the number of classes, or 1 for regression."""
        return 1 if self.task == "regression" else self.n_classes

    # The validation rows under their former names (read by the train and evaluate commands
    # until they move to X_val / y_val / n_val). They never hold test rows.
    @property
    def X_held(self) -> np.ndarray | HostRows:
        return self.X_val

    @property
    def y_held(self) -> np.ndarray:
        return self.y_val

    @property
    def n_held(self) -> int:
        return self.n_val


def prepare(config: dict, comm=None, *, stream: bool = False) -> Prepared:
    """Load, encode, split and standardize the data described by ``config`` (keys :data:`DATA_KEYS`).

    ``data`` (a file, read with ``header`` and ``target``) wins over ``dataset``. ``task``
    (``"auto"``, the default, ``"classification"`` or ``"regression"``) decides how the
    target is encoded; auto means regression when a file's target column holds numbers
    that are not all whole, or whole numbers with many distinct values
    (:func:`xpnet.data.labels.task_of`), and the built-in datasets are classification.
    ``dataset="digits"`` sets a test split aside (25%); the validation rows
    (``validation_fraction``; by default 0.2 of a data file of at least 20 rows, and of a
    built-in dataset 0.1 with ``early_stopping``, else 0) come from the rest. Splits are
    drawn with ``seed``; standardizations are fitted on the training rows only.

    With ``comm`` (a :class:`xpnet.distributed.Communicator` of several processes) the
    result holds this process's rows only, and the data of all processes together equals
    what one process gets (up to rounding in the standardizations): a data file is read
    a block per process (:func:`xpnet.io.tables.load_file` with ``block=comm.bounds``; see
    :func:`_prepare_file`); a built-in dataset is generated and prepared whole, then each
    process keeps its contiguous block of the training, validation and test rows.

    An ``.npy`` file, or an ``.npz`` whose ``X`` is stored uncompressed, is memory-mapped,
    never copied whole: the labels, the split and the standardization statistics are
    computed in bounded blocks of rows. With ``stream=True`` the result keeps it that way
    (``Prepared.mapped``: ``X`` and ``X_val`` are :class:`~xpnet.engine.rows.HostRows`, for a
    trainer that reads them a chunk at a time); otherwise they are converted here, by
    :func:`materialize`.
    """
    check_task(config.get("task") or "auto")
    if config.get("data"):
        prepared = _prepare_file(config, Communicator() if comm is None else comm)
        return prepared if stream and prepared.mapped else materialize(prepared)
    if comm is None or comm.size == 1:
        return _prepare_whole(config)
    whole = _prepare_whole(config)
    parts = {}
    for name in ("", "_val", "_test"):
        X, y = getattr(whole, "X" + name), getattr(whole, "y" + name)
        start, stop = comm.bounds(X.shape[0], allow_empty=bool(name))
        parts.update({"X" + name: X[start:stop], "y" + name: y[start:stop]})
        if not name:
            parts["rows"] = np.arange(start, stop)
    return dataclasses.replace(whole, **parts, n_samples=whole.n_samples, n_val=whole.n_val, n_test=whole.n_test)


def _validation_fraction(config: dict, n_rows: int) -> float:
    """``validation_fraction``, else the default: :data:`DATA_FILE_FRACTION` of a data file of at
    least :data:`MIN_DEFAULT_HOLDOUT` rows (none of a smaller one), and of a built-in dataset
    :data:`EARLY_STOPPING_FRACTION` with early stopping, else 0."""
    fraction = config.get("validation_fraction")
    if fraction is not None:
        return fraction
    if config.get("data"):
        return DATA_FILE_FRACTION if n_rows >= MIN_DEFAULT_HOLDOUT else 0.0
    return EARLY_STOPPING_FRACTION if config.get("early_stopping") else 0.0


def _prepare_whole(config: dict) -> Prepared:
    """A built-in dataset, generated, split and standardized whole."""
    from ..data import datasets

    seed = int(config.get("seed") or 0)
    X, y, source = _builtin(config, seed, datasets)
    if (config.get("task") or "auto") == "regression":
        raise XpnetValueError(f"--task regression needs a --data file with a numeric target; the built-in "
                              f"dataset {config.get('dataset') or 'moons'!r} has class labels")
    test_fraction = DIGITS_TEST_FRACTION if config.get("dataset") == "digits" else 0.0
    n_classes = max(int(y.max()) + 1, 2)
    X, y, X_test, y_test = split(X, y, test_fraction, seed)  # the test rows first: nothing else sees them
    fraction = _validation_fraction(config, X.shape[0])
    X, y, X_val, y_val = split(X, y, fraction, seed)
    scaler = None
    if config.get("standardize"):
        scaler = Scaler.fit(X)
        X, X_val, X_test = scaler.transform(X), scaler.transform(X_val), scaler.transform(X_test)
    return Prepared(X=X, y=y, X_val=X_val, y_val=y_val, X_test=X_test, y_test=y_test, task="classification",
                    n_classes=n_classes, labels=None, scaler=scaler, target_scaler=None, feature_names=None,
                    source=source, target=None, task_reason="a built-in dataset of class labels",
                    validation_fraction=fraction)


def _builtin(config: dict, seed: int, datasets) -> tuple[np.ndarray, np.ndarray, str]:
    """``(X, y, source)`` of a built-in dataset: digits, or a generated one."""
    if config.get("dataset") == "digits":
        X, y = load_digits()
        return X, y, f"digits (8x8 handwritten digits, pixels / 16; {DIGITS_TEST_FRACTION:.0%} test rows set aside)"
    name = config.get("dataset") or "moons"
    options = {"classes": config["classes"]} if config.get("classes") else {}
    X, y = datasets.load(name, n_samples=config.get("n_samples"), noise=config.get("noise"), seed=seed, **options)
    if y.ndim == 2:  # the tutorial tables: a 0/1 column becomes class labels
        y = y[:, 0].astype(np.int64)
    return X, y, name


def _file_source(path, target, labels) -> str:
    if labels is None:
        return f"{path} (target {target!r}, regression)"
    return f"{path} (target {target!r}, classes {labels.classes})"


def _prepare_file(config: dict, comm) -> Prepared:
    """This process's part of a data file (all of it with one process), prepared as one process
    prepares the whole file, with ``X`` and ``X_val`` as :class:`HostRows` (see :func:`materialize`).

    Each process reads only its block of file rows (``comm.bounds``); an ``.npy`` (or a
    stored ``.npz`` member) is mapped, not read. The task and the classes come from every
    block's labels (gathered: a few values per process); the validation split is the
    permutation one process draws (:func:`~xpnet.data.preprocess.split_order`), of which
    each process keeps the positions whose file rows it holds, as row numbers (so its
    training rows need not be contiguous in the training order: ``Prepared.rows`` says
    where they stand); the standardization statistics come from one streaming pass over
    the training rows (:meth:`xpnet.data.preprocess.Scaler.fit`, over all processes).
    """
    path = config["data"]
    table, ext = _read(path, config.get("target"), True, comm.bounds, config.get("header"), mapped=True)
    where = f"the target column {table.target!r} of {path!r}"
    n_rows, start = table.n_rows, table.start
    assert n_rows is not None  # a block read counts the file's rows
    task, task_reason, labels, y_block = _shared_targets(table.y, ext, config.get("task") or "auto", comm, n_rows,
                                                         where)
    X_all = table.X if table.mapped else HostRows(table.X)
    feature_names, target, mapped = table.feature_names, table.target, table.mapped
    del table  # its labels are y_block now (typed in place), its rows X_all
    fraction = _validation_fraction(config, n_rows)
    order = split_order(n_rows, fraction, int(config.get("seed") or 0))
    count = X_all.shape[0]
    if comm.size == 1:  # the training rows in training order: all of them in file order without a split
        rows, (mine, held_mine) = None, order if order is not None else (None, np.zeros(0, dtype=np.int64))
    else:
        kept, held = order if order is not None else (np.arange(n_rows), np.zeros(0, dtype=np.int64))
        rows, mine = _own_positions(kept, start, count)
        held_mine = _own_positions(held, start, count)[1]
    X, X_val = dataclasses.replace(X_all, index=mine), dataclasses.replace(X_all, index=held_mine)
    y, y_val = (y_block if mine is None else y_block[mine]), y_block[held_mine]
    del y_block
    scaler = target_scaler = None
    if config.get("standardize"):
        scaler = Scaler.fit(X, comm)  # one streaming pass over the training rows
        X, X_val = X.with_scaler(scaler), X_val.with_scaler(scaler)
    if task == "regression":
        target_scaler = TargetScaler.fit(y, comm)
        y, y_val = target_scaler.transform(y), target_scaler.transform(y_val)
    n_held = 0 if order is None else len(order[1])  # of all processes
    return Prepared(X=X, y=y, X_val=X_val, y_val=y_val, X_test=np.zeros((0, X.shape[1])), y_test=y[:0], task=task,
                    n_classes=max(len(labels.classes), 2) if labels is not None else 0, labels=labels, scaler=scaler,
                    target_scaler=target_scaler, feature_names=feature_names,
                    source=_file_source(path, target, labels), target=target, rows=rows,
                    n_samples=n_rows - n_held, n_val=n_held, n_test=0, mapped=mapped, notes=_notes(path, ext, mapped),
                    task_reason=task_reason, validation_fraction=fraction)


def materialize(prepared: Prepared) -> Prepared:
    """``prepared`` with ``X`` and ``X_val`` as float64 arrays (read, converted and standardized now).

    What :func:`prepare` returns without ``stream`` (training itself reads :class:`HostRows`
    a chunk at a time): the only place where the rows of a mapped file are copied whole (one
    float64 array each for the training and the validation rows, filled a block at a time,
    never a second copy). ``prepared`` is returned as it is when its rows are arrays already.
    """
    X, X_val = prepared.X, prepared.X_val
    if not isinstance(X, HostRows) or not isinstance(X_val, HostRows):
        return prepared
    n, width = X.shape
    memory.require((n + X_val.shape[0]) * width * 8, f"converting {n:,} rows of {prepared.source} to float64")
    return dataclasses.replace(prepared, X=X.materialize(), X_val=X_val.materialize(), mapped=False)


def _notes(path, ext: str, mapped: bool) -> tuple:
    """A note when a large file is held in memory (a CSV, a compressed .npz), with the fix."""
    size = os.stat(path).st_size
    if mapped or size < LARGE_CSV_BYTES:
        return ()
    path = os.fspath(path)
    if ext == ".npz":
        return (f"note: {path!r} ({memory.format_bytes(size)}) is compressed, so it is inflated into memory; for "
                "big data save X and y with np.savez (stored, not np.savez_compressed) or as one .npy: those are "
                "memory-mapped and read a chunk at a time",)
    return (f"note: {path!r} ({memory.format_bytes(size)}) is read into memory, as every CSV is; for big data "
            f"convert it once (`xpnet convert {path} {os.path.splitext(path)[0]}.npy`) and train on the .npy: it "
            "is memory-mapped and read a chunk at a time",)


def _own_positions(order: np.ndarray, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``(positions, rows)``: the positions in ``order`` (file rows) of the rows
    ``[start, start + count)`` that a process holds, ascending, and those rows minus ``start``."""
    positions = np.flatnonzero((order >= start) & (order < start + count))
    return positions, order[positions] - start


def _shared_targets(cells, ext: str, task: str, comm, n_rows: int, where: str) -> tuple:
    """``(task, task_reason, labels, y)``: the task (and why) and the :class:`LabelMap` that one
    process finds in the whole file of ``n_rows`` rows, and this block's targets (class
    indices, or float64 regression targets).

    CSV and NPY cells are typed alike everywhere (:func:`xpnet.data.labels.typed_labels`: words as
    soon as one process has a word, fractional numbers as soon as one has one, so "auto"
    decides as over the whole column); then the sorted distinct labels of every block are
    gathered (a few values per process) and merged: whole numbers with many distinct values
    are a regression (:func:`xpnet.data.labels.task_of`), else a classifier's classes
    (fractional regression targets are not gathered). Numbers are typed, counted
    and encoded :data:`LABEL_BLOCK` at a time, in place in ``cells`` (which this consumes):
    the labels of a big file cost one number per row, not several.
    """
    kinds = comm.allgather(_kind(cells) if ext != ".npz" or cells.dtype.kind in "biuf" else "U")
    kind = "U" if "U" in kinds else "f" if "f" in kinds else "i"
    if ext != ".npz":
        cells = _typed(cells, kind)
    needed = task == "classification" or (task == "auto" and kind != "f")  # a regression's targets: not gathered
    distinct = np.unique(np.concatenate(comm.allgather(_distinct(cells)))) if needed else None
    reason = f"--task {task}"
    if task == "auto":
        task, reason = task_of(kind, 0 if distinct is None else len(distinct), n_rows)
    if task == "regression":
        return task, reason, None, regression_targets(cells, where)
    labels = LabelMap.fit(distinct)
    return task, reason, labels, _encode(labels, cells)


def _kind(cells: np.ndarray) -> str:
    """:func:`xpnet.data.labels._label_kind` of the cells, found a block at a time for numbers."""
    if cells.dtype.kind not in "biuf":
        return _label_kind(_numeric(cells))
    found = {_label_kind(cells[a:b].astype(np.float64)) for a, b in spans(len(cells), LABEL_BLOCK)}
    return "f" if "f" in found else "i"


def _typed(cells: np.ndarray, kind: str) -> np.ndarray:
    """:func:`xpnet.data.labels.typed_labels` of ``cells``; float64 cells become int64 in place."""
    if kind == "U" or cells.dtype != np.float64:
        return typed_labels(cells, kind)
    if kind == "f":
        return cells
    out = cells.view(np.int64)  # the same bytes: each block is converted before it is overwritten
    for a, b in spans(len(cells), LABEL_BLOCK):
        out[a:b] = cells[a:b].astype(np.int64)
    return out


def _distinct(cells: np.ndarray) -> np.ndarray:
    """The sorted distinct labels, found a block at a time."""
    if not len(cells):
        return cells[:0]
    return np.unique(np.concatenate([np.unique(cells[a:b]) for a, b in spans(len(cells), LABEL_BLOCK)]))


def _encode(labels: LabelMap, cells: np.ndarray) -> np.ndarray:
    """``labels.encode(cells)``, vectorised (a binary search in the sorted classes) a block at a
    time; int64 cells are encoded in place."""
    classes = np.asarray(labels.classes)
    out = cells if cells.dtype == np.int64 else np.empty(len(cells), dtype=np.int64)
    for a, b in spans(len(cells), LABEL_BLOCK):
        block = cells[a:b]
        found = np.minimum(np.searchsorted(classes, block), len(classes) - 1)
        if not np.array_equal(classes[found], block):
            labels.encode(block)  # raises, naming the label it does not know
        out[a:b] = found
    return out
