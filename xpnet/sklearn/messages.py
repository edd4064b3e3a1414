"""What the estimators say: ``verbose`` lines, stall and convergence messages, the non-finite error.

scikit-learn's estimators print under ``verbose`` (its contract: the library itself never
prints otherwise); the lines and warnings here are scikit-learn's, word for word where a
user may match on them.
"""

from __future__ import annotations

import warnings

import array_api_compat
from sklearn.exceptions import ConvergenceWarning

from .arrays import floats


def nonfinite_message(X, rate) -> str:
    """scikit-learn's message, with the likely cause: unscaled inputs, else the learning rate."""
    xp = array_api_compat.array_namespace(X)
    largest = float(xp.max(xp.abs(X))) if X.shape[0] else 0.0
    cause = (f"|X| reaches {largest:.3g}: scale the inputs (e.g. sklearn.preprocessing.StandardScaler)"
             if largest > 1e3 else f"or lower learning_rate_init={rate!r}")
    return ("Solver produced non-finite parameter weights. The input data may contain large values and need to "
            f"be preprocessed ({cause}).")


def stall(est) -> str:
    """The stall rule's sentence (scikit-learn's)."""
    what = "Validation score" if est.early_stopping else "Training loss"
    return f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} consecutive epochs."


class Printer:
    """``verbose``: scikit-learn's lines, printed as epochs finish (a callback of :func:`xpnet.fit`).

    Called at every logging point, which ``verbose`` makes every epoch; it converts that
    epoch's loss (and validation score) to print them, nothing when ``verbose`` is off.
    """

    def __init__(self, estimator):
        self.estimator, self.done, self.scale = estimator, 0, 1.0

    def __call__(self, event) -> None:
        result, est = event.result, self.estimator
        losses = floats(result.epoch_losses[self.done:])
        for loss in losses:
            print(f"Iteration {self.done + 1}, loss = {loss:.8f}")
            if est.early_stopping and self.done < len(result.validation_scores):
                print(f"Validation score: {float(result.validation_scores[self.done]):f}")
            self.done += 1
        scale = float(event.state["rate_scale"]) if "rate_scale" in event.state else 1.0  # a host number
        if scale != self.scale:
            self.scale = scale
            print(f"{stall(est)} Setting learning rate to {est.learning_rate_init * scale:f}")

    def finish(self, result) -> None:
        if result.stopped_early:
            small = self.estimator.solver == "sgd" and self.estimator.learning_rate == "adaptive"
            print(f"{stall(self.estimator)}{' Learning rate too small.' if small else ''} Stopping.")


def max_iter_reached(est) -> None:
    """scikit-learn's warning when sgd/adam used every epoch of ``max_iter``."""
    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached and the optimization "
                  "hasn't converged yet.", ConvergenceWarning, stacklevel=6)


def lbfgs_failed(n_iter: int, result) -> None:
    """The warning of an L-BFGS run that did not converge, with SciPy's reason and the fix."""
    message = result.message.decode() if isinstance(result.message, bytes) else str(result.message)
    warnings.warn(f"lbfgs failed to converge after {n_iter} iteration(s) (status={result.status}): {message}; "
                  "increase max_iter or max_fun, or scale the data (e.g. StandardScaler)", ConvergenceWarning,
                  stacklevel=5)
