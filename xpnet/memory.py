"""Memory estimates: fail early, with the estimate and the fix, instead of running out.

:func:`estimate_bytes` counts what a training run holds at its peak: the data (inputs and
one-hot targets), the parameters with their gradients and an update's temporaries, and the
activations of the rows processed at once (each layer's input, logits and delta).
:func:`check_fits` compares it with what the backend's device has free
(:meth:`xpnet.Backend.available_memory`: host RAM for CPU backends, free device memory for
CuPy) and raises :class:`XpnetMemoryError` when it does not fit.
"""

from __future__ import annotations

from .errors import XpnetValueError

HEADROOM = 0.9  # use at most this fraction of the free memory


class XpnetMemoryError(XpnetValueError, MemoryError):
    """A run would not fit in the device's memory (also raised for a device out-of-memory error)."""


def estimate_bytes(layer_sizes, n_samples: int, itemsize: int, rows_at_once: int | None = None) -> int:
    """Bytes a training run needs at its peak.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_inputs, hidden..., n_outputs]``.
    n_samples : int
        Rows of training data held on the device.
    itemsize : int
        Bytes per number (4 for float32, 8 for float64).
    rows_at_once : int, optional
        Rows whose activations are alive together (a batch or chunk); default all.
    """
    rows = n_samples if rows_at_once is None else min(rows_at_once, n_samples)
    n_in, n_out = layer_sizes[0], layer_sizes[-1]
    data = n_samples * (n_in + n_out)
    params = sum((a + 1) * b for a, b in zip(layer_sizes[:-1], layer_sizes[1:]))
    widths = sum(layer_sizes[1:])
    # activations: each layer keeps its input; a step also holds logits, outputs and deltas
    activations = rows * (sum(layer_sizes[:-1]) + 3 * widths)
    return int((data + 4 * params + activations) * itemsize)


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError  # pragma: no cover


def check_fits(backend, layer_sizes, n_samples: int, itemsize: int, rows_at_once: int | None = None) -> int:
    """Raise :class:`XpnetMemoryError` when the run would not fit; return the estimate."""
    need = estimate_bytes(layer_sizes, n_samples, itemsize, rows_at_once)
    free = backend.available_memory()
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


def available_bytes(backend=None) -> tuple[int | None, str]:
    """Bytes this process may still allocate, and what bounds it (host RAM for CPU backends)."""
    if backend is not None:
        return backend.available_memory(), backend.describe()
    from .backend import host_available_memory

    return host_available_memory(), "available memory"


def require(nbytes: int, what: str, backend=None) -> None:
    """Raise :class:`XpnetMemoryError` before allocating ``nbytes`` for ``what`` when they cannot fit."""
    free, source = available_bytes(backend)
    if free is not None and nbytes > HEADROOM * free:
        raise XpnetMemoryError(f"{what} would need about {format_bytes(nbytes)} but only {format_bytes(free)} is "
                               f"available ({source}); use a smaller size or a machine with more memory")
