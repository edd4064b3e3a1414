"""Batch normalization and inverted dropout for hidden layers, with manual backprop.

A hidden layer with both options computes, in training::

    Z = H @ W + b
    Z = gamma * (Z - mean_batch) / sqrt(var_batch + eps) + beta     (batch_norm)
    A = activation(Z)
    H_next = A * M                                                  (dropout)

``M`` is the dropout multiplier: 0 for a dropped unit, ``1 / (1 - rate)`` for a kept one
("inverted" dropout, so inference needs no rescaling). Masks are drawn on the host with
NumPy and sent as booleans (:func:`dropout_keep`: one byte an entry to copy), scaled into
multipliers on the device (:func:`dropout_multipliers`). At inference there is no dropout
and batch norm uses the running statistics, updated after every training batch as
``running = 0.9 * running + 0.1 * batch`` (``var_batch`` is the biased variance).
:func:`xpnet.core.network.forward` and :func:`xpnet.core.network.backward` run both in their one loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BN_EPS = 1e-5  # added to the variance before the square root
BN_MOMENTUM = 0.9  # weight of the old running statistics in each update


@dataclass(frozen=True)
class BatchNorm:
    """Batch-norm state of every hidden layer: tuples of (width,) arrays on the device.

    Frozen and replaced on update, so keeping a reference keeps a snapshot.
    """

    gamma: tuple  # trained scale, starts at 1
    beta: tuple  # trained shift, starts at 0
    mean: tuple  # running mean of the pre-normalization Z, starts at 0
    var: tuple  # running (biased) variance, starts at 1


def batch_norm_init(xp, widths, dtype, device) -> BatchNorm:
    """Fresh state: gamma 1, beta 0, running mean 0, running variance 1."""
    ones = tuple(xp.ones((w,), dtype=dtype, device=device) for w in widths)
    zeros = tuple(xp.zeros((w,), dtype=dtype, device=device) for w in widths)
    return BatchNorm(ones, zeros, zeros, ones)


def batch_norm_train(xp, Z, gamma, beta):
    """Normalize with the batch statistics; return ``(Y, Zhat, inv_std, mean, var)``."""
    mean = xp.mean(Z, axis=0)
    D = Z - mean
    var = xp.mean(D * D, axis=0)
    inv_std = 1 / xp.sqrt(var + BN_EPS)
    Zhat = D * inv_std
    return Zhat * gamma + beta, Zhat, inv_std, mean, var


def batch_norm_inference(xp, Z, gamma, beta, mean, var):
    """Normalize with the running statistics: gamma * (Z - mean) / sqrt(var + eps) + beta."""
    return (Z - mean) / xp.sqrt(var + BN_EPS) * gamma + beta


def batch_norm_backward(xp, dY, gamma, Zhat, inv_std):
    """``(dZ, dgamma, dbeta)`` for ``Y = gamma * Zhat + beta`` with batch statistics.

    dZ = inv_std * (dZhat - mean(dZhat) - Zhat * mean(dZhat * Zhat)), dZhat = dY * gamma.
    """
    dgamma = xp.sum(dY * Zhat, axis=0)
    dbeta = xp.sum(dY, axis=0)
    dZhat = dY * gamma
    dZ = inv_std * (dZhat - xp.mean(dZhat, axis=0) - Zhat * xp.mean(dZhat * Zhat, axis=0))
    return dZ, dgamma, dbeta


def update_running(bn: BatchNorm, stats) -> BatchNorm:
    """New state with the running statistics moved towards this batch's ``stats``: one
    ``(mean, var)`` per hidden layer (:attr:`xpnet.core.ops.Gradients.bn_stats`)."""
    m = BN_MOMENTUM
    mean = tuple(m * old + (1 - m) * s[0] for old, s in zip(bn.mean, stats))
    var = tuple(m * old + (1 - m) * s[1] for old, s in zip(bn.var, stats))
    return BatchNorm(bn.gamma, bn.beta, mean, var)


def dropout_keep(rng: np.random.Generator, n: int, widths, rate: float) -> list:
    """Host boolean draws (n, width) per hidden layer, True w.p. ``1 - rate``: one byte an entry to
    send to the device, where :func:`dropout_multipliers` scales them."""
    return [rng.random((n, w)) >= rate for w in widths]


def dropout_multipliers(xp, keep, rate: float, dtype):
    """Inverted-dropout multipliers from :func:`dropout_keep`'s draws, on their device: 0 for a
    dropped unit, ``1 / (1 - rate)`` for a kept one."""
    return xp.astype(keep, dtype) * (1.0 / (1.0 - rate))
