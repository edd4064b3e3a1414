"""The network math: ONE forward and ONE backward pass over the primitives, and the gradients of a batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from . import layers, losses
from .ops import Gradients, Ops

NUMERICS = ("stable", "tutorial")


_new = tuple.__new__  # makes a NamedTuple without a Python call: a tiny net's pass is mostly calls


@dataclass(frozen=True)
class Spec:
    """The static description of a network (everything but the weights)."""

    layer_sizes: tuple  # (n_inputs, hidden..., n_outputs)
    hidden: tuple  # one Activation per hidden layer
    output: str  # "softmax" | "sigmoid" | "identity"
    loss: losses.Loss
    bias: bool
    stable: bool  # max-subtracted softmax and log-sum-exp loss (False: the tutorials' formulas)
    dropout: float = 0.0  # inverted-dropout rate on hidden layers (training only)
    batch_norm: bool = False  # batch normalization before each hidden activation


class Tape(NamedTuple):
    """What :func:`forward` keeps for :func:`backward`."""

    inputs: list  # each layer's input: X, then the hidden layers' outputs (after dropout)
    outputs: list  # each hidden layer's activation output, before dropout (its slope comes from it)
    masks: list | None  # dropout multipliers per hidden layer (training only)
    norms: list | None  # batch norm, per hidden layer: (Zhat, inv_std, mean, var) of the batch


def forward(ops: Ops, spec: Spec, W, b, X, *, bn=None, train: bool = False, masks=None):
    """The logits ``Z`` of the output layer for ``X`` (N, n_in), and the :class:`Tape`.

    ``bn`` (a :class:`~xpnet.layers.BatchNorm`, for models with ``batch_norm``) normalizes each
    hidden layer: with the batch statistics when ``train``, else the running ones. ``masks``
    are dropout multipliers per hidden layer (N, width), training only.
    """
    inputs, outputs = [X], []
    norms: list | None = [] if bn is not None and train else None
    H, i = X, 0
    for act in spec.hidden:
        b_i = None if b is None else b[i]
        if bn is None:
            A = ops.dense(i, H, W[i], b_i, act)
        else:
            A = ops.activate(act, _normalize(ops.xp, ops.affine(i, H, W[i], b_i), bn, i, norms))
        outputs.append(A)
        H = A if masks is None else A * masks[i]
        inputs.append(H)
        i += 1
    return ops.affine(i, H, W[i], None if b is None else b[i]), _new(Tape, (inputs, outputs, masks, norms))


def _normalize(xp, Z, bn, i: int, norms):
    """Batch norm of layer ``i``: batch statistics (recorded in ``norms``) or, without ``norms``, running ones."""
    if norms is None:
        return layers.batch_norm_inference(xp, Z, bn.gamma[i], bn.beta[i], bn.mean[i], bn.var[i])
    Y, Zhat, inv_std, mean, var = layers.batch_norm_train(xp, Z, bn.gamma[i], bn.beta[i])
    norms.append((Zhat, inv_std, mean, var))
    return Y


def backward(ops: Ops, spec: Spec, W, tape: Tape, dZ, *, bn=None, data_loss=None) -> Gradients:
    """The gradients from the output layer's ``dZ`` (the loss's delta) and :func:`forward`'s tape.

    Same operations, same order as the tutorials: ``dW = H.T @ dZ``, ``db = sum(dZ, 0)``,
    ``dZ_prev = act'(dZ @ W.T)`` (from the activation's output). The input's gradient is
    never computed. ``data_loss`` is passed through to the result.
    """
    inputs, outputs, masks, norms = tape
    n, bias, hidden = len(W), spec.bias, spec.hidden
    dW, db = [None] * n, [None] * n
    dgamma: list = [None] * (n - 1) if norms is not None else []
    dbeta: list = [None] * (n - 1) if norms is not None else []
    plain = masks is None and norms is None  # nothing between a layer's product and the activation below
    for i in range(n - 1, 0, -1):
        act = hidden[i - 1]
        if plain:
            dW[i], db[i], dZ = ops.dense_backward(i, inputs[i], dZ, W[i], bias, act, outputs[i - 1])
            continue
        dW[i], db[i], dH = ops.affine_backward(i, inputs[i], dZ, W[i], bias)
        if masks is not None:
            dH = dH * masks[i - 1]
        dZ = ops.activate_backward(act, dH, outputs[i - 1])
        if norms is not None:
            Zhat, inv_std = norms[i - 1][:2]
            dZ, dgamma[i - 1], dbeta[i - 1] = layers.batch_norm_backward(ops.xp, dZ, bn.gamma[i - 1], Zhat, inv_std)
    dW[0], db[0], _ = ops.affine_backward(0, inputs[0], dZ, W[0], bias)
    extra = (None, None, None) if norms is None else (dgamma, dbeta, [norm[2:] for norm in norms])
    return _new(Gradients, (dW, db if bias else None, data_loss, *extra))


def gradients(ops: Ops, spec: Spec, W, b, X, T, scale=None, with_loss: bool = False, *, bn=None,
              masks=None) -> Gradients:
    """One training pass on ``(X, T)``: forward, the loss's delta divided by ``scale`` (the row
    count for a mean; None for a sum), backward; with ``with_loss`` also the summed data loss."""
    Z, tape = forward(ops, spec, W, b, X, bn=bn, train=True, masks=masks)
    _, dZ, loss = ops.output_delta(spec, Z, T, scale, with_loss)
    return backward(ops, spec, W, tape, dZ, bn=bn, data_loss=loss)


def l2_penalty(xp, W, l2: float):
    """l2/2 * sum_i ||W_i||^2 (biases are not penalised)."""
    total = xp.sum(W[0] * W[0])
    for Wi in W[1:]:
        total = total + xp.sum(Wi * Wi)
    return l2 / 2 * total
