"""Learning-rate schedules: the rate of each epoch from the base rate.

    >>> from xpnet.training.schedules import Schedule, get_schedule
    >>> Schedule("annealing", decay=0.01).rate(0.1, epoch=100, epochs=1000)
    0.05
    >>> get_schedule("step").rate(1.0, epoch=250, epochs=1000)  # step=100, gamma=0.5
    0.25

Schedules give the learning rate of epoch ``t`` (0-based: the number of epochs already
done; in full-batch training that is the update count, as in WildML) from the base
rate ``lr0``:

==============  =========================================================
``constant``    ``lr0``
``annealing``   ``lr0 / (1 + decay * t)``      (WildML's exercise)
``step``        ``lr0 * gamma ** floor(t / step)``
``cosine``      ``min_rate + (lr0 - min_rate) * (1 + cos(pi * t / T)) / 2``, T = epochs
``invscaling``  ``lr0 / (t * N + 1) ** power_t``, N = samples per epoch (scikit-learn's)
``adaptive``    ``lr0``, divided by 5 each time the training stalls (scikit-learn's; needs
                ``tol``, see :class:`xpnet.TrainConfig`); training stops once it is at most 1e-6
==============  =========================================================

The optimizers multiply the scheduled rate by their ``rate_scale`` (1 unless ``adaptive``
lowered it), which is part of their state, so a resumed run continues with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import Interval, XpnetTypeError
from .options import option, validate_all

SCHEDULES = ("constant", "annealing", "step", "cosine", "invscaling", "adaptive")
NON_NEGATIVE = Interval(0, None)


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule by name, with its parameters (see the module docstring)."""

    name: str = option("constant", "learning-rate schedule over epochs t: constant; annealing RATE/(1+DECAY*t); "
                       "step RATE*GAMMA**floor(t/STEP); cosine from RATE down to MIN_RATE; invscaling "
                       "RATE/(t*N+1)**POWER_T; adaptive: RATE divided by 5 whenever training stalls (needs --tol)",
                       SCHEDULES, alias="schedule", sklearn="learning_rate")
    decay: float = option(0.001, "annealing: DECAY in RATE/(1+DECAY*t)", NON_NEGATIVE, alias="lr_decay",
                          metavar="DECAY")
    step: int = option(100, "step: epochs between drops", Interval(0, None, "neither", integer=True),
                       alias="lr_step", metavar="STEP")
    gamma: float = option(0.5, "step: factor applied at each drop", Interval(0, None, "neither"),
                          alias="lr_gamma", metavar="GAMMA")
    min_rate: float = option(0.0, "cosine: the rate reached at the end", NON_NEGATIVE, metavar="RATE")
    power_t: float = option(0.5, "invscaling: the exponent", NON_NEGATIVE, metavar="P", sklearn="power_t")

    def __post_init__(self):
        validate_all(self)

    def rate(self, learning_rate: float, epoch: int, epochs: int, samples: int = 1) -> float:
        """The learning rate for epoch ``epoch`` (0-based) of ``epochs``, from base ``learning_rate``
        (``samples``: rows per epoch, for ``invscaling``)."""
        if self.name in ("constant", "adaptive"):
            return learning_rate
        if self.name == "invscaling":
            return learning_rate / (epoch * samples + 1) ** self.power_t
        if self.name == "annealing":
            return learning_rate / (1 + self.decay * epoch)
        if self.name == "step":
            return learning_rate * self.gamma ** (epoch // self.step)
        return self.min_rate + (learning_rate - self.min_rate) * (1 + math.cos(math.pi * epoch / epochs)) / 2


def get_schedule(schedule) -> Schedule:
    """A :class:`Schedule` from a name (default parameters) or a Schedule itself."""
    if isinstance(schedule, Schedule):
        return schedule
    if not isinstance(schedule, str):
        raise XpnetTypeError(f"schedule={schedule!r} must be a name ({', '.join(SCHEDULES)}) "
                             "or an xpnet.training.schedules.Schedule")
    return Schedule(schedule)
