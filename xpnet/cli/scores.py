"""Scores of a model over every process's rows: accuracy, mean loss, R^2, RMSE and MAE.

With --distributed each process holds its own rows; the sums behind each score are added
over the processes in a small reduction, so every process gets the scores of all rows.
"""

from __future__ import annotations

import numpy as np

from .. import metrics
from ..backend import to_numpy


def accuracy(comm, model, X, y) -> float:
    """The fraction of every process's rows ``model`` classifies correctly (hits and count summed)."""
    if comm is None or comm.size == 1:
        return model.accuracy(X, y)
    hits = round(model.accuracy(X, y) * X.shape[0]) if X.shape[0] else 0
    total, n = comm.sum_floats([hits, X.shape[0]])
    return total / n


def mean_loss(comm, model, X, y) -> float:
    """The mean data loss (no L2) over every process's rows ``X, y``: what early stopping watches."""
    n = X.shape[0]
    local = model.loss(X, y) * n if n else 0.0
    if comm is None:
        return local / n
    total, count = comm.sum_floats([local, n])
    return total / count


def in_units(values, scaling):
    """Standardized targets or predictions (N,) or (N, K) back in the targets' own units (N, K)."""
    values = np.asarray(values, dtype=np.float64)
    values = values.reshape(values.shape[0], -1)
    return values if scaling is None else values * scaling[1] + scaling[0]


def regression_scores(comm, model, X, y, scaling) -> dict:
    """R^2, RMSE and MAE in the targets' units over every process's rows (sums in two gathers)."""
    true = in_units(y, scaling)
    pred = in_units(to_numpy(model.predict(X)), scaling) if X.shape[0] else np.zeros_like(true)
    if comm is None or comm.size == 1:
        return {"r2": metrics.r2(true, pred), "rmse": metrics.rmse(true, pred), "mae": metrics.mae(true, pred)}
    k = true.shape[1]
    n, *sums = comm.sum_floats([true.shape[0], *np.sum(true, axis=0)])
    mean = np.asarray(sums) / n
    parts = comm.sum_floats([*np.sum((true - pred) ** 2, axis=0), *np.sum((true - mean) ** 2, axis=0),
                             *np.sum(np.abs(true - pred), axis=0)])
    residual, total, absolute = (np.asarray(parts[i * k:(i + 1) * k]) for i in range(3))
    r2 = np.where(total != 0, 1 - residual / np.where(total != 0, total, 1), np.where(residual == 0, 1.0, 0.0))
    return {"r2": float(np.mean(r2)), "rmse": float(np.mean(np.sqrt(residual / n))),
            "mae": float(np.mean(absolute / n))}


def measure(comm, model, X, y, task: str, scaling) -> dict:
    """Scores of ``model`` on rows ``X, y`` of every process: ``accuracy`` or ``r2``/``rmse``/``mae``,
    and ``loss`` (the mean data loss, no L2)."""
    scores = {"accuracy": accuracy(comm, model, X, y)} if task == "classification" \
        else regression_scores(comm, model, X, y, scaling)
    return {**scores, "loss": mean_loss(comm, model, X, y)}


def scores(comm, model, prepared, task: str, scaling) -> dict:
    """``{"training": {...}, "validation": {...}, "test": {...}}`` over all processes' rows; the
    held-out sets only when they have rows (validation: may steer training; test: only reported)."""
    scores = {"training": measure(comm, model, prepared.X, prepared.y, task, scaling)}
    for name, X, y, n in (("validation", prepared.X_val, prepared.y_val, prepared.n_val),
                          ("test", prepared.X_test, prepared.y_test, prepared.n_test)):
        if n:
            scores[name] = {**measure(comm, model, X, y, task, scaling), "samples": int(n)}
    return scores


def majority_share(comm, y, n_classes: int) -> tuple[int, float]:
    """``(class, share)``: the most common class of every process's labels ``y`` and its share of the rows."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes).astype(np.float64)
    if comm is not None:
        counts = np.asarray(comm.sum_floats(counts))
    k = int(np.argmax(counts))
    return k, float(counts[k] / max(counts.sum(), 1.0))


def column_ranges(comm, X) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)``: each column's smallest and largest value over every process's rows ``X``."""
    X = np.asarray(X, dtype=np.float64)
    width = X.shape[1]
    low = X.min(axis=0) if X.shape[0] else np.full(width, np.inf)
    high = X.max(axis=0) if X.shape[0] else np.full(width, -np.inf)
    if comm is not None:
        parts = comm.allgather((low.tolist(), high.tolist()))
        low = np.min([p[0] for p in parts], axis=0)
        high = np.max([p[1] for p in parts], axis=0)
    return low, high
