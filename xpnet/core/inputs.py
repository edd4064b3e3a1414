"""Inputs and targets as the model needs them: 2-D arrays of its dtype on its device, checked.

    >>> import numpy as np, xpnet
    >>> from xpnet import inputs
    >>> backend = xpnet.get_backend("numpy")
    >>> inputs.as_inputs(backend, backend.dtype("float64"), 2, [[0.5, 1.0]]).shape
    (1, 2)
    >>> inputs.as_targets(backend, backend.dtype("float64"), "softmax", 3, np.array([2, 0]), 2)
    array([[0., 0., 1.],
           [1., 0., 0.]])

Host data (NumPy arrays, lists) is converted once; arrays already on the backend stay
there (no host round trip). NaN, Inf and values beyond the dtype's range are refused with
the fix.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import Backend, to_numpy
from ..errors import XpnetTypeError, XpnetValueError


def as_inputs(backend: Backend, dtype, n_in: int, X, *, allow_empty: bool = False):
    """``X`` as an (N, ``n_in``) array of ``dtype`` on ``backend``'s device (validated).

    ``allow_empty``: zero rows are fine (a process of a data-parallel run may hold none).
    """
    X = to_device(backend, dtype, X, "X")
    if X.ndim != 2 or X.shape[1] != n_in:
        raise XpnetValueError(f"X has shape {tuple(X.shape)}; the model expects (n_samples, {n_in})")
    if X.shape[0] == 0 and not allow_empty:
        raise XpnetValueError("X is empty; pass at least one sample")
    return X


def as_targets(backend: Backend, dtype, output: str, n_out: int, y, n: int):
    """Targets in the form the loss needs: one-hot (N, C) for softmax, else (N, n_out)."""
    if output == "softmax":
        return backend.asarray(one_hot(y, n, n_out), dtype)
    T = to_device(backend, dtype, y, "y")
    if T.ndim == 1:
        T = backend.xp.reshape(T, (T.shape[0], 1))
    if T.ndim != 2 or T.shape != (n, n_out):
        raise XpnetValueError(f"y has shape {tuple(T.shape)}; expected ({n}, {n_out}) or ({n},) targets")
    return T


def one_hot(y, n: int, n_classes: int) -> np.ndarray:
    """Host float64 one-hot rows (n, n_classes) of class labels ``y`` in 0..n_classes-1 (checked)."""
    labels = class_labels(y, n, n_classes)
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), labels] = 1.0
    return onehot


def class_labels(y, n: int, n_classes: int) -> np.ndarray:
    """Class labels ``y`` (n,) as host int64, checked: whole numbers in 0..n_classes-1."""
    labels = np.asarray(y if isinstance(y, np.ndarray) else to_numpy(y))
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != n:
        raise XpnetValueError(f"y has shape {labels.shape}; expected ({n},) class labels for {n} samples")
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
        raise XpnetValueError("y must hold integer class labels 0..n_classes-1 for output='softmax'")
    if labels.dtype.kind not in "iuf" or (labels.size and (labels.min() < 0 or labels.max() >= n_classes)):
        raise XpnetValueError(f"y must hold class labels in 0..{n_classes - 1} (the model has {n_classes} outputs)")
    return labels.astype(np.int64, copy=False)


def to_device(backend: Backend, dtype, a, name: str):
    """``a`` as an array of ``dtype`` on ``backend``'s device, checked finite and in range."""
    xp = backend.xp
    if is_native(a, backend) and not isinstance(a, np.ndarray):
        if a.dtype != dtype:
            _check_range(float(xp.max(xp.abs(a))) if math.prod(a.shape) else 0.0, dtype, name)
            a = xp.astype(a, dtype)
        if not bool(xp.all(xp.isfinite(a))):
            raise XpnetValueError(f"{name} contains NaN or Inf; clean or impute those values first")
        return a
    try:
        host = np.asarray(a if isinstance(a, (list, tuple, np.ndarray)) else to_numpy(a))
        if host.dtype.kind not in "biuf":
            raise TypeError(f"dtype {host.dtype} is not numeric")
        host = host.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise XpnetTypeError(f"{name} must be a numeric array, got {type(a).__name__}: {exc}") from None
    if not np.all(np.isfinite(host)):
        raise XpnetValueError(f"{name} contains NaN or Inf; clean or impute those values first")
    _check_range(float(np.max(np.abs(host))) if host.size else 0.0, dtype, name)
    return backend.asarray(host, dtype)


def _check_range(largest: float, dtype, name: str) -> None:
    dtype_name = "float32" if "32" in str(dtype) else "float64"
    limit = float(np.finfo(dtype_name).max)
    if largest > limit:
        raise XpnetValueError(
            f"{name} holds {largest:.3g}, beyond {dtype_name}'s range (+-{limit:.3g}); "
            "rescale the data or use dtype='float64'"
        )


def is_native(a, backend: Backend) -> bool:
    """True when ``a`` already is an array of ``backend`` on its device (no host round trip needed)."""
    return backend.holds(a)
