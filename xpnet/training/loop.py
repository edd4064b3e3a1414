"""The one trainer: :func:`fit` reads a :class:`TrainConfig` and runs gradient descent.

    >>> import xpnet
    >>> X, y = xpnet.datasets.load("moons", n_samples=200, noise=0.2, seed=0)
    >>> model = xpnet.MLP([2, 8, 2], backend="numpy", dtype="float64")
    >>> result = xpnet.fit(model, X, y, epochs=300, learning_rate=0.5, log_every=100)
    >>> result.logged_epochs
    [0, 100, 200, 300]

The command line, checkpoints, the scikit-learn estimators, the tutorials and data-parallel
training all train through it. Every update takes one gradient pass
(:func:`xpnet.engine.fullbatch.gradients`: row chunks, threads, kernels) over a batch -- all rows in
full-batch training (``batch_size=None``), otherwise the rows of a minibatch -- and one
optimizer step (:mod:`xpnet.optim`). With the defaults this is the tutorials' full-batch
gradient descent, operation for operation.

Vocabulary: ``learning_rate`` is Trask's "alpha" and WildML's "epsilon"; ``l2`` is WildML's
``reg_lambda`` (scikit-learn's ``alpha`` with ``l2_scaling="batch"``). One epoch is one pass
over the data, i.e. one update in full-batch training (a tutorial "iteration").

The library never prints: it returns the history and calls ``callback`` at each logging
point. Checks happen only at logging points, so small problems stay fast: when the loss or
a weight is NaN/Inf, or the loss exceeds ``divergence_factor`` (1e6) times its first logged
value, training stops and keeps the weights (and optimizer state) of the last good check.

NumPy runs with overflow warnings off inside :func:`fit` (callbacks see the caller's
setting), so the sigmoid is the tutorials' own formula, an overflowing ``exp`` giving the
exact 0 it gives there (see :class:`xpnet.activations.overflow_quiet`).

Ctrl-C (SIGINT), SIGTERM and SIGHUP during :func:`fit` in the main thread do not tear a step
in half: the current epoch finishes, training stops, and the result says
``interrupted=True`` (and ``signal``) with the weights of the last complete epoch (a second
Ctrl-C interrupts at once). In data-parallel training the flag travels in every step's
gradient buffer, so all processes stop after the same epoch (see :mod:`xpnet.distributed`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backend import epoch_work, itemsize, settle
from ..core import inputs, layers, losses
from ..core.activations import overflow_quiet
from ..core.network import l2_penalty
from ..engine import fullbatch
from ..engine.numpy_ops import get_ops
from ..errors import Interval, XpnetTypeError, XpnetValueError
from ..memory import check_fits, out_of_memory
from ..parallel.comm import Communicator
from . import optim
from .config import TrainConfig
from .interrupts import Interrupt, deferred_interrupt
from .stopping import EarlyStopping, Stall, restore, snapshot


@dataclass
class TrainEvent:
    """What a callback sees at a logging point."""

    epoch: int  # updates done so far: the loss is of the weights after `epoch` updates
    epochs: int  # epochs requested in this fit
    loss: float  # the objective (see xpnet.losses) on the training data
    model: Any  # the xpnet.MLP being trained
    state: dict = field(default_factory=dict, repr=False)  # the optimizer's state now (for checkpoints)
    result: FitResult | None = field(default=None, repr=False)  # the result so far (epoch_losses, ...)


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
    best_epoch: int | None = None  # early stopping: epochs done (since the run began) by the best weights
    stopped_early: bool = False  # early stopping (or tol): stopped before `epochs`
    interrupted: bool = False  # Ctrl-C (or SIGTERM/SIGHUP) stopped training after a complete epoch
    signal: int | None = None  # the signal that interrupted training
    epoch_losses: list = field(default_factory=list)  # with tol: each epoch's running training objective
    validation_scores: list = field(default_factory=list)  # with validation_score: its value after each epoch
    best_validation_score: float | None = None  # with validation_score: the best one (its weights are restored)
    kernels: str = ""  # what computed the full-batch gradients: a kernel's name, "generic" or "plain" (tiny)
    optimizer_state: dict = field(default_factory=dict, repr=False)  # optimizer and early-stopping state: to resume

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
            "kernels": self.kernels,
        }


def fit(model, X, y, config: TrainConfig | None = None, *, callback=None, validation_data=None,
        initial_epoch: int = 0, optimizer_state: dict | None = None, comm: Communicator | None = None,
        global_rows=None, validation_score=None, sample_weight=None, **options) -> FitResult:
    """Train ``model`` in place by gradient descent: full batch or minibatches.

    Parameters
    ----------
    model : MLP
        Its ``dropout`` and ``batch_norm`` options apply in training (see :mod:`xpnet.layers`).
    X : array (N, n_inputs)
        NumPy or backend array.
    y : array
        Class labels (N,) for softmax; targets (N,) or (N, n_outputs) otherwise.
    config : TrainConfig, optional
        How to train; ``**options`` are its fields by name and override it (``epochs``,
        ``learning_rate``, ``l2``, ``batch_size``, ``momentum``, ``optimizer``...; see
        :class:`TrainConfig` for each and its default).
    callback : callable, optional
        Called with a :class:`TrainEvent` at every logging point.
    validation_data : (X_val, y_val), optional
        With ``early_stopping``: the held-out set to watch, instead of splitting off
        ``validation_fraction`` of ``X``.
    initial_epoch : int, default 0
        Epochs already done by an earlier run that this fit continues (checkpoint resume):
        the schedule, the shuffling and the dropout masks carry on from there, so a resumed
        run equals an uninterrupted one. ``epochs`` still counts the epochs of this call.
    optimizer_state : dict, optional
        ``FitResult.optimizer_state`` of an earlier fit (momentum, Adam, the adaptive rate, early
        stopping's best weights), to continue exactly.
    comm : xpnet.distributed.Communicator, optional
        Data-parallel training: ``X, y`` are this process's rows (any number, even none,
        while other processes hold rows) and ``validation_data`` its rows of the held-out
        set; each update sums the gradients of all processes' rows of the (global) batch.
        See :func:`xpnet.distributed.fit`. Default: one process.
    global_rows : array of int (N_local,), optional
        With ``comm``: the positions of this process's rows in the global row order
        (increasing); default: contiguous blocks in rank order.
    validation_score : callable, optional
        ``validation_score(model) -> float``, higher is better (scikit-learn's early stopping:
        accuracy or R^2 on held-out rows). With ``tol`` it is what the stall rule watches
        instead of the training loss; every epoch's value is in ``validation_scores`` and the
        weights of the best one are restored at the end (also when training diverged later).
    sample_weight : array (N,), optional
        A weight >= 0 per row of ``X``: each row's loss and gradient are multiplied by it (a
        batch's mean is still its weighted sum over its row count, so weights averaging 1 keep
        the loss's scale); they follow their rows into minibatches and the validation split.

    Returns
    -------
    FitResult
    """
    config = _config(config, options)
    Interval(0, None, integer=True).check("initial_epoch", initial_epoch, "the epochs already done")
    if validation_score is not None and config.tol is None:
        raise XpnetValueError("validation_score is watched by the stall rule: give tol too (e.g. tol=1e-4)")
    comm = Communicator() if comm is None else comm
    _settle_backend(model, X, config, comm)
    with model.backend.activate():  # CuPy computes on the current device: make it the model's
        run = _Run(model, X, y, config, comm, validation_data, global_rows, initial_epoch, optimizer_state,
                   validation_score, sample_weight)
        return run.train(callback)


def _settle_backend(model, X, config: TrainConfig, comm: Communicator) -> None:
    """``auto`` chooses between NumPy and CuPy now that the work of an epoch is known."""
    if model.backend.pending:
        n = _rows(X) if comm.size == 1 else int(comm.sum_floats([_rows(X)])[0])  # every process chooses alike
        work = epoch_work(model.layer_sizes, n, config.batch_size, itemsize(model.dtype_name))
        model.to_backend(settle(model.backend, work))


def _rows(X) -> int:
    return int(X.shape[0]) if hasattr(X, "shape") else len(X)


def _config(config: TrainConfig | None, options: dict) -> TrainConfig:
    """``config`` with ``options`` replacing its fields (a clear error for unknown names)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise XpnetTypeError(f"fit() got unknown option(s) {', '.join(unknown)}; the options are "
                             f"TrainConfig's fields: {', '.join(sorted(known))}")
    if config is None:
        return TrainConfig(**options)
    if not isinstance(config, TrainConfig):
        raise XpnetTypeError(f"config={config!r} must be an xpnet.TrainConfig")
    return dataclasses.replace(config, **options) if options else config


def _check_memory(model, config: TrainConfig, n: int, placed: bool) -> None:
    """Refuse a run that would not fit on the device, before its data is copied there."""
    item = itemsize(model.dtype_name)
    plain = (config.batch_size is None or config.batch_size >= n) and not model.spec.dropout and model.bn is None
    rows = fullbatch.rows_at_once(get_ops(model.backend), model.layer_sizes, item, n) if plain \
        else min(config.batch_size or n, n)
    check_fits(model.backend, model.layer_sizes, n, item, rows, placed=placed)


class _Run:
    """The state of one :func:`fit`: data, optimizer, stopping rules, result."""

    def __init__(self, model, X, y, config: TrainConfig, comm: Communicator, validation_data, global_rows,
                 initial_epoch, optimizer_state, validation_score=None, sample_weight=None):
        self.model, self.config, self.comm, self.initial_epoch = model, config, comm, initial_epoch
        self.seed = model.seed if config.seed is None else config.seed
        shared = comm.size > 1  # other processes hold rows too: this one may hold none
        _check_memory(model, config, _rows(X), inputs.is_native(X, model.backend))  # before any copy
        X = model.as_inputs(X, allow_empty=shared)
        T = model.as_targets(y, X.shape[0])
        self.spec = model.spec  # with sample weights: the weighted loss, its weights a last column of T
        if sample_weight is not None:
            T, self.spec = _weighted(model, T, sample_weight)
        self.interrupt = Interrupt()
        split = config.early_stopping and validation_data is None
        X_val = T_val = None
        if split and not shared:  # several processes refuse it in setup
            X, T, X_val, T_val = _split(model, X, T, config.validation_fraction, np.random.default_rng((self.seed, 0)))
        self.shard = comm.setup(model, X.shape[0], split, global_rows, self.interrupt)
        if config.early_stopping and not split:
            X_val = model.as_inputs(validation_data[0], allow_empty=shared)
            T_val = model.as_targets(validation_data[1], X_val.shape[0])
            if sample_weight is not None:  # held-out rows count with weight 1
                T_val = model.xp.concat([T_val, model.xp.ones((T_val.shape[0], 1), dtype=T_val.dtype)], axis=1)
        self.stopper = (EarlyStopping(config.patience, X_val, T_val, comm, self.spec) if config.early_stopping
                        else None)
        self.X, self.T = X, T
        self.n = self.shard.n_total  # rows of the training data over every process
        self.full = config.batch_size is None or config.batch_size >= self.n
        self.plain = self.full and not model.spec.dropout and model.bn is None  # the logged pass gives the update
        self.optimizer = optim.make(config, model.xp, len(model.W))
        if optimizer_state:
            self.optimizer.load_state(optimizer_state, model.backend)
            if self.stopper is not None:
                self.stopper.load_state(optimizer_state, model)
        self.log_every = config.log_every or max(1, config.epochs // 20)
        self.ops, self.backend = get_ops(model.backend), model.backend
        self.first = None  # gradients of the logged pass, reused by the next update (plain full batch)
        self.first_pass = None  # that pass itself (with its loss), for an epoch that also needs the loss
        self.full_l2_scale = self._l2_scale(self.n)
        self.constant_rate = config.learning_rate if config.schedule.name == "constant" else None
        self.stall = Stall(config.tol, config.n_iter_no_change, validation_score) if config.tol is not None else None
        if self.stall is not None and optimizer_state and "stall_best" in optimizer_state:
            self.stall.load_state(optimizer_state)
        self.best = None  # with validation_score: the snapshot of its best epoch
        self.quick = self.plain and self.stall is None  # an epoch is one pass and one update
        local = config.reduction if comm.size == 1 else "sum"  # the processes' sums are added, then scaled
        self.kernel = model.kernels if config.kernels is None else config.kernels
        self.full_pass = fullbatch.full_pass(self.ops, self.spec, X.shape[0], self.kernel)
        self.pass_data = (X, T, X.shape[0] if local == "mean" else None)  # full_pass's X, T, scale
        rows = self.X.shape[0] if self.full else min(config.batch_size, self.X.shape[0])
        self.result = FitResult(backend=self.backend.name, device=self.backend.device_name(),
                                backend_reason=self.backend.reason, dtype=model.dtype_name,
                                kernels=fullbatch.pass_name(self.ops, model, rows, self.kernel))

    # -- the loop ---------------------------------------------------------------------------
    def train(self, callback) -> FitResult:
        config, result, model = self.config, self.result, self.model
        good = self._snapshot()  # arrays are never updated in place, so references are a snapshot
        start = time.perf_counter()
        try:
            with deferred_interrupt(self.interrupt), overflow_quiet() as quiet:
                checks, last = self.stopper is not None or self.stall is not None or self.comm.size > 1, \
                    config.epochs
                step, scale, run, data = self.optimizer.step, self.full_l2_scale, self.full_pass, self.pass_data
                # the constant rate when the tutorials' quick epoch applies, else None
                inline = self.constant_rate if self.quick and self.comm.size == 1 else None
                for epoch in range(config.epochs + 1):
                    # the cheap checks and the quick epoch inline: tiny problems spend their time per epoch
                    stop = self._should_stop(epoch) if checks or epoch == last or self.interrupt.seen else False
                    if stop or epoch % self.log_every == 0:
                        loss = self._logged_loss(final=stop or epoch == last)
                        if _diverging(loss, result.history, config.divergence_factor) or not _all_finite(model):
                            self._diverged(good, epoch)
                            break
                        good = self._snapshot()
                        result.history.append(loss)
                        result.logged_epochs.append(epoch)
                        if callback is not None:
                            with quiet.outside():  # the caller's NumPy error state
                                callback(TrainEvent(epoch, config.epochs, loss, model, self._state(), result))
                    if stop:
                        break
                    if inline is not None:  # one pass of all rows, one update (the tutorials)
                        grads, self.first = self.first, None
                        if grads is None:
                            g = run(model.W, model.b, *data)
                            grads = g.dW if g.db is None else g.dW + g.db  # Gradients.flat() without BN, inline
                        model.set_parameters(step(model.parameters(), grads, inline, scale))
                    else:
                        self._epoch(self.initial_epoch + epoch)
                    result.epochs = epoch + 1
        except Exception as exc:
            if self.backend.is_out_of_memory(exc):
                self._restore(good)
                raise out_of_memory(self.backend, exc, model.layer_sizes, self.X.shape[0],
                                    itemsize(model.dtype_name)) from None
            raise
        return self._finish(start)

    def _should_stop(self, epoch: int) -> bool:
        """Whether training ends before ``epoch``'s updates (and records why)."""
        result = self.result
        if self.stopper is not None and self.stopper.update(self.initial_epoch + epoch, self.model) \
                and epoch < self.config.epochs:
            result.stopped_early = True
            return True
        if self.stall is not None and self.stall.done:
            result.stopped_early = True
            return True
        if self.comm.interrupted:
            result.interrupted, result.signal = True, self.interrupt.signal
            return True
        return epoch == self.config.epochs

    def _epoch(self, t: int) -> None:
        """One pass over the data (``t``: epochs done since the run began, across resumes)."""
        config = self.config
        rate = self.constant_rate or config.schedule.rate(config.learning_rate, t, self.initial_epoch + config.epochs,
                                                          self.n)
        if self.quick:  # one pass of all rows, one update
            grads, self.first = self.first or self._gradients(self.X, self.T, None).flat(), None
            self.model.set_parameters(self.optimizer.step(self.model.parameters(), grads, rate, self.full_l2_scale))
            return
        first, self.first, self.first_pass = self.first_pass, None, None  # plain full batch: the logged pass
        masks_rng = _epoch_rng(self.seed, 2, t) if self.model.spec.dropout else None  # only made when used
        running = 0.0
        for rows, size in self.shard.batches(self.backend, None if self.full else config.batch_size, config.shuffle,
                                             lambda: _epoch_rng(self.seed, 1, t)):
            X, T = (self.X, self.T) if rows is None else (self.model.xp.take(self.X, rows, axis=0),
                                                          self.model.xp.take(self.T, rows, axis=0))
            grads = first if first is not None and rows is None else self._gradients(X, T, masks_rng)
            first = None
            l2_scale = self._l2_scale(size)
            if self.stall is not None:
                running += self._batch_objective(grads.data_loss, size, l2_scale)
            self.model.set_parameters(self.optimizer.step(self.model.parameters(), grads.flat(), rate, l2_scale))
        if self.stall is not None:
            self._after_epoch(running / self.n, rate)

    def _after_epoch(self, loss: float, rate: float) -> None:
        """The stall rule after an epoch: record, keep the best weights, lower the rate or stop."""
        result, stall = self.result, self.stall
        assert stall is not None  # called only with the stall rule on
        result.epoch_losses.append(loss)
        value = loss
        if stall.score is not None:
            value = float(stall.score(self.model))
            result.validation_scores.append(value)
        if stall.update(value):
            self.best = snapshot(self.model)
        if not math.isfinite(loss):
            stall.done = True  # the check that follows sees the blow-up
        elif stall.stalled and self.config.schedule.name == "adaptive" and rate * self.optimizer.rate_scale > 1e-6:
            self.optimizer.rate_scale /= 5
            stall.stale = 0
        elif stall.stalled:
            stall.done = True

    def _gradients(self, X, T, masks_rng):
        """The gradients of one batch, summed over every process's rows of it (with their loss
        when a stopping rule needs it); updates the batch-norm running statistics."""
        model, config, comm = self.model, self.config, self.comm
        if self.quick and comm.size == 1:
            return self.full_pass(model.W, model.b, *self.pass_data)
        masks = None
        if model.spec.dropout:
            host = layers.dropout_masks(masks_rng, X.shape[0], model.layer_sizes[1:-1], model.spec.dropout)
            masks = [model.backend.asarray(m, model.dtype) for m in host]
        reduction = config.reduction if comm.size == 1 else "sum"  # the processes' sums are added, then scaled
        grads = fullbatch.gradients(self.ops, self.spec, model.W, model.b, X, T, reduction,
                                    with_loss=self.stall is not None, kernel=self.kernel, bn=model.bn,
                                    masks=masks)
        if grads.bn_stats is not None:
            model.bn = layers.update_running(model.bn, grads.bn_stats)
        return _reduced(comm, self.backend, grads, config.reduction, X.shape[0])

    def _l2_scale(self, size: int) -> float:
        """What multiplies ``l2`` in one update of ``size`` rows (see :class:`TrainConfig`)."""
        if self.config.l2_scaling == "batch":
            return 1.0 / size if self.config.reduction == "mean" else 1.0
        return size / self.n if self.config.reduction == "sum" and size != self.n else 1.0

    def _batch_objective(self, data_loss, size: int, l2_scale: float) -> float:
        """A batch's share of the epoch's running objective (times N): its data loss plus the
        penalty its update applies, in the units of the reported objective."""
        if not self.config.l2:
            return float(data_loss)
        penalty = float(l2_penalty(self.model.xp, self.model.W, self.config.l2 * l2_scale))
        return float(data_loss) + penalty * (size if self.config.reduction == "mean" else 1)

    def _logged_loss(self, final: bool = False) -> float:
        """The training objective of the current weights, over every process's rows (inference
        mode). In plain full-batch training the pass also gives the next update's gradients
        (with the stall rule, a final check needs none: a forward pass does)."""
        model, config = self.model, self.config
        if not self.plain or (final and self.stall is not None):
            return self._objective()
        grads = self._with_loss(self.X, self.T)
        self.first = grads.flat()
        self.first_pass = grads if self.stall is not None else None
        return float(model.objective(grads.data_loss, self.n, config.l2, config.reduction))

    def _objective(self) -> float:
        """The training objective of the current weights by an inference pass over every process's rows."""
        model, config = self.model, self.config
        data = model.summed_loss(self.X, self.T, self.spec.loss)
        if self.comm.size > 1:
            data = self.comm.sum_floats([float(data)])[0]
        return float(model.objective(data, self.n, config.l2, config.reduction))

    def _with_loss(self, X, T):
        grads = self.full_pass(self.model.W, self.model.b, *self.pass_data, True)
        return _reduced(self.comm, self.backend, grads, self.config.reduction, X.shape[0])

    def _state(self) -> dict:
        """What a later fit needs to continue exactly: the optimizer's, early stopping's and the stall
        rule's state."""
        return {**self.optimizer.state(), **(self.stopper.state(self.model) if self.stopper is not None else {}),
                **(self.stall.state() if self.stall is not None else {})}

    def _snapshot(self):
        """The weights and the optimizer's state, to go back to (never a non-finite state)."""
        return snapshot(self.model), self.optimizer.state()

    def _restore(self, good) -> None:
        restore(self.model, good[0])
        self.optimizer.reset()
        self.optimizer.load_state(good[1], self.backend)

    def _diverged(self, good, epoch: int) -> None:
        result = self.result
        self._restore(good)
        result.diverged = True
        result.epochs = result.logged_epochs[-1] if result.logged_epochs else 0
        result.message = (
            f"training diverged at epoch {epoch} (the loss or the weights blew up); kept the weights "
            f"of epoch {result.epochs}, the last finite check; try a smaller learning rate than "
            f"{self.config.learning_rate:g}")

    def _finish(self, start: float) -> FitResult:
        result, model = self.result, self.model
        self.backend.sync()
        result.seconds = time.perf_counter() - start
        result.final_loss = result.history[-1] if result.history else math.nan
        if self.stopper is not None and not result.diverged:
            # an interrupted run keeps its last epoch's weights, so that it resumes exactly (the best
            # ones travel in its state); a finished one ends with the best
            self.stopper.finish(result, model, restore_best=not result.interrupted)
            result.final_loss = self._objective()
        if self.stall is not None and self.stall.score is not None:
            result.best_validation_score = self.stall.best_value
        if self.best is not None:  # scikit-learn restores its best validation score's weights, also after a
            restore(model, self.best)  # blow-up (they are finite: a non-finite score is never the best)
            result.final_loss = self._objective()
        result.optimizer_state = self._state()
        return result


def _reduced(comm: Communicator, backend, grads, reduction: str, n_local: int):
    """``grads`` summed over the processes (one buffer: gradients, count, loss, Ctrl-C flag) and,
    for a mean, divided by the global row count. One process: ``grads`` as they are."""
    if comm.size == 1:
        return grads
    flat, n, loss = comm.reduce_step(backend, grads.flat(), n_local, grads.data_loss)
    if reduction == "mean":
        flat = [g / n for g in flat]
    return _Flat(flat, loss)


class _Flat:
    """Reduced gradients in :meth:`MLP.parameters` order (what :class:`~xpnet.core.ops.Gradients` gives)."""

    def __init__(self, arrays, data_loss):
        self.arrays, self.data_loss = arrays, data_loss

    def flat(self) -> list:
        return self.arrays


def _epoch_rng(seed: int, stream: int, epoch: int):
    """The host generator of one epoch's shuffle (stream 1) or dropout masks (stream 2).

    Keyed by the absolute epoch, so a resumed run draws what the uninterrupted one drew.
    """
    return np.random.default_rng((seed, stream, epoch))


def _split(model, X, T, fraction: float, rng):
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


def _weighted(model, T, sample_weight):
    """``T`` with the weights as a last column, and the model's spec with the weighted loss."""
    w = inputs.to_device(model.backend, model.dtype, sample_weight, "sample_weight")
    if tuple(w.shape) != (T.shape[0],):
        raise XpnetValueError(f"sample_weight has shape {tuple(w.shape)}; expected ({T.shape[0]},), one per row of X")
    if bool(model.xp.any(w < 0)):
        raise XpnetValueError("sample_weight holds negative values; weights must be >= 0")
    T = model.xp.concat([T, model.xp.reshape(w, (T.shape[0], 1))], axis=1)
    return T, dataclasses.replace(model.spec, loss=losses.weighted(model.spec.loss))


DIVERGENCE_FACTOR = TrainConfig.divergence_factor  # the default: a loss this many times its first logged value


def _diverging(loss: float, history: list, factor: float | None) -> bool:
    """NaN/Inf loss, or a loss that exploded past ``factor`` x its starting value."""
    if not math.isfinite(loss):
        return True
    return factor is not None and bool(history) and loss > factor * max(history[0], 1e-12)


def _all_finite(model) -> bool:
    return all(bool(model.xp.all(model.xp.isfinite(p))) for p in model.parameters())
