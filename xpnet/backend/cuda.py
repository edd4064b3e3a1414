"""CUDA through CuPy: every line that calls CuPy's own API beyond the array API.

Devices (open, make current, synchronize), device memory (free bytes counting the pool's
cache, the pool's peak), versions and device facts for ``xpnet doctor``, one GPU per MPI
process, and the NCCL all-reduce. No other module of xpnet names CuPy's API
(tests/test_backend.py checks it); they go through :class:`xpnet.Backend` or these functions.

Checked against CuPy 13/14's source (``cupy/cuda/device.pyx``, ``cupy/cuda/memory.pyx``,
``cupy_backends/cuda/api/runtime.pyx``, ``cupy_backends/cuda/libs/nccl.pyx``); not yet run on
a GPU by this project: ``xpnet doctor --gpu-check`` is the proof on a GPU machine.
"""

from __future__ import annotations

import os
import warnings

from ..errors import BackendUnavailableError, XpnetWarning

CUDA_HINT = (
    "install CuPy for your CUDA version with `pip install 'cupy-cuda12x[ctk]'` or `pip install 'cupy-cuda13x[ctk]'` "
    "(in a clone of xpnet: `pip install '.[cuda12]'`), or choose --backend numpy"
)
OUT_OF_MEMORY_STATUS = 2  # cudaErrorMemoryAllocation, as CUDARuntimeError.status


def import_cupy():
    """The ``cupy`` module, or :class:`BackendUnavailableError` saying why it cannot be imported.

    Any failure counts, not only ImportError: a broken CUDA install may raise at import, and
    under ``-W error`` (the test suite's ``filterwarnings = error``) one of CuPy's import
    warnings is raised too -- then CuPy is unavailable, with that warning as the reason.
    """
    try:
        import cupy
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend 'cupy' needs CuPy, which is not installed ({exc}); {CUDA_HINT}") from None
    except Exception as exc:  # a Warning raised as an error, or a broken install
        raise BackendUnavailableError(
            f"backend 'cupy': importing CuPy failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
            "check the CUDA installation, or choose --backend numpy") from None
    return cupy


def open_device(cupy, index: int | None):
    """``cupy.cuda.Device(index)`` after proving it computes (None: the current device)."""
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        if count < 1:
            raise RuntimeError("no CUDA device is visible")
        index = cupy.cuda.runtime.getDevice() if index is None else index
        if not 0 <= index < count:
            raise RuntimeError(f"device {index} does not exist ({count} visible)")
        device = cupy.cuda.Device(index)
        with device:
            cupy.asarray([1.0]).sum().item()  # proves the driver, the toolkit's libraries and the device work
    except Exception as exc:  # CUDA raises several unrelated types here
        raise BackendUnavailableError(
            f"backend 'cupy' found CuPy but no usable CUDA device ({' '.join(str(exc).split())[:200]}); "
            "check the driver and CUDA_VISIBLE_DEVICES, or choose --backend numpy") from None
    return device


def device_count() -> int:
    """CUDA devices CuPy sees (0 without CuPy or a driver)."""
    try:
        return int(import_cupy().cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def activate(device):
    """A context making ``device`` current in this thread (``cupy.cuda.Device`` is one; nests)."""
    return device


def synchronize(device) -> None:
    device.synchronize()


def free_bytes(cupy, device) -> int:
    """Bytes new arrays may take on ``device``: the driver's free memory plus the free blocks
    CuPy's pool keeps cached (``memGetInfo`` counts them as used), within the pool's limit."""
    with device:
        pool = cupy.get_default_memory_pool()
        free = int(cupy.cuda.runtime.memGetInfo()[0]) + int(pool.free_bytes())
        limit = int(pool.get_limit())  # 0: no limit (set_limit or CUPY_GPU_MEMORY_LIMIT)
        return min(free, limit - int(pool.used_bytes())) if limit else free


def reset_peak(cupy, device) -> None:
    """Empty the pool's cache, so that :func:`peak_bytes` afterwards is the peak of what follows."""
    with device:
        cupy.get_default_memory_pool().free_all_blocks()


def peak_bytes(cupy, device) -> int:
    """Bytes the pool holds: its high-water mark since :func:`reset_peak` (a pool keeps its blocks)."""
    with device:
        return int(cupy.get_default_memory_pool().total_bytes())


def is_out_of_memory(cupy, exc: BaseException) -> bool:
    """CuPy's OutOfMemoryError (a MemoryError) or a CUDA call failing with cudaErrorMemoryAllocation."""
    if isinstance(exc, (MemoryError, cupy.cuda.memory.OutOfMemoryError)):
        return True
    return isinstance(exc, cupy.cuda.runtime.CUDARuntimeError) and getattr(exc, "status", None) == OUT_OF_MEMORY_STATUS


def versions() -> dict:
    """CuPy, the CUDA runtime and driver, and NCCL versions (None where unknown), never raising."""
    found: dict = {"cupy": None, "cuda_runtime": None, "cuda_driver": None, "nccl": None}
    try:
        cupy = import_cupy()
    except BackendUnavailableError as exc:
        found["error"] = str(exc)
        return found
    found["cupy"] = cupy.__version__
    for key, call in (("cuda_runtime", lambda: cupy.cuda.runtime.runtimeGetVersion()),
                      ("cuda_driver", lambda: cupy.cuda.runtime.driverGetVersion()),
                      ("nccl", _nccl_version)):
        try:
            found[key] = call()
        except Exception:  # no driver, no NCCL: left unknown
            pass
    return found


def _nccl_version():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cupy.cuda.nccl warns when the library is missing
        from cupy.cuda import nccl
    return nccl.get_version() if nccl.available else None


def devices() -> list[dict]:
    """Name, memory, compute capability and free memory of every CUDA device (empty without any)."""
    try:
        cupy = import_cupy()
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:
        return []
    found = []
    for index in range(count):
        try:
            props = cupy.cuda.runtime.getDeviceProperties(index)
            name = props["name"]
            device = cupy.cuda.Device(index)
            found.append({"index": index, "name": name.decode() if isinstance(name, bytes) else str(name),
                          "memory_bytes": int(props["totalGlobalMem"]),
                          "compute_capability": f"{props['major']}.{props['minor']}",
                          "free_bytes": free_bytes(cupy, device)})
        except Exception as exc:
            found.append({"index": index, "error": " ".join(str(exc).split())[:200]})
    return found


# -- data-parallel training: one GPU per process, gradients summed on the device ---------------------

def backend_for_rank(name: str | None, local_rank: int, default: str | None = None) -> str | None:
    """The backend name for MPI process ``local_rank`` of a machine: one GPU per process.

    With ``cupy`` or ``auto`` (``name``, else ``default``: ``$XPNET_BACKEND`` or ``auto``) and a
    CUDA device, GPU ``local_rank % device count`` becomes this process's current device
    (``cupy.cuda.Device(n).use()``), so everything the process runs -- also outside
    :meth:`xpnet.Backend.activate` -- runs there; ``cupy`` becomes ``cupy:n`` and ``auto`` picks
    it if it picks CuPy. An explicit device (``cupy:1``) and other backends are returned unchanged.
    """
    lib = (name or default or "auto").strip()
    if lib not in ("cupy", "auto"):
        return name
    try:
        cupy = import_cupy()
        count = cupy.cuda.runtime.getDeviceCount()
        if count < 1:
            return name
        index = local_rank % count
        cupy.cuda.Device(index).use()
    except Exception:  # no CuPy or no driver: auto picks NumPy, cupy raises its own clear error
        return name
    return f"cupy:{index}" if lib == "cupy" else name


def device_allreducer(backend, mpi_comm):
    """``(reduce, note)``: a function summing step buffers across ``mpi_comm`` on the GPU, or
    None to stage them through the host; ``note`` says why not (None when nothing to say).

    NCCL (``cupy.cuda.nccl``) is used when every process has its own GPU; with
    ``XPNET_CUDA_AWARE_MPI=1`` the MPI reduces device memory itself. Processes sharing a GPU
    (NCCL refuses them) or an NCCL that fails to set up on any process give host staging on
    every process (they agree through small set-up allgathers, so none waits in NCCL alone).
    ``reduce(buffer)`` sums a 1-D device array in place (float32 or float64).
    """
    if backend.name != "cupy":
        return None, None
    cupy = backend._module
    if os.environ.get("XPNET_CUDA_AWARE_MPI") == "1":
        from mpi4py import MPI

        def mpi_reduce(buffer):
            backend.sync()  # MPI reads device memory directly: the kernels must be done
            mpi_comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)

        return mpi_reduce, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the note below says it once
        try:
            from cupy.cuda import nccl
            available = bool(nccl.available)
        except Exception:
            available = False
    places = mpi_comm.allgather((os.uname().nodename, cupy.cuda.runtime.deviceGetPCIBusId(int(backend.device))))
    problem = None if available else "CuPy's NCCL is not available"
    problem = "processes share a GPU" if len(set(places)) < len(places) else problem
    problem = _first(mpi_comm.allgather(problem))  # every process takes the same path: none waits in NCCL alone
    if problem is None:
        uid = None
        if mpi_comm.Get_rank() == 0:
            try:
                uid = nccl.get_unique_id()
            except Exception as exc:
                problem = _nccl_failed(exc)
        uid = mpi_comm.bcast(uid, root=0)  # set-up only: 128 bytes, or None when rank 0 failed
        try:
            with backend.device:
                nccl_comm = nccl.NcclCommunicator(mpi_comm.Get_size(), uid, mpi_comm.Get_rank()) if uid else None
        except Exception as exc:  # NcclError, CUDARuntimeError...: not only ImportError
            problem = _nccl_failed(exc)
        problem = _first(mpi_comm.allgather(problem or (None if uid else "NCCL failed on rank 0")))
    if problem is not None:
        return None, f"xpnet: note: gradients are summed through host memory ({problem})"
    kinds = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}

    def nccl_reduce(buffer):
        nccl_comm.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size, kinds[str(buffer.dtype)], nccl.NCCL_SUM,
                            cupy.cuda.get_current_stream().ptr)

    return nccl_reduce, None


def _nccl_failed(exc: Exception) -> str:
    return f"NCCL failed to set up ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})"


def _first(problems):
    """The first process's problem, if any process has one."""
    return next((p for p in problems if p), None)


def warn(note: str) -> None:
    """Issue ``note`` as an :class:`xpnet.errors.XpnetWarning` (the CLI shows it as one line)."""
    warnings.warn(note, XpnetWarning, stacklevel=3)
