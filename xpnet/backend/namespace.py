"""Array backends: the namespace and device arrays live on (CuPy's own API is in :mod:`.cuda`).

A :class:`Backend` bundles an array-API namespace (through ``array-api-compat``) with a
device, and knows how to move host (NumPy) arrays there and back, wait for the device
(:meth:`Backend.sync`) and describe itself. Math code receives ``backend.xp`` and never
imports an array library itself.

    >>> from xpnet import get_backend
    >>> get_backend("numpy").describe()
    'numpy on cpu'

Names: ``numpy``, ``cupy``, ``auto`` (CuPy when a CUDA device works and the problem is big
enough to gain from it, see :mod:`.choice`; else NumPy), ``torch``, ``array_api_strict``, or
another installed array-API namespace (see :func:`get_backend` for the rule: nothing else is
imported). A device may follow a colon: ``array_api_strict:no_float64``, ``torch:cpu``,
``cupy:1`` (or ``cupy:cuda:1``); it must exist. A name close to a known one gets a suggestion,
a known library that is not installed its install command.

A :class:`Backend` pickles and copies by name (:meth:`Backend.qualified_name`), so models
holding one go through ``pickle``, ``copy.deepcopy`` and joblib.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import importlib
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np

from ..errors import BackendUnavailableError, XpnetValueError
from ..memory import XpnetMemoryError, format_bytes
from . import cuda
from .choice import Work

ENV_VAR = "XPNET_BACKEND"
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Backend:
    """An array namespace on one device.

    Attributes
    ----------
    name : str
        Library name: ``"numpy"``, ``"cupy"``, ``"torch"``, ``"array_api_strict"``...
    xp : module
        The array-API namespace (array-api-compat wrapper where one is needed).
    device : object
        The device arrays are created on.
    reason : str
        How the backend was chosen (e.g. ``"auto chose numpy: CuPy is not installed"``).
    pending : bool
        ``auto`` found a GPU but not yet the problem's size: NumPy until :func:`settle` decides
        (training does, before anything goes to a device).
    """

    name: str
    xp: Any
    device: Any
    reason: str = ""
    _module: Any = field(default=None, repr=False, compare=False)
    pending: bool = field(default=False, compare=False, kw_only=True)

    # -- data movement ---------------------------------------------------------------
    def dtype(self, name: str):
        """The namespace's dtype called ``name``, after checking the device supports it."""
        if name not in DTYPES:
            raise XpnetValueError(f"dtype={name!r} is not supported; choose float32 or float64")
        if name not in self.dtype_names():
            raise XpnetValueError(
                f"dtype={name!r} is not available on {self.describe()}; use dtype='float32'"
            )
        return getattr(self.xp, name)

    def dtype_names(self) -> tuple[str, ...]:
        """Floating dtypes this device supports, e.g. ``("float32", "float64")``."""
        try:
            known = self.xp.__array_namespace_info__().dtypes(device=self.device, kind="real floating")
        except (AttributeError, TypeError):  # pragma: no cover - namespaces before 2023.12
            return DTYPES
        return tuple(name for name in DTYPES if name in known)

    def asarray(self, host, dtype=None):
        """Copy a host array (NumPy or nested lists) to this backend's device."""
        if dtype is not None and isinstance(dtype, str):
            dtype = self.dtype(dtype)
        host = np.asarray(host)
        try:
            return self.xp.asarray(host, dtype=dtype, device=self.device)
        except Exception as exc:
            if not self.is_out_of_memory(exc):
                raise
            raise XpnetMemoryError(
                f"{self.describe()} ran out of memory copying a {'x'.join(map(str, host.shape))} array "
                f"({format_bytes(host.size * itemsize(dtype or host.dtype))}) to it; free some memory, or "
                "ask for less (fewer rows, narrower layers, float32, minibatches)") from None

    def to_numpy(self, x) -> np.ndarray:
        """Bring an array of this backend back to the host as a NumPy array."""
        return to_numpy(x)

    def sync(self) -> None:
        """Block until queued device work is done (a no-op on CPU backends)."""
        if self.name == "cupy":
            cuda.synchronize(self.device)
        elif self._torch_cuda():
            self._module.cuda.synchronize(self.device)

    def activate(self):
        """A context making this backend's device current for everything run inside it.

        CuPy computes on the *current* device, whatever device the arrays were made on, so
        every fit, prediction and collective on ``cupy:1`` runs inside ``with
        backend.activate():`` (CuPy's device context; CUDA torch: ``torch.cuda.device``).
        Elsewhere arrays carry their device and this is a no-op. Contexts nest.
        """
        if self.name == "cupy":
            return cuda.activate(self.device)
        if self._torch_cuda():
            return self._module.cuda.device(self.device)
        return contextlib.nullcontext()

    def available_memory(self) -> int | None:
        """Bytes free for new arrays: device memory for CuPy (the driver's free memory plus the
        free blocks CuPy's pool caches) and CUDA torch; otherwise what the process may still
        use of the host (:func:`xpnet.memory.available_bytes`: the smallest of MemAvailable,
        the cgroup limit and RLIMIT_AS)."""
        if self.name == "cupy":
            return cuda.free_bytes(self._module, self.device)
        if self._torch_cuda():
            cache = self._module.cuda.memory_reserved(self.device) - self._module.cuda.memory_allocated(self.device)
            return int(self._module.cuda.mem_get_info(self.device)[0]) + int(cache)
        from ..memory import available_bytes

        return available_bytes()[0]

    def reset_peak_memory(self) -> None:
        """Start measuring :meth:`peak_memory` afresh (device backends; a no-op elsewhere)."""
        if self.name == "cupy":
            cuda.reset_peak(self._module, self.device)
        elif self._torch_cuda():
            self._module.cuda.reset_peak_memory_stats(self.device)

    def peak_memory(self) -> int | None:
        """Bytes of device memory held at the peak since :meth:`reset_peak_memory` (CuPy: what
        its pool acquired; CUDA torch: its allocator's peak); None for host-memory backends."""
        if self.name == "cupy":
            return cuda.peak_bytes(self._module, self.device)
        if self._torch_cuda():
            return int(self._module.cuda.max_memory_reserved(self.device))
        return None

    def _torch_cuda(self) -> bool:
        return self.name == "torch" and str(self.device).startswith("cuda")

    def uses_host_memory(self) -> bool:
        """Whether arrays live in host RAM (every backend but CuPy and CUDA torch)."""
        return not (self.name == "cupy" or (self.name == "torch" and str(self.device).startswith("cuda")))

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """Whether ``exc`` is this backend's out-of-memory error."""
        if isinstance(exc, MemoryError):
            return True
        if self.name == "cupy":
            return cuda.is_out_of_memory(self._module, exc)
        if self.name == "torch":
            return isinstance(exc, getattr(self._module, "OutOfMemoryError", MemoryError))
        return False

    def describe(self) -> str:
        """A short human description, e.g. ``'numpy on cpu'``."""
        return f"{self.name} on {self.device_name()}"

    def qualified_name(self) -> str:
        """The name :func:`get_backend` turns back into this backend: ``"torch:cuda:0"``, ``"cupy:1"``..."""
        return f"{self.name}:{int(self.device) if self.name == 'cupy' else self.device_name()}"

    # -- copies: by name, since a module cannot be pickled --------------------------------
    def __reduce__(self):
        return _restore, (self.qualified_name(), self.reason, self.pending)

    def __copy__(self):
        return self  # frozen, and the modules it holds are process-wide singletons

    def __deepcopy__(self, memo):
        return self

    def device_name(self) -> str:
        if self.name == "cupy":
            return f"cuda:{int(self.device)}"
        return _device_label(self.device)


def _restore(name: str, reason: str, pending: bool = False) -> Backend:
    """Unpickle a :class:`Backend`: the same library and device in this process (``auto``
    chooses again while it had not decided)."""
    backend = get_backend("auto" if pending else name)
    return backend if backend.reason == reason or pending else dataclasses.replace(backend, reason=reason)


def host_available_memory() -> int | None:
    """Available host RAM in bytes (``MemAvailable`` on Linux), or None when unknown.

    What a process may really use is :func:`xpnet.memory.available_bytes` (it also counts
    the cgroup limit and RLIMIT_AS).
    """
    from ..memory import meminfo_available

    return meminfo_available()


def to_numpy(x) -> np.ndarray:
    """Return ``x`` (an array of any supported backend, or a scalar) as a NumPy array."""
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if hasattr(x, "__dlpack__"):
        try:
            return np.from_dlpack(x)
        except (BufferError, RuntimeError, TypeError):
            pass
    return np.asarray(x)


def get_backend(name: str | None = None, *, work: Work | None = None) -> Backend:
    """Return the backend called ``name`` (default: ``$XPNET_BACKEND``, else ``auto``).

    ``name`` is a library, optionally followed by ``:device``. Only array-API namespaces
    are imported: the libraries array-api-compat knows (numpy, cupy, torch,
    array_api_strict, jax.numpy, dask.array, sparse, ndonnx, dpnp) and modules whose source
    declares ``__array_api_version__`` (read from the file without running it, then checked
    on the imported module). Anything else is refused before it is imported, so a name
    such as ``this`` runs no code. A device must be one the library has.

    ``work`` (:func:`xpnet.backend.epoch_work`) is the problem ``auto`` chooses for: CuPy
    when a CUDA device works and a GPU gains on that work (:mod:`xpnet.backend.choice`).
    Without it, ``auto`` with a GPU gives NumPy marked :attr:`Backend.pending`, and
    training decides (:func:`settle`) before anything goes to a device.

    Raises
    ------
    BackendUnavailableError
        When the library is not installed, is not an array-API namespace, or has no such
        (usable) device. Never falls back: only ``auto`` chooses, and it records why on
        :attr:`Backend.reason`.
    """
    if isinstance(name, Backend):
        return settle(name, work) if work is not None else name
    source = "given"
    if name is None:
        name = os.environ.get(ENV_VAR) or "auto"
        source = f"from ${ENV_VAR}" if os.environ.get(ENV_VAR) else "default"
    if not isinstance(name, str) or not name.strip():
        raise XpnetValueError(f"backend={name!r} must be a library name such as 'numpy' or 'auto'")
    lib, _, device = name.strip().partition(":")
    lib = ALIASES.get(lib, lib)
    if lib == "auto":
        return _auto(work)
    if lib == "numpy":
        if device not in ("", "cpu"):
            raise BackendUnavailableError(f"backend 'numpy' has no device {device!r}; its only device is cpu")
        return Backend("numpy", _compat("numpy"), "cpu", f"numpy ({source})", np)
    if lib == "cupy":
        return _cupy(device, source)
    if lib == "torch":
        return _torch(device or "cpu", source)
    return _generic(lib, device, source)


def settle(backend: Backend, work: Work) -> Backend:
    """The backend to train on: ``backend`` itself, unless ``auto`` left it :attr:`~Backend.pending`;
    then CuPy or NumPy for ``work``, with the reason."""
    return _auto(work) if backend.pending else backend


KNOWN_NAMESPACES = ("numpy", "cupy", "torch", "array_api_strict", "jax.numpy", "dask.array", "sparse", "ndonnx",
                    "dpnp")  # the libraries array-api-compat knows: imported without the declaration check
ALIASES = {"jax": "jax.numpy", "dask": "dask.array"}
CHOICES = "numpy, cupy, auto, torch, array_api_strict, or an installed module implementing the Python array API"
INSTALL = {"array_api_strict": "pip install array-api-strict", "jax.numpy": "pip install jax",
           "dask.array": "pip install 'dask[array]'", "sparse": "pip install sparse", "ndonnx": "pip install ndonnx",
           "dpnp": "pip install dpnp"}  # the other known libraries' own install commands
MEANT = {"cuda": "cupy' or 'torch:cuda", "gpu": "cupy' or 'torch:cuda", "cp": "cupy", "np": "numpy",
         "pytorch": "torch", "strict": "array_api_strict", "array-api-strict": "array_api_strict"}
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_DECLARATION = b"__array_api_version__"
_SOURCE_LIMIT = 64 << 20  # bytes of a module file searched for the declaration


def _compat(lib: str):
    return importlib.import_module(f"array_api_compat.{lib}")


def suggestion(lib: str) -> str:
    """``" (did you mean 'numpy'?)"`` for a name close to a known one, else ``""``."""
    lowered = lib.lower()
    if lowered in MEANT:
        return f" (did you mean '{MEANT[lowered]}'?)"
    names = ["auto", *KNOWN_NAMESPACES, *ALIASES]
    close = difflib.get_close_matches(lowered, names, n=1, cutoff=0.75)
    return f" (did you mean '{ALIASES.get(close[0], close[0])}'?)" if close and close[0] != lib else ""


def _auto(work: Work | None) -> Backend:
    numpy = functools.partial(Backend, "numpy", _compat("numpy"), "cpu", _module=np)
    try:
        gpu = _cupy("", "auto")
    except BackendUnavailableError as exc:
        why = "CuPy is not installed" if "not installed" in str(exc) else "CuPy found no usable CUDA device"
        return numpy(reason=f"auto chose numpy: {why}")
    if work is None:
        return numpy(reason="auto: numpy until the problem's size is known (a CUDA device was found; "
                            "training chooses)", pending=True)
    if not work.gpu_gains():
        return numpy(reason=f"auto chose numpy although a CUDA device works: {work.describe()}")
    return dataclasses.replace(gpu, reason=f"auto chose {gpu.describe()}: {work.describe()}")


def _cupy(device: str, source: str) -> Backend:
    cupy = cuda.import_cupy()
    text = device.removeprefix("cuda").removeprefix(":")
    if text and not text.isdigit():
        raise BackendUnavailableError(
            f"backend 'cupy' has no device {device!r}; name a CUDA device by its number: cupy:0, cupy:1...")
    dev = cuda.open_device(cupy, int(text) if text else None)  # none given: the current device
    return Backend("cupy", _compat("cupy"), dev, f"cupy ({source})", cupy)


def _torch(device: str, source: str) -> Backend:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        raise BackendUnavailableError(
            "backend 'torch' needs PyTorch, which is not installed; `pip install torch` (the CPU-only "
            "build: add --index-url https://download.pytorch.org/whl/cpu) or choose --backend numpy"
        ) from None
    try:
        dev = torch.device(device)
        if dev.type == "meta":  # shapes without values: nothing could be computed there
            raise RuntimeError("the meta device holds no data")
        torch.zeros(1, device=dev)
    except (RuntimeError, AssertionError) as exc:
        raise BackendUnavailableError(
            f"backend 'torch' has no usable device {device!r} ({' '.join(str(exc).split())[:200]}); "
            f"its devices here are: {', '.join(_torch_devices(torch))}") from None
    return Backend("torch", _compat("torch"), dev, f"torch ({source})", torch)


def _torch_devices(torch) -> list[str]:
    devices = ["cpu"]
    try:
        if torch.cuda.is_available():
            devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        if torch.backends.mps.is_available():
            devices.append("mps")
    except Exception:  # pragma: no cover - a broken driver: the CPU is still there
        pass
    return devices


def _generic(lib: str, device: str, source: str) -> Backend:
    module = _import_namespace(lib)
    try:
        xp = array_api_compat.array_namespace(module.asarray(0.0))
    except Exception:
        if not hasattr(module, "__array_namespace_info__"):
            raise BackendUnavailableError(f"backend {lib!r} is not an array-API library; choose {CHOICES}") from None
        xp = module  # a namespace array-api-compat does not know: used as it is
    if device:
        dev = _named_device(lib, xp, device)
    else:
        dev = array_api_compat.device(xp.asarray(0.0))
    return Backend(lib, xp, dev, f"{lib} ({source})", module)


def _import_namespace(lib: str):
    """Import ``lib`` if it is an array-API namespace (see :func:`get_backend`); else refuse."""
    if not _MODULE_NAME.fullmatch(lib):
        raise BackendUnavailableError(f"backend {lib!r} is not a module name{suggestion(lib)}; choose {CHOICES}")
    known = lib in KNOWN_NAMESPACES
    if not known and lib not in sys.modules:
        declared = _declares_array_api(lib)
        if declared is None:
            raise BackendUnavailableError(
                f"backend {lib!r} is not an importable module{suggestion(lib)}; install it or choose {CHOICES}")
        if not declared:
            raise BackendUnavailableError(
                f"backend {lib!r} is not an array-API namespace (its source does not declare "
                f"__array_api_version__), so it was not imported{suggestion(lib)}; choose {CHOICES}")
    try:
        module = importlib.import_module(lib)
    except ImportError as exc:
        if known:
            missing = (getattr(exc, "name", None) or lib).split(".")[0]  # the package to install
            hint = INSTALL.get(lib, f"pip install {missing}")
            raise BackendUnavailableError(
                f"backend {lib!r} needs {missing}, which is not installed; `{hint}`, or choose {CHOICES}") from None
        raise BackendUnavailableError(
            f"backend {lib!r} is not an importable module{suggestion(lib)}; install it or choose {CHOICES}") from None
    if not known and not isinstance(getattr(module, "__array_api_version__", None), str):
        raise BackendUnavailableError(f"backend {lib!r} is not an array-API namespace (it has no "
                                      f"__array_api_version__){suggestion(lib)}; choose {CHOICES}")
    return module


def _declares_array_api(lib: str) -> bool | None:
    """Whether the file of module ``lib`` mentions ``__array_api_version__``, found without
    importing it or its parent packages; None when there is no such module file."""
    from importlib.machinery import PathFinder

    spec, path = None, None
    for part in lib.split("."):
        spec = PathFinder.find_spec(part, path)
        if spec is None:
            return None
        path = spec.submodule_search_locations
    origin = getattr(spec, "origin", None)
    if not origin or not os.path.isfile(origin):
        return False  # a namespace package: no file could declare anything
    try:
        with open(origin, "rb") as f:
            return _DECLARATION in f.read(_SOURCE_LIMIT)
    except OSError:
        return False


def _named_device(lib: str, xp, device: str):
    devices = xp.__array_namespace_info__().devices()
    for dev in devices:
        if device in (str(dev), repr(dev), _device_label(dev)):
            return dev
    raise BackendUnavailableError(
        f"backend {lib!r} has no device {device!r}; its devices are: {', '.join(_device_label(d) for d in devices)}")


def _device_label(dev) -> str:
    """``array_api_strict.Device('no_float64')`` -> ``no_float64``; others as ``str``."""
    text = str(dev)
    return text.split("'")[1] if text.count("'") >= 2 else text



def native_module(backend):
    """The array library module itself behind ``backend`` (``numpy``, ``cupy``, ``torch``...).

    For the few places that need a library's own API beyond the array API -- the PyTorch
    baseline of :mod:`xpnet.bench` (``nn.Linear``, autograd, ``optim.SGD``) and GPU
    facts (device name, memory, CUDA version) -- so they never import the library
    themselves. ``backend`` is a :class:`Backend` or a name for :func:`get_backend`.
    """
    return get_backend(backend)._module


def itemsize(dtype) -> int:
    """Bytes per element of a float dtype given by name (``"float32"``) or as any library's dtype."""
    return 4 if "32" in str(dtype) else 8
