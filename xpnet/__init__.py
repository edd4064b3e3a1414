"""xpnet: the classic from-scratch neural-network tutorials as real software.

One MLP trainer, written once against the Python array API standard, on NumPy, CuPy,
torch or array-api-strict.

    >>> import xpnet
    >>> X, y = xpnet.datasets.load("moons", n_samples=500, noise=0.2, seed=0)
    >>> model = xpnet.MLP([2, 32, 2], activation="tanh", backend="numpy")
    >>> result = model.fit(X, y, epochs=1000, learning_rate=0.5)
    >>> xpnet.to_numpy(model.predict(X)).shape
    (500,)
"""

__version__ = "0.1.0"

from . import datasets
from .backend import Backend, get_backend, limit_threads, to_numpy
from .errors import BackendUnavailableError, XpnetError, XpnetTypeError, XpnetValueError
from .mlp import MLP
from .train import FitResult, TrainConfig, TrainEvent, fit

__all__ = [
    "MLP",
    "Backend",
    "BackendUnavailableError",
    "FitResult",
    "TrainConfig",
    "TrainEvent",
    "XpnetError",
    "XpnetTypeError",
    "XpnetValueError",
    "__version__",
    "datasets",
    "fit",
    "get_backend",
    "limit_threads",
    "to_numpy",
]
