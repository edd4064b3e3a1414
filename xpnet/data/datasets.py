"""Built-in datasets, generated with NumPy only (no scikit-learn at run time).

Each generator returns ``(X, y)``: ``X`` float64 of shape ``(n_samples, n_features)`` and
``y`` int64 class labels of shape ``(n_samples,)`` (the tutorial tables return ``y`` as a
float64 column, as the tutorials do).

``moons`` draws exactly the numbers of scikit-learn's ``make_moons`` for the same
``seed`` (``random_state``) -- and so, with ``seed=0``, WildML's data after
``np.random.seed(0)``.

    >>> from xpnet import datasets
    >>> X, y = datasets.load("moons", n_samples=200, noise=0.2, seed=0)
    >>> X.shape, y.shape
    ((200, 2), (200,))
"""

from __future__ import annotations

import numpy as np

from .. import memory
from ..errors import XpnetValueError, check_choice, check_number, check_positive

# Trask's and Cavar's two 4x3 tables: the third column is a constant 1 (a bias input).
TABLE_X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=np.float64)
FIRST_COLUMN_Y = np.array([[0, 0, 1, 1]], dtype=np.float64).T  # output = first input column
XOR_Y = np.array([[0, 1, 1, 0]], dtype=np.float64).T  # output = column 1 XOR column 2


def first_column():
    """Trask's part-1 table: the output copies the first input column. ``y`` is (4, 1)."""
    return TABLE_X.copy(), FIRST_COLUMN_Y.copy()


def xor():
    """Trask's part-2 table: the output is XOR of the first two columns. ``y`` is (4, 1)."""
    return TABLE_X.copy(), XOR_Y.copy()


def moons(n_samples: int = 200, noise: float = 0.2, seed: int = 0):
    """Two interleaving half circles; the same numbers as ``sklearn.datasets.make_moons``."""
    n_out = n_samples // 2
    n_in = n_samples - n_out
    rs = np.random.RandomState(seed)
    outer = np.linspace(0, np.pi, n_out)
    inner = np.linspace(0, np.pi, n_in)
    X = np.empty((n_samples, 2))
    X[:n_out, 0] = np.cos(outer)
    X[:n_out, 1] = np.sin(outer)
    X[n_out:, 0] = 1 - np.cos(inner)
    X[n_out:, 1] = 1 - np.sin(inner) - 0.5
    y = np.repeat(np.arange(2, dtype=np.int64), [n_out, n_in])
    order = np.arange(n_samples)
    rs.shuffle(order)
    X, y = X[order], y[order]
    X += rs.normal(scale=noise, size=X.shape)
    return X, y


def circles(n_samples: int = 200, noise: float = 0.1, seed: int = 0, factor: float = 0.5):
    """A small circle (class 1) inside a large one (class 0), with Gaussian noise."""
    n_out = n_samples // 2
    n_in = n_samples - n_out
    rng = np.random.default_rng(seed)
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.concatenate([np.c_[np.cos(t_out), np.sin(t_out)], factor * np.c_[np.cos(t_in), np.sin(t_in)]])
    y = np.repeat(np.arange(2, dtype=np.int64), [n_out, n_in])
    return _shuffle_with_noise(rng, X, y, noise)


def spirals(n_samples: int = 300, noise: float = 0.2, seed: int = 0, classes: int = 3):
    """``classes`` interleaved spiral arms (CS231n's spiral data), about equal in size."""
    check_positive("classes", classes, integer=True)
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples, dtype=np.int64) % classes
    r = np.concatenate([np.linspace(0.0, 1.0, int(np.sum(y == k))) for k in range(classes)])
    y = np.sort(y)
    theta = y * (2 * np.pi / classes) + r * 4.0 + rng.normal(scale=noise, size=n_samples)
    X = np.c_[r * np.sin(theta), r * np.cos(theta)]
    return _shuffle_with_noise(rng, X, y, 0.0)


def blobs(n_samples: int = 300, noise: float = 1.0, seed: int = 0, classes: int = 3, n_features: int = 2):
    """Isotropic Gaussian blobs (standard deviation ``noise``) around random centres."""
    check_positive("classes", classes, integer=True)
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, size=(classes, n_features))
    y = np.arange(n_samples, dtype=np.int64) % classes
    X = centres[y]
    return _shuffle_with_noise(rng, X, y, noise)


def _shuffle_with_noise(rng, X, y, noise):
    order = rng.permutation(len(y))
    X = X[order] + rng.normal(scale=noise, size=X.shape) if noise else X[order]
    return np.ascontiguousarray(X, dtype=np.float64), y[order]


GENERATED = {"moons": moons, "circles": circles, "spirals": spirals, "blobs": blobs}
TABLES = {"first-column": first_column, "xor": xor}
NAMES = tuple(GENERATED) + tuple(TABLES)


def generation_bytes(n_samples: int, n_features: int = 2) -> int:
    """Bytes a generator holds at its peak for ``n_samples`` rows: the float64 inputs about three
    times over (points, noise, the shuffled copy) and a few int64 / float64 columns (labels,
    angles, the permutation)."""
    return 8 * n_samples * (3 * n_features + 4)


def load(name: str, n_samples: int | None = None, noise: float | None = None, seed: int = 0, **options):
    """Generate the dataset called ``name`` (see :data:`NAMES`); ``None`` keeps each default."""
    check_choice("dataset", name, NAMES)
    if name in TABLES:
        return TABLES[name]()
    kwargs = dict(options, seed=seed)
    if n_samples is not None:
        check_positive("n_samples", n_samples, integer=True)
        memory.require(generation_bytes(n_samples, options.get("n_features", 2)),
                       f"generating {n_samples:,} samples of {name} (--n-samples)")
        kwargs["n_samples"] = n_samples
    if noise is not None:
        kwargs["noise"] = check_number("noise", noise, low=0)
    return GENERATED[name](**kwargs)


def load_digits():
    """scikit-learn's bundled 8x8 digits: ``X`` (1797, 64) in [0, 1] (pixels / 16), ``y`` 0..9."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise XpnetValueError("--dataset digits needs scikit-learn, which is not installed; "
                              "pip install scikit-learn (in a clone of xpnet: pip install '.[sklearn]')") from None
    digits = sk_load_digits()
    return np.asarray(digits.data, dtype=np.float64) / 16.0, np.asarray(digits.target, dtype=np.int64)
