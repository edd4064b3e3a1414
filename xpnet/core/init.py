"""Weight initialisation schemes, drawn on the HOST with NumPy.

Drawing on the host and then copying to the device gives every backend the very same
starting weights. The tutorial schemes use NumPy's legacy ``RandomState`` seeded like the
tutorials' ``np.random.seed(...)`` and draw the layers in order from one stream, so they
produce the tutorials' exact numbers:

==============  ==========================================  =========================
scheme          W (n_in, n_out)                             source
==============  ==========================================  =========================
``trask``       ``2 * U(0, 1) - 1``                         Trask, "11 lines"
``cavar``       ``U(0, 1) * sqrt(2 / n_in)``                Cavar's notebook
``wildml``      ``N(0, 1) / sqrt(n_in)``                    Britz (WildML)
``he``          ``N(0, 1) * sqrt(2 / n_in)``                He et al. 2015
``xavier``      ``U(-a, a)``, ``a = sqrt(6 / (n_in + n_out))``  Glorot & Bengio 2010
==============  ==========================================  =========================

``he`` and ``xavier`` use ``numpy.random.default_rng(seed)``. Biases start at zero.
``auto`` picks ``he`` for ReLU networks and ``xavier`` otherwise.

Both drawing functions first check that the weights fit in the host's memory
(:func:`require_host_memory`), so a layer of 10**9 units ends in xpnet's memory error, not
in NumPy's MemoryError half way through drawing.
"""

from __future__ import annotations

import numpy as np

from .. import memory
from ..errors import Interval, check_choice

SCHEMES = ("auto", "trask", "cavar", "wildml", "he", "xavier")


def _trask(rs, n_in, n_out):
    return 2 * rs.random_sample((n_in, n_out)) - 1


def _cavar(rs, n_in, n_out):
    return rs.random_sample((n_in, n_out)) * np.sqrt(2.0 / n_in)


def _wildml(rs, n_in, n_out):
    return rs.randn(n_in, n_out) / np.sqrt(n_in)


def _he(rng, n_in, n_out):
    return rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)


def _xavier(rng, n_in, n_out):
    a = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-a, a, size=(n_in, n_out))


_DRAW = {"trask": _trask, "cavar": _cavar, "wildml": _wildml, "he": _he, "xavier": _xavier}
_LEGACY = ("trask", "cavar", "wildml")


def initial_weights(scheme: str, layer_sizes, seed: int, activation: str = "tanh") -> list[np.ndarray]:
    """Float64 host weight matrices ``W[i]`` of shape ``(layer_sizes[i], layer_sizes[i+1])``."""
    check_choice("init", scheme, SCHEMES)
    require_host_memory(layer_sizes)
    if scheme == "auto":
        scheme = "he" if activation == "relu" else "xavier"
    rng = np.random.RandomState(seed) if scheme in _LEGACY else np.random.default_rng(seed)
    draw = _DRAW[scheme]
    shapes = zip(layer_sizes[:-1], layer_sizes[1:])
    return [np.asarray(draw(rng, n_in, n_out), dtype=np.float64) for n_in, n_out in shapes]


def glorot_uniform_with_biases(random_state: np.random.RandomState, layer_sizes, factor: float = 6.0):
    """scikit-learn's MLP initialisation: ``(W, b)`` lists of float64 host arrays.

    Layer by layer, ``W ~ U(-a, a)`` of shape (n_in, n_out) then ``b ~ U(-a, a)`` of shape
    (n_out,), ``a = sqrt(factor / (n_in + n_out))`` (scikit-learn: ``factor`` 2 for a logistic
    hidden activation, else 6), all drawn in that order from ``random_state`` (a legacy
    ``RandomState``), so the same state gives scikit-learn's own starting weights.
    """
    require_host_memory(layer_sizes)
    W, b = [], []
    for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        bound = np.sqrt(factor / (n_in + n_out))
        W.append(np.asarray(random_state.uniform(-bound, bound, (n_in, n_out)), dtype=np.float64))
        b.append(np.asarray(random_state.uniform(-bound, bound, n_out), dtype=np.float64))
    return W, b


def require_host_memory(layer_sizes) -> None:
    """Raise :class:`xpnet.memory.XpnetMemoryError` unless the float64 weights of ``layer_sizes``
    (with their biases, and one temporary of the largest layer while drawing) fit in host memory."""
    sizes = [int(s) for s in layer_sizes]
    layers = [(a + 1) * b for a, b in zip(sizes[:-1], sizes[1:])]
    memory.require(8 * (sum(layers) + max(layers, default=0)), f"the initial weights of layers {sizes}",
                   fix="use narrower hidden layers")


SEEDS = Interval(0, 2**32 - 1, integer=True)  # NumPy's legacy RandomState (the tutorials' inits) takes these
