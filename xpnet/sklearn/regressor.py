"""``MLPRegressor``: scikit-learn's multi-layer perceptron regressor, trained by xpnet."""

from __future__ import annotations

import numpy as np
from array_api_compat import device
from sklearn.base import RegressorMixin
from sklearn.utils._array_api import get_namespace
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import column_or_1d, validate_data

from ..errors import XpnetValueError, check_choice
from .arrays import move
from .base import _BaseMLP


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's ``MLPRegressor``, trained by xpnet.

    Parameters are :class:`MLPClassifier`'s plus ``loss``:

    loss : {"squared_error", "poisson"}, default "squared_error"
        Half the squared error (identity output), or half the Poisson deviance (exponential
        output, ``y >= 0``). As scikit-learn, the reported squared error is averaged over the
        outputs while the gradient is that of their sum.

    ``y`` may be (n_samples,) or (n_samples, n_targets); an (n_samples, 1) ``y`` is taken
    as 1-D (with scikit-learn's warning) and ``predict`` returns (n_samples,) for one target.
    Targets are used as given (no standardization): ``loss_`` and ``tol`` are in scikit-learn's
    units. ``validation_scores_`` are R^2 values. See :class:`MLPClassifier` for the rest and
    :mod:`xpnet.sklearn` for what differs from scikit-learn.
    """

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, backend=None, dtype=None,
                 threads=None):
        self.loss = loss
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver, alpha=alpha,
                         batch_size=batch_size, learning_rate=learning_rate, learning_rate_init=learning_rate_init,
                         power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol,
                         verbose=verbose, warm_start=warm_start, momentum=momentum,
                         nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         n_iter_no_change=n_iter_no_change, max_fun=max_fun, backend=backend, dtype=dtype,
                         threads=threads)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _check_params(self) -> None:
        check_choice("loss", self.loss, ("squared_error", "poisson"))

    def _out_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X, y, incremental, reset):
        """Validated ``X`` (in its namespace) and the host targets ``Y`` (n, n_targets) in the training dtype."""
        xp, _ = get_namespace(X)
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
                             dtype=(xp.float64, xp.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = np.asarray(y, dtype=self._dtype_name(X))
        if self.loss == "poisson" and np.any(Y < 0):
            raise XpnetValueError("loss='poisson' needs y >= 0 (counts or rates); use loss='squared_error' otherwise")
        return X, Y.reshape(-1, 1) if Y.ndim == 1 else Y

    def _score_truth(self, backend, Y):
        return move(Y, backend)

    def _device_score(self, xp, out, truth, weights):
        """R^2 (scikit-learn's ``r2_score``: weighted, averaged over the outputs, 1 or 0 for constant
        targets), as a 0-d array on the outputs' device."""
        w = (xp.ones((truth.shape[0], 1), dtype=out.dtype, device=device(out)) if weights is None
             else xp.reshape(weights, (-1, 1)))
        mean = xp.sum(w * truth, axis=0) / xp.sum(w)
        residual = xp.sum(w * (truth - out) ** 2, axis=0)
        total = xp.sum(w * (truth - mean) ** 2, axis=0)
        constant = total == 0
        r2 = xp.where(constant, xp.astype(residual == 0, out.dtype),
                      1 - residual / xp.where(constant, xp.ones_like(total), total))
        return xp.mean(r2)

    def fit(self, X, y, sample_weight=None):
        """Fit on ``X`` (n_samples, n_features), dense or sparse, and targets ``y`` (n_samples,) or
        (n_samples, n_targets); ``sample_weight`` (n_samples,) weighs each row's loss. Returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(_BaseMLP._stochastic)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)`` from the current state (optimizer included). Returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """Predictions (n_samples,) for one target, else (n_samples, n_targets), in the training dtype."""
        return self._predicted(X, "predict", lambda out: out[:, 0] if out.shape[1] == 1 else out)
