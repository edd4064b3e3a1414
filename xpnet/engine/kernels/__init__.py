"""Optional whole-pass kernels: faster passes for the cases they declare, the generic pass otherwise.

A kernel computes the same gradients as :func:`xpnet.core.network.gradients` over one lane of row
chunks, its own way (its own layout, fused loops, compiled code). Each says which cases it
takes with ``supports(spec, backend, dtype, n_rows)``; :func:`select` returns the first
that does, and :mod:`xpnet.engine.fullbatch` runs the generic pass when none does. Every kernel is
tested against the generic pass (``tests/engine/test_kernels.py``, ``tests/engine/test_jit.py``).

The kernels, in the order ``kernels="auto"`` tries them:

==================  ======  ===========================================================
``numba-fused``     jit     one hidden layer, at most 8 inputs and 4 outputs (the
                            tutorials' nets): forward, loss and every gradient in one
                            compiled sweep per row block (:mod:`.numba_fused`)
``numba-layers``    jit     any net whose activations are xpnet's: the generic pass with
                            its elementwise work fused by numba around BLAS
                            (:mod:`.numba_layers`)
``numpy-gram``      numpy   one hidden layer, at most 16 inputs, few outputs, activations
                            transposed (:mod:`.numpy_gram`)
==================  ======  ===========================================================

The ``jit`` ones need numba (``pip install numba``, or ``pip install '.[jit]'`` in a clone of
xpnet), imported only when one of them is about to be chosen (:mod:`.numba_support`); without
it they never support a case and nothing else changes.

The interface, for a new kernel (numba, CuPy...):

``name``
    Reported in results (``"numpy-gram"``).
``family``
    What ``kernels=`` selects it by: ``"numpy"`` (plain NumPy) or ``"jit"`` (compiled).
``supports(spec, backend, dtype, n_rows) -> bool``
    ``spec`` a :class:`xpnet.core.network.Spec`, ``backend`` the library's name (``"numpy"``),
    ``dtype`` ``"float32"`` or ``"float64"``, ``n_rows`` the rows of the whole pass.
``plan(spec, W, b, scale, with_loss)``
    An object with ``lane_total(X, T, chunks, rows)`` (the sums of one lane's chunks,
    ``chunks`` a list of ``(start, stop)`` row ranges of at most ``rows`` rows) and
    ``combine(totals) -> Gradients`` (the lanes' sums added in lane order, finished).
``warm_up(spec, dtype) -> seconds`` and ``needs_compile(spec, dtype) -> bool`` (compiled kernels)
    Compile ahead of the first pass, and whether that would compile rather than load a
    cache: front ends call them to say "compiling..." and to time compilation apart.
"""

from __future__ import annotations

from typing import Any, Protocol

from ...errors import check_choice
from . import numba_fused, numba_layers, numpy_gram

CHOICES = ("auto", "numpy", "jit")  # kernels=: any kernel, the NumPy ones only, the compiled ones only


class Kernel(Protocol):
    name: str
    family: str

    def supports(self, spec, backend: str, dtype: str, n_rows: int) -> bool: ...

    def plan(self, spec, W, b, scale, with_loss: bool) -> Any: ...


# "auto" takes the first that supports a case: the compiled ones when numba is installed
KERNELS: list = [numba_fused.KERNEL, numba_layers.KERNEL, numpy_gram.KERNEL]


def select(spec, backend: str, dtype: str, n_rows: int, choice: str = "auto"):
    """The first kernel of family ``choice`` (``"auto"``: any) that supports the case, else None."""
    check_choice("kernels", choice, CHOICES)
    for kernel in KERNELS:
        if choice in ("auto", kernel.family) and kernel.supports(spec, backend, dtype, n_rows):
            return kernel
    return None


def warm_up(spec, backend: str, dtype: str, n_rows: int, choice: str = "auto", before=None) -> float | None:
    """Compile ahead what a pass of ``n_rows`` will run, if its kernel needs compiling (a JIT
    kernel's first run, before numba's cache has it): ``before()`` is called first (the CLI says
    so there); the seconds it took, or None when nothing needed compiling."""
    kernel = select(spec, backend, dtype, n_rows, choice)
    if kernel is None or not hasattr(kernel, "needs_compile") or not kernel.needs_compile(spec, dtype):
        return None
    if before is not None:
        before()
    return kernel.warm_up(spec, dtype)
