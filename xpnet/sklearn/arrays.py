"""Where the estimators' arrays live: scikit-learn's array API convention, and moves between backends.

Under ``sklearn.set_config(array_api_dispatch=True)`` an estimator whose ``backend`` is None
trains in the namespace and on the device of its input ``X`` (CuPy, torch,
array_api_strict...), keeps its fitted arrays there and returns predictions there, as
scikit-learn's array-API estimators do. ``backend=`` overrides where it trains and keeps
them; predictions still come back in the input's namespace and device. Without dispatch
nothing changes: NumPy (or array-likes) in, NumPy out, fitted arrays NumPy.
"""

from __future__ import annotations

import contextlib
import functools
import math

import array_api_compat
import numpy as np
from scipy import sparse
from sklearn import get_config

from ..backend import Backend, get_backend, to_numpy
from ..errors import XpnetValueError

QUOTE = "'"


def dispatching() -> bool:
    """Whether scikit-learn's ``array_api_dispatch`` is on."""
    return bool(get_config()["array_api_dispatch"])


def is_device_array(a) -> bool:
    """An array-API array that is not NumPy's (torch, CuPy, array_api_strict...)."""
    return (a is not None and not isinstance(a, (np.ndarray, np.generic)) and not sparse.issparse(a)
            and array_api_compat.is_array_api_obj(a))


@functools.lru_cache(maxsize=64)
def named(name: str) -> Backend:
    """:func:`xpnet.get_backend` once per name (a CuPy device check syncs the device)."""
    return get_backend(name)


def backend_of(a) -> Backend:
    """The backend an array lives on: its library and device (NumPy for NumPy, lists, sparse)."""
    if not is_device_array(a):
        return named("numpy")
    device = array_api_compat.device(a)
    if array_api_compat.is_torch_array(a):
        return named(f"torch:{device}")
    if array_api_compat.is_cupy_array(a):
        return named(f"cupy:{device.id}")
    xp = array_api_compat.array_namespace(a)
    lib = "array_api_strict" if array_api_compat.is_array_api_strict_namespace(xp) else xp.__name__
    text = str(device)  # array_api_strict.Device('device1') -> device1, as xpnet spells devices
    return named(f"{lib}:{text.split(QUOTE)[1] if text.count(QUOTE) >= 2 else text}")


def current(backend: Backend):
    """A context making ``backend``'s device the current one for what runs inside: CuPy computes on
    the current device, not the arrays' (``cupy:1``); elsewhere arrays carry their device and it
    does nothing. (``Backend.activate`` comes with the GPU placement work; until then, nothing.)"""
    activate = getattr(backend, "activate", None)
    return activate() if activate is not None else contextlib.nullcontext()


def same_place(a, backend: Backend) -> bool:
    """Whether ``a`` already is an array of ``backend`` on its device."""
    if backend.name == "numpy":
        return isinstance(a, np.ndarray)
    return is_device_array(a) and backend_of(a).qualified_name() == backend.qualified_name()


def dtype_name(a) -> str:
    """``"float32"`` or ``"float64"`` for a floating array of any library."""
    return "float32" if str(a.dtype).endswith("float32") else "float64"


def move(a, backend: Backend, dtype: str | None = None):
    """``a`` (an array of any backend) on ``backend``'s device, in ``dtype`` (default: its own).

    Nothing is copied when it is there already; between libraries or devices it goes
    through the host.
    """
    if same_place(a, backend):
        if dtype is None or dtype_name(a) == dtype:
            return a
        return backend.xp.astype(a, backend.dtype(dtype))
    if backend.name == "numpy":
        host = to_host(a)
        return host if dtype is None else host.astype(dtype, copy=False)
    return backend.asarray(to_numpy(a), dtype)


def to_host(a) -> np.ndarray:
    """``a`` as a writable NumPy array (a copy only when the backend's view is read-only)."""
    out = to_numpy(a)
    return out if out.flags.writeable else np.array(out)


def deliver(a, like):
    """A result for the input ``like``: in its namespace and on its device under dispatch, else NumPy."""
    if dispatching() and is_device_array(like):
        return move(a, backend_of(like))
    return to_host(a)


def is_numeric(a) -> bool:
    """A numeric array (labels that can live on a device; strings and objects cannot)."""
    if is_device_array(a):
        return True
    return isinstance(a, np.ndarray) and a.dtype.kind in "biuf"


def floats(values) -> list:
    """Python floats from Python floats or 0-d device arrays, with one transfer for the latter."""
    values = list(values)
    on_device = [v for v in values if is_device_array(v)]
    if not on_device:
        return [float(v) for v in values]
    host = iter(to_numpy(array_api_compat.array_namespace(*on_device).stack(on_device)).tolist())
    return [float(next(host)) if is_device_array(v) else float(v) for v in values]


def all_finite(arrays) -> bool:
    """Whether every array holds only finite numbers (one conversion to the host for all)."""
    arrays = list(arrays)
    xp = array_api_compat.array_namespace(*arrays)
    return bool(xp.all(xp.stack([xp.all(xp.isfinite(a)) for a in arrays])))


def check_same_place(est, X, method: str) -> None:
    """scikit-learn's rule under dispatch: ``X`` in the namespace and on the device of the fitted weights.

    Only for ``backend=None`` (an explicit ``backend`` takes any input and moves it there).
    """
    if not dispatching() or est.backend is not None:
        return
    fitted, here = backend_of(est.coefs_[0]), backend_of(X)
    if fitted.qualified_name() == here.qualified_name():
        return
    where = "numpy" if here.name == "numpy" else here.qualified_name()
    raise XpnetValueError(
        f"Inputs passed to {type(est).__name__}.{method}() must use the same namespace and the same device as "
        f"those passed to fit(): it was fitted on {fitted.describe()}, {method} got {here.describe()} (array-likes "
        f"and sparse input count as NumPy); move the estimator with est.to_backend({where!r}) (or "
        "sklearn.utils._array_api.move_estimator_to), or pass X where it was fitted")


def nan_if_not_finite(xp, score, out):
    """``score`` (0-d), or NaN when ``out`` holds a NaN or Inf (computed on the device)."""
    nan = xp.asarray(math.nan, dtype=score.dtype, device=array_api_compat.device(score))
    return xp.where(xp.all(xp.isfinite(out)), score, nan)
