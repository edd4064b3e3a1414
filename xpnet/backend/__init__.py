"""Array backends: an array-API namespace on a device; the ONLY package that imports CuPy or any
optional array library (:mod:`.namespace` chooses and wraps them, :mod:`.cuda` holds CuPy's own API)."""

from .cuda import backend_for_rank, chunk_uploader, device_allreducer
from .namespace import (
    CHOICES,
    CUDA_HINT,
    DTYPES,
    ENV_VAR,
    KNOWN_NAMESPACES,
    Backend,
    get_backend,
    host_available_memory,
    itemsize,
    native_module,
    to_numpy,
)

__all__ = ["CHOICES", "CUDA_HINT", "DTYPES", "ENV_VAR", "KNOWN_NAMESPACES", "Backend", "backend_for_rank",
           "chunk_uploader", "device_allreducer", "get_backend", "host_available_memory", "itemsize", "native_module",
           "to_numpy"]
