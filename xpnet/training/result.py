"""What training returns and what a callback sees: :class:`FitResult` and :class:`TrainEvent`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


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
