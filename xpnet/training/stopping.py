"""When training stops early, and with which weights: early stopping and scikit-learn's stall rule.

:class:`EarlyStopping` watches the validation loss with a patience (xpnet's rule, restoring
the best weights); :class:`Stall` watches the epoch's training loss or a validation score
with a tolerance (scikit-learn's rule). Both give their state as named arrays, so a
checkpointed run continues exactly (:func:`xpnet.fit`'s ``optimizer_state``).
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import to_numpy
from ..core import layers


class EarlyStopping:
    """Tracks the validation loss; remembers the best weights; says when to stop."""

    def __init__(self, patience: int, X_val, T_val, comm, spec=None):
        self.patience, self.X_val, self.T_val, self.comm, self.spec = patience, X_val, T_val, comm, spec
        self.history: list = []
        self.best, self.best_epoch, self.best_state, self.last = math.inf, 0, None, None

    def update(self, epoch: int, model) -> bool:
        """Record the validation loss after ``epoch`` epochs; True when patience has run out."""
        summed = model.summed_loss(self.X_val, self.T_val, (self.spec or model.spec).loss)
        total, n = self.comm.sum_floats([float(summed), self.X_val.shape[0]])
        loss = total / n
        self.history.append(loss)
        if self.best_state is None or loss < self.best:
            self.best, self.best_epoch, self.best_state = loss, epoch, snapshot(model)
        return epoch - self.best_epoch >= self.patience

    def finish(self, result, model, restore_best: bool = True) -> None:
        """Report the validation losses and the best epoch; restore the best weights into ``model``
        (remembering the last ones: a later fit continues from them, see :meth:`load_state`)."""
        if restore_best:
            self.last = snapshot(model)
            restore(model, self.best_state)
        result.validation_history = list(self.history)
        result.best_epoch = self.best_epoch

    def state(self, model) -> dict:
        """What :meth:`load_state` needs to continue exactly, by name: the best loss, its epoch
        and its weights, and, once they were restored, the weights of the last epoch."""
        if self.best_state is None:
            return {}
        out = {"early_stopping_loss": np.asarray(self.best, dtype=np.float64),  # checkpoints hold floats
               "early_stopping_epoch": np.asarray(self.best_epoch, dtype=np.float64)}
        out.update(named("early_stopping_best", self.best_state))
        if self.last is not None:
            out.update(named("early_stopping_last", self.last))
        return out

    def load_state(self, state: dict, model) -> None:
        """Continue from :meth:`state`: the model starts from the last epoch's weights when the
        earlier run ended on its best ones."""
        if "early_stopping_loss" not in state:
            return
        self.best = float(to_numpy(state["early_stopping_loss"]))
        self.best_epoch = int(to_numpy(state["early_stopping_epoch"]))
        self.best_state = unnamed("early_stopping_best", state, model)
        if "early_stopping_last_0" in state:
            restore(model, unnamed("early_stopping_last", state, model))


def named(prefix: str, snapshot) -> dict:
    """A snapshot's arrays as ``<prefix>_<i>`` in :meth:`MLP.parameters` order; batch norm's running
    statistics as ``<prefix>_mean_<i>`` / ``_var_<i>``, indexed like the scales whose shapes they have."""
    params, bn = snapshot
    out = {f"{prefix}_{i}": p for i, p in enumerate(params)}
    if bn is not None:
        first = len(params) - 2 * len(bn.gamma)
        out.update({f"{prefix}_mean_{first + j}": m for j, m in enumerate(bn.mean)})
        out.update({f"{prefix}_var_{first + j}": v for j, v in enumerate(bn.var)})
    return out


def unnamed(prefix: str, state: dict, model):
    """The snapshot :func:`named` wrote, on ``model``'s backend."""
    backend, n = model.backend, len(model.parameters())

    def get(name):
        return backend.asarray(to_numpy(state[name]), model.dtype)

    params = [get(f"{prefix}_{i}") for i in range(n)]
    bn = model.bn
    if bn is not None:
        first = n - 2 * len(bn.gamma)
        k = range(first, first + len(bn.gamma))
        bn = layers.BatchNorm(tuple(params[first:first + len(k)]), tuple(params[first + len(k):]),
                              tuple(get(f"{prefix}_mean_{j}") for j in k), tuple(get(f"{prefix}_var_{j}") for j in k))
    return params, bn


class Stall:
    """scikit-learn's stall rule, on the epoch's training loss (lower is better) or on a validation
    score (higher is better): an epoch that does not beat the best by ``tol`` counts, an epoch
    that does resets the count, and more than ``n_iter_no_change`` in a row is a stall."""

    def __init__(self, tol: float, n_iter_no_change: float, score=None):
        self.tol, self.limit, self.score = tol, n_iter_no_change, score
        self.sign = -1.0 if score is not None else 1.0  # compare as "lower is better"
        self.best, self.stale, self.stalled, self.done = math.inf, 0, False, False

    @property
    def best_value(self) -> float:
        return self.sign * self.best

    def state(self) -> dict:
        """The best value so far and the count of epochs without progress (to continue exactly)."""
        return {"stall_best": np.asarray(self.best, dtype=np.float64),  # checkpoints hold floats
                "stall_stale": np.asarray(self.stale, dtype=np.float64)}

    def load_state(self, state: dict) -> None:
        self.best = float(to_numpy(state["stall_best"]))
        self.stale = int(to_numpy(state.get("stall_stale", 0)))

    def update(self, value: float) -> bool:
        """Count ``value`` (sets :attr:`stalled`); True when it is the best so far."""
        v = self.sign * value
        self.stale = self.stale + 1 if not v < self.best - self.tol else 0
        improved = v < self.best
        self.best = min(self.best, v)
        self.stalled = self.stale > self.limit
        return improved


def snapshot(model):
    """The model's trained arrays and batch-norm state (references: arrays are never updated in place)."""
    return model.parameters(), model.bn


def restore(model, snapshot) -> None:
    params, model.bn = snapshot
    model.set_parameters(params)
