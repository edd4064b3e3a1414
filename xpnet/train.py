"""Full-batch gradient descent: :func:`fit` and its :class:`FitResult`.

    >>> import xpnet
    >>> X, y = xpnet.datasets.load("moons", n_samples=200, noise=0.2, seed=0)
    >>> model = xpnet.MLP([2, 8, 2], backend="numpy", dtype="float64")
    >>> result = xpnet.fit(model, X, y, epochs=300, learning_rate=0.5, log_every=100)
    >>> result.logged_epochs
    [0, 100, 200, 300]

Vocabulary: ``learning_rate`` is Trask's "alpha" and WildML's "epsilon"; ``l2`` is WildML's
``reg_lambda`` (and scikit-learn's ``alpha``). One epoch is one pass over the data, i.e.
one update in full-batch training (a tutorial "iteration").

The library never prints: it returns the history and calls ``callback`` at each logging
point. Checks happen only at logging points, so small problems stay fast: when the loss
or a weight is NaN/Inf, or the loss exceeds ``DIVERGENCE_FACTOR`` (1e6) times its first
logged value, training stops and keeps the weights of the last good check.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from .errors import check_choice, check_positive
from .losses import REDUCTIONS
from .memory import check_fits
from .mlp import MLP, backward, forward


@dataclass
class TrainEvent:
    """What a callback sees at a logging point."""

    epoch: int  # updates done so far: the loss is of the weights after `epoch` updates
    epochs: int  # epochs requested in this fit
    loss: float  # the objective (see xpnet.losses) on the training data
    model: MLP


@dataclass
class FitResult:
    """What :func:`fit` returns.

    ``history[k]`` is the training objective of the weights after ``logged_epochs[k]``
    updates, computed in the forward pass of that epoch (before its update, as Trask logs);
    the last entry is always the final weights, so ``history[-1] == final_loss``.
    """

    history: list = field(default_factory=list)
    logged_epochs: list = field(default_factory=list)
    final_loss: float = math.nan
    epochs: int = 0  # updates actually applied
    backend: str = ""
    device: str = ""
    backend_reason: str = ""
    dtype: str = ""
    seconds: float = 0.0
    diverged: bool = False
    message: str = ""  # why training stopped early, with the fix

    def to_dict(self) -> dict:
        return {
            "backend": self.backend,
            "device": self.device,
            "backend_reason": self.backend_reason,
            "dtype": self.dtype,
            "epochs": self.epochs,
            "final_loss": self.final_loss,
            "seconds": self.seconds,
            "history": list(self.history),
            "logged_epochs": list(self.logged_epochs),
            "diverged": self.diverged,
            "message": self.message,
        }


def fit(model: MLP, X, y, *, epochs: int = 1000, learning_rate: float = 0.1, l2: float = 0.0,
        reduction: str = "mean", log_every: int | None = None, callback=None, comm=None) -> FitResult:
    """Train ``model`` in place by full-batch gradient descent.

    Parameters
    ----------
    model : MLP
    X : array (N, n_inputs)
        NumPy or backend array.
    y : array
        Class labels (N,) for softmax; targets (N,) or (N, n_outputs) otherwise.
    epochs : int
        Number of full-batch updates.
    learning_rate : float
        Step size (Trask's alpha, WildML's epsilon).
    l2 : float
        L2 strength on the weights (WildML's reg_lambda); biases are not penalised.
    reduction : {"mean", "sum"}
        Average the gradient over samples (default) or sum it as the tutorials do.
    log_every : int, optional
        Log the loss every this many epochs (default: about 20 points per run).
    callback : callable, optional
        Called with a :class:`TrainEvent` at every logging point.
    comm : xpnet.distributed.Communicator, optional
        Data-parallel training: ``X, y`` are this process's rows, and every step sums the
        gradients (and, at logging points, the loss) of all processes; see
        :func:`xpnet.distributed.fit`, which also broadcasts and checks the weights.

    Returns
    -------
    FitResult
    """
    check_positive("epochs", epochs, integer=True)
    check_positive("learning_rate", learning_rate)
    if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not (l2 >= 0 and math.isfinite(l2)):
        from .errors import XpnetValueError

        raise XpnetValueError(f"l2={l2!r} must be a finite number >= 0")
    check_choice("reduction", reduction, REDUCTIONS)
    log_every = max(1, epochs // 20) if log_every is None else log_every
    check_positive("log_every", log_every, integer=True)

    X = model.as_inputs(X)
    T = model.as_targets(y, X.shape[0])
    spec, xp, backend = model.spec, model.xp, model.backend
    itemsize = 4 if model.dtype_name == "float32" else 8
    check_fits(backend, model.layer_sizes, X.shape[0], itemsize)
    result = FitResult(backend=backend.name, device=backend.device_name(), backend_reason=backend.reason,
                       dtype=model.dtype_name)
    W, b = list(model.W), (list(model.b) if model.b is not None else None)
    good = (W, b)  # arrays are never updated in place, so references are a snapshot
    start = time.perf_counter()
    epoch = 0
    for epoch in range(epochs + 1):
        Y, cache = forward(spec, xp, W, b, X)
        if epoch % log_every == 0 or epoch == epochs:
            model.W, model.b = W, b
            loss = float(model._objective(cache[1], Y, T, l2, reduction) if comm is None
                         else comm.objective(model, cache[1], Y, T, l2, reduction))
            if _diverging(loss, result.history) or not _all_finite(xp, W, b):
                _diverged(result, model, good, epoch, learning_rate)
                break
            good = (W, b)
            result.history.append(loss)
            result.logged_epochs.append(epoch)
            if callback is not None:
                callback(TrainEvent(epoch, epochs, loss, model))
        if epoch == epochs:
            break
        dW, db = backward(spec, xp, W, cache, Y, T, reduction if comm is None else comm.local_reduction(reduction))
        if comm is not None:  # data-parallel: the gradient of all processes' rows, one Allreduce
            dW, db = comm.allreduce_gradients(backend, dW, db, reduction, X.shape[0])
        W = [Wi - learning_rate * (g + l2 * Wi if l2 else g) for Wi, g in zip(W, dW)]
        if b is not None:
            b = [bi - learning_rate * g for bi, g in zip(b, db)]
    backend.sync()
    result.seconds = time.perf_counter() - start
    if not result.diverged:
        model.W, model.b = W, b
        result.epochs = epochs
    result.final_loss = result.history[-1] if result.history else math.nan
    return result


DIVERGENCE_FACTOR = 1e6  # a loss this many times its first logged value counts as diverged


def _diverging(loss: float, history: list) -> bool:
    """NaN/Inf loss, or a loss that exploded past DIVERGENCE_FACTOR x its starting value."""
    return not math.isfinite(loss) or bool(history) and loss > DIVERGENCE_FACTOR * max(history[0], 1e-12)


def _all_finite(xp, W, b) -> bool:
    params = W + (b or [])
    return all(bool(xp.all(xp.isfinite(p))) for p in params)


def _diverged(result: FitResult, model: MLP, good, epoch: int, learning_rate: float) -> None:
    model.W, model.b = good
    result.diverged = True
    result.epochs = result.logged_epochs[-1] if result.logged_epochs else 0
    result.message = (
        f"training diverged at epoch {epoch} (the loss or the weights blew up); kept the weights "
        f"of epoch {result.epochs}, the last finite check; try a smaller learning rate than {learning_rate:g}"
    )
