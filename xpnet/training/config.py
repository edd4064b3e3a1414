"""How to train: :class:`TrainConfig`, every option of a run, checked once."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..core.init import SEEDS
from ..core.losses import REDUCTIONS
from ..engine.plan import CHOICES as KERNEL_CHOICES
from ..errors import Interval, XpnetValueError
from .options import declared, option, validate_all
from .schedules import Schedule, get_schedule

OPTIMIZERS = ("sgd", "adam")
L2_SCALINGS = ("objective", "batch")
POSITIVE = Interval(0, None, "neither")
POSITIVE_INT = Interval(0, None, "neither", integer=True)
NON_NEGATIVE = Interval(0, None)
BELOW_ONE = Interval(0, 1, "left")
FRACTION = Interval(0, 1, "neither")


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`fit` trains: everything but the model, the data and the state of a run.

    Every field is declared once with its :class:`~xpnet.training.options.Option` (help,
    check, scikit-learn name); the command line's flags, ``--config`` files, checkpoints
    and the scikit-learn estimators are generated from it. Checked when made: a bad value
    raises a clear error naming the field.
    """

    epochs: int = option(1000, "passes over the data (full batch: one update each)", POSITIVE_INT,
                         metavar="N", sklearn="max_iter")
    learning_rate: float = option(0.1, "step size: Trask's alpha, WildML's epsilon; the schedule's base rate",
                                  POSITIVE, metavar="RATE", sklearn="learning_rate_init")
    l2: float = option(0.0, "L2 strength on the weights (WildML's reg_lambda); biases are not penalised",
                       NON_NEGATIVE, metavar="LAMBDA", sklearn="alpha")
    reduction: str = option("mean", "mean: average the gradient over a batch's rows; sum: add it up (the "
                            "tutorials)", REDUCTIONS)
    batch_size: int | None = option(None, "rows per update, reshuffled every epoch; None (or >= the rows): full "
                                    "batch", POSITIVE_INT, optional=True, metavar="B", sklearn="batch_size")
    shuffle: bool = option(True, "reshuffle the rows every epoch (minibatches only)", bool, sklearn="shuffle")
    optimizer: str = option("sgd", "sgd: gradient descent, with momentum; adam: Adam (beta1, beta2, epsilon)",
                            OPTIMIZERS, sklearn="solver")
    momentum: float = option(0.0, "SGD momentum in [0, 1): v = MU*v + g, step -RATE*v (0: off)", BELOW_ONE,
                             hint="e.g. 0.9; 0 turns it off", metavar="MU", sklearn="momentum")
    nesterov: bool = option(False, "Nesterov momentum (needs momentum > 0)", bool, sklearn="nesterovs_momentum")
    beta1: float = option(0.9, "Adam: decay of the gradient's running mean", BELOW_ONE, hint="e.g. 0.9 and 0.999",
                          metavar="B1", sklearn="beta_1")
    beta2: float = option(0.999, "Adam: decay of the squared gradient's running mean", BELOW_ONE,
                          hint="e.g. 0.9 and 0.999", metavar="B2", sklearn="beta_2")
    epsilon: float = option(1e-8, "Adam: added to the root of that mean", POSITIVE, metavar="EPS",
                            sklearn="epsilon")
    schedule: Schedule = option(Schedule(), "the learning-rate schedule (a name is accepted too); its own "
                                "options are Schedule's")
    clip_value: float | None = option(None, "clip every gradient entry to [-C, C], Trask's delta trimming "
                                      "(None: off)", POSITIVE, optional=True, metavar="C")
    clip_norm: float | None = option(None, "rescale all gradients together to global L2 norm <= N (None: off)",
                                     POSITIVE, optional=True, metavar="N")
    early_stopping: bool = option(False, "stop when the validation loss has not improved for patience epochs and "
                                  "restore the best weights", bool, sklearn="early_stopping")
    validation_fraction: float = option(0.1, "early stopping without validation data: the fraction of the rows "
                                        "held out", FRACTION, hint="e.g. 0.1", metavar="F",
                                        sklearn="validation_fraction")
    patience: int = option(10, "epochs without a better validation loss before early stopping", POSITIVE_INT,
                           metavar="EPOCHS")
    tol: float | None = option(None, "stop when the epoch's training loss (or validation score) improved by less "
                               "than TOL for more than n_iter_no_change epochs in a row (scikit-learn's rule; "
                               "None: off)", NON_NEGATIVE, optional=True, metavar="TOL", sklearn="tol")
    n_iter_no_change: float = option(10, "with tol: epochs without progress allowed",
                                     Interval(0, None, "neither", integer=True, inf=True), metavar="K",
                                     sklearn="n_iter_no_change")
    l2_scaling: str = option("objective", "objective: l2/2 ||W||^2 is part of the objective; batch: of each "
                             "batch's summed loss (scikit-learn's alpha)", L2_SCALINGS)
    seed: int | None = option(None, "seeds shuffling, dropout masks and the validation split (None: the model's "
                              "seed)", SEEDS, optional=True, hint="or None for the model's seed",
                              sklearn="random_state")
    log_every: int | None = option(None, "epochs between logged losses (None: about 20 points)", POSITIVE_INT,
                                   optional=True, metavar="N")
    kernels: str | None = option(None, "whole-pass kernels allowed: auto (numba's compiled kernels when numba is "
                                 "installed, else NumPy's), numpy (NumPy's only) or jit (numba's only); None: the "
                                 "model's", KERNEL_CHOICES, optional=True)
    divergence_factor: float | None = option(1e6, "a logged loss this many times the first is divergence (None: "
                                             "only NaN/Inf)", Interval(1, None, "neither"), optional=True,
                                             metavar="F")

    def __post_init__(self):
        object.__setattr__(self, "schedule", get_schedule(self.schedule))
        validate_all(self)
        if self.nesterov and not self.momentum:
            raise XpnetValueError("nesterov=True needs momentum > 0, e.g. momentum=0.9")
        if self.optimizer == "adam" and self.momentum:
            raise XpnetValueError("momentum applies to optimizer='sgd'; Adam has beta1 instead")
        if self.schedule.name == "adaptive" and self.tol is None:
            raise XpnetValueError("schedule='adaptive' lowers the rate when training stalls, which needs tol "
                                  "(e.g. tol=1e-4 with n_iter_no_change=10)")

    def to_dict(self) -> dict:
        """JSON-ready fields (the schedule as its own dict): what checkpoints record."""
        return {**dataclasses.asdict(self), "schedule": dataclasses.asdict(self.schedule)}

    @classmethod
    def from_dict(cls, record: dict) -> TrainConfig:
        """The config :meth:`to_dict` recorded (fields it lacks take their defaults, as in a
        record written before they existed); an unknown key is a clear error."""
        record = dict(record)
        schedule = record.pop("schedule", "constant")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise XpnetValueError(f"unknown training options {unknown}; known ones are {sorted(known)}")
        if isinstance(schedule, dict):
            schedule = Schedule(**schedule)
        return cls(schedule=schedule, **record)


OPTIONS = {f.name: opt for f, opt in declared(TrainConfig)}  # field name: its Option


def check(name: str, value):
    """``value`` checked as :class:`TrainConfig`'s field ``name`` checks it (for the optimizers
    made without a config); a clear error naming the option when it fails."""
    return OPTIONS[name].validate(value)
