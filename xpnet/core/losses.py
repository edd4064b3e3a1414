"""Losses, each fused with the derivative of its output activation.

Every loss gives ``total(xp, Z, Y, T, stable)`` -- the SUM over samples of the per-sample
loss -- and ``delta(xp, Y, T)`` -- the derivative of that sum with respect to the output
layer's pre-activation ``Z`` (so the output activation's slope is already folded in).
``Z`` are the logits, ``Y`` the outputs, ``T`` the targets (one-hot for softmax).

The objective that training minimises, with L2 strength ``l2`` on the weights W
(never the biases), is

* ``reduction="sum"`` (the tutorials): ``J = sum_n loss_n + l2/2 * sum ||W||^2``;
  the value reported is ``J / N`` -- exactly what WildML prints, although it steps on
  the gradient of ``J`` itself.
* ``reduction="mean"`` (the default): ``J = mean_n loss_n + l2/2 * sum ||W||^2``, which
  is also the value reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from ..errors import XpnetValueError, check_choice


class Loss(NamedTuple):
    name: str
    outputs: tuple  # output activations this loss supports
    total: Callable  # (xp, Z, Y, T, stable) -> 0-d array: sum over samples
    delta: Callable  # (xp, output, Y, T) -> dZ of the summed loss


def squared_total(xp, Z, Y, T, stable=True):
    """sum_n 1/2 ||Y_n - T_n||^2 (Trask's squared error)."""
    E = Y - T
    return xp.sum(E * E) / 2


def squared_delta(xp, output, Y, T):
    """dZ = (Y - T) * activation'(Y): Trask's "error times slope" for sigmoid outputs,
    ``E * (Y * (1 - Y))`` (:func:`xpnet.activations.sigmoid_backward`'s order, written out)."""
    E = Y - T
    return E * (Y * (1 - Y)) if output == "sigmoid" else E


def cross_entropy_total(xp, Z, Y, T, stable=True):
    """sum_n -log softmax(Z_n)[y_n].

    Stable form: logsumexp(Z_n) - Z_n[y_n] (finite for any finite logits).
    WildML's form (``stable=False``): -log(P_n[y_n]) with P the plain softmax.
    """
    if not stable:
        return xp.sum(-xp.log(xp.sum(Y * T, axis=1)))
    m = xp.max(Z, axis=1, keepdims=True)
    lse = m[:, 0] + xp.log(xp.sum(xp.exp(Z - m), axis=1))
    return xp.sum(lse - xp.sum(xp.where(T > 0, Z, 0.0), axis=1))


def cross_entropy_delta(xp, output, Y, T):
    """dZ = P - onehot(y) (WildML's ``delta3[range(n), y] -= 1``, without indexing)."""
    return Y - T


def binary_cross_entropy_total(xp, Z, Y, T, stable=True):
    """sum_n sum_k -[t log s(z) + (1 - t) log(1 - s(z))], from the logits:
    softplus(z) - t*z with softplus(z) = max(z, 0) + log1p(exp(-|z|))."""
    softplus = xp.where(Z > 0, Z, 0.0) + xp.log1p(xp.exp(-xp.abs(Z)))
    return xp.sum(softplus - T * Z)


def binary_cross_entropy_delta(xp, output, Y, T):
    """dZ = sigmoid(Z) - t."""
    return Y - T


def _xlogx(xp, T):
    """T log T, 0 where T is 0 (scipy's xlogy(T, T)), without evaluating log(0)."""
    return T * xp.log(xp.where(T > 0, T, 1.0))


def poisson_total(xp, Z, Y, T, stable=True):
    """sum_n sum_k [t log(t / mu) - t + mu] with mu = exp(z): half the Poisson deviance
    (scikit-learn's ``loss="poisson"``), from the logits: mu - t z + t log t - t."""
    return xp.sum(Y - T * Z + _xlogx(xp, T) - T)


def poisson_delta(xp, output, Y, T):
    """dZ = exp(Z) - t."""
    return Y - T


LOSSES = {
    "squared": Loss("squared", ("sigmoid", "identity"), squared_total, squared_delta),
    "cross_entropy": Loss("cross_entropy", ("softmax",), cross_entropy_total, cross_entropy_delta),
    "binary_cross_entropy": Loss(
        "binary_cross_entropy", ("sigmoid",), binary_cross_entropy_total, binary_cross_entropy_delta
    ),
    "poisson": Loss("poisson", ("exp",), poisson_total, poisson_delta),
}
DEFAULT_LOSS = {"softmax": "cross_entropy", "sigmoid": "squared", "identity": "squared", "exp": "poisson"}
REDUCTIONS = ("mean", "sum")


def get_loss(name: str | None, output: str) -> Loss:
    """The loss called ``name`` (default: the natural one for ``output``), checked against it."""
    name = DEFAULT_LOSS[output] if name is None else name
    check_choice("loss", name, tuple(LOSSES))
    loss = LOSSES[name]
    if output not in loss.outputs:
        raise XpnetValueError(
            f"loss={name!r} does not fit output={output!r}; use output="
            + " or ".join(repr(o) for o in loss.outputs)
            + f", or loss={DEFAULT_LOSS[output]!r}"
        )
    return loss


def objective(xp, data_total, penalty, n: int, reduction: str):
    """The reported loss from the summed data loss and ``penalty = l2/2 * sum ||W||^2``.

    ``sum``: ``1/N * (data + penalty)`` (WildML's ``calculate_loss``, same operation order);
    ``mean``: ``data / N + penalty``.
    """
    if reduction == "sum":
        return 1.0 / n * (data_total + penalty)
    return data_total / n + penalty


# -- per-row losses, scikit-learn's squared error, sample weights ---------------------------------
def squared_rows(xp, Z, Y, T, stable=True):
    """Per row: 1/2 ||Y_n - T_n||^2."""
    E = Y - T
    return xp.sum(E * E, axis=1) / 2


def cross_entropy_rows(xp, Z, Y, T, stable=True):
    """Per row: -log softmax(Z_n)[y_n] (see :func:`cross_entropy_total`)."""
    if not stable:
        return -xp.log(xp.sum(Y * T, axis=1))
    m = xp.max(Z, axis=1, keepdims=True)
    return m[:, 0] + xp.log(xp.sum(xp.exp(Z - m), axis=1)) - xp.sum(xp.where(T > 0, Z, 0.0), axis=1)


def binary_cross_entropy_rows(xp, Z, Y, T, stable=True):
    """Per row: the binary cross-entropies of the row's outputs, added."""
    softplus = xp.where(Z > 0, Z, 0.0) + xp.log1p(xp.exp(-xp.abs(Z)))
    return xp.sum(softplus - T * Z, axis=1)


def poisson_rows(xp, Z, Y, T, stable=True):
    """Per row: the half Poisson deviances of the row's outputs, added."""
    return xp.sum(Y - T * Z + _xlogx(xp, T) - T, axis=1)


def squared_error_total(xp, Z, Y, T, stable=True):
    """scikit-learn's reported squared error: :func:`squared_total` divided by the number of outputs."""
    return squared_total(xp, Z, Y, T) / T.shape[1]


def squared_error_rows(xp, Z, Y, T, stable=True):
    return squared_rows(xp, Z, Y, T) / T.shape[1]


# scikit-learn's MLPRegressor reports half the squared error AVERAGED over the outputs while its
# gradient is that of the SUM over them (as :data:`LOSSES`' "squared"): the value here is
# scikit-learn's, the gradient too. With one output it is "squared" exactly. Not in LOSSES (its
# value and gradient disagree for several outputs): the estimators put it in a model's spec.
SQUARED_ERROR = Loss("squared_error", ("identity",), squared_error_total, squared_delta)

ROW_TOTALS = {"squared": squared_rows, "cross_entropy": cross_entropy_rows,
              "binary_cross_entropy": binary_cross_entropy_rows, "poisson": poisson_rows,
              "squared_error": squared_error_rows}


def weighted(loss: Loss) -> Loss:
    """``loss`` with a weight per row: its targets ``T`` carry the weights as one more, last
    column; the total is ``sum_n w_n loss_n`` and the delta ``w_n * dZ_n``.

    With ``reduction="mean"`` a batch's loss is its weighted sum divided by its row count, so
    weights averaging 1 keep the loss's scale (:func:`xpnet.fit`'s ``sample_weight``).
    """
    if loss.name not in ROW_TOTALS:
        raise XpnetValueError(f"loss {loss.name!r} has no per-row form; sample weights need one of "
                              f"{', '.join(ROW_TOTALS)}")
    rows = ROW_TOTALS[loss.name]

    def total(xp, Z, Y, T, stable=True):
        n = Y.shape[1]
        return xp.sum(T[:, n] * rows(xp, Z, Y, T[:, :n], stable))

    def delta(xp, output, Y, T):
        n = Y.shape[1]
        return T[:, n:] * loss.delta(xp, output, Y, T[:, :n])

    return Loss(f"weighted_{loss.name}", loss.outputs, total, delta)
