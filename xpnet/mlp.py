"""The multi-layer perceptron: its parameters, and ONE forward and ONE backward pass.

Parameters are lists ``W[i]`` of shape ``(n_in, n_out)`` and ``b[i]`` of shape ``(n_out,)``
on the model's backend. :func:`forward` and :func:`backward` are written once against the
primitives of :mod:`xpnet.core.ops` and used by every backend, every row count, minibatches, the
tutorials and data-parallel training; dropout and batch norm ride in the same loop. The
operation order is the tutorials' (``Z = H @ W``, then ``+ b``; the activation's slope from
its output), so their printed digits reproduce bit for bit. No autograd is involved.

    >>> import xpnet
    >>> model = xpnet.MLP([2, 16, 2], activation="tanh", output="softmax", backend="numpy")
    >>> X, y = xpnet.datasets.load("moons", n_samples=200)
    >>> result = model.fit(X, y, epochs=500, learning_rate=0.5)
    >>> model.accuracy(X, y) > 0.8
    True
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import warnings

import numpy as np

from . import memory
from .backend import Backend, get_backend, itemsize, to_numpy
from .core import activations, inputs, layers, losses
from .core.init import SEEDS, initial_weights
from .core.network import NUMERICS, Spec, forward, l2_penalty
from .engine.numpy_ops import get_ops
from .engine.plan import CHOICES as KERNEL_CHOICES
from .errors import Interval, XpnetError, XpnetValueError, check_bool, check_choice, check_positive

PREDICT_BYTES = 1 << 26  # predict_proba runs in row chunks holding about this much of activations
PICKLE_FORMAT = 1  # bumped when the pickled state changes meaning; unpickling reads every earlier one


def _on_device(method):
    """Run ``method`` with the model's device current (CuPy computes on the current device,
    whatever device the arrays were made on; a no-op elsewhere)."""
    @functools.wraps(method)
    def on_device(self, *args, **kwargs):
        with self.backend.activate():
            return method(self, *args, **kwargs)
    return on_device


class MLP:
    """A fully connected network trained by manual backprop on any array-API backend.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_inputs, hidden_1, ..., n_outputs]``; at least two entries.
    activation : str, Activation, or a sequence of them, default "tanh"
        Hidden activation(s): ``"sigmoid"``, ``"tanh"``, ``"relu"``, or your own
        :class:`xpnet.activations.Activation` (``forward(xp, Z) -> Y``, ``backward(xp, dY, Y)
        -> dZ``, written with the array API); one for all hidden layers or one per layer.
    output : {"softmax", "sigmoid", "identity"}, default "softmax"
        Output activation. Softmax expects integer class labels ``y`` of shape (N,).
    loss : {"cross_entropy", "squared", "binary_cross_entropy"}, optional
        Defaults to cross-entropy for softmax and squared error (Trask's "error times
        slope") for sigmoid and identity outputs.
    bias : bool, default True
        Bias units (WildML has them; Trask's nets have none).
    init : str, default "auto"
        Weight scheme from :mod:`xpnet.core.init`: ``trask``, ``cavar``, ``wildml``, ``he``,
        ``xavier`` or ``auto``.
    dtype : {"float32", "float64"}, default "float32"
    backend : str or Backend, optional
        ``"numpy"``, ``"cupy"``, ``"auto"``, ``"torch"``, ``"array_api_strict"``...;
        default ``$XPNET_BACKEND`` or ``"auto"``.
    seed : int in [0, 2**32), default 0
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
    kernels : {"auto", "numpy", "jit"}, default "auto"
        Which whole-pass kernels full-batch training may use (:mod:`xpnet.engine.kernels`): any that
        supports the case, the NumPy ones only, or the compiled ones only; the generic pass
        runs where none does. Results are the same up to float rounding.
    weights : (W, b), optional
        Start from these weights (lists of arrays of shapes ``(n_in, n_out)`` and
        ``(n_out,)``, ``b`` None without bias units; host or backend arrays) instead of
        drawing them with ``init``.

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
                 batch_norm=False, weights=None, kernels="auto"):
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
        SEEDS.check("seed", seed)
        Interval(0, 1, "left").check("dropout", dropout, "e.g. 0.2; 0 turns it off")
        check_bool("batch_norm", batch_norm)
        check_choice("kernels", kernels, KERNEL_CHOICES)
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
        self.init, self.seed, self.numerics, self.kernels = init, int(seed), numerics, kernels
        shapes = list(zip(self.spec.layer_sizes[:-1], self.spec.layer_sizes[1:]))
        n_params = sum((a + 1) * c for a, c in shapes)  # checked before anything of that size exists
        memory.require(n_params * (8 + itemsize(dtype)), f"the weights of layers {list(self.spec.layer_sizes)}",
                       self.backend, fix="use narrower --hidden layers")
        if weights is None:
            relu = any(a.name == "relu" for a in self.spec.hidden)
            host = initial_weights(init, self.spec.layer_sizes, self.seed, "relu" if relu else "tanh")
            weights = (host, [np.zeros(c) for _, c in shapes] if bias else None)
        self.W, self.b = self._checked_weights(weights, shapes)
        self.bn = (layers.batch_norm_init(self.xp, sizes[1:-1], self.dtype, self.backend.device)
                   if batch_norm else None)

    def _checked_weights(self, weights, shapes) -> tuple:
        """``(W, b)`` from ``weights``, each array of the right shape, on the backend in the model's dtype."""
        W, b = weights
        if len(W) != len(shapes) or (b is None) != (not self.spec.bias) or (b is not None and len(b) != len(shapes)):
            raise XpnetValueError(f"weights must be (W, b) with {len(shapes)} arrays each (b None without bias)")
        W = [inputs.to_device(self.backend, self.dtype, w, f"W[{i}]") for i, w in enumerate(W)]
        b = None if b is None else [inputs.to_device(self.backend, self.dtype, c, f"b[{i}]") for i, c in enumerate(b)]
        for i, (a, c) in enumerate(shapes):
            if tuple(W[i].shape) != (a, c) or (b is not None and tuple(b[i].shape) != (c,)):
                raise XpnetValueError(f"weights of layer {i} must have shapes ({a}, {c}) and ({c},)")
        return W, b

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
        """``X`` as a 2-D array of the model's dtype on its device (validated; see :mod:`xpnet.core.inputs`)."""
        return inputs.as_inputs(self.backend, self.dtype, self.layer_sizes[0], X, allow_empty=allow_empty)

    def as_targets(self, y, n: int):
        """Targets in the form the loss needs: one-hot (N, C) for softmax, else (N, n_out)."""
        return inputs.as_targets(self.backend, self.dtype, self.spec.output, self.layer_sizes[-1], y, n)

    # -- inference -----------------------------------------------------------------------
    def logits(self, X):
        """The output layer's pre-activation for validated ``X`` (inference: running batch-norm
        statistics, no dropout), in row chunks of about ``PREDICT_BYTES`` of activations."""
        ops = get_ops(self.backend)
        rows = max(1, PREDICT_BYTES // (max(self.layer_sizes) * itemsize(self.dtype_name)))
        if X.shape[0] <= rows:
            return forward(ops, self.spec, self.W, self.b, X, bn=self.bn)[0]
        parts = [forward(ops, self.spec, self.W, self.b, X[a:a + rows, ...], bn=self.bn)[0]
                 for a in range(0, X.shape[0], rows)]
        return self.xp.concat(parts, axis=0)

    @_on_device
    def predict_proba(self, X):
        """Network output for ``X``: class probabilities (softmax/sigmoid) or values (identity)."""
        return activations.output_forward(self.xp, self.spec.output, self.logits(self.as_inputs(X)), self.spec.stable)

    @_on_device
    def predict(self, X):
        """Class labels (softmax: argmax; sigmoid: output > 0.5) or values (identity)."""
        Y = self.predict_proba(X)
        if self.spec.output == "softmax":
            return self.xp.argmax(Y, axis=1)
        if self.spec.output == "sigmoid":
            return self.xp.astype(Y > 0.5, self.xp.int64)
        return Y

    @_on_device
    def summed_loss(self, X, T, loss=None):
        """The data loss summed over the rows of validated ``(X, T)``, inference mode (0-d array);
        ``loss`` (a :class:`~xpnet.losses.Loss`) instead of the model's own (e.g. a weighted one)."""
        loss = self.spec.loss if loss is None else loss
        Z = self.logits(X)
        Y = activations.output_forward(self.xp, self.spec.output, Z, self.spec.stable)
        return loss.total(self.xp, Z, Y, T, self.spec.stable)

    def objective(self, data_total, n: int, l2: float = 0.0, reduction: str = "mean"):
        """The reported objective from a summed data loss over ``n`` rows (see :mod:`xpnet.losses`)."""
        penalty = l2_penalty(self.xp, self.W, l2) if l2 else 0.0
        return losses.objective(self.xp, data_total, penalty, n, reduction)

    @_on_device
    def loss(self, X, y, *, l2: float = 0.0, reduction: str = "mean") -> float:
        """The objective on ``(X, y)`` as training reports it (see :mod:`xpnet.losses`)."""
        X = self.as_inputs(X)
        return float(self.objective(self.summed_loss(X, self.as_targets(y, X.shape[0])), X.shape[0], l2, reduction))

    @_on_device
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

    def to_backend(self, backend, dtype: str | None = None) -> MLP:
        """Move the model to ``backend`` (a name or :class:`~xpnet.backend.Backend`), in place.

        Every trained array (weights, biases, batch-norm state) is copied to the new
        namespace and device, in ``dtype`` (default: the model's); returns the model, so
        ``model.to_backend("numpy").predict(X)`` reads as it runs. A model trained on a GPU
        moves to a laptop this way (or through :mod:`xpnet.checkpoint` with ``backend=``).
        """
        target = get_backend(backend)
        dtype = self.dtype_name if dtype is None else dtype
        check_choice("dtype", dtype, ("float32", "float64"))
        new_dtype = target.dtype(dtype)

        def move(arrays, what):
            return [inputs.to_device(target, new_dtype, to_numpy(a), f"{what}[{i}]") for i, a in enumerate(arrays)]

        self.W = move(self.W, "W")
        self.b = None if self.b is None else move(self.b, "b")
        if self.bn is not None:
            self.bn = layers.BatchNorm(*(tuple(move(part, name)) for part, name in
                                         zip((self.bn.gamma, self.bn.beta, self.bn.mean, self.bn.var),
                                             ("gamma", "beta", "mean", "var"))))
        self.backend, self.dtype_name, self.dtype = target, dtype, new_dtype
        return self

    # -- copies --------------------------------------------------------------------------
    def __getstate__(self) -> dict:
        """What pickle stores: every trained array as a NumPy array and the backend by name,
        so a model trained on any backend unpickles where that backend is absent."""
        state = dict(self.__dict__)
        del state["dtype"]  # the backend's own dtype object (torch.float32...): made again from dtype_name
        state.update(pickle_format=PICKLE_FORMAT, backend=self.backend.qualified_name(),
                     backend_reason=self.backend.reason, W=[to_numpy(W) for W in self.W],
                     b=None if self.b is None else [to_numpy(b) for b in self.b],
                     bn=None if self.bn is None else {f.name: tuple(to_numpy(a) for a in getattr(self.bn, f.name))
                                                          for f in dataclasses.fields(self.bn)})
        return state

    def __setstate__(self, state: dict) -> None:
        """Restore a pickled model onto its backend by name, or onto NumPy (with a warning)
        where that backend or its device is not available."""
        if "pickle_format" not in state:  # pickled by xpnet 0.1: its arrays as they were
            self.__dict__.update(state)
            return
        state = dict(state)
        del state["pickle_format"]
        backend = _unpickled_backend(state.pop("backend"), state.pop("backend_reason"))
        dtype = backend.dtype(state["dtype_name"])
        arrays = {key: state.pop(key) for key in ("W", "b", "bn")}
        self.__dict__.update(state, backend=backend, dtype=dtype)
        self.W = [backend.asarray(W, dtype) for W in arrays["W"]]
        self.b = None if arrays["b"] is None else [backend.asarray(b, dtype) for b in arrays["b"]]
        self.bn = None
        if arrays["bn"] is not None:
            self.bn = layers.BatchNorm(**{key: tuple(backend.asarray(a, dtype) for a in part)
                                          for key, part in arrays["bn"].items()})

    def __copy__(self) -> MLP:
        """A shallow copy: a new model object holding the same arrays."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def __deepcopy__(self, memo) -> MLP:
        """A copy on the same backend and device (arrays copied there, not through the host)."""
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return clone

    # -- training ------------------------------------------------------------------------
    def fit(self, X, y, **options):
        """Train on ``(X, y)`` from the current weights; see :func:`xpnet.fit`."""
        from .training.loop import fit

        return fit(self, X, y, **options)

    def parameters(self) -> list:
        """All trained arrays: ``W[0], ..., W[-1]``, the biases, then batch-norm gammas and betas."""
        params = self.W + self.b if self.b is not None else list(self.W)  # one new list: called every epoch
        return params if self.bn is None else params + list(self.bn.gamma) + list(self.bn.beta)

    def set_parameters(self, params) -> None:
        """Replace the arrays :meth:`parameters` returns (same order)."""
        n = len(self.W)
        self.W = list(params[:n])  # list(): a tuple of arrays is fine too
        if self.b is not None:
            self.b = list(params[n:2 * n])
        if self.bn is not None:
            rest = params[2 * n if self.b is not None else n:]
            k = len(self.bn.gamma)
            self.bn = layers.BatchNorm(tuple(rest[:k]), tuple(rest[k:2 * k]), self.bn.mean, self.bn.var)


def _unpickled_backend(name: str, reason: str) -> Backend:
    """The backend a model was pickled on (``name``: its qualified name), or NumPy with a
    ``UserWarning`` when it is not available in this process."""
    try:
        backend = get_backend(name)
    except (XpnetError, ImportError) as exc:
        warnings.warn(f"this xpnet model was pickled on the {name!r} backend, which is not available here "
                      f"({' '.join(str(exc).split())}); its weights were restored onto NumPy instead (move them "
                      "with model.to_backend(name))", UserWarning, stacklevel=4)
        return get_backend("numpy")
    return backend if backend.reason == reason else dataclasses.replace(backend, reason=reason)
