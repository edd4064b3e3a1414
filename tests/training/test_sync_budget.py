"""The sync budget: between logging points an epoch converts nothing from the device to the host,
except one number per epoch for each per-epoch rule that needs it (the stall rule, a
validation score, early stopping).

On a GPU every such conversion is a stall; array-api-strict's arrays count them here: every
way an array reaches the host (``__float__``, ``__bool__``, ``__int__``, ``__index__``,
``__array__``, ``__dlpack__``, ``__complex__``) is wrapped, and two fits that differ only in
their number of epochs give the conversions per epoch.
"""

import contextlib

import numpy as np
import pytest

import xpnet

strict = pytest.importorskip("array_api_strict")
CONVERSIONS = ("__float__", "__bool__", "__int__", "__index__", "__array__", "__dlpack__", "__complex__")


@contextlib.contextmanager
def counting(monkeypatch):
    """A list that grows by one name at every device-to-host conversion of an array-api-strict array."""
    seen: list = []
    Array = type(strict.asarray(0.0))
    for name in CONVERSIONS:
        original = getattr(Array, name)

        def wrapper(self, *args, _original=original, _name=name, **kwargs):
            seen.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Array, name, wrapper)
    yield seen


def problem(n=96, features=3, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)), rng.integers(0, classes, n)


def conversions(monkeypatch, epochs, model_options, fit_options):
    X, y = problem()
    model = xpnet.MLP([3, 8, 3], backend="array_api_strict", seed=0, **model_options)
    with counting(monkeypatch) as seen:
        xpnet.fit(model, X, y, epochs=epochs, log_every=10**6, **fit_options)  # logged at the first and last epochs
    return len(seen)


# (model options, fit options, the per-epoch budget)
CASES = {
    "plain full batch": ({}, {}, 0),
    "minibatches, shuffled": ({}, {"batch_size": 16}, 0),
    "momentum, nesterov, l2": ({}, {"batch_size": 32, "momentum": 0.9, "nesterov": True, "l2": 0.01}, 0),
    "adam": ({}, {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 32}, 0),
    "clipping": ({}, {"batch_size": 32, "clip_value": 0.1, "clip_norm": 0.5}, 0),
    "schedules": ({}, {"schedule": "cosine", "batch_size": 32}, 0),
    "dropout": ({"dropout": 0.2}, {"batch_size": 32}, 0),
    "batch norm": ({"batch_norm": True}, {"batch_size": 32}, 0),
    "sample weights": ({}, {"batch_size": 32, "sample_weight": np.linspace(0.5, 1.5, 96)}, 0),
    "sum reduction, l2 per batch": ({}, {"batch_size": 32, "reduction": "sum", "l2": 0.1, "l2_scaling": "batch"}, 0),
    "the stall rule": ({}, {"batch_size": 16, "tol": 1e-12, "n_iter_no_change": 10**6, "l2": 0.01}, 1),
    "early stopping": ({}, {"batch_size": 32, "early_stopping": True, "patience": 10**6}, 1),
    "stall rule and early stopping": ({}, {"batch_size": 32, "tol": 1e-12, "n_iter_no_change": 10**6,
                                           "early_stopping": True, "patience": 10**6}, 2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_epoch_stays_on_the_device(monkeypatch, case):
    model_options, fit_options, budget = CASES[case]
    per_epoch = (conversions(monkeypatch, 7, model_options, fit_options)
                 - conversions(monkeypatch, 3, model_options, fit_options)) / 4
    assert per_epoch <= budget, f"{case}: {per_epoch} conversions per epoch, budget {budget}"


def test_the_counter_sees_conversions(monkeypatch):
    """The wrapper really counts: a float() of a device scalar is one conversion."""
    with counting(monkeypatch) as seen:
        float(strict.sum(strict.asarray([1.0, 2.0])))
    assert seen == ["__float__"]


def test_the_estimators_defaults_stay_within_the_budget(monkeypatch):
    """scikit-learn's defaults (adam, alpha 1e-4, tol 1e-4, batches of 200): one number per epoch,
    the epoch's loss that the stall rule and ``loss_curve_`` need."""
    sklearn = pytest.importorskip("sklearn")
    from xpnet.sklearn import MLPClassifier

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(1600, 4)), rng.integers(0, 3, 1600)  # 8 minibatches of 200 per epoch

    def run(epochs):
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=epochs, n_iter_no_change=10**6, random_state=0,
                            backend="array_api_strict")
        with counting(monkeypatch) as seen, pytest.warns(sklearn.exceptions.ConvergenceWarning):
            clf.fit(X, y)
        return len(seen)

    assert (run(6) - run(2)) / 4 <= 1
