"""xpnet.core.ops: the primitives, generic and NumPy, give the same results (the same bits where promised)."""

import contextlib

import numpy as np
from conftest import available_backend
from helpers import problem
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnet
from xpnet.core import ops
from xpnet.core.activations import HIDDEN, Activation
from xpnet.core.network import gradients
from xpnet.engine import activations as engine_activations
from xpnet.engine import numpy_ops


def same_bits(got, want):
    assert (got.db is None) == (want.db is None)
    for a, b in zip(got.flat(), want.flat()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got.data_loss, want.data_loss)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, numpy_ops.SMALL), hidden=st.lists(st.integers(1, 6), min_size=0, max_size=3),
       n_in=st.integers(1, 4), output=st.sampled_from(["softmax", "sigmoid", "identity"]),
       activation=st.sampled_from(["tanh", "sigmoid", "relu"]), bias=st.booleans(),
       reduction=st.sampled_from(["mean", "sum"]), numerics=st.sampled_from(["stable", "tutorial"]),
       loss=st.sampled_from([None, "binary_cross_entropy"]), quiet=st.booleans(), seed=st.integers(0, 2**16))
def test_numpy_primitives_give_the_generic_bits(n, hidden, n_in, output, activation, bias, reduction, numerics,
                                                loss, quiet, seed):
    """NumpyOps (``ndarray.dot``, ``np.add.reduce``) is the generic pass to the last bit, inside fit's
    overflow_quiet (the sigmoid as the tutorials write it) or not: the tutorials' digits rest on it."""
    loss = loss if output == "sigmoid" else None
    sizes = [n_in, *hidden, 2 if output == "softmax" else 3]
    model, X, T = problem("numpy", "float64", sizes, n, output, activation, bias, seed, scale=30, loss=loss,
                          numerics=numerics)  # large inputs: sigmoids saturate
    scale = n if reduction == "mean" else None
    args = (model.spec, model.W, model.b, X, T, scale, True)
    # the tutorials' plain softmax overflows for large logits, as theirs does (fit trains with overflow quiet)
    loud = np.errstate(over="ignore", invalid="ignore") if numerics == "tutorial" else contextlib.nullcontext()
    with loud:
        want = gradients(ops.Ops(model.xp), *args)
        with xpnet.activations.overflow_quiet() if quiet else contextlib.nullcontext():
            got = gradients(numpy_ops.NumpyOps(model.xp), *args)
    same_bits(got, want)


def test_only_xpnets_own_activations_run_in_place():
    """A user's activation named like a built-in one is not taken for it: the lane calls its own functions."""
    calls = []

    def forward(xp, Z):
        calls.append("forward")
        return xp.tanh(Z)

    def backward(xp, dY, Y):
        calls.append("backward")
        return dY * (1 - Y * Y)

    mine = Activation("tanh", forward, backward)
    assert engine_activations.in_place(HIDDEN["tanh"]) is not None and engine_activations.in_place(mine) is None
    model, X, T = problem("numpy", "float64", [3, 5, 4, 2], 40, activation=mine)
    lane = numpy_ops.get_ops(model.backend).lane(model.spec, model.W, model.b, 40, X.dtype)
    got = gradients(lane, model.spec, model.W, model.b, X, T, 40, True)
    want = gradients(ops.Ops(model.xp), model.spec, model.W, model.b, X, T, 40, True)
    assert calls.count("forward") == calls.count("backward") == 4  # two hidden layers, two passes
    for a, b in zip(got.flat(), want.flat()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_rank_one_products_are_broadcast_multiplies():
    rng = np.random.default_rng(2)
    A, B = rng.normal(size=(50, 1)), rng.normal(size=(1, 7))
    out = np.empty((50, 7))
    assert numpy_ops._product(A, B, out) is out
    np.testing.assert_array_equal(out, A @ B)  # one product per entry: exactly the matmul


def test_numpy_accumulate_owns_its_sums():
    """A lane's gradients may live in its buffers: the running total copies the first part."""
    np_ops = numpy_ops.NumpyOps(np)
    part = ops.Gradients([np.ones((2, 3))], [np.ones(3)], np.float64(2.0))
    total = np_ops.accumulate(None, part)
    part.dW[0][:] = 5  # the buffer is reused by the next chunk
    total = np_ops.accumulate(total, part)
    np.testing.assert_array_equal(total.dW[0], np.full((2, 3), 6.0))
    np.testing.assert_array_equal(total.db[0], np.full(3, 2.0))
    assert float(total.data_loss) == 4.0
    generic = ops.Ops(np).accumulate(ops.Ops(np).accumulate(None, part), part)
    np.testing.assert_array_equal(generic.dW[0], np.full((2, 3), 10.0))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 9000), n_in=st.integers(1, 5), n_out=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_weight_gradient_equals_the_plain_product(n, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    H, dZ = rng.normal(size=(n, n_in)), rng.normal(size=(n, n_out))
    np.testing.assert_allclose(numpy_ops.weight_gradient(np, H, dZ), H.T @ dZ, rtol=1e-10, atol=1e-9)


def test_get_ops_picks_the_numpy_override_only_for_numpy():
    assert type(numpy_ops.get_ops(xpnet.get_backend("numpy"))) is numpy_ops.NumpyOps
    strict = available_backend("array_api_strict")
    assert type(numpy_ops.get_ops(strict)) is ops.Ops
