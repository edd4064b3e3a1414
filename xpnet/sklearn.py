"""scikit-learn estimators: :class:`MLPClassifier` and :class:`MLPRegressor` on any backend.

    >>> from xpnet.sklearn import MLPClassifier
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(32,), random_state=0).fit(X / 16, y)
    >>> clf.score(X / 16, y) > 0.95
    True

NumPy in, NumPy out: inputs are validated by scikit-learn, moved to ``backend`` for
training and prediction, and fitted parameters are kept as NumPy arrays (``coefs_``,
``intercepts_``), so fitted estimators pickle and clone like scikit-learn's own.

Parameter names follow scikit-learn's ``MLPClassifier``: ``alpha`` is the L2 strength
exactly as scikit-learn defines it (``alpha / (2 * batch_size) * sum ||W||^2`` added to the
mean batch loss; xpnet's ``l2`` is ``alpha / batch_size``). The solver is minibatch SGD
with classical momentum (scikit-learn's ``solver="sgd", nesterovs_momentum=False``):
``v = momentum * v - learning_rate_init * grad; W += v``, stopping early when the
training loss has not improved by ``tol`` for ``n_iter_no_change`` epochs.

Requires scikit-learn >= 1.6 (``pip install scikit-learn``, or ``pip install '.[sklearn]'`` in
a clone of xpnet); it is not a dependency of xpnet itself.
"""

from __future__ import annotations

import numpy as np

from .errors import XpnetValueError

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError(
        f"xpnet.sklearn needs scikit-learn >= 1.6 ({exc}); install it with pip install scikit-learn "
        "(in a clone of xpnet: pip install '.[sklearn]')"
    ) from None

from . import mlp as _mlp
from .backend import to_numpy
from .train import TrainConfig, fit

ACTIVATIONS = {"logistic": "sigmoid", "sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu"}


class _BaseMLP(BaseEstimator):
    """Shared parameters, validation and training (through :func:`xpnet.fit`)."""

    _output = "softmax"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, alpha=1e-4, batch_size="auto",
                 learning_rate_init=0.01, max_iter=200, momentum=0.9, shuffle=True, tol=1e-4,
                 n_iter_no_change=10, random_state=None, backend="numpy", dtype="float64"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.momentum = momentum
        self.shuffle = shuffle
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.backend = backend
        self.dtype = dtype

    # -- validation ------------------------------------------------------------------
    def _hidden_sizes(self) -> list:
        sizes = [self.hidden_layer_sizes] if np.isscalar(self.hidden_layer_sizes) else list(self.hidden_layer_sizes)
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in sizes):
            raise XpnetValueError(f"hidden_layer_sizes={self.hidden_layer_sizes!r} must be whole numbers > 0, e.g. (100,)")
        return [int(s) for s in sizes]

    def _check_params(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise XpnetValueError(f"activation={self.activation!r} is not supported; choose one of {sorted(ACTIVATIONS)}")
        for name, low in (("alpha", 0.0), ("momentum", 0.0), ("tol", 0.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.floating)) and np.isfinite(value) and value >= low):
                raise XpnetValueError(f"{name}={value!r} must be a finite number >= {low}")
        if self.momentum >= 1:
            raise XpnetValueError(f"momentum={self.momentum!r} must be in [0, 1), e.g. 0.9")
        if not (isinstance(self.learning_rate_init, (int, float, np.floating)) and 0 < self.learning_rate_init < np.inf):
            raise XpnetValueError(f"learning_rate_init={self.learning_rate_init!r} must be a finite number > 0")
        for name in ("max_iter", "n_iter_no_change"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise XpnetValueError(f"{name}={value!r} must be a whole number >= 1")
        if self.batch_size != "auto" and not (isinstance(self.batch_size, (int, np.integer)) and self.batch_size >= 1):
            raise XpnetValueError(f"batch_size={self.batch_size!r} must be 'auto' or a whole number >= 1")

    def _np_dtype(self):
        if self.dtype not in ("float32", "float64"):
            raise XpnetValueError(f"dtype={self.dtype!r} must be 'float32' or 'float64'")
        return np.dtype(self.dtype)

    # -- the network -----------------------------------------------------------------
    def _network(self, seed: int = 0) -> _mlp.MLP:
        """An xpnet MLP with this estimator's architecture (fresh weights from ``seed``)."""
        sizes = [self.n_features_in_, *self._hidden_sizes(), self._n_out]
        return _mlp.MLP(sizes, activation=ACTIVATIONS[self.activation], output=self._output, bias=True,
                        init="auto", dtype=self.dtype, backend=self.backend, seed=seed)

    def _fitted_network(self) -> _mlp.MLP:
        model = self._network()
        model.W = [model.backend.asarray(W, model.dtype) for W in self.coefs_]
        model.b = [model.backend.asarray(b, model.dtype) for b in self.intercepts_]
        return model

    def _forward(self, X) -> np.ndarray:
        """Network outputs (N, n_out) as NumPy for validated ``X``."""
        check_is_fitted(self, "coefs_")
        X = validate_data(self, X, reset=False, dtype=self._np_dtype())
        model = self._fitted_network()
        return to_numpy(model.predict_proba(model.backend.asarray(X, model.dtype)))

    def _fit_network(self, X, T_host):
        """Train from fresh weights on host arrays ``X`` (N, F) and targets ``T_host``; set fitted attributes.

        Through :func:`xpnet.fit` with scikit-learn's rules: L2 ``alpha / (2 * batch)`` per batch,
        stopping when the epoch's training loss improved by less than ``tol`` for more than
        ``n_iter_no_change`` epochs; its update ``v = momentum * v - rate * g`` is xpnet's SGD.
        """
        self._check_params()
        rng = check_random_state(self.random_state)
        model = self._network(seed=int(rng.randint(np.iinfo(np.int32).max)))
        n = X.shape[0]
        config = TrainConfig(epochs=int(self.max_iter), learning_rate=float(self.learning_rate_init),
                             l2=float(self.alpha), l2_scaling="batch", reduction="mean",
                             batch_size=min(200 if self.batch_size == "auto" else int(self.batch_size), n),
                             shuffle=bool(self.shuffle), momentum=float(self.momentum), tol=float(self.tol),
                             n_iter_no_change=self.n_iter_no_change, seed=int(rng.randint(np.iinfo(np.int32).max)),
                             divergence_factor=None)  # as scikit-learn: only a non-finite loss stops it
        result = fit(model, X, T_host, config)
        if result.diverged:
            raise XpnetValueError(f"training diverged (loss {result.history[-1] if result.history else 'nan'}); "
                                  f"lower learning_rate_init={self.learning_rate_init!r} or scale the inputs")
        self.loss_curve_ = list(result.epoch_losses)
        self.n_iter_ = len(self.loss_curve_)
        self.loss_ = self.loss_curve_[-1]
        self.coefs_ = [to_numpy(W) for W in model.W]
        self.intercepts_ = [to_numpy(b) for b in model.b]
        self.n_layers_ = len(self.coefs_) + 1
        self.out_activation_ = self._output
        return self


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier (softmax output, cross-entropy loss) on any xpnet backend.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
        Width of each hidden layer.
    activation : {"relu", "tanh", "logistic"}, default "relu"
        Hidden activation (``"logistic"`` is the sigmoid).
    alpha : float, default 1e-4
        L2 strength as in scikit-learn (see the module docstring).
    batch_size : int or "auto", default "auto"
        Minibatch size; ``"auto"`` is ``min(200, n_samples)``.
    learning_rate_init : float, default 0.01
        SGD step size.
    max_iter : int, default 200
        Maximum number of epochs (passes over the data).
    momentum : float, default 0.9
        Classical momentum in [0, 1).
    shuffle : bool, default True
        Shuffle the samples every epoch.
    tol : float, default 1e-4
        Minimum loss improvement counted as progress.
    n_iter_no_change : int, default 10
        Stop after this many epochs without progress.
    random_state : int, RandomState or None
        Seeds weight initialisation and shuffling.
    backend : str, default "numpy"
        xpnet backend for training and prediction (``"torch"``, ``"cupy"``, ...).
    dtype : {"float64", "float32"}, default "float64"

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
    coefs_, intercepts_ : list of ndarray
        Weights (n_in, n_out) and biases (n_out,) of each layer, as NumPy arrays.
    loss_curve_ : list of float
        Training loss of each epoch; ``loss_`` is the last.
    n_iter_ : int
        Epochs run.
    n_features_in_, n_layers_, n_outputs_, out_activation_
    """

    def fit(self, X, y):
        """Fit on ``X`` (n_samples, n_features) and labels ``y`` (n_samples,); returns self."""
        X, y = validate_data(self, X, y, dtype=self._np_dtype())
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_, indices = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise XpnetValueError(f"MLPClassifier needs at least 2 classes in y; got only one class, {self.classes_[0]!r}")
        self.n_outputs_ = self._n_out = len(self.classes_)
        return self._fit_network(X, indices)

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        return self._forward(X)

    def predict(self, X):
        """Predicted labels (n_samples,) taken from ``classes_``."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor (identity output, squared error) on any xpnet backend.

    Parameters are those of :class:`MLPClassifier`. ``y`` may be (n_samples,) or
    (n_samples, n_targets); ``predict`` returns the same shape. The network is trained on
    targets standardized per column (``y_mean_``, ``y_scale_``), so ``loss_curve_`` is in
    those units; ``predict`` maps back.
    """

    _output = "identity"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def fit(self, X, y):
        """Fit on ``X`` (n_samples, n_features) and targets ``y`` (n_samples,) or (n_samples, n_targets)."""
        X, y = validate_data(self, X, y, dtype=self._np_dtype(), multi_output=True, y_numeric=True)
        self._y_1d = y.ndim == 1
        T = np.asarray(y.reshape(-1, 1) if self._y_1d else y, dtype=np.float64)
        # Train on standardized targets so that one default learning rate works whatever the
        # scale of y (plain SGD on raw targets in the hundreds diverges); predict maps back.
        self.y_mean_ = T.mean(axis=0)
        scale = T.std(axis=0)
        self.y_scale_ = np.where(scale > 0, scale, 1.0)
        self.n_outputs_ = self._n_out = T.shape[1]
        return self._fit_network(X, (T - self.y_mean_) / self.y_scale_)

    def predict(self, X):
        """Predictions (n_samples,) or (n_samples, n_targets), matching the ``y`` of fit."""
        Y = self._forward(X) * self.y_scale_ + self.y_mean_
        return Y[:, 0] if self._y_1d else Y
