"""The one trainer: :func:`fit` reads a :class:`TrainConfig` and runs gradient descent.

    >>> import xpnet
    >>> X, y = xpnet.datasets.load("moons", n_samples=200, noise=0.2, seed=0)
    >>> model = xpnet.MLP([2, 8, 2], backend="numpy", dtype="float64")
    >>> result = xpnet.fit(model, X, y, epochs=300, learning_rate=0.5, log_every=100)
    >>> result.logged_epochs
    [0, 100, 200, 300]

The command line, checkpoints, the scikit-learn estimators, the tutorials and data-parallel
training all train through it. Every update takes one gradient pass
(the plan's, :func:`xpnet.engine.plan.choose`: row chunks, threads, kernels) over a batch -- all rows in
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
import functools
import math
import time

import numpy as np

from ..backend import epoch_work, itemsize, settle
from ..core import inputs, layers, losses
from ..core.activations import overflow_quiet
from ..core.network import l2_penalty
from ..engine import stream
from ..engine.numpy_ops import get_ops
from ..engine.plan import Planner
from ..errors import Interval, XpnetTypeError, XpnetValueError
from ..memory import out_of_memory
from ..parallel.comm import Communicator
from . import optim, placement
from .batches import Batches, epoch_rng
from .config import TrainConfig
from .interrupts import Interrupt, deferred_interrupt
from .result import FitResult, TrainEvent
from .stopping import EarlyStopping, Stall, restore, snapshot


def fit(model, X, y, config: TrainConfig | None = None, *, callback=None, validation_data=None,
        initial_epoch: int = 0, optimizer_state: dict | None = None, comm: Communicator | None = None,
        global_rows=None, validation_score=None, sample_weight=None, **options) -> FitResult:
    """Train ``model`` in place by gradient descent: full batch or minibatches.

    Parameters
    ----------
    model : MLP
        Its ``dropout`` and ``batch_norm`` options apply in training (see :mod:`xpnet.layers`).
    X : array (N, n_inputs)
        NumPy or backend array; or a row source, never copied whole: a memory map
        (``np.load(path, mmap_mode="r")``) or :class:`~xpnet.engine.rows.HostRows`, whose
        rows are streamed from the host a chunk at a time in every pass (on NumPy always;
        elsewhere when they do not fit the device; ``FitResult.data_residency``), with the
        results of the same rows in memory, bit for bit (:mod:`xpnet.engine.stream`).
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
        run = Run(model, X, y, config, comm, validation_data, global_rows, initial_epoch, optimizer_state,
                  validation_score, sample_weight)
        return run.train(callback)


def _settle_backend(model, X, config: TrainConfig, comm: Communicator) -> None:
    """``auto`` chooses between NumPy and CuPy now that the work of an epoch is known."""
    if model.backend.pending:
        n = _rows_of(X) if comm.size == 1 else int(comm.sum_floats([_rows_of(X)])[0])  # every process alike
        work = epoch_work(model.layer_sizes, n, config.batch_size, itemsize(model.dtype_name))
        model.to_backend(settle(model.backend, work))


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


class Run:
    """One training run: data, batches, the plan's passes, optimizer, stopping rules, result.

    :func:`fit` is ``Run(...).train(callback)``; :meth:`epoch` is one epoch of it alone (the
    benchmarks time it: the trainer's own step, nothing of their own).
    """

    def __init__(self, model, X, y, config: TrainConfig, comm: Communicator, validation_data, global_rows,
                 initial_epoch, optimizer_state, validation_score=None, sample_weight=None):
        self.model, self.config, self.comm, self.initial_epoch = model, config, comm, initial_epoch
        self.seed = model.seed if config.seed is None else config.seed
        self.backend, self.ops = model.backend, get_ops(model.backend)
        shared = comm.size > 1  # other processes hold rows too: this one may hold none
        # a memory map or HostRows stays on the host, read a chunk at a time, unless its rows fit the device
        self.residency = placement.residency(model, config, X)
        placement.check_memory(model, config, _rows_of(X), inputs.is_native(X, model.backend),  # before any copy
                               self.residency == "streamed")
        X, T = placement.placed(model, X, y, shared, self.residency)
        self.spec = model.spec  # with sample weights: the weighted loss, its weights a last column of T
        if sample_weight is not None:
            T, self.spec = _weighted(model, T, sample_weight)
        self.interrupt = Interrupt()
        split = config.early_stopping and validation_data is None
        X_val = T_val = None
        if split and not shared:  # several processes refuse it in setup
            X, T, X_val, T_val = _split(model, X, T, config.validation_fraction, np.random.default_rng((self.seed, 0)))
        shard = comm.setup(model, X.shape[0], split, global_rows, self.interrupt)
        if config.early_stopping and not split:
            X_val, y_val = validation_data
            X_val, T_val = placement.placed(model, X_val, y_val, shared,
                                            placement.residency(model, config, X_val, training=False))
            if sample_weight is not None:  # held-out rows count with weight 1
                T_val = T_val.with_weights(np.ones(T_val.shape[0])) if isinstance(T_val, stream.StreamedTargets) \
                    else model.xp.concat([T_val, model.xp.ones((T_val.shape[0], 1), dtype=T_val.dtype)], axis=1)
        self.stopper = EarlyStopping(config.patience, X_val, T_val, comm, self.spec) if config.early_stopping \
            else None
        self.X, self.T, self.n = X, T, shard.n_total  # n: rows of the training data over every process
        self.batches = Batches(shard, self.backend, X, T, config.batch_size, config.shuffle, self.seed)
        kernels = model.kernels if config.kernels is None else config.kernels
        # data-parallel: each pass ends with the processes' sums (one buffer: gradients, rows, loss, Ctrl-C flag)
        finish = functools.partial(_reduced, comm, self.backend, config.reduction) if comm.size > 1 else None
        self.passes = Planner(self.ops, self.spec, model.dtype_name, kernels, finish)
        self.l2_scales = {size: self._l2_scale(size) for size in self.batches.sizes()}
        # the logged pass of plain full-batch training also gives the next update's gradients
        self.plain = self.batches.full and not model.spec.dropout and model.bn is None
        self.optimizer = optim.make(config, model.xp, len(model.W))
        self.stall = Stall(config.tol, config.n_iter_no_change, validation_score) if config.tol is not None else None
        if optimizer_state:
            self.optimizer.load_state(optimizer_state, model.backend)
            if self.stopper is not None:
                self.stopper.load_state(optimizer_state, model)
            if self.stall is not None and "stall_best" in optimizer_state:
                self.stall.load_state(optimizer_state)
        self.best = None  # with validation_score: the snapshot of its best epoch
        self.log_every = config.log_every or max(1, config.epochs // 20)
        self.mean = config.reduction == "mean" and comm.size == 1  # else the processes' sums are added, then scaled
        self.constant_rate = config.learning_rate if config.schedule.name == "constant" else None
        rows = X.shape[0] if self.batches.full else min(self.batches.size, X.shape[0])
        self.result = FitResult(backend=self.backend.name, device=self.backend.device_name(),
                                backend_reason=self.backend.reason, dtype=model.dtype_name,
                                kernels=self.passes[rows].name, data_residency=self.residency)

    # -- the loop ---------------------------------------------------------------------------
    def train(self, callback) -> FitResult:
        config, result, model = self.config, self.result, self.model
        good = self._snapshot()  # arrays are never updated in place, so references are a snapshot
        start = time.perf_counter()
        try:
            with deferred_interrupt(self.interrupt), overflow_quiet() as quiet:
                checks = self.stopper is not None or self.stall is not None or self.comm.size > 1
                last, done_before = config.epochs, self.initial_epoch
                for epoch in range(config.epochs + 1):
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
                    self.epoch(done_before + epoch)
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

    def epoch(self, t: int) -> None:
        """One pass over the data (``t``: epochs done since the run began, across resumes).

        ONE step per batch: the gradients of the batch from the plan's pass (summed over the
        processes), then the optimizer's update. Nothing leaves the device but, with the stall
        rule, the epoch's objective, once.
        """
        config, model, stall = self.config, self.model, self.stall
        rate = self.constant_rate or config.schedule.rate(config.learning_rate, t, self.initial_epoch + config.epochs,
                                                          self.n)
        masks_rng = epoch_rng(self.seed, 2, t) if self.spec.dropout else None  # only made when used
        running = None
        for X, T, size in self.batches.all if self.batches.full else self.batches.epoch(t):
            rows = X.shape[0]
            scale = rows if self.mean else None
            if masks_rng is None and model.bn is None:
                grads = self.passes[rows].call(model.W, model.b, X, T, scale, stall is not None)
            else:
                grads = self.passes[rows](model.W, model.b, X, T, scale, stall is not None, bn=model.bn,
                                          masks=None if masks_rng is None else _masks(model, masks_rng, rows))
                if grads.bn_stats is not None:
                    model.bn = layers.update_running(model.bn, grads.bn_stats)
            l2_scale = self.l2_scales[size]
            if stall is not None:  # this batch's share of the epoch's objective, on the device
                objective = self._batch_objective(grads.data_loss, size, l2_scale)
                running = objective if running is None else running + objective
            flat = grads.flat() if grads.dgamma is not None else grads.dW if grads.db is None else grads.dW + grads.db
            model.set_parameters(self.optimizer.step(model.parameters(), flat, rate, l2_scale))
        if stall is not None:
            self._after_epoch(float(running) / self.n, rate)  # type: ignore[arg-type]  # the batches set it

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

    def _l2_scale(self, size: int) -> float:
        """What multiplies ``l2`` in one update of ``size`` rows (see :class:`TrainConfig`)."""
        if self.config.l2_scaling == "batch":
            return 1.0 / size if self.config.reduction == "mean" else 1.0
        return size / self.n if self.config.reduction == "sum" and size != self.n else 1.0

    def _batch_objective(self, data_loss, size: int, l2_scale: float):
        """A batch's share of the epoch's running objective (times N), on the device: its data
        loss plus the penalty its update applies, in the units of the reported objective."""
        if not self.config.l2:
            return data_loss
        penalty = l2_penalty(self.model.xp, self.model.W, self.config.l2 * l2_scale)
        return data_loss + penalty * (size if self.config.reduction == "mean" else 1)

    def _logged_loss(self, final: bool = False) -> float:
        """The training objective of the current weights, over every process's rows (inference
        mode). In plain full-batch training the plan's pass gives it with the gradients, which
        it keeps for the next update (with the stall rule a final check needs no gradients)."""
        model, config = self.model, self.config
        if not self.plain or (final and self.stall is not None):
            return self._objective()
        X, T = self.X, self.T
        grads = self.passes[X.shape[0]].logged(model.W, model.b, X, T, X.shape[0] if self.mean else None)
        return float(model.objective(grads.data_loss, self.n, config.l2, config.reduction))  # summed over processes

    def _objective(self) -> float:
        """The training objective of the current weights by an inference pass over every process's rows."""
        model, config = self.model, self.config
        data = model.summed_loss(self.X, self.T, self.spec.loss)
        if self.comm.size > 1:
            data = self.comm.sum_floats([float(data)])[0]
        return float(model.objective(data, self.n, config.l2, config.reduction))

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


def _rows_of(X) -> int:
    """The rows of ``X`` before it is validated (0 when it has no shape: the validation says why)."""
    shape = getattr(X, "shape", None)
    if shape is None:
        try:
            return len(X)
        except TypeError:
            return 0
    return int(shape[0]) if len(shape) else 0


def _masks(model, rng, rows: int) -> list:
    """This step's dropout multipliers on the model's device (drawn on the host, sent as booleans)."""
    keep = layers.dropout_keep(rng, rows, model.layer_sizes[1:-1], model.spec.dropout)
    return [layers.dropout_multipliers(model.xp, model.backend.asarray(k), model.spec.dropout, model.dtype)
            for k in keep]


def _reduced(comm: Communicator, backend, reduction: str, grads, n_local: int):
    """``grads`` summed over the processes (one buffer: gradients, count, loss, Ctrl-C flag) and,
    for a mean, divided by the global row count (batch norm is refused in data-parallel runs)."""
    flat, n, loss = comm.reduce_step(backend, grads.flat(), n_local, grads.data_loss)
    if reduction == "mean":
        flat = [g / n for g in flat]
    k = len(grads.dW)
    return grads._replace(dW=flat[:k], db=flat[k:] if grads.db is not None else None, data_loss=loss)


def _split(model, X, T, fraction: float, rng):
    """``(X_train, T_train, X_val, T_val)``: a random ``fraction`` of the rows held out."""
    n = X.shape[0]
    n_val = int(round(fraction * n))
    if not 1 <= n_val < n:
        raise XpnetValueError(f"validation_fraction={fraction!r} of {n} samples leaves {n_val} for validation "
                              f"and {n - n_val} for training; both need at least 1 (use more data or another fraction)")
    order = rng.permutation(n)
    parts = [np.sort(part) for part in (order[n_val:], order[:n_val])]
    if isinstance(X, stream.StreamedRows):  # row numbers into the source, nothing read
        return tuple(A.subset(r) for r in parts for A in (X, T))
    rows = [model.backend.asarray(r) for r in parts]
    xp = model.xp
    return tuple(xp.take(A, r, axis=0) for r in rows for A in (X, T))


def _weighted(model, T, sample_weight):
    """``T`` with the weights as a last column, and the model's spec with the weighted loss."""
    if isinstance(T, stream.StreamedTargets):  # the column is added to each chunk
        return T.with_weights(sample_weight), dataclasses.replace(model.spec, loss=losses.weighted(model.spec.loss))
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
