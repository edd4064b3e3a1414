"""What a benchmark times of xpnet: one case (:class:`Case`), xpnet's training step on it
(:class:`EpochRunner`, a *runner*: ``run(epochs)`` ends with a sync), and the memory a case
needs.

* :class:`EpochRunner`: xpnet's full-batch step, exactly as :func:`xpnet.fit` takes it
  (:func:`gradient_pass`, then :class:`xpnet.optim.SGD` with L2 on the weights).
* The memory a case needs (:func:`estimate_memory`) is :func:`xpnet.memory.estimate_bytes`
  plus the peers' own arrays (:func:`baseline_memory`), against
  :meth:`xpnet.Backend.available_memory` with :data:`xpnet.memory.HEADROOM` (:func:`too_big`).

The peers live in :mod:`~xpnet.bench.peers`, the probes of the machine in :mod:`~xpnet.bench.probes`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import memory
from ..backend import Backend, get_backend
from ..backend import itemsize as dtype_bytes
from ..engine import fullbatch
from ..engine.kernels import CHOICES as KERNEL_CHOICES
from ..engine.kernels import select as select_kernel
from ..engine.numpy_ops import get_ops
from ..errors import XpnetValueError, check_choice, check_positive
from ..mlp import MLP
from ..training import optim
from .cost import ACTIVATIONS

# The peers `compare` may name: PyTorch eager; the WildML tutorial's own NumPy float64 step;
# jax.jit of the same step; torch.compile of the torch step. JSON keys spell "-" as "_".
COMPARE = ("torch", "tutorial", "jax", "torch-compile")


@dataclass(frozen=True)
class Case:
    """One benchmark case: a network shape, a data size and where it runs.

    The network is ``input_dim -> hidden (activation) -> classes (softmax)`` trained with
    cross-entropy, full batch, mean gradient, L2 ``l2`` on the weights.
    """

    backend: str  # a name for xpnet.get_backend, e.g. "numpy", "torch", "cupy:0"
    dtype: str  # "float32" | "float64"
    n_samples: int  # rows in the full batch
    hidden: int  # width of the single hidden layer
    input_dim: int = 2  # features (2: the tutorials; 784: MNIST-sized)
    classes: int = 2  # softmax outputs
    activation: str = "tanh"  # hidden activation
    learning_rate: float = 0.01  # small, so weights stay tame over many timed epochs
    l2: float = 0.01  # L2 strength on the weights (WildML's reg_lambda)

    @property
    def layer_sizes(self) -> tuple:
        return (self.input_dim, self.hidden, self.classes)

    def check(self) -> None:
        for name in ("n_samples", "hidden", "input_dim"):
            check_positive(name, getattr(self, name), integer=True)
        check_positive("classes", self.classes, integer=True)
        if self.classes < 2:
            raise XpnetValueError(f"classes={self.classes} must be at least 2 (softmax output)")
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("dtype", self.dtype, ("float32", "float64"))


def compare_names(compare) -> tuple:
    """``compare`` (None, ``"torch"``, ``"torch,jax"`` or a sequence of names) as a tuple of checked names."""
    if compare is None:
        return ()
    items = [compare] if isinstance(compare, str) else list(compare)
    names = [n.strip() for item in items for n in item.split(",") if n.strip()]
    for name in names:
        check_choice("compare", name, COMPARE)
    return tuple(dict.fromkeys(names))


def compare_key(name: str) -> str:
    """The JSON key prefix of peer ``name``: ``"torch-compile"`` -> ``"torch_compile"``."""
    return name.replace("-", "_")


# -- the seam: the only code of xpnet.bench that knows the gradient pass's internals ----------
def gradient_pass(backend: Backend, spec, W, b, X, T, kernels: str = "auto") -> tuple:
    """``(dW, db)`` of the mean data loss over the whole batch: the full-batch gradient pass
    :func:`xpnet.fit` takes on ``backend`` (:func:`xpnet.engine.fullbatch.gradients`)."""
    grads = fullbatch.gradients(get_ops(backend), spec, W, b, X, T, "mean", kernel=kernels)
    return grads.dW, grads.db


def pass_kernel(backend: Backend, model, n: int, kernels: str = "auto") -> str:
    """What computes :func:`gradient_pass` for ``model`` on ``n`` rows: a kernel's name,
    ``"generic"`` or ``"plain"`` (:func:`xpnet.engine.fullbatch.pass_name`)."""
    return fullbatch.pass_name(get_ops(backend), model, n, kernels)


def warm_up_kernel(backend: Backend, model, n: int, kernels: str = "auto") -> tuple:
    """Compile (or load from numba's cache) the JIT kernel :func:`gradient_pass` runs for
    ``model`` on ``n`` rows, before any epoch: ``(seconds, whether it compiled)``; ``(0.0,
    False)`` when the pass has no JIT kernel."""
    kernel = chosen_kernel(backend, model, n, kernels)
    if kernel is None or not hasattr(kernel, "warm_up"):
        return 0.0, False
    compiles = kernel.needs_compile(model.spec, model.dtype_name)
    return kernel.warm_up(model.spec, model.dtype_name), compiles


def chosen_kernel(backend: Backend, model, n: int, kernels: str = "auto"):
    """The kernel of :mod:`xpnet.engine.kernels` that :func:`gradient_pass` runs for ``model`` on ``n``
    rows; None for the generic or plain pass."""
    if pass_kernel(backend, model, n, kernels) in ("generic", "plain"):
        return None
    return select_kernel(model.spec, get_ops(backend).name, model.dtype_name, n, kernels)


def rows_alive(case: Case, backend: Backend) -> int:
    """Rows whose activations :func:`gradient_pass` holds at once (its lanes' chunks)."""
    return fullbatch.rows_at_once(get_ops(backend), case.layer_sizes, dtype_bytes(case.dtype), case.n_samples)


# -- memory -----------------------------------------------------------------------------------
def estimate_memory(case: Case, *, compare=None, backend: Backend | None = None) -> int:
    """Bytes ``case`` needs at its peak (:func:`xpnet.memory.estimate_bytes`, with the rows the
    gradient pass holds at once), plus those of the peers in ``compare`` (:func:`baseline_memory`)."""
    backend = get_backend(case.backend) if backend is None else backend
    need = memory.estimate_bytes(case.layer_sizes, case.n_samples, dtype_bytes(case.dtype),
                                 rows_alive(case, backend))
    return need + sum(baseline_memory(case, name) for name in compare_names(compare))


def baseline_memory(case: Case, name: str) -> int:
    """Bytes the peer ``name`` needs beside xpnet's case: each holds the whole batch at once,
    torch and jax in the case dtype (activations, their gradients, the saved tensors), the
    tutorial in float64 (z1, a1 and four (N, hidden) temporaries of its backward line)."""
    check_choice("compare", name, COMPARE)
    N, d, h, c = case.n_samples, case.input_dim, case.hidden, case.classes
    if name == "tutorial":
        return 8 * (N * d + 6 * N * h + 6 * N * c)
    return dtype_bytes(case.dtype) * (N * d + 6 * N * c + 4 * N * h + 4 * (d * h + h * c + h + c)) + 8 * N


def too_big(case: Case, backend: Backend, *, compare=None, extra_bytes: int = 0) -> str | None:
    """Why ``case`` (with the peers in ``compare`` and ``extra_bytes`` more) cannot fit in the
    memory ``backend`` has free, with the estimate; None when it fits."""
    need = estimate_memory(case, compare=compare) + extra_bytes
    free = backend.available_memory()
    if free is None or need <= memory.HEADROOM * free:
        return None
    return (f"needs about {need / 2**30:.1f} GiB, more than {memory.HEADROOM:.0%} of the "
            f"{free / 2**30:.1f} GiB free on {backend.describe()}")


# -- xpnet's step ---------------------------------------------------------------------------
BLOCK_ROWS = 2**16  # synthetic data is drawn in blocks of rows, so a file can be written block by block


def synthetic_blocks(case: Case, seed: int):
    """The case's synthetic host data, block by block: ``(start, X_block, y_block)`` with
    X ~ N(0, 1) in the case dtype and labels uniform over the classes; the same numbers
    whether held in memory (:func:`synthetic`) or written to a file
    (:func:`xpnet.bench.disk.write_case_npy`)."""
    rng_x, rng_y = (np.random.default_rng([seed, stream]) for stream in (0, 1))
    for start in range(0, case.n_samples, BLOCK_ROWS):
        rows = min(BLOCK_ROWS, case.n_samples - start)
        yield (start, rng_x.standard_normal((rows, case.input_dim), dtype=np.dtype(case.dtype)),
               rng_y.integers(0, case.classes, size=rows))


def synthetic(case: Case, seed: int):
    """Host data in memory: ``(X, labels)``, X of shape (N, input_dim) (:func:`synthetic_blocks`)."""
    X = np.empty((case.n_samples, case.input_dim), dtype=np.dtype(case.dtype))
    y = np.empty(case.n_samples, dtype=np.int64)
    for start, X_block, y_block in synthetic_blocks(case, seed):
        X[start:start + len(X_block)], y[start:start + len(y_block)] = X_block, y_block
    return X, y


class EpochRunner:
    """xpnet's full-batch training step on one case, ready to be timed.

    Parameters
    ----------
    case : Case
    backend : Backend, optional
        Default: ``get_backend(case.backend)``.
    seed : int
        Seeds the synthetic data and the starting weights.
    kernels : {"auto", "numpy", "jit"}
        Which whole-pass kernels the gradient pass may use (:mod:`xpnet.engine.kernels`).
    data : (X, labels), optional
        Host data to train on instead of :func:`synthetic`'s, e.g. a file's mapped columns
        (:func:`xpnet.bench.disk.map_case_npy`): on NumPy it is used where it lies (a mapping
        is read from the page cache every epoch); other backends copy it to their device.

    Attributes
    ----------
    X : array (N, input_dim), T : array (N, classes)
        The data (one-hot targets) on the backend.
    W, b : lists of arrays
        The current weights; :meth:`reset` puts the starting weights back.
    """

    def __init__(self, case: Case, backend: Backend | None = None, seed: int = 0, kernels: str = "auto",
                 data=None):
        case.check()
        check_choice("kernels", kernels, KERNEL_CHOICES)
        self.case, self.kernels = case, kernels
        self.backend = get_backend(case.backend) if backend is None else backend
        model = MLP(case.layer_sizes, activation=case.activation, output="softmax", dtype=case.dtype,
                    backend=self.backend, seed=seed, kernels=kernels)
        self.model, self.spec, self.xp = model, model.spec, model.xp
        host_X, self.labels = synthetic(case, seed) if data is None else data
        self.X = self.backend.asarray(host_X, model.dtype)
        onehot = np.zeros((case.n_samples, case.classes), dtype=np.dtype(case.dtype))
        onehot[np.arange(case.n_samples), self.labels] = 1
        self.T = self.backend.asarray(onehot, model.dtype)
        self.W0, self.b0 = list(model.W), list(model.b)
        self.reset()
        self.backend.sync()

    def reset(self) -> None:
        """Back to the starting weights (a fresh model: arrays are never updated in place)."""
        self.W, self.b = list(self.W0), list(self.b0)
        self.optimizer = optim.SGD(self.xp, len(self.W), l2=self.case.l2)

    @property
    def pass_name(self) -> str:
        """What computes the step's gradients: a kernel's name, ``"generic"`` or ``"plain"``."""
        return pass_kernel(self.backend, self.model, self.case.n_samples, self.kernels)

    def warm_up(self) -> tuple:
        """Compile the step's JIT kernel before any epoch (:func:`warm_up_kernel`): ``(seconds,
        whether it compiled rather than loaded numba's cache)``."""
        return warm_up_kernel(self.backend, self.model, self.case.n_samples, self.kernels)

    def needs_compile(self) -> bool:
        """Whether :meth:`warm_up` would compile (not just load numba's cache)."""
        kernel = chosen_kernel(self.backend, self.model, self.case.n_samples, self.kernels)
        return kernel is not None and hasattr(kernel, "needs_compile") and kernel.needs_compile(
            self.spec, self.case.dtype)

    def step(self) -> None:
        """One epoch: forward, backward, update -- exactly as :func:`xpnet.fit` does it."""
        dW, db = gradient_pass(self.backend, self.spec, self.W, self.b, self.X, self.T, self.kernels)
        params = self.optimizer.step(self.W + self.b, list(dW) + list(db), self.case.learning_rate)
        self.W, self.b = params[:len(self.W)], params[len(self.W):]

    def run(self, epochs: int = 1) -> None:
        """``epochs`` steps, then wait for the device: the whole timed region."""
        for _ in range(epochs):
            self.step()
        self.backend.sync()

    def timed(self) -> None:
        """One synced epoch (what the pytest-benchmark suite times)."""
        self.run(1)


