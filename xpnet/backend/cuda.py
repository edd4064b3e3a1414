"""CUDA through CuPy: every line that calls CuPy's own API beyond the array API (devices, memory, NCCL)."""

from __future__ import annotations

import math
import os

import numpy as np

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


def chunk_uploader(backend):
    """What sends host chunks of rows to ``backend``'s device with the copy of the next chunk
    overlapping the compute of the current one: a :class:`ChunkUploader` on CuPy, else None
    (other backends copy when a chunk is used)."""
    return ChunkUploader(backend) if backend.name == "cupy" else None


class ChunkUploader:
    """Host chunks copied to a CuPy device on a second stream, from two pinned host buffers.

    ``start(host)`` copies a C-contiguous host chunk into the next pinned buffer (after the
    copy that used it last has left it) and queues its transfer on the copy stream into a
    new device array; ``finish(ticket)`` makes the current (compute) stream wait for that
    transfer and returns the array. Started while the compute stream still works on the
    current chunk, the transfer of the next one runs beside it.

    The device array is allocated on the compute stream, and the copy stream first waits
    for the compute work queued so far: CuPy's pool may hand out memory that kernels queued
    earlier still read, and the copy must not overwrite it before they are done.
    """

    def __init__(self, backend):
        self.backend, self.cupy = backend, backend._module
        with backend.device:
            self.stream = self.cupy.cuda.Stream(non_blocking=True)
        self.pinned: list = [None, None]  # (pinned memory, a uint8 NumPy view of it) per buffer
        self.left: list = [None, None]  # per buffer: the event of its last transfer (done: the buffer is free)
        self.turn = 0

    def start(self, host):
        """Queue the transfer of ``host`` (a C-contiguous NumPy array); a ticket for :meth:`finish`."""
        cupy, k = self.cupy, self.turn
        self.turn ^= 1
        if self.left[k] is not None:
            self.left[k].synchronize()
        staging = self._buffer(k, host.nbytes)[:host.nbytes].view(host.dtype).reshape(host.shape)
        staging[...] = host
        with self.backend.device:
            compute = cupy.cuda.get_current_stream()
            out = cupy.empty(host.shape, dtype=host.dtype)
            self.stream.wait_event(compute.record())
            out.set(staging, stream=self.stream)
            arrived = self.stream.record()
        self.left[k] = arrived
        return out, arrived

    def finish(self, ticket):
        """The device array of a :meth:`start`, once the compute stream has waited for its transfer."""
        out, arrived = ticket
        with self.backend.device:
            self.cupy.cuda.get_current_stream().wait_event(arrived)
        return out

    def _buffer(self, k: int, nbytes: int):
        held = self.pinned[k]
        if held is None or held[1].nbytes < nbytes:
            memory = self.cupy.cuda.alloc_pinned_memory(nbytes)
            held = self.pinned[k] = (memory, np.frombuffer(memory, dtype=np.uint8, count=nbytes))
        return held[1]
