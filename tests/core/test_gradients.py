"""Backprop against central finite differences, float64, every activation x output/loss."""

import itertools

import numpy as np
import pytest

import xpnet
from xpnet.core.network import gradients
from xpnet.engine.numpy_ops import get_ops

CASES = [  # (hidden activation, output, loss)
    *((act, "softmax", "cross_entropy") for act in ("sigmoid", "tanh", "relu")),
    *((act, "sigmoid", "squared") for act in ("sigmoid", "tanh", "relu")),
    *((act, "sigmoid", "binary_cross_entropy") for act in ("sigmoid", "tanh", "relu")),
    *((act, "identity", "squared") for act in ("sigmoid", "tanh", "relu")),
    *((act, "exp", "poisson") for act in ("sigmoid", "tanh", "relu")),  # half Poisson deviance, log link
]


def objective(model, X, T, l2, reduction):
    return float(model.objective(model.summed_loss(X, T), X.shape[0], l2, reduction))


def numeric_gradient(model, X, T, l2, reduction, params, eps=1e-6):
    """Central differences of the (unnormalised) objective, one parameter entry at a time."""
    grads = []
    for k, P in enumerate(params):
        host = xpnet.to_numpy(P).copy()
        G = np.zeros_like(host)
        for idx in np.ndindex(host.shape):
            values = []
            for step in (eps, -eps):
                probe = host.copy()
                probe[idx] += step
                replace(model, k, model.backend.asarray(probe, model.dtype))
                values.append(objective(model, X, T, l2, reduction))
            G[idx] = (values[0] - values[1]) / (2 * eps)
        replace(model, k, model.backend.asarray(host, model.dtype))
        grads.append(G)
    return grads


def replace(model, k, value):
    params = model.parameters()
    params[k] = value
    model.set_parameters(params)


@pytest.mark.parametrize("act, output, loss", CASES)
@pytest.mark.parametrize("l2, bias", [(0.0, True), (0.3, True), (0.3, False)])
def test_backprop_matches_finite_differences(backend, act, output, loss, l2, bias):
    if "float64" not in backend.dtype_names():
        pytest.skip("finite differences need float64")
    rng = np.random.default_rng(7)
    n_out = 3 if output == "softmax" else 2
    model = xpnet.MLP([3, 4, 3, n_out], activation=act, output=output, loss=loss, bias=bias,
                      init="xavier", dtype="float64", backend=backend, seed=2)
    X = model.as_inputs(rng.normal(size=(5, 3)))
    y = rng.integers(0, n_out, size=5) if output == "softmax" else rng.uniform(0.1, 0.9, size=(5, n_out))
    T = model.as_targets(y, 5)
    if act == "relu":  # keep pre-activations away from the kink at 0
        model.b = [b + 0.05 for b in model.b] if bias else None
    for reduction in ("mean", "sum"):
        grads = gradients(get_ops(model.backend), model.spec, model.W, model.b, X, T,
                          X.shape[0] if reduction == "mean" else None)
        dW, db = grads.dW, grads.db
        analytic = [xpnet.to_numpy(g + l2 * W) for g, W in zip(dW, model.W)]
        analytic += [xpnet.to_numpy(g) for g in (db or [])]
        # With reduction="sum" the reported value is J/N, J = sum_n loss_n + l2/2 ||W||^2,
        # and training steps on dJ = N * d(reported).
        scale = 5 if reduction == "sum" else 1
        numeric = numeric_gradient(model, X, T, l2, reduction, model.parameters())
        for a, n in itertools.zip_longest(analytic, numeric):
            np.testing.assert_allclose(a, n * scale, rtol=1e-5, atol=1e-7)
