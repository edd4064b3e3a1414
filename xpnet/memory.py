"""Memory: what a process may really use, and early, clear failures instead of running out.

:func:`available_bytes` is the smallest of the limits that bind a process on Linux: the
host's ``MemAvailable``, its cgroup's memory limit minus what the cgroup uses (v2
``memory.max``/``memory.current``, v1 ``memory.limit_in_bytes``/``usage_in_bytes``, at
every level of the hierarchy; the inactive page cache counts as free, since the kernel
reclaims it before it kills), and ``RLIMIT_AS`` (``ulimit -v``) minus the process's
current virtual size. :func:`require` refuses a size read from outside (a flag, a file
header, a checkpoint's meta) before anything of that size is allocated.

:func:`estimate_bytes` counts what a training run holds at its peak: the data (inputs and
one-hot targets) it holds, the parameters with their gradients and an update's temporaries,
and the activations of the rows processed at once (each layer's input, logits and delta: one
chunk per lane that really runs at the same time). Data memory-mapped from a file counts by
its chunk buffers only (``resident_rows``): its pages are page cache, which the kernel
reclaims, and :func:`resident_anonymous` (``RssAnon``) is what a process really holds.
:func:`check_fits` compares it with what the backend's device has free
(:meth:`xpnet.Backend.available_memory`: :func:`available_bytes` for CPU backends; for CuPy
the driver's free memory plus the free blocks its pool caches) and raises
:class:`XpnetMemoryError` when it does not fit. Training calls it before the data goes to
the device, so the data is counted once and an impossible run fails before any copy.
"""

from __future__ import annotations

import functools
import os

from .errors import XpnetValueError, check_number

HEADROOM = 0.9  # use at most this fraction of the free memory
UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a page-rounded 2**63 - 1
REQUIRE_FIX = "free some memory or ask for less"
UNCHECKED = 1 << 20  # sizes below 1 MiB are not checked: reading the limits costs ~0.1 ms, and a
#                      process that cannot find 1 MiB fails anyway (tiny problems are made and trained often)


class XpnetMemoryError(XpnetValueError, MemoryError):
    """A run would not fit in the device's memory (also raised for a device out-of-memory error)."""


# -- what the process may use ------------------------------------------------------------------

def available_bytes(backend=None) -> tuple[int | None, str]:
    """Bytes this process may still allocate, and which limit bound it.

    Parameters
    ----------
    backend : Backend, optional
        Where the arrays will live. A GPU backend (CuPy, CUDA torch) reports its free device
        memory; CPU backends and None report the host limits.

    Returns
    -------
    (bytes, source) : (int or None, str)
        ``bytes`` is None when no limit is known. ``source`` names the binding limit:
        ``"MemAvailable"``, ``"cgroup limit"``, ``"RLIMIT_AS (ulimit -v)"`` or
        ``"free memory on <backend>"``.
    """
    if backend is not None:  # a Backend (this module sits below xpnet.backend: no import of it)
        if not backend.uses_host_memory():
            return backend.available_memory(), f"free memory on {backend.describe()}"
    found = [(free, source) for source, free in (("MemAvailable", meminfo_available()),
                                                 ("cgroup limit", cgroup_available()),
                                                 ("RLIMIT_AS (ulimit -v)", rlimit_available()))
             if free is not None]
    if not found:
        return None, "unknown"
    free, source = min(found, key=lambda pair: pair[0])
    return max(int(free), 0), source


def require(nbytes, what: str, backend=None, *, fix: str = REQUIRE_FIX) -> None:
    """Raise :class:`XpnetMemoryError` unless ``nbytes`` fit in what :func:`available_bytes` gives.

    Call it before allocating anything whose size comes from outside (a flag, a file header,
    a checkpoint's meta). At most :data:`HEADROOM` of the available memory is used.

    Parameters
    ----------
    nbytes : int
        The allocation's size (any whole number: a hostile header may claim 10**400 bytes).
    what : str
        What would be allocated, for the message (``"the model in 'm.npz' ([2, 1000000000, 2])"``).
    backend : Backend, optional
        Where it will live (see :func:`available_bytes`).
    fix : str
        How to get by with less, ending the message.
    """
    check_number("nbytes", nbytes, low=0, integer=True)
    if nbytes < UNCHECKED:
        return
    free, source = available_bytes(backend)
    if free is None or nbytes <= HEADROOM * free:
        return
    usable = "" if nbytes > free else f", of which xpnet uses at most {HEADROOM:.0%}"
    raise XpnetMemoryError(f"{what} would need about {format_bytes(nbytes)} but only {format_bytes(free)} is "
                           f"available ({source}{usable}); {fix}")


def meminfo_available(path: str = "/proc/meminfo") -> int | None:
    """``MemAvailable`` of the host in bytes (sysconf's free pages where there is no /proc)."""
    try:
        with open(path) as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def cgroup_available(proc_cgroup: str = "/proc/self/cgroup", mountinfo: str = "/proc/self/mountinfo") -> int | None:
    """The tightest cgroup memory limit minus usage over this process's cgroup and its parents.

    Usage leaves out the inactive page cache (``inactive_file`` of ``memory.stat``), which
    the kernel reclaims before it reaches the limit. None when no limit applies or the
    files cannot be read (not Linux, no memory controller).
    """
    found = []
    for directory, top, version in _cgroup_directories(proc_cgroup, mountinfo):
        names = (("memory.max", "memory.current", "inactive_file") if version == 2 else
                 ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"))
        while True:
            free = _cgroup_level(directory, *names)
            if free is not None:
                found.append(free)
            if os.path.normpath(directory) == os.path.normpath(top):
                break
            directory = os.path.dirname(directory)
    return min(found) if found else None


@functools.lru_cache(maxsize=8)
def _cgroup_directories(proc_cgroup: str, mountinfo: str) -> tuple[tuple[str, str, int], ...]:
    """``(directory of this process's cgroup, mount point, version)`` per memory hierarchy
    (found once per process: reading mountinfo is most of what a check costs)."""
    try:
        with open(proc_cgroup) as f:
            memberships = [line.rstrip("\n").split(":", 2) for line in f if line.count(":") >= 2]
        with open(mountinfo) as f:
            mounts = [line.split() for line in f]
    except OSError:
        return ()
    found = []
    for fields in mounts:
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if len(fields) < dash + 4 or dash < 5:
            continue
        root, point, fstype, options = fields[3], fields[4], fields[dash + 1], fields[dash + 3].split(",")
        for hierarchy, controllers, path in memberships:
            v2 = fstype == "cgroup2" and hierarchy == "0" and controllers == ""
            v1 = fstype == "cgroup" and "memory" in options and "memory" in controllers.split(",")
            if v2 or v1:
                # inside a mount of a sub-tree (containers) the path is relative to its root
                relative = path[len(root):] if root != "/" and path.startswith(root) else path
                directory = os.path.join(point, relative.lstrip("/"))
                found.append((directory if os.path.isdir(directory) else point, point, 2 if v2 else 1))
    return tuple(found)


def _cgroup_level(directory: str, limit_file: str, usage_file: str, inactive_key: str) -> int | None:
    try:
        with open(os.path.join(directory, limit_file)) as f:
            text = f.read().strip()
        if text == "max":
            return None
        limit = int(text)
        if limit >= UNLIMITED:
            return None
        with open(os.path.join(directory, usage_file)) as f:
            usage = int(f.read().strip())
    except (OSError, ValueError):
        return None
    inactive = 0
    try:
        with open(os.path.join(directory, "memory.stat")) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == inactive_key:
                    inactive = int(value)
                    break
    except (OSError, ValueError):
        pass
    return max(limit - max(usage - inactive, 0), 0)


def rlimit_available() -> int | None:
    """``RLIMIT_AS`` (the soft limit) minus the current virtual size; None when unlimited."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, OSError, ValueError, AttributeError):  # pragma: no cover - not POSIX
        return None
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    size = virtual_size()
    return max(soft - (size or 0), 0)


def resident_anonymous(path: str = "/proc/self/status") -> int | None:
    """This process's resident anonymous memory in bytes (``RssAnon``: what it allocated and
    touched, not the page cache of the files it maps), or None where Linux does not say."""
    try:
        with open(path) as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def virtual_size() -> int | None:
    """This process's virtual memory size in bytes (what ``RLIMIT_AS`` counts), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


# -- training runs ----------------------------------------------------------------------------

def estimate_bytes(layer_sizes, n_samples: int, itemsize: int, rows_at_once: int | None = None, *,
                   resident_rows: int | None = None, with_data: bool = True) -> int:
    """Bytes a training run needs at its peak.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_inputs, hidden..., n_outputs]``.
    n_samples : int
        Rows of training data.
    itemsize : int
        Bytes per number (4 for float32, 8 for float64).
    rows_at_once : int, optional
        Rows whose activations are alive together (a batch, or the chunks of the lanes that
        run at once); default all.
    resident_rows : int, optional
        Rows of data held in memory at once; default all ``n_samples``. Data streamed
        from a memory-mapped file holds only its chunk buffers (e.g. two chunks: the one
        computing and the one prefetched): the file itself is page cache, which the
        kernel reclaims, not memory of the process.
    with_data : bool, default True
        Count the data (False when it is already on the device).
    """
    rows = n_samples if rows_at_once is None else min(rows_at_once, n_samples)
    held = n_samples if resident_rows is None else min(resident_rows, n_samples)
    n_in, n_out = layer_sizes[0], layer_sizes[-1]
    data = held * (n_in + n_out) if with_data else 0
    params = sum((a + 1) * b for a, b in zip(layer_sizes[:-1], layer_sizes[1:]))
    widths = sum(layer_sizes[1:])
    # activations: each layer keeps its input; a step also holds logits, outputs and deltas
    activations = rows * (sum(layer_sizes[:-1]) + 3 * widths)
    return int((data + 4 * params + activations) * itemsize)


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``; any size, even one no float can hold (a hostile header's)."""
    if n >= 1 << 60:
        return f"{float(min(n, 10**300)) / (1 << 40):.3g} TiB"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError  # pragma: no cover


def check_fits(backend, layer_sizes, n_samples: int, itemsize: int, rows_at_once: int | None = None, *,
               resident_rows: int | None = None, placed: bool = False) -> int:
    """Raise :class:`XpnetMemoryError` when the run would not fit; return the estimate
    (:func:`estimate_bytes`; ``resident_rows`` for data streamed from a file).

    Call it before the data goes to the device (``placed=True`` when it already is there:
    it is then not counted again).
    """
    need = estimate_bytes(layer_sizes, n_samples, itemsize, rows_at_once, resident_rows=resident_rows,
                          with_data=not placed)
    free = backend.available_memory() if need >= UNCHECKED else None
    if free is not None and need > HEADROOM * free:
        raise XpnetMemoryError(
            f"this run needs about {format_bytes(need)} (data {n_samples} x {layer_sizes[0]}, layers "
            f"{list(layer_sizes)}) but {backend.describe()} has {format_bytes(free)} free; reduce "
            "--n-samples or the --hidden widths, use float32, or train in minibatches (--batch-size)"
        )
    return need


def out_of_memory(backend, exc: BaseException, layer_sizes, n_samples: int, itemsize: int) -> XpnetMemoryError:
    """The same message for an out-of-memory error the device raised during training."""
    need = estimate_bytes(layer_sizes, n_samples, itemsize)
    return XpnetMemoryError(
        f"{backend.describe()} ran out of memory ({type(exc).__name__}); this run needs about "
        f"{format_bytes(need)}; reduce --n-samples or the --hidden widths, use float32, or train in "
        "minibatches (--batch-size)"
    )

