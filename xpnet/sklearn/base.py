"""What both estimators share: parameters, where they train, the network, fit, prediction, moving, pickling."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._array_api import get_namespace
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import memory
from ..backend import Backend, get_backend, itemsize
from ..core import losses
from ..core.init import glorot_uniform_with_biases
from ..engine.threads import limit_threads
from ..errors import XpnetError, XpnetValueError, check_choice
from ..mlp import MLP
from . import lbfgs, stochastic
from .arrays import (
    all_finite,
    backend_of,
    check_same_place,
    current,
    deliver,
    dispatching,
    dtype_name,
    is_device_array,
    is_numeric,
    move,
    named,
    to_host,
)
from .messages import nonfinite_message
from .params import ACTIVATIONS, check_params, hidden_sizes
from .stochastic import OptimizerState, outputs
from .weights import checked

OUTPUTS = {"softmax": "softmax", "logistic": "sigmoid", "identity": "identity", "exp": "exp"}  # scikit-learn: xpnet
PREDICT_CHUNK = 1 << 24  # sparse rows are densified for prediction in chunks of about this many entries


class _BaseMLP(BaseEstimator):
    """Parameters, placement, the network and the solvers shared by both estimators."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, backend=None, dtype=None, threads=None):
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.array_api_support = True
        return tags

    # fitted attributes of the stochastic solvers (declared for type checkers; set by fit)
    loss_curve_: list
    validation_scores_: list | None
    best_validation_score_: float | None
    best_loss_: float | None

    # -- where -----------------------------------------------------------------------------------
    def _backend_parameter(self) -> Backend | None:
        if self.backend is None:
            return None
        return named(self.backend) if isinstance(self.backend, str) else get_backend(self.backend)

    def _training_backend(self, X) -> Backend:
        """``backend``; else, under array_api_dispatch, the input's namespace and device; else NumPy."""
        chosen = self._backend_parameter()
        if chosen is not None:
            return chosen
        return backend_of(X) if dispatching() and is_device_array(X) else named("numpy")

    def _model_backend(self) -> Backend:
        """Where prediction runs: ``backend``, else where the fitted weights are."""
        return self._backend_parameter() or backend_of(self.coefs_[0])

    def _dtype_name(self, X) -> str:
        """The training dtype: ``dtype``, else float32 for float32 input and float64 otherwise."""
        return self.dtype or ("float32" if dtype_name(X) == "float32" else "float64")

    # -- the network ---------------------------------------------------------------------------
    def _network(self, coefs, intercepts, backend: Backend, loss=None) -> MLP:
        """An xpnet MLP on ``backend`` holding ``coefs``/``intercepts`` (never a random draw)."""
        dtype = dtype_name(coefs[0])
        coefs, intercepts = [move(a, backend, dtype) for a in coefs], [move(a, backend, dtype) for a in intercepts]
        sizes = [coefs[0].shape[0]] + [W.shape[1] for W in coefs]
        model = MLP(sizes, activation=ACTIVATIONS[self.activation], output=OUTPUTS[self.out_activation_],
                    loss=None if loss in (None, losses.SQUARED_ERROR) else loss, bias=True, dtype=dtype,
                    backend=backend, weights=(coefs, intercepts))
        if loss is losses.SQUARED_ERROR:  # scikit-learn's units; not a named loss (see xpnet.losses)
            model.spec = dataclasses.replace(model.spec, loss=losses.SQUARED_ERROR)
        model.W, model.b = coefs, intercepts  # the arrays themselves: editing coefs_ in place is seen
        return model

    def _training_loss(self):
        if self.out_activation_ == "identity":
            return losses.SQUARED_ERROR
        return {"softmax": "cross_entropy", "logistic": "binary_cross_entropy", "exp": "poisson"}[self.out_activation_]

    def _predictor(self) -> MLP:
        """The fitted network, rebuilt only when ``coefs_``/``intercepts_`` or ``backend`` changed (or after
        unpickling)."""
        arrays = list(self.coefs_) + list(self.intercepts_)
        backend = self._model_backend()
        model, source = self.__dict__.get("_model"), self.__dict__.get("_model_source")
        if (model is None or source is None or len(source) != len(arrays) or any(a is not b for a, b in
                                                                                  zip(source, arrays))
                or model.backend.qualified_name() != backend.qualified_name()):
            model = self._network(list(self.coefs_), list(self.intercepts_), backend)
            self._keep(model)
        return model

    def _keep(self, model: MLP) -> None:
        self._model, self._model_source = model, list(self.coefs_) + list(self.intercepts_)

    def _fitted(self, model: MLP) -> None:
        """The trained ``model``'s weights as ``coefs_``/``intercepts_``: its own arrays under array_api_dispatch
        (they stay where training ran), NumPy otherwise (scikit-learn's fitted attributes)."""
        if dispatching():
            self.coefs_, self.intercepts_ = list(model.W), list(model.b)
        else:
            self.coefs_, self.intercepts_ = [to_host(W) for W in model.W], [to_host(b) for b in model.b]
        self._keep(model)

    # -- fit -----------------------------------------------------------------------------------
    def _check_params(self) -> None:
        """The estimator's own parameters beyond the shared ones (the regressor's ``loss``)."""

    def _fit(self, X, y, sample_weight=None, incremental=False):
        self._check_params()
        check_params(self)
        first = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        backend = self._training_backend(X)
        # targets and weights are n numbers: label encoding, the split and the checks run on the host
        X, Y = self._validate_input(X, to_host(y) if is_device_array(y) else y, incremental, reset=first)
        sw = checked(sample_weight, X.shape[0])
        dtype = self._dtype_name(X)
        X = move(X.toarray() if sparse.issparse(X) else X, backend, dtype)  # xpnet trains on dense arrays
        units = [X.shape[1], *hidden_sizes(self), Y.shape[1]]
        rng = check_random_state(self.random_state)
        if first:
            self._initialize(Y, units, dtype, rng, backend)
        else:
            self._check_continuation(units, dtype)
        with current(backend):
            if self.solver == "lbfgs":
                lbfgs.fit(self, X, Y, sw, backend)
            else:
                stochastic.fit(self, X, Y, sw, rng, incremental, backend)
        if not all_finite(list(self.coefs_) + list(self.intercepts_)):
            raise XpnetValueError(nonfinite_message(X, self.learning_rate_init))
        self._place_labels()
        return self

    def _initialize(self, Y, units, dtype: str, rng, backend: Backend) -> None:
        """Fresh fitted state: scikit-learn's attributes and its initial weights (the same draws)."""
        self.__dict__.pop("_optimizer", None)
        self.n_iter_, self.t_ = 0, 0
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = len(units)
        self.out_activation_ = self._out_activation()
        n_params = sum((a + 1) * c for a, c in zip(units[:-1], units[1:]))  # drawn in float64, kept in dtype
        memory.require(n_params * (8 + itemsize(dtype)), f"the weights of layers {units}", backend,
                       fix="use narrower hidden_layer_sizes")  # before the draw, not NumPy's MemoryError in it
        W, b = glorot_uniform_with_biases(rng, units, 2.0 if self.activation == "logistic" else 6.0)
        self.coefs_ = [w.astype(dtype) for w in W]
        self.intercepts_ = [c.astype(dtype) for c in b]
        if self.solver != "lbfgs":
            stochastic.start_curves(self)

    def _check_continuation(self, units, dtype: str) -> None:
        have = [self.coefs_[0].shape[0]] + [W.shape[1] for W in self.coefs_]
        if have != units:
            raise XpnetValueError(f"the fitted network has layers {have}, this data and hidden_layer_sizes need "
                                  f"{units}; fit again without warm_start (or partial_fit on matching data)")
        if dtype_name(self.coefs_[0]) != dtype:
            self.coefs_ = [move(W, backend_of(W), dtype) for W in self.coefs_]
            self.intercepts_ = [move(b, backend_of(b), dtype) for b in self.intercepts_]

    def _targets(self, Y):
        """What :func:`xpnet.fit` takes for the binarized/2-D host targets ``Y``: class indices for softmax."""
        return np.argmax(Y, axis=1) if self.out_activation_ == "softmax" else Y.astype(np.float64, copy=False)

    def _place_labels(self) -> None:
        """Labels (the classifier's ``classes_``) next to the weights; nothing for a regressor."""

    # -- prediction ------------------------------------------------------------------------------
    def _predicted(self, X, method: str, finish=None):
        """``finish(outputs)`` (default: the outputs themselves) of the network for ``X``, computed on the
        model's backend with its device current; delivered in the input's namespace and on its device
        under array_api_dispatch, else as NumPy (labels that are not numbers are NumPy anyway)."""
        check_is_fitted(self, "coefs_")
        check_same_place(self, X, method)
        xp, _ = get_namespace(X)  # scikit-learn's: NumPy's without dispatch
        valid = validate_data(self, X, reset=False, accept_sparse=["csr", "csc"], dtype=(xp.float64, xp.float32))
        model = self._predictor()
        with limit_threads(self.threads), np.errstate(over="ignore"), current(model.backend):
            out = self._outputs(model, valid)
            result = out if finish is None else finish(out)
            return deliver(result, X) if is_numeric(result) else result

    @staticmethod
    def _outputs(model: MLP, X):
        """The network's outputs (n_samples, n_outputs) for validated ``X``, on the model's backend."""
        if not sparse.issparse(X):
            return outputs(model, move(X, model.backend, model.dtype_name))
        rows = max(1, PREDICT_CHUNK // max(1, X.shape[1]))
        return model.xp.concat([outputs(model, model.backend.asarray(X[a:a + rows].toarray(), model.dtype))
                                for a in range(0, X.shape[0], rows)], axis=0)

    # -- moving and pickling ---------------------------------------------------------------------
    def to_backend(self, backend, dtype: str | None = None):
        """Move the estimator to ``backend``, in place; returns it.

        Parameters
        ----------
        backend : str or xpnet.Backend
            ``"numpy"``, ``"torch:cuda"``, ``"cupy:1"``, ``"array_api_strict:device1"``...
        dtype : {None, "float32", "float64"}
            The weights' dtype there (default: their own).

        The fitted weights (``coefs_``, ``intercepts_``), numeric ``classes_`` and the
        optimizer's state are copied to the new namespace and device (the network through
        :meth:`xpnet.MLP.to_backend`), and ``backend`` becomes the estimator's parameter, so
        later fits and predictions run there. A model trained on a GPU moves to a laptop with
        ``est.to_backend("numpy")``.
        """
        target = get_backend(backend)
        if dtype is not None:
            check_choice("dtype", dtype, ("float32", "float64"))
            target.dtype(dtype)  # a clear error when the device lacks it
        self.backend = backend if isinstance(backend, str) else target.qualified_name()
        if not hasattr(self, "coefs_"):
            return self
        model = self.__dict__.get("_model")
        current = model is not None and all(a is b for a, b in zip(self._model_source,
                                                                     list(self.coefs_) + list(self.intercepts_)))
        if model is not None and current:  # the network moves itself; its arrays become the fitted ones
            model.to_backend(target, dtype)
            self.coefs_, self.intercepts_ = list(model.W), list(model.b)
            self._keep(model)
        self.__dict__.update(_map_fitted(self.__dict__, lambda a: move(a, target, dtype),
                                         labels=lambda a: move(a, target), weights=not current))
        return self

    def __getstate__(self):
        """Pickled with NumPy arrays and where they lived by name: a model trained on a GPU unpickles
        where its backend is absent (its arrays stay NumPy there)."""
        state = dict(super().__getstate__())
        state.pop("_model", None)  # rebuilt from coefs_ on first use
        state.pop("_model_source", None)
        coefs = state.get("coefs_")
        if coefs and is_device_array(coefs[0]):
            state["_fitted_on"] = backend_of(coefs[0]).qualified_name()
        return _map_fitted(state, to_host)

    def __setstate__(self, state):
        place = state.pop("_fitted_on", None)
        super().__setstate__(state)
        if place is None:
            return
        try:
            target = named(place)
        except (XpnetError, ImportError) as exc:  # as xpnet.MLP's pickles: NumPy, and a warning saying so
            warnings.warn(f"this {type(self).__name__} was pickled on the {place!r} backend, which is not available "
                          f"here ({' '.join(str(exc).split())}); its fitted arrays were restored onto NumPy instead "
                          "(move them with est.to_backend(name))", UserWarning, stacklevel=2)
            return
        self.__dict__.update(_map_fitted(self.__dict__, lambda a: move(a, target)))

    def __sklearn_array_api_convert__(self, converter):
        """scikit-learn's ``move_estimator_to``: a copy whose fitted arrays went through ``converter``."""
        new = type(self).__new__(type(self))
        kept = {k: v for k, v in self.__dict__.items() if k not in ("_model", "_model_source")}
        new.__dict__.update(_map_fitted(kept, converter))
        return new


def _map_fitted(attrs: dict, fn, labels=None, weights: bool = True) -> dict:
    """``attrs`` (an estimator's ``__dict__``) with ``fn`` applied to every fitted array: the weights
    (unless ``weights`` is False), the optimizer's arrays and, with ``labels`` (default ``fn``),
    numeric ``classes_``."""
    out = dict(attrs)
    for name in ("coefs_", "intercepts_") if weights else ():
        if name in out:
            out[name] = [fn(a) for a in out[name]]
    if "classes_" in out and is_numeric(out["classes_"]):
        out["classes_"] = (labels or fn)(out["classes_"])
    if isinstance(out.get("_optimizer"), OptimizerState):
        out["_optimizer"] = out["_optimizer"].moved(fn)
    return out
