"""Every form the engine computes an activation in, against its definition (the array-API form),
within the error xpnet.engine.activations.TABLE states for it."""

import numpy as np
import pytest

import xpnet
from xpnet.core.activations import HIDDEN
from xpnet.engine.activations import TABLE, in_place
from xpnet.engine.kernels import numba_support

XP = xpnet.get_backend("numpy").xp
needs_numba = pytest.mark.skipif(not numba_support.available(), reason=f"{numba_support.unavailable_reason()}")


def inputs(dtype):
    """Pre-activations over the whole range: normal values, large ones, overflowing ones, zeros."""
    rng = np.random.default_rng(1)
    extremes = [[-1e4, -800.0, -90.0, -20.0, -1e-30], [0.0, 1e-30, 20.0, 90.0, 1e4]]
    Z = np.concatenate([rng.normal(scale=4, size=(60, 5)), extremes]).astype(dtype)
    return Z, rng.normal(size=Z.shape).astype(dtype)


def definition(name, Z, dY):
    """``(Y, dZ, slope)``: the array-API form's output, backward and derivative."""
    act = HIDDEN[name]
    with np.errstate(over="ignore"):
        Y = act.forward(XP, Z)
    return Y, act.backward(XP, dY, Y), act.backward(XP, np.ones_like(Y), Y)


def assert_within(got, want, ulp, dtype, what, magnitude=None):
    """``got`` equals ``want`` to ``ulp`` units in the last place of ``magnitude`` (default: of
    ``want`` itself); below the smallest normal number the absolute difference counts."""
    finfo = np.finfo(dtype)
    limit = np.maximum(ulp * finfo.eps * np.abs(want if magnitude is None else magnitude), finfo.tiny)
    bad = ~(np.abs(got.astype(np.float64) - want.astype(np.float64)) <= limit)
    assert not bad.any(), f"{what}: {got[bad][:3]} against {want[bad][:3]}"


def test_the_table_lists_every_builtin_activation():
    assert set(TABLE) == set(HIDDEN)
    for name, variants in TABLE.items():
        assert variants.generic is HIDDEN[name] and in_place(HIDDEN[name]) is variants.in_place


@pytest.mark.parametrize("name", sorted(TABLE))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_lanes_in_place_forms(name, dtype):
    """The NumPy lanes' forms are the definition's operations: exact, but for the sigmoid's capped
    exp (about 1e-39 / 1e-309 where the definition underflows to 0: below the smallest normal)."""
    Z, dY = inputs(dtype)
    Y, dZ, slope = definition(name, Z, dY)
    forward, backward, in_place_slope = TABLE[name].in_place
    got = Z.copy()
    forward(got)
    assert_within(got, Y, 1, dtype, f"{name} forward")
    assert_within(backward(dY.copy(), Y.copy()), dZ, 1, dtype, f"{name} backward")
    np.testing.assert_array_equal(in_place_slope(Y.copy(), np.empty_like(Y)), slope)


@needs_numba
@pytest.mark.parametrize("name", sorted(TABLE))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_layers_loops(name, dtype):
    """numba-layers' elementwise loops (bias + activation, delta x slope with the bias gradient)."""
    loops = numba_support.jitted("numba_elementwise")
    variants = TABLE[name]
    Z, dY = inputs(dtype)
    Y, dZ, _ = definition(name, Z, dY)
    ulp = variants.ulp[dtype == "float64"]
    got = Z.copy()
    loops.bias_activate(got, np.zeros(Z.shape[1], dtype), variants.code)
    assert_within(got, Y, ulp + 1, dtype, f"{name} forward")  # + numpy's own rounding of the definition
    delta, db = dY.copy(), np.empty(Z.shape[1], dtype)
    loops.slope_backward(delta, Y.copy(), variants.code, db)
    # the slope's arithmetic from the same Y, fused (1 - Y*Y in one rounding: more exact near |Y| = 1,
    # where the definition's Y*Y rounding dominates): within 2 ulp of dY, the size of its terms
    assert_within(delta, dZ, 2, dtype, f"{name} backward", magnitude=dY)
    np.testing.assert_allclose(db, np.sum(delta, axis=0, dtype=np.float64), rtol=1e-5 if dtype == "float32" else 1e-12)


@needs_numba
@pytest.mark.parametrize("name", sorted(TABLE))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_fused_templates(name, dtype):
    """numba-fused's source templates of the forward and the slope, compiled as an elementwise loop."""
    from numba import njit

    math = numba_support.jitted("numba_math")
    variants = TABLE[name]
    source = f"""
def loop(Z, Y, S):
    zero, one = Z.dtype.type(0), Z.dtype.type(1)
    for i in range(Z.shape[0]):
        z = Z[i]
        Y[i] = {variants.activate.format(z="z")}
        y = Y[i]
        S[i] = {variants.slope.format(y="y")}
"""
    scope = {"tanh": math.tanh, "sigmoid": math.sigmoid}
    exec(compile(source, f"<{name} template>", "exec"), scope)
    loop = njit(scope["loop"])
    Z, dY = inputs(dtype)
    Y, _, slope = definition(name, Z, dY)
    got, got_slope = np.empty_like(Z.ravel()), np.empty_like(Z.ravel())
    loop(Z.ravel(), got, got_slope)
    ulp = variants.ulp[dtype == "float64"]
    assert_within(got.reshape(Z.shape), Y, ulp + 1, dtype, f"{name} forward")
    # the slope from the template's own output: the definition's slope of that output
    _, _, want_slope = definition(name, Z, dY) if name == "relu" else (None, None,
                                                                       HIDDEN[name].backward(XP, np.ones_like(Y),
                                                                                             got.reshape(Z.shape)))
    assert_within(got_slope.reshape(Z.shape), want_slope, 2, dtype, f"{name} slope", magnitude=np.ones_like(Y))
