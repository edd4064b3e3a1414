"""numba for the JIT kernels, imported lazily: whether it is there, the jitted modules, compiling ahead.

Nothing in xpnet imports numba until a JIT kernel is about to be chosen for a case it
supports: :func:`available` imports it then (once; a broken or too old numba counts as
missing, :func:`unavailable_reason` says why). The jitted code lives in modules that import
numba at their top (:mod:`~xpnet.engine.kernels.numba_math`, :mod:`~xpnet.engine.kernels.numba_elementwise`,
:mod:`~xpnet.engine.kernels.numba_fused_loops`), loaded by :func:`jitted`.

numba compiles a function at its first call and keeps the machine code in its on-disk cache
(``cache=True``: next to the modules, or in ``NUMBA_CACHE_DIR``), so only the first run on a
machine pays for it: about 1-3 s per kernel, measured with :meth:`Kernel.warm_up`.
"""

from __future__ import annotations

import importlib
import threading
import time

MIN_VERSION = (0, 60)  # the `jit` extra: numba>=0.60
_STATE: dict = {}
_LOCK = threading.Lock()


def available() -> bool:
    """Whether numba (>= 0.60) imports; imported once, on the first call."""
    with _LOCK:
        if "ok" not in _STATE:
            _STATE["ok"], _STATE["reason"] = _try_import()
        return _STATE["ok"]


def unavailable_reason() -> str | None:
    """Why the JIT kernels cannot run here (None when they can)."""
    return None if available() else _STATE["reason"]


def _try_import() -> tuple[bool, str | None]:
    try:
        numba = importlib.import_module("numba")
    except Exception as exc:  # missing, or broken against this NumPy: either way no JIT kernels
        return False, f"numba is not importable ({type(exc).__name__}: {exc})"
    version = tuple(int(p) for p in numba.__version__.split(".")[:2] if p.isdigit())
    if version < MIN_VERSION:
        return False, f"numba {numba.__version__} is older than 0.60"
    return True, None


COMPILED_OUTPUTS = ("softmax", "sigmoid", "identity")  # the outputs and losses the compiled loops know
COMPILED_LOSSES = ("cross_entropy", "squared", "binary_cross_entropy")


def ready(spec, dtype: str) -> bool:
    """What every JIT kernel needs of a case, besides its shape: a float dtype, xpnet's own
    output and loss (:func:`known_math`), and numba (checked last: it imports numba)."""
    return dtype in ("float32", "float64") and known_math(spec) and available()


def known_math(spec) -> bool:
    """The output and the loss are xpnet's own ones the compiled loops spell out (not a weighted
    loss, not the Poisson regressor's exp output: those take the other passes)."""
    from ...core.losses import LOSSES

    return (spec.output in COMPILED_OUTPUTS and spec.loss.name in COMPILED_LOSSES
            and LOSSES.get(spec.loss.name) is spec.loss)


def jitted(name: str):
    """The jitted module ``xpnet.engine.kernels.<name>`` (imports numba)."""
    return importlib.import_module(f"{__package__}.{name}")


class Kernel:
    """What the JIT kernels share: the family, numba's availability, compiling ahead of a run."""

    name = ""
    family = "jit"

    def supports(self, spec, library: str, dtype: str, n_rows: int) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def prepare(self, spec, W, b, scale, with_loss):  # pragma: no cover - overridden
        raise NotImplementedError

    def warm_up(self, spec, dtype: str) -> float:
        """Compile (or load from numba's cache) what a pass of ``spec`` in ``dtype`` runs, on a
        few made-up rows; the seconds it took. Later passes start at full speed."""
        import numpy as np

        start = time.perf_counter()
        sizes, n = spec.layer_sizes, 8  # zeros: the compiled code depends on the types, not the values
        W = [np.zeros((a, c), dtype) for a, c in zip(sizes[:-1], sizes[1:])]
        b = [np.zeros(c, dtype) for c in sizes[1:]] if spec.bias else None
        X = np.zeros((n, sizes[0]), dtype)
        T = np.zeros((n, sizes[-1]), dtype)
        T[:, 0] = 1
        for with_loss in (False, True):
            lanes = self.prepare(spec, W, b, n, with_loss)
            lanes.combine([lanes.lane_total(X, T, [(0, n)], n)])
        return time.perf_counter() - start

    def needs_compile(self, spec, dtype: str) -> bool:
        """Whether :meth:`warm_up` would compile (nothing for this case is compiled in this
        process, nor in numba's on-disk cache); True when that cannot be told."""
        try:
            return any(_not_ready(dispatcher, dtype) for dispatcher in self.dispatchers(spec, dtype))
        except Exception:  # numba's cache internals moved: say it may compile
            return True

    def dispatchers(self, spec, dtype: str) -> list:  # pragma: no cover - overridden
        raise NotImplementedError


def _not_ready(dispatcher, dtype: str) -> bool:
    """No version of ``dispatcher`` for ``dtype`` compiled in this process, nor in its disk cache
    for this machine (numba's cache internals: the caller guards against their changing)."""
    if any(dtype in str(sig) for sig in dispatcher.signatures):
        return False
    index = dispatcher._cache._cache_file._load_index()  # {(signature, machine, code hashes): file}
    machine = dispatcher.targetctx.codegen().magic_tuple()
    return not any(key[1] == machine and dtype in str(key[0]) for key in index)
