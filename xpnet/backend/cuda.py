"""CUDA through CuPy: every line that calls CuPy's own API beyond the array API (devices, memory, NCCL)."""

from __future__ import annotations

import math
import os

from .namespace import ENV_VAR


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


def device_allreducer(backend, mpi_comm):
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
