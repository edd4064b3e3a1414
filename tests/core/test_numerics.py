"""Numerically stable math: no overflow, no warning (warnings are errors), right values."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xpnet
from xpnet.core import activations, losses

EXTREME = [-1e30, -1e4, -745.0, -710.0, -100.0, -1.0, 0.0, 1.0, 100.0, 710.0, 1e4, 1e30]


def ref_sigmoid(z):
    return 1 / (1 + math.exp(-z)) if z > -700 else 0.0 if z < -745 else math.exp(z) / (1 + math.exp(z))


def test_sigmoid_is_finite_and_exact_where_representable(backend, dtype):
    Z = backend.asarray(EXTREME, dtype)
    Y = xpnet.to_numpy(activations.sigmoid(backend.xp, Z))
    expected = np.array([ref_sigmoid(z) for z in EXTREME], dtype=dtype)
    assert np.all(np.isfinite(Y)) and np.all((Y >= 0) & (Y <= 1))
    np.testing.assert_allclose(Y, expected, rtol=1e-6, atol=np.finfo(dtype).tiny * 1e10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_in_fits_quiet_mode_is_the_tutorial_formula_with_the_same_bits(dtype):
    """Inside overflow_quiet (how fit trains) NumPy takes 1 / (1 + exp(-Z)) as written: an
    overflowing exp is inf, the result exactly 0, no warning; everywhere the guarded form's bits."""
    xp = xpnet.get_backend("numpy").xp
    Z = np.concatenate([np.array(EXTREME), np.random.default_rng(0).normal(scale=50, size=500)]).astype(dtype)
    guarded = activations.sigmoid(xp, Z)
    with activations.overflow_quiet():
        quiet = activations.sigmoid(xp, Z)
    np.testing.assert_array_equal(quiet, guarded)
    assert quiet[0] == 0.0 and quiet[1] == 0.0  # -1e30, -1e4: exp(-Z) overflows


def test_fit_runs_callbacks_in_the_callers_numpy_error_state():
    seen = []
    X, y = xpnet.datasets.xor()
    model = xpnet.MLP([3, 4, 1], activation="sigmoid", output="sigmoid", bias=False, backend="numpy")
    with np.errstate(over="raise"):
        model.fit(X, y, epochs=4, log_every=2, callback=lambda event: seen.append(np.geterr()["over"]))
        assert np.geterr()["over"] == "raise"
    assert seen == ["raise"] * 3 and np.geterr()["over"] == "warn"


def test_softmax_and_cross_entropy_at_1e30(backend, dtype):
    xp = backend.xp
    Z = backend.asarray([[1e30, -1e30], [-1e30, 1e30], [0.0, 1e30], [5.0, 5.0]], dtype)
    T = backend.asarray([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype)
    P = activations.softmax(xp, Z)
    total = float(losses.cross_entropy_total(xp, Z, P, T))
    # row 0: 0; row 1: 2e30; row 2: 0; row 3: log 2
    assert total == pytest.approx(2e30 + math.log(2), rel=1e-6)
    assert np.all(np.isfinite(xpnet.to_numpy(P)))


def test_binary_cross_entropy_from_logits_at_1e30(backend, dtype):
    xp = backend.xp
    Z = backend.asarray([[1e30], [-1e30], [0.0]], dtype)
    T = backend.asarray([[0.0], [0.0], [1.0]], dtype)
    Y = activations.sigmoid(xp, Z)
    assert float(losses.binary_cross_entropy_total(xp, Z, Y, T)) == pytest.approx(1e30 + math.log(2), rel=1e-6)


def test_a_model_on_huge_inputs_stays_finite(backend, dtype):
    X = np.array([[1e30, -1e30], [-1e30, 1e30], [3.0, 1.0]])
    for output in ("softmax", "sigmoid"):
        model = xpnet.MLP([2, 3, 2], output=output, backend=backend, dtype=dtype)
        P = xpnet.to_numpy(model.predict_proba(X))
        assert np.all(np.isfinite(P))
        assert math.isfinite(model.loss(X, np.array([0, 1, 1]) if output == "softmax" else np.eye(2)[[0, 1, 1]]))


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=60, deadline=None)
@given(X=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6), elements=finite_or_not),
       y=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=6), elements=finite_or_not),
       dtype=st.sampled_from(["float32", "float64"]), output=st.sampled_from(["softmax", "sigmoid", "identity"]))
def test_public_api_gives_a_result_or_an_xpnet_error(X, y, dtype, output):
    model = xpnet.MLP([2, 3, 2], output=output, backend="numpy", dtype=dtype)
    try:
        result = model.fit(X, y, epochs=2, learning_rate=0.1)
        model.predict(X)
    except xpnet.XpnetError:
        return
    assert result.epochs in (0, 2)
