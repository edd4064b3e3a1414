"""Class labels and tasks: typing label cells, guessing the task, mapping labels to 0..C-1."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import XpnetValueError, check_choice

TASKS = ("classification", "regression")


def _is_number(text) -> bool:
    """Whether ``text`` is a number as NumPy's parser reads one (Python's ``float`` without ``_``)."""
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return "_" not in text


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


# The task guessed from whole-number targets: more distinct values than MANY_VALUES, and more
# than one per ROWS_PER_VALUE rows, read as a regression (a count, a price in whole units, a
# score such as scikit-learn's diabetes progression); fewer are class labels (digits, ratings).
MANY_VALUES = 20
ROWS_PER_VALUE = 20


def infer_task(y) -> str:
    """``"regression"`` or ``"classification"``: what :func:`explain_task` decides for the target ``y``."""
    return explain_task(y)[0]


def explain_task(y) -> tuple[str, str]:
    """``(task, reason)`` for the target column ``y`` (as :func:`load_file` returns it).

    Words are class labels; numbers that are not all whole are a regression target; whole
    numbers are class labels unless there are many distinct values for the rows (see
    :func:`task_of`). ``reason`` is one sentence saying which rule decided.
    """
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        return task_of("U", 0, y.size)
    kind = _label_kind(y.astype(np.float64))
    return task_of(kind, int(np.unique(y).size) if kind == "i" else 0, y.size)


def task_of(kind: str, n_values: int, n_rows: int) -> tuple[str, str]:
    """``(task, reason)`` for target cells of kind ``kind`` (:func:`_label_kind`: ``"U"`` words,
    ``"f"`` fractional numbers, ``"i"`` whole numbers) holding ``n_values`` distinct values in
    ``n_rows`` rows. Whole numbers are a regression when there are more than
    :data:`MANY_VALUES` distinct values and more than one per :data:`ROWS_PER_VALUE` rows."""
    if kind == "U":
        return "classification", "the target holds words: class labels"
    if kind == "f":
        return "regression", "the target holds fractional numbers: a regression"
    if n_values > MANY_VALUES and n_values * ROWS_PER_VALUE > n_rows:
        return "regression", (f"the target holds {n_values} distinct whole numbers in {n_rows} rows (more than "
                              f"{MANY_VALUES}, and more than one per {ROWS_PER_VALUE} rows): a regression; "
                              "--task classification reads them as classes")
    return "classification", f"the target holds {n_values} distinct whole numbers: class labels"


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
