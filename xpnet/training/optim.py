"""Gradient descent: SGD with (Nesterov) momentum, Adam, L2 and clipping.

    >>> import numpy as np
    >>> from xpnet import optim
    >>> sgd = optim.SGD(np, n_penalised=1, momentum=0.9)
    >>> sgd.step([np.ones(2)], [np.full(2, 0.5)], learning_rate=0.1)[0].tolist()
    [0.95, 0.95]

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

Learning-rate schedules: :mod:`xpnet.training.schedules`.
"""

from __future__ import annotations

import math
import operator
from itertools import repeat

from ..errors import XpnetValueError
from .config import OPTIMIZERS, check
from .schedules import SCHEDULES, Schedule, get_schedule

__all__ = ["OPTIMIZERS", "SCHEDULES", "SGD", "Adam", "Schedule", "clip_gradients", "get_schedule", "make"]



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
        for name, value in (("l2", l2), ("momentum", momentum), ("nesterov", nesterov), ("clip_value", clip_value),
                            ("clip_norm", clip_norm)):
            check(name, value)
        if nesterov and not momentum:
            raise XpnetValueError("nesterov=True needs momentum > 0, e.g. momentum=0.9")
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
        for name, value in (("beta1", beta1), ("beta2", beta2), ("epsilon", epsilon)):
            check(name, value)
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

    Both on the device, with the limits as Python numbers: no boolean masks (which make some
    libraries wait for the device) and no host round trip. The norm rescaling is
    ``g * (n / max(||g||, n))``: exactly 1 when already within the norm, so nothing changes then.
    """
    if clip_value is not None:
        grads = [xp.minimum(xp.maximum(g, -clip_value), clip_value) for g in grads]
    if clip_norm is not None:
        total = xp.sum(grads[0] * grads[0])
        for g in grads[1:]:
            total = total + xp.sum(g * g)
        scale = clip_norm / xp.maximum(xp.sqrt(total), clip_norm)
        grads = [g * scale for g in grads]
    return grads
