"""The numba kernels (xpnet.engine.kernels.numba_*): their math's error bounds, the generic pass's
gradients at any thread count, where they are chosen, and that nothing changes without numba.

Tests that run jitted code skip, with the reason, where numba is not installed (CI installs
the `jit` extra). The first run on a machine compiles each kernel variant used here (a few
seconds each; numba caches them on disk), so the property tests draw the hidden activation,
the input width and the output count from a few variants and vary everything else.
"""

import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import pytest
from helpers import assert_close, pass_gradients, pass_name, plain_pass, problem, select
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnet
from xpnet import tutorials
from xpnet.core.activations import Activation
from xpnet.engine import fullbatch, numpy_ops, plan
from xpnet.engine.kernels import numba_fused, numba_layers, numba_support, numpy_gram

needs_numba = pytest.mark.skipif(not numba_support.available(), reason=f"{numba_support.unavailable_reason()}")
WIDE = np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant  # a reference more precise than float64


def spec_of(sizes, activation="tanh", **options):
    return xpnet.MLP(sizes, activation=activation, backend="numpy", **options).spec


# -- the math: error bounds over the whole input range -----------------------------------------------
REFERENCES = {"exp": np.exp, "tanh": np.tanh, "log": np.log, "log1p": np.log1p,
              "sigmoid": lambda x: 1 / (1 + np.exp(-x))}


def inputs(dtype, name):
    """Random bit patterns (every exponent), dense grids where the functions bend, and the specials."""
    rng = np.random.default_rng(7)
    bits = np.dtype(np.uint32 if dtype == np.float32 else np.uint64)
    info = np.finfo(dtype)
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, info.tiny, -info.tiny, info.smallest_subnormal,
                -info.smallest_subnormal, info.tiny / 3, info.max, -info.max, 1.0, -1.0, 0.625, -0.625, 9.0, -9.0]
    with np.errstate(over="ignore"):
        parts = [np.linspace(-20, 20, 200_001), np.linspace(-800, 800, 100_001), np.geomspace(1e-12, 4, 50_000),
                 np.array(specials)]
        x = np.concatenate([rng.integers(0, np.iinfo(bits).max, 300_000, dtype=bits, endpoint=True).view(dtype)]
                           + [part.astype(dtype) for part in parts])
    if name == "log1p":  # the kernels take log1p of exp(-|z|) only
        x = x[~(x < 0)]
    if name == "sigmoid":  # where exp(-x) overflows the formula gives 0 (tested below)
        x = x[~(x < -np.log(info.max))]
    return x


def ulp_errors(got, want, dtype):
    """|got - want| in units of the last place of ``want`` rounded to ``dtype`` (the smallest
    normal's ulp for subnormal results); 0 where both are the same inf or both NaN."""
    info = np.finfo(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = want.astype(dtype)
        ulp = np.spacing(np.maximum(np.abs(rounded), info.tiny)).astype(want.dtype)
        err = np.abs(got.astype(want.dtype) - want) / ulp
    agree = (got == rounded) | (np.isnan(got) & np.isnan(want))
    return np.where(agree, 0.0, np.where(np.isnan(err), np.inf, err))


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_math_error_bounds(name, dtype):
    """Each function against NumPy in float64 (float32 versions) or long double (float64 ones),
    evaluated in a loop compiled as the kernels are (reassociation allowed around the calls)."""
    math = numba_support.jitted("numba_math")
    x = inputs(dtype, name)
    reference = np.float64 if dtype == np.float32 or not WIDE else np.longdouble
    with np.errstate(all="ignore"):
        want = REFERENCES[name](x.astype(reference))
    err = ulp_errors(math.evaluate(name, x), want, dtype)
    bound = math.ERRORS[name][dtype == np.float64] + (0 if reference is not np.float64 or dtype == np.float32 else 1)
    worst = int(np.argmax(err))
    assert err[worst] <= bound, f"{name}({x[worst]!r}) off by {err[worst]:.2f} ulp, bound {bound}"


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_math_special_values(dtype):
    math = numba_support.jitted("numba_math")
    info = np.finfo(dtype)
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, info.smallest_subnormal, -info.max, info.max], dtype)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(math.evaluate("exp", x), [np.inf, 0, np.nan, 1, 1, 1, 0, np.inf])
        tanh = math.evaluate("tanh", x)
        np.testing.assert_array_equal(tanh, [1, -1, np.nan, 0, -0.0, info.smallest_subnormal, -1, 1])
        assert np.signbit(tanh[4]) and not np.signbit(tanh[3])
        np.testing.assert_array_equal(math.evaluate("log", x), [np.inf, np.nan, np.nan, -np.inf, -np.inf,
                                                                np.log(np.float64(info.smallest_subnormal)).astype(dtype),
                                                                np.nan, np.log(info.max)])
        sigmoid = math.evaluate("sigmoid", x)
        np.testing.assert_array_equal(sigmoid[:5], [1, 0, np.nan, 0.5, 0.5])
        assert sigmoid[6] == 0  # exp(-x) overflows: 0, as xpnet.activations.sigmoid
    assert math.evaluate("log1p", np.array([info.smallest_subnormal, np.inf], dtype)).tolist() == [
        info.smallest_subnormal, np.inf]


# -- gradients: the generic pass, at any thread count ------------------------------------------------
def tolerance(dtype, reduction, n):
    """float64: 1e-9 relative (measured: 1e-15); float32: 2e-3 relative (measured: 1e-6), and an
    absolute floor for the entries that cancel (scaled by N for summed gradients)."""
    if dtype == "float64":
        return {"rtol": 1e-9, "atol": 1e-12}
    return {"rtol": 2e-3, "atol": 2e-4 * (1 if reduction == "mean" else n)}


def jit_pass(model, X, T, reduction, rows, threads, with_loss=True):
    with mock.patch.object(fullbatch, "PARALLEL_MIN", 0), xpnet.limit_threads(threads):
        return pass_gradients(numpy_ops.NumpyOps(model.xp), model.spec, model.W, model.b, X, T, reduction,
                                   with_loss=with_loss, rows=rows, kernel="jit")


OUTPUT_LOSS = st.sampled_from([("softmax", None), ("sigmoid", None), ("sigmoid", "binary_cross_entropy"),
                               ("identity", None)])
# (activation, inputs, outputs): the variants compiled here (exact widths, and inputs / outputs padded up)
FUSED_VARIANTS = [("tanh", 2, 2), ("sigmoid", 3, 1), ("relu", 1, 3)]


@needs_numba
@settings(max_examples=30, deadline=None)
@given(variant=st.sampled_from(FUSED_VARIANTS), n=st.integers(numpy_ops.SMALL + 1, 2500),
       rows=st.integers(fullbatch.MIN_ROWS, 600), width=st.integers(1, 70), output_loss=OUTPUT_LOSS,
       bias=st.booleans(), reduction=st.sampled_from(["mean", "sum"]), dtype=st.sampled_from(["float32", "float64"]),
       threads=st.integers(1, 3), numerics=st.sampled_from(["stable", "tutorial"]), seed=st.integers(0, 2**16))
def test_numba_fused_equals_the_generic_pass(variant, n, rows, width, output_loss, bias, reduction, dtype, threads,
                                             numerics, seed):
    activation, n_in, n_out = variant
    output, loss = output_loss
    if output == "softmax" and n_out < 2:
        output, loss = "identity", None
    model, X, T = problem("numpy", dtype, [n_in, width, n_out], n, output, activation, bias, seed, loss=loss,
                          numerics=numerics)
    assert select(model.spec, "numpy", dtype, n, "jit") is numba_fused.KERNEL
    got = jit_pass(model, X, T, reduction, rows, threads)
    assert_close(got, plain_pass(model, X, T, reduction), **tolerance(dtype, reduction, n))


@needs_numba
@pytest.mark.parametrize("sizes, activation, dtype", [([8, 30, 2], "tanh", "float32"), ([3, 64, 4], "relu", "float64"),
                                                      ([5, 20, 2], "sigmoid", "float32")])
def test_numba_fused_at_its_widest(sizes, activation, dtype):
    """The widest compiled shapes (8 inputs and 2 outputs, 4 and 4), and inputs padded up to 8."""
    for output, n in (("softmax", 1001), ("sigmoid", 700)):
        model, X, T = problem("numpy", dtype, sizes, n, output, activation, seed=n)
        assert select(model.spec, "numpy", dtype, n, "jit") is numba_fused.KERNEL
        for reduction in ("mean", "sum"):
            got = jit_pass(model, X, T, reduction, rows=128, threads=2)
            assert_close(got, plain_pass(model, X, T, reduction), **tolerance(dtype, reduction, n))


@needs_numba
@settings(max_examples=30, deadline=None)
@given(n=st.integers(numpy_ops.SMALL + 1, 1500), rows=st.integers(fullbatch.MIN_ROWS, 400),
       hidden=st.lists(st.integers(1, 24), min_size=1, max_size=3), n_in=st.integers(1, 40),
       n_out=st.integers(1, 20), output_loss=OUTPUT_LOSS, data=st.data(), bias=st.booleans(),
       reduction=st.sampled_from(["mean", "sum"]), dtype=st.sampled_from(["float32", "float64"]),
       threads=st.integers(1, 3), numerics=st.sampled_from(["stable", "tutorial"]), seed=st.integers(0, 2**16))
def test_numba_layers_equals_the_generic_pass(n, rows, hidden, n_in, n_out, output_loss, data, bias, reduction, dtype,
                                              threads, numerics, seed):
    """Any depth, widths of 1 (rank-1 products), folded and wide inputs, thin and wide outputs,
    an activation per layer."""
    activations = data.draw(st.lists(st.sampled_from(["tanh", "sigmoid", "relu"]), min_size=len(hidden),
                                     max_size=len(hidden)))
    output, loss = output_loss
    sizes = [n_in, *hidden, max(n_out, 2) if output == "softmax" else n_out]
    if len(hidden) == 1 and numba_fused.fits(n_in, sizes[-1]):
        sizes[0] = numba_fused.MAX_INPUTS + n_in  # one hidden layer and narrow: numba-fused's case
    model, X, T = problem("numpy", dtype, sizes, n, output, activations, bias, seed, loss=loss, numerics=numerics)
    assert select(model.spec, "numpy", dtype, n, "jit") is numba_layers.KERNEL
    got = jit_pass(model, X, T, reduction, rows, threads)
    assert_close(got, plain_pass(model, X, T, reduction), **tolerance(dtype, reduction, n))


@needs_numba
@pytest.mark.parametrize("sizes, activation", [([2, 37, 2], "tanh"), ([3, 20, 11, 4], ["relu", "sigmoid"])])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bits_do_not_depend_on_the_thread_count(sizes, activation, dtype):
    model, X, T = problem("numpy", dtype, sizes, 3001, "softmax", activation, seed=4)
    one, *more = (jit_pass(model, X, T, "mean", rows=100, threads=k) for k in (1, 2, 3))
    for other in more:
        for a, b in zip(other.flat(), one.flat()):
            np.testing.assert_array_equal(a, b)
        assert other.data_loss == one.data_loss
    assert jit_pass(model, X, T, "mean", rows=100, threads=2, with_loss=False).data_loss is None


# -- selection -----------------------------------------------------------------------------------------
@needs_numba
def test_select_takes_the_jit_kernels_only_where_they_apply():
    tutorial, deep, wide = spec_of([2, 64, 2]), spec_of([2, 64, 64, 2]), spec_of([784, 64, 10])
    n = 10**5
    assert select(tutorial, "numpy", "float32", n) is numba_fused.KERNEL  # auto: jit first
    assert select(tutorial, "numpy", "float64", n, "jit") is numba_fused.KERNEL
    assert select(deep, "numpy", "float32", n) is numba_layers.KERNEL
    assert select(wide, "numpy", "float32", n, "jit") is numba_layers.KERNEL
    for sizes in ([1, 8, 1], [8, 8, 2], [4, 8, 4], [2, 8, 4], [6, 8, 1]):
        spec = spec_of(sizes, output="softmax" if sizes[-1] > 1 else "sigmoid")
        assert select(spec, "numpy", "float32", n) is numba_fused.KERNEL, sizes
    for sizes in ([9, 8, 2], [2, 8, 5], [5, 8, 3], [8, 8, 4], [64, 8, 10]):  # wider: BLAS does better
        assert select(spec_of(sizes), "numpy", "float32", n) is numba_layers.KERNEL, sizes
    # "numpy" never takes a jit kernel, "jit" never takes numpy-gram
    assert select(tutorial, "numpy", "float32", n, "numpy") is numpy_gram.KERNEL
    assert select(deep, "numpy", "float32", n, "numpy") is None
    assert all(select(s, "numpy", "float32", n, "jit") is not numpy_gram.KERNEL for s in (tutorial, deep, wide))
    # not NumPy, the tutorials' sizes, a user's activation, no hidden layer: no jit kernel
    assert select(tutorial, "generic", "float32", n, "jit") is None
    assert select(tutorial, "numpy", "float32", numpy_ops.SMALL, "jit") is None
    mine = Activation("softsign", lambda xp, Z: Z / (1 + xp.abs(Z)), lambda xp, dY, Y: dY * (1 - xp.abs(Y)) ** 2)
    for sizes in ([2, 64, 2], [2, 64, 64, 2]):
        assert select(spec_of(sizes, activation=mine), "numpy", "float32", n, "jit") is None
    assert select(spec_of([2, 8, 8, 2], activation=["tanh", mine]), "numpy", "float32", n, "jit") is None
    assert select(spec_of([2, 2]), "numpy", "float32", n, "jit") is None
    assert [k.family for k in plan.KERNELS] == ["jit", "jit", "numpy"]


@needs_numba
def test_pass_name_reports_what_runs():
    X = np.random.default_rng(0).normal(size=(1000, 2))
    model = xpnet.MLP([2, 8, 2], backend="numpy")
    np_ops = numpy_ops.NumpyOps(np)
    assert pass_name(np_ops, model, 1000) == "numba-fused"
    assert pass_name(np_ops, model, 1000, "numpy") == "numpy-gram"
    assert pass_name(np_ops, model, 200, "jit") == "plain"
    assert pass_name(np_ops, xpnet.MLP([2, 8, 8, 2], backend="numpy"), 1000, "jit") == "numba-layers"
    assert pass_name(np_ops, xpnet.MLP([2, 8, 2], backend="numpy", dropout=0.1), 1000, "jit") == "plain"
    assert X.shape[0] == 1000


@needs_numba
@pytest.mark.parametrize("sizes", [[2, 24, 3], [5, 16, 8, 3]])
def test_fit_with_jit_kernels_trains_like_numpy(sizes):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(900, sizes[0])), rng.integers(0, sizes[-1], 900)
    results = {}
    for choice in ("jit", "numpy"):
        model = xpnet.MLP(sizes, backend="numpy", dtype="float64", seed=3)
        results[choice] = model.fit(X, y, epochs=40, learning_rate=0.5, l2=1e-3, kernels=choice, log_every=5)
    jit, numpy = results["jit"], results["numpy"]
    assert jit.kernels == ("numba-fused" if len(sizes) == 3 else "numba-layers")
    assert numpy.kernels == ("numpy-gram" if len(sizes) == 3 else "generic")
    np.testing.assert_allclose(jit.history, numpy.history, rtol=1e-9)
    assert jit.history[-1] < jit.history[0]


def test_tutorials_never_consult_the_kernels(monkeypatch):
    """Their nets have at most numpy_ops.SMALL rows: the plain pass, whatever kernels= says."""
    def refuse(*args, **kwargs):
        raise AssertionError("a tutorial consulted the kernels")

    for kernel in plan.KERNELS:
        monkeypatch.setattr(kernel, "supports", refuse)
    result = tutorials.run("wildml-moons", backend="numpy", iterations=50)
    assert result.data["losses"]
    # kernels="jit" without numba is an error whatever the size (tests/cli/test_own_data.py)
    model = xpnet.MLP([2, 3, 2], backend="numpy", kernels="jit" if numba_support.available() else "numpy")
    X, y = xpnet.datasets.moons(200, noise=0.2, seed=0)
    assert model.fit(X, y, epochs=3, learning_rate=0.01).kernels == "plain"


@needs_numba
def test_warm_up_compiles_ahead():
    spec = spec_of([3, 10, 2], activation="sigmoid")
    for kernel in (numba_fused.KERNEL, numba_layers.KERNEL):
        seconds = kernel.warm_up(spec, "float64")
        assert seconds > 0
        assert kernel.needs_compile(spec, "float64") is False


# -- without numba ---------------------------------------------------------------------------------------
def test_without_numba_nothing_changes(monkeypatch):
    monkeypatch.setitem(numba_support._STATE, "ok", False)
    monkeypatch.setitem(numba_support._STATE, "reason", "numba is not importable (test)")
    spec = spec_of([2, 64, 2])
    assert select(spec, "numpy", "float32", 10**5, "jit") is None
    assert select(spec, "numpy", "float32", 10**5) is numpy_gram.KERNEL
    assert numba_support.unavailable_reason() == "numba is not importable (test)"
    model, X, T = problem("numpy", "float64", [2, 9, 2], 700, seed=2)
    ops = numpy_ops.NumpyOps(model.xp)
    with pytest.raises(xpnet.XpnetValueError, match=r"kernels='jit' needs numba: .*pip install '\.\[jit\]'"):
        plan.choose(ops, model.spec, "float64", 700, "jit")  # asked for by name: never a silent substitute
    chosen = plan.choose(ops, model.spec, "float64", 700)  # auto falls back, and says so
    assert chosen.name == "numpy-gram" and "numba's compiled kernels are not installed" in chosen.reason
    got = pass_gradients(ops, model.spec, model.W, model.b, X, T, "mean", with_loss=True)
    assert_close(got, plain_pass(model, X, T, "mean"), rtol=1e-12, atol=1e-15)


def test_numba_is_imported_only_for_a_jit_kernel():
    """Importing xpnet, tiny problems, and kernels="numpy" never import numba; with numba blocked,
    kernels="auto" takes NumPy's kernel and kernels="jit" is an error naming the install."""
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import xpnet
        X, y = xpnet.datasets.moons(200, noise=0.2, seed=0)
        xpnet.MLP([2, 8, 2], backend="numpy").fit(X, y, epochs=2)
        big = np.repeat(X, 5, axis=0), np.repeat(y, 5)
        xpnet.MLP([2, 8, 2], backend="numpy", kernels="numpy").fit(*big, epochs=2)
        assert "numba" not in sys.modules, "numba imported"
        sys.modules["numba"] = None  # as if it were not installed
        print(xpnet.MLP([2, 8, 2], backend="numpy").fit(*big, epochs=2).kernels)
        try:
            xpnet.MLP([2, 8, 2], backend="numpy", kernels="jit").fit(*big, epochs=2)
        except xpnet.XpnetValueError as exc:
            print(exc)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    auto, error = proc.stdout.strip().splitlines()
    assert auto == "numpy-gram"
    assert error.startswith("kernels='jit' needs numba") and "pip install '.[jit]'" in error
