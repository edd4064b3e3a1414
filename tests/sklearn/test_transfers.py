"""What the estimators themselves convert from the device to the host (issue 21's sync budget, their side).

Counted on array_api_strict: every call of its Array's ``__float__``, ``__bool__``, ``__int__``,
``__index__``, ``__array__`` and ``__dlpack__`` is charged to the innermost caller on the stack
that is the training loop (``xpnet.training``) or an estimator (``xpnet.sklearn``), so the loop's
own conversions are told apart from the estimators' (helpers they call, such as
``xpnet.backend.to_numpy``, are charged to their caller). Per epoch the estimators add nothing, or one number with
``early_stopping`` (the held-out score the stall rule compares); an L-BFGS evaluation brings
back one vector.
"""

import sys
import warnings
from collections import Counter
from contextlib import contextmanager

import numpy as np
import pytest

pytest.importorskip("sklearn")
xs = pytest.importorskip("array_api_strict")
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

import xpnet  # noqa: E402
from xpnet.engine.threads import limit_threads  # noqa: E402
from xpnet.sklearn import MLPClassifier, MLPRegressor  # noqa: E402
from xpnet.sklearn.lbfgs import Objective  # noqa: E402

CONVERSIONS = ("__float__", "__bool__", "__int__", "__index__", "__array__", "__dlpack__")


def charged_to() -> str:
    """The innermost calling module of the loop or the estimators (``xpnet.sklearn.stochastic``...)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith(("xpnet.sklearn", "xpnet.training")):
            return name
        frame = frame.f_back
    return "elsewhere"


@contextmanager
def counted():
    """A Counter of array_api_strict's conversions to the host, by the xpnet module that asked."""
    Array, counts = type(xs.asarray(0.0)), Counter()

    def counting(original):
        def method(self, *args, **kwargs):
            counts[charged_to()] += 1
            return original(self, *args, **kwargs)
        return method

    originals = {name: getattr(Array, name) for name in CONVERSIONS}
    for name, original in originals.items():
        setattr(Array, name, counting(original))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(Array, name, original)


def by_estimators(counts) -> int:
    return sum(n for module, n in counts.items() if module.startswith("xpnet.sklearn"))


def blobs():
    X, y = xpnet.datasets.load("blobs", n_samples=120, noise=1.0, seed=0)
    return X / 10, y


def estimator_conversions(Estimator, epochs, **params) -> int:
    X, y = blobs()
    if Estimator is MLPRegressor:
        y = y.astype(float)
    est = Estimator(hidden_layer_sizes=(6,), max_iter=epochs, batch_size=10, random_state=0, tol=0.0,
                    n_iter_no_change=np.inf, backend="array_api_strict", **params)
    with counted() as counts, warnings.catch_warnings(), limit_threads(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert est.n_iter_ == epochs  # ran every epoch: 12 steps each
    return by_estimators(counts)


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("params, per_epoch", [(dict(), 0), (dict(solver="sgd"), 0),
                                               (dict(early_stopping=True), 1)])
def test_the_estimators_convert_at_most_one_number_per_epoch(Estimator, params, per_epoch):
    few, more = estimator_conversions(Estimator, 3, **params), estimator_conversions(Estimator, 6, **params)
    assert more - few == 3 * per_epoch, (few, more)
    assert few <= 12 + 3 * per_epoch  # and a handful per fit: validation, the finite check, the split's labels


def test_an_lbfgs_evaluation_brings_back_one_vector():
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=2, random_state=0,
                        backend="array_api_strict")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    model = clf._network(clf.coefs_, clf.intercepts_, clf._model_backend(), loss=clf._training_loss())
    objective = Objective(model, X, y, None, 1e-4)
    theta = np.concatenate([a.ravel() for a in clf.coefs_ + clf.intercepts_])
    with counted() as counts:
        for _ in range(4):
            objective(theta)
    assert sum(counts.values()) == 4, counts
