"""xpnet.ops: the full-batch gradient pass over row chunks, generic and NumPy, against the plain pass."""

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnet
from conftest import available_backend, rtol_for
from xpnet import ops
from xpnet.mlp import backward, forward


def plain_pass(model, X, T, reduction):
    """The unchunked reference: forward + backward on all rows, and the summed data loss."""
    spec, xp = model.spec, model.xp
    Y, cache = forward(spec, xp, model.W, model.b, X)
    dW, db = backward(spec, xp, model.W, cache, Y, T, reduction)
    return dW, db, spec.loss.total(xp, cache[1], Y, T, spec.stable)


def assert_same(got, want, rtol, atol=0.0):
    dW, db, loss = got
    for a, b in zip(dW, want[0]):
        np.testing.assert_allclose(xpnet.to_numpy(a), xpnet.to_numpy(b), rtol=rtol, atol=atol)
    assert (db is None) == (want[1] is None)
    for a, b in zip(db or [], want[1] or []):
        np.testing.assert_allclose(xpnet.to_numpy(a), xpnet.to_numpy(b), rtol=rtol, atol=atol)
    np.testing.assert_allclose(float(loss), float(want[2]), rtol=rtol)


def problem(backend, dtype, sizes, n, output="softmax", activation="tanh", bias=True, seed=0):
    rng = np.random.default_rng(seed)
    model = xpnet.MLP(sizes, activation=activation, output=output, bias=bias, backend=backend, dtype=dtype, seed=seed)
    if output == "softmax":
        y = rng.integers(0, sizes[-1], size=n)
    else:
        y = rng.random((n, sizes[-1]))
    X = model.as_inputs(rng.normal(size=(n, sizes[0])))
    return model, X, model.as_targets(y, n)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(ops.SMALL + 1, 1500), rows=st.integers(ops.MIN_ROWS, 400),
       hidden=st.lists(st.integers(1, 12), min_size=0, max_size=3), n_in=st.integers(1, 20),
       output=st.sampled_from(["softmax", "sigmoid", "identity"]), n_out=st.integers(1, 5),
       activation=st.sampled_from(["tanh", "sigmoid", "relu"]), bias=st.booleans(),
       reduction=st.sampled_from(["mean", "sum"]), seed=st.integers(0, 2**16))
def test_chunked_full_batch_equals_unchunked(n, rows, hidden, n_in, output, n_out, activation, bias, reduction, seed):
    """Every shape class of the NumPy pass: inputs folded or not, thin or not (n_in), thin and
    wide outputs (n_out), rank-1 products (widths of 1), any depth."""
    sizes = [n_in, *hidden, max(n_out, 2) if output == "softmax" else n_out]
    model, X, T = problem("numpy", "float64", sizes, n, output, activation, bias, seed)
    want = plain_pass(model, X, T, reduction)
    for impl in (ops.Ops(model.xp), ops.NumpyOps(model.xp)):
        got = impl.gradients(model.spec, model.W, model.b, X, T, reduction, with_loss=True, rows=rows)
        assert_same(got, want, rtol=1e-9, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(ops.SMALL + 1, 1200), rows=st.integers(ops.MIN_ROWS, 300), seed=st.integers(0, 2**16),
       net=st.sampled_from([((3, 7, 5, 2), "softmax"), ((2, 9, 2), "softmax"), ((30, 6, 10), "softmax"),
                            ((1, 4, 1), "sigmoid")]))
def test_numpy_pass_has_the_same_bits_at_any_thread_count(n, rows, seed, net):
    """Fixed chunks on fixed lanes, added in lane order: the thread count changes no bit."""
    model, X, T = problem("numpy", "float64", list(net[0]), n, output=net[1], seed=seed)
    args = (model.spec, model.W, model.b, X, T, "mean")
    numpy_ops = ops.NumpyOps(model.xp)
    numpy_ops.parallel_min = 0  # lanes on threads even for these small passes
    with xpnet.limit_threads(1):
        one = numpy_ops.gradients(*args, with_loss=True, rows=rows)
    for threads in (2, 3):
        with xpnet.limit_threads(threads):
            many = numpy_ops.gradients(*args, with_loss=True, rows=rows)
        for a, b in zip(many.dW + many.db, one.dW + one.db):
            np.testing.assert_array_equal(a, b)
        assert float(many.data_loss) == float(one.data_loss)
    generic = ops.Ops(model.xp).gradients(*args, with_loss=True, rows=rows)  # and agrees with the generic pass
    assert_same((one.dW, one.db, one.data_loss), (generic.dW, generic.db, generic.data_loss), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(ops._IN_PLACE))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_in_place_activations_equal_the_generic_ones(name, dtype):
    """The NumPy pass's in-place forms against :mod:`xpnet.activations` (overflowing inputs included)."""
    xp = xpnet.get_backend("numpy").xp
    rng = np.random.default_rng(1)
    Z = np.concatenate([rng.normal(scale=4, size=(60, 5)), [[-1e4, -800.0, -90.0, 90.0, 1e4]]]).astype(dtype)
    dY = rng.normal(size=Z.shape).astype(dtype)
    act = xpnet.activations.get_hidden(name)
    forward, backward, slope = ops._IN_PLACE[name]
    Y = Z.copy()
    forward(Y)
    want = act.forward(xp, Z)
    tiny = np.finfo(dtype).tiny  # the in-place sigmoid gives ~1e-39 / 1e-309 where the generic one gives 0
    np.testing.assert_allclose(Y, want, rtol=4 * np.finfo(dtype).eps, atol=tiny)
    dZ = backward(dY.copy(), want.copy())
    np.testing.assert_allclose(dZ, act.backward(xp, dY, want), rtol=4 * np.finfo(dtype).eps, atol=tiny)
    S = slope(want.copy(), np.empty_like(want))  # the derivative itself: the backward pass of ones
    np.testing.assert_array_equal(S, act.backward(xp, np.ones_like(want), want))


def test_rank_one_products_are_broadcast_multiplies():
    rng = np.random.default_rng(2)
    A, B = rng.normal(size=(50, 1)), rng.normal(size=(1, 7))
    out = np.empty((50, 7))
    assert ops._product(A, B, out) is out
    np.testing.assert_array_equal(out, A @ B)  # one product per entry: exactly the matmul


def test_chunked_pass_on_every_backend(backend, dtype):
    model, X, T = problem(backend, dtype, [2, 9, 3], 700, seed=5)
    got = ops.get_ops(backend).gradients(model.spec, model.W, model.b, X, T, "mean", with_loss=True, rows=100)
    assert_same(got, plain_pass(model, X, T, "mean"), rtol=rtol_for(dtype), atol=1e-6 if dtype == "float32" else 1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, ops.SMALL), hidden=st.lists(st.integers(1, 6), min_size=0, max_size=3),
       n_in=st.integers(1, 4), output=st.sampled_from(["softmax", "sigmoid", "identity"]),
       activation=st.sampled_from(["tanh", "sigmoid", "relu"]), bias=st.booleans(),
       reduction=st.sampled_from(["mean", "sum"]), numerics=st.sampled_from(["stable", "tutorial"]),
       loss=st.sampled_from([None, "binary_cross_entropy"]), quiet=st.booleans(), seed=st.integers(0, 2**16))
def test_small_numpy_pass_gives_the_generic_bits(n, hidden, n_in, output, activation, bias, reduction, numerics,
                                                  loss, quiet, seed):
    """NumpyOps' plain pass (``ndarray.dot``, ``np.add.reduce``) is the generic one to the last bit,
    inside fit's overflow_quiet (the sigmoid as the tutorials write it) or not."""
    loss = loss if output == "sigmoid" else None
    sizes = [n_in, *hidden, 2 if output == "softmax" else 3]
    rng = np.random.default_rng(seed)
    model = xpnet.MLP(sizes, activation=activation, output=output, loss=loss, bias=bias, backend="numpy",
                      dtype="float64", seed=seed, numerics=numerics)
    y = rng.integers(0, sizes[-1], size=n) if output == "softmax" else rng.random((n, sizes[-1]))
    X = model.as_inputs(rng.normal(scale=30, size=(n, n_in)))  # large enough for sigmoids to saturate
    T = model.as_targets(y, n)
    args = (model.spec, model.W, model.b, X, T, reduction)
    want = ops.Ops(model.xp).gradients(*args, with_loss=True)
    with xpnet.activations.overflow_quiet() if quiet else contextlib.nullcontext():
        got = ops.NumpyOps(model.xp).gradients(*args, with_loss=True)
    for a, b in zip(got.dW + (got.db or []), want.dW + (want.db or [])):
        np.testing.assert_array_equal(a, b)
    assert (got.db is None) == (want.db is None)
    np.testing.assert_array_equal(got.data_loss, want.data_loss)


def test_small_problems_take_the_plain_pass_bit_for_bit():
    """Up to SMALL rows (the tutorials) nothing is chunked: exactly forward + backward."""
    model, X, T = problem("numpy", "float64", [2, 3, 2], ops.SMALL, seed=2)
    got = ops.get_ops(model.backend).gradients(model.spec, model.W, model.b, X, T, "sum", with_loss=True, rows=16)
    want = plain_pass(model, X, T, "sum")
    for a, b in zip(got.dW + got.db, want[0] + want[1]):
        np.testing.assert_array_equal(a, b)
    assert float(got.data_loss) == float(want[2])


def test_get_ops_picks_the_numpy_override_only_for_numpy():
    assert type(ops.get_ops(xpnet.get_backend("numpy"))) is ops.NumpyOps
    strict = available_backend("array_api_strict")
    assert type(ops.get_ops(strict)) is ops.Ops


def test_chunk_rows_follow_the_cache_budget():
    numpy_ops = ops.NumpyOps(None)
    assert numpy_ops.chunk_rows((2, 1024, 2), 4) == 256  # 1 MiB of float32 activations
    assert numpy_ops.chunk_rows((30, 1024, 10), 8) == 128
    assert numpy_ops.chunk_rows((784, 1024, 10), 4) == 784  # at least the input width
    assert numpy_ops.chunk_rows((2, 65536, 2), 4) == ops.MIN_ROWS
    assert ops.Ops(None).chunk_rows((2, 1024, 2), 4) == 65536  # elsewhere: only bounds the memory
    assert numpy_ops.pass_rows((2, 1024, 2), 4, 10**5) == 256
    assert numpy_ops.pass_rows((2, 64, 2), 4, 1000) == 250  # a chunk for each of the 4 lanes
    assert numpy_ops.pass_rows((2, 64, 2), 4, 240) == ops.MIN_ROWS


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fit_over_chunks_matches_the_unchunked_backend(reduction):
    """NumPy chunks N=3000 rows (H=600: 218 rows per chunk); array_api_strict does not."""
    strict = available_backend("array_api_strict")
    X, y = xpnet.datasets.load("moons", n_samples=3000, noise=0.2, seed=1)
    results = []
    for be in ("numpy", strict):
        model = xpnet.MLP([2, 600, 2], backend=be, dtype="float64", seed=1)
        assert be != "numpy" or ops.get_ops(model.backend).chunk_rows(model.layer_sizes, 8) < 3000
        result = model.fit(X, y, epochs=4, learning_rate=0.5 if reduction == "mean" else 1e-4,
                           l2=0.01, reduction=reduction, log_every=1)
        results.append((result.history, [xpnet.to_numpy(w) for w in model.W]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-10)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert results[0][0][-1] < results[0][0][0]


def test_passes_in_parallel_threads_do_not_share_buffers():
    """Two fits in two Python threads (e.g. a thread pool of estimators) each get their own buffers."""
    from concurrent.futures import ThreadPoolExecutor

    problems = [problem("numpy", "float64", [2, 40, 2], 900, seed=s) for s in (1, 2)]
    numpy_ops = ops.NumpyOps(problems[0][0].xp)
    numpy_ops.parallel_min = 0

    def run(p):
        model, X, T = p
        return [numpy_ops.gradients(model.spec, model.W, model.b, X, T, "mean", rows=64).dW for _ in range(5)]

    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(run, problems))
    for p, runs in zip(problems, together):
        alone = run(p)[0]
        for dW in runs:
            for a, b in zip(dW, alone):
                np.testing.assert_array_equal(a, b)
