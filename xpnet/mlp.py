"""The multi-layer perceptron: parameters, forward pass, manual backprop.

Parameters are lists ``W[i]`` of shape ``(n_in, n_out)`` and ``b[i]`` of shape ``(n_out,)``
on the model's backend. :func:`forward` returns the output together with the cache that
:func:`backward` needs (the layer inputs and the logits); no autograd is involved.

    >>> import xpnet
    >>> model = xpnet.MLP([2, 16, 2], activation="tanh", output="softmax", backend="numpy")
    >>> X, y = xpnet.datasets.load("moons", n_samples=200)
    >>> result = model.fit(X, y, epochs=500, learning_rate=0.5)
    >>> model.accuracy(X, y) > 0.8
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import array_api_compat

from . import activations, layers, losses
from .backend import Backend, get_backend, to_numpy
from .errors import XpnetTypeError, XpnetValueError, check_choice, check_positive
from .init import initial_weights
from .ops import weight_gradient

NUMERICS = ("stable", "tutorial")


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


def forward(spec: Spec, xp, W, b, X, *, bn=None, train=False, masks=None):
    """Run the network on ``X`` (N, n_in); return ``(Y, cache)`` with cache = (inputs, Z_out).

    ``bn`` (a :class:`~xpnet.layers.BatchNorm`, for models with ``batch_norm``) normalizes
    each hidden layer: with the batch statistics when ``train``, else the running ones.
    ``masks`` are dropout multipliers per hidden layer (N, width), training only. With
    either, the cache gains a third entry, the per-layer :class:`~xpnet.layers.Record`.
    """
    if bn is None and masks is None:
        return forward_plain(spec, xp, W, b, X)
    inputs, records = [], []
    H = X
    last = len(W) - 1
    for i, Wi in enumerate(W):
        inputs.append(H)
        Z = H @ Wi
        if b is not None:
            Z = Z + b[i]
        if i == last:
            H = activations.output_forward(xp, spec.output, Z, spec.stable)
            break
        norm = {} if bn is None else {"gamma": bn.gamma[i], "beta": bn.beta[i],
                                      "stats": None if train else (bn.mean[i], bn.var[i])}
        H, record = layers.hidden_forward(spec.hidden[i], xp, Z, mask=None if masks is None else masks[i], **norm)
        records.append(record)
    return H, (inputs, Z, records)


def forward_plain(spec: Spec, xp, W, b, X):
    """The tutorials' forward pass (no dropout, no batch norm): ``(Y, (inputs, Z_out))``."""
    inputs = []
    H = X
    last = len(W) - 1
    for i, Wi in enumerate(W):
        inputs.append(H)
        Z = H @ Wi
        if b is not None:
            Z = Z + b[i]
        H = spec.hidden[i].forward(xp, Z) if i < last else activations.output_forward(xp, spec.output, Z, spec.stable)
    return H, (inputs, Z)


def backward(spec: Spec, xp, W, cache, Y, T, reduction: str, *, bn=None):
    """Gradients ``(dW, db)`` of the summed (or mean) loss, by manual backprop.

    Same operations, same order as the tutorials: ``dW = H.T @ dZ``, ``db = sum(dZ, 0)``,
    ``dZ_prev = act'(dZ @ W.T)``. The input layer's dX is never computed.

    When the cache holds dropout / batch-norm records (see :func:`forward`), returns
    ``(dW, db, (dgamma, dbeta))`` instead, the last two lists empty without batch norm.
    """
    if len(cache) == 3:
        return _backward_layers(spec, xp, W, cache, Y, T, reduction, bn)
    inputs, _ = cache
    dZ = spec.loss.delta(xp, spec.output, Y, T)
    if reduction == "mean":
        dZ = dZ / Y.shape[0]
    return backward_from_delta(spec, xp, W, inputs, dZ)


def backward_from_delta(spec: Spec, xp, W, inputs, dZ, product=weight_gradient):
    """``(dW, db)`` from the output layer's ``dZ`` and the layer inputs of :func:`forward`.

    ``product(xp, H, dZ)`` computes ``H.T @ dZ`` (default: :func:`xpnet.ops.weight_gradient`).
    """
    n = len(W)
    dW, db = [None] * n, [None] * n
    for i in range(n - 1, -1, -1):
        H = inputs[i]
        dW[i] = product(xp, H, dZ)
        if spec.bias:  # Trask's nets have none: no column sums to throw away
            db[i] = xp.sum(dZ, axis=0)
        if i:
            dZ = spec.hidden[i - 1].backward(xp, dZ @ W[i].T, H)
    return dW, (db if spec.bias else None)


def _backward_layers(spec: Spec, xp, W, cache, Y, T, reduction, bn):
    inputs, _, records = cache
    dZ = spec.loss.delta(xp, spec.output, Y, T)
    if reduction == "mean":
        dZ = dZ / Y.shape[0]
    n = len(W)
    dW, db = [None] * n, [None] * n
    dgamma, dbeta = [None] * (n - 1), [None] * (n - 1)
    for i in range(n - 1, -1, -1):
        dW[i] = inputs[i].T @ dZ
        db[i] = xp.sum(dZ, axis=0)
        if i:
            gamma = None if bn is None else bn.gamma[i - 1]
            dZ, dgamma[i - 1], dbeta[i - 1] = layers.hidden_backward(spec.hidden[i - 1], xp, dZ @ W[i].T,
                                                                     records[i - 1], gamma)
    norm = (dgamma, dbeta) if bn is not None else ([], [])
    return dW, (db if spec.bias else None), norm


def l2_penalty(xp, W, l2: float):
    """l2/2 * sum_i ||W_i||^2 (biases are not penalised)."""
    total = xp.sum(W[0] * W[0])
    for Wi in W[1:]:
        total = total + xp.sum(Wi * Wi)
    return l2 / 2 * total


class MLP:
    """A fully connected network trained by manual backprop on any array-API backend.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_inputs, hidden_1, ..., n_outputs]``; at least two entries.
    activation : str or sequence of str, default "tanh"
        Hidden activation(s): ``"sigmoid"``, ``"tanh"``, ``"relu"``; one name for all
        hidden layers or one per hidden layer.
    output : {"softmax", "sigmoid", "identity"}, default "softmax"
        Output activation. Softmax expects integer class labels ``y`` of shape (N,).
    loss : {"cross_entropy", "squared", "binary_cross_entropy"}, optional
        Defaults to cross-entropy for softmax and squared error (Trask's "error times
        slope") for sigmoid and identity outputs.
    bias : bool, default True
        Bias units (WildML has them; Trask's nets have none).
    init : str, default "auto"
        Weight scheme from :mod:`xpnet.init`: ``trask``, ``cavar``, ``wildml``, ``he``,
        ``xavier`` or ``auto``.
    dtype : {"float32", "float64"}, default "float32"
    backend : str or Backend, optional
        ``"numpy"``, ``"cupy"``, ``"auto"``, ``"torch"``, ``"array_api_strict"``...;
        default ``$XPNET_BACKEND`` or ``"auto"``.
    seed : int, default 0
        Seeds the weight initialisation.
    numerics : {"stable", "tutorial"}, default "stable"
        ``"tutorial"`` keeps WildML's plain softmax and ``-log(p)`` loss so its printed
        digits reproduce; ``"stable"`` subtracts the row max and never overflows.
    dropout : float in [0, 1), default 0
        Inverted-dropout rate on every hidden layer's output, in training only (masks
        drawn on the host from the fit's seed, see :mod:`xpnet.layers`).
    batch_norm : bool, default False
        Batch normalization before every hidden activation; inference (predict, loss,
        accuracy) uses the running statistics.

    Attributes
    ----------
    W, b : list of arrays
        Weights ``(n_in, n_out)`` and biases ``(n_out,)`` on the backend (``b`` is None
        without bias units).
    bn : xpnet.layers.BatchNorm or None
        Batch-norm scales, shifts and running statistics (None without ``batch_norm``).
    backend : Backend
    """

    def __init__(self, layer_sizes, *, activation="tanh", output="softmax", loss=None, bias=True,
                 init="auto", dtype="float32", backend=None, seed=0, numerics="stable", dropout=0.0,
                 batch_norm=False):
        sizes = tuple(layer_sizes) if not isinstance(layer_sizes, (str, bytes)) else ()
        if len(sizes) < 2:
            raise XpnetValueError(f"layer_sizes={layer_sizes!r} needs at least [n_inputs, n_outputs]")
        for size in sizes:
            check_positive("layer size", size, integer=True)
        single = isinstance(activation, (str, activations.Activation))
        if single:
            activations.get_hidden(activation)  # checked even when there is no hidden layer
        names = [activation] * (len(sizes) - 2) if single else list(activation)
        if len(names) != len(sizes) - 2:
            raise XpnetValueError(
                f"activation={activation!r} gives {len(names)} names for {len(sizes) - 2} hidden layers"
            )
        check_choice("output", output, activations.OUTPUTS)
        check_choice("numerics", numerics, NUMERICS)
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise XpnetValueError(f"seed={seed!r} must be a whole number >= 0")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise XpnetValueError(f"dropout={dropout!r} must be a rate in [0, 1), e.g. 0.2; 0 turns it off")
        if not isinstance(batch_norm, bool):
            raise XpnetTypeError(f"batch_norm={batch_norm!r} must be True or False")
        if output == "softmax" and sizes[-1] < 2:
            raise XpnetValueError("output='softmax' needs at least 2 output units; use output='sigmoid' for 1")
        self.spec = Spec(
            layer_sizes=tuple(int(s) for s in sizes),
            hidden=tuple(activations.get_hidden(name) for name in names),
            output=output,
            loss=losses.get_loss(loss, output),
            bias=bool(bias),
            stable=numerics == "stable",
            dropout=float(dropout),
            batch_norm=batch_norm,
        )
        self.backend: Backend = get_backend(backend)
        self.dtype_name = dtype
        self.dtype = self.backend.dtype(dtype)
        self.init, self.seed, self.numerics = init, int(seed), numerics
        host = initial_weights(init, self.spec.layer_sizes, self.seed, "relu" if "relu" in names else "tanh")
        self.W = [self.backend.asarray(w, self.dtype) for w in host]
        self.b = [self.xp.zeros((w.shape[1],), dtype=self.dtype, device=self.backend.device) for w in host] if bias else None
        self.bn = (layers.batch_norm_init(self.xp, sizes[1:-1], self.dtype, self.backend.device)
                   if batch_norm else None)

    # -- properties ----------------------------------------------------------------------
    @property
    def xp(self):
        return self.backend.xp

    @property
    def layer_sizes(self) -> tuple:
        return self.spec.layer_sizes

    def __repr__(self) -> str:
        act = ",".join(a.name for a in self.spec.hidden) or "-"
        return (f"MLP({list(self.layer_sizes)}, activation={act}, output={self.spec.output}, "
                f"loss={self.spec.loss.name}, dtype={self.dtype_name}, backend={self.backend.describe()!r})")

    # -- data ----------------------------------------------------------------------------
    def as_inputs(self, X, *, allow_empty: bool = False):
        """``X`` as a 2-D array of the model's dtype on its device (validated).

        ``allow_empty``: zero rows are fine (a process of a data-parallel run may hold none).
        """
        X = self._to_device(X, "X")
        if X.ndim != 2 or X.shape[1] != self.layer_sizes[0]:
            raise XpnetValueError(
                f"X has shape {tuple(X.shape)}; the model expects (n_samples, {self.layer_sizes[0]})"
            )
        if X.shape[0] == 0 and not allow_empty:
            raise XpnetValueError("X is empty; pass at least one sample")
        return X

    def as_targets(self, y, n: int):
        """Targets in the form the loss needs: one-hot (N, C) for softmax, else (N, n_out)."""
        n_out = self.layer_sizes[-1]
        if self.spec.output == "softmax":
            labels = to_numpy(y) if not isinstance(y, np.ndarray) else y
            labels = np.asarray(labels)
            if labels.ndim == 2 and labels.shape[1] == 1:
                labels = labels[:, 0]
            if labels.ndim != 1 or labels.shape[0] != n:
                raise XpnetValueError(f"y has shape {labels.shape}; expected ({n},) class labels for {n} samples")
            if labels.dtype.kind == "f" and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
                raise XpnetValueError("y must hold integer class labels 0..n_classes-1 for output='softmax'")
            if labels.dtype.kind not in "iuf" or (labels.size and (labels.min() < 0 or labels.max() >= n_out)):
                raise XpnetValueError(f"y must hold class labels in 0..{n_out - 1} (the model has {n_out} outputs)")
            onehot = np.zeros((n, n_out))
            onehot[np.arange(n), labels.astype(np.int64)] = 1.0
            return self.backend.asarray(onehot, self.dtype)
        T = self._to_device(y, "y")
        if T.ndim == 1:
            T = self.xp.reshape(T, (T.shape[0], 1))
        if T.ndim != 2 or T.shape != (n, n_out):
            raise XpnetValueError(f"y has shape {tuple(T.shape)}; expected ({n}, {n_out}) or ({n},) targets")
        return T

    def _to_device(self, a, name):
        """``a`` as an array of the model's dtype on its device, checked finite and in range."""
        xp = self.xp
        if _is_native(a, self.backend) and not isinstance(a, np.ndarray):
            if a.dtype != self.dtype:
                self._check_range(float(xp.max(xp.abs(a))) if math.prod(a.shape) else 0.0, name)
                a = xp.astype(a, self.dtype)
            if not bool(xp.all(xp.isfinite(a))):
                raise XpnetValueError(f"{name} contains NaN or Inf; clean or impute those values first")
            return a
        try:
            host = np.asarray(a if isinstance(a, (list, tuple, np.ndarray)) else to_numpy(a))
            if host.dtype.kind not in "biuf":
                raise TypeError(f"dtype {host.dtype} is not numeric")
            host = host.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise XpnetTypeError(f"{name} must be a numeric array, got {type(a).__name__}: {exc}") from None
        if not np.all(np.isfinite(host)):
            raise XpnetValueError(f"{name} contains NaN or Inf; clean or impute those values first")
        self._check_range(float(np.max(np.abs(host))) if host.size else 0.0, name)
        return self.backend.asarray(host, self.dtype)

    def _check_range(self, largest: float, name: str) -> None:
        limit = float(np.finfo(self.dtype_name).max)
        if largest > limit:
            raise XpnetValueError(
                f"{name} holds {largest:.3g}, beyond {self.dtype_name}'s range (+-{limit:.3g}); "
                "rescale the data or use dtype='float64'"
            )

    # -- inference -----------------------------------------------------------------------
    def predict_proba(self, X):
        """Network output for ``X``: class probabilities (softmax/sigmoid) or values (identity)."""
        Y, _ = forward(self.spec, self.xp, self.W, self.b, self.as_inputs(X), bn=self.bn)
        return Y

    def predict(self, X):
        """Class labels (softmax: argmax; sigmoid: output > 0.5) or values (identity)."""
        Y = self.predict_proba(X)
        if self.spec.output == "softmax":
            return self.xp.argmax(Y, axis=1)
        if self.spec.output == "sigmoid":
            return self.xp.astype(Y > 0.5, self.xp.int64)
        return Y

    def loss(self, X, y, *, l2: float = 0.0, reduction: str = "mean") -> float:
        """The objective on ``(X, y)`` as training reports it (see :mod:`xpnet.losses`)."""
        X = self.as_inputs(X)
        T = self.as_targets(y, X.shape[0])
        Y, cache = forward(self.spec, self.xp, self.W, self.b, X, bn=self.bn)
        Z = cache[1]
        return float(self._objective(Z, Y, T, l2, reduction))

    def accuracy(self, X, y) -> float:
        """Fraction of samples classified correctly (for classifiers)."""
        if self.spec.output == "identity":
            raise XpnetValueError("accuracy needs a classifier; this model has output='identity'")
        X = self.as_inputs(X)
        T = self.as_targets(y, X.shape[0])
        xp = self.xp
        if self.spec.output == "softmax":
            hits = xp.argmax(self.predict_proba(X), axis=1) == xp.argmax(T, axis=1)
        else:
            hits = xp.all((self.predict_proba(X) > 0.5) == (T > 0.5), axis=1)
        return float(xp.mean(xp.astype(hits, self.dtype)))

    def _objective(self, Z, Y, T, l2, reduction):
        xp = self.xp
        data = self.spec.loss.total(xp, Z, Y, T, self.spec.stable)
        penalty = l2_penalty(xp, self.W, l2) if l2 else 0.0
        return losses.objective(xp, data, penalty, Y.shape[0], reduction)

    # -- training ------------------------------------------------------------------------
    def fit(self, X, y, **options):
        """Train on ``(X, y)`` from the current weights; see :func:`xpnet.train.fit`."""
        from .train import fit

        return fit(self, X, y, **options)

    def parameters(self) -> list:
        """All trained arrays: ``W[0], ..., W[-1]``, the biases, then batch-norm gammas and betas."""
        params = list(self.W) + (list(self.b) if self.b is not None else [])
        return params + (list(self.bn.gamma) + list(self.bn.beta) if self.bn is not None else [])

    def set_parameters(self, params) -> None:
        """Replace the arrays :meth:`parameters` returns (same order)."""
        n = len(self.W)
        self.W = list(params[:n])
        if self.b is not None:
            self.b = list(params[n:2 * n])
        if self.bn is not None:
            rest = params[2 * n if self.b is not None else n:]
            k = len(self.bn.gamma)
            self.bn = layers.BatchNorm(tuple(rest[:k]), tuple(rest[k:2 * k]), self.bn.mean, self.bn.var)


def _is_native(a, backend: Backend) -> bool:
    """True when ``a`` already is an array of ``backend`` (no host round trip needed)."""
    if backend.name == "numpy":
        return isinstance(a, np.ndarray)
    try:
        return array_api_compat.array_namespace(a) is backend.xp
    except TypeError:
        return False
