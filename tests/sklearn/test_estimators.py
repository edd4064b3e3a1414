"""scikit-learn estimators: scikit-learn's own check_estimator, and behaviour on every backend."""

import json
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from scipy.sparse import csr_matrix  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_multilabel_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkRegressor  # noqa: E402

import xpnet  # noqa: E402
import xpnet.sklearn.base  # noqa: E402
import xpnet.sklearn.lbfgs  # noqa: E402
from xpnet.engine.threads import limit_threads  # noqa: E402
from xpnet.memory import XpnetMemoryError  # noqa: E402
from xpnet.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# check_estimator runs in a fresh interpreter: SCIPY_ARRAY_API=1 must be set before scipy is
# imported, or scikit-learn skips its array API checks; pandas must be installed, or it skips
# the dataframe checks. We require every single check to pass, none expected to fail. The skips
# allowed: the multilabel decision_function check (scikit-learn's MLPClassifier has no
# decision_function either), and the array API checks of a library or device this machine lacks
# (CuPy, dpnp, CUDA, XPU, MPS); the ones it has (NumPy, array_api_strict's CPU_DEVICE and device1,
# torch's CPU in float64 and float32, mixed inputs, the same-namespace rule) must all pass. The
# estimators are scikit-learn's test configuration (max_iter=100), one per solver.
CHECK_ALL = """
import json, re, warnings
from sklearn.utils.estimator_checks import check_estimator
from xpnet.sklearn import MLPClassifier, MLPRegressor
ABSENT = re.compile("cupy is not installed|dpnp is not installed|requires cuda|no XPU device|MPS")
report = {}
for estimator in (MLPClassifier(max_iter=100), MLPRegressor(max_iter=100),
                  MLPClassifier(max_iter=100, solver="sgd"), MLPRegressor(max_iter=100, solver="sgd"),
                  MLPClassifier(max_iter=100, solver="lbfgs"), MLPRegressor(max_iter=100, solver="lbfgs")):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = check_estimator(estimator, on_fail=None)
    absent = [r for r in results if r["status"] == "skipped" and r["check_name"].startswith("check_array_api")
              and ABSENT.search(str(r["exception"]))]
    report[type(estimator).__name__ + "-" + estimator.solver] = {
        "count": len(results),
        "not_passed": [(r["check_name"], r["status"], repr(r["exception"])[:300])
                       for r in results if r["status"] != "passed" and not any(r is a for a in absent)
                       and r["check_name"] != "check_classifiers_multilabel_output_format_decision_function"],
        "array_api_passed": sorted(r["check_name"] for r in results
                                   if r["status"] == "passed" and r["check_name"].startswith("check_array_api")),
        "warnings": sorted({str(w.message)[:200] for w in caught if "Skip" in type(w.message).__name__
                            and not ABSENT.search(str(w.message))}),
    }
print(json.dumps(report))
"""


def test_check_estimator_passes_every_check():
    pytest.importorskip("pandas")
    pytest.importorskip("array_api_strict")
    pytest.importorskip("torch")
    env = dict(os.environ, SCIPY_ARRAY_API="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")  # tiny nets: 1 thread
    proc = subprocess.run([sys.executable, "-c", CHECK_ALL], capture_output=True, text=True, env=env, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    for name, result in report.items():
        assert result["not_passed"] == [], (name, result["not_passed"])
        assert result["count"] > 40, (name, result)
        # numpy, array_api_strict (CPU_DEVICE, device1), torch cpu (float64, float32); mixed; same namespace
        assert result["array_api_passed"] == ["check_array_api_input"] * 5 + ["check_array_api_mixed_inputs",
                                                                              "check_array_api_same_namespace"], result
        assert not any("decision_function" not in w for w in result["warnings"]), (name, result["warnings"])


def spelled(backend):
    """The backend as a string parameter: estimator parameters must survive clone()'s deepcopy."""
    return f"{backend.name}:{backend.device_name()}"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny nets on a shared 2-core machine: a second BLAS/torch thread only spins (results do not change)."""
    with limit_threads(1):
        yield


def quiet(estimator, X, y, **kwargs):
    """``estimator.fit`` with ConvergenceWarning ignored (short runs on purpose)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y, **kwargs)


def blobs(n=150, seed=0):
    X, y = xpnet.datasets.load("blobs", n_samples=n, noise=1.0, seed=seed)
    return X / 10, y


X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)
X_DIGITS = X_DIGITS[:300] / 16
Y_DIGITS = Y_DIGITS[:300]


def test_classifier_on_every_backend(backend, dtype):
    X, y = blobs()
    labels = np.array(["ant", "bee", "cat"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=100, random_state=0,
                        backend=spelled(backend), dtype=dtype)
    assert quiet(clf, X, labels) is clf
    pred = clf.predict(X)
    assert isinstance(pred, np.ndarray) and pred.dtype == labels.dtype  # NumPy out, original labels
    assert clf.score(X, labels) > 0.95
    proba = clf.predict_proba(X)
    assert isinstance(proba, np.ndarray) and proba.shape == (150, 3) and proba.dtype == np.dtype(dtype)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)
    assert [w.shape for w in clf.coefs_] == [(2, 8), (8, 3)] and clf.n_iter_ == len(clf.loss_curve_) >= 1
    assert all(w.dtype == np.dtype(dtype) and isinstance(w, np.ndarray) for w in clf.coefs_ + clf.intercepts_)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_same_fit_on_numpy_and_other_backends(backend, dtype):
    X, y = blobs(60)
    for solver in ("adam", "sgd", "lbfgs"):
        params = dict(hidden_layer_sizes=(5,), max_iter=20, random_state=3, dtype=dtype, solver=solver)
        here = quiet(MLPClassifier(backend=spelled(backend), **params), X, y)
        reference = quiet(MLPClassifier(backend="numpy", **params), X, y)
        rtol = 1e-9 if dtype == "float64" else 1e-3
        for a, b in zip(here.coefs_, reference.coefs_):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-5 if dtype == "float32" else 1e-9)


def test_regressor_on_every_backend(backend, dtype):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(120, 3))
    y = 3 + np.c_[np.sin(2 * X[:, 0]) + X[:, 1], X[:, 2] ** 2]  # targets are used as given (no standardization)
    reg = MLPRegressor(hidden_layer_sizes=(16,), activation="tanh", solver="lbfgs", max_iter=500, random_state=0,
                       backend=spelled(backend), dtype=dtype)
    pred = quiet(reg, X, y).predict(X)
    assert pred.shape == (120, 2) and reg.score(X, y) > 0.9
    single = quiet(clone(reg), X, y[:, 0])
    assert single.predict(X).shape == (120,)
    with pytest.warns(DataConversionWarning):  # scikit-learn's: a column y is taken as 1-D
        column = quiet(clone(reg), X, y[:, :1])
    assert column.predict(X).shape == (120,) and column.n_outputs_ == 1


def test_alpha_is_scikit_learns_l2():
    """One full-batch step without momentum, worked out by hand from the initial weights.

    scikit-learn's objective is mean loss + alpha / (2 n) * sum ||W||^2, so the weight step is
    -rate * (dW_mean + alpha / n * W); biases get no penalty.
    """
    X, y = blobs(40)
    params = dict(hidden_layer_sizes=(4,), activation="tanh", solver="sgd", alpha=3.0, learning_rate_init=0.1,
                  momentum=0.0, max_iter=1, shuffle=False, random_state=7)
    clf = quiet(MLPClassifier(**params), X, y)
    # the same random_state draws the same initial weights; a step of 1e-300 leaves them bit-identical
    start = quiet(MLPClassifier(**dict(params, alpha=0.0, learning_rate_init=1e-300)), X, y)
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


# -- scikit-learn's own estimator, step for step -----------------------------------------------------
def same_run(ours, theirs, rtol=1e-9):
    """Fitted weights and every recorded curve of both estimators agree."""
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12)
    for name in ("loss_curve_", "validation_scores_"):
        if getattr(theirs, name, None) is not None:
            np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=rtol)
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=rtol)


SOLVERS = [
    dict(solver="adam", learning_rate_init=0.01),
    dict(solver="sgd", learning_rate_init=0.1),  # Nesterov momentum, scikit-learn's default
    dict(solver="sgd", learning_rate_init=0.1, nesterovs_momentum=False),
    dict(solver="sgd", learning_rate_init=0.5, momentum=0, learning_rate="invscaling", power_t=0.25),
    dict(solver="sgd", learning_rate_init=0.1, momentum=0, learning_rate="adaptive", tol=0.05, n_iter_no_change=1),
    dict(solver="adam", early_stopping=True, learning_rate_init=0.01, tol=0, validation_fraction=0.2),
]


@pytest.mark.parametrize("params", SOLVERS, ids=lambda p: "-".join(str(v) for v in p.values()))
def test_same_epochs_as_scikit_learn_without_shuffling(params):
    """Same random_state: scikit-learn's initial weights and split; with shuffle=False the runs coincide."""
    common = dict(hidden_layer_sizes=(12,), shuffle=False, max_iter=15, batch_size=64, random_state=0, **params)
    same_run(quiet(MLPClassifier(**common), X_DIGITS, Y_DIGITS), quiet(SkClassifier(**common), X_DIGITS, Y_DIGITS))


@pytest.mark.parametrize("target", ["binary", "multilabel", "regression", "poisson"])
def test_same_epochs_as_scikit_learn_for_every_target(target):
    X, y = X_DIGITS, Y_DIGITS
    Ours, Theirs, extra = MLPClassifier, SkClassifier, {}
    if target == "binary":
        y = y % 2
    elif target == "multilabel":
        X, y = make_multilabel_classification(n_samples=120, random_state=0, return_indicator=True)
    else:
        Ours, Theirs = MLPRegressor, SkRegressor
        X, y = make_regression(n_samples=120, n_features=6, n_targets=3, noise=5.0, random_state=1)
        y = y / 100
        if target == "poisson":
            extra, y = dict(loss="poisson"), np.exp(y)
    common = dict(hidden_layer_sizes=(7,), solver="sgd", learning_rate_init=0.05, shuffle=False, max_iter=10,
                  batch_size=32, random_state=0, alpha=0.01, **extra)
    ours, theirs = quiet(Ours(**common), X, y), quiet(Theirs(**common), X, y)
    same_run(ours, theirs)  # loss_curve_ in scikit-learn's units: half the MSE averaged over the 3 outputs
    assert ours.out_activation_ == theirs.out_activation_ and ours.n_outputs_ == theirs.n_outputs_
    if target == "binary":  # one logistic unit, as scikit-learn
        assert ours.coefs_[-1].shape == (7, 1) and ours.n_outputs_ == 1 and ours.out_activation_ == "logistic"
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9)


def test_partial_fit_and_warm_start_follow_scikit_learn():
    common = dict(hidden_layer_sizes=(9,), solver="sgd", learning_rate_init=0.1, shuffle=False, random_state=2,
                  batch_size=50)
    ours, theirs = MLPClassifier(**common), SkClassifier(**common)
    for start in (0, 100, 200):
        X, y = X_DIGITS[start:start + 100], Y_DIGITS[start:start + 100]
        ours.partial_fit(X, y, classes=np.arange(10))
        theirs.partial_fit(X, y, classes=np.arange(10))
    same_run(ours, theirs)
    common = dict(hidden_layer_sizes=(9,), solver="lbfgs", random_state=2, warm_start=True, max_iter=10)
    ours, theirs = MLPClassifier(**common), SkClassifier(**common)
    for _ in range(2):
        quiet(ours, X_DIGITS, Y_DIGITS)
        quiet(theirs, X_DIGITS, Y_DIGITS)
        np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-7)


@pytest.mark.parametrize("Ours, Theirs", [(MLPClassifier, SkClassifier), (MLPRegressor, SkRegressor)])
def test_lbfgs_follows_scikit_learn(Ours, Theirs):
    y = Y_DIGITS if Ours is MLPClassifier else Y_DIGITS / 10.0
    common = dict(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=30, random_state=0, alpha=0.1)
    ours, theirs = quiet(Ours(**common), X_DIGITS, y), quiet(Theirs(**common), X_DIGITS, y)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-6)


def test_sample_weights_follow_scikit_learn_in_full_batch():
    rng = np.random.default_rng(0)
    w = rng.integers(0, 4, size=len(Y_DIGITS)).astype(float)
    for params in (dict(solver="lbfgs", max_iter=20), dict(solver="sgd", batch_size=300, shuffle=False, max_iter=10),
                   dict(solver="adam", batch_size=300, max_iter=10)):
        common = dict(hidden_layer_sizes=(8,), random_state=0, alpha=0.5, **params)
        ours = quiet(MLPClassifier(**common), X_DIGITS, Y_DIGITS, sample_weight=w)
        theirs = quiet(SkClassifier(**common), X_DIGITS, Y_DIGITS, sample_weight=w)
        np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-6)
        np.testing.assert_allclose(ours.predict_proba(X_DIGITS), theirs.predict_proba(X_DIGITS), rtol=1e-5, atol=1e-9)
        # and an integer weight is that many copies of the row
        X_copies, y_copies = np.repeat(X_DIGITS, w.astype(int), axis=0), np.repeat(Y_DIGITS, w.astype(int))
        full = dict(batch_size=len(y_copies)) if "batch_size" in params else {}
        copies = quiet(MLPClassifier(**dict(common, **full)), X_copies, y_copies)
        np.testing.assert_allclose(ours.predict_proba(X_DIGITS), copies.predict_proba(X_DIGITS), rtol=1e-5,
                                   atol=1e-9)


def test_minibatch_sample_weights_emphasise_rows():
    X, y = blobs(90)
    w = np.where(y == 0, 5.0, 1.0)
    clf = quiet(MLPClassifier(hidden_layer_sizes=(6,), batch_size=16, max_iter=30, random_state=0), X, y,
                sample_weight=w)
    plain = quiet(MLPClassifier(hidden_layer_sizes=(6,), batch_size=16, max_iter=30, random_state=0), X, y)
    assert clf.predict_proba(X)[y == 0, 0].mean() > plain.predict_proba(X)[y == 0, 0].mean()
    with pytest.raises(ValueError, match="negative"):
        MLPClassifier().fit(X, y, sample_weight=-w)
    with pytest.raises(ValueError, match="shape"):
        MLPClassifier().fit(X, y, sample_weight=w[:5])


# -- what the issue listed as wrong -------------------------------------------------------------------
def test_numpy_integer_and_inf_hyperparameters():
    X, y = blobs(40)
    clf = quiet(MLPClassifier(hidden_layer_sizes=np.array([5]), alpha=np.int64(0), max_iter=np.int64(3),
                              batch_size=np.int32(16), n_iter_no_change=np.inf, momentum=np.float32(0.5),
                              solver="sgd", verbose=np.int64(0)), X, y)
    assert clf.n_iter_ == 3


def test_batch_size_above_the_sample_count_warns():
    X, y = blobs(30)
    with pytest.warns(UserWarning, match="batch_size"):
        quiet(MLPClassifier(batch_size=100, max_iter=2), X, y)


def test_predict_reuses_the_fitted_network_and_pickles():
    X, y = blobs(60)
    clf = quiet(MLPClassifier(hidden_layer_sizes=(4,), max_iter=10, random_state=0), X, y)
    net = clf._predictor()
    state = np.random.get_state()[1].copy()
    first = clf.predict_proba(X)
    assert clf._predictor() is net  # no rebuild ...
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # ... and no random draw
    again = pickle.loads(pickle.dumps(clf))
    assert "_model" not in again.__dict__  # pickles hold NumPy arrays only
    np.testing.assert_array_equal(again.predict_proba(X), first)
    assert clone(clf).get_params() == clf.get_params()
    clf.coefs_ = [W * 0 for W in clf.coefs_]  # replaced weights are what predict uses
    np.testing.assert_allclose(clf.predict_proba(X), np.tile(clf.predict_proba(X[:1]), (60, 1)))


def test_sparse_prediction_in_row_chunks(monkeypatch):
    X, y = blobs(64)
    clf = quiet(MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0), X, y)
    monkeypatch.setattr(xpnet.sklearn.base, "PREDICT_CHUNK", 10)  # 5 rows of 2 features per chunk
    np.testing.assert_array_equal(clf.predict_proba(csr_matrix(X)), clf.predict_proba(X))


def test_divergence_names_the_learning_rate_when_inputs_are_scaled():
    X, y = blobs(60)
    with pytest.raises(ValueError, match="non-finite.*learning_rate_init=1e\\+200"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf * 0 in the blown-up pass (scikit-learn warns too)
        quiet(MLPRegressor(solver="sgd", learning_rate_init=1e200, max_iter=5), X, y.astype(float))


def test_verbose_prints_like_scikit_learn(capsys):
    X, y = blobs(30)
    quiet(MLPClassifier(max_iter=3, verbose=True, early_stopping=True, validation_fraction=0.3), X, y)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Iteration 1, loss = ") and out[1].startswith("Validation score: ")
    quiet(MLPClassifier(max_iter=3, verbose=True, solver="lbfgs"), X, y)
    assert "Iteration 1, loss = " in capsys.readouterr().out


def test_threads_do_not_change_results():
    X, y = blobs(300)
    a = quiet(MLPClassifier(hidden_layer_sizes=(64,), max_iter=3, random_state=0, threads=1), X, y)
    b = quiet(MLPClassifier(hidden_layer_sizes=(64,), max_iter=3, random_state=0, threads=2), X, y)
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("params, match", [
    (dict(activation="softplus"), "activation='softplus'"),
    (dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
    (dict(momentum=1.0), "momentum"),
    (dict(batch_size=0), "batch_size"),
    (dict(learning_rate_init=-1.0), "learning_rate_init"),
    (dict(dtype="float16"), "dtype"),
    (dict(solver="newton"), "solver"),
    (dict(n_iter_no_change=0), "n_iter_no_change"),
    (dict(threads=0), "threads"),
])
def test_bad_parameters_are_named(params, match):
    X, y = blobs(30)
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(X, y)


def test_one_class_predicts_that_class():
    """As scikit-learn: a single class trains a logistic unit towards "not the class" and predicts it."""
    clf = quiet(MLPClassifier(max_iter=5), np.zeros((4, 2)), np.full(4, 7))
    assert clf.classes_.tolist() == [7] and clf.predict(np.ones((3, 2))).tolist() == [7, 7, 7]


def test_poisson_needs_nonnegative_targets():
    with pytest.raises(ValueError, match="y >= 0"):
        MLPRegressor(loss="poisson").fit(np.zeros((4, 2)), [1.0, -1.0, 2.0, 0.0])


@pytest.mark.parametrize("Estimator, target", [(MLPClassifier, "multiclass"), (MLPClassifier, "binary"),
                                               (MLPRegressor, "squared_error"), (MLPRegressor, "poisson")])
def test_weighted_lbfgs_objective_gradient_matches_finite_differences(Estimator, target):
    """The objective L-BFGS minimises, with sample weights (xpnet.losses.weighted): gradient vs central differences."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(7, 3))
    y = {"multiclass": rng.integers(0, 3, 7), "binary": rng.integers(0, 2, 7),
         "squared_error": rng.normal(size=(7, 2)), "poisson": rng.poisson(2.0, size=(7, 2))}[target]
    extra = dict(loss=target) if Estimator is MLPRegressor else {}
    est = quiet(Estimator(hidden_layer_sizes=(4,), activation="tanh", solver="lbfgs", max_iter=1, random_state=0,
                          **extra), X, y)
    w = rng.uniform(0, 2, size=7)
    Y = est._validate_input(X, y, False, reset=False)[1]
    loss = est._training_loss()
    model = est._network(est.coefs_, est.intercepts_, est._model_backend(),
                         loss="squared" if loss is xpnet.losses.SQUARED_ERROR else loss)
    objective = xpnet.sklearn.lbfgs.Objective(model, X, est._targets(Y), w, 0.3)
    theta = np.hstack([a.ravel() for a in est.coefs_ + est.intercepts_])
    grad = objective(theta)[1]
    numeric = np.array([(objective(theta + e)[0] - objective(theta - e)[0]) / 2e-6 for e in np.eye(theta.size) * 1e-6])
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_weights_too_big_are_refused_before_they_are_drawn(Estimator, monkeypatch):
    """xpnet's memory error (one line, naming the parameter), not NumPy's MemoryError from the draw."""
    def drawn(*args):
        raise AssertionError("the initial weights were drawn before the memory check")

    monkeypatch.setattr(xpnet.sklearn.base, "glorot_uniform_with_biases", drawn)
    X, y = blobs(30)
    with pytest.raises(XpnetMemoryError, match=r"the weights of layers \[2, 1000000000, .*hidden_layer_sizes") as info:
        Estimator(hidden_layer_sizes=(10**9,)).fit(X, y)
    assert "\n" not in str(info.value)
