"""scikit-learn estimators: scikit-learn's own check_estimator, and behaviour on every backend."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402

import xpnet  # noqa: E402
from xpnet.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# check_estimator runs in a fresh interpreter: SCIPY_ARRAY_API=1 must be set before scipy is
# imported, or scikit-learn skips check_array_api_input; pandas must be installed, or it skips
# the dataframe checks. We require every single check to pass: none skipped, none expected to fail.
CHECK_ALL = """
import json, warnings
from sklearn.utils.estimator_checks import check_estimator
from xpnet.sklearn import MLPClassifier, MLPRegressor
report = {}
for estimator in (MLPClassifier(hidden_layer_sizes=(16,), max_iter=50),
                  MLPRegressor(hidden_layer_sizes=(16,), max_iter=50)):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = check_estimator(estimator, on_fail=None)
    report[type(estimator).__name__] = {
        "statuses": sorted({r["status"] for r in results}),
        "count": len(results),
        "not_passed": [(r["check_name"], r["status"], repr(r["exception"])[:300])
                       for r in results if r["status"] != "passed"],
        "warnings": sorted({str(w.message)[:200] for w in caught if "Skip" in type(w.message).__name__}),
    }
print(json.dumps(report))
"""


def test_check_estimator_passes_every_check():
    pytest.importorskip("pandas")
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    proc = subprocess.run([sys.executable, "-c", CHECK_ALL], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    for name, result in report.items():
        assert result["not_passed"] == [], (name, result["not_passed"])
        assert result["statuses"] == ["passed"] and result["count"] > 40, (name, result)
        assert result["warnings"] == [], (name, result["warnings"])  # no check skipped


def spelled(backend):
    """The backend as a string parameter: estimator parameters must survive clone()'s deepcopy."""
    return f"{backend.name}:{backend.device_name()}"


def blobs(n=150, seed=0):
    X, y = xpnet.datasets.load("blobs", n_samples=n, noise=1.0, seed=seed)
    return X / 10, y


def test_classifier_on_every_backend(backend, dtype):
    X, y = blobs()
    labels = np.array(["ant", "bee", "cat"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=100, random_state=0, backend=spelled(backend), dtype=dtype)
    assert clf.fit(X, labels) is clf
    pred = clf.predict(X)
    assert isinstance(pred, np.ndarray) and pred.dtype == labels.dtype  # NumPy out, original labels
    assert clf.score(X, labels) > 0.95
    proba = clf.predict_proba(X)
    assert isinstance(proba, np.ndarray) and proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)
    assert [w.shape for w in clf.coefs_] == [(2, 8), (8, 3)] and clf.n_iter_ == len(clf.loss_curve_) >= 1
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_same_fit_on_numpy_and_other_backends(backend, dtype):
    X, y = blobs(60)
    params = dict(hidden_layer_sizes=(5,), max_iter=20, random_state=3, dtype=dtype)
    here = MLPClassifier(backend=spelled(backend), **params).fit(X, y)
    reference = MLPClassifier(backend="numpy", **params).fit(X, y)
    rtol = 1e-9 if dtype == "float64" else 1e-4
    for a, b in zip(here.coefs_, reference.coefs_):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6)


def test_regressor_on_every_backend(backend, dtype):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(120, 3))
    y = 300 + 100 * np.c_[np.sin(2 * X[:, 0]) + X[:, 1], X[:, 2] ** 2]  # large offset and scale
    reg = MLPRegressor(hidden_layer_sizes=(16,), activation="tanh", batch_size=20, max_iter=100, random_state=0,
                       backend=spelled(backend), dtype=dtype)
    pred = reg.fit(X, y).predict(X)
    assert pred.shape == (120, 2) and reg.score(X, y) > 0.9
    single = clone(reg).fit(X, y[:, 0])
    assert single.predict(X).shape == (120,)


def test_alpha_is_scikit_learns_l2():
    """One full-batch step without momentum, worked out by hand from the initial weights.

    scikit-learn's objective is mean loss + alpha / (2 n) * sum ||W||^2, so the weight step is
    -rate * (dW_mean + alpha / n * W); biases get no penalty.
    """
    X, y = blobs(40)
    params = dict(hidden_layer_sizes=(4,), activation="tanh", alpha=3.0, learning_rate_init=0.1, momentum=0.0,
                  max_iter=1, shuffle=False, random_state=7)
    clf = MLPClassifier(**params).fit(X, y)
    # the same random_state draws the same initial weights; a step of 1e-300 leaves them bit-identical
    start = MLPClassifier(**dict(params, alpha=0.0, learning_rate_init=1e-300)).fit(X, y)
    W0, W1 = start.coefs_
    b0, b1 = start.intercepts_
    H = np.tanh(X @ W0 + b0)
    Z = H @ W1 + b1
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    dZ = (P - np.eye(3)[y]) / len(y)
    dH = (dZ @ W1.T) * (1 - H ** 2)
    expected = [W0 - 0.1 * (X.T @ dH + 3.0 / 40 * W0), W1 - 0.1 * (H.T @ dZ + 3.0 / 40 * W1)]
    for got, want in zip(clf.coefs_, expected):
        np.testing.assert_allclose(got, want, rtol=1e-10)
    np.testing.assert_allclose(clf.intercepts_[1], b1 - 0.1 * dZ.sum(axis=0), rtol=1e-10)


def test_pickle_and_clone_keep_predictions():
    X, y = blobs(60)
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=10, random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert clone(clf).get_params() == clf.get_params()


@pytest.mark.parametrize("params, match", [
    (dict(activation="softplus"), "activation='softplus'"),
    (dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
    (dict(momentum=1.0), "momentum"),
    (dict(batch_size=0), "batch_size"),
    (dict(learning_rate_init=-1.0), "learning_rate_init"),
    (dict(dtype="float16"), "dtype"),
])
def test_bad_parameters_are_named(params, match):
    X, y = blobs(30)
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(X, y)


def test_one_class_is_refused_clearly():
    with pytest.raises(ValueError, match="at least 2 classes"):
        MLPClassifier().fit(np.zeros((4, 2)), np.ones(4))
