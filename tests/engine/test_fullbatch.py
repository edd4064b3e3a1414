"""xpnet.engine.fullbatch: the pass over row chunks on fixed lanes equals the plain pass, at any thread count."""

from unittest import mock

import numpy as np
import pytest
from conftest import available_backend, rtol_for
from helpers import assert_close, pass_gradients, plain_pass, problem
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnet
from xpnet.core import ops
from xpnet.engine import fullbatch, numpy_ops, threads


@settings(max_examples=40, deadline=None)
@given(n=st.integers(numpy_ops.SMALL + 1, 1500), rows=st.integers(fullbatch.MIN_ROWS, 400),
       hidden=st.lists(st.integers(1, 12), min_size=0, max_size=3), n_in=st.integers(1, 20),
       output=st.sampled_from(["softmax", "sigmoid", "identity"]), n_out=st.integers(1, 5),
       activation=st.sampled_from(["tanh", "sigmoid", "relu"]), bias=st.booleans(),
       reduction=st.sampled_from(["mean", "sum"]), seed=st.integers(0, 2**16))
def test_chunked_full_batch_equals_unchunked(n, rows, hidden, n_in, output, n_out, activation, bias, reduction, seed):
    """Every shape class of the NumPy lanes: inputs folded or not, thin or not (n_in), thin and wide
    outputs (n_out), rank-1 products (widths of 1), any depth; kernels where they apply."""
    sizes = [n_in, *hidden, max(n_out, 2) if output == "softmax" else n_out]
    model, X, T = problem("numpy", "float64", sizes, n, output, activation, bias, seed)
    want = plain_pass(model, X, T, reduction)
    for impl in (ops.Ops(model.xp), numpy_ops.NumpyOps(model.xp)):
        # the NumPy lanes and kernels (tests/engine/test_jit.py: the jit ones)
        got = pass_gradients(impl, model.spec, model.W, model.b, X, T, reduction, with_loss=True, rows=rows,
                             kernel="numpy")
        assert_close(got, want, rtol=1e-9, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(numpy_ops.SMALL + 1, 1200), rows=st.integers(fullbatch.MIN_ROWS, 300), seed=st.integers(0, 2**16),
       net=st.sampled_from([((3, 7, 5, 2), "softmax"), ((2, 9, 2), "softmax"), ((30, 6, 10), "softmax"),
                            ((1, 4, 1), "sigmoid")]))
def test_numpy_pass_has_the_same_bits_at_any_thread_count(n, rows, seed, net):
    """Fixed chunks on fixed lanes, added in lane order: the thread count changes no bit."""
    with mock.patch.object(fullbatch, "PARALLEL_MIN", 0):  # lanes on threads even for these small passes
        one, many = _at_thread_counts(n, rows, seed, net)
    for other in many:
        for a, b in zip(other.flat(), one.flat()):
            np.testing.assert_array_equal(a, b)
        assert float(other.data_loss) == float(one.data_loss)


def _at_thread_counts(n, rows, seed, net):
    model, X, T = problem("numpy", "float64", list(net[0]), n, output=net[1], seed=seed)
    args = (numpy_ops.NumpyOps(model.xp), model.spec, model.W, model.b, X, T, "mean")
    results = []
    for count in (1, 2, 3):
        with xpnet.limit_threads(count):
            results.append(pass_gradients(*args, with_loss=True, rows=rows))
    assert_close(results[0], plain_pass(model, X, T, "mean"), rtol=1e-12, atol=1e-15)
    return results[0], results[1:]


def test_chunked_pass_on_every_backend(backend, dtype):
    model, X, T = problem(backend, dtype, [2, 9, 3], 700, seed=5)
    got = pass_gradients(numpy_ops.get_ops(backend), model.spec, model.W, model.b, X, T, "mean", with_loss=True,
                              rows=100)
    assert_close(got, plain_pass(model, X, T, "mean"), rtol=rtol_for(dtype), atol=1e-6 if dtype == "float32" else 1e-12)


def test_small_problems_take_the_plain_pass_bit_for_bit():
    """Up to SMALL rows (the tutorials) nothing is chunked: exactly forward + backward."""
    model, X, T = problem("numpy", "float64", [2, 3, 2], numpy_ops.SMALL, seed=2)
    got = pass_gradients(numpy_ops.get_ops(model.backend), model.spec, model.W, model.b, X, T, "sum", with_loss=True,
                              rows=16)
    want = plain_pass(model, X, T, "sum")
    for a, b in zip(got.flat(), want.flat()):
        np.testing.assert_array_equal(a, b)
    assert float(got.data_loss) == float(want.data_loss)


def test_chunk_rows_follow_the_cache_budget():
    np_ops, generic = numpy_ops.NumpyOps(None), ops.Ops(None)
    assert fullbatch.chunk_rows(np_ops, (2, 1024, 2), 4) == 256  # 1 MiB of float32 activations
    assert fullbatch.chunk_rows(np_ops, (30, 1024, 10), 8) == 128
    assert fullbatch.chunk_rows(np_ops, (784, 1024, 10), 4) == 784  # at least the input width
    assert fullbatch.chunk_rows(np_ops, (2, 65536, 2), 4) == fullbatch.MIN_ROWS
    assert fullbatch.chunk_rows(generic, (2, 1024, 2), 4) == 65536  # elsewhere: only bounds the memory
    assert fullbatch.pass_rows(np_ops, (2, 1024, 2), 4, 10**5) == 256
    assert fullbatch.pass_rows(np_ops, (2, 64, 2), 4, 1000) == 250  # a chunk for each of the 4 lanes
    assert fullbatch.pass_rows(np_ops, (2, 64, 2), 4, 240) == fullbatch.MIN_ROWS
    lanes_at_once = min(numpy_ops.LANES, threads.cpu_threads())  # lanes run on the threads there are
    assert fullbatch.rows_at_once(np_ops, (2, 1024, 2), 4, 10**6) == lanes_at_once * 256
    assert fullbatch.rows_at_once(generic, (2, 1024, 2), 4, 10**6) == 65536  # generic lanes: one after another


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fit_over_chunks_matches_the_unchunked_backend(reduction):
    """NumPy chunks N=3000 rows (H=600: 218 rows per chunk); array_api_strict does not."""
    strict = available_backend("array_api_strict")
    X, y = xpnet.datasets.load("moons", n_samples=3000, noise=0.2, seed=1)
    results = []
    for be in ("numpy", strict):
        model = xpnet.MLP([2, 600, 2], backend=be, dtype="float64", seed=1)
        assert be != "numpy" or fullbatch.chunk_rows(numpy_ops.get_ops(model.backend), model.layer_sizes, 8) < 3000
        result = model.fit(X, y, epochs=4, learning_rate=0.5 if reduction == "mean" else 1e-4,
                           l2=0.01, reduction=reduction, log_every=1)
        results.append((result.history, [xpnet.to_numpy(w) for w in model.W]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-10)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert results[0][0][-1] < results[0][0][0]


def test_passes_in_parallel_threads_do_not_share_buffers(monkeypatch):
    """Two fits in two Python threads (e.g. a thread pool of estimators) each get their own buffers."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(fullbatch, "PARALLEL_MIN", 0)
    problems = [problem("numpy", "float64", [2, 40, 30, 2], 900, seed=s) for s in (1, 2)]
    np_ops = numpy_ops.NumpyOps(problems[0][0].xp)

    def run(p):
        model, X, T = p
        return [pass_gradients(np_ops, model.spec, model.W, model.b, X, T, "mean", rows=64).dW
                for _ in range(5)]

    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(run, problems))
    for p, runs in zip(problems, together):
        alone = run(p)[0]
        for dW in runs:
            for a, b in zip(dW, alone):
                np.testing.assert_array_equal(a, b)
