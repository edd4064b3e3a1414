"""Data from disk: a case's rows written to a ``.npy`` file and mapped, and the page cache's read rate.

``xpnet bench --source file`` writes each case's synthetic rows (the same numbers as in
memory: :func:`~xpnet.bench.runners.synthetic_blocks`) to a ``.npy`` file laid out as
``xpnet train --data`` reads one (the features, then the label as the last column), maps it
with ``np.load(path, mmap_mode="r")`` and trains on the mapped columns: every epoch reads the
rows from the page cache. Beside it, :class:`PageCacheProbe` reads the same file with
``read()`` into one reused buffer: the page cache's read bandwidth, the floor of any pass
over streamed data (bytes of the file / that rate), its samples interleaved with the epoch's.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

from ..backend import itemsize as dtype_bytes
from .runners import Case, synthetic_blocks

READ_BLOCK = 8 * 2**20  # bytes per read() of the probe: large enough for the copy to dominate


def file_bytes(case: Case) -> int:
    """Bytes of the case's ``.npy`` data (features and the label column, header excluded)."""
    return case.n_samples * (case.input_dim + 1) * dtype_bytes(case.dtype)


def disk_room(case: Case, folder: str) -> str | None:
    """Why the case's file cannot be written in ``folder`` (with 10% to spare); None when it fits."""
    need = file_bytes(case)
    free = shutil.disk_usage(folder).free
    if need <= 0.9 * free:
        return None
    return f"its file needs {need / 2**30:.1f} GiB, more than 90% of the {free / 2**30:.1f} GiB free in {folder}"


def write_case_npy(case: Case, path: str, seed: int = 0) -> str:
    """Write the case's rows to the ``.npy`` file ``path``, block by block (memory stays bounded):
    shape (N, input_dim + 1) in the case dtype, the label last. Returns ``path``."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(case.dtype),
                                    shape=(case.n_samples, case.input_dim + 1))
    for start, X, y in synthetic_blocks(case, seed):
        out[start:start + len(X), :-1] = X
        out[start:start + len(X), -1] = y
    out.flush()
    del out
    return path


def map_case_npy(path: str, case: Case) -> tuple:
    """``(X, labels)`` of a file :func:`write_case_npy` wrote: X the mapped feature columns (a view
    of ``np.load(path, mmap_mode="r")``, nothing copied), the labels read once as integers."""
    mapped = np.load(path, mmap_mode="r")
    if mapped.shape != (case.n_samples, case.input_dim + 1):
        raise ValueError(f"{path} holds {mapped.shape}, not the case's ({case.n_samples}, {case.input_dim + 1})")
    return mapped[:, :-1], np.asarray(mapped[:, -1]).astype(np.int64)


class CaseFile:
    """A case's data file in a fresh temporary folder under ``folder`` (default: the system's
    temporary folder), removed by :meth:`close` (or at the end of a ``with`` block)."""

    def __init__(self, case: Case, folder: str | None = None, seed: int = 0):
        self.folder = tempfile.mkdtemp(prefix="xpnet-bench-", dir=folder)
        self.path = os.path.join(self.folder, "data.npy")
        try:
            write_case_npy(case, self.path, seed)
        except BaseException:
            self.close()
            raise
        self.bytes = file_bytes(case)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PageCacheProbe:
    """The page cache's read bandwidth as a runner: :meth:`run` reads the whole file with
    ``read()`` into one reused buffer (one thread), so its samples interleave with an epoch's
    and the best is the floor of a pass over the file's rows. The first run brings the file
    into the page cache if it was not (a warm-up, untimed by :func:`~xpnet.bench.time_interleaved`)."""

    def __init__(self, path: str, block: int = READ_BLOCK):
        self.path = path
        self.bytes = os.path.getsize(path)
        self.buffer = bytearray(min(block, max(self.bytes, 1)))

    def run(self, epochs: int = 1) -> None:
        for _ in range(epochs):
            self.read_once()

    def read_once(self) -> int:
        """Read the whole file once; returns the bytes read."""
        view, total = memoryview(self.buffer), 0
        with open(self.path, "rb", buffering=0) as f:
            while n := f.readinto(view):
                total += n
        return total

    def gbytes_per_second(self, seconds: float) -> float:
        return self.bytes / seconds / 1e9


def page_cache_entries(probe: PageCacheProbe, samples: list, epoch_seconds: float, data_bytes: int) -> dict:
    """The row entries of a file source: the bytes an epoch reads and their rate, against the
    probe's best sample (the page cache's read bandwidth and the floor it sets)."""
    best = min(samples)
    rate = probe.gbytes_per_second(best)
    floor = data_bytes / (rate * 1e9)
    return {"file_bytes": data_bytes, "read_gbytes_per_second": data_bytes / epoch_seconds / 1e9,
            "page_cache_gbytes_per_second": rate, "page_cache_floor_seconds": floor,
            "x_over_page_cache_floor": epoch_seconds / floor}
