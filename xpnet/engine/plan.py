"""THE plan: which pass computes a batch's gradients, decided in one function, :func:`choose`.

Every caller asks it -- the trainer for each batch size, the benchmarks, the scikit-learn
L-BFGS objective, the command line's "compiling..." line and its ``kernels`` JSON key --
and nobody else decides. A :class:`Pass` knows its name, runs, warms up (compiles a JIT
kernel ahead of the first epoch) and keeps the gradients of a logged pass for the update
that follows it.

The passes, in the order :func:`choose` considers them:

==================  ==========================================================================
``plain``           :func:`xpnet.core.network.gradients` on all rows at once: up to ``SMALL``
                    rows (the tutorials, operation for operation), dropout, batch norm
``numba-fused``     one hidden layer, at most 8 inputs and 4 outputs: forward, loss and every
                    gradient in one compiled sweep per row block (numba, ``kernels="jit"``)
``numba-layers``    any net whose activations are xpnet's: the generic pass with its
                    elementwise work fused around BLAS (numba, ``kernels="jit"``)
``numpy-gram``      one hidden layer, at most 16 inputs, few outputs, activations transposed
                    (NumPy, ``kernels="numpy"``)
``generic``         row chunks of :func:`xpnet.core.network.gradients` on fixed lanes
                    (:mod:`xpnet.engine.fullbatch`), with each backend's primitives
==================  ==========================================================================

A kernel is an object with ``name``, ``family`` (``"numpy"`` or ``"jit"``: what
``kernels=`` selects it by), ``supports(spec, library, dtype, rows) -> bool`` and
``prepare(spec, W, b, scale, with_loss)`` returning lanes (``lane_total(X, T, chunks, rows)``
and ``combine(totals) -> Gradients``); compiled ones also have ``warm_up(spec, dtype)`` and
``needs_compile(spec, dtype)``. Every kernel is tested against the generic pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from ..core.network import gradients as plain_gradients
from ..core.ops import Gradients, Ops
from ..errors import XpnetValueError, check_choice
from . import fullbatch
from .kernels import numba_fused, numba_layers, numba_support, numpy_gram
from .numpy_ops import SMALL

CHOICES = ("auto", "numpy", "jit")  # kernels=: any kernel, the NumPy ones only, the compiled ones only
KERNELS = (numba_fused.KERNEL, numba_layers.KERNEL, numpy_gram.KERNEL)  # "auto" takes the first that supports a case
JIT_HINT = "pip install -U numba (in a clone of xpnet: pip install '.[jit]')"


class Pass:
    """One way of computing a batch's gradients, chosen by :func:`choose`.

    Call it as ``pass_(W, b, X, T, scale=None, with_loss=False, bn=None, masks=None)``:
    :func:`xpnet.core.network.gradients`' arguments (``scale``: the row count of a mean,
    None for a sum), whatever computes them; :attr:`call` takes the first six positionally
    and is the cheapest way in.
    """

    def __init__(self, name: str, ops: Ops, spec, dtype: str, kernel=None, reason: str = "", finish=None):
        self.name, self.ops, self.spec, self.kernel, self.reason = name, ops, spec, kernel, reason
        self.dtype_name = dtype
        # the pass itself, bound once: ``call(W, b, X, T, scale, with_loss)`` is it, with no Python frame
        # of its own (a tiny net's epoch is mostly calls), unless a logged pass's gradients are kept
        run: Callable[..., Gradients] = functools.partial(plain_gradients, ops, spec) if name == "plain" else \
            functools.partial(fullbatch.chunked, ops, spec, kernel)
        if finish is not None:  # e.g. data-parallel training: the processes' sums, in the pass itself
            run = functools.partial(_finished, run, finish)
        self.run = run
        self.call: Callable[..., Gradients] = run

    def __repr__(self) -> str:
        return f"Pass({self.name!r})"

    def __call__(self, W, b, X, T, scale=None, with_loss: bool = False, *, bn=None, masks=None) -> Gradients:
        if bn is None and masks is None:
            return self.call(W, b, X, T, scale, with_loss)
        return plain_gradients(self.ops, self.spec, W, b, X, T, scale, with_loss, bn=bn, masks=masks)

    def logged(self, W, b, X, T, scale=None) -> Gradients:
        """The pass with its summed data loss, kept: the next :attr:`call` with the same arrays (the
        update after a logging point, before the weights change) returns it without a pass."""
        grads = self.run(W, b, X, T, scale, True)
        run = self.run

        def kept(W2, b2, X2, T2, scale=None, with_loss=False):
            self.call = run  # one use only
            if W2 is W and b2 is b and X2 is X and T2 is T:
                return grads
            return run(W2, b2, X2, T2, scale, with_loss)

        self.call = kept
        return grads

    def needs_compile(self) -> bool:
        """Whether a first run would compile a JIT kernel (not load it from numba's cache)."""
        kernel = self.kernel
        return kernel is not None and hasattr(kernel, "needs_compile") and kernel.needs_compile(
            self.spec, self.dtype_name)

    def warm_up(self, before=None, always: bool = False) -> float | None:
        """Compile ahead what this pass runs, if it needs compiling (``always``: load it from
        numba's cache too, to time that apart): ``before()`` is called first (the command line
        says "compiling..." there); the seconds it took, or None when nothing was compiled."""
        kernel = self.kernel
        if not (self.needs_compile() or (always and kernel is not None and hasattr(kernel, "warm_up"))):
            return None
        if before is not None:
            before()
        return self.kernel.warm_up(self.spec, self.dtype_name)


def _finished(run, finish, W, b, X, T, scale=None, with_loss=False) -> Gradients:
    return finish(run(W, b, X, T, scale, with_loss), X.shape[0])


def choose(ops: Ops, spec, dtype: str, rows: int, kernels: str = "auto", finish=None) -> Pass:
    """THE pass for a batch of ``rows`` rows of a ``spec`` network in ``dtype`` on ``ops``'s backend.

    ``kernels`` chooses which whole-pass kernels may run (:data:`CHOICES`); ``"jit"``
    without numba is an error naming the install (never a silent substitute), while
    ``"auto"`` falls back to NumPy's kernels and says so in :attr:`Pass.reason`.
    ``finish(gradients, rows)``, when given, completes every pass (data-parallel training
    adds up the processes' sums there, so a logged pass's kept gradients are the summed ones).
    """
    check_choice("kernels", kernels, CHOICES)
    if kernels == "jit" and not numba_support.available():
        raise XpnetValueError(f"kernels='jit' needs numba: {numba_support.unavailable_reason()}; {JIT_HINT}, "
                              "or choose kernels='auto' (numba's kernels when it is installed, else NumPy's)")
    if rows <= SMALL or spec.dropout or spec.batch_norm:
        why = (f"up to {SMALL} rows" if rows <= SMALL else "dropout and batch norm need all rows at once")
        return Pass("plain", ops, spec, dtype, reason=f"one pass over all rows ({why})", finish=finish)
    for kernel in KERNELS:
        if kernels in ("auto", kernel.family) and kernel.supports(spec, ops.name, dtype, rows):
            return Pass(kernel.name, ops, spec, dtype, kernel, _reason(kernel, kernels, ops), finish)
    return Pass("generic", ops, spec, dtype, reason=_reason(None, kernels, ops), finish=finish)


def _reason(kernel, kernels: str, ops: Ops) -> str:
    """Why this pass runs, with what ``auto`` did without numba."""
    missing = (kernels == "auto" and ops.name == "numpy" and not numba_support.available())
    note = f" (numba's compiled kernels are not installed: {JIT_HINT})" if missing else ""
    if kernel is None:
        return "row chunks of the generic pass" + note
    return f"{kernel.name} kernel" + note


class Planner(dict):
    """The passes of one run by batch size, ``planner[rows]``: chosen once per size (a minibatch
    run has at most two), so an epoch asks :func:`choose` nothing (a dictionary lookup)."""

    def __init__(self, ops: Ops, spec, dtype: str, kernels: str = "auto", finish=None):
        super().__init__()
        self.ops, self.spec, self.dtype, self.kernels, self.finish = ops, spec, dtype, kernels, finish

    def __missing__(self, rows: int) -> Pass:
        found = self[rows] = choose(self.ops, self.spec, self.dtype, rows, self.kernels, self.finish)
        return found
