"""The batches of an epoch: all rows at once, or minibatches reshuffled every epoch from the seed."""

from __future__ import annotations

import numpy as np


def epoch_rng(seed: int, stream: int, epoch: int) -> np.random.Generator:
    """The host generator of one epoch's shuffle (stream 1) or dropout masks (stream 2).

    Keyed by the absolute epoch, so a resumed run draws what the uninterrupted one drew.
    """
    return np.random.default_rng((seed, stream, epoch))


class Batches:
    """This process's part of every epoch's batches, as ``(X_batch, T_batch, global size)``.

    The global batches are the ones one process would draw on all ``shard.n_total`` rows
    (a permutation from :func:`epoch_rng` when ``shuffle``, else the rows in order, cut into
    ``batch_size`` pieces); each process keeps the rows of each batch that it holds. Full
    batch (``batch_size`` None or at least the rows) is one batch of all rows, unindexed.
    """

    def __init__(self, shard, backend, X, T, batch_size: int | None, shuffle: bool, seed: int):
        self.shard, self.backend, self.X, self.T = shard, backend, X, T
        self.shuffle, self.seed = shuffle, seed
        n = shard.n_total
        self.size = n if batch_size is None or batch_size >= n else batch_size
        self.full = self.size == n
        self.all = ((X, T, n),)  # the one batch of full-batch training, made once

    def sizes(self) -> set:
        """The global sizes this run's batches have (at most two: the batch size and the remainder)."""
        n = self.shard.n_total
        return {self.size} | ({n % self.size} if n % self.size else set())

    def epoch(self, t: int):
        """The batches of epoch ``t`` (epochs done since the run began, across resumes), one at a
        time: a minibatch's rows are gathered when its turn comes, never a whole epoch's."""
        return self.all if self.full else self._minibatches(t)

    def _minibatches(self, t: int):
        n, size, backend = self.shard.n_total, self.size, self.backend
        order = epoch_rng(self.seed, 1, t).permutation(n) if self.shuffle else np.arange(n)
        take, positions = backend.xp.take, self.shard.positions
        if positions is None:  # one process: slices of one index array on the device
            order = backend.asarray(order)
        for a in range(0, n, size):
            z = min(a + size, n)
            rows = order[a:z] if positions is None else backend.asarray(self.shard.local(order[a:z]))
            yield take(self.X, rows, axis=0), take(self.T, rows, axis=0), z - a
