"""What ``xpnet doctor`` reports: versions, CPU features and threads, BLAS, each backend's verdict, GPUs.

In the spirit of ``torch.utils.collect_env`` and ``jax.print_environment_info``: what a user
pastes into a bug report. :func:`environment` gathers it as one dict (the ``--json`` form),
:func:`format_environment` as text. Nothing here raises: what cannot be found is None, or an
entry whose ``reason`` says why.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys

import numpy as np

from .. import __version__
from ..backend import cuda, get_backend
from ..engine import blas
from ..engine.threads import cpu_threads
from ..errors import XpnetError

BACKENDS = ("numpy", "cupy", "torch", "array_api_strict", "jax.numpy", "auto")
LIBRARIES = {  # reported name: distribution names to try, in order
    "array-api-compat": ("array-api-compat",), "threadpoolctl": ("threadpoolctl",), "numba": ("numba",),
    "mpi4py": ("mpi4py",), "mpich": ("mpich",), "torch": ("torch",), "jax": ("jax",), "jaxlib": ("jaxlib",),
    "array-api-strict": ("array-api-strict",), "scikit-learn": ("scikit-learn",), "scipy": ("scipy",),
    "nvidia-nccl": ("nvidia-nccl-cu12", "nvidia-nccl-cu13"),
}
ENV_VARS = ("XPNET_BACKEND", "CUDA_VISIBLE_DEVICES", "XPNET_CUDA_AWARE_MPI", "CUPY_GPU_MEMORY_LIMIT",
            "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE",
            "MKL_ENABLE_INSTRUCTIONS", "NPY_DISABLE_CPU_FEATURES", "SCIPY_ARRAY_API")
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_fp16",
             "amx_tile")


def environment(backends=BACKENDS) -> dict:
    """Everything ``xpnet doctor`` reports, as one JSON-ready dict.

    Keys: ``xpnet``, ``python``, ``platform``, ``numpy``, ``blas`` (threadpoolctl's pools:
    library, version, the core type its kernels were chosen for, threads), ``cpu`` (model,
    features, cores and the threads xpnet uses), ``libraries`` (installed versions, None when
    absent), ``cuda`` (CuPy, CUDA runtime and driver, NCCL), ``gpus``, ``backends`` (keyed by
    name: ``available``, ``reason``, and ``device``/``dtypes`` when available) and ``env``
    (the environment variables that change what xpnet does).
    """
    return {
        "xpnet": __version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "numpy": np.__version__,
        "blas": blas_pools(),
        "cpu": cpu_info(),
        "libraries": {name: _installed(dists) for name, dists in LIBRARIES.items()},
        "cuda": cuda.versions() if importlib.util.find_spec("cupy") else {"cupy": None},
        "gpus": cuda.devices() if importlib.util.find_spec("cupy") else [],
        "backends": {name: backend_verdict(name) for name in backends},
        "env": {name: os.environ[name] for name in ENV_VARS if name in os.environ},
    }


def backend_verdict(name: str) -> dict:
    """``{"available": bool, "reason": str}`` for the backend called ``name`` (plus its device and dtypes)."""
    try:
        backend = get_backend(name)
    except XpnetError as exc:
        return {"available": False, "reason": str(exc)}
    except Exception as exc:  # a library that breaks on import: still a verdict, not a crash
        return {"available": False, "reason": f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}
    return {"available": True, "reason": backend.reason, "device": backend.describe(),
            "dtypes": list(backend.dtype_names())}


def blas_pools() -> list:
    """threadpoolctl's view of the loaded BLAS and OpenMP libraries (NumPy's BLAS among them);
    each BLAS also with :func:`xpnet.engine.blas.inspect`'s verdict: ``kernels`` (one line),
    ``kernel_isa``, ``cpu_isa``, ``variable`` (what chose the kernels) and ``warning``."""
    try:
        from threadpoolctl import threadpool_info

        keep = ("user_api", "internal_api", "version", "architecture", "threading_layer", "num_threads", "filepath")
        flags = blas.cpu_flags()
        pools = []
        for pool in threadpool_info():
            entry = {k: pool.get(k) for k in keep if pool.get(k) is not None}
            if pool.get("user_api") == "blas":
                info = blas.inspect(pool, flags=flags)
                entry.update(kernels=info.describe(), kernel_isa=info.kernel_isa, cpu_isa=info.cpu_isa,
                             variable=info.variable, warning=info.warning)
            pools.append(entry)
        return pools
    except Exception as exc:  # pragma: no cover - threadpoolctl is a dependency
        return [{"error": str(exc)}]


def cpu_info(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """The CPU's model, the SIMD features its flags list (Linux), NumPy's view of them, and threads."""
    model, flags = platform.processor() or platform.machine(), set[str]()
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "features": {name: name in flags for name in CPU_FLAGS} if flags else None,
            "numpy_features": _numpy_features(), "cores": os.cpu_count(), "threads": cpu_threads()}


def _numpy_features() -> list | None:
    """The SIMD extensions NumPy found and uses (NumPy's own dispatch table), or None."""
    for where in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            table = getattr(importlib.import_module(where), "__cpu_features__", None)
        except ImportError:
            continue
        if isinstance(table, dict):
            return sorted(name for name, on in table.items() if on and name.startswith(("AVX", "FMA", "SSE4", "ASIMD")))
    return None


def _installed(dists) -> str | None:
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def format_environment(info: dict) -> str:
    """The text form of :func:`environment`, a few aligned lines per section."""
    lines = [f"xpnet {info['xpnet']}", f"python      {info['python']}", f"platform    {info['platform']}",
             f"numpy       {info['numpy']}"]
    for pool in info["blas"]:
        if "kernels" in pool:  # a BLAS: its kernels, what chose them, and the warning when they are held back
            lines.append(f"blas        {pool['kernels']}")
            lines += [f"            warning: {pool['warning']}"] if pool.get("warning") else []
        else:
            lines.append(f"{pool.get('user_api', '?'):<11} {pool.get('internal_api', '?')} {pool.get('version', '')} "
                         f"({pool.get('num_threads', '?')} threads)")
    cpu = info["cpu"]
    features = cpu["features"]
    shown = ", ".join(name for name, on in features.items() if on) if features else "unknown"
    lines += [f"cpu         {cpu['model']}", f"            features: {shown}",
              f"            {cpu['cores']} cores, xpnet uses {cpu['threads']} threads"]
    cuda_info = info["cuda"]
    lines.append("cuda        " + ", ".join(f"{k} {v}" for k, v in cuda_info.items() if k != "error" and v is not None)
                 if cuda_info.get("cupy") else "cuda        CuPy not installed")
    for gpu in info["gpus"]:
        lines.append(f"gpu {gpu['index']}       " + (gpu["error"] if "error" in gpu else
                     f"{gpu['name']}, {gpu['memory_bytes'] / 2**30:.1f} GiB "
                     f"({gpu['free_bytes'] / 2**30:.1f} GiB free), compute capability {gpu['compute_capability']}"))
    lines.append("libraries   " + ", ".join(f"{k} {v}" for k, v in info["libraries"].items() if v is not None))
    lines.append("missing     " + (", ".join(k for k, v in info["libraries"].items() if v is None) or "none"))
    lines.append("backends")
    for name, verdict in info["backends"].items():
        mark = "yes" if verdict["available"] else "no "
        lines.append(f"  {name:<17} {mark}  {verdict.get('device', '') + ': ' if verdict['available'] else ''}"
                     f"{verdict['reason']}")
    if info["env"]:
        lines.append("environment " + ", ".join(f"{k}={v}" for k, v in info["env"].items()))
    return "\n".join(lines)
