"""Batch norm and dropout: finite-difference gradients, running statistics, masks, inference."""

import numpy as np
import pytest
from conftest import available_backend, rtol_for

import xpnet
from xpnet import to_numpy
from xpnet.core import layers
from xpnet.core.network import forward, gradients
from xpnet.engine.numpy_ops import get_ops

SIZES = [3, 5, 4, 3]


def _problem(backend, activation, batch_norm, dropout):
    """A tiny float64 net with a fixed dropout mask; returns model, X, T, masks."""
    rng = np.random.default_rng(7)
    model = xpnet.MLP(SIZES, activation=activation, batch_norm=batch_norm, dtype="float64", backend=backend, seed=3)
    # random biases (and gamma/beta away from 1/0): with zero biases a ReLU unit whose inputs
    # are all dropped sits exactly on its kink, where finite differences mean nothing
    b = [backend.asarray(rng.normal(scale=0.5, size=w), "float64") for w in SIZES[1:]]
    extra = []
    if batch_norm:
        extra = [backend.asarray(rng.uniform(0.5, 1.5, w), "float64") for w in SIZES[1:-1]]
        extra += [backend.asarray(rng.normal(size=w), "float64") for w in SIZES[1:-1]]
    model.set_parameters(model.W + b + extra)
    X = backend.asarray(rng.normal(size=(8, SIZES[0])), "float64")
    T = model.as_targets(rng.integers(0, SIZES[-1], 8), 8)
    masks = None
    if dropout:
        masks = [layers.dropout_multipliers(backend.xp, backend.asarray(k), dropout, backend.dtype("float64"))
                 for k in layers.dropout_keep(rng, 8, SIZES[1:-1], dropout)]
    return model, X, T, masks


def _loss(model, X, T, masks):
    Z, _ = forward(get_ops(model.backend), model.spec, model.W, model.b, X, bn=model.bn, train=True, masks=masks)
    Y = xpnet.activations.output_forward(model.xp, model.spec.output, Z)
    return float(model.spec.loss.total(model.xp, Z, Y, T, True)) / X.shape[0]


def _analytic(model, X, T, masks):
    grads = gradients(get_ops(model.backend), model.spec, model.W, model.b, X, T, X.shape[0], bn=model.bn, masks=masks)
    return [np.asarray(to_numpy(g)) for g in grads.flat()]


def _numeric(model, X, T, masks, eps=1e-6):
    params = [np.array(to_numpy(p), dtype=np.float64) for p in model.parameters()]
    grads = []
    for k, p in enumerate(params):
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            values = []
            for sign in (1, -1):
                q = p.copy()
                q[idx] += sign * eps
                trial = [model.backend.asarray(a, "float64") for a in params[:k] + [q] + params[k + 1:]]
                model.set_parameters(trial)
                values.append(_loss(model, X, T, masks))
            g[idx] = (values[0] - values[1]) / (2 * eps)
        grads.append(g)
    model.set_parameters([model.backend.asarray(a, "float64") for a in params])
    return grads


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("batch_norm, dropout", [(True, 0.0), (False, 0.5), (True, 0.3)])
def test_gradients_match_central_differences(backend, dtype, activation, batch_norm, dropout):
    if dtype != "float64":
        pytest.skip("central differences need float64; this device has only float32")
    model, X, T, masks = _problem(backend, activation, batch_norm, dropout)
    analytic = _analytic(model, X, T, masks)
    numeric = _numeric(model, X, T, masks)
    assert len(analytic) == len(numeric) == 3 * 2 + (4 if batch_norm else 0)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-5, atol=1e-8)
    if dropout:  # the fixed mask matters: without it the gradient is different
        plain = _analytic(model, X, T, None)
        assert not np.allclose(plain[0], analytic[0])


def test_batch_norm_forward_normalizes_each_unit(backend, dtype):
    xp = backend.xp
    Z = backend.asarray(np.random.default_rng(0).normal(3.0, 2.0, size=(50, 4)), dtype)
    ones, zeros = (f((4,), dtype=Z.dtype, device=backend.device) for f in (xp.ones, xp.zeros))
    Y, Zhat, inv_std, mean, var = layers.batch_norm_train(xp, Z, ones, zeros)
    host = to_numpy(Y)
    np.testing.assert_allclose(host.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(host.std(axis=0), 1, rtol=1e-4)
    np.testing.assert_allclose(to_numpy(var), to_numpy(Z).var(axis=0), rtol=rtol_for(dtype))


def test_running_statistics_move_towards_the_batch(backend, dtype):
    rng = np.random.default_rng(1)
    model = xpnet.MLP([2, 3, 2], batch_norm=True, dtype=dtype, backend=backend, seed=0)
    X = rng.normal(size=(16, 2))
    model.fit(X, rng.integers(0, 2, 16), epochs=1, learning_rate=1e-9)  # weights barely move
    Z = X @ np.asarray(to_numpy(model.W[0]), dtype=np.float64)  # b[0] is still ~0
    np.testing.assert_allclose(to_numpy(model.bn.mean[0]), 0.1 * Z.mean(axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(to_numpy(model.bn.var[0]), 0.9 + 0.1 * Z.var(axis=0), rtol=1e-4)


def test_batch_norm_inference_does_not_depend_on_the_batch(backend, dtype):
    X, y = xpnet.datasets.load("moons", n_samples=64, seed=0)
    model = xpnet.MLP([2, 8, 2], batch_norm=True, dtype=dtype, backend=backend, seed=0)
    model.fit(X, y, epochs=5, learning_rate=0.5, batch_size=16)
    whole = to_numpy(model.predict_proba(X))[:1]
    alone = to_numpy(model.predict_proba(X[:1]))
    np.testing.assert_allclose(alone, whole, rtol=rtol_for(dtype), atol=1e-7)


@pytest.mark.parametrize("rate", [0.25, 0.1, 0.5])
def test_dropout_masks_are_inverted_and_seeded(rate):
    keep = layers.dropout_keep(np.random.default_rng(0), 2000, [50], rate)
    assert keep[0].dtype == np.bool_ and keep[0].shape == (2000, 50)  # one byte an entry crosses to the device
    m = layers.dropout_multipliers(np, keep[0], rate, np.float64)
    assert set(np.unique(m)) == {0.0, 1 / (1 - rate)}
    assert abs(np.mean(m == 0) - rate) < 0.01
    assert abs(m.mean() - 1.0) < 0.02  # inverted: the expected multiplier is 1
    # the draws of earlier versions (float64 uniforms against the rate), so their runs resume exactly
    np.testing.assert_array_equal(m, (np.random.default_rng(0).random((2000, 50)) >= rate) / (1 - rate))


def test_dropout_masks_are_made_on_the_device():
    strict = available_backend("array_api_strict:device1")
    keep = strict.asarray(layers.dropout_keep(np.random.default_rng(1), 10, [4], 0.5)[0])
    m = layers.dropout_multipliers(strict.xp, keep, 0.5, strict.dtype("float32"))
    assert m.device == keep.device and m.dtype == strict.dtype("float32")


def test_dropout_is_training_only_and_reproducible(backend, dtype):
    X, y = xpnet.datasets.load("moons", n_samples=64, seed=0)

    def run(dropout, seed=0):
        model = xpnet.MLP([2, 8, 2], dropout=dropout, dtype=dtype, backend=backend, seed=0)
        model.fit(X, y, epochs=5, learning_rate=0.5, seed=seed)
        return model

    a, b, c, plain = run(0.5), run(0.5), run(0.5, seed=1), run(0.0)
    np.testing.assert_array_equal(to_numpy(a.W[0]), to_numpy(b.W[0]))  # same seed, same run
    assert not np.allclose(to_numpy(a.W[0]), to_numpy(c.W[0]))  # another seed, other masks
    assert not np.allclose(to_numpy(a.W[0]), to_numpy(plain.W[0]))
    p1, p2 = to_numpy(a.predict_proba(X)), to_numpy(a.predict_proba(X))  # inference: no masks
    np.testing.assert_array_equal(p1, p2)


@pytest.mark.parametrize("kwargs, word", [({"dropout": 1.0}, "dropout"), ({"dropout": -0.1}, "dropout")])
def test_model_option_errors(kwargs, word):
    with pytest.raises(xpnet.XpnetValueError, match=word):
        xpnet.MLP([2, 3, 2], backend="numpy", **kwargs)


def test_batch_norm_must_be_boolean():
    with pytest.raises(xpnet.XpnetTypeError, match="batch_norm"):
        xpnet.MLP([2, 3, 2], backend="numpy", batch_norm="yes")
