"""CPU threads: how many xpnet may use, BLAS's pool, and the lanes of a pass on a pool of threads."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor


def run_lanes(fn, lanes, parallel: bool = True) -> list:
    """``[fn(lane) for lane in lanes]`` with single-threaded BLAS, on up to ``cpu_threads()``
    threads of a pool kept for the process (``parallel=False``: in this thread)."""
    workers = min(cpu_threads(), len(lanes)) if parallel else 1
    with blas_single_threaded():
        if workers <= 1:
            return [fn(lane) for lane in lanes]
        return list(_pool(workers).map(fn, lanes))


_POOLS: dict = {}  # worker count: ThreadPoolExecutor (starting threads costs ~0.5 ms a pass)
_POOLS_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    with _POOLS_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="xpnet-lane")
        return _POOLS[workers]


if hasattr(os, "register_at_fork"):  # a forked child has the pools' objects but not their threads
    os.register_at_fork(after_in_child=_POOLS.clear)


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
    return sys.modules.get(name)
