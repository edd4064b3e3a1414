"""xpnet.kernels: every kernel computes the generic pass's gradients, and is chosen only where it applies."""

import numpy as np
from helpers import assert_close, pass_gradients, plain_pass, problem, select
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnet
from xpnet.core.activations import Activation
from xpnet.engine import fullbatch, numpy_ops, plan
from xpnet.engine.kernels import numpy_gram


def spec_of(sizes, activation="tanh", bias=True, output="softmax"):
    return xpnet.MLP(sizes, activation=activation, bias=bias, output=output, backend="numpy").spec


@settings(max_examples=40, deadline=None)
@given(n=st.integers(numpy_ops.SMALL + 1, 2000), rows=st.integers(fullbatch.MIN_ROWS, 500), n_in=st.integers(1, 7),
       n_out=st.integers(1, 4), width=st.integers(1, 40), output=st.sampled_from(["softmax", "sigmoid", "identity"]),
       activation=st.sampled_from(["tanh", "sigmoid", "relu"]), bias=st.booleans(),
       reduction=st.sampled_from(["mean", "sum"]), dtype=st.sampled_from(["float32", "float64"]),
       seed=st.integers(0, 2**16))
def test_numpy_gram_equals_the_generic_pass(n, rows, n_in, n_out, width, output, activation, bias, reduction, dtype,
                                            seed):
    n_out = max(n_out, 2) if output == "softmax" else n_out
    if (n_in + bias) * n_out > numpy_gram.GRAM:
        n_in = numpy_gram.GRAM // n_out - bias
    sizes = [max(n_in, 1), width, n_out]
    model, X, T = problem("numpy", dtype, sizes, n, output, activation, bias, seed)
    assert select(model.spec, "numpy", dtype, n, "numpy") is numpy_gram.KERNEL
    got = pass_gradients(numpy_ops.NumpyOps(model.xp), model.spec, model.W, model.b, X, T, reduction, with_loss=True,
                              rows=rows, kernel="numpy")
    want = plain_pass(model, X, T, reduction)
    if dtype == "float64":
        assert_close(got, want, rtol=1e-9, atol=1e-12)
    else:
        assert_close(got, want, rtol=2e-3, atol=2e-4 * (1 if reduction == "mean" else n))


def test_numpy_gram_takes_only_the_tutorials_nets_on_numpy():
    tutorial = spec_of([2, 64, 2])
    assert select(tutorial, "numpy", "float32", 10**5, "numpy") is numpy_gram.KERNEL
    assert select(tutorial, "numpy", "float32", numpy_ops.SMALL, "numpy") is None  # the tutorials' sizes: plain
    for choice in ("numpy", "auto"):
        assert select(tutorial, "generic", "float32", 10**5, choice) is None  # torch, strict, cupy
        mine = Activation("softsign", lambda xp, Z: Z / (1 + xp.abs(Z)), lambda xp, dY, Y: dY * (1 - xp.abs(Y)) ** 2)
        assert select(spec_of([2, 64, 2], activation=mine), "numpy", "float32", 10**5, choice) is None
    assert select(spec_of([2, 64, 64, 2]), "numpy", "float32", 10**5, "numpy") is None  # deeper
    assert select(spec_of([784, 64, 10]), "numpy", "float32", 10**5, "numpy") is None  # wide input
    assert select(spec_of([8, 64, 10]), "numpy", "float32", 10**5, "numpy") is None  # (8 + 1) x 10 sums


def test_kernel_choice_is_checked():
    import pytest

    with pytest.raises(xpnet.XpnetValueError, match="kernels='fast'"):
        plan.choose(numpy_ops.NumpyOps(np), spec_of([2, 8, 2]), "float32", 10**5, "fast")


def test_numpy_gram_bits_do_not_depend_on_the_thread_count(monkeypatch):
    monkeypatch.setattr(fullbatch, "PARALLEL_MIN", 0)
    model, X, T = problem("numpy", "float32", [2, 33, 3], 3001, seed=4)
    args = (numpy_ops.NumpyOps(model.xp), model.spec, model.W, model.b, X, T, "mean")
    with xpnet.limit_threads(1):
        one = pass_gradients(*args, with_loss=True, rows=100, kernel="numpy")
    with xpnet.limit_threads(2):
        two = pass_gradients(*args, with_loss=True, rows=100, kernel="numpy")
    for a, b in zip(one.flat(), two.flat()):
        np.testing.assert_array_equal(a, b)


def test_weighted_and_poisson_losses_never_get_a_compiled_kernel():
    """The compiled loops spell out xpnet's own three losses and outputs; anything else takes a
    NumPy pass, whatever the choice."""
    import dataclasses

    from xpnet.core import losses

    tutorial = spec_of([2, 64, 2])
    weighted = dataclasses.replace(tutorial, loss=losses.weighted(tutorial.loss))
    poisson = spec_of([2, 64, 1], output="exp")
    for spec in (weighted, poisson):
        chosen = select(spec, "numpy", "float32", 10**5, "auto")
        assert chosen is None or chosen.family == "numpy"
        assert select(spec, "numpy", "float32", 10**5, "jit") is None
