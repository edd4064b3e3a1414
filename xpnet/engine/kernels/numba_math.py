"""exp, log, log1p, tanh and sigmoid that LLVM can vectorize, for the numba kernels.

libm's scalar ``expf``/``tanhf`` are calls LLVM cannot vectorize, so a loop that evaluates
them runs one element at a time. These are written from polynomials, one rational
function, and exponent bits, so the loops that call them run on whole SIMD registers.
They are compiled without reassociation (``fastmath={"contract"}`` only: fused
multiply-adds, nothing else), and keep those rules when LLVM inlines them into a kernel
compiled with reassociation (checked in ``tests/engine/test_jit.py``): the argument reductions
below depend on the order of their operations.

Maximum errors, measured against NumPy in float64 (float32 versions) or long double
(float64 versions) by ``tests/engine/test_jit.py`` over the whole input range, subnormals,
+-inf and NaN included (``ERRORS`` holds the bounds the test asserts):

==============  ============================  ==========================================
function        float32                       float64
==============  ============================  ==========================================
``exp``         2 ulp                         2 ulp
``tanh``        6 ulp                         3 ulp
``log``         2 ulp                         2 ulp
``log1p``       3 ulp (arguments >= 0)        3 ulp (arguments >= 0)
``sigmoid``     5 ulp                         5 ulp
==============  ============================  ==========================================

ulp: units in the last place of the exact result in the function's dtype; where that
result is subnormal, the ulp of the smallest normal number. NaN gives NaN, and the limits
are those of NumPy's functions (exp: 0 and inf beyond the range; tanh: +-1; log: -inf at
0, NaN below).

How each is built (the coefficients are reproduced by ``bench/fit_jit_math.py``):

* ``exp``: ``x = k ln2 + r`` with ``|r| <= ln2/2`` (ln2 in two parts, so ``r`` is exact),
  ``exp(r) = 1 + r + r^2 q(r)`` with ``q`` the Chebyshev fit of degree 4 (float32) or 9
  (float64), times ``2^k`` built from exponent bits in two factors (so subnormal results
  are rounded once).
* ``tanh``, float32: ``x P(x^2) / Q(x^2)``, degrees 5 and 3, fitted for the least relative
  error on ``[0, 9]`` (``tanh(9)`` rounds to 1); float64: below 0.625 the truncated
  continued fraction ``x / (1 + x^2 / (3 + x^2 / (5 + ...)))`` of depth 7 as one rational
  function, above it ``1 - 2 / (exp(2|x|) + 1)``.
* ``log``: ``x = 2^e m`` with ``m`` in ``[sqrt(1/2), sqrt(2))``, ``log m = 2 atanh(t)``,
  ``t = (m - 1) / (m + 1)``, as the atanh series (degree 9 in float32, 21 in float64).
* ``log1p(u) = log(w) - ((w - 1) - u) / w`` with ``w = 1 + u`` (the rounding of ``w``
  corrected to first order).
* ``sigmoid(x) = 1 / (1 + exp(-x))``.

The functions are generic over float32 and float64 through :func:`numba.extending.overload`
(``exp(x)``, ``tanh(x)``... in jitted code choose the version of ``x``'s type). This module
imports numba at its top: it is loaded only through :mod:`xpnet.engine.kernels.numba_support`.
(numba is a compiler, not an array library: the rule that only ``xpnet.backend`` imports
optional array libraries does not concern it.)
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

# no reassociation inside these functions: the two-part ln2 and the log1p correction need their order
MATH: dict[str, Any] = {"nogil": True, "error_model": "numpy", "fastmath": {"contract"}}
ERRORS = {  # function: (float32, float64) maximum error in ulp, as tests/engine/test_jit.py asserts
    "exp": (2, 2), "tanh": (6, 3), "log": (2, 2), "log1p": (3, 3), "sigmoid": (5, 5)}

f32, f64 = np.float32, np.float64


# -- exponent bits --------------------------------------------------------------------------------
def _bits_to_float(width: int):
    float_type = ir.FloatType() if width == 32 else ir.DoubleType()

    @intrinsic
    def from_bits(typingctx, bits):
        """The float whose IEEE bits are the low ``width`` bits of the integer ``bits``."""
        if not isinstance(bits, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            value, int_type = args[0], ir.IntType(width)
            if bits.bitwidth > width:
                value = builder.trunc(value, int_type)
            elif bits.bitwidth < width:
                value = builder.sext(value, int_type)
            return builder.bitcast(value, float_type)

        return (types.float32 if width == 32 else types.float64)(bits), codegen

    return from_bits


def _float_to_bits(width: int):
    int_type = ir.IntType(width)

    @intrinsic
    def to_bits(typingctx, x):
        """The IEEE bits of the float ``x`` as a signed integer of its width."""
        if not isinstance(x, types.Float) or x.bitwidth != width:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], int_type)

        return (types.int32 if width == 32 else types.int64)(x), codegen

    return to_bits


float32_from_bits, float64_from_bits = _bits_to_float(32), _bits_to_float(64)
float32_bits, float64_bits = _float_to_bits(32), _float_to_bits(64)


# -- exp ------------------------------------------------------------------------------------------
LOG2E32, LN2_HI32, LN2_LO32 = f32(1.4426950408889634), f32(0.693115234375), f32(3.194618329871446e-05)
EXP_MIN32, EXP_MAX32 = f32(-104.0), f32(89.0)  # exp rounds to 0 below, to inf above
EXP_Q32 = tuple(f32(c) for c in (0.5, 0.1666657702559798819, 0.041666554662050533982, 0.0083631730745137109028,
                                 0.0013926176119935578884))
LOG2E64, LN2_HI64, LN2_LO64 = 1.4426950408889634, 0.6931471526622772, 2.7897668087737545e-08
EXP_MIN64, EXP_MAX64 = -746.0, 710.0
EXP_Q64 = (0.50000000000000010211, 0.16666666666666667452, 0.041666666666624161903, 0.0083333333333300644495,
           0.0013888888917196719077, 0.00019841269863040545271, 0.000024801521322368693266,
           2.7557268480310025526e-6, 2.7620075879983366586e-7, 2.5100375832561233664e-8)


@njit(**MATH)
def exp32(x):
    """exp(x) in float32 (see the module docstring)."""
    q0, q1, q2, q3, q4 = EXP_Q32
    c = EXP_MAX32 if x > EXP_MAX32 else x  # NaN stays NaN: the comparisons are false
    c = EXP_MIN32 if c < EXP_MIN32 else c
    k = np.floor(c * LOG2E32 + f32(0.5))
    r = c - k * LN2_HI32
    r = r - k * LN2_LO32
    p = f32(1) + r + r * r * (q0 + r * (q1 + r * (q2 + r * (q3 + r * q4))))
    n = np.int32(k)
    half = n >> 1  # 2^k as two normal factors: a subnormal result is rounded once
    y = p * float32_from_bits((half + 127) << 23) * float32_from_bits((n - half + 127) << 23)
    return y if x == x else x


@njit(**MATH)
def exp64(x):
    """exp(x) in float64 (see the module docstring)."""
    q0, q1, q2, q3, q4, q5, q6, q7, q8, q9 = EXP_Q64
    c = EXP_MAX64 if x > EXP_MAX64 else x
    c = EXP_MIN64 if c < EXP_MIN64 else c
    k = np.floor(c * LOG2E64 + 0.5)
    r = c - k * LN2_HI64
    r = r - k * LN2_LO64
    q = q9
    for coefficient in (q8, q7, q6, q5, q4, q3, q2, q1, q0):
        q = coefficient + r * q
    p = 1.0 + r + r * r * q
    n = np.int64(k)
    half = n >> 1
    y = p * float64_from_bits((half + 1023) << 52) * float64_from_bits((n - half + 1023) << 52)
    return y if x == x else x


# -- tanh -----------------------------------------------------------------------------------------
TANH_MAX32 = f32(9.0)  # tanh(9) rounds to 1 in float32
TANH_P32 = tuple(f32(c) for c in (1.0, 0.1292248060087861, 0.0029241112169045257, 9.295215584109765e-06,
                                  -1.2853584228946749e-08, 1.8417264675135714e-11))
TANH_Q32 = tuple(f32(c) for c in (1.0, 0.46255780797068813, 0.0237772719626809, 0.00022854426487313215))
TANH_SMALL64 = 0.625  # below: the continued fraction; above: from exp
# tanh(x) = x + x s N(s) / D(s), s = x^2: the continued fraction of depth 7 (N = P - Q of its P / Q)
TANH_N64 = (-675675.0, -45045.0, -594.0, -1.0)
TANH_D64 = (2027025.0, 945945.0, 51975.0, 630.0, 1.0)


@njit(**MATH)
def tanh32(x):
    """tanh(x) in float32 (see the module docstring)."""
    p0, p1, p2, p3, p4, p5 = TANH_P32
    q0, q1, q2, q3 = TANH_Q32
    c = TANH_MAX32 if x > TANH_MAX32 else x
    c = -TANH_MAX32 if c < -TANH_MAX32 else c
    s = c * c
    p = p0 + s * (p1 + s * (p2 + s * (p3 + s * (p4 + s * p5))))
    q = q0 + s * (q1 + s * (q2 + s * q3))
    y = c * p / q
    y = f32(1) if y > f32(1) else y
    return f32(-1) if y < f32(-1) else y


@njit(**MATH)
def tanh64(x):
    """tanh(x) in float64 (see the module docstring)."""
    n0, n1, n2, n3 = TANH_N64
    d0, d1, d2, d3, d4 = TANH_D64
    a = abs(x)
    s = x * x
    small = x + x * s * ((n0 + s * (n1 + s * (n2 + s * n3))) / (d0 + s * (d1 + s * (d2 + s * (d3 + s * d4)))))
    large = 1.0 - 2.0 / (exp64(a + a) + 1.0)
    return math.copysign(small if a < TANH_SMALL64 else large, x)  # odd: keeps the sign of -0


# -- log ------------------------------------------------------------------------------------------
SQRT2_32 = f32(1.4142135623730951)
INF32, NEG_INF32, NAN32 = f32(np.inf), f32(-np.inf), f32(np.nan)
LOG_C32 = tuple(f32(2.0 / (2 * i + 3)) for i in range(4))  # 2/3, 2/5, 2/7, 2/9: the atanh series
LOG_C64 = tuple(2.0 / (2 * i + 3) for i in range(10))  # up to 2/21


@njit(**MATH)
def log32(x):
    """log(x) in float32 (see the module docstring)."""
    c0, c1, c2, c3 = LOG_C32
    tiny = x < f32(1.1754944e-38)  # subnormal (or 0, or negative): scaled by 2^25 first
    v = x * f32(33554432.0) if tiny else x
    bits = float32_bits(v)
    e = ((bits >> 23) & 0xFF) - 127 - (25 if tiny else 0)
    m = float32_from_bits((bits & 0x7FFFFF) | 0x3F800000)  # in [1, 2)
    big = m > SQRT2_32
    m = m * f32(0.5) if big else m
    e = e + 1 if big else e
    t = (m - f32(1)) / (m + f32(1))
    s = t * t
    log_m = t + t + t * s * (c0 + s * (c1 + s * (c2 + s * c3)))
    ef = f32(e)
    y = ef * LN2_HI32 + (log_m + ef * LN2_LO32)
    if x == f32(0):
        return NEG_INF32
    if not x >= f32(0):  # negative or NaN
        return NAN32
    return x if x == INF32 else y


@njit(**MATH)
def log64(x):
    """log(x) in float64 (see the module docstring)."""
    tiny = x < 2.2250738585072014e-308
    v = x * 4503599627370496.0 if tiny else x  # 2^52
    bits = float64_bits(v)
    e = ((bits >> 52) & 0x7FF) - 1023 - (52 if tiny else 0)
    m = float64_from_bits((bits & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000)
    big = m > 1.4142135623730951
    m = m * 0.5 if big else m
    e = e + 1 if big else e
    t = (m - 1.0) / (m + 1.0)
    s = t * t
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9 = LOG_C64
    series = c9
    for coefficient in (c8, c7, c6, c5, c4, c3, c2, c1, c0):
        series = coefficient + s * series
    ef = float(e)
    y = ef * LN2_HI64 + (t + t + t * s * series + ef * LN2_LO64)
    if x == 0.0:
        return -np.inf
    if not x >= 0.0:
        return np.nan
    return x if x == np.inf else y


@njit(**MATH)
def log1p32(u):
    """log(1 + u) in float32 for u >= 0 (see the module docstring)."""
    w = f32(1) + u
    return log32(w) - ((w - f32(1)) - u) / w if w != INF32 else w


@njit(**MATH)
def log1p64(u):
    """log(1 + u) in float64 for u >= 0 (see the module docstring)."""
    w = 1.0 + u
    return log64(w) - ((w - 1.0) - u) / w if w != np.inf else w


@njit(**MATH)
def sigmoid32(x):
    """1 / (1 + exp(-x)) in float32: 0 where exp(-x) overflows, as the tutorials' formula."""
    return f32(1) / (f32(1) + exp32(-x))


@njit(**MATH)
def sigmoid64(x):
    """1 / (1 + exp(-x)) in float64."""
    return 1.0 / (1.0 + exp64(-x))


# -- generic names for jitted code: the version of the argument's type ------------------------------
VERSIONS = {"exp": (exp32, exp64), "tanh": (tanh32, tanh64), "log": (log32, log64), "log1p": (log1p32, log1p64),
            "sigmoid": (sigmoid32, sigmoid64)}


def _generic(name: str):
    def stub(x):
        raise NotImplementedError(f"{name} runs in jitted code only")

    single, double = VERSIONS[name]

    @overload(stub, jit_options=cast(Any, MATH))
    def choose(x):
        if x == types.float32:
            return lambda x: single(x)
        if x == types.float64:
            return lambda x: double(x)
        return None

    stub.__name__ = stub.__qualname__ = name
    return stub


exp, tanh, log, log1p, sigmoid = (_generic(name) for name in ("exp", "tanh", "log", "log1p", "sigmoid"))


# -- whole arrays, for tests and the error table ------------------------------------------------------
@njit(nogil=True, error_model="numpy", fastmath={"reassoc", "contract", "nsz"})  # as the kernels' loops
def _apply(fn, x, out):
    for i in range(x.shape[0]):
        out[i] = fn(x[i])


def evaluate(name: str, x: np.ndarray) -> np.ndarray:
    """The jitted ``name`` (a key of :data:`VERSIONS`) on every element of the 1-D float32 or
    float64 array ``x``, in a vectorized loop compiled with the kernels' reassociation (which
    must not reach inside the function)."""
    fn = VERSIONS[name][x.dtype == np.float64]
    out = np.empty_like(x)
    _apply(fn, np.ascontiguousarray(x), out)
    return out
