"""scikit-learn's ``MLPClassifier`` and ``MLPRegressor``, trained by xpnet on any backend.

    >>> from xpnet.sklearn import MLPClassifier        # was: from sklearn.neural_network import ...
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(X / 16, y)
    >>> clf.score(X / 16, y) > 0.95
    True

Swapping the import is the whole migration: every parameter, fitted attribute and method of
scikit-learn 1.9's estimators is here with its name, default and meaning, plus xpnet's own
``backend``, ``dtype`` and ``threads``. The same ``random_state`` draws scikit-learn's own
starting weights, and with ``shuffle=False`` an SGD or Adam run follows scikit-learn's to
rounding. Under ``sklearn.set_config(array_api_dispatch=True)`` they follow scikit-learn's
array API convention: CuPy, torch or array_api_strict input trains there, the fitted arrays
stay there and predictions come back there (``backend=`` overrides; see
:mod:`xpnet.sklearn.arrays`). ``est.to_backend(name)`` moves a fitted estimator; pickles
hold NumPy arrays and load where the training backend is absent.

The modules, one job each: :mod:`~xpnet.sklearn.params` (checks, and the
:class:`xpnet.TrainConfig` generated from the options' declarations), :mod:`~xpnet.sklearn.arrays`
(namespaces and devices), :mod:`~xpnet.sklearn.base` (what both estimators share),
:mod:`~xpnet.sklearn.stochastic` (sgd and adam through :func:`xpnet.fit`),
:mod:`~xpnet.sklearn.lbfgs` (SciPy's L-BFGS-B on xpnet's gradient pass),
:mod:`~xpnet.sklearn.weights` (sample weights), :mod:`~xpnet.sklearn.messages` (``verbose``
and warnings), :mod:`~xpnet.sklearn.classifier` and :mod:`~xpnet.sklearn.regressor`.

What differs from scikit-learn (everything else matches; docs/sklearn.md has the table):

* shuffling draws its own permutations (from ``random_state``), so with ``shuffle=True`` runs
  are not scikit-learn's sample for sample; early stopping's split is scikit-learn's;
* momentum accumulates gradients and multiplies by the current rate (PyTorch's form);
  scikit-learn accumulates steps. They agree at a constant rate;
* a warm-started ``fit`` continues the ``"invscaling"`` schedule from ``t_`` in whole
  epochs of the new data (scikit-learn restarts its first epoch at ``learning_rate_init``);
* with sample weights and minibatches, each batch's loss is divided by its expected weight
  sum (rows x mean weight) where scikit-learn divides by its actual sum; full batch
  (``lbfgs``, or ``batch_size >= n_samples``) is identical. Negative weights are refused;
* ``momentum=1`` is refused (the velocity would never decay); scikit-learn accepts it;
* L-BFGS on several regression targets minimises the objective whose gradient scikit-learn
  uses (half the squared error summed over the outputs); ``loss_`` is in scikit-learn's units;
* prediction runs in the training dtype (a float32 model predicts float64 input in float32);
* training stops at the first non-finite epoch loss (scikit-learn runs on to ``max_iter``);
* sparse input is densified for training (memory: n_samples x n_features) and in row chunks
  for prediction.

Requires scikit-learn >= 1.6 (``pip install scikit-learn``, or ``pip install '.[sklearn]'`` in
a clone of xpnet); it is not a dependency of xpnet itself.
"""

try:
    import scipy.optimize  # noqa: F401
    import sklearn  # noqa: F401
    from sklearn.utils.validation import validate_data  # noqa: F401  (scikit-learn >= 1.6)
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError(
        f"xpnet.sklearn needs scikit-learn >= 1.6 ({exc}); install it with pip install scikit-learn "
        "(in a clone of xpnet: pip install '.[sklearn]')"
    ) from None

from .classifier import MLPClassifier
from .regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
