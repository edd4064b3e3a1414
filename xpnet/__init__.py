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

import sys as _sys

from . import distributed
from .backend import Backend, get_backend, to_numpy
from .core import activations, layers, losses
from .data import datasets
from .engine.threads import limit_threads
from .errors import BackendUnavailableError, XpnetError, XpnetNote, XpnetTypeError, XpnetValueError, XpnetWarning
from .io import checkpoint
from .mlp import MLP
from .training import optim
from .training.config import TrainConfig
from .training.loop import FitResult, TrainEvent, fit

# The public modules keep the short names they are documented by (``xpnet.activations``,
# ``from xpnet.checkpoint import load``...) wherever they live in the layers.
for _module in (activations, checkpoint, datasets, distributed, layers, losses, optim):
    _sys.modules[f"{__name__}.{_module.__name__.rpartition('.')[2]}"] = _module
del _module

__all__ = [
    "MLP",
    "Backend",
    "BackendUnavailableError",
    "FitResult",
    "TrainConfig",
    "TrainEvent",
    "XpnetError",
    "XpnetNote",
    "XpnetTypeError",
    "XpnetValueError",
    "XpnetWarning",
    "__version__",
    "activations",
    "checkpoint",
    "datasets",
    "distributed",
    "fit",
    "get_backend",
    "layers",
    "limit_threads",
    "losses",
    "optim",
    "to_numpy",
]
