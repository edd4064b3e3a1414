"""What a benchmark times: xpnet's training step on one case, the peers doing the same job,
and the probes of the machine's limits, each a *runner* (``run(epochs)`` ends with a sync).

* :class:`EpochRunner`: xpnet's full-batch step, exactly as :func:`xpnet.fit` takes it
  (:func:`gradient_pass`, then :class:`xpnet.optim.SGD` with L2 on the weights).
* The peers of ``compare`` (:data:`COMPARE`), on the same data, starting weights and dtype:
  :class:`TorchBaseline` (PyTorch eager), :class:`TorchCompileBaseline` (``torch.compile``),
  :class:`JaxBaseline` (``jax.jit``), :class:`TutorialBaseline` (WildML's own NumPy step in
  float64).
* :class:`MatmulProbe` (the matmul peak) and :class:`TanhFloor` (the tanh floor of a case),
  whose samples interleave with an epoch's.

The memory a case needs (:func:`estimate_memory`) is :func:`xpnet.memory.estimate_bytes`
plus the peers' own arrays (:func:`baseline_memory`), against
:meth:`xpnet.Backend.available_memory` with :data:`xpnet.memory.HEADROOM`.

Optional libraries (torch, jax) are loaded through :mod:`xpnet.backend`, never imported here.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

from .. import memory
from ..backend import Backend, get_backend, native_module, to_numpy
from ..backend import itemsize as dtype_bytes
from ..engine import fullbatch
from ..engine.numpy_ops import get_ops
from ..engine.plan import CHOICES as KERNEL_CHOICES
from ..engine.plan import choose
from ..engine.threads import cpu_threads, run_lanes
from ..errors import BackendUnavailableError, XpnetValueError, check_choice, check_positive
from ..mlp import MLP
from ..training import optim
from .cost import ACTIVATIONS
from .machine import default_ceiling_sizes

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
    grads = choose(get_ops(backend), spec, _dtype_name(X), X.shape[0], kernels)(W, b, X, T, X.shape[0])
    return grads.dW, grads.db


def pass_kernel(backend: Backend, model, n: int, kernels: str = "auto") -> str:
    """What computes :func:`gradient_pass` for ``model`` on ``n`` rows: a kernel's name,
    ``"generic"`` or ``"plain"`` (:func:`xpnet.engine.plan.choose`)."""
    return choose(get_ops(backend), model.spec, model.dtype_name, n, kernels).name


def warm_up_kernel(backend: Backend, model, n: int, kernels: str = "auto") -> tuple:
    """Compile (or load from numba's cache) the JIT kernel :func:`gradient_pass` runs for
    ``model`` on ``n`` rows, before any epoch: ``(seconds, whether it compiled)``; ``(0.0,
    False)`` when the pass has no JIT kernel."""
    chosen = choose(get_ops(backend), model.spec, model.dtype_name, n, kernels)
    compiles = chosen.needs_compile()
    seconds = chosen.warm_up(always=True)
    return (seconds or 0.0), compiles


def chosen_kernel(backend: Backend, model, n: int, kernels: str = "auto"):
    """The kernel of :mod:`xpnet.engine.kernels` that :func:`gradient_pass` runs for ``model`` on ``n``
    rows; None for the generic or plain pass."""
    return choose(get_ops(backend), model.spec, model.dtype_name, n, kernels).kernel


def _dtype_name(X) -> str:
    return "float32" if "32" in str(X.dtype) else "float64"


def rows_alive(case: Case, backend: Backend) -> int:
    """Rows whose activations :func:`gradient_pass` holds at once (its lanes' chunks)."""
    return fullbatch.rows_at_once(get_ops(backend), case.layer_sizes, dtype_bytes(case.dtype), case.n_samples)


def on_threads(fn, blocks) -> list:
    """``[fn(block) for block in blocks]`` on the threads the NumPy gradient pass uses."""
    return run_lanes(fn, blocks)


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
def _synthetic(case: Case, seed: int):
    """Host data: X ~ N(0, 1) of shape (N, input_dim) in the case dtype, labels uniform."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((case.n_samples, case.input_dim), dtype=np.dtype(case.dtype))
    y = rng.integers(0, case.classes, size=case.n_samples)
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

    Attributes
    ----------
    X : array (N, input_dim), T : array (N, classes)
        The data (one-hot targets) on the backend.
    W, b : lists of arrays
        The current weights; :meth:`reset` puts the starting weights back.
    """

    def __init__(self, case: Case, backend: Backend | None = None, seed: int = 0, kernels: str = "auto"):
        case.check()
        check_choice("kernels", kernels, KERNEL_CHOICES)
        self.case, self.kernels = case, kernels
        self.backend = get_backend(case.backend) if backend is None else backend
        model = MLP(case.layer_sizes, activation=case.activation, output="softmax", dtype=case.dtype,
                    backend=self.backend, seed=seed, kernels=kernels)
        self.model, self.spec, self.xp = model, model.spec, model.xp
        host_X, self.labels = _synthetic(case, seed)
        self.X = self.backend.asarray(host_X, model.dtype)
        onehot = np.zeros((case.n_samples, case.classes), dtype=host_X.dtype)
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


# -- the peers --------------------------------------------------------------------------------
class TorchBaseline:
    """The same training step written the PyTorch way, as the comparison point.

    ``nn.Sequential(nn.Linear, nn.Tanh, nn.Linear)``, ``F.cross_entropy`` (mean), autograd,
    ``torch.optim.SGD`` with ``weight_decay=l2`` on the weights only; same data, starting
    weights, dtype and device as ``like``. PyTorch also computes the loss value, which
    xpnet's step skips (a small, O(N * classes) extra).
    """

    def __init__(self, like: EpochRunner):
        case = like.case
        self.case = case
        self.backend = get_backend(f"torch:{torch_device_for(like.backend)}")
        torch = self.torch = native_module(self.backend)
        dtype, device = getattr(torch, case.dtype), self.backend.device
        act = {"tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU}[case.activation]
        sizes = case.layer_sizes
        layers = []
        for i, (a, o) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(a, o, dtype=dtype, device=device))
            if i < len(sizes) - 2:
                layers.append(act())
        self.net = torch.nn.Sequential(*layers)
        self.linears = [m for m in self.net if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for lin, W, b in zip(self.linears, like.W0, like.b0):
                lin.weight.copy_(torch.as_tensor(to_numpy(W).T.copy(), dtype=dtype, device=device))
                lin.bias.copy_(torch.as_tensor(to_numpy(b), dtype=dtype, device=device))
        self.start = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.X = torch.as_tensor(to_numpy(like.X), dtype=dtype, device=device)
        self.y = torch.as_tensor(like.labels, dtype=torch.int64, device=device)
        self.loss = self._loss
        self.reset()
        self.backend.sync()

    @property
    def device(self) -> str:
        return str(self.backend.device)

    def _loss(self, X, y):
        return self.torch.nn.functional.cross_entropy(self.net(X), y)

    def reset(self) -> None:
        """Back to the starting weights, with a new optimizer."""
        torch = self.torch
        with torch.no_grad():
            self.net.load_state_dict(self.start)
        groups = [{"params": [m.weight for m in self.linears], "weight_decay": self.case.l2},
                  {"params": [m.bias for m in self.linears], "weight_decay": 0.0}]
        self.optimizer = torch.optim.SGD(groups, lr=self.case.learning_rate)

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.loss(self.X, self.y).backward()
        self.optimizer.step()

    def run(self, epochs: int = 1) -> None:
        for _ in range(epochs):
            self.step()
        self.backend.sync()

    def weights(self) -> list[np.ndarray]:
        """Current ``W`` matrices as NumPy arrays in xpnet's (n_in, n_out) layout."""
        return [m.weight.detach().cpu().numpy().T for m in self.linears]


class TorchCompileBaseline(TorchBaseline):
    """:class:`TorchBaseline` with its forward and loss compiled by ``torch.compile``
    (inductor, static shapes); the backward runs the graph AOTAutograd compiled with it.

    ``torch.optim.SGD``'s update stays eager: it touches the weights only (O(parameters)
    work), and compiling it too cost about 20 s more per case on this project's machine.
    The compilation happens here, in a first step timed as :attr:`first_call_seconds`
    and then undone, so no timed sample includes it.
    """

    def __init__(self, like: EpochRunner):
        super().__init__(like)
        # a fresh compiler state per baseline: the compiled code is guarded on this net, and
        # after 8 recompilations torch would run the step eagerly without a word
        self.torch.compiler.reset()
        start = time.perf_counter()
        with warnings.catch_warnings():  # torch's own deprecations while it loads its compiler
            warnings.simplefilter("ignore", DeprecationWarning)
            self.loss = self.torch.compile(self._loss, dynamic=False)
            self.run(1)
        self.first_call_seconds = time.perf_counter() - start
        self.reset()


class JaxBaseline:
    """The same step in JAX, compiled whole by ``jax.jit`` (XLA fuses its elementwise work).

    Forward, softmax cross-entropy (mean, from ``jax.nn.log_softmax``), gradients by
    ``jax.grad``, and the update ``W - lr * (dW + l2 * W)``, ``b - lr * db``; same data,
    starting weights and dtype as ``like``, on JAX's default device. float64 needs JAX's
    64-bit mode, which is global to the process: it is switched on
    (``jax_enable_x64``) only when a float64 case is measured, and stays on. JAX runs on
    XLA's own threads, which ``--threads`` does not bound. The compilation happens here,
    in a first step timed as :attr:`first_call_seconds` and then undone.
    """

    def __init__(self, like: EpochRunner):
        case = self.case = like.case
        jax, jnp = _jax()
        if case.dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        dtype = getattr(jnp, case.dtype)
        self.X = jnp.asarray(to_numpy(like.X), dtype=dtype)
        self.T = jnp.asarray(to_numpy(like.T), dtype=dtype)
        self.start = ([jnp.asarray(to_numpy(W), dtype=dtype) for W in like.W0],
                      [jnp.asarray(to_numpy(b), dtype=dtype) for b in like.b0])
        act = {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu}[case.activation]
        self._step = jax.jit(_jax_step(jax, jnp, act, case.learning_rate, case.l2))
        self._ready = jax.block_until_ready
        self.device = str(next(iter(self.X.devices())))
        start = time.perf_counter()
        self.reset()
        self.run(1)
        self.first_call_seconds = time.perf_counter() - start
        self.reset()

    def reset(self) -> None:
        self.W, self.b = self.start

    def run(self, epochs: int = 1) -> None:
        for _ in range(epochs):
            self.W, self.b = self._step(self.W, self.b, self.X, self.T)
        self._ready((self.W, self.b))

    def weights(self) -> list[np.ndarray]:
        return [np.asarray(W) for W in self.W]


def _jax():
    """``jax`` and ``jax.numpy``, loaded by :mod:`xpnet.backend` (the one module that imports
    optional array libraries)."""
    try:
        jnp = native_module(get_backend("jax.numpy"))
    except BackendUnavailableError:
        raise BackendUnavailableError("--compare jax needs JAX, which is not installed: pip install jax") from None
    return sys.modules["jax"], jnp


def _jax_step(jax, jnp, act, lr: float, l2: float):
    """The whole training step as one function of (W, b, X, T), for ``jax.jit``."""

    def loss(W, b, X, T):
        H = X
        for Wi, bi in zip(W[:-1], b[:-1]):
            H = act(H @ Wi + bi)
        Z = H @ W[-1] + b[-1]
        return -jnp.mean(jnp.sum(T * jax.nn.log_softmax(Z, axis=1), axis=1))

    def step(W, b, X, T):
        dW, db = jax.grad(loss, argnums=(0, 1))(W, b, X, T)
        return [Wi - lr * (g + l2 * Wi) for Wi, g in zip(W, dW)], [bi - lr * g for bi, g in zip(b, db)]

    return step


class TutorialBaseline:
    """WildML's training step as the tutorial writes it: NumPy, float64, the whole batch at once.

    ``z1 = X.dot(W1) + b1``, ``a1 = np.tanh(z1)``, ``exp_scores = np.exp(a1.dot(W2) + b2)``,
    ``probs = exp_scores / np.sum(...)``, ``delta3[range(N), y] -= 1``, ``delta2 =
    delta3.dot(W2.T) * (1 - np.power(a1, 2))``, the L2 terms and the four in-place updates,
    on the host whatever xpnet's backend, in float64 whatever the case dtype (the
    issue's "tutorial code in float64"). Same data and starting weights as ``like``. One
    change, so that repeated epochs stay tame at large N: ``delta3`` is divided by N (the
    mean gradient xpnet's step takes; an (N, classes) operation). Needs ``activation="tanh"``.
    """

    device = "cpu"

    def __init__(self, like: EpochRunner):
        if like.case.activation != "tanh":
            raise XpnetValueError(f"the tutorial baseline is WildML's tanh net; activation={like.case.activation!r} "
                                  "has none (compare with torch, or use tanh)")
        self.case = like.case
        self.backend = get_backend("numpy")
        self.X = np.asarray(to_numpy(like.X), dtype=np.float64)
        self.y = np.asarray(like.labels)
        self.start = [np.array(to_numpy(a), dtype=np.float64) for a in
                      (like.W0[0], like.b0[0][None, :], like.W0[1], like.b0[1][None, :])]
        self.reset()

    def reset(self) -> None:
        self.W1, self.b1, self.W2, self.b2 = (a.copy() for a in self.start)

    def step(self) -> None:
        X, y, num_examples = self.X, self.y, self.X.shape[0]
        epsilon, reg_lambda = self.case.learning_rate, self.case.l2
        W1, b1, W2, b2 = self.W1, self.b1, self.W2, self.b2
        z1 = X.dot(W1) + b1
        a1 = np.tanh(z1)
        z2 = a1.dot(W2) + b2
        exp_scores = np.exp(z2)
        probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
        delta3 = probs
        delta3[range(num_examples), y] -= 1
        delta3 /= num_examples
        dW2 = (a1.T).dot(delta3)
        db2 = np.sum(delta3, axis=0, keepdims=True)
        delta2 = delta3.dot(W2.T) * (1 - np.power(a1, 2))
        dW1 = np.dot(X.T, delta2)
        db1 = np.sum(delta2, axis=0)
        dW2 += reg_lambda * W2
        dW1 += reg_lambda * W1
        W1 += -epsilon * dW1
        b1 += -epsilon * db1
        W2 += -epsilon * dW2
        b2 += -epsilon * db2

    def run(self, epochs: int = 1) -> None:
        for _ in range(epochs):
            self.step()

    def weights(self) -> list[np.ndarray]:
        return [self.W1, self.W2]


BASELINES = {"torch": TorchBaseline, "tutorial": TutorialBaseline, "jax": JaxBaseline,
             "torch-compile": TorchCompileBaseline}


def torch_device_for(backend: Backend) -> str:
    """The torch device matching ``backend``'s: ``cuda:N`` for CuPy and torch-on-CUDA, else ``cpu``."""
    if backend.name == "cupy":
        return backend.device_name()  # "cuda:N"
    if backend.name == "torch":
        return str(backend.device)
    return "cpu"


def baseline_backend(name: str, backend: Backend) -> Backend:
    """Where the peer ``name`` keeps its arrays beside a case on ``backend`` (whose free memory counts)."""
    if name in ("torch", "torch-compile"):
        return get_backend(f"torch:{torch_device_for(backend)}")
    return get_backend("numpy")


def start_peer(name: str, runner: EpochRunner):
    """``(peer, None)``: the peer ``name`` of :data:`COMPARE` ready beside ``runner`` (compiled,
    warm); or ``(None, why it cannot run)``: not installed, failed to start, or no room in memory."""
    case = runner.case
    if name == "tutorial" and case.activation != "tanh":
        return None, f"the tutorial's net is tanh, not {case.activation}"
    try:
        reason = too_big(case, baseline_backend(name, runner.backend), compare=name)
        return (None, reason) if reason else (BASELINES[name](runner), None)
    except BackendUnavailableError as exc:  # not installed: the message says how to install it
        return None, str(exc)
    except Exception as exc:  # a compiler failing (inductor without a C++ compiler, XLA...): reported, not hidden
        return None, f"{name} failed to start: {type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


# -- probes of the machine ----------------------------------------------------------------------
class MatmulProbe:
    """The matmul ceiling as a runner: one synced ``(n, n) @ (n, n)`` per :meth:`run`, so its
    samples can be interleaved with an epoch's (:func:`~xpnet.bench.time_interleaved`) and the
    peak is measured in the same moments as the step, not minutes apart on a machine whose
    speed moves. ``gflops(seconds)`` turns a sample into GFLOP/s."""

    def __init__(self, backend, dtype: str = "float32", size: int | None = None):
        self.backend = get_backend(backend)
        self.size = size or default_ceiling_sizes(self.backend)["matmul_size"]
        rng = np.random.default_rng(0)
        dt = self.backend.dtype(dtype)
        self.A, self.B = (self.backend.asarray(rng.standard_normal((self.size, self.size), dtype=np.dtype(dtype)), dt)
                          for _ in range(2))

    def run(self, epochs: int = 1) -> None:
        for _ in range(epochs):
            self.A @ self.B
        self.backend.sync()

    def gflops(self, seconds: float) -> float:
        return 2 * self.size**3 / seconds / 1e9


class TanhFloor:
    """The tanh floor of a case as a runner: the backend's ``tanh`` over ``rows x width``
    elements per :meth:`run`, so its samples interleave with the epoch's.

    On NumPy, ``np.tanh`` works in place on one preallocated array, cut into one block of
    rows per thread xpnet's gradient pass uses (:func:`on_threads`): no allocation, every
    core busy, the least time any pass that evaluates those tanh's can take. Elsewhere it is
    the namespace's ``tanh`` on the whole array (a new array each time: the array API has
    no ``out=``), on the library's own threads. The best sample is the floor.
    """

    def __init__(self, backend, dtype: str, rows: int, width: int, seed: int = 1):
        self.backend = get_backend(backend)
        self.rows, self.width = int(rows), int(width)
        host = np.random.default_rng(seed).standard_normal((self.rows, self.width), dtype=np.dtype(dtype))
        self.A = self.backend.asarray(host, self.backend.dtype(dtype))

    @staticmethod
    def bytes_needed(case: Case) -> int:
        return case.n_samples * case.hidden * dtype_bytes(case.dtype)

    def run(self, epochs: int = 1) -> None:
        for _ in range(epochs):
            self._tanh()
        self.backend.sync()

    def _tanh(self) -> None:
        if self.backend.name != "numpy":
            self.A = self.backend.xp.tanh(self.A)
            return
        A, k = self.A, min(cpu_threads(), self.rows)
        edges = [self.rows * i // k for i in range(k + 1)]
        on_threads(lambda ends: np.tanh(A[ends[0]:ends[1]], out=A[ends[0]:ends[1]]), list(zip(edges, edges[1:])))

    def elements_per_second(self, seconds: float) -> float:
        return self.rows * self.width / seconds
