"""Preprocessing on the host: standardization of features and targets, held-out splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import Interval, XpnetValueError

CONSTANT = 64 * np.finfo(np.float64).eps  # a feature whose std is below this times |mean| is constant


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


@dataclass
class TargetScaler:
    """Standardization of a regression target: ``z = (y - mean) / scale``, and back.

    A model trains on ``z``; :meth:`inverse_transform` puts its predictions back in the
    target's own units (for reports: RMSE, MAE in those units). A constant target keeps
    scale 1, as :class:`Scaler`'s constant features do.
    """

    mean: float
    scale: float

    @classmethod
    def fit(cls, y, comm=None) -> TargetScaler:
        """Fit on the targets ``y`` (N,); with a communicator, on all processes' rows (see :meth:`Scaler.fit`)."""
        fitted = Scaler.fit(np.reshape(np.asarray(y, dtype=np.float64), (-1, 1)), comm)
        return cls(float(fitted.mean[0]), float(fitted.scale[0]))

    def transform(self, y) -> np.ndarray:
        """Targets (N,) in their own units -> standardized float64 (N,)."""
        return (np.asarray(y, dtype=np.float64) - self.mean) / self.scale

    def inverse_transform(self, z) -> np.ndarray:
        """Standardized values (e.g. predictions) -> the target's own units, float64."""
        return np.asarray(z, dtype=np.float64) * self.scale + self.mean


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
    Interval(0, 1, "left").check("--validation-fraction", fraction, "e.g. 0.2")
    n_held = int(round(n * fraction))
    if fraction and (n_held < 1 or n - n_held < 1):
        raise XpnetValueError(f"--validation-fraction {fraction} of {n} samples leaves an empty part; "
                              f"use more data or a fraction between {1 / n:.3g} and {1 - 1 / n:.3g}")
    if not n_held:
        return None
    order = np.random.default_rng(seed).permutation(n)
    return order[n_held:], order[:n_held]
