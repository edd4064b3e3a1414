"""scikit-learn's array API convention: under ``array_api_dispatch`` the estimators train, keep their
fitted arrays and predict in the namespace and on the device of ``X``; ``backend=`` overrides;
``to_backend`` and pickling move them.

scikit-learn wants ``SCIPY_ARRAY_API=1`` before SciPy is imported; in this process SciPy may be
imported already, so the fixture sets it for scikit-learn's own check only (the estimators hand
SciPy host arrays either way). ``test_check_estimator_passes_every_check`` runs scikit-learn's
array API checks in a fresh interpreter with the variable set from the start.
"""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
xs = pytest.importorskip("array_api_strict")
import sklearn  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.utils._array_api import move_estimator_to  # noqa: E402

import xpnet  # noqa: E402
from xpnet.engine.threads import limit_threads  # noqa: E402
from xpnet.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

DEVICES = ["torch:cpu", "array_api_strict:CPU_DEVICE", "array_api_strict:device1"]


@pytest.fixture(autouse=True)
def dispatch(monkeypatch):
    """array_api_dispatch on (scikit-learn checks SCIPY_ARRAY_API when it dispatches), one thread."""
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    with sklearn.config_context(array_api_dispatch=True), limit_threads(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # short runs on purpose
        yield


def place(name):
    """``(put, backend)``: a function putting a NumPy array on the named library and device."""
    if name.startswith("torch"):
        pytest.importorskip("torch")
    backend = xpnet.get_backend(name)
    return (lambda a: backend.xp.asarray(np.asarray(a), device=backend.device)), backend


def where(a) -> str:
    """An array's backend by name, as xpnet spells it (``torch:cpu``, ``array_api_strict:device1``, ``numpy:cpu``)."""
    from xpnet.sklearn.arrays import backend_of

    return backend_of(a).qualified_name()


def host(a):
    return np.asarray(xpnet.to_numpy(a))


def blobs(n=80):
    X, y = xpnet.datasets.load("blobs", n_samples=n, noise=1.0, seed=0)
    return X / 10, y


def numpy_fit(estimator, *args, **kwargs):
    """The same estimator fitted on NumPy input (the reference)."""
    with sklearn.config_context(array_api_dispatch=False):
        return sklearn.clone(estimator).fit(*args, **kwargs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("params", [dict(solver="adam"), dict(solver="sgd", early_stopping=True,
                                                                n_iter_no_change=np.inf), dict(solver="lbfgs")],
                         ids=["adam", "sgd-early-stopping", "lbfgs"])
def test_classifier_fits_and_predicts_where_the_input_lives(device, params):
    put, backend = place(device)
    X, y = blobs()
    w = np.random.default_rng(0).uniform(0.5, 2.0, size=len(y))
    est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=15, random_state=0, **params)
    ref = numpy_fit(est, X, y, sample_weight=w)
    clf = est.fit(put(X), put(y), sample_weight=put(w))
    fitted = clf.coefs_ + clf.intercepts_ + [clf.classes_]
    assert {where(a) for a in fitted} == {backend.qualified_name()}  # state stays on the input's device
    for ours, theirs in zip(clf.coefs_ + clf.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_allclose(host(ours), theirs, rtol=1e-9, atol=1e-12)
    for method in ("predict", "predict_proba", "predict_log_proba"):
        out = getattr(clf, method)(put(X))
        assert where(out) == backend.qualified_name(), method
        np.testing.assert_allclose(host(out), getattr(ref, method)(X), rtol=1e-9, atol=1e-12)
    assert clf.score(put(X), put(y)) == pytest.approx(ref.score(X, y), abs=1e-6)
    assert clf.loss_ == pytest.approx(ref.loss_, rel=1e-9)
    if params.get("early_stopping"):
        np.testing.assert_allclose(clf.validation_scores_, ref.validation_scores_, rtol=1e-12)
        assert len(clf.validation_scores_) == 15


@pytest.mark.parametrize("device", DEVICES)
def test_regressor_and_partial_fit_where_the_input_lives(device):
    put, backend = place(device)
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, size=(50, 3))
    Y = np.c_[np.sin(2 * X[:, 0]), X[:, 1] * X[:, 2]]
    est = MLPRegressor(hidden_layer_sizes=(6,), solver="sgd", learning_rate_init=0.05, random_state=0, batch_size=16)
    ref, reg = sklearn.clone(est), est
    for part in (slice(0, 25), slice(25, 50)):
        with sklearn.config_context(array_api_dispatch=False):
            ref.partial_fit(X[part], Y[part])
        reg.partial_fit(put(X[part]), put(Y[part]))
    assert where(reg.coefs_[0]) == backend.qualified_name()
    assert {where(a) for name, a in reg._optimizer.state.items() if name.startswith("velocity")} == \
        {backend.qualified_name()}  # the optimizer's state too: the next partial_fit starts there
    np.testing.assert_allclose(reg.loss_curve_, ref.loss_curve_, rtol=1e-9)
    pred = reg.predict(put(X))
    assert where(pred) == backend.qualified_name() and tuple(pred.shape) == (50, 2)
    np.testing.assert_allclose(host(pred), ref.predict(X), rtol=1e-9, atol=1e-12)


def test_string_labels_stay_numpy_and_the_input_keeps_its_namespace():
    put, backend = place("torch:cpu")
    X, y = blobs()
    labels = np.array(["ant", "bee", "cat"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=10, random_state=0).fit(put(X), labels)
    assert isinstance(clf.classes_, np.ndarray) and clf.classes_.tolist() == ["ant", "bee", "cat"]
    assert where(clf.coefs_[0]) == backend.qualified_name()
    pred = clf.predict(put(X))
    assert isinstance(pred, np.ndarray) and set(pred) <= set(labels)
    assert where(clf.predict_proba(put(X))) == backend.qualified_name()


def test_predicting_from_another_device_is_refused_until_moved():
    put1, on1 = place("array_api_strict:device1")
    put2, on2 = place("array_api_strict:device2")
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(put1(X), put1(y))
    with pytest.raises(ValueError, match=r"MLPClassifier.predict\(\) must use the same namespace.*to_backend"):
        clf.predict(put2(X))
    with pytest.raises(ValueError, match="same namespace"):
        clf.predict_proba(X)  # NumPy, while the weights are on device1
    expected = host(clf.predict_proba(put1(X)))
    assert clf.to_backend("array_api_strict:device2") is clf
    assert {where(a) for a in clf.coefs_ + clf.intercepts_ + [clf.classes_]} == {on2.qualified_name()}
    out = clf.predict_proba(put2(X))
    assert where(out) == on2.qualified_name()
    np.testing.assert_array_equal(host(out), expected)
    moved = move_estimator_to(clf, xs, on1.device)  # scikit-learn's own way moves them too
    assert where(moved.coefs_[0]) == on1.qualified_name() and where(clf.coefs_[0]) == on2.qualified_name()
    np.testing.assert_array_equal(host(moved.predict_proba(put1(X))), expected)


def test_backend_parameter_overrides_the_input():
    put, backend = place("torch:cpu")
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0, backend="numpy").fit(put(X), put(y))
    assert all(isinstance(a, np.ndarray) for a in clf.coefs_)  # trained and kept on NumPy, as asked
    assert where(clf.predict(put(X))) == backend.qualified_name()  # answers in the input's namespace
    assert isinstance(clf.predict(X), np.ndarray)  # any input: an explicit backend moves it
    strict = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0,
                           backend="array_api_strict:device2").fit(X, y)
    assert where(strict.coefs_[0]) == "array_api_strict:device2"
    assert isinstance(strict.predict_proba(X), np.ndarray)
    np.testing.assert_allclose(strict.predict_proba(X), clf.predict_proba(X), rtol=1e-9)


def test_without_dispatch_everything_is_numpy_as_before():
    put, _ = place("torch:cpu")
    X, y = blobs()
    with sklearn.config_context(array_api_dispatch=False):
        clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(put(X), put(y))
        assert all(isinstance(a, np.ndarray) for a in clf.coefs_ + clf.intercepts_ + [clf.classes_])
        assert isinstance(clf.predict(put(X)), np.ndarray) and isinstance(clf.predict_proba(X), np.ndarray)
        on_torch = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0, backend="torch").fit(X, y)
        assert all(isinstance(a, np.ndarray) for a in on_torch.coefs_)  # NumPy attributes, trained on torch
        np.testing.assert_allclose(on_torch.predict_proba(X), clf.predict_proba(X), rtol=1e-9)


@pytest.mark.parametrize("dispatched", [False, True])
def test_to_backend_moves_weights_and_optimizer_state(dispatched):
    X, y = blobs()
    with sklearn.config_context(array_api_dispatch=dispatched):
        moved = MLPClassifier(hidden_layer_sizes=(5,), solver="sgd", max_iter=5, random_state=0).fit(X, y)
        stayed = sklearn.base.clone(moved).fit(X, y)
        moved.to_backend("array_api_strict:device1")
        assert moved.backend == "array_api_strict:device1"
        arrays = moved.coefs_ + moved.intercepts_ + [moved.classes_] + [
            a for name, a in moved._optimizer.state.items() if name.startswith("velocity")]
        assert {where(a) for a in arrays} == {"array_api_strict:device1"}
        np.testing.assert_allclose(host(moved.predict_proba(X)), host(stayed.predict_proba(X)), rtol=1e-12)
        moved.partial_fit(X, y)  # continues there, from the moved state: the same numbers
        stayed.partial_fit(X, y)
        assert where(moved.coefs_[0]) == ("array_api_strict:device1" if dispatched else "numpy:cpu")
        np.testing.assert_allclose(host(moved.coefs_[0]), host(stayed.coefs_[0]), rtol=1e-9)
        moved.to_backend("numpy", dtype="float32")
        assert moved.coefs_[0].dtype == np.float32 and isinstance(moved.predict_proba(X), np.ndarray)


def test_pickles_are_numpy_and_come_back_where_they_were():
    put, backend = place("array_api_strict:device1")
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(5,), solver="sgd", max_iter=5, random_state=0).fit(put(X), put(y))
    data = pickle.dumps(clf)
    assert b"array_api_strict._array_object" not in data  # NumPy arrays and the backend by name
    again = pickle.loads(data)
    assert {where(a) for a in again.coefs_ + [again.classes_, again._optimizer.state["velocity_0"]]} == \
        {backend.qualified_name()}
    np.testing.assert_array_equal(host(again.predict_proba(put(X))), host(clf.predict_proba(put(X))))


LOAD_WITHOUT_TORCH = """
import importlib.abc, pickle, sys
import numpy as np


class NoTorch(importlib.abc.MetaPathFinder):  # torch is absent here
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] == "torch":
            raise ImportError("No module named 'torch'")


sys.meta_path.insert(0, NoTorch())
est = pickle.loads(sys.stdin.buffer.read())
X = np.linspace(-0.5, 0.5, 20).reshape(10, 2)
print(type(est.coefs_[0]).__name__, type(est.predict_proba(X)).__name__, est.predict(X).shape[0])
"""


def test_a_pickle_from_torch_loads_where_torch_is_absent():
    put, _ = place("torch:cpu")
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(5,), solver="sgd", max_iter=5, random_state=0).fit(put(X), put(y))
    proc = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_TORCH], input=pickle.dumps(clf), capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stdout.decode().split() == ["ndarray", "ndarray", "10"]
    warning = [line for line in proc.stderr.decode().splitlines() if "UserWarning" in line]
    assert len(warning) == 1 and "pickled on the 'torch:cpu' backend, which is not available here" in warning[0]


def test_a_float32_only_device_trains_in_float32_there():
    put, backend = place("array_api_strict:no_float64")
    X, y = blobs()
    X = X.astype(np.float32)
    est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=10, random_state=0, early_stopping=True)
    ref = numpy_fit(est, X, y)
    clf = est.fit(put(X), put(y))
    assert {where(a) for a in clf.coefs_ + [clf.classes_]} == {backend.qualified_name()}
    assert all(a.dtype == xs.float32 for a in clf.coefs_ + clf.intercepts_)
    proba = clf.predict_proba(put(X))
    assert where(proba) == backend.qualified_name() and proba.dtype == xs.float32
    np.testing.assert_allclose(host(proba), ref.predict_proba(X), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(clf.validation_scores_, ref.validation_scores_, atol=1e-6)
