"""Gradient descent: SGD with (Nesterov) momentum, Adam, L2, clipping, rate schedules.

    >>> from xpnet import optim
    >>> optim.Schedule("annealing", decay=0.01).rate(0.1, epoch=100, epochs=1000)
    0.05
    >>> optim.get_schedule("step").rate(1.0, epoch=250, epochs=1000)  # step=100, gamma=0.5
    0.25

One update of :class:`SGD` on parameters ``p`` with gradients ``g`` of the data loss, at
learning rate ``lr`` (``mu`` the momentum, ``l2`` the L2 strength, which applies to the
weights only):

1. ``g = g + l2 * W``                        (the gradient of the objective; biases unchanged)
2. clip: ``g = clip(g, -c, c)`` (``clip_value``), then ``g = g * min(1, n / ||g||)`` with
   ``||g||`` the norm of ALL gradients together (``clip_norm``, "global norm")
3. ``v = mu * v + g``;  direction ``d = v``, or ``d = g + mu * v`` with Nesterov
   (PyTorch's formulation; ``v`` starts at zero and lives on the device)
4. ``p = p - lr * d``

With ``momentum=0`` and no clipping this is exactly ``p - lr * (g + l2 * W)``, the plain
full-batch step of the tutorials, operation for operation.

:class:`Adam` (Kingma and Ba, in the form scikit-learn uses) replaces steps 3 and 4 with,
at update ``t`` (1-based), ``beta1``, ``beta2`` and ``epsilon``::

    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    p = p - lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + epsilon)

Both keep their state on the device; :meth:`SGD.state` / :meth:`Adam.state` give it as
named arrays (checkpoints save them) and ``load_state`` continues from them exactly.

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
import operator
from dataclasses import dataclass
from itertools import repeat

from ..errors import Interval, XpnetTypeError, XpnetValueError, check_bool, check_choice, check_positive

SCHEDULES = ("constant", "annealing", "step", "cosine", "invscaling", "adaptive")
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule by name, with its parameters (see the module docstring)."""

    name: str = "constant"  # constant | annealing | step | cosine | invscaling | adaptive
    decay: float = 0.001  # annealing: k in lr0 / (1 + k t)
    step: int = 100  # step: epochs between drops
    gamma: float = 0.5  # step: factor applied at each drop
    min_rate: float = 0.0  # cosine: the rate reached at the end
    power_t: float = 0.5  # invscaling: the exponent

    def __post_init__(self):
        check_choice("schedule", self.name, SCHEDULES)
        _check_nonnegative("lr_decay", self.decay)
        check_positive("lr_step", self.step, integer=True)
        check_positive("lr_gamma", self.gamma)
        _check_nonnegative("min_rate", self.min_rate)
        _check_nonnegative("power_t", self.power_t)

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
                             "or an xpnet.optim.Schedule")
    return Schedule(schedule)


class SGD:
    """Gradient descent with optional (Nesterov) momentum, L2 and clipping.

    Parameters
    ----------
    xp : namespace
        The array namespace of the parameters (the velocity is kept there, on the device).
    n_penalised : int
        The first ``n_penalised`` parameters are weights and get the L2 term; the rest
        (biases, batch-norm scales and shifts) do not.
    l2 : float, default 0
    momentum : float in [0, 1), default 0
    nesterov : bool, default False
        Needs ``momentum > 0``.
    clip_value : float, optional
        Clip every gradient entry to ``[-clip_value, clip_value]`` (Trask's "delta trimming").
    clip_norm : float, optional
        Rescale all gradients together so their global L2 norm is at most ``clip_norm``.
    """

    def __init__(self, xp, n_penalised: int, *, l2: float = 0.0, momentum: float = 0.0, nesterov: bool = False,
                 clip_value: float | None = None, clip_norm: float | None = None):
        _check_nonnegative("l2", l2)
        check_options(momentum=momentum, nesterov=nesterov, clip_value=clip_value, clip_norm=clip_norm)
        self.xp, self.n_penalised, self.l2 = xp, n_penalised, l2
        self.momentum, self.nesterov = momentum, nesterov
        self.clip_value, self.clip_norm = clip_value, clip_norm
        self.velocity: list | None = None  # device arrays once momentum has seen a step
        self.rate_scale = 1.0  # multiplies every learning rate (the adaptive schedule lowers it)

    def step(self, params: list, grads: list, learning_rate: float, l2_scale: float = 1.0) -> list:
        """New parameters after one update (``params`` are not modified in place).

        ``l2_scale`` multiplies the L2 term: the training loop passes ``B / N`` for a
        minibatch of ``B`` of ``N`` samples under ``reduction="sum"``.
        """
        if self.l2 or self.momentum or self.clip_value is not None or self.clip_norm is not None:
            grads = self._with_l2(params, grads, self.l2 * l2_scale if l2_scale != 1.0 else self.l2)
            grads = clip_gradients(self.xp, grads, self.clip_value, self.clip_norm)
        directions = self._directions(grads) if self.momentum else grads
        learning_rate *= self.rate_scale
        # p - lr * d for each parameter, through map (no Python frame: tiny nets spend their time in calls)
        if learning_rate == 1:  # Trask's alpha 1: the same bits without a product per parameter
            return list(map(operator.sub, params, directions))
        return list(map(operator.sub, params, map(operator.mul, repeat(learning_rate), directions)))

    def reset(self) -> None:
        """Forget the state (as if no update had been made)."""
        self.velocity, self.rate_scale = None, 1.0

    def state(self) -> dict:
        """The optimizer's arrays by name (``{"velocity_0": ..., ...}``, and ``rate_scale`` when
        it is not 1; empty for plain gradient descent)."""
        return {**{f"velocity_{i}": v for i, v in enumerate(self.velocity or [])}, **self._scale_state()}

    def load_state(self, state: dict, backend) -> None:
        """Continue from :meth:`state` of an earlier run (arrays of any backend, or NumPy)."""
        if any(name.startswith("velocity_") for name in state):
            self.velocity = _numbered(state, "velocity", backend)
        self._load_scale(state)

    def _scale_state(self) -> dict:
        import numpy as np

        return {} if self.rate_scale == 1.0 else {"rate_scale": np.asarray(self.rate_scale, dtype=np.float64)}

    def _load_scale(self, state: dict) -> None:
        self.rate_scale = float(_host(state["rate_scale"])) if "rate_scale" in state else 1.0

    def _with_l2(self, params, grads, l2):
        if not l2:
            return list(grads)
        n = self.n_penalised
        return [g + l2 * p for p, g in zip(params[:n], grads[:n])] + list(grads[n:])

    def _directions(self, grads):
        mu = self.momentum
        if self.velocity is None:
            self.velocity = [g for g in grads]  # v = mu * 0 + g
        else:
            self.velocity = [mu * v + g for v, g in zip(self.velocity, grads)]
        if self.nesterov:
            return [g + mu * v for g, v in zip(grads, self.velocity)]
        return self.velocity


class Adam(SGD):
    """Adam: per-entry step sizes from running means of the gradient and its square.

    Parameters are those of :class:`SGD` without momentum, plus ``beta1``, ``beta2`` in
    [0, 1) and ``epsilon`` > 0 (see the module docstring). L2 and clipping apply to the
    gradient first, as for SGD.
    """

    def __init__(self, xp, n_penalised: int, *, l2: float = 0.0, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, clip_value: float | None = None, clip_norm: float | None = None):
        super().__init__(xp, n_penalised, l2=l2, clip_value=clip_value, clip_norm=clip_norm)
        check_adam(beta1, beta2, epsilon)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.m: list = []  # running means of the gradient and of its square (empty before the first update)
        self.v: list = []
        self.t = 0  # updates done

    def step(self, params: list, grads: list, learning_rate: float, l2_scale: float = 1.0) -> list:
        grads = self._with_l2(params, grads, self.l2 * l2_scale)
        grads = clip_gradients(self.xp, grads, self.clip_value, self.clip_norm)
        b1, b2 = self.beta1, self.beta2
        if not self.m:
            self.m = [(1 - b1) * g for g in grads]
            self.v = [(1 - b2) * (g * g) for g in grads]
        else:
            self.m = [b1 * m + (1 - b1) * g for m, g in zip(self.m, grads)]
            self.v = [b2 * v + (1 - b2) * (g * g) for v, g in zip(self.v, grads)]
        self.t += 1
        rate = learning_rate * self.rate_scale * math.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        sqrt, eps = self.xp.sqrt, self.epsilon
        return [p - rate * m / (sqrt(v) + eps) for p, m, v in zip(params, self.m, self.v)]

    def reset(self) -> None:
        self.m, self.v = [], []
        self.t, self.rate_scale = 0, 1.0

    def state(self) -> dict:
        """``{"m_0": ..., "v_0": ..., "t": 0-d array}`` (empty before the first update)."""
        if not self.m:
            return self._scale_state()
        import numpy as np

        out = {f"m_{i}": m for i, m in enumerate(self.m)}
        out.update({f"v_{i}": second for i, second in enumerate(self.v)})
        out["t"] = np.asarray(self.t, dtype=np.float64)  # checkpoints hold floats (exact below 2**53)
        return {**out, **self._scale_state()}

    def load_state(self, state: dict, backend) -> None:
        if "t" in state:
            self.m, self.v = _numbered(state, "m", backend), _numbered(state, "v", backend)
            self.t = int(_host(state["t"]))
        self._load_scale(state)


def make(config, xp, n_penalised: int) -> SGD:
    """The optimizer a :class:`xpnet.TrainConfig` asks for (``optimizer="sgd"`` or ``"adam"``)."""
    common = dict(l2=config.l2, clip_value=config.clip_value, clip_norm=config.clip_norm)
    if config.optimizer == "adam":
        return Adam(xp, n_penalised, beta1=config.beta1, beta2=config.beta2, epsilon=config.epsilon, **common)
    return SGD(xp, n_penalised, momentum=config.momentum, nesterov=config.nesterov, **common)


def _host(a):
    from ..backend import to_numpy

    return to_numpy(a)


def _numbered(state: dict, prefix: str, backend) -> list:
    """The arrays ``<prefix>_0, <prefix>_1, ...`` of ``state`` in order, on ``backend``."""
    names = sorted((name for name in state if name.rsplit("_", 1)[0] == prefix),
                   key=lambda name: int(name.rsplit("_", 1)[1]))
    return [backend.asarray(_host(state[name])) for name in names]


def clip_gradients(xp, grads: list, clip_value: float | None = None, clip_norm: float | None = None) -> list:
    """Clip entries to ``[-clip_value, clip_value]``, then rescale to global norm <= ``clip_norm``.

    The norm rescaling is ``g * (n / max(||g||, n))``: exactly 1 when already within the
    norm, so nothing changes then; computed on the device (no host round trip).
    """
    if clip_value is not None:
        grads = [xp.clip(g, min=-clip_value, max=clip_value) for g in grads]
    if clip_norm is not None:
        total = xp.sum(grads[0] * grads[0])
        for g in grads[1:]:
            total = total + xp.sum(g * g)
        norm = xp.sqrt(total)
        limit = xp.asarray(clip_norm, dtype=norm.dtype, device=_device(norm))
        scale = limit / xp.maximum(norm, limit)
        grads = [g * scale for g in grads]
    return grads


def check_options(*, momentum=0.0, nesterov=False, clip_value=None, clip_norm=None) -> None:
    """Clear errors for bad optimizer options."""
    Interval(0, 1, "left").check("momentum", momentum, "e.g. 0.9; 0 turns it off")
    check_bool("nesterov", nesterov)
    if nesterov and not momentum:
        raise XpnetValueError("nesterov=True needs momentum > 0, e.g. momentum=0.9")
    for name, value in (("clip_value", clip_value), ("clip_norm", clip_norm)):
        if value is not None:
            check_positive(name, value)


def check_adam(beta1, beta2, epsilon) -> None:
    """Clear errors for bad Adam options."""
    for name, value in (("beta1", beta1), ("beta2", beta2)):
        Interval(0, 1, "left").check(name, value, "e.g. 0.9 and 0.999")
    check_positive("epsilon", epsilon)


def _check_nonnegative(name, value):
    Interval(0, None).check(name, value)


def _device(x):
    import array_api_compat

    return array_api_compat.device(x)
