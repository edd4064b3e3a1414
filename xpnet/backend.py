"""Array backends: the ONLY module that imports CuPy (or any optional array library).

A :class:`Backend` bundles an array-API namespace (through ``array-api-compat``) with a
device, and knows how to move host (NumPy) arrays there and back, wait for the device
(:meth:`Backend.sync`) and describe itself. Math code receives ``backend.xp`` and never
imports an array library itself.

    >>> from xpnet import get_backend
    >>> get_backend("numpy").describe()
    'numpy on cpu'

Names: ``numpy``, ``cupy``, ``auto`` (CuPy when it imports and a CUDA device works, else
NumPy), ``torch``, ``array_api_strict``, or any importable array-API module. A device may
follow a colon: ``array_api_strict:no_float64``, ``torch:cpu``, ``cupy:1``.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np

from .errors import BackendUnavailableError, XpnetValueError

ENV_VAR = "XPNET_BACKEND"
DTYPES = ("float32", "float64")
CUDA_HINT = (
    "install CuPy for your CUDA version with `pip install 'xpnet[cuda12]'` or "
    "`pip install 'xpnet[cuda13]'`, or choose --backend numpy"
)


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
        How the backend was chosen (e.g. ``"auto: no CUDA device, using NumPy"``).
    """

    name: str
    xp: Any
    device: Any
    reason: str = ""
    _module: Any = field(default=None, repr=False, compare=False)

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
        return self.xp.asarray(np.asarray(host), dtype=dtype, device=self.device)

    def to_numpy(self, x) -> np.ndarray:
        """Bring an array of this backend back to the host as a NumPy array."""
        return to_numpy(x)

    def sync(self) -> None:
        """Block until queued device work is done (a no-op on CPU backends)."""
        if self.name == "cupy":
            self._module.cuda.Device(self.device.id).synchronize()
        elif self.name == "torch" and str(self.device).startswith("cuda"):
            self._module.cuda.synchronize(self.device)

    def available_memory(self) -> int | None:
        """Bytes free for new arrays: device memory for CuPy/CUDA torch, host RAM otherwise."""
        if self.name == "cupy":
            with self.device:
                return int(self._module.cuda.runtime.memGetInfo()[0])
        if self.name == "torch" and str(self.device).startswith("cuda"):
            return int(self._module.cuda.mem_get_info(self.device)[0])
        return host_available_memory()

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """Whether ``exc`` is this backend's out-of-memory error."""
        if isinstance(exc, MemoryError):
            return True
        if self.name == "cupy":
            return isinstance(exc, self._module.cuda.memory.OutOfMemoryError)
        if self.name == "torch":
            return isinstance(exc, getattr(self._module, "OutOfMemoryError", MemoryError))
        return False

    def describe(self) -> str:
        """A short human description, e.g. ``'numpy on cpu'``."""
        return f"{self.name} on {self.device_name()}"

    def device_name(self) -> str:
        if self.name == "cupy":
            return f"cuda:{self.device.id}"
        if self.name == "array_api_strict":
            return str(self.device).split("'")[1] if "'" in str(self.device) else str(self.device)
        return str(self.device)


def host_available_memory() -> int | None:
    """Available host RAM in bytes (``MemAvailable`` on Linux), or None when unknown."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


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


def get_backend(name: str | None = None) -> Backend:
    """Return the backend called ``name`` (default: ``$XPNET_BACKEND``, else ``auto``).

    Raises
    ------
    BackendUnavailableError
        When the library is not installed or has no usable device. Never falls back:
        only ``auto`` chooses, and it records why on :attr:`Backend.reason`.
    """
    if isinstance(name, Backend):
        return name
    source = "given"
    if name is None:
        name = os.environ.get(ENV_VAR) or "auto"
        source = f"from ${ENV_VAR}" if os.environ.get(ENV_VAR) else "default"
    if not isinstance(name, str) or not name.strip():
        raise XpnetValueError(f"backend={name!r} must be a library name such as 'numpy' or 'auto'")
    lib, _, device = name.strip().partition(":")
    if lib == "auto":
        return _auto()
    if lib == "numpy":
        return Backend("numpy", _compat("numpy"), "cpu", f"numpy ({source})", np)
    if lib == "cupy":
        return _cupy(device or "0", source)
    if lib == "torch":
        return _torch(device or "cpu", source)
    return _generic(lib, device, source)


def _compat(lib: str):
    return importlib.import_module(f"array_api_compat.{lib}")


def _auto() -> Backend:
    try:
        backend = _cupy("0", "auto")
    except BackendUnavailableError as exc:
        why = "CuPy is not installed" if "not installed" in str(exc) else "CuPy found no usable CUDA device"
        return Backend("numpy", _compat("numpy"), "cpu", f"auto chose numpy: {why}", np)
    return Backend(backend.name, backend.xp, backend.device, "auto chose cupy: CUDA device found", backend._module)


def _cupy(device: str, source: str) -> Backend:
    try:
        import cupy
    except ImportError as exc:
        raise BackendUnavailableError(f"backend 'cupy' needs CuPy, which is not installed ({exc}); {CUDA_HINT}") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        index = int(device)
        if count < 1:
            raise RuntimeError("no CUDA device is visible")
        if not 0 <= index < count:
            raise RuntimeError(f"device {index} does not exist ({count} visible)")
        dev = cupy.cuda.Device(index)
        with dev:
            cupy.asarray([1.0]).sum().item()  # proves the driver and the device really work
    except Exception as exc:  # CUDA raises several unrelated types here
        raise BackendUnavailableError(
            f"backend 'cupy' found CuPy but no usable CUDA device ({exc}); "
            "check the driver and CUDA_VISIBLE_DEVICES, or choose --backend numpy"
        ) from None
    return Backend("cupy", _compat("cupy"), dev, f"cupy ({source})", cupy)


def _torch(device: str, source: str) -> Backend:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        raise BackendUnavailableError(
            "backend 'torch' needs PyTorch, which is not installed; `pip install torch` "
            "(CPU build: see the README) or choose --backend numpy"
        ) from None
    try:
        dev = torch.device(device)
        torch.zeros(1, device=dev)
    except (RuntimeError, AssertionError) as exc:
        raise BackendUnavailableError(f"backend 'torch' cannot use device {device!r}: {exc}") from None
    return Backend("torch", _compat("torch"), dev, f"torch ({source})", torch)


def _generic(lib: str, device: str, source: str) -> Backend:
    try:
        module = importlib.import_module(lib)
    except ImportError:
        raise BackendUnavailableError(
            f"backend {lib!r} is not an importable module; install it or choose one of "
            "numpy, cupy, auto, torch, array_api_strict"
        ) from None
    try:
        xp = array_api_compat.array_namespace(module.asarray(0.0))
    except Exception:
        raise BackendUnavailableError(f"backend {lib!r} is not an array-API library") from None
    if device:
        dev = _named_device(xp, device)
    else:
        dev = array_api_compat.device(xp.asarray(0.0))
    return Backend(lib, xp, dev, f"{lib} ({source})", module)


def _named_device(xp, device: str):
    for dev in xp.__array_namespace_info__().devices():
        if device in (str(dev), repr(dev)) or f"'{device}'" in repr(dev):
            return dev
    raise BackendUnavailableError(f"device {device!r} is not one of {xp.__array_namespace_info__().devices()}")


_THREADS: list = []  # stack of --threads limits in force (empty: all cores)
_CONTROLLER: list = []  # the threadpoolctl controller, made on first use


def cpu_threads() -> int:
    """CPU threads xpnet may use now: the innermost :func:`limit_threads`, else all cores."""
    if _THREADS:
        return _THREADS[-1]
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _controller():
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


@contextlib.contextmanager
def limit_threads(n: int | None):
    """Bound the CPU threads used by xpnet, BLAS/OpenMP (and torch) to ``n`` inside the block.

    ``None`` leaves every pool as it is (all cores). Results do not depend on ``n``.
    """
    if n is None:
        yield
        return
    torch = _loaded("torch")
    before = torch.get_num_threads() if torch else None
    _THREADS.append(int(n))
    try:
        with _controller().limit(limits=int(n)):
            if torch:
                torch.set_num_threads(int(n))
            yield
    finally:
        _THREADS.pop()
        if torch:
            torch.set_num_threads(before)


@contextlib.contextmanager
def blas_single_threaded():
    """Run BLAS on one thread inside the block (xpnet parallelises over row chunks itself)."""
    with _controller().limit(limits=1, user_api="blas"):
        yield


def _loaded(name: str):
    import sys

    return sys.modules.get(name)


# -- data-parallel training (xpnet.distributed): the GPU specifics live here ----------------
# UNTESTED on this project's CI (no GPU): kept small on purpose. See docs/scaling.md.

def backend_for_rank(name: str | None, local_rank: int) -> str | None:
    """The backend name for MPI process ``local_rank`` of a machine: one GPU per process.

    ``cupy`` (or ``auto`` when CuPy finds a GPU) becomes ``cupy:<local_rank % device count>``;
    an explicit device (``cupy:1``) and every other backend are returned unchanged.
    """
    lib = (name or os.environ.get(ENV_VAR) or "auto").strip()
    if lib not in ("cupy", "auto"):
        return name
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no CuPy or no driver: auto picks NumPy, cupy raises its own clear error
        return name
    return f"cupy:{local_rank % count}" if count else name


def device_allreducer(backend: Backend, mpi_comm):
    """A function summing gradient buffers across ``mpi_comm`` on the GPU, or None (stage via host).

    Uses NCCL through ``cupy.cuda.nccl`` when it is available, or the MPI itself when
    ``XPNET_CUDA_AWARE_MPI=1`` says it is CUDA-aware. The function takes a list of device
    arrays and a list of floats and returns the summed arrays followed by the summed floats.
    """
    if backend.name != "cupy":
        return None
    cupy, xp = backend._module, backend.xp
    if os.environ.get("XPNET_CUDA_AWARE_MPI") == "1":
        from mpi4py import MPI

        def reduce(buffer):
            backend.sync()  # MPI reads device memory directly: the kernels must be done
            mpi_comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
    else:
        try:
            from cupy.cuda import nccl
        except ImportError:
            return None
        if not nccl.available:
            return None
        uid = nccl.get_unique_id() if mpi_comm.Get_rank() == 0 else None
        uid = mpi_comm.bcast(uid, root=0)  # set-up only: a small tuple
        with backend.device:
            nccl_comm = nccl.NcclCommunicator(mpi_comm.Get_size(), uid, mpi_comm.Get_rank())

        def reduce(buffer):
            stream = cupy.cuda.get_current_stream()
            nccl_comm.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size, nccl.NCCL_FLOAT64,
                                nccl.NCCL_SUM, stream.ptr)

    def allreduce(arrays, extra):
        with backend.device:
            parts = [xp.reshape(xp.astype(a, xp.float64), (-1,)) for a in arrays]
            buffer = xp.concat(parts + [xp.asarray(extra, dtype=xp.float64)])
            reduce(buffer)
            out, offset = [], 0
            for a in arrays:
                size = math.prod(a.shape)
                out.append(xp.astype(xp.reshape(buffer[offset:offset + size], a.shape), a.dtype))
                offset += size
            return out + [float(v) for v in buffer[offset:].get()]

    return allreduce


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
