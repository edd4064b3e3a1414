"""Facts about the machine a benchmark ran on: CPU, cores, memory, BLAS and its threads, GPUs."""

from __future__ import annotations

import os
import platform
import sys

import numpy as np

from .. import __version__
from ..backend import Backend, cuda, get_backend, native_module
from ..engine import blas


def machine_info(backends=()) -> dict:
    """Facts about this machine: CPU, cores, memory, BLAS and its threads, GPUs of ``backends``.

    Returns
    -------
    dict
        ``cpu``, ``cpu_count``, ``machine``, ``system``, ``python``, ``numpy``, ``xpnet``,
        ``memory_bytes`` (total host RAM), ``blas`` (threadpoolctl's pools), ``numpy_blas``
        (:func:`numpy_blas_info`), ``caches`` (:func:`cpu_caches`), ``torch`` and
        ``torch_threads`` when torch is loaded, ``gpus`` for GPU backends.
    """
    info = {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "xpnet": __version__,
        "memory_bytes": total_memory(),
        "blas": _blas_info(),
        "numpy_blas": numpy_blas_info(),
        "caches": cpu_caches(),
    }
    torch = sys.modules.get("torch")  # reported when a backend or baseline loaded it, never imported here
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    gpus = [_gpu_info(b) for b in map(get_backend, backends) if on_gpu(b)]
    if gpus:  # pragma: no cover - needs a GPU
        info["gpus"] = gpus
    return info


def on_gpu(backend: Backend) -> bool:
    """Whether ``backend`` keeps its arrays on a GPU."""
    return backend.name == "cupy" or str(backend.device).startswith("cuda")


def default_ceiling_sizes(backend: Backend) -> dict:
    """Sizes for :func:`~xpnet.bench.measure_ceilings`: big enough to reach the plateau, small enough for seconds."""
    if on_gpu(backend):
        return {"matmul_size": 8192, "copy_elements": 2**28, "activation_elements": 2**26}
    # 2048: a 1024 product is short enough for thread start-up and a busy core to show (measured
    # 84-127 GFLOP/s on 2 cores where 2048 and up give 144-150)
    return {"matmul_size": 2048, "copy_elements": 2**25, "activation_elements": 2**23}


def total_memory() -> int | None:
    """Bytes of host RAM in total (None where the OS does not say). Free memory is
    :meth:`xpnet.Backend.available_memory`'s job."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas_info() -> list:
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "version", "num_threads", "architecture")
    return [{k: pool.get(k) for k in keep if k in pool} for pool in threadpool_info()]


def cpu_caches(root: str = "/sys/devices/system/cpu/cpu0/cache") -> list:
    """The first CPU's caches, from Linux's ``root``: ``[{"level": 1, "type": "Data", "bytes":
    32768, "shared_cpus": "0"}, ...]`` in the kernel's order (empty elsewhere)."""
    caches: list = []
    try:
        folders = sorted(p for p in os.listdir(root) if p.startswith("index"))
    except OSError:
        return caches
    for folder in folders:
        try:
            level, kind, size, shared = (_read(os.path.join(root, folder, name))
                                         for name in ("level", "type", "size", "shared_cpu_list"))
        except OSError:
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(size[-1:].upper(), 1)
        number = size[:-1] if scale > 1 else size
        if number.isdigit() and level.isdigit():
            caches.append({"level": int(level), "type": kind, "bytes": int(number) * scale, "shared_cpus": shared})
    return caches


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def numpy_blas_info() -> dict | None:
    """The BLAS NumPy calls (:func:`xpnet.engine.blas.numpy_blas`) as JSON: ``library``,
    ``version``, ``threads``, ``core_type``, ``variable`` (the environment setting that chose the
    kernels, or None), ``kernel_isa``, ``cpu_isa``, ``warning`` and ``describe`` (one line)."""
    info = blas.numpy_blas()
    return None if info is None else {**info.as_dict(), "describe": info.describe()}


def _gpu_info(backend: Backend) -> dict:  # pragma: no cover - needs a GPU
    module = native_module(backend)
    if backend.name == "cupy":  # CuPy's own API lives in xpnet.backend.cuda
        gpu, versions = cuda.devices()[int(backend.device)], cuda.versions()
        return {"backend": "cupy", "name": gpu.get("name"), "memory_bytes": gpu.get("memory_bytes"),
                "cupy": versions["cupy"], "cuda_runtime": versions["cuda_runtime"],
                "cuda_driver": versions["cuda_driver"]}
    props = module.cuda.get_device_properties(backend.device)
    return {"backend": "torch", "name": props.name, "memory_bytes": int(props.total_memory),
            "cuda": module.version.cuda, "torch": module.__version__}
