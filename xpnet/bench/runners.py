"""What a benchmark times of xpnet: one case (:class:`Case`), xpnet's training step on it
(:class:`EpochRunner`, a *runner*: ``run(epochs)`` ends with a sync), and the memory a case
needs.

* :class:`EpochRunner`: the trainer's own epoch (:meth:`xpnet.training.loop.Run.epoch`: the
  plan's pass, then the optimizer's update), on a run made as :func:`xpnet.fit` makes it;
  nothing of the step is the benchmark's own.
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
from ..engine.numpy_ops import get_ops
from ..engine.plan import CHOICES as KERNEL_CHOICES
from ..errors import XpnetValueError, check_choice, check_positive
from ..mlp import MLP
from ..parallel.comm import Communicator
from ..training.batches import Batches
from ..training.config import TrainConfig
from ..training.loop import Run
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


def rows_alive(case: Case, backend: Backend) -> int:
    """Rows whose activations the trainer's full-batch pass holds at once (its lanes' chunks)."""
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
    """The trainer's own full-batch epoch on one case, ready to be timed.

    A :class:`xpnet.training.loop.Run` is made as :func:`xpnet.fit` makes one (a
    :class:`~xpnet.TrainConfig` of the case's rate and L2, the mean gradient, full batch, the
    ``kernels`` choice), and :meth:`step` is its :meth:`~xpnet.training.loop.Run.epoch`: the
    plan's pass (:func:`xpnet.engine.plan.choose`), then the optimizer's update. Which pass
    runs, and its warm-up, are the plan's (:attr:`pass_name`, :meth:`warm_up`).

    Parameters
    ----------
    case : Case
    backend : Backend, optional
        Default: ``get_backend(case.backend)``.
    seed : int
        Seeds the synthetic data and the starting weights.
    kernels : {"auto", "numpy", "jit"}
        Which whole-pass kernels the plan may choose (:data:`xpnet.engine.plan.CHOICES`).
    data : (X, labels), optional
        Host data to train on instead of :func:`synthetic`'s, e.g. a file's mapped columns
        (:func:`xpnet.bench.disk.map_case_npy`). The run places it as :func:`xpnet.fit` does:
        a mapping is streamed from the page cache every epoch on NumPy (and on other backends
        when it does not fit the device), else copied to the device.

    Attributes
    ----------
    run_ : xpnet.training.loop.Run
        The trainer's run.
    X : array (N, input_dim), T : array (N, classes)
        The rows the epochs read (one-hot targets).
    W0, b0 : lists of arrays
        The starting weights; :meth:`reset` puts them back. ``W`` and ``b`` are the current ones.
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
        config = TrainConfig(learning_rate=case.learning_rate, l2=case.l2, reduction="mean", epochs=1)
        self.run_ = Run(model, host_X, self.labels, config, Communicator(), None, None, 0, None)
        self.pass_ = self.run_.passes[case.n_samples]
        self.W0, self.b0 = list(model.W), list(model.b)
        self.epochs = 0
        self.reset()
        self.backend.sync()

    @property
    def X(self):
        return self.run_.X

    @property
    def T(self):
        return self.run_.T

    @property
    def W(self) -> list:
        return self.model.W

    @property
    def b(self) -> list:
        return self.model.b

    def feed(self, X, T=None) -> None:
        """Make the run's epochs read ``X`` (and ``T``) as they are, unchecked (e.g. arrays that
        count the operations on them). A file's mapped rows need no feeding: the run streams
        them from the mapping itself (:mod:`xpnet.engine.stream`)."""
        run = self.run_
        run.X, run.T = X, run.T if T is None else T
        run.batches = Batches(run.batches.shard, run.backend, run.X, run.T, None, False, run.seed)

    def reset(self) -> None:
        """Back to the starting weights, and the optimizer to its first step."""
        self.model.set_parameters(self.W0 + self.b0)
        self.run_.optimizer.reset()

    @property
    def pass_name(self) -> str:
        """The plan's pass for the case: a kernel's name, ``"generic"`` or ``"plain"``."""
        return self.pass_.name

    def warm_up(self) -> tuple:
        """Compile the pass's JIT kernel (or load it from numba's cache) before any epoch, as the
        plan does: ``(seconds, whether it compiled rather than loaded)``; ``(0.0, False)``
        without a JIT kernel."""
        compiles = self.pass_.needs_compile()
        return (self.pass_.warm_up(always=True) or 0.0), compiles

    def needs_compile(self) -> bool:
        """Whether :meth:`warm_up` would compile (not just load numba's cache)."""
        return self.pass_.needs_compile()

    def step(self) -> None:
        """One epoch of the trainer: :meth:`xpnet.training.loop.Run.epoch`."""
        self.run_.epoch(self.epochs)
        self.epochs += 1

    def run(self, epochs: int = 1) -> None:
        """``epochs`` steps, then wait for the device: the whole timed region."""
        for _ in range(epochs):
            self.step()
        self.backend.sync()

    def timed(self) -> None:
        """One synced epoch (what the pytest-benchmark suite times)."""
        self.run(1)
