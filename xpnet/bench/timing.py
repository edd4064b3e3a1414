"""Timing: runners' samples interleaved, the machine's ceilings (best of several runs), peak memory
(of this process, and of a command's anonymous memory).

Every timed region ends with the backend's ``sync()``, so asynchronous devices (CuPy, torch
on CUDA) are timed for the work they really did.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time

import numpy as np

from ..backend import get_backend
from ..backend import itemsize as dtype_bytes
from ..core.activations import get_hidden
from ..errors import check_choice, check_positive
from .cost import ACTIVATIONS
from .machine import default_ceiling_sizes
from .probes import MatmulProbe


def time_interleaved(runners, *, repeat: int, epochs: int = 1, warmup: int = 1, clock=time.perf_counter):
    """Seconds per epoch of each runner: ``repeat`` samples each, interleaved.

    Each runner first does ``warmup`` untimed samples. Then, ``repeat`` times, every runner
    does one timed sample -- ``clock()``, ``runner.run(epochs)`` (which ends with the
    backend's ``sync()``), ``clock()`` -- in alternating order, so slow phases of a busy
    machine hit every runner alike.

    Returns
    -------
    list of list of float
        ``times[i][k]``: seconds per epoch of runner ``i`` in sample ``k``.
    """
    check_positive("repeat", repeat, integer=True)
    check_positive("epochs", epochs, integer=True)
    for runner in runners:
        for _ in range(warmup):
            runner.run(epochs)
    times: list[list[float]] = [[] for _ in runners]
    order = list(range(len(runners)))
    for k in range(repeat):
        for i in (order if k % 2 == 0 else order[::-1]):
            start = clock()
            runners[i].run(epochs)
            times[i].append((clock() - start) / epochs)
    return times


def best_seconds(fn, sync, repeat: int, clock=time.perf_counter) -> float:
    """Fastest of ``repeat`` synced runs of ``fn`` after one warm-up: a ceiling, and noise only slows."""
    fn()
    sync()
    samples = []
    for _ in range(repeat):
        start = clock()
        fn()
        sync()
        samples.append(clock() - start)
    return min(samples)


def measure_ceilings(backend, dtype: str = "float32", *, activation: str = "tanh", matmul_size=None,
                     copy_elements=None, activation_elements=None, repeat: int = 5,
                     clock=time.perf_counter) -> dict:
    """The machine's limits on ``backend`` in ``dtype``, each the best of ``repeat`` synced runs.

    The best, not the median: a ceiling is what the hardware can do, and a busy machine
    only ever makes a run slower. (The tanh floor depends on a case's size: it is measured
    per case, see :class:`~xpnet.bench.TanhFloor`.)

    Returns
    -------
    dict
        ``matmul_gflops`` (``A @ B``, both ``(n, n)``: 2n^3 FLOPs), ``copy_gbytes_per_second``
        (a copy of a large array: bytes read + written), ``activation_elements_per_second``
        (the hidden activation on a large array), and the sizes used.
    """
    backend = get_backend(backend)
    check_choice("activation", activation, ACTIVATIONS)
    sizes = default_ceiling_sizes(backend)
    n = matmul_size or sizes["matmul_size"]
    m = copy_elements or sizes["copy_elements"]
    k = activation_elements or sizes["activation_elements"]
    xp, dt = backend.xp, backend.dtype(dtype)
    probe = MatmulProbe(backend, dtype, n)
    big = xp.ones((m,), dtype=dt, device=backend.device)
    Z = backend.asarray(np.random.default_rng(1).standard_normal(k, dtype=np.dtype(dtype)), dt)
    act = get_hidden(activation).forward
    matmul_s = best_seconds(lambda: probe.A @ probe.B, backend.sync, repeat, clock)
    copy_s = best_seconds(lambda: xp.asarray(big, copy=True), backend.sync, repeat, clock)
    act_s = best_seconds(lambda: act(xp, Z), backend.sync, repeat, clock)
    return {
        "backend": backend.name,
        "device": backend.device_name(),
        "dtype": dtype,
        "matmul_gflops": probe.gflops(matmul_s),
        "matmul_size": n,
        "copy_gbytes_per_second": 2 * m * dtype_bytes(dtype) / copy_s / 1e9,
        "copy_bytes": m * dtype_bytes(dtype),
        "activation": activation,
        "activation_elements_per_second": k / act_s,
        "activation_elements": k,
    }


def peak_memory(fn, backend=None) -> dict | None:
    """This process's resident memory before and at its peak while ``fn()`` runs, in bytes.

    Linux only (the peak is reset through ``/proc/self/clear_refs`` and read back as
    ``VmHWM``); None elsewhere. For a device backend (CuPy, CUDA torch) the device's peak
    comes instead, as ``device_peak_bytes`` (:meth:`xpnet.Backend.peak_memory`: CuPy's pool).
    """
    if backend is not None and not backend.uses_host_memory():
        backend.reset_peak_memory()
        fn()
        backend.sync()
        return {"device_peak_bytes": backend.peak_memory()}
    try:
        before = _status_bytes("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except (OSError, KeyError):
        return None
    fn()
    return {"rss_before_bytes": before, "peak_rss_bytes": _status_bytes("VmHWM")}


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def watch_memory(cmd, *, limit_bytes: int | None = None, interval: float = 0.02, env=None, cwd=None,
                 timeout: float | None = None) -> dict | None:
    """Run the command ``cmd`` (a list) and follow its anonymous resident memory.

    Every ``interval`` seconds ``RssAnon`` is read from ``/proc/PID/status``: the process's own
    memory, the page cache and mapped files not counted (what a memory-mapped dataset must keep
    small). When it passes ``limit_bytes`` the process is killed (a guard for a shared machine).
    Linux only: None elsewhere. A peak shorter than ``interval`` may be missed.

    Returns
    -------
    dict
        ``peak_anon_bytes``, ``returncode``, ``stopped`` (killed at ``limit_bytes``, or at
        ``timeout`` seconds), ``seconds``, ``stdout`` and ``stderr`` (their last 4,000 characters).
    """
    if not os.path.exists("/proc/self/status"):
        return None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        peak, stopped = 0, False
        while proc.poll() is None:
            anon = _anon_bytes(proc.pid)
            peak = max(peak, anon)
            over = limit_bytes is not None and anon > limit_bytes
            if over or (timeout is not None and time.perf_counter() - start > timeout):
                proc.kill()
                stopped = True
                break
            time.sleep(interval)
        proc.wait()
        seconds = time.perf_counter() - start
        texts = []
        for f in (out, err):
            f.seek(0)
            texts.append(f.read().decode(errors="replace")[-4000:])
    return {"peak_anon_bytes": peak, "returncode": proc.returncode, "stopped": stopped, "seconds": seconds,
            "stdout": texts[0], "stderr": texts[1]}


def _anon_bytes(pid: int) -> int:
    """``RssAnon`` of process ``pid`` in bytes; 0 once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0
