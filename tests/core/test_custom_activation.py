"""A user-defined activation trains on every backend and every path with no registration.

softsign is defined here, in the test, and nowhere in xpnet; each run is compared with a plain
NumPy reference of the same training, also written here.
"""

import numpy as np
import pytest
from conftest import available_backend

import xpnet
from xpnet.core.activations import Activation


def softsign_forward(xp, Z):
    return Z / (1 + xp.abs(Z))


def softsign_backward(xp, dY, Y):
    """d/dz z / (1 + |z|) = 1 / (1 + |z|)^2 = (1 - |y|)^2, from the output y."""
    slope = 1 - xp.abs(Y)
    return dY * (slope * slope)


SOFTSIGN = Activation("softsign", softsign_forward, softsign_backward)


def reference_fit(X, y, W, b, *, epochs, rate, l2=0.0, batch=None):
    """Plain NumPy float64 gradient descent on softsign hidden layers and a softmax output
    (mean cross-entropy, L2 on the weights), minibatches in order when ``batch`` is given."""
    W, b = [w.astype(np.float64).copy() for w in W], [c.astype(np.float64).copy() for c in b]
    n, classes = X.shape[0], W[-1].shape[1]
    T = np.eye(classes)[y]
    for _ in range(epochs):
        for start in range(0, n, batch or n):
            Xb, Tb = X[start:start + (batch or n)], T[start:start + (batch or n)]
            H = [Xb]
            for Wi, bi in zip(W[:-1], b[:-1]):
                Z = H[-1] @ Wi + bi
                H.append(Z / (1 + np.abs(Z)))
            Z = H[-1] @ W[-1] + b[-1]
            P = np.exp(Z - Z.max(axis=1, keepdims=True))
            P /= P.sum(axis=1, keepdims=True)
            D = (P - Tb) / Xb.shape[0]
            grads = []
            for i in range(len(W) - 1, -1, -1):
                grads.append((H[i].T @ D + l2 * W[i], D.sum(axis=0)))
                if i:
                    D = (D @ W[i].T) * (1 - np.abs(H[i])) ** 2
            for i, (dW, db) in enumerate(reversed(grads)):
                W[i] = W[i] - rate * dW
                b[i] = b[i] - rate * db
    return W, b


def data(n, seed=0):
    X, y = xpnet.datasets.load("moons", n_samples=n, noise=0.2, seed=seed)
    return X, y


def check_against_reference(backend, n, sizes, *, epochs=3, batch=None, rtol=1e-9):
    X, y = data(n)
    model = xpnet.MLP(sizes, activation=SOFTSIGN, backend=backend, dtype="float64", seed=1)
    start_W, start_b = [xpnet.to_numpy(w) for w in model.W], [xpnet.to_numpy(c) for c in model.b]
    model.fit(X, y, epochs=epochs, learning_rate=0.5, l2=1e-3, batch_size=batch, shuffle=False)
    want_W, want_b = reference_fit(X, y, start_W, start_b, epochs=epochs, rate=0.5, l2=1e-3, batch=batch)
    for got, want in zip(model.W + model.b, want_W + want_b):
        np.testing.assert_allclose(xpnet.to_numpy(got), want, rtol=rtol, atol=1e-12)
    return model


@pytest.mark.parametrize("n", [200, 1000, 100_000])
def test_softsign_full_batch_on_numpy_at_every_size(n):
    """200 rows: the plain pass; 1,000: chunked; 100,000: chunked on every thread."""
    model = check_against_reference("numpy", n, [2, 16, 2], epochs=2 if n > 1000 else 3)
    assert model.spec.hidden[0] is SOFTSIGN


def test_softsign_in_a_deeper_net_and_per_layer():
    X, y = data(600)
    model = xpnet.MLP([2, 8, 6, 2], activation=[SOFTSIGN, "tanh"], backend="numpy", dtype="float64")
    result = model.fit(X, y, epochs=200, learning_rate=0.5)
    assert result.history[-1] < result.history[0] and [a.name for a in model.spec.hidden] == ["softsign", "tanh"]
    check_against_reference("numpy", 600, [2, 8, 6, 2])


def test_softsign_with_minibatches():
    check_against_reference("numpy", 1000, [2, 16, 2], epochs=2, batch=300)


@pytest.mark.parametrize("name", ["array_api_strict", "torch"])
def test_softsign_on_other_backends(name):
    backend = available_backend(name)
    check_against_reference(backend, 700, [2, 12, 2], epochs=2, batch=None)
    check_against_reference(backend, 300, [2, 12, 2], epochs=1, batch=100)
