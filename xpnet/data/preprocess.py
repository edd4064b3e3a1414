"""Preprocessing on the host: standardization of features and targets, held-out splits.

Everything here streams: the statistics are gathered a block of rows at a time
(:class:`Moments`), so fitting a :class:`Scaler` on a memory-mapped file (or on
:class:`~xpnet.data.rows.HostRows`, rows picked by index) never copies or converts it
whole, and a split is arrays of row numbers (:func:`split_order`), not copies of ``X``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import Interval, XpnetValueError
from .rows import HostRows

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

        ``X`` is any 2-D array of real numbers (a memory map too) or a
        :class:`~xpnet.data.rows.HostRows`: it is read in one streaming pass, a block of rows
        at a time converted to float64 (:meth:`Moments.of`), never converted whole. On
        rows that fit in one block the statistics are NumPy's ``X.mean(axis=0)`` and
        ``X.std(axis=0)`` bit for bit; on more, they equal them up to rounding.

        Over processes, each process's count, mean and sum of squared deviations are
        combined with two small float64 ``Allreduce`` calls (:meth:`Moments.over`); the
        statistics equal one process's up to rounding.
        """
        moments = Moments.of(X)
        if comm is not None and comm.size > 1:
            moments = moments.over(comm)
        mean, std = moments.mean, np.sqrt(moments.variance)
        return cls(mean, np.where(std > CONSTANT * np.abs(mean), std, 1.0))

    def transform(self, X, *, copy: bool = True) -> np.ndarray:
        """``(X - mean) / scale`` as float64: a new array, or ``X`` itself standardized in place when
        ``copy`` is False and ``X`` is a writable float64 array (a chunk just read: no second buffer)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.mean.shape[0]:
            raise XpnetValueError(f"X has shape {X.shape}; the model was trained on {self.mean.shape[0]} features")
        if copy or not X.flags.writeable:
            Z = X - self.mean
        else:
            Z = X
            Z -= self.mean
        Z /= self.scale  # in place: one array of X's size, not two
        return Z


@dataclass
class Moments:
    """Per-feature count, mean and sum of squared deviations (``m2``) of rows seen so far.

    Blocks are merged with Chan, Golub and LeVeque's pairwise update, which keeps the
    accuracy of a two-pass computation: ``delta = mean_b - mean_a``,
    ``mean = mean_a + delta * n_b / n``, ``m2 = m2_a + m2_b + delta**2 * n_a * n_b / n``.
    """

    n: int
    mean: np.ndarray  # (F,) float64
    m2: np.ndarray  # (F,) float64: sum over the rows of (x - mean)**2

    @property
    def variance(self) -> np.ndarray:
        """The population variance ``m2 / n`` (NaN without rows)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.m2 / self.n

    @classmethod
    def of(cls, X, block: int | None = None) -> Moments:
        """The moments of the rows of ``X`` (2-D array or :class:`~xpnet.data.rows.HostRows`),
        ``block`` rows (default :func:`~xpnet.data.rows.block_rows`) converted to float64 at a time.

        Rows picked by index are visited in the order of the array they come from
        (:meth:`~xpnet.data.rows.HostRows.unordered_blocks`: a memory map read front to back),
        so the result does not depend on the order of the index (but for rounding)."""
        rows = X if isinstance(X, HostRows) else HostRows(_two_dimensional(X))
        width = rows.shape[1]
        total = cls(0, np.zeros(width), np.zeros(width))
        for D in rows.unordered_blocks(block):
            D = np.ascontiguousarray(D)
            mean = np.sum(D, axis=0) / D.shape[0]  # what X.mean(axis=0) computes (on C-ordered rows)
            D = D - mean if np.may_share_memory(D, rows.data) else _subtract(D, mean)
            D *= D
            total = total.merge(cls(D.shape[0], mean, np.sum(D, axis=0)))
            del D  # one block alive at a time
        if not total.n:
            total.mean[:] = np.nan
        return total

    def merge(self, other: Moments) -> Moments:
        """The moments of both sets of rows."""
        if not other.n:
            return self
        if not self.n:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        m2 = self.m2 + other.m2 + delta * delta * (self.n * other.n / n)
        return Moments(n, self.mean + delta * (other.n / n), m2)

    def over(self, comm) -> Moments:
        """The moments of every process's rows: two float64 ``Allreduce`` calls of ``1 + F``
        and ``F`` numbers (the counts and weighted means give the mean, then each process's
        ``m2`` plus ``n * (its mean - mean)**2`` add up to the whole ``m2``)."""
        mine = self.mean if self.n else np.zeros_like(self.mean)
        n, *sums = comm.sum_floats([self.n, *(mine * self.n)])
        mean = np.asarray(sums) / n if n else np.full_like(mine, np.nan)
        spread = self.m2 + self.n * (mine - mean) ** 2 if self.n else np.zeros_like(mine)
        return Moments(int(n), mean, np.asarray(comm.sum_floats(spread)))


def _subtract(D: np.ndarray, mean: np.ndarray) -> np.ndarray:
    D -= mean  # a block read for this pass: its own buffer holds the deviations
    return D


def _two_dimensional(X) -> np.ndarray:
    X = X if isinstance(X, np.ndarray) else np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise XpnetValueError(f"X has shape {X.shape}; expected (n_samples, n_features)")
    return X


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
