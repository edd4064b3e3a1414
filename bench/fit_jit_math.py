"""Reproduce the coefficients of xpnet/engine/kernels/numba_math.py (needs mpmath; not a test).

    python bench/fit_jit_math.py

* ``exp``: ``exp(r) = 1 + r + r^2 q(r)`` on ``|r| <= ln2/2``, ``q`` the Chebyshev fit (near
  minimax) of ``(exp(r) - 1 - r) / r^2`` of degree 4 (float32) and 9 (float64);
* ``tanh``, float32: ``x P(x^2) / Q(x^2)`` with ``P(0) = Q(0) = 1``, degrees 5 and 3, on
  ``[0, 9]``, by Lawson's iteratively reweighted least squares on the relative error;
* ``tanh``, float64: the continued fraction of depth 7 as one rational function (exact
  integers), and ``log``: the atanh series ``2/3, 2/5, ...`` (no fitting);
* ``ln2`` in two parts, the high part with trailing zero bits so ``k * hi`` is exact.

Each fit prints its maximum error before rounding to the working precision; the errors of
the functions as evaluated are measured by ``tests/engine/test_jit.py``.
"""

import mpmath
import numpy as np

mpmath.mp.dps = 50


def exp_q(degree: int):
    half = mpmath.log(2) / 2

    def q(r):
        return mpmath.mpf(1) / 2 if abs(r) < mpmath.mpf("1e-30") else (mpmath.exp(r) - 1 - r) / r**2

    coefficients, error = mpmath.chebyfit(q, [-half, half], degree + 1, error=True)
    return [float(c) for c in coefficients[::-1]], float(error * half**2)


def tanh32_rational(p_degree: int = 5, q_degree: int = 3, top: float = 9.0, iterations: int = 200):
    """Lawson: minimise sum w (x P - t Q)^2 / (t Q_prev)^2, reweighting w by the error."""
    x = np.concatenate([np.linspace(1e-4, top, 4000), top * (1 - np.cos(np.linspace(0, np.pi / 2, 4000)))])
    x = np.unique(x[x > 0])
    s, t = x * x, np.tanh(x)
    weights, q_prev, best = np.full(x.shape, 1 / x.size), np.ones_like(x), None
    for _ in range(iterations):
        columns = [x * s**i for i in range(1, p_degree + 1)] + [-t * s**j for j in range(1, q_degree + 1)]
        A = np.stack(columns, 1) / (t * q_prev)[:, None]
        rhs = (t - x) / (t * q_prev)
        root = np.sqrt(weights)
        solution = np.linalg.lstsq(A * root[:, None], rhs * root, rcond=None)[0]
        P = np.concatenate([[1.0], solution[:p_degree]])
        Q = np.concatenate([[1.0], solution[p_degree:]])
        q_prev = np.polyval(Q[::-1], s)
        error = np.abs(x * np.polyval(P[::-1], s) / q_prev - t) / t
        if best is None or error.max() < best[0]:
            best = (error.max(), P.tolist(), Q.tolist())
        weights = weights * error
        weights /= weights.sum()
    return best


def ln2_parts(dtype, zero_bits: int):
    ln2 = mpmath.log(2)
    bits = np.array([float(ln2)], dtype).view(np.uint32 if dtype == np.float32 else np.uint64)
    hi = (bits & ~type(bits[0])((1 << zero_bits) - 1)).view(dtype)[0]
    return float(hi), float(dtype(float(ln2 - mpmath.mpf(float(hi)))))


if __name__ == "__main__":
    for name, degree in (("EXP_Q32", 4), ("EXP_Q64", 9)):
        coefficients, error = exp_q(degree)
        print(f"{name} = {tuple(coefficients)}  # max error {error:.3g}")
    error, P, Q = tanh32_rational()
    print(f"TANH_P32 = {tuple(P)}\nTANH_Q32 = {tuple(Q)}  # max relative error {error:.3g}")
    print("LN2_HI32, LN2_LO32 =", ln2_parts(np.float32, 12))
    print("LN2_HI64, LN2_LO64 =", ln2_parts(np.float64, 28))
