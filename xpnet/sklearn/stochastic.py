"""``solver="sgd"`` and ``"adam"``: a fit through :func:`xpnet.fit`, and the fitted attributes it leaves.

The estimators add at most one conversion to the host per epoch to what the training loop
does: with ``early_stopping``, the held-out score the stall rule compares (accuracy or R^2,
computed on the device; one number). ``verbose`` converts each epoch's loss to print it.
``loss_curve_``, ``n_iter_``, ``t_`` and the stall counters are read once, after the run.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.base import is_classifier
from sklearn.model_selection import train_test_split

from ..backend import to_numpy
from ..core.activations import output_forward
from ..engine.threads import limit_threads
from ..errors import XpnetValueError
from ..training.loop import fit as xpnet_fit
from .arrays import floats, is_device_array, nan_if_not_finite
from .messages import Printer, max_iter_reached, nonfinite_message
from .params import SEED, train_config
from .weights import normalized


class OptimizerState:
    """What a later ``partial_fit`` needs to continue: the optimizer's state (its arrays stay where
    training ran) and ``learning_rate``, the step size the next epoch would take (as
    scikit-learn's ``_optimizer.learning_rate``)."""

    def __init__(self, solver: str, state: dict, learning_rate: float):
        self.solver, self.state, self.learning_rate = solver, state, learning_rate

    def moved(self, fn) -> OptimizerState:
        """The same state with ``fn`` applied to its arrays (counters that are 0-d NumPy arrays stay)."""
        state = {name: fn(a) if is_device_array(a) or np.ndim(a) else a for name, a in self.state.items()}
        return OptimizerState(self.solver, state, self.learning_rate)


def outputs(model, X):
    """The network's outputs for a 2-D ``X`` already on the model's backend, in its dtype (inference)."""
    return output_forward(model.xp, model.spec.output, model.logits(X), model.spec.stable)


def fit(est, X, Y, sw, rng, incremental: bool, backend) -> None:
    """Train ``est`` from its ``coefs_`` on ``X`` (on ``backend``) and the 2-D host targets ``Y``."""
    if est.early_stopping and incremental:
        raise XpnetValueError("partial_fit does not support early_stopping=True; set early_stopping=False")
    if not hasattr(est, "loss_curve_"):  # a network fitted by lbfgs, now trained by sgd/adam
        start_curves(est)
    X_val = Y_val = sw_val = None
    if est.early_stopping:
        X, Y, sw, X_val, Y_val, sw_val = split(est, X, Y, sw, rng, backend)
    n = X.shape[0]
    weights, alpha = normalized(sw, float(est.alpha))
    state = start_state(est, incremental)
    config, initial = train_config(est, rows=n, incremental=incremental, alpha=alpha, seed=int(rng.randint(SEED)))
    start = (list(est.coefs_), list(est.intercepts_))
    model = est._network(*start, backend, loss=est._training_loss())
    score = None if X_val is None else validation_score(est, model, X_val, Y_val, sw_val)
    printer = Printer(est) if est.verbose else None
    with limit_threads(est.threads):
        result = xpnet_fit(model, X, est._targets(Y), config, initial_epoch=initial, optimizer_state=state,
                           validation_score=score, sample_weight=weights, callback=printer)
    if printer is not None:
        printer.finish(result)
    if result.diverged and not est.early_stopping:
        raise XpnetValueError(nonfinite_message(X, est.learning_rate_init))
    record(est, result, model, n, start, incremental)


def start_curves(est) -> None:
    """Empty ``loss_curve_`` and validation history, and the stall rule's start."""
    est.loss_curve_, est._no_improvement_count = [], 0
    if est.early_stopping:
        est.validation_scores_, est.best_validation_score_, est.best_loss_ = [], -np.inf, None
    else:
        est.validation_scores_, est.best_validation_score_, est.best_loss_ = None, None, np.inf


def start_state(est, incremental: bool) -> dict:
    """The state :func:`xpnet.fit` continues from: ``partial_fit`` keeps the optimizer's; both keep
    the stall rule's (its best value, in xpnet's "lower is better" sign, and its count)."""
    previous = est.__dict__.get("_optimizer")
    carried = dict(previous.state) if incremental and previous is not None and previous.solver == est.solver \
        else {}
    best = est.best_validation_score_ if est.early_stopping else est.best_loss_  # either may be None: the
    best = math.inf if best is None else (-float(best) if est.early_stopping else float(best))  # other mode before
    return {**carried, "stall_best": np.asarray(best), "stall_stale": np.asarray(est._no_improvement_count)}


def split(est, X, Y, sw, rng, backend):
    """scikit-learn's early-stopping split (stratified for single-output classification): its row
    indices drawn on the host as scikit-learn draws them, the rows of ``X`` taken on the device."""
    stratify = Y if is_classifier(est) and est.n_outputs_ == 1 else None
    train, val = train_test_split(np.arange(X.shape[0]), random_state=rng, test_size=est.validation_fraction,
                                  stratify=stratify)
    if val.shape[0] < 2:
        raise XpnetValueError("The validation set is too small. Increase 'validation_fraction' or the size of your "
                              "dataset.")

    def rows(A, index):
        return A[index] if isinstance(A, np.ndarray) else backend.xp.take(A, backend.asarray(index), axis=0)

    return (rows(X, train), Y[train], None if sw is None else sw[train], rows(X, val), Y[val],
            None if sw is None else sw[val])


def validation_score(est, model, X_val, Y_val, sw_val):
    """``score(model)``: accuracy or R^2 on the held-out rows (NaN when the outputs are not finite),
    computed on the device; the one number that crosses to the host per epoch."""
    backend, xp = model.backend, model.xp
    truth = est._score_truth(backend, Y_val)
    weights = None if sw_val is None else backend.asarray(sw_val, model.dtype)

    def score(net) -> float:
        with np.errstate(all="ignore"):  # a blown-up net: NaN scores, no warnings
            out = outputs(net, X_val)
            return float(nan_if_not_finite(xp, est._device_score(xp, out, truth, weights), out))

    return score


def record(est, result, model, n: int, start, incremental: bool) -> None:
    """The fitted attributes after a run (scikit-learn's, in its units)."""
    state = result.optimizer_state
    done = len(result.epoch_losses)
    est.n_iter_ = done
    est.t_ += n * done
    est.loss_curve_.extend(floats(result.epoch_losses))
    if est.loss_curve_:
        est.loss_ = est.loss_curve_[-1]
    est._no_improvement_count = int(_number(state.get("stall_stale", 0)))
    best = _number(state.get("stall_best", math.inf))
    keep = True
    if est.early_stopping:
        before = -math.inf if est.best_validation_score_ is None else float(est.best_validation_score_)
        est.validation_scores_ = [*(est.validation_scores_ or []), *floats(result.validation_scores)]
        est.best_validation_score_ = -best
        keep = -best > before  # no better score in this run: scikit-learn keeps the earlier best weights
    else:
        est.best_loss_ = best
    if keep:
        est._fitted(model)
    else:
        est.coefs_, est.intercepts_ = start
    est._optimizer = OptimizerState(est.solver, state, next_rate(est, state))
    if result.interrupted:
        warnings.warn("Training interrupted by user.", stacklevel=5)
    elif not incremental and done == est.max_iter and not result.stopped_early:
        max_iter_reached(est)


def next_rate(est, state: dict) -> float:
    """The step size the next epoch takes (scikit-learn's ``_optimizer.learning_rate``)."""
    rate = float(est.learning_rate_init) * _number(state.get("rate_scale", 1.0))
    if est.solver == "adam":
        t = int(_number(state.get("t", 0)))
        return rate * math.sqrt(1 - est.beta_2 ** t) / (1 - est.beta_1 ** t) if t else rate
    if est.learning_rate == "invscaling":
        return rate / (est.t_ + 1) ** float(est.power_t)
    return rate


def _number(value) -> float:
    """A counter of the optimizer's state (a host number, or a device scalar) as a float."""
    return float(to_numpy(value)) if is_device_array(value) else float(value)

