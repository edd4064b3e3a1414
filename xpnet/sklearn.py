"""scikit-learn's ``MLPClassifier`` and ``MLPRegressor``, trained by xpnet on any backend.

    >>> from xpnet.sklearn import MLPClassifier        # was: from sklearn.neural_network import ...
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(X / 16, y)
    >>> clf.score(X / 16, y) > 0.95
    True

Swapping the import is the whole migration: every parameter, fitted attribute and method of
scikit-learn 1.9's estimators is here with its name, default and meaning (solvers ``"adam"``,
``"sgd"`` and ``"lbfgs"``, the learning-rate schedules, early stopping, ``partial_fit``,
``warm_start``, sample weights, sparse input, multilabel targets, the Poisson loss...), plus
xpnet's own ``backend``, ``dtype`` and ``threads``. The same ``random_state`` draws
scikit-learn's own starting weights, and with ``shuffle=False`` an SGD or Adam run follows
scikit-learn's to rounding.

Training goes through :func:`xpnet.fit` (SGD, Adam: xpnet's optimizers, scikit-learn's stall
rule) or, for ``solver="lbfgs"``, SciPy's L-BFGS-B on xpnet's full-batch gradient pass.
Inputs are validated by scikit-learn and moved to ``backend``; fitted parameters are NumPy
arrays (``coefs_``, ``intercepts_``) in the training dtype, so fitted estimators pickle and
clone like scikit-learn's own. Prediction reuses the fitted network (no rebuild, no random
draw).

What differs from scikit-learn (everything else matches):

* shuffling draws its own permutations (from ``random_state``), so with ``shuffle=True`` runs
  are not scikit-learn's sample for sample; early stopping's split is scikit-learn's;
* momentum accumulates gradients and multiplies by the current rate (PyTorch's form);
  scikit-learn accumulates steps. They agree at a constant rate; with ``"invscaling"`` or
  ``"adaptive"`` the velocity carries earlier rates differently;
* a warm-started ``fit`` continues the ``"invscaling"`` schedule from ``t_`` in whole
  epochs of the new data (scikit-learn restarts its first epoch at ``learning_rate_init``);
* with sample weights and minibatches, each batch's loss is divided by its expected weight
  sum (rows x mean weight) where scikit-learn divides by its actual sum; full batch
  (``lbfgs``, or ``batch_size >= n_samples``) is identical. Negative weights are refused;
* ``momentum=1`` is refused (the velocity would never decay); scikit-learn accepts it;
* L-BFGS on several regression targets minimises the objective whose gradient scikit-learn
  uses (half the squared error summed over the outputs); scikit-learn hands L-BFGS that
  gradient with a value averaged over outputs. ``loss_`` is in scikit-learn's units either way;
* prediction runs in the training dtype (a float32 model predicts float64 input in float32);
* training stops at the first non-finite epoch loss (scikit-learn runs on to ``max_iter``);
* sparse input is densified for training (memory: n_samples x n_features) and in row chunks
  for prediction.

Requires scikit-learn >= 1.6 (``pip install scikit-learn``, or ``pip install '.[sklearn]'`` in
a clone of xpnet); it is not a dependency of xpnet itself.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings

import numpy as np

try:
    import scipy.optimize
    from scipy import sparse
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
    from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError(
        f"xpnet.sklearn needs scikit-learn >= 1.6 ({exc}); install it with pip install scikit-learn "
        "(in a clone of xpnet: pip install '.[sklearn]')"
    ) from None

from .backend import to_numpy
from .core import losses
from .core.activations import HIDDEN, IDENTITY, output_forward, overflow_quiet
from .core.init import glorot_uniform_with_biases
from .engine.numpy_ops import get_ops
from .engine.plan import choose
from .engine.threads import limit_threads
from .errors import Interval, XpnetValueError, check_bool, check_choice
from .mlp import MLP
from .training.config import TrainConfig
from .training.loop import fit
from .training.optim import Schedule

ACTIVATIONS = {"identity": IDENTITY, "logistic": HIDDEN["sigmoid"], "tanh": HIDDEN["tanh"], "relu": HIDDEN["relu"]}
OUTPUTS = {"softmax": "softmax", "logistic": "sigmoid", "identity": "identity", "exp": "exp"}  # scikit-learn: xpnet
SOLVERS = ("lbfgs", "sgd", "adam")
SCHEDULES = ("constant", "invscaling", "adaptive")
DTYPES = (None, "float32", "float64")
SEED = np.iinfo(np.int32).max  # seeds for xpnet's shuffles are drawn below this from random_state
PREDICT_CHUNK = 1 << 24  # sparse rows are densified for prediction in chunks of about this many entries

NONNEGATIVE = Interval(0, None)
POSITIVE = Interval(0, None, "neither")
COUNT = Interval(1, None, integer=True)
UNIT = Interval(0, 1, "left")
PATIENCE = Interval(1, None, integer=True, inf=True)  # scikit-learn documents n_iter_no_change=np.inf


def _host(a) -> np.ndarray:
    """``a`` as a writable NumPy array (a copy only when the backend's view is read-only)."""
    out = to_numpy(a)
    return out if out.flags.writeable else np.array(out)


class _Optimizer:
    """What a later ``partial_fit`` needs to continue: the optimizer's state (NumPy arrays, so it
    pickles), and ``learning_rate``, the step size the next epoch would take (as scikit-learn's
    ``_optimizer.learning_rate``)."""

    def __init__(self, solver: str, state: dict, learning_rate: float):
        self.solver, self.state, self.learning_rate = solver, state, learning_rate


class _BaseMLP(BaseEstimator):
    """Parameters, validation, the network and the solvers shared by both estimators."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, backend="numpy", dtype=None, threads=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.dtype = dtype
        self.threads = threads

    def _stochastic(self) -> bool:
        """Whether ``partial_fit`` exists: only for the stochastic solvers (as in scikit-learn)."""
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(f"partial_fit is only available for stochastic optimizers; solver={self.solver!r} "
                                 "is not (use 'sgd' or 'adam')")
        return True

    # fitted attributes of the stochastic solvers (declared for type checkers; set by fit)
    loss_curve_: list
    validation_scores_: list | None
    best_validation_score_: float | None
    best_loss_: float | None

    # -- parameters ----------------------------------------------------------------------------
    def _hidden_sizes(self) -> list:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Number) or np.ndim(sizes) == 0 else list(sizes)
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and int(s) > 0 for s in sizes):
            raise XpnetValueError(f"hidden_layer_sizes={self.hidden_layer_sizes!r} must be whole numbers > 0, "
                                  "e.g. (100,)")
        return [int(s) for s in sizes]

    def _check_params(self) -> None:
        """Every parameter checked by name (NumPy numbers count as numbers), as scikit-learn's constraints."""
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_choice("solver", self.solver, SOLVERS)
        check_choice("learning_rate", self.learning_rate, SCHEDULES)
        NONNEGATIVE.check("alpha", self.alpha, "e.g. 1e-4")
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            COUNT.check("batch_size", self.batch_size, "or 'auto' for min(200, n_samples)")
        POSITIVE.check("learning_rate_init", self.learning_rate_init, "e.g. 0.001")
        NONNEGATIVE.check("power_t", self.power_t, "e.g. 0.5")
        COUNT.check("max_iter", self.max_iter, "e.g. 200")
        NONNEGATIVE.check("tol", self.tol, "e.g. 1e-4")
        UNIT.check("momentum", self.momentum, "e.g. 0.9 (1 would never decay)")
        UNIT.check("validation_fraction", self.validation_fraction, "e.g. 0.1")
        UNIT.check("beta_1", self.beta_1, "e.g. 0.9")
        UNIT.check("beta_2", self.beta_2, "e.g. 0.999")
        POSITIVE.check("epsilon", self.epsilon, "e.g. 1e-8")
        PATIENCE.check("n_iter_no_change", self.n_iter_no_change, "e.g. 10, or numpy.inf")
        COUNT.check("max_fun", self.max_fun, "e.g. 15000")
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            check_bool(name, getattr(self, name))
        if not isinstance(self.verbose, (bool, np.bool_)):
            Interval(0, None, integer=True).check("verbose", self.verbose, "or True/False")
        check_choice("dtype", self.dtype, DTYPES)
        if self.threads is not None:
            COUNT.check("threads", self.threads, "or None for every core")
        self._hidden_sizes()

    def _np_dtype(self, X=None):
        """The training dtype: ``dtype``, else float32 for float32 input and float64 otherwise."""
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return np.dtype(np.float32) if X is not None and X.dtype == np.float32 else np.dtype(np.float64)

    # -- the network ---------------------------------------------------------------------------
    def _network(self, coefs, intercepts, loss=None) -> MLP:
        """An xpnet MLP holding ``coefs``/``intercepts`` (never a random draw)."""
        sizes = [coefs[0].shape[0]] + [W.shape[1] for W in coefs]
        output = OUTPUTS[self.out_activation_]
        model = MLP(sizes, activation=ACTIVATIONS[self.activation], output=output,
                    loss=None if loss in (None, losses.SQUARED_ERROR) else loss, bias=True,
                    dtype=np.dtype(coefs[0].dtype).name, backend=self.backend,
                    weights=(coefs, intercepts))
        if loss is losses.SQUARED_ERROR:  # scikit-learn's units; not a named loss (see xpnet.losses)
            model.spec = dataclasses.replace(model.spec, loss=losses.SQUARED_ERROR)
        if model.backend.name == "numpy" and all(np.dtype(a.dtype) == model.dtype for a in coefs + intercepts):
            model.W, model.b = list(coefs), list(intercepts)  # shared: editing coefs_ in place is seen
        return model

    def _training_loss(self):
        if self.out_activation_ == "identity":
            return losses.SQUARED_ERROR
        return {"softmax": "cross_entropy", "logistic": "binary_cross_entropy", "exp": "poisson"}[self.out_activation_]

    def _predictor(self) -> MLP:
        """The fitted network, rebuilt only when ``coefs_``/``intercepts_`` were replaced (or after unpickling)."""
        arrays = list(self.coefs_) + list(self.intercepts_)
        model, source = self.__dict__.get("_model"), self.__dict__.get("_model_source")
        if model is None or source is None or len(source) != len(arrays) or any(a is not b for a, b in
                                                                                 zip(source, arrays)):
            model = self._network(list(self.coefs_), list(self.intercepts_))
            self._keep(model)
        return model

    def _keep(self, model: MLP) -> None:
        self._model, self._model_source = model, list(self.coefs_) + list(self.intercepts_)

    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        state.pop("_model", None)  # rebuilt from coefs_ on first use: pickles stay NumPy-only
        state.pop("_model_source", None)
        return state

    def _outputs(self, X) -> np.ndarray:
        """The network's outputs (n_samples, n_outputs) for validated X, as NumPy."""
        model = self._predictor()
        with limit_threads(self.threads), np.errstate(over="ignore"):
            if not sparse.issparse(X):
                return _host(_forward(model, X))
            rows = max(1, PREDICT_CHUNK // max(1, X.shape[1]))
            return np.concatenate([_host(_forward(model, X[a:a + rows].toarray()))
                                   for a in range(0, X.shape[0], rows)], axis=0)

    def _validated_for_predict(self, X):
        check_is_fitted(self, "coefs_")
        return validate_data(self, X, reset=False, accept_sparse=["csr", "csc"], dtype=self.coefs_[0].dtype)

    # -- fit -----------------------------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, incremental=False):
        self._check_params()
        first = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, Y = self._validate_input(X, y, incremental, reset=first)
        sw = _sample_weight(sample_weight, X.shape[0])
        if sparse.issparse(X):
            X = X.toarray()  # xpnet trains on dense arrays (see the module docstring)
        units = [X.shape[1], *self._hidden_sizes(), Y.shape[1]]
        rng = check_random_state(self.random_state)
        if first:
            self._initialize(Y, units, X.dtype, rng)
        else:
            self._check_continuation(units, X.dtype)
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, Y, sw)
        else:
            self._fit_stochastic(X, Y, sw, rng, incremental)
        if not all(np.all(np.isfinite(a)) for a in list(self.coefs_) + list(self.intercepts_)):
            raise XpnetValueError(_nonfinite_message(X, self.learning_rate_init))
        return self

    def _initialize(self, Y, units, dtype, rng) -> None:
        """Fresh fitted state: scikit-learn's attributes and its initial weights (the same draws)."""
        self.__dict__.pop("_optimizer", None)
        self.n_iter_, self.t_ = 0, 0
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = len(units)
        self.out_activation_ = self._out_activation()
        W, b = glorot_uniform_with_biases(rng, units, 2.0 if self.activation == "logistic" else 6.0)
        self.coefs_ = [w.astype(dtype) for w in W]
        self.intercepts_ = [c.astype(dtype) for c in b]
        if self.solver != "lbfgs":
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
            else:
                self.validation_scores_, self.best_validation_score_, self.best_loss_ = None, None, np.inf

    def _check_continuation(self, units, dtype) -> None:
        have = [self.coefs_[0].shape[0]] + [W.shape[1] for W in self.coefs_]
        if have != units:
            raise XpnetValueError(f"the fitted network has layers {have}, this data and hidden_layer_sizes need "
                                  f"{units}; fit again without warm_start (or partial_fit on matching data)")
        if self.coefs_[0].dtype != dtype:
            self.coefs_ = [W.astype(dtype) for W in self.coefs_]
            self.intercepts_ = [b.astype(dtype) for b in self.intercepts_]

    def _targets(self, Y):
        """What :func:`xpnet.fit` takes for the binarized/2-D targets ``Y``: class indices for softmax."""
        return np.argmax(Y, axis=1) if self.out_activation_ == "softmax" else Y.astype(np.float64, copy=False)

    # -- SGD and Adam through xpnet.fit ------------------------------------------------------
    def _fit_stochastic(self, X, Y, sw, rng, incremental):
        if self.early_stopping and incremental:
            raise XpnetValueError("partial_fit does not support early_stopping=True; set early_stopping=False")
        if not hasattr(self, "loss_curve_"):  # a network fitted by lbfgs, now trained by sgd/adam
            self.loss_curve_, self._no_improvement_count = [], 0
            self.validation_scores_ = [] if self.early_stopping else None
            self.best_validation_score_ = -np.inf if self.early_stopping else None
            self.best_loss_ = None if self.early_stopping else np.inf
        X_val = Y_val = sw_val = None
        if self.early_stopping:
            X, Y, sw, X_val, Y_val, sw_val = self._split(X, Y, sw, rng)
        n = X.shape[0]
        if self.batch_size == "auto":
            batch = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                              stacklevel=4)
            batch = int(min(self.batch_size, n))
        weights, l2 = _normalized(sw, float(self.alpha))
        previous = self.__dict__.get("_optimizer")
        carried = dict(previous.state) if incremental and previous is not None and previous.solver == self.solver \
            else {}
        best = self.best_validation_score_ if self.early_stopping else self.best_loss_  # either may be None:
        best = math.inf if best is None else (-float(best) if self.early_stopping else float(best))  # other mode before
        state = {**carried, "stall_best": np.asarray(best), "stall_stale": np.asarray(self._no_improvement_count)}
        rate, schedule, initial = float(self.learning_rate_init), Schedule(), 0
        sgd = self.solver == "sgd"
        if sgd and self.learning_rate == "invscaling":
            if incremental:  # one epoch: its rate is scikit-learn's lr0 / (t_ + 1) ** power_t exactly
                rate = rate / (self.t_ + 1) ** float(self.power_t)
            else:
                schedule, initial = Schedule("invscaling", power_t=float(self.power_t)), int(round(self.t_ / n))
        elif sgd and self.learning_rate == "adaptive":
            schedule = Schedule("adaptive")
        momentum = float(self.momentum) if sgd else 0.0
        config = TrainConfig(
            epochs=1 if incremental else int(self.max_iter), learning_rate=rate, l2=l2, l2_scaling="batch",
            reduction="mean", batch_size=batch, shuffle=bool(self.shuffle), optimizer=self.solver,
            momentum=momentum, nesterov=bool(self.nesterovs_momentum) and momentum > 0,
            beta1=float(self.beta_1), beta2=float(self.beta_2), epsilon=float(self.epsilon), schedule=schedule,
            tol=float(self.tol), n_iter_no_change=self.n_iter_no_change, seed=int(rng.randint(SEED)),
            log_every=1 if self.verbose else (1 if incremental else int(self.max_iter)), divergence_factor=None)
        start = (list(self.coefs_), list(self.intercepts_))
        model = self._network(*start, loss=self._training_loss())
        score = None if X_val is None else self._validation_score(model, X_val, Y_val, sw_val)
        printer = _Printer(self) if self.verbose else None
        with limit_threads(self.threads):
            result = fit(model, X, self._targets(Y), config, initial_epoch=initial, optimizer_state=state,
                         validation_score=score, sample_weight=weights, callback=printer)
        if printer is not None:
            printer.finish(result)
        if result.diverged and not self.early_stopping:
            raise XpnetValueError(_nonfinite_message(X, self.learning_rate_init))
        self._record(result, model, n, start, incremental)

    def _record(self, result, model, n: int, start, incremental: bool) -> None:
        """The fitted attributes after a stochastic run (scikit-learn's, in its units)."""
        state = {name: _host(a) for name, a in result.optimizer_state.items()}
        kept = model
        done = len(result.epoch_losses)
        self.n_iter_ = done
        self.t_ += n * done
        self.loss_curve_.extend(float(v) for v in result.epoch_losses)
        if self.loss_curve_:
            self.loss_ = self.loss_curve_[-1]
        self._no_improvement_count = int(state.get("stall_stale", 0))
        best = float(state.get("stall_best", math.inf))
        if self.early_stopping:
            before = -math.inf if self.best_validation_score_ is None else float(self.best_validation_score_)
            self.validation_scores_ = [*(self.validation_scores_ or []), *(float(v) for v in result.validation_scores)]
            self.best_validation_score_ = -best
            if not -best > before:
                kept = None  # no better score in this run: scikit-learn keeps the earlier best weights
        else:
            self.best_loss_ = best
        if kept is not None:
            self.coefs_ = [_host(W) for W in model.W]
            self.intercepts_ = [_host(b) for b in model.b]
            self._keep(model)
        else:
            self.coefs_, self.intercepts_ = start
        self._optimizer = _Optimizer(self.solver, state, self._next_rate(state))
        if result.interrupted:
            warnings.warn("Training interrupted by user.", stacklevel=5)
        elif not incremental and done == self.max_iter and not result.stopped_early:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the optimization "
                          "hasn't converged yet.", ConvergenceWarning, stacklevel=5)

    def _next_rate(self, state: dict) -> float:
        """The step size the next epoch takes (scikit-learn's ``_optimizer.learning_rate``)."""
        rate = float(self.learning_rate_init) * float(state.get("rate_scale", 1.0))
        if self.solver == "adam":
            t = int(state.get("t", 0))
            return rate * math.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t) if t else rate
        if self.learning_rate == "invscaling":
            return rate / (self.t_ + 1) ** float(self.power_t)
        return rate

    def _split(self, X, Y, sw, rng):
        """scikit-learn's early-stopping split (stratified for single-output classification)."""
        stratify = Y if isinstance(self, ClassifierMixin) and self.n_outputs_ == 1 else None
        arrays = (X, Y) if sw is None else (X, Y, sw)
        parts = train_test_split(*arrays, random_state=rng, test_size=self.validation_fraction, stratify=stratify)
        X_train, X_val, Y_train, Y_val = parts[:4]
        sw_train, sw_val = parts[4:] if sw is not None else (None, None)
        if X_val.shape[0] < 2:
            raise XpnetValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                                  "your dataset.")
        return X_train, Y_train, sw_train, X_val, Y_val, sw_val

    def _validation_score(self, model: MLP, X_val, Y_val, sw_val):
        """``score(model)``: accuracy or R^2 on the held-out rows (NaN when the outputs are not finite)."""
        X_dev = model.backend.asarray(np.ascontiguousarray(X_val), model.dtype)
        truth = self._decode_truth(Y_val)

        def score(net) -> float:
            with np.errstate(over="ignore", invalid="ignore"):
                out = _host(_forward(net, X_dev))
            if not np.all(np.isfinite(out)):
                return math.nan
            return float(self._score_outputs(out, truth, sw_val))

        return score

    # -- L-BFGS through SciPy ------------------------------------------------------------------
    def _fit_lbfgs(self, X, Y, sw):
        weights, alpha = _normalized(sw, float(self.alpha))
        loss = self._training_loss()
        model = self._network(list(self.coefs_), list(self.intercepts_),
                              loss="squared" if loss is losses.SQUARED_ERROR else loss)
        objective = _Objective(model, X, self._targets(Y), weights, alpha)
        theta = np.concatenate([np.ravel(a) for a in list(self.coefs_) + list(self.intercepts_)]).astype(np.float64)
        callback = None
        if self.verbose:
            def callback(intermediate_result):
                objective.iterations += 1
                print(f"Iteration {objective.iterations}, loss = {float(intermediate_result.fun):.8f}")
        with limit_threads(self.threads), overflow_quiet():
            result = scipy.optimize.minimize(objective, theta, method="L-BFGS-B", jac=True, callback=callback,
                                             options={"maxfun": int(self.max_fun), "maxiter": int(self.max_iter),
                                                      "gtol": float(self.tol)})
            W, b = objective.unpack(result.x)
            value = float(result.fun)
            if loss is losses.SQUARED_ERROR and self.n_outputs_ > 1:  # report scikit-learn's units
                value = objective.value(result.x, losses.SQUARED_ERROR)
        self.n_iter_ = min(int(result.nit), int(self.max_iter))
        self.loss_ = value
        self.coefs_ = [_host(w) for w in W]
        self.intercepts_ = [_host(c) for c in b]
        model.W, model.b = W, b
        self._keep(model)
        if result.status != 0:
            message = result.message.decode() if isinstance(result.message, bytes) else str(result.message)
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status={result.status}): "
                          f"{message}; increase max_iter or max_fun, or scale the data (e.g. StandardScaler)",
                          ConvergenceWarning, stacklevel=4)


class _Objective:
    """L-BFGS's ``theta -> (value, gradient)``: xpnet's full-batch gradient pass plus the L2 term,
    scikit-learn's objective ``(sum_n w_n loss_n + alpha/2 ||W||^2) / n`` (weights averaging 1)."""

    def __init__(self, model: MLP, X, y, weights, alpha: float):
        self.model, self.alpha, self.iterations = model, alpha, 0
        self.X = model.as_inputs(X)
        T = model.as_targets(y, self.X.shape[0])
        self.spec = model.spec
        if weights is not None:
            xp = model.xp
            w = model.backend.asarray(weights, model.dtype)
            T = xp.concat([T, xp.reshape(w, (T.shape[0], 1))], axis=1)
            self.spec = dataclasses.replace(model.spec, loss=losses.weighted(model.spec.loss))
        self.T, self.n = T, self.X.shape[0]
        self.pass_ = choose(get_ops(model.backend), self.spec, model.dtype_name, self.n, model.kernels)
        sizes = model.layer_sizes
        self.shapes = [(a, c) for a, c in zip(sizes[:-1], sizes[1:])] + [(c,) for c in sizes[1:]]
        self.n_weights = sum(a * c for a, c in zip(sizes[:-1], sizes[1:]))

    def unpack(self, theta):
        """Backend arrays ``(W, b)`` from the flat float64 vector."""
        backend, dtype = self.model.backend, self.model.dtype
        arrays, start = [], 0
        for shape in self.shapes:
            size = math.prod(shape)
            arrays.append(backend.asarray(np.ascontiguousarray(theta[start:start + size].reshape(shape)), dtype))
            start += size
        k = len(self.shapes) // 2
        return arrays[:k], arrays[k:]

    def __call__(self, theta):
        W, b = self.unpack(theta)
        grads = self.pass_(W, b, self.X, self.T, None, True)
        weights = theta[:self.n_weights]
        value = (float(grads.data_loss) + 0.5 * self.alpha * float(weights @ weights)) / self.n
        flat = np.concatenate([np.ravel(to_numpy(g)) for g in list(grads.dW) + list(grads.db)]).astype(np.float64)
        flat[:self.n_weights] += self.alpha * weights
        return value, flat / self.n

    def value(self, theta, loss) -> float:
        """The objective at ``theta`` with ``loss`` in place of the model's (for reporting)."""
        W, b = self.unpack(theta)
        spec = dataclasses.replace(self.spec, loss=losses.weighted(loss) if self.spec is not self.model.spec
                                   else loss)
        Z = _logits(self.model, W, b, self.X)
        Y = output_forward(self.model.xp, spec.output, Z, spec.stable)
        weights = theta[:self.n_weights]
        return (float(spec.loss.total(self.model.xp, Z, Y, self.T, spec.stable))
                + 0.5 * self.alpha * float(weights @ weights)) / self.n


def _logits(model: MLP, W, b, X):
    saved = model.W, model.b
    model.W, model.b = W, b
    try:
        return model.logits(X)
    finally:
        model.W, model.b = saved


def _forward(model: MLP, X):
    """The network's outputs for a validated 2-D ``X``, NumPy or already on the model's backend (inference)."""
    if isinstance(X, np.ndarray):
        X = model.backend.asarray(X, model.dtype)
    return output_forward(model.xp, model.spec.output, model.logits(X), model.spec.stable)


def _normalized(sw, alpha: float):
    """Weights rescaled to average 1, and ``alpha`` rescaled alike: then a full batch's objective is
    scikit-learn's ``(sum w loss + alpha/2 ||W||^2) / sum w`` exactly. None when unweighted."""
    if sw is None:
        return None, alpha
    total = float(np.sum(sw, dtype=np.float64))
    if total <= 0:
        raise XpnetValueError("the training rows' sample weights are all zero; give some rows a weight > 0")
    factor = sw.shape[0] / total
    return sw * factor, alpha * factor


def _sample_weight(sample_weight, n: int):
    """Validated weights (n,) as float64, or None when absent or all equal (equal weights change nothing)."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Real):
        sw = np.full(n, float(sample_weight))
    else:
        sw = check_array(sample_weight, ensure_2d=False, dtype=np.float64, input_name="sample_weight")
        if sw.ndim != 1 or sw.shape[0] != n:
            raise XpnetValueError(f"sample_weight.shape == {sw.shape}, expected ({n},): one weight per sample")
    if np.any(sw < 0):
        raise XpnetValueError("sample_weight holds negative values; weights must be >= 0")
    if not np.any(sw > 0):
        raise XpnetValueError("Sample weights must contain at least one non-zero number.")
    return None if np.all(sw == sw[0]) else sw


def _nonfinite_message(X, rate) -> str:
    """scikit-learn's message, with the likely cause: unscaled inputs, else the learning rate."""
    largest = float(np.max(np.abs(X))) if X.size else 0.0
    cause = (f"|X| reaches {largest:.3g}: scale the inputs (e.g. sklearn.preprocessing.StandardScaler)"
             if largest > 1e3 else f"or lower learning_rate_init={rate!r}")
    return ("Solver produced non-finite parameter weights. The input data may contain large values and need to "
            f"be preprocessed ({cause}).")


class _Printer:
    """``verbose``: scikit-learn's lines, printed as epochs finish (the estimators' verbose contract)."""

    def __init__(self, estimator):
        self.estimator, self.done, self.scale = estimator, 0, 1.0

    def _stall(self) -> str:
        est = self.estimator
        what = "Validation score" if est.early_stopping else "Training loss"
        return f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} consecutive epochs."

    def __call__(self, event) -> None:
        result = event.result
        while self.done < len(result.epoch_losses):
            print(f"Iteration {self.done + 1}, loss = {result.epoch_losses[self.done]:.8f}")
            if self.estimator.early_stopping and self.done < len(result.validation_scores):
                print(f"Validation score: {result.validation_scores[self.done]:f}")
            self.done += 1
        scale = float(to_numpy(event.state["rate_scale"])) if "rate_scale" in event.state else 1.0
        if scale != self.scale:
            self.scale = scale
            print(f"{self._stall()} Setting learning rate to {self.estimator.learning_rate_init * scale:f}")

    def finish(self, result) -> None:
        if result.stopped_early:
            small = self.estimator.solver == "sgd" and self.estimator.learning_rate == "adaptive"
            print(f"{self._stall()}{' Learning rate too small.' if small else ''} Stopping.")


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
    backend : str, default "numpy"
        xpnet backend for training and prediction (``"torch"``, ``"cupy"``, ``"array_api_strict"``...).
    dtype : {None, "float32", "float64"}, default None
        Training and prediction dtype; None: float32 for float32 input, else float64.
    threads : int or None, default None
        CPU threads for xpnet and BLAS during fit and predict (None: every core).

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
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
    coefs_, intercepts_ : list of ndarray
        Weights (n_in, n_out) and biases (n_out,) per layer, NumPy, in the training dtype.
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
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = True
        return tags

    def _out_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        X = X.astype(self._np_dtype(X), copy=False)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise XpnetValueError(
                        "warm_start can only be used where `y` has the same classes as in the previous call to fit. "
                        f"Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise XpnetValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                      f"'y' has {classes}.")
        return X, self._label_binarizer.transform(y).astype(bool)  # bool: stratified splits name classes True/False

    def _decode_truth(self, Y):
        return self._label_binarizer.inverse_transform(Y)

    def _decode(self, out):
        return self._label_binarizer.inverse_transform(out[:, 0] if out.shape[1] == 1 else out)

    def _score_outputs(self, out, truth, sample_weight):
        return accuracy_score(truth, self._decode(out), sample_weight=sample_weight)

    def fit(self, X, y, sample_weight=None):
        """Fit on ``X`` (n_samples, n_features), dense or sparse, and labels ``y`` (n_samples,) or a
        multilabel indicator matrix; ``sample_weight`` (n_samples,) weighs each row's loss. Returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(_BaseMLP._stochastic)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``(X, y)`` from the current state (optimizer included); ``classes`` (every label
        of the whole data) is required on the first call. Returns self."""
        if not hasattr(self, "classes_"):
            if classes is None:
                raise XpnetValueError("classes must be passed on the first call to partial_fit.")
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if type_of_target(y).startswith("multilabel") else classes)
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise XpnetValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, "
                                  f"was: {self.classes_!r}")
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes) in the order of ``classes_`` (multilabel: one
        independent probability per label)."""
        out = self._outputs(self._validated_for_predict(X))
        if self.n_outputs_ == 1:
            return np.hstack([1 - out, out])
        return out

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predicted labels (n_samples,), or the indicator matrix for multilabel targets."""
        return self._decode(self._outputs(self._validated_for_predict(X)))


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
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, backend="numpy", dtype=None,
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
        tags.input_tags.sparse = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _check_params(self) -> None:
        check_choice("loss", self.loss, ("squared_error", "poisson"))
        super()._check_params()

    def _out_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), reset=reset)
        dtype = self._np_dtype(X)
        X = X.astype(dtype, copy=False)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(np.asarray(y) < 0):
            raise XpnetValueError("loss='poisson' needs y >= 0 (counts or rates); use loss='squared_error' otherwise")
        Y = np.asarray(y, dtype=dtype)
        return X, Y.reshape(-1, 1) if Y.ndim == 1 else Y

    def _decode_truth(self, Y):
        return Y[:, 0] if Y.shape[1] == 1 else Y

    def _score_outputs(self, out, truth, sample_weight):
        return r2_score(truth, out[:, 0] if out.shape[1] == 1 else out, sample_weight=sample_weight)

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
        out = self._outputs(self._validated_for_predict(X))
        return out[:, 0] if out.shape[1] == 1 else out
