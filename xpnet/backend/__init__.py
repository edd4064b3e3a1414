"""Array backends: an array-API namespace on a device; the ONLY package that imports CuPy or any
optional array library (:mod:`.namespace` chooses and wraps them, :mod:`.cuda` holds CuPy's own API,
:mod:`.choice` what ``auto`` weighs)."""

from .choice import Work, epoch_work
from .cuda import CUDA_HINT, backend_for_rank, device_allreducer
from .namespace import (
    CHOICES,
    DTYPES,
    ENV_VAR,
    KNOWN_NAMESPACES,
    Backend,
    get_backend,
    host_available_memory,
    itemsize,
    native_module,
    settle,
    suggestion,
    to_numpy,
)

__all__ = ["CHOICES", "CUDA_HINT", "DTYPES", "ENV_VAR", "KNOWN_NAMESPACES", "Backend", "Work", "backend_for_rank",
           "device_allreducer", "epoch_work", "get_backend", "host_available_memory", "itemsize", "native_module",
           "settle", "suggestion", "to_numpy"]
