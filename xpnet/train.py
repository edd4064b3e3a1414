"""Gradient descent, full batch or minibatch: :func:`fit` and its :class:`FitResult`.

    >>> import xpnet
    >>> X, y = xpnet.datasets.load("moons", n_samples=200, noise=0.2, seed=0)
    >>> model = xpnet.MLP([2, 8, 2], backend="numpy", dtype="float64")
    >>> result = xpnet.fit(model, X, y, epochs=300, learning_rate=0.5, log_every=100)
    >>> result.logged_epochs
    [0, 100, 200, 300]

Full-batch training without dropout or batch norm runs through the backend's
:class:`xpnet.ops.Ops` (on NumPy: row chunks of about 1 MiB of activations on all
cores, gradients accumulated; up to 256 rows it is the tutorials' plain pass, operation
for operation), so memory is bounded by the chunk, not by N x width.

Vocabulary: ``learning_rate`` is Trask's "alpha" and WildML's "epsilon"; ``l2`` is WildML's
``reg_lambda`` (and scikit-learn's ``alpha``). One epoch is one pass over the data, i.e.
one update in full-batch training (a tutorial "iteration").

The library never prints: it returns the history and calls ``callback`` at each logging
point. Checks happen only at logging points, so small problems stay fast: when the loss
or a weight is NaN/Inf, or the loss exceeds ``DIVERGENCE_FACTOR`` (1e6) times its first
logged value, training stops and keeps the weights of the last good check.

NumPy runs with overflow warnings off inside :func:`fit` (callbacks see the caller's
setting), so the sigmoid is the tutorials' own formula, an overflowing ``exp`` giving the
exact 0 it gives there (see :class:`xpnet.activations.overflow_quiet`).

Ctrl-C (SIGINT) during :func:`fit` in the main thread does not tear a step in half: the
current epoch finishes, training stops, and the result says ``interrupted=True`` with the
weights of the last complete epoch (a second Ctrl-C interrupts at once). In data-parallel
training the flag travels in every step's gradient buffer, so all processes stop after
the same epoch (see :mod:`xpnet.distributed`).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from . import layers, losses, optim
from .activations import overflow_quiet
from .errors import XpnetTypeError, XpnetValueError, check_choice, check_positive
from .losses import REDUCTIONS
from .memory import check_fits, out_of_memory
from .mlp import MLP, backward, forward, l2_penalty
from .ops import LANES, get_ops


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
    epochs, computed before that epoch's updates (as Trask logs; in plain full-batch
    training it is that epoch's own forward pass, otherwise a separate inference pass:
    no dropout, running batch-norm statistics). The last entry is the weights training
    ended with, so ``history[-1] == final_loss`` -- except with early stopping, where
    ``final_loss`` is the objective of the restored best weights (``best_epoch``).
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
    validation_history: list = field(default_factory=list)  # early stopping: validation loss after each epoch
    best_epoch: int | None = None  # early stopping: epochs done by the restored weights
    stopped_early: bool = False  # early stopping: patience ran out before `epochs`
    interrupted: bool = False  # Ctrl-C stopped training after a complete epoch
    optimizer_state: dict = field(default_factory=dict, repr=False)  # momentum velocity: pass back to resume

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
            "validation_history": list(self.validation_history),
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "interrupted": self.interrupted,
        }


def fit(model: MLP, X, y, *, epochs: int = 1000, learning_rate: float = 0.1, l2: float = 0.0,
        reduction: str = "mean", log_every: int | None = None, callback=None, batch_size: int | None = None,
        shuffle: bool = True, momentum: float = 0.0, nesterov: bool = False, schedule="constant",
        clip_value: float | None = None, clip_norm: float | None = None, early_stopping: bool = False,
        validation_fraction: float = 0.1, patience: int = 10, seed: int | None = None,
        optimizer_state: dict | None = None, validation_data=None, initial_epoch: int = 0, comm=None,
        global_rows=None) -> FitResult:
    """Train ``model`` in place by gradient descent: full batch or minibatches.

    With the defaults this is the tutorials' full-batch gradient descent, operation for
    operation. See :mod:`xpnet.optim` for the update rule and the schedules.

    Parameters
    ----------
    model : MLP
        Its ``dropout`` and ``batch_norm`` options apply in training (see :mod:`xpnet.layers`).
    X : array (N, n_inputs)
        NumPy or backend array.
    y : array
        Class labels (N,) for softmax; targets (N,) or (N, n_outputs) otherwise.
    epochs : int
        Passes over the data (in full-batch training: updates).
    learning_rate : float
        Step size (Trask's alpha, WildML's epsilon); the base rate of ``schedule``.
    l2 : float
        L2 strength on the weights (WildML's reg_lambda); biases are not penalised. With
        ``reduction="sum"`` a minibatch of B of N samples gets ``l2 * B / N``, so one epoch
        applies the penalty of one full-batch step.
    reduction : {"mean", "sum"}
        Average the gradient over the samples of a batch (default) or sum it as the tutorials do.
    log_every : int, optional
        Log the loss every this many epochs (default: about 20 points per run).
    callback : callable, optional
        Called with a :class:`TrainEvent` at every logging point.
    batch_size : int, optional
        Samples per update; None (default) or >= N is full batch. The rows are reshuffled
        every epoch (``shuffle``) from ``seed`` on the host; the last batch may be smaller.
    shuffle : bool, default True
        Reshuffle the rows every epoch (minibatch only).
    momentum : float in [0, 1), default 0
    nesterov : bool, default False
        Nesterov momentum (needs ``momentum > 0``).
    schedule : str or xpnet.optim.Schedule, default "constant"
        ``"constant"``, ``"annealing"``, ``"step"``, ``"cosine"``, or a Schedule with parameters.
    clip_value, clip_norm : float, optional
        Clip each gradient entry to [-clip_value, clip_value]; rescale all gradients to
        global norm <= clip_norm.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the rows; stop when the validation loss (mean
        data loss, no L2) has not improved for ``patience`` epochs; restore the best weights.
    validation_fraction : float in (0, 1), default 0.1
    patience : int, default 10
    seed : int, optional
        Seeds shuffling, dropout masks and the validation split (default: the model's seed).
    validation_data : (X_val, y_val), optional
        With ``early_stopping``: the held-out set to watch, instead of splitting off
        ``validation_fraction`` of ``X``.
    initial_epoch : int, default 0
        Epochs already done by an earlier run that this fit continues (checkpoint resume):
        the schedule, the shuffling and the dropout masks carry on from there, so a resumed
        run equals an uninterrupted one. ``epochs`` still counts the epochs of this call.
    optimizer_state : dict, optional
        ``FitResult.optimizer_state`` of an earlier fit (momentum velocity), to continue
        exactly where it stopped (checkpoint resume).
    comm : xpnet.distributed.Communicator, optional
        Data-parallel training: ``X, y`` are this process's rows (e.g. ``comm.rows``; any
        number, even none, while other processes hold rows) and ``validation_data`` its
        rows of the held-out set; each update sums the gradients of all processes' rows of
        the (global) batch, and the logged and validation losses cover all rows. See
        :func:`xpnet.distributed.fit`, which also broadcasts and checks the weights.
    global_rows : array of int (N_local,), optional
        With ``comm``: the positions of this process's rows in the global row order
        (increasing); default: contiguous blocks in rank order. See
        :meth:`xpnet.distributed.Communicator.setup`.

    Returns
    -------
    FitResult
    """
    _check_options(epochs, learning_rate, l2, reduction, batch_size, shuffle, early_stopping,
                   validation_fraction, patience, seed, initial_epoch)
    log_every = max(1, epochs // 20) if log_every is None else log_every
    check_positive("log_every", log_every, integer=True)
    optimizer = optim.SGD(model.xp, len(model.W), l2=l2, momentum=momentum, nesterov=nesterov,
                          clip_value=clip_value, clip_norm=clip_norm)
    schedule = optim.get_schedule(schedule)
    if optimizer_state:
        optimizer.load_state(optimizer_state, model.backend)

    shared = comm is not None and comm.size > 1  # other processes hold rows too: this one may hold none
    X = model.as_inputs(X, allow_empty=shared)
    T = model.as_targets(y, X.shape[0])
    interrupt = _Interrupt()
    n_total = X.shape[0] if comm is None else comm.setup(model, X.shape[0], early_stopping and validation_data is None,
                                                         global_rows, interrupt)
    seed = model.seed if seed is None else seed
    split_rng = np.random.default_rng((seed, 0))
    stopper = None
    if early_stopping and validation_data is not None:
        X_val = model.as_inputs(validation_data[0], allow_empty=shared)
        T_val = model.as_targets(validation_data[1], X_val.shape[0])
        stopper = _EarlyStopping(patience, X_val, T_val, comm)
    elif early_stopping:
        X, T, X_val, T_val = _split(model, X, T, validation_fraction, split_rng)
        stopper = _EarlyStopping(patience, X_val, T_val)
    plain = (batch_size is None or batch_size >= n_total) and not model.spec.dropout and model.bn is None
    backend = model.backend
    itemsize = 4 if model.dtype_name == "float32" else 8
    # the plain pass holds the activations of at most LANES chunks at once (see xpnet.ops)
    rows = LANES * get_ops(backend).chunk_rows(model.layer_sizes, itemsize) if plain else (batch_size or X.shape[0])
    check_fits(backend, model.layer_sizes, X.shape[0], itemsize, rows)
    result = FitResult(backend=backend.name, device=backend.device_name(), backend_reason=backend.reason,
                       dtype=model.dtype_name)
    full = comm is None and (batch_size is None or batch_size >= X.shape[0])  # one batch of all rows, unindexed
    # plain full batch in one process (the tutorials): an epoch is one gradient pass and one
    # update, with everything else looked up once here (tiny problems spend their time per call)
    quick = full and plain
    gradients, spec, constant = get_ops(backend).gradients, model.spec, schedule.name == "constant"
    good = _snapshot(model)  # arrays are never updated in place, so references are a snapshot
    start = time.perf_counter()
    try:
        with _deferred_interrupt(interrupt), overflow_quiet() as quiet:
            for epoch in range(epochs + 1):
                stop = (stopper is not None and stopper.update(epoch, model)) or epoch == epochs \
                    or _interrupted(interrupt, comm)
                first = None
                if stop or epoch % log_every == 0:
                    loss, first = _evaluate(model, X, T, l2, reduction, plain, comm)
                    if _diverging(loss, result.history) or not _all_finite(model):
                        _diverged(result, model, good, epoch, learning_rate)
                        break
                    good = _snapshot(model)
                    result.history.append(loss)
                    result.logged_epochs.append(epoch)
                    if callback is not None:
                        with quiet.outside():  # the caller's NumPy error state
                            callback(TrainEvent(epoch, epochs, loss, model))
                if stop:
                    result.interrupted = _interrupted(interrupt, comm)
                    break
                t = initial_epoch + epoch  # epochs done since the run began, across resumes
                rate = learning_rate if constant else schedule.rate(learning_rate, t, initial_epoch + epochs)
                if quick:  # what _run_epoch does for one batch of all rows, without its lookups
                    grads = first or _flat(gradients(spec, model.W, model.b, X, T, reduction))
                    model.set_parameters(optimizer.step(model.parameters(), grads, rate))
                else:
                    batches = [None] if full else \
                        _batches(backend, X.shape[0], batch_size, shuffle, lambda: _epoch_rng(seed, 1, t)) \
                        if comm is None else comm.batches(backend, batch_size, shuffle, _epoch_rng(seed, 1, t))
                    masks_rng = _epoch_rng(seed, 2, t) if spec.dropout else None  # only made when used
                    _run_epoch(model, optimizer, X, T, rate, reduction, batches, masks_rng, first, comm)
                result.epochs = epoch + 1
    except Exception as exc:
        if backend.is_out_of_memory(exc):
            _restore(model, good)
            raise out_of_memory(backend, exc, model.layer_sizes, X.shape[0], itemsize) from None
        raise
    result.optimizer_state = optimizer.state()
    backend.sync()
    result.seconds = time.perf_counter() - start
    result.final_loss = result.history[-1] if result.history else math.nan
    if stopper is not None and not result.diverged:
        stopper.finish(result, model, X, T, l2, reduction, epochs, comm)
    return result


def _check_options(epochs, learning_rate, l2, reduction, batch_size, shuffle, early_stopping,
                   validation_fraction, patience, seed, initial_epoch):
    check_positive("epochs", epochs, integer=True)
    check_positive("learning_rate", learning_rate)
    if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not (l2 >= 0 and math.isfinite(l2)):
        raise XpnetValueError(f"l2={l2!r} must be a finite number >= 0")
    check_choice("reduction", reduction, REDUCTIONS)
    if batch_size is not None:
        check_positive("batch_size", batch_size, integer=True)
    for name, value in (("shuffle", shuffle), ("early_stopping", early_stopping)):
        if not isinstance(value, bool):
            raise XpnetTypeError(f"{name}={value!r} must be True or False")
    if isinstance(validation_fraction, bool) or not isinstance(validation_fraction, (int, float)) \
            or not 0 < validation_fraction < 1:
        raise XpnetValueError(f"validation_fraction={validation_fraction!r} must be a fraction in (0, 1), e.g. 0.1")
    check_positive("patience", patience, integer=True)
    if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, int) or initial_epoch < 0:
        raise XpnetValueError(f"initial_epoch={initial_epoch!r} must be a whole number >= 0 (epochs already done)")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise XpnetValueError(f"seed={seed!r} must be a whole number >= 0, or None for the model's seed")


def _epoch_rng(seed: int, stream: int, epoch: int):
    """The host generator of one epoch's shuffle (stream 1) or dropout masks (stream 2).

    Keyed by the absolute epoch, so a resumed run draws what the uninterrupted one drew.
    """
    return np.random.default_rng((seed, stream, epoch))


def _split(model: MLP, X, T, fraction: float, rng):
    """``(X_train, T_train, X_val, T_val)``: a random ``fraction`` of the rows held out."""
    n = X.shape[0]
    n_val = int(round(fraction * n))
    if not 1 <= n_val < n:
        raise XpnetValueError(f"validation_fraction={fraction!r} of {n} samples leaves {n_val} for validation "
                              f"and {n - n_val} for training; both need at least 1 (use more data or another fraction)")
    order = rng.permutation(n)
    rows = [model.backend.asarray(np.sort(part)) for part in (order[n_val:], order[:n_val])]
    xp = model.xp
    return tuple(xp.take(A, r, axis=0) for r in rows for A in (X, T))


def _batches(backend, n: int, batch_size: int | None, shuffle: bool, rng) -> list:
    """This epoch's row index arrays on the device; ``[None]`` means all rows, unindexed.

    ``rng()`` makes the epoch's generator, only when shuffling needs it (small full-batch
    problems spend their time per epoch, so nothing is made that is not used).
    """
    if batch_size is None or batch_size >= n:
        return [None]
    order = backend.asarray(rng().permutation(n) if shuffle else np.arange(n))
    return [order[i:min(i + batch_size, n)] for i in range(0, n, batch_size)]


def _evaluate(model: MLP, X, T, l2: float, reduction: str, plain: bool, comm=None):
    """The training objective of the current weights (inference mode), over every process's rows.

    In plain full-batch training that pass (:meth:`xpnet.ops.Ops.gradients`, over row
    chunks when N is large) also gives the next update's gradients, returned for reuse
    (one forward per epoch, as in the tutorials); with ``comm`` they and the loss are
    summed over the processes in the step's one buffer (:meth:`Communicator.reduce_step`).
    Otherwise a forward pass, whose loss ``comm`` sums in a 2-number buffer; returns None
    for the gradients.
    """
    xp = model.xp
    if plain:
        local = reduction if comm is None else comm.local_reduction(reduction)
        grads = get_ops(model.backend).gradients(model.spec, model.W, model.b, X, T, local, with_loss=True)
        flat, data = _flat(grads), grads.data_loss
        if comm is not None:
            flat, data = comm.reduce_step(model.backend, flat, reduction, X.shape[0], loss=data)
        n = X.shape[0] if comm is None else comm.n_total
        penalty = l2_penalty(xp, model.W, l2) if l2 else 0.0
        return float(losses.objective(xp, data, penalty, n, reduction)), flat
    Y, cache = forward(model.spec, model.xp, model.W, model.b, X, bn=model.bn)
    loss = float(model._objective(cache[1], Y, T, l2, reduction) if comm is None
                 else comm.objective(model, cache[1], Y, T, l2, reduction))  # over all processes' rows
    return loss, None


def _flat(grads) -> list:
    """An :class:`xpnet.ops.Gradients`' arrays in :meth:`MLP.parameters` order."""
    return list(grads.dW) + (list(grads.db) if grads.db is not None else [])


def _run_epoch(model: MLP, optimizer, X, T, rate: float, reduction: str, batches, dropout_rng, first,
               comm=None) -> None:
    """One pass over ``batches`` with one update each; ``first`` = gradients to reuse for the first.

    With ``comm``, ``batches`` holds (this process's rows, global batch size) pairs and the
    gradients are summed over all processes (one Allreduce per update; ``first`` is summed already)."""
    xp, n = model.xp, X.shape[0] if comm is None else comm.n_total
    for rows in batches:
        rows, size = (rows, None) if comm is None else rows
        Xb, Tb = (X, T) if rows is None else (xp.take(X, rows, axis=0), xp.take(T, rows, axis=0))
        grads = first
        if grads is None:
            grads = _gradients(model, Xb, Tb, reduction if comm is None else comm.local_reduction(reduction),
                               dropout_rng)
            if comm is not None:
                grads = comm.reduce_step(model.backend, grads, reduction, Xb.shape[0])[0]
        first = None
        l2_scale = (size or Xb.shape[0]) / n if reduction == "sum" and rows is not None else 1.0
        model.set_parameters(optimizer.step(model.parameters(), grads, rate, l2_scale))


def _gradients(model: MLP, X, T, reduction: str, dropout_rng) -> list:
    """Gradients in :meth:`MLP.parameters` order; updates the batch-norm running statistics.

    Without dropout and batch norm: :meth:`xpnet.ops.Ops.gradients`, the backend's fast path.
    """
    spec, xp = model.spec, model.xp
    if not spec.dropout and model.bn is None:
        return _flat(get_ops(model.backend).gradients(spec, model.W, model.b, X, T, reduction))
    masks = None
    if spec.dropout:
        host = layers.dropout_masks(dropout_rng, X.shape[0], spec.layer_sizes[1:-1], spec.dropout)
        masks = [model.backend.asarray(m, model.dtype) for m in host]
    Y, cache = forward(spec, xp, model.W, model.b, X, bn=model.bn, train=True, masks=masks)
    grads = backward(spec, xp, model.W, cache, Y, T, reduction, bn=model.bn)
    if model.bn is not None:
        model.bn = layers.update_running(model.bn, cache[2])
    flat = list(grads[0]) + (list(grads[1]) if grads[1] is not None else [])
    return flat + (grads[2][0] + grads[2][1] if len(grads) == 3 else [])


class _EarlyStopping:
    """Tracks the validation loss; remembers the best weights; says when to stop."""

    def __init__(self, patience: int, X_val, T_val, comm=None):
        self.patience, self.X_val, self.T_val, self.comm = patience, X_val, T_val, comm
        self.history, self.best, self.best_epoch, self.best_state = [], math.inf, 0, None

    def update(self, epoch: int, model: MLP) -> bool:
        """Record the validation loss after ``epoch`` epochs; True when patience has run out."""
        loss = _data_loss(model, self.X_val, self.T_val, self.comm)
        self.history.append(loss)
        if self.best_state is None or loss < self.best:
            self.best, self.best_epoch, self.best_state = loss, epoch, _snapshot(model)
        return epoch - self.best_epoch >= self.patience

    def finish(self, result: FitResult, model: MLP, X, T, l2: float, reduction: str, epochs: int, comm=None) -> None:
        """Restore the best weights; final_loss becomes their training objective."""
        result.stopped_early = result.epochs < epochs
        _restore(model, self.best_state)
        result.validation_history = list(self.history)
        result.best_epoch = self.best_epoch
        result.final_loss, _ = _evaluate(model, X, T, l2, reduction, False, comm)


def _data_loss(model: MLP, X, T, comm=None) -> float:
    """Mean data loss (no L2) of the current weights on ``(X, T)``, inference mode; with
    ``comm`` over every process's rows (the sum and the count in one 2-number Allreduce)."""
    Y, cache = forward(model.spec, model.xp, model.W, model.b, X, bn=model.bn)
    total, n = float(model.spec.loss.total(model.xp, cache[1], Y, T, model.spec.stable)), X.shape[0]
    if comm is not None:
        total, n = comm.sum_floats([total, n])
    return total / n


def _snapshot(model: MLP):
    return model.parameters(), model.bn


def _restore(model: MLP, snapshot) -> None:
    params, model.bn = snapshot
    model.set_parameters(params)


DIVERGENCE_FACTOR = 1e6  # a loss this many times its first logged value counts as diverged


def _diverging(loss: float, history: list) -> bool:
    """NaN/Inf loss, or a loss that exploded past DIVERGENCE_FACTOR x its starting value."""
    return not math.isfinite(loss) or bool(history) and loss > DIVERGENCE_FACTOR * max(history[0], 1e-12)


class _Interrupt:
    seen = False


def _interrupted(interrupt: _Interrupt, comm) -> bool:
    """Stop for a Ctrl-C: this process's flag, or with ``comm`` what all processes agreed on."""
    return interrupt.seen if comm is None else comm.interrupted


class _deferred_interrupt:
    """Within the block, a first SIGINT only sets ``state.seen`` (the loop stops after the epoch);
    a second one raises KeyboardInterrupt at once. Outside the main thread: no change."""

    def __init__(self, state: _Interrupt | None = None):
        self.state = _Interrupt() if state is None else state

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self.state

    def _handle(self, signum, frame):
        if self.state.seen:
            raise KeyboardInterrupt
        self.state.seen = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def _all_finite(model: MLP) -> bool:
    return all(bool(model.xp.all(model.xp.isfinite(p))) for p in model.parameters())


def _diverged(result: FitResult, model: MLP, good, epoch: int, learning_rate: float) -> None:
    _restore(model, good)
    result.diverged = True
    result.epochs = result.logged_epochs[-1] if result.logged_epochs else 0
    result.message = (
        f"training diverged at epoch {epoch} (the loss or the weights blew up); kept the weights "
        f"of epoch {result.epochs}, the last finite check; try a smaller learning rate than {learning_rate:g}"
    )
