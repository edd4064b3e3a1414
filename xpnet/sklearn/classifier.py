"""``MLPClassifier``: scikit-learn's multi-layer perceptron classifier, trained by xpnet."""

from __future__ import annotations

import numpy as np
from array_api_compat import device
from sklearn.base import ClassifierMixin
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._array_api import get_namespace
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d, validate_data

from ..errors import XpnetValueError
from .arrays import backend_of, is_device_array, is_numeric, move, to_host
from .base import _BaseMLP


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier``, trained by xpnet.

    Parameters are scikit-learn 1.9's, with its defaults and meanings, plus ``backend``,
    ``dtype`` and ``threads``. Targets: class labels (softmax output for 3 or more classes,
    ONE logistic unit for two) or a multilabel indicator matrix (a logistic unit per label,
    binary cross-entropy).

    Parameters
    ----------
    hidden_layer_sizes : array-like of int, or int, default (100,)
        Width of each hidden layer (``()``: none, a linear model).
    activation : {"identity", "logistic", "tanh", "relu"}, default "relu"
    solver : {"lbfgs", "sgd", "adam"}, default "adam"
        ``"lbfgs"``: SciPy's L-BFGS-B, full batch; the others through :func:`xpnet.fit`.
    alpha : float >= 0, default 1e-4
        L2 strength: ``alpha / (2 * batch)`` x the squared weights join each batch's mean loss.
    batch_size : int or "auto", default "auto"
        ``min(200, n_samples)``; above ``n_samples`` it is clipped with a warning.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        SGD only: ``invscaling`` is ``learning_rate_init / (t + 1) ** power_t`` (``t`` samples
        seen); ``adaptive`` divides the rate by 5 whenever training stalls (see ``tol``).
    learning_rate_init : float > 0, default 0.001
    power_t : float >= 0, default 0.5
    max_iter : int, default 200
        Epochs (sgd, adam) or iterations (lbfgs).
    shuffle : bool, default True
    random_state : int, RandomState or None
        Initial weights (scikit-learn's draws), the early-stopping split and the shuffles.
    tol : float, default 1e-4
        Stall rule: an epoch whose loss (or validation score) does not improve on the best by
        ``tol`` counts; more than ``n_iter_no_change`` in a row stop training (or lower the
        rate, with ``"adaptive"``). For lbfgs: the projected-gradient tolerance.
    verbose : bool or int, default False
        Print the loss of every epoch (and the validation score) as scikit-learn does.
    warm_start : bool, default False
        ``fit`` continues from the fitted weights (a new optimizer, as scikit-learn).
    momentum : float in [0, 1), default 0.9
    nesterovs_momentum : bool, default True
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the rows (stratified), watch their accuracy with
        the stall rule and end with the weights of the best epoch.
    validation_fraction : float, default 0.1
    beta_1, beta_2, epsilon : float, default 0.9, 0.999, 1e-8
        Adam's.
    n_iter_no_change : int or numpy.inf, default 10
    max_fun : int, default 15000
        lbfgs: at most this many evaluations of the objective.
    backend : str or None, default None
        Where to train and predict (``"numpy"``, ``"torch:cuda"``, ``"cupy"``,
        ``"array_api_strict"``...). None: where the input lives under scikit-learn's
        ``array_api_dispatch``, else NumPy. A given ``backend`` overrides the input's.
    dtype : {None, "float32", "float64"}, default None
        Training and prediction dtype; None: float32 for float32 input, else float64.
    threads : int or None, default None
        CPU threads for xpnet and BLAS during fit and predict (None: every core).

    Attributes
    ----------
    classes_ : array (n_classes,)
    loss_ : float
        The last epoch's loss (scikit-learn's units: mean log-loss plus the L2 term).
    best_loss_ : float or None
        The lowest ``loss_curve_`` value (None with early stopping).
    loss_curve_ : list of float
        Each epoch's running training loss (sgd, adam).
    validation_scores_, best_validation_score_ : list of float, float, or None
        With early stopping: each epoch's held-out accuracy and the best one.
    t_ : int
        Training samples seen by the solver.
    coefs_, intercepts_ : list of arrays
        Weights (n_in, n_out) and biases (n_out,) per layer, in the training dtype: NumPy,
        or under ``array_api_dispatch`` where training ran (with ``classes_``).
    n_features_in_, feature_names_in_, n_iter_, n_layers_, n_outputs_, out_activation_
        As scikit-learn (``out_activation_``: "softmax" or "logistic").

    Notes
    -----
    What differs from scikit-learn is listed in :mod:`xpnet.sklearn` (shuffle draws,
    momentum's form under varying rates, sample weights in minibatches, ``momentum=1``,
    multi-target L-BFGS, the prediction dtype, sparse input densified).
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _out_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        """Validated ``X`` (in its namespace) and the binarized host targets ``Y`` (n, n_outputs)."""
        xp, _ = get_namespace(X)
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(xp.float64, xp.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes, known = unique_labels(y), self._label_binarizer.classes_
            if self.warm_start and not incremental:
                if set(classes) != set(known):
                    raise XpnetValueError(
                        "warm_start can only be used where `y` has the same classes as in the previous call to fit. "
                        f"Previously got {known}, `y` has {classes}")
            elif len(np.setdiff1d(classes, known, assume_unique=True)):
                raise XpnetValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {known}. "
                                      f"'y' has {classes}.")
        return X, self._label_binarizer.transform(y).astype(bool)  # bool: stratified splits name classes True/False

    def _place_labels(self) -> None:
        """``classes_`` where the weights are, when numeric (under array_api_dispatch: the input's namespace)."""
        classes = self._label_binarizer.classes_
        self.classes_ = move(classes, backend_of(self.coefs_[0])) if is_numeric(classes) else classes

    # -- decoding, on the backend of the outputs ---------------------------------------------------
    def _indices(self, xp, out):
        """Predicted class per row (n,), or the indicator (n, k) of multilabel targets."""
        if self._label_binarizer.y_type_.startswith("multilabel"):
            return out > 0.5
        if self.out_activation_ == "softmax":
            return xp.argmax(out, axis=1)
        if self._label_binarizer.classes_.shape[0] == 1:  # one class: every row is it
            return xp.zeros(out.shape[0], dtype=xp.int64, device=device(out))
        return xp.astype(out[:, 0] > 0.5, xp.int64)

    def _labels(self, out):
        """Labels from the outputs: the indicator matrix (int64) for multilabel targets, else ``classes_``
        taken on the outputs' backend (NumPy for labels that are not numbers)."""
        backend = backend_of(out)
        xp, index = backend.xp, self._indices(backend.xp, out)
        if self._label_binarizer.y_type_.startswith("multilabel"):
            return xp.astype(index, xp.int64)
        classes = self._label_binarizer.classes_
        if not is_numeric(classes):
            return classes[to_host(index)]
        return xp.take(move(classes, backend), index, axis=0)

    def _proba(self, out):
        backend = backend_of(out)
        return backend.xp.concat([1 - out, out], axis=1) if self.n_outputs_ == 1 else out

    def _score_truth(self, backend, Y):
        """The held-out rows' classes (or indicator) on ``backend``, as :meth:`_indices` gives them."""
        return move(self._indices(np, Y.astype(np.float64)), backend)

    def _device_score(self, xp, out, truth, weights):
        """Accuracy (scikit-learn's ``accuracy_score``, weighted), as a 0-d array on the outputs' device."""
        index = self._indices(xp, out)
        hits = xp.astype(xp.all(index == truth, axis=1) if index.ndim == 2 else index == truth, out.dtype)
        return xp.mean(hits) if weights is None else xp.sum(weights * hits) / xp.sum(weights)

    # -- the public methods ----------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Fit on ``X`` (n_samples, n_features), dense or sparse, and labels ``y`` (n_samples,) or a
        multilabel indicator matrix; ``sample_weight`` (n_samples,) weighs each row's loss. Returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(_BaseMLP._stochastic)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``(X, y)`` from the current state (optimizer included); ``classes`` (every label
        of the whole data) is required on the first call. Returns self."""
        y_host = to_host(y) if is_device_array(y) else y
        classes = to_host(classes) if is_device_array(classes) else classes
        if not hasattr(self, "classes_"):
            if classes is None:
                raise XpnetValueError("classes must be passed on the first call to partial_fit.")
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y_host if type_of_target(y_host).startswith("multilabel") else classes)
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(np.unique(classes), self._label_binarizer.classes_):
            raise XpnetValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, "
                                  f"was: {self._label_binarizer.classes_!r}")
        return self._fit(X, y_host, sample_weight=sample_weight, incremental=True)

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes) in the order of ``classes_`` (multilabel: one
        independent probability per label)."""
        return self._predicted(X, "predict_proba", self._proba)

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        return self._predicted(X, "predict_log_proba", lambda out: backend_of(out).xp.log(self._proba(out)))

    def predict(self, X):
        """Predicted labels (n_samples,), or the indicator matrix for multilabel targets."""
        return self._predicted(X, "predict", self._labels)
