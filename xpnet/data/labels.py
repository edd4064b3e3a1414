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
