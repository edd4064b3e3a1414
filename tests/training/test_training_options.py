"""fit() options: defaults unchanged, minibatches, momentum, schedules, clipping, early stopping.

Updates are checked against a plain NumPy net written here (tanh hidden layer, softmax,
mean cross-entropy), independent of xpnet's backward.
"""


import numpy as np
import pytest
import reference
from conftest import available_backend, rtol_for

import xpnet
from xpnet import to_numpy
from xpnet.training import optim

X16, Y16 = xpnet.datasets.load("moons", n_samples=16, noise=0.2, seed=3)


def _grads(W1, W2, b1, b2, X, y, reduction="mean"):
    """[dW1, dW2, db1, db2] (MLP.parameters order) of a tanh/softmax net's cross-entropy, in NumPy."""
    H = np.tanh(X @ W1 + b1)
    Z = H @ W2 + b2
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    dZ = P - np.eye(W2.shape[1])[y]
    if reduction == "mean":
        dZ /= len(X)
    dH = dZ @ W2.T * (1 - H * H)
    return [X.T @ dH, H.T @ dZ, dH.sum(axis=0), dZ.sum(axis=0)]


def _model(backend, dtype, sizes=(2, 4, 2), **options):
    return xpnet.MLP(list(sizes), activation="tanh", dtype=dtype, backend=backend, seed=1, **options)


def _host_params(model):
    return [np.asarray(to_numpy(p), dtype=np.float64) for p in model.parameters()]


def _close(model, expected, dtype):
    for got, want in zip(_host_params(model), expected):
        np.testing.assert_allclose(got, want, rtol=rtol_for(dtype) * 10, atol=1e-6 if dtype == "float32" else 1e-12)


def test_defaults_spelled_out_are_bit_identical(backend, dtype):
    a, b = _model(backend, dtype), _model(backend, dtype)
    ra = a.fit(X16, Y16, epochs=30, learning_rate=0.3, l2=0.01)
    rb = b.fit(X16, Y16, epochs=30, learning_rate=0.3, l2=0.01, batch_size=None, momentum=0.0, nesterov=False,
               schedule="constant", clip_value=None, clip_norm=None, early_stopping=False)
    c = _model(backend, dtype)
    c.fit(X16, Y16, epochs=30, learning_rate=0.3, l2=0.01, batch_size=16)  # >= N: full batch
    assert ra.history == rb.history
    for p, q, r in zip(_host_params(a), _host_params(b), _host_params(c)):
        np.testing.assert_array_equal(p, q)
        np.testing.assert_array_equal(p, r)


def test_tutorials_still_reproduce_their_references():
    """The full-batch path is the tutorials' path: compare with the plain reference scripts."""
    from xpnet import tutorials

    X, y = xpnet.datasets.moons(200, noise=0.2, seed=0)
    losses, accuracy = reference.wildml(X, y, 3, passes=1001)
    run = tutorials.run("wildml-moons", backend="numpy", iterations=1001)
    assert run.data["losses"] == losses and run.data["accuracy"] == accuracy
    errors, _, _ = reference.three_layer("trask", 10_001)
    assert tutorials.run("trask-3layer", backend="numpy", iterations=10_001).data["errors"] == errors


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_two_epochs_by_hand(backend, dtype, nesterov):
    lr, mu = 0.5, 0.9
    model = _model(backend, dtype)
    p0 = _host_params(model)
    model.fit(X16, Y16, epochs=2, learning_rate=lr, momentum=mu, nesterov=nesterov)
    v = None
    p = p0
    for _ in range(2):
        g = _grads(*p, X16, Y16)
        v = g if v is None else [mu * vi + gi for vi, gi in zip(v, g)]
        d = [gi + mu * vi for gi, vi in zip(g, v)] if nesterov else v
        p = [pi - lr * di for pi, di in zip(p, d)]
    _close(model, p, dtype)


def test_minibatches_in_order_by_hand_with_summed_l2(backend, dtype):
    """shuffle=False, 16 rows in batches of 6, 6, 4; reduction sum scales L2 by B/N."""
    lr, l2 = 0.05, 0.1
    model = _model(backend, dtype)
    p = _host_params(model)
    model.fit(X16, Y16, epochs=2, learning_rate=lr, l2=l2, reduction="sum", batch_size=6, shuffle=False)
    for _ in range(2):
        for start in (0, 6, 12):
            rows = slice(start, min(start + 6, 16))
            g = _grads(*p, X16[rows], Y16[rows], "sum")
            B = len(X16[rows])
            g[0] = g[0] + l2 * B / 16 * p[0]
            g[1] = g[1] + l2 * B / 16 * p[1]
            p = [pi - lr * gi for pi, gi in zip(p, g)]
    _close(model, p, dtype)


def test_shuffled_minibatches_are_seeded_and_reshuffled(backend, dtype):
    def run(seed):
        model = _model(backend, dtype)
        model.fit(X16, Y16, epochs=3, learning_rate=0.5, batch_size=5, seed=seed)
        return _host_params(model)[0]

    in_order = _model(backend, dtype)
    in_order.fit(X16, Y16, epochs=3, learning_rate=0.5, batch_size=5, shuffle=False)
    np.testing.assert_array_equal(run(4), run(4))
    assert not np.allclose(run(4), run(5))
    assert not np.allclose(run(4), _host_params(in_order)[0])


def test_step_schedule_and_clipping_by_hand(backend, dtype):
    lr = 0.8
    model = _model(backend, dtype)
    p = _host_params(model)
    model.fit(X16, Y16, epochs=3, learning_rate=lr, schedule=optim.Schedule("step", step=1, gamma=0.5),
              clip_value=0.05, clip_norm=0.08)
    for epoch in range(3):
        g = [np.clip(gi, -0.05, 0.05) for gi in _grads(*p, X16, Y16)]
        norm = np.sqrt(sum(np.sum(gi * gi) for gi in g))
        g = [gi * min(1.0, 0.08 / norm) for gi in g]
        p = [pi - lr * 0.5 ** epoch * gi for pi, gi in zip(p, g)]
    _close(model, p, dtype)


def test_all_options_agree_across_backends(backend, dtype):
    """Minibatch + Nesterov + cosine + clipping + dropout + batch norm: same numbers as NumPy."""
    X, y = xpnet.datasets.load("spirals", n_samples=60, seed=0, classes=3)

    def run(name):
        model = xpnet.MLP([2, 8, 8, 3], activation="relu", dropout=0.2, batch_norm=True, dtype=dtype,
                          backend=name, seed=0)
        result = model.fit(X, y, epochs=4, learning_rate=0.1, batch_size=16, momentum=0.9, nesterov=True,
                           schedule="cosine", clip_norm=1.0, clip_value=0.5, log_every=1)
        return result, model

    got, model = run(backend)
    want, reference_model = run("numpy")
    np.testing.assert_allclose(got.history, want.history, rtol=rtol_for(dtype) * 10)
    for a, b in zip(_host_params(model), _host_params(reference_model)):
        np.testing.assert_allclose(a, b, rtol=rtol_for(dtype) * 10, atol=1e-5 if dtype == "float32" else 1e-12)
    assert got.history[-1] < got.history[0]


def test_early_stopping_restores_the_best_weights(backend, dtype):
    """Random labels: the net can only memorise, so the validation loss soon rises."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 2)), rng.integers(0, 2, 60)
    model = _model(backend, dtype, sizes=(2, 32, 2))
    seen = {}
    result = model.fit(X, y, epochs=300, learning_rate=0.5, batch_size=8, early_stopping=True,
                       validation_fraction=0.25, patience=5, log_every=1,
                       callback=lambda e: seen.__setitem__(e.epoch, _host_params(e.model)))
    history = result.validation_history
    assert result.stopped_early and result.epochs < 300
    assert result.epochs == result.best_epoch + 5 == len(history) - 1
    assert history[result.best_epoch] == min(history)
    assert history[-1] > min(history)  # the validation loss did rise after the best epoch
    for got, want in zip(_host_params(model), seen[result.best_epoch]):
        np.testing.assert_array_equal(got, want)
    assert result.final_loss != result.history[-1]  # the objective of the restored weights


def test_three_class_spirals_reach_high_accuracy(backend, dtype):
    """A linear classifier gets about 1/2 on 3 spirals (CS231n measures 49%); 0.9 needs the hidden layer."""
    X, y = xpnet.datasets.load("spirals", n_samples=150, seed=0, classes=3)
    model = xpnet.MLP([2, 32, 3], activation="tanh", dtype=dtype, backend=backend, seed=0)
    result = model.fit(X, y, epochs=100, learning_rate=0.2, batch_size=30, momentum=0.9)
    assert model.accuracy(X, y) >= 0.9
    assert result.final_loss < result.history[0] / 3


def test_four_layer_net_trains(backend, dtype):
    """WildML's exercise: input, two hidden layers, output."""
    X, y = xpnet.datasets.load("moons", n_samples=100, seed=0)
    model = xpnet.MLP([2, 6, 6, 2], activation="tanh", dtype=dtype, backend=backend, seed=0)
    result = model.fit(X, y, epochs=100, learning_rate=0.1, batch_size=10, momentum=0.9)
    assert result.final_loss < result.history[0] / 2
    assert model.accuracy(X, y) >= 0.9


@pytest.mark.parametrize("kwargs, word", [
    ({"batch_size": 0}, "batch_size"), ({"momentum": 1.5}, "momentum"), ({"nesterov": True}, "nesterov"),
    ({"schedule": "exponential"}, "schedule"), ({"clip_norm": 0.0}, "clip_norm"),
    ({"early_stopping": True, "validation_fraction": 1.0}, "validation_fraction"),
    ({"early_stopping": True, "validation_fraction": 0.01}, "validation_fraction"),
    ({"patience": 0}, "patience"), ({"seed": -1}, "seed"), ({"shuffle": "yes"}, "shuffle"),
])
def test_option_errors_name_the_argument(kwargs, word):
    model = xpnet.MLP([2, 3, 2], backend="numpy")
    with pytest.raises((xpnet.XpnetValueError, xpnet.XpnetTypeError), match=word):
        model.fit(X16, Y16, epochs=2, **kwargs)


@pytest.mark.parametrize("batch_size", [None, 64])
def test_no_host_round_trip_between_logging_points(monkeypatch, batch_size):
    """On an asynchronous device every float()/bool()/item() of a device array waits for the
    device; fit makes them at logging points only, so their number does not grow with the epochs."""
    torch = pytest.importorskip("torch")
    available_backend("torch")
    counts = {"n": 0}
    for name in ("__float__", "__bool__", "item", "tolist", "numpy", "cpu", "__int__"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            counts["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    X, y = xpnet.datasets.load("moons", n_samples=300, seed=0)
    seen = []
    for epochs in (10, 60):
        model = xpnet.MLP([2, 8, 2], backend="torch", dtype="float64")
        counts["n"] = 0
        model.fit(X, y, epochs=epochs, log_every=epochs // 2, batch_size=batch_size, learning_rate=0.1)
        seen.append(counts["n"])
    assert seen[0] == seen[1] > 0, seen  # 3 logging points either way; none in between
