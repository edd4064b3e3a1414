"""The model and full-batch training, on every backend."""

import numpy as np
import pytest
from conftest import available_backend, rtol_for

import xpnet
from xpnet.core.init import initial_weights


def moons(n=200):
    return xpnet.datasets.load("moons", n_samples=n, noise=0.2, seed=0)


def test_every_backend_starts_from_the_same_weights(backend, dtype):
    model = xpnet.MLP([2, 5, 3], backend=backend, dtype=dtype, seed=4, init="wildml")
    reference = initial_weights("wildml", (2, 5, 3), 4)
    for W, R in zip(model.W, reference):
        np.testing.assert_array_equal(xpnet.to_numpy(W), R.astype(dtype))


def test_outputs_stay_on_the_backend_and_accept_both_kinds_of_input(backend, dtype):
    X, y = moons(50)
    model = xpnet.MLP([2, 4, 2], backend=backend, dtype=dtype)
    native = backend.asarray(X, dtype)
    P1, P2 = model.predict_proba(X), model.predict_proba(native)
    assert type(P1) is type(native)
    np.testing.assert_array_equal(xpnet.to_numpy(P1), xpnet.to_numpy(P2))
    np.testing.assert_allclose(xpnet.to_numpy(P1).sum(axis=1), 1.0, rtol=1e-6)
    labels = xpnet.to_numpy(model.predict(X))
    assert labels.shape == (50,) and set(labels.tolist()) <= {0, 1}
    assert 0.0 <= model.accuracy(X, y) <= 1.0 and model.loss(X, y) > 0


def test_one_step_by_hand(backend, dtype):
    """One mean-reduced step with L2, worked out in plain NumPy."""
    X = np.array([[0.5, -1.0], [1.5, 2.0], [-0.5, 0.25]])
    y = np.array([0, 1, 1])
    model = xpnet.MLP([2, 3, 2], activation="tanh", backend=backend, dtype=dtype, seed=1)
    W1, W2 = (xpnet.to_numpy(w).astype(np.float64) for w in model.W)
    b1, b2 = np.zeros(3), np.zeros(2)
    lr, l2 = 0.3, 0.1
    A = np.tanh(X @ W1 + b1)
    Z = A @ W2 + b2
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    D3 = (P - np.eye(2)[y]) / 3
    D2 = D3 @ W2.T * (1 - A**2)
    expected = [W1 - lr * (X.T @ D2 + l2 * W1), b1 - lr * D2.sum(0),
                W2 - lr * (A.T @ D3 + l2 * W2), b2 - lr * D3.sum(0)]
    model.fit(X, y, epochs=1, learning_rate=lr, l2=l2)
    got = [model.W[0], model.b[0], model.W[1], model.b[1]]
    for g, e in zip(got, expected):
        atol = 1e-6 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(xpnet.to_numpy(g), e, rtol=rtol_for(dtype) * 10, atol=atol)


def test_training_learns_moons_and_agrees_across_backends(backend, dtype):
    X, y = moons(300)
    model = xpnet.MLP([2, 16, 2], backend=backend, dtype=dtype, seed=0)
    result = model.fit(X, y, epochs=300, learning_rate=0.5, log_every=100)
    assert result.logged_epochs == [0, 100, 200, 300] and result.history[-1] == result.final_loss
    assert result.history[-1] < result.history[0] and model.accuracy(X, y) > 0.85
    assert result.backend == backend.name and result.dtype == dtype and result.seconds > 0
    baseline = xpnet.MLP([2, 16, 2], backend="numpy", dtype=dtype, seed=0)
    base = baseline.fit(X, y, epochs=300, learning_rate=0.5, log_every=100)
    np.testing.assert_allclose(result.history, base.history, rtol=rtol_for(dtype) * 10)


def test_sum_reduction_is_mean_reduction_with_a_scaled_rate():
    X, y = moons(100)
    a = xpnet.MLP([2, 6, 2], backend="numpy", dtype="float64")
    b = xpnet.MLP([2, 6, 2], backend="numpy", dtype="float64")
    a.fit(X, y, epochs=20, learning_rate=0.5, reduction="mean")
    b.fit(X, y, epochs=20, learning_rate=0.5 / 100, reduction="sum")
    for Wa, Wb in zip(a.W, b.W):
        np.testing.assert_allclose(Wa, Wb, rtol=1e-10)


def test_deep_net_with_per_layer_activations_and_regression():
    X = np.linspace(-1, 1, 64).reshape(-1, 1)
    y = np.sin(3 * X)
    model = xpnet.MLP([1, 16, 16, 1], activation=["tanh", "relu"], output="identity", backend="numpy", dtype="float64")
    result = model.fit(X, y, epochs=2000, learning_rate=0.1)
    assert result.final_loss < 0.1 * result.history[0]
    with pytest.raises(xpnet.XpnetValueError, match="identity"):
        model.accuracy(X, y)


def test_divergence_keeps_the_last_finite_weights():
    X, y = moons(100)
    model = xpnet.MLP([2, 8, 2], backend="numpy", dtype="float32")
    result = model.fit(X, y, epochs=50, learning_rate=1e30, log_every=1)
    assert result.diverged and "smaller learning rate" in result.message
    assert all(np.isfinite(xpnet.to_numpy(w)).all() for w in model.parameters())
    assert result.epochs == result.logged_epochs[-1] and np.isfinite(result.final_loss)


@pytest.mark.parametrize("kwargs, match", [
    (dict(layer_sizes=[2]), "layer_sizes"),
    (dict(layer_sizes=[2, 0, 2]), "layer size"),
    (dict(layer_sizes=[2, 2], activation="swish"), "activation"),
    (dict(layer_sizes=[2, 3, 2], activation=["tanh", "tanh"]), "hidden layers"),
    (dict(layer_sizes=[2, 2], output="tanh"), "output"),
    (dict(layer_sizes=[2, 2], output="softmax", loss="squared"), "loss"),
    (dict(layer_sizes=[2, 1], output="softmax"), "softmax"),
    (dict(layer_sizes=[2, 2], init="zeros"), "init"),
    (dict(layer_sizes=[2, 2], dtype="float16"), "dtype"),
    (dict(layer_sizes=[2, 2], seed=-1), "seed"),
    (dict(layer_sizes=[2, 2], numerics="fast"), "numerics"),
])
def test_bad_model_arguments(kwargs, match):
    sizes = kwargs.pop("layer_sizes")
    with pytest.raises(xpnet.XpnetError, match=match):
        xpnet.MLP(sizes, backend="numpy", **kwargs)


@pytest.mark.parametrize("X, y, match", [
    (np.zeros((4, 3)), np.zeros(4), "shape"),
    (np.zeros((0, 2)), np.zeros(0), "empty"),
    (np.array([[np.nan, 1.0]] * 4), np.zeros(4), "NaN"),
    (np.zeros((4, 2)), np.zeros(3), "y has shape"),
    (np.zeros((4, 2)), np.array([0, 1, 2, 1]), "class labels"),
    (np.zeros((4, 2)), np.array([0, 1, 0.5, 1]), "integer class labels"),
])
def test_bad_data(X, y, match):
    model = xpnet.MLP([2, 3, 2], backend="numpy")
    with pytest.raises(xpnet.XpnetValueError, match=match):
        model.fit(X, y, epochs=1)


@pytest.mark.parametrize("options, match", [
    (dict(epochs=0), "epochs"), (dict(learning_rate=-1.0), "learning_rate"), (dict(l2=-0.1), "l2"),
    (dict(reduction="max"), "reduction"), (dict(log_every=0), "log_every"),
])
def test_bad_training_options(options, match):
    X, y = moons(20)
    with pytest.raises(xpnet.XpnetError, match=match):
        xpnet.MLP([2, 3, 2], backend="numpy").fit(X, y, **options)


def test_softmax_rows_sum_to_one_for_extreme_logits(backend, dtype):
    from xpnet.core.activations import softmax

    Z = backend.asarray([[1e30, -1e30, 0.0], [-1e30, -1e30, -1e30], [3.0, 2.0, 1.0]], dtype)
    P = xpnet.to_numpy(softmax(backend.xp, Z))
    assert np.all(np.isfinite(P))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)


def test_memory_is_checked_before_the_weights_are_drawn():
    """A billion hidden units would be killed by the OOM killer minutes later: refused at once."""
    with pytest.raises(xpnet.memory.XpnetMemoryError, match="weights of layers"):
        xpnet.MLP([2, 10**9, 2], backend="numpy")


def test_a_model_can_start_from_given_weights(backend, dtype):
    W = [np.full((2, 3), 0.5), np.full((3, 2), -0.25)]
    b = [np.zeros(3), np.ones(2)]
    model = xpnet.MLP([2, 3, 2], backend=backend, dtype=dtype, weights=(W, b))
    for got, want in zip(model.W + model.b, W + b):
        np.testing.assert_array_equal(xpnet.to_numpy(got), want)
    with pytest.raises(xpnet.XpnetValueError, match="shapes"):
        xpnet.MLP([2, 3, 2], backend=backend, dtype=dtype, weights=([W[1], W[0]], b))


@pytest.mark.parametrize("target", ["numpy", "array_api_strict", "torch"])
def test_to_backend_moves_every_trained_array(target):
    """A model trained on one backend predicts the same on another (weights, biases, batch norm)."""
    source = available_backend("array_api_strict")
    goal = available_backend(target)
    X, y = xpnet.datasets.load("moons", n_samples=200, noise=0.2, seed=0)
    model = xpnet.MLP([2, 8, 2], backend=source, dtype="float64", batch_norm=True, seed=3)
    model.fit(X, y, epochs=30, learning_rate=0.5)
    before = xpnet.to_numpy(model.predict_proba(X))
    assert model.to_backend(goal) is model
    assert model.backend.name == goal.name
    assert all(type(p) is type(goal.asarray(np.zeros(1))) for p in model.parameters())
    np.testing.assert_allclose(xpnet.to_numpy(model.predict_proba(X)), before, rtol=1e-12, atol=1e-15)


def test_to_backend_changes_the_dtype_when_asked():
    model = xpnet.MLP([2, 4, 2], backend="numpy", dtype="float64")
    model.to_backend("numpy", "float32")
    assert model.dtype_name == "float32" and all(p.dtype == np.float32 for p in model.parameters())
    with pytest.raises(xpnet.XpnetValueError, match="dtype"):
        model.to_backend("numpy", "float16")
