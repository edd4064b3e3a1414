"""The estimators' parameters: their checks, and the :class:`~xpnet.TrainConfig` they make.

Every ``TrainConfig`` and ``Schedule`` field that scikit-learn has declares its parameter's
name (``Option.sklearn`` in :mod:`xpnet.training.options`). :data:`DECLARED` collects them;
:func:`check_params` checks those parameters with the field's own check (named as
scikit-learn names them), and :func:`train_config` passes their values to the config. Where
scikit-learn's meaning or domain differs from the field's, the code says so next to the
explicit value; the rest (``activation``, ``max_fun``, ``backend``...) are the estimators' own.

    >>> from xpnet.sklearn.params import DECLARED
    >>> sorted(d.name for d in DECLARED)[:3]
    ['alpha', 'batch_size', 'beta_1']
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from typing import Any, NamedTuple

import numpy as np

from ..core.activations import HIDDEN, IDENTITY
from ..errors import Interval, XpnetValueError, check_bool, check_choice
from ..training.config import TrainConfig
from ..training.options import Option, declared
from ..training.schedules import Schedule

ACTIVATIONS = {"identity": IDENTITY, "logistic": HIDDEN["sigmoid"], "tanh": HIDDEN["tanh"], "relu": HIDDEN["relu"]}
SOLVERS = ("lbfgs", "sgd", "adam")
SCHEDULES = ("constant", "invscaling", "adaptive")
DTYPES = (None, "float32", "float64")
SEED = np.iinfo(np.int32).max  # seeds for xpnet's shuffles are drawn below this from random_state

COUNT = Interval(1, None, integer=True)
UNIT = Interval(0, 1, "left")
NONNEGATIVE = Interval(0, None)



class Declared(NamedTuple):
    """A ``TrainConfig`` or ``Schedule`` field that scikit-learn has, with the name it has there."""

    owner: type  # TrainConfig or Schedule
    field: dataclasses.Field
    option: Option
    name: str  # the scikit-learn parameter


DECLARED = [Declared(owner, field, opt, opt.sklearn) for owner in (TrainConfig, Schedule)
            for field, opt in declared(owner) if opt.sklearn]

# Parameters whose scikit-learn domain is not their field's: checked in check_params itself.
DOMAIN_DIFFERS = {
    "batch_size",  # "auto" as well as a count
    "solver",  # "lbfgs" as well (SciPy's L-BFGS-B, not xpnet.fit)
    "learning_rate",  # three of xpnet's schedules
    "validation_fraction",  # 0 allowed (the split only happens with early_stopping)
    "tol",  # a number: TrainConfig's None ("no stall rule") is not scikit-learn's
    "random_state",  # None, an int or a RandomState (checked by check_random_state at fit)
}


def hidden_sizes(est) -> list:
    """``hidden_layer_sizes`` as a list of ints (an int means one layer)."""
    sizes = est.hidden_layer_sizes
    sizes = [sizes] if isinstance(sizes, numbers.Number) or np.ndim(sizes) == 0 else list(sizes)
    if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and int(s) > 0 for s in sizes):
        raise XpnetValueError(f"hidden_layer_sizes={est.hidden_layer_sizes!r} must be whole numbers > 0, e.g. (100,)")
    return [int(s) for s in sizes]


def check_params(est) -> None:
    """Every parameter checked by name (NumPy numbers count as numbers), as scikit-learn's constraints."""
    for d in DECLARED:
        if d.name not in DOMAIN_DIFFERS:
            d.option.validate(getattr(est, d.name), argument=d.name)
    check_choice("solver", est.solver, SOLVERS)
    check_choice("learning_rate", est.learning_rate, SCHEDULES)
    if not (isinstance(est.batch_size, str) and est.batch_size == "auto"):
        COUNT.check("batch_size", est.batch_size, "or 'auto' for min(200, n_samples)")
    UNIT.check("validation_fraction", est.validation_fraction, "e.g. 0.1")
    NONNEGATIVE.check("tol", est.tol, "e.g. 1e-4")
    # the estimators' own parameters
    check_choice("activation", est.activation, tuple(ACTIVATIONS))
    COUNT.check("max_fun", est.max_fun, "e.g. 15000")
    check_bool("warm_start", est.warm_start)
    if not isinstance(est.verbose, (bool, np.bool_)):
        Interval(0, None, integer=True).check("verbose", est.verbose, "or True/False")
    check_choice("dtype", est.dtype, DTYPES)
    if est.threads is not None:
        COUNT.check("threads", est.threads, "or None for every core")
    hidden_sizes(est)


def batch_size(est, rows: int) -> int:
    """``batch_size`` for ``rows`` training rows: ``"auto"`` is ``min(200, rows)``; a larger one is
    clipped to ``rows`` with scikit-learn's warning."""
    if isinstance(est.batch_size, str):
        return min(200, rows)
    if est.batch_size > rows:
        warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                      stacklevel=6)  # the caller of fit (through train_config, the solver, _fit)
    return int(min(est.batch_size, rows))


def declared_values(est) -> tuple[dict, dict]:
    """``(config fields, schedule fields)``: each declared field with its scikit-learn parameter's value."""
    config: dict[str, Any] = {}
    schedule: dict[str, Any] = {}
    for d in DECLARED:
        (schedule if d.owner is Schedule else config)[d.field.name] = _plain(getattr(est, d.name), d.field.default)
    return config, schedule


def train_config(est, *, rows: int, incremental: bool, alpha: float, seed: int) -> tuple[TrainConfig, int]:
    """The :class:`TrainConfig` of a stochastic fit (sgd, adam) of ``rows`` rows, and the epoch
    it starts from (``initial_epoch`` of :func:`xpnet.fit`: a warm ``invscaling`` run continues).

    ``alpha``: the L2 strength rescaled with the sample weights; ``seed``: drawn from
    ``random_state`` for xpnet's shuffles.
    """
    config, schedule = declared_values(est)
    sgd = est.solver == "sgd"
    # -- where scikit-learn's parameter means something else than the field, explicitly --
    config.update(
        epochs=1 if incremental else config["epochs"],  # partial_fit is one epoch
        batch_size=batch_size(est, rows),  # "auto", and clipping
        l2=alpha,  # alpha / (2 * batch) per batch (l2_scaling="batch" below), rescaled with the sample weights
        momentum=config["momentum"] if sgd else 0.0,  # scikit-learn ignores momentum for adam
        early_stopping=False,  # scikit-learn's is the stall rule on a held-out score: xpnet.fit's validation_score
        seed=seed,  # random_state may be a RandomState: an int drawn from it
    )
    config["nesterov"] = config["nesterov"] and config["momentum"] > 0  # scikit-learn: only with momentum
    del config["validation_fraction"]  # the estimator splits the rows itself (scikit-learn's split)
    initial = 0
    if not sgd:
        schedule["name"] = "constant"  # scikit-learn applies learning_rate to sgd only
    elif schedule["name"] == "invscaling" and incremental:  # one epoch at lr0 / (t_ + 1) ** power_t exactly
        config["learning_rate"] /= (est.t_ + 1) ** schedule["power_t"]
        schedule["name"] = "constant"
    elif schedule["name"] == "invscaling":
        initial = int(round(est.t_ / rows))  # a warm fit continues the schedule from t_, in whole epochs
    log_every = 1 if est.verbose or incremental else config["epochs"]  # verbose prints every epoch
    # scikit-learn's units (a batch's mean loss, alpha per batch); no divergence rule but NaN/Inf
    fixed: dict[str, Any] = dict(reduction="mean", l2_scaling="batch", divergence_factor=None, log_every=log_every)
    return TrainConfig(schedule=Schedule(**schedule), **config, **fixed), initial


def _plain(value, default):
    """A parameter's value as the field's Python type (NumPy numbers accepted, as scikit-learn)."""
    if isinstance(default, bool) or type(value).__name__ == "bool_":
        return bool(value)
    if isinstance(value, numbers.Integral) and not isinstance(default, float):
        return int(value)
    if isinstance(value, numbers.Real):
        return value if math.isinf(value) and isinstance(default, int) else float(value)
    return value
