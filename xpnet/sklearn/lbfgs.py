"""``solver="lbfgs"``: SciPy's L-BFGS-B on the flat parameter vector, over xpnet's full-batch gradient pass.

SciPy works on host float64 vectors, so per evaluation of the objective the parameters
cross to the backend once (one host-to-device copy of the vector, cut into ``W`` and ``b``
there) and the gradient comes back with the data loss in one vector (one device-to-host
copy); ``X`` and the targets stay on the device for the whole run. The L2 term is added
on the host, where the vector is.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import scipy.optimize

from ..backend import to_numpy
from ..core import losses
from ..core.activations import output_forward, overflow_quiet
from ..engine.numpy_ops import get_ops
from ..engine.plan import choose
from ..engine.threads import limit_threads
from ..mlp import MLP
from .arrays import is_device_array, to_host
from .messages import lbfgs_failed
from .weights import normalized


def fit(est, X, Y, sw, backend) -> None:
    """Train ``est`` (its ``coefs_`` are the start) on validated ``X`` (on ``backend``) and 2-D ``Y``."""
    weights, alpha = normalized(sw, float(est.alpha))
    loss = est._training_loss()
    model = est._network(est.coefs_, est.intercepts_, backend, loss="squared" if loss is losses.SQUARED_ERROR
                         else loss)
    objective = Objective(model, X, est._targets(Y), weights, alpha)
    theta = np.concatenate([np.ravel(to_host(a)) for a in list(est.coefs_) + list(est.intercepts_)])
    callback = None
    if est.verbose:
        def callback(intermediate_result):
            objective.iterations += 1
            print(f"Iteration {objective.iterations}, loss = {float(intermediate_result.fun):.8f}")
    with limit_threads(est.threads), overflow_quiet():
        result = scipy.optimize.minimize(objective, theta.astype(np.float64), method="L-BFGS-B", jac=True,
                                         callback=callback, options={"maxfun": int(est.max_fun),
                                                                     "maxiter": int(est.max_iter),
                                                                     "gtol": float(est.tol)})
        model.W, model.b = objective.unpack(result.x)
        value = float(result.fun)
        if loss is losses.SQUARED_ERROR and est.n_outputs_ > 1:  # report scikit-learn's units
            value = objective.value(result.x, losses.SQUARED_ERROR)
    est.n_iter_ = min(int(result.nit), int(est.max_iter))
    est.loss_ = value
    est._fitted(model)
    if result.status != 0:
        lbfgs_failed(est.n_iter_, result)


def gradient_pass(objective, W, b):
    """The full-batch gradients (summed over the rows) with the summed data loss, at ``(W, b)``:
    the pass the plan chooses for all rows (:func:`xpnet.engine.plan.choose`), chosen once."""
    return objective.pass_.call(W, b, objective.X, objective.T, None, True)


class Objective:
    """L-BFGS's ``theta -> (value, gradient)``: xpnet's full-batch gradient pass plus the L2 term,
    scikit-learn's objective ``(sum_n w_n loss_n + alpha/2 ||W||^2) / n`` (weights averaging 1)."""

    def __init__(self, model: MLP, X, y, weights, alpha: float):
        self.model, self.alpha, self.iterations = model, alpha, 0
        self.X = model.as_inputs(X)
        T = model.as_targets(y, self.X.shape[0])
        self.spec = model.spec
        if weights is not None:
            xp = model.xp
            w = model.backend.asarray(weights, model.dtype)
            T = xp.concat([T, xp.reshape(w, (T.shape[0], 1))], axis=1)
            self.spec = dataclasses.replace(model.spec, loss=losses.weighted(model.spec.loss))
        self.T, self.n = T, self.X.shape[0]
        self.pass_ = choose(get_ops(model.backend), self.spec, model.dtype_name, self.n, model.kernels)
        sizes = model.layer_sizes
        self.shapes = [(a, c) for a, c in zip(sizes[:-1], sizes[1:])] + [(c,) for c in sizes[1:]]
        self.n_weights = sum(a * c for a, c in zip(sizes[:-1], sizes[1:]))

    def unpack(self, theta):
        """Backend arrays ``(W, b)`` from the flat vector: one copy to the device, cut there."""
        model = self.model
        flat = model.backend.asarray(np.asarray(theta, dtype=model.dtype_name), model.dtype)
        arrays, start = [], 0
        for shape in self.shapes:
            size = math.prod(shape)
            arrays.append(model.xp.reshape(flat[start:start + size], shape))
            start += size
        k = len(self.shapes) // 2
        return arrays[:k], arrays[k:]

    def __call__(self, theta):
        W, b = self.unpack(theta)
        grads = gradient_pass(self, W, b)
        xp, loss = self.model.xp, grads.data_loss
        parts = [xp.reshape(g, (-1,)) for g in list(grads.dW) + list(grads.db)]
        on_device = is_device_array(loss)  # a kernel may hand a host number
        if on_device:
            parts.append(xp.reshape(xp.astype(loss, parts[0].dtype), (1,)))
        flat = np.array(to_numpy(xp.concat(parts)), dtype=np.float64)  # the one transfer of this evaluation
        flat, data_loss = (flat[:-1], float(flat[-1])) if on_device else (flat, float(loss))
        weights = theta[:self.n_weights]
        value = (data_loss + 0.5 * self.alpha * float(weights @ weights)) / self.n
        flat[:self.n_weights] += self.alpha * weights
        return value, flat / self.n

    def value(self, theta, loss) -> float:
        """The objective at ``theta`` with ``loss`` in place of the model's (for reporting)."""
        W, b = self.unpack(theta)
        spec = dataclasses.replace(self.spec, loss=losses.weighted(loss) if self.spec is not self.model.spec
                                   else loss)
        saved = self.model.W, self.model.b
        self.model.W, self.model.b = W, b
        try:
            Z = self.model.logits(self.X)
        finally:
            self.model.W, self.model.b = saved
        Y = output_forward(self.model.xp, spec.output, Z, spec.stable)
        weights = theta[:self.n_weights]
        return (float(spec.loss.total(self.model.xp, Z, Y, self.T, spec.stable))
                + 0.5 * self.alpha * float(weights @ weights)) / self.n
