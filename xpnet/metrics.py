"""Scores of predictions, as people expect them from scikit-learn: pure NumPy, host arrays.

    >>> from xpnet import metrics
    >>> metrics.accuracy([0, 1, 1, 2], [0, 1, 2, 2])
    0.75
    >>> metrics.confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2]).tolist()
    [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    >>> metrics.r2([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    0.5

Classification scores take class indices 0..C-1 (``n_classes`` says C when some class
appears in neither array). A precision or recall whose denominator is 0 (a class never
predicted, or absent from the truth) is 0, as scikit-learn's ``zero_division=0`` gives.
Regression scores of (N, K) targets are the mean over the K outputs of each output's
score (scikit-learn's ``multioutput="uniform_average"``).
"""

from __future__ import annotations

import numpy as np

from .errors import XpnetValueError

__all__ = ["accuracy", "confusion_matrix", "precision_recall_f1", "r2", "rmse", "mae"]


def _pair(y_true, y_pred, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as NumPy, checked to have the same shape (1-D for labels, 1-D or 2-D for values)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise XpnetValueError(f"y_true has shape {y_true.shape} and y_pred {y_pred.shape}; they must match")
    if kind == "labels" and y_true.ndim != 1:
        raise XpnetValueError(f"class labels must be one column (N,), got shape {y_true.shape}")
    if kind == "values" and y_true.ndim not in (1, 2):
        raise XpnetValueError(f"targets must be (N,) or (N, K), got shape {y_true.shape}")
    if y_true.shape[0] == 0:
        raise XpnetValueError("no samples to score")
    return y_true, y_pred


def _labels(y_true, y_pred, n_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    y_true, y_pred = _pair(y_true, y_pred, "labels")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.dtype.kind not in "iu" or y.min() < 0:
            raise XpnetValueError(f"{name} must hold class indices 0..C-1 (whole numbers >= 0)")
    largest = int(max(y_true.max(), y_pred.max())) + 1
    n_classes = largest if n_classes is None else int(n_classes)
    if n_classes < largest:
        raise XpnetValueError(f"n_classes={n_classes} but the labels go up to {largest - 1}")
    return y_true.astype(np.int64), y_pred.astype(np.int64), n_classes


def accuracy(y_true, y_pred) -> float:
    """Fraction of samples whose prediction equals the truth: ``mean(y_true == y_pred)``."""
    y_true, y_pred = _pair(y_true, y_pred, "labels")
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """(C, C) int64 counts: ``M[i, j]`` samples of true class ``i`` predicted as ``j``."""
    y_true, y_pred, n_classes = _labels(y_true, y_pred, n_classes)
    counts = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def precision_recall_f1(y_true, y_pred, n_classes: int | None = None) -> dict[str, np.ndarray]:
    """Per-class scores, each an array (C,).

    ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``,
    ``f1 = 2 * precision * recall / (precision + recall)`` (0 where a denominator is 0),
    ``support`` = true samples of the class (int64).
    """
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    hits = np.diag(matrix).astype(np.float64)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = _ratio(hits, predicted)
    recall = _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, 0 where the denominator is 0."""
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(denominator), where=denominator != 0)


def _values(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _pair(y_true, y_pred, "values")
    y_true, y_pred = y_true.astype(np.float64), y_pred.astype(np.float64)
    if y_true.ndim == 1:
        y_true, y_pred = y_true[:, None], y_pred[:, None]
    return y_true, y_pred


def r2(y_true, y_pred) -> float:
    """Coefficient of determination ``1 - sum((y - p)^2) / sum((y - mean(y))^2)``.

    1 is a perfect fit, 0 is as good as predicting the mean, and it can be negative. A
    constant target scores 1 when predicted exactly and 0 otherwise (scikit-learn's
    ``force_finite=True``).
    """
    y_true, y_pred = _values(y_true, y_pred)
    residual = np.sum((y_true - y_pred) ** 2, axis=0)
    total = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    exact = np.where(residual == 0, 1.0, 0.0)
    scores = np.divide(residual, total, out=np.ones_like(total), where=total != 0)
    return float(np.mean(np.where(total != 0, 1.0 - scores, exact)))


def rmse(y_true, y_pred) -> float:
    """Root mean squared error ``sqrt(mean((y - p)^2))``, in the targets' units."""
    y_true, y_pred = _values(y_true, y_pred)
    return float(np.mean(np.sqrt(np.mean((y_true - y_pred) ** 2, axis=0))))


def mae(y_true, y_pred) -> float:
    """Mean absolute error ``mean(|y - p|)``, in the targets' units."""
    y_true, y_pred = _values(y_true, y_pred)
    return float(np.mean(np.mean(np.abs(y_true - y_pred), axis=0)))
