"""How to train: :class:`TrainConfig`, every option of a run, checked once."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..core.init import SEEDS
from ..core.losses import REDUCTIONS
from ..engine.kernels import CHOICES as KERNEL_CHOICES
from ..errors import Interval, XpnetValueError, check_bool, check_choice, check_positive
from . import optim

L2_SCALINGS = ("objective", "batch")


FRACTION = Interval(0, 1, "neither")


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`fit` trains: everything but the model, the data and the state of a run.

    Shared by the command line (its flags), checkpoints (``to_dict``) and the scikit-learn
    estimators. Checked when made: a bad value raises a clear error naming the field.
    """

    epochs: int = 1000  # passes over the data (full batch: updates)
    learning_rate: float = 0.1  # step size: Trask's alpha, WildML's epsilon; the schedule's base rate
    l2: float = 0.0  # L2 strength on the weights (WildML's reg_lambda); biases are not penalised
    reduction: str = "mean"  # "mean": average the gradient over a batch's rows; "sum": add it up (the tutorials)
    batch_size: int | None = None  # rows per update; None (or >= N) is full batch
    shuffle: bool = True  # reshuffle the rows every epoch (minibatches only)
    optimizer: str = "sgd"  # "sgd" | "adam"
    momentum: float = 0.0  # SGD momentum in [0, 1)
    nesterov: bool = False  # Nesterov momentum (needs momentum > 0)
    beta1: float = 0.9  # Adam: decay of the gradient's running mean
    beta2: float = 0.999  # Adam: decay of the squared gradient's running mean
    epsilon: float = 1e-8  # Adam: added to the root of that mean
    schedule: optim.Schedule = optim.Schedule()  # learning-rate schedule (a name is accepted too)
    clip_value: float | None = None  # clip every gradient entry to [-clip_value, clip_value]
    clip_norm: float | None = None  # rescale all gradients together to global norm <= clip_norm
    early_stopping: bool = False  # stop when the validation loss has not improved for `patience` epochs
    validation_fraction: float = 0.1  # early stopping without validation_data: rows held out of X
    patience: int = 10  # epochs without a better validation loss before stopping
    tol: float | None = None  # stall: the epoch's training loss (or validation score) improved by less than tol ...
    n_iter_no_change: float = 10  # ... for more than this many epochs in a row (scikit-learn's rule): stop
    l2_scaling: str = "objective"  # "objective": l2/2 ||W||^2 is part of the objective; "batch": of each batch's sum
    seed: int | None = None  # shuffling, dropout masks and the validation split (None: the model's seed)
    log_every: int | None = None  # epochs between logged losses (None: about 20 points)
    kernels: str | None = None  # whole-pass kernels allowed: "auto" | "numpy" | "jit"; None: the model's
    divergence_factor: float | None = 1e6  # a logged loss this many times the first is divergence (None: NaN/Inf)

    def __post_init__(self):
        if isinstance(self.schedule, str):
            object.__setattr__(self, "schedule", optim.get_schedule(self.schedule))
        optim.get_schedule(self.schedule)
        check_positive("epochs", self.epochs, integer=True)
        check_positive("learning_rate", self.learning_rate)
        Interval(0, None).check("l2", self.l2)
        check_choice("reduction", self.reduction, REDUCTIONS)
        if self.batch_size is not None:
            check_positive("batch_size", self.batch_size, integer=True)
        for name in ("shuffle", "early_stopping"):
            check_bool(name, getattr(self, name))
        check_choice("optimizer", self.optimizer, optim.OPTIMIZERS)
        optim.check_options(momentum=self.momentum, nesterov=self.nesterov, clip_value=self.clip_value,
                            clip_norm=self.clip_norm)
        optim.check_adam(self.beta1, self.beta2, self.epsilon)
        if self.optimizer == "adam" and self.momentum:
            raise XpnetValueError("momentum applies to optimizer='sgd'; Adam has beta1 instead")
        FRACTION.check("validation_fraction", self.validation_fraction, "e.g. 0.1")
        check_positive("patience", self.patience, integer=True)
        if self.tol is not None:
            Interval(0, None).check("tol", self.tol)
        if self.schedule.name == "adaptive" and self.tol is None:
            raise XpnetValueError("schedule='adaptive' lowers the rate when training stalls, which needs tol "
                                  "(e.g. tol=1e-4 with n_iter_no_change=10)")
        Interval(0, None, "neither", integer=True, inf=True).check("n_iter_no_change", self.n_iter_no_change)
        check_choice("l2_scaling", self.l2_scaling, L2_SCALINGS)
        if self.seed is not None:
            SEEDS.check("seed", self.seed, "or None for the model's seed")
        if self.log_every is not None:
            check_positive("log_every", self.log_every, integer=True)
        if self.kernels is not None:
            check_choice("kernels", self.kernels, KERNEL_CHOICES)
        if self.divergence_factor is not None:
            Interval(1, None, "neither").check("divergence_factor", self.divergence_factor)

    def to_dict(self) -> dict:
        """JSON-ready fields (the schedule as its own dict)."""
        return {**dataclasses.asdict(self), "schedule": dataclasses.asdict(self.schedule)}
