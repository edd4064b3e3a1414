"""Benchmarks: how fast one full-batch training epoch runs, measured against the machine.

The measured step is xpnet's own: the full-batch gradient pass of :func:`xpnet.train.fit`
(:meth:`xpnet.ops.Ops.gradients`: forward and backward, over row chunks on NumPy) and
the plain gradient-descent update (``W -= lr * (dW + l2 * W)``, ``b -= lr * db``), full batch, mean gradient. The loss value itself is not computed (``fit``
computes it only at logging points). Every timed region ends with ``backend.sync()``, so
asynchronous devices (CuPy, torch on CUDA) are timed for the work they really did.

    >>> from xpnet import bench
    >>> report = bench.run(["numpy"], ["float32"], n_samples=[1000], hidden=[64], repeat=3)
    >>> row = report["results"][0]
    >>> row["seconds_per_epoch"] > 0 and row["samples_per_second"] > 0
    True

The same from the shell: ``xpnet bench --backend numpy --hidden 64,256 --compare torch``;
as a pytest-benchmark suite: ``pytest bench`` (see ``bench/conftest.py``).

What is counted (see :func:`step_cost`):

* **matmul FLOPs**: ``2*m*k*n`` per ``(m, k) @ (k, n)`` product the step performs: per layer
  ``H @ W`` forward and ``H.T @ dZ`` backward, plus ``dZ @ W.T`` for every layer except the
  first (no gradient with respect to the input data is computed);
* **elementwise FLOPs**: one per output element of every elementwise operation (bias add,
  activation, softmax, ``1 - Y*Y``, update...) and one per input element of every
  reduction (row max and row sum of the softmax, ``db``); a ``tanh`` or ``exp`` counts as
  one (they are also tallied as ``transcendentals``);
* **bytes moved**: an estimate, every operand read once and every result written once,
  no cache reuse.

The machine's ceilings (:func:`measure_ceilings`) are measured with the same backend and
dtype, best of several runs: a large square matmul (GFLOP/s), a large copy (GB/s, read +
write) and the hidden activation on a large array (elements/s). Each result is reported against them:
``percent_of_matmul_peak`` (all counted FLOPs over the time, as a share of the matmul
rate) and the time over the bandwidth and activation floors.

``--compare torch`` (:class:`TorchBaseline`) runs the same step written the way PyTorch
users write it (``nn.Linear`` + ``nn.Tanh`` + autograd + ``torch.optim.SGD`` with weight
decay on the weights only), on the same data, starting weights, dtype and device;
``--compare tutorial`` (:class:`TutorialBaseline`) runs WildML's own NumPy step in
float64. Their samples are interleaved with xpnet's so machine noise hits all of them.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from . import __version__
from .activations import get_hidden
from .backend import Backend, get_backend, native_module, to_numpy
from .errors import XpnetError, XpnetValueError, check_choice, check_positive
from .mlp import MLP
from . import fullbatch
from .ops import NumpyOps, Ops, get_ops

ACTIVATIONS = ("tanh", "sigmoid", "relu")
COMPARE = ("torch", "tutorial")  # baselines: PyTorch eager; the WildML tutorial's own NumPy float64 step
# The elementwise operations of each hidden activation as xpnet.activations writes them:
# forward ops as (operands read, is transcendental), backward ops as operands read; every
# operand is an (N, width) array (python scalars are not counted as reads).
_HIDDEN_OPS = {
    # tanh(Z) | dY * (1 - Y * Y)
    "tanh": ([(1, True)], [2, 1, 2]),
    # where(-Z > limit, 0, 1 / (1 + exp(clip(-Z)))) | dY * (Y * (1 - Y))
    "sigmoid": ([(1, False), (1, False), (1, True), (1, False), (1, False), (1, False), (2, False)], [1, 2, 2]),
    # where(Z > 0, Z, 0) | where(Y > 0, dY, 0)
    "relu": ([(1, False), (2, False)], [1, 2]),
}
# Fraction of the free memory a case may plan to use before it is skipped.
MEMORY_FRACTION = 0.8


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


# -- counting --------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepCost:
    """What one training step does, counted operation by operation (see the module doc)."""

    matmul_flops: int
    elementwise_flops: int  # includes the transcendentals, one each
    transcendentals: int  # tanh / exp evaluations
    bytes_moved: int  # estimate: operands read once, results written once

    @property
    def flops(self) -> int:
        return self.matmul_flops + self.elementwise_flops


class _Tally:
    def __init__(self):
        self.matmul = self.elementwise = self.transcendental = self.elements = 0

    def matmul_op(self, m, k, n):  # (m, k) @ (k, n)
        self.matmul += 2 * m * k * n
        self.elements += m * k + k * n + m * n

    def map_op(self, size, reads, transcendental=False):  # elementwise, `size` results
        self.elementwise += size
        self.transcendental += size if transcendental else 0
        self.elements += reads + size

    def reduce_op(self, size_in, size_out):
        self.elementwise += size_in
        self.elements += size_in + size_out


def step_cost(layer_sizes, n_samples: int, *, activation: str = "tanh", itemsize: int = 4,
              bias: bool = True, l2: float = 0.01) -> StepCost:
    """Count the work of one full-batch training step of xpnet's MLP with a softmax output.

    Follows :func:`xpnet.mlp.forward` / :func:`xpnet.mlp.backward` (stable softmax,
    cross-entropy, ``reduction="mean"``) and the update of :func:`xpnet.train.fit`.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``(n_inputs, hidden..., n_classes)``.
    n_samples : int
        Rows N of the batch.
    activation : {"tanh", "sigmoid", "relu"}
        Hidden activation.
    itemsize : int
        Bytes per element (4 for float32, 8 for float64), for ``bytes_moved``.
    bias : bool
        Whether the layers add a bias (``db`` is computed only then, as backward does).
    l2 : float
        L2 strength; 0 drops the two ``l2 * W`` terms of the update.

    Returns
    -------
    StepCost
    """
    check_choice("activation", activation, ACTIVATIONS)
    fwd_ops, bwd_ops = _HIDDEN_OPS[activation]
    sizes = [int(s) for s in layer_sizes]
    N, c, t = int(n_samples), sizes[-1], _Tally()
    pairs = list(zip(sizes[:-1], sizes[1:]))
    for i, (a, o) in enumerate(pairs):  # forward
        t.matmul_op(N, a, o)
        if bias:
            t.map_op(N * o, N * o + o)
        if i < len(pairs) - 1:  # hidden activation
            for reads, transcendental in fwd_ops:
                t.map_op(N * o, reads * N * o, transcendental)
    t.reduce_op(N * c, N)  # softmax: row max
    t.map_op(N * c, N * c + N)  # Z - max
    t.map_op(N * c, N * c, transcendental=True)  # exp
    t.reduce_op(N * c, N)  # row sum
    t.map_op(N * c, N * c + N)  # E / sum
    t.map_op(N * c, 2 * N * c)  # dZ = Y - T
    t.map_op(N * c, N * c)  # dZ / N (mean gradient)
    for i in range(len(pairs) - 1, -1, -1):  # backward
        a, o = pairs[i]
        t.matmul_op(a, N, o)  # dW = H.T @ dZ
        if bias:
            t.reduce_op(N * o, o)  # db = sum(dZ, axis=0)
        if i:
            t.matmul_op(N, o, a)  # dZ @ W.T (never for the input layer)
            for reads in bwd_ops:  # activation derivative from the layer's output
                t.map_op(N * a, reads * N * a)
    for a, o in pairs:  # update: W - lr * (g + l2 * W), b - lr * g (scalars are not reads)
        for reads in ([1, 2, 1, 2] if l2 else [1, 2]):
            t.map_op(a * o, reads * a * o)
        if bias:
            for reads in (1, 2):
                t.map_op(o, reads * o)
    return StepCost(t.matmul, t.elementwise, t.transcendental, t.elements * int(itemsize))


def estimate_memory(case: Case, *, compare=None) -> int:
    """Bytes a case needs at its peak (data, one-hot targets, activations, temporaries, weights),
    plus those of the baselines in ``compare`` (see :func:`baseline_memory`).

    A deliberately generous estimate: X twice (host and device copies), six (N, classes)
    and four (rows, hidden) arrays alive at once, four copies of the weights (plus one per
    lane of the chunked pass). xpnet's gradient pass holds the activations of at most
    ``LANES`` chunks at once (:mod:`xpnet.ops`), so ``rows`` is ``min(N, LANES * chunk rows)``.
    """
    item = 8 if case.dtype == "float64" else 4
    N, d, h, c = case.n_samples, case.input_dim, case.hidden, case.classes
    params = d * h + h * c + h + c
    ops = NumpyOps(None) if case.backend.partition(":")[0] == "numpy" else Ops(None)
    rows = fullbatch.rows_at_once(ops, case.layer_sizes, item, N)
    need = item * (2 * N * d + 6 * N * c + 4 * rows * h + (4 + fullbatch.LANES) * params) + 8 * N
    return need + sum(baseline_memory(case, name) for name in compare_names(compare))


def baseline_memory(case: Case, name: str) -> int:
    """Bytes the baseline ``name`` needs beside xpnet's case: both hold the whole batch at once,
    torch in the case dtype (activations, their gradients, autograd's saved tensors), the
    tutorial in float64 (z1, a1 and four (N, hidden) temporaries of its backward line)."""
    check_choice("compare", name, COMPARE)
    N, d, h, c = case.n_samples, case.input_dim, case.hidden, case.classes
    if name == "tutorial":
        return 8 * (N * d + 6 * N * h + 6 * N * c)
    item = 8 if case.dtype == "float64" else 4
    return item * (N * d + 6 * N * c + 4 * N * h + 4 * (d * h + h * c + h + c)) + 8 * N


def compare_names(compare) -> tuple:
    """``compare`` (None, ``"torch"``, ``"torch,tutorial"`` or a sequence of names) as a tuple of checked names."""
    if compare is None:
        return ()
    items = [compare] if isinstance(compare, str) else list(compare)
    names = [n.strip() for item in items for n in item.split(",") if n.strip()]
    for name in names:
        check_choice("compare", name, COMPARE)
    return tuple(dict.fromkeys(names))


def available_memory(backend: Backend) -> int | None:
    """Free bytes where ``backend`` keeps its arrays (device memory on a GPU), or None if unknown."""
    try:
        if backend.name == "cupy":
            with backend.device:
                return int(native_module(backend).cuda.runtime.memGetInfo()[0])
        if backend.name == "torch" and str(backend.device).startswith("cuda"):
            return int(native_module(backend).cuda.mem_get_info(backend.device)[0])
    except Exception:  # pragma: no cover - GPU only
        return None
    return host_memory()["available"]


def host_memory() -> dict:
    """``{"total": bytes, "available": bytes}`` of host RAM (None where the OS does not say)."""
    info = {"total": None, "available": None}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, value = line.split(":", 1)
                if key in ("MemTotal", "MemAvailable"):
                    info["total" if key == "MemTotal" else "available"] = int(value.split()[0]) * 1024
    except OSError:
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            info = {"total": page * os.sysconf("SC_PHYS_PAGES"), "available": page * os.sysconf("SC_AVPHYS_PAGES")}
        except (ValueError, OSError, AttributeError):
            pass
    return info


def too_big(case: Case, backend: Backend, *, compare=None) -> str | None:
    """Why ``case`` (with the baselines in ``compare``) cannot fit in memory, with the
    estimate; None when it fits."""
    need = estimate_memory(case, compare=compare)
    free = available_memory(backend)
    if free is None or need <= MEMORY_FRACTION * free:
        return None
    return (f"needs about {need / 2**30:.1f} GiB, more than {MEMORY_FRACTION:.0%} of the "
            f"{free / 2**30:.1f} GiB free on {backend.describe()}")


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

    Attributes
    ----------
    X : array (N, input_dim), T : array (N, classes)
        The data (one-hot targets) on the backend.
    W, b : lists of arrays
        The current weights; :meth:`reset` puts the starting weights back.
    """

    def __init__(self, case: Case, backend: Backend | None = None, seed: int = 0):
        case.check()
        self.case = case
        self.backend = get_backend(case.backend) if backend is None else backend
        model = MLP(case.layer_sizes, activation=case.activation, output="softmax", dtype=case.dtype,
                    backend=self.backend, seed=seed)
        self.spec, self.xp, self.ops = model.spec, model.xp, get_ops(self.backend)
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

    def step(self) -> None:
        """One epoch: forward, backward, update -- exactly as :func:`xpnet.train.fit` does it."""
        lr, l2 = self.case.learning_rate, self.case.l2
        dW, db = fullbatch.gradients(self.ops, self.spec, self.W, self.b, self.X, self.T, "mean")[:2]
        self.W = [Wi - lr * (g + l2 * Wi if l2 else g) for Wi, g in zip(self.W, dW)]
        self.b = [bi - lr * g for bi, g in zip(self.b, db)]

    def run(self, epochs: int = 1) -> None:
        """``epochs`` steps, then wait for the device: the whole timed region."""
        for _ in range(epochs):
            self.step()
        self.backend.sync()

    def timed(self) -> None:
        """One synced epoch (what the pytest-benchmark suite times)."""
        self.run(1)


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
        self.reset()
        self.backend.sync()

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
        loss = self.torch.nn.functional.cross_entropy(self.net(self.X), self.y)
        loss.backward()
        self.optimizer.step()

    def run(self, epochs: int = 1) -> None:
        for _ in range(epochs):
            self.step()
        self.backend.sync()

    def weights(self) -> list[np.ndarray]:
        """Current ``W`` matrices as NumPy arrays in xpnet's (n_in, n_out) layout."""
        return [m.weight.detach().cpu().numpy().T for m in self.linears]


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


class MatmulProbe:
    """The matmul ceiling as a runner: one synced ``(n, n) @ (n, n)`` per :meth:`run`, so its
    samples can be interleaved with an epoch's (:func:`time_interleaved`) and the peak is
    measured in the same moments as the step, not minutes apart on a machine whose speed
    moves. ``gflops(seconds)`` turns a sample into GFLOP/s."""

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


BASELINES = {"torch": TorchBaseline, "tutorial": TutorialBaseline}


def peak_memory(fn) -> dict | None:
    """This process's resident memory before and at its peak while ``fn()`` runs, in bytes.

    Linux only (the peak is reset through ``/proc/self/clear_refs`` and read back as
    ``VmHWM``); None elsewhere. Host memory: for a GPU backend it says nothing of the device.
    """
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


def torch_device_for(backend: Backend) -> str:
    """The torch device matching ``backend``'s: ``cuda:N`` for CuPy and torch-on-CUDA, else ``cpu``."""
    if backend.name == "cupy":
        return f"cuda:{backend.device.id}"
    if backend.name == "torch":
        return str(backend.device)
    return "cpu"


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
    times = [[] for _ in runners]
    order = list(range(len(runners)))
    for k in range(repeat):
        for i in (order if k % 2 == 0 else order[::-1]):
            start = clock()
            runners[i].run(epochs)
            times[i].append((clock() - start) / epochs)
    return times


# -- ceilings ----------------------------------------------------------------------------------
def _on_gpu(backend: Backend) -> bool:
    return backend.name == "cupy" or str(backend.device).startswith("cuda")


def default_ceiling_sizes(backend: Backend) -> dict:
    """Sizes for :func:`measure_ceilings`: big enough to reach the plateau, small enough for seconds."""
    if _on_gpu(backend):
        return {"matmul_size": 8192, "copy_elements": 2**28, "activation_elements": 2**26}
    # 2048: a 1024 product is short enough for thread start-up and a busy core to show (measured
    # 84-127 GFLOP/s on 2 cores where 2048 and up give 144-150)
    return {"matmul_size": 2048, "copy_elements": 2**25, "activation_elements": 2**23}


def _best_seconds(fn, sync, repeat, clock):
    """Fastest of ``repeat`` synced runs after one warm-up: a ceiling, and noise only slows."""
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
    only ever makes a run slower.

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
    matmul_s = _best_seconds(lambda: probe.A @ probe.B, backend.sync, repeat, clock)
    copy_s = _best_seconds(lambda: xp.asarray(big, copy=True), backend.sync, repeat, clock)
    act_s = _best_seconds(lambda: act(xp, Z), backend.sync, repeat, clock)
    item = 8 if dtype == "float64" else 4
    return {
        "backend": backend.name,
        "device": backend.device_name(),
        "dtype": dtype,
        "matmul_gflops": probe.gflops(matmul_s),
        "matmul_size": n,
        "copy_gbytes_per_second": 2 * m * item / copy_s / 1e9,
        "copy_bytes": m * item,
        "activation": activation,
        "activation_elements_per_second": k / act_s,
        "activation_elements": k,
    }


# -- reporting ---------------------------------------------------------------------------------
def units(case: Case, seconds_per_epoch: float, ceilings: dict | None = None) -> dict:
    """The numbers people want for one case timed at ``seconds_per_epoch``.

    Returns samples/s, epochs/s, the counted FLOPs and GFLOP/s, the bytes-moved estimate
    and GB/s, and -- given :func:`measure_ceilings` output -- the percent of the matmul
    peak and the time over the matmul, bandwidth and activation floors.
    """
    item = 8 if case.dtype == "float64" else 4
    cost = step_cost(case.layer_sizes, case.n_samples, activation=case.activation, itemsize=item, l2=case.l2)
    s = seconds_per_epoch
    out = {
        "seconds_per_epoch": s,
        "samples_per_second": case.n_samples / s,
        "epochs_per_second": 1 / s,
        "flops": cost.flops,
        "matmul_flops": cost.matmul_flops,
        "elementwise_flops": cost.elementwise_flops,
        "transcendentals": cost.transcendentals,
        "gflops": cost.flops / s / 1e9,
        "bytes_moved": cost.bytes_moved,
        "gbytes_per_second": cost.bytes_moved / s / 1e9,
    }
    if ceilings:
        matmul_floor = cost.matmul_flops / (ceilings["matmul_gflops"] * 1e9)
        bandwidth_floor = cost.bytes_moved / (ceilings["copy_gbytes_per_second"] * 1e9)
        activation_floor = cost.transcendentals / ceilings["activation_elements_per_second"]
        out.update({
            "percent_of_matmul_peak": 100 * out["gflops"] / ceilings["matmul_gflops"],
            "matmul_floor_seconds": matmul_floor,
            "bandwidth_floor_seconds": bandwidth_floor,
            "activation_floor_seconds": activation_floor,
            "time_over_matmul_floor": s / matmul_floor,
            "time_over_bandwidth_floor": s / bandwidth_floor,
            "time_over_activation_floor": s / activation_floor,
        })
    return out


def measure_case(case: Case, *, backend: Backend | None = None, ceilings: dict | None = None,
                 compare=None, repeat: int = 7, epochs: int = 1, warmup: int = 1,
                 clock=time.perf_counter, memory: bool = False) -> dict:
    """Time one case and the baselines in ``compare`` ("torch", "tutorial"); return one result row.

    ``seconds_per_epoch`` is the median over ``repeat`` samples of (time of ``epochs``
    synced epochs) / ``epochs``, after ``warmup`` samples; the baselines' samples are
    interleaved with xpnet's. A baseline that would not fit in memory beside the case is
    left out, with the reason in ``<name>_skipped``. With ``memory``, one more epoch
    measures the peak resident memory (:func:`peak_memory`).
    """
    names = compare_names(compare)
    backend = get_backend(case.backend) if backend is None else backend
    runner = EpochRunner(case, backend)
    row = {**asdict(case), "backend": backend.name, "device": backend.device_name(), "layer_sizes": list(case.layer_sizes),
           "epochs": epochs, "repeat": repeat, "warmup": warmup,
           "estimated_memory_bytes": estimate_memory(case)}
    baselines = []
    for name in names:
        reason = _baseline_too_big(case, backend, name)
        if reason:
            row[f"{name}_skipped"] = reason
        else:
            baselines.append((name, BASELINES[name](runner)))
    times = time_interleaved([runner] + [b for _, b in baselines], repeat=repeat, epochs=epochs, warmup=warmup,
                             clock=clock)
    median = statistics.median(times[0])
    row.update({"seconds_min": min(times[0]), "seconds_max": max(times[0])})
    row.update(units(case, median, ceilings))
    for (name, baseline), samples in zip(baselines, times[1:]):
        seconds = statistics.median(samples)
        row.update({f"{name}_seconds_per_epoch": seconds, f"{name}_seconds_min": min(samples),
                    f"{name}_samples_per_second": case.n_samples / seconds, f"xpnet_over_{name}": median / seconds})
        if name == "torch":
            row["torch_device"] = str(baseline.backend.device)
    if memory:
        row.update(peak_memory(lambda: runner.run(1)) or {})
    return row


def _baseline_too_big(case: Case, backend: Backend, name: str) -> str | None:
    """Why the baseline ``name`` cannot run beside ``case`` (memory, or a tutorial without tanh)."""
    if name == "tutorial" and case.activation != "tanh":
        return f"the tutorial's net is tanh, not {case.activation}"
    return too_big(case, backend if name == "torch" else get_backend("numpy"), compare=name)


def run(backends=None, dtypes=("float32",), n_samples=(1000, 10000, 100000), hidden=(64, 256, 1024), *,
        input_dim: int = 2, classes: int = 2, activation: str = "tanh", epochs: int = 1, repeat: int = 7,
        warmup: int = 1, compare=None, ceiling_sizes: dict | None = None, memory: bool = False,
        progress=None) -> dict:
    """Benchmark every backend x dtype x n_samples x hidden case; the report ``xpnet bench`` prints.

    Parameters
    ----------
    backends : sequence of str or Backend, optional
        Default: ``[None]``, i.e. ``$XPNET_BACKEND`` or ``auto``.
    dtypes : sequence of {"float32", "float64"}
    n_samples, hidden : sequences of int
        One case per (n_samples, hidden) pair.
    input_dim, classes : int
        2 and 2 are the tutorials' shape; 784 and 10 an MNIST-sized one.
    epochs, repeat, warmup : int
        Epochs per timed sample, timed samples (the median is reported), untimed samples first.
    compare : str or sequence of {"torch", "tutorial"}, optional
        Also time these baselines, interleaved, and report the time ratios
        (:class:`TorchBaseline`, :class:`TutorialBaseline`); ``"torch,tutorial"`` is fine.
    ceiling_sizes : dict, optional
        Keyword sizes for :func:`measure_ceilings` (default: :func:`default_ceiling_sizes`).
    memory : bool
        Also measure each case's peak resident memory over one more epoch (:func:`peak_memory`).
    progress : callable, optional
        Called with ``(kind, payload)``: ``("ceilings", dict)``, ``("result", row)`` or
        ``("skipped", dict)`` as each is done.

    Returns
    -------
    dict
        ``{"machine": ..., "ceilings": [...], "results": [...], "skipped": [...]}``; each
        result row holds the case, ``seconds_per_epoch`` and :func:`units`.
    """
    names = compare_names(compare)
    for name, values in (("n_samples", n_samples), ("hidden", hidden)):
        if not values:
            raise XpnetValueError(f"{name} is empty; give at least one value")
    resolved = [get_backend(b) for b in (backends or [None])]
    if "torch" in names:
        get_backend("torch")  # a clear BackendUnavailableError before any measuring
    plan = []  # (backend, dtype, cases): every case is checked before anything is measured
    for backend in resolved:
        for dtype in dtypes:
            backend.dtype(dtype)  # clear error when the device lacks the dtype
            cases = [Case(backend.name, dtype, int(n), int(h), int(input_dim), int(classes), activation)
                     for n in n_samples for h in hidden]
            for case in cases:
                case.check()
            plan.append((backend, dtype, cases))
    report = {"machine": machine_info(resolved), "ceilings": [], "results": [], "skipped": []}
    notify = progress or (lambda kind, payload: None)
    for backend, dtype, cases in plan:
        ceilings = measure_ceilings(backend, dtype, activation=activation, **(ceiling_sizes or {}))
        report["ceilings"].append(ceilings)
        notify("ceilings", ceilings)
        for case in cases:
            reason = too_big(case, backend)
            if reason:
                skipped = {**asdict(case), "backend": backend.name, "reason": reason,
                           "estimated_memory_bytes": estimate_memory(case)}
                report["skipped"].append(skipped)
                notify("skipped", skipped)
                continue
            row = measure_case(case, backend=backend, ceilings=ceilings, compare=names,
                               repeat=repeat, epochs=epochs, warmup=warmup, memory=memory)
            report["results"].append(row)
            notify("result", row)
    return report


def machine_info(backends=()) -> dict:
    """Facts about this machine: CPU, cores, memory, BLAS and its threads, GPUs of ``backends``."""
    info = {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "xpnet": __version__,
        "memory_bytes": host_memory()["total"],
        "blas": _blas_info(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    gpus = []
    for backend in backends:
        backend = get_backend(backend)
        if _on_gpu(backend):  # pragma: no cover - needs a GPU
            gpus.append(_gpu_info(backend))
    if gpus:  # pragma: no cover
        info["gpus"] = gpus
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas_info() -> list:
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "version", "num_threads", "architecture")
    return [{k: pool.get(k) for k in keep if k in pool} for pool in threadpool_info()]


def _gpu_info(backend: Backend) -> dict:  # pragma: no cover - needs a GPU
    module = native_module(backend)
    if backend.name == "cupy":
        props = module.cuda.runtime.getDeviceProperties(backend.device.id)
        name = props["name"]
        return {"backend": "cupy", "name": name.decode() if isinstance(name, bytes) else str(name),
                "memory_bytes": int(props["totalGlobalMem"]), "cupy": module.__version__,
                "cuda_runtime": module.cuda.runtime.runtimeGetVersion(),
                "cuda_driver": module.cuda.runtime.driverGetVersion()}
    props = module.cuda.get_device_properties(backend.device)
    return {"backend": "torch", "name": props.name, "memory_bytes": int(props.total_memory),
            "cuda": module.version.cuda, "torch": module.__version__}


def plot(report: dict, path: str) -> None:
    """Draw samples/s against hidden size, one line per backend, dtype and n_samples, into ``path``.

    Baselines are drawn with the same colour: PyTorch (``--compare torch``) dashed, the tutorial
    code (``--compare tutorial``) dotted. Needs matplotlib
    (``pip install 'xpnet[plot]'``); the file type follows the extension (.png, .svg, .pdf).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise XpnetError("--plot needs matplotlib: pip install 'xpnet[plot]'") from None
    rows = report["results"]
    if not rows:
        raise XpnetValueError("nothing to plot: every case was skipped")
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    series = {}
    for row in rows:
        series.setdefault((row["backend"], row["dtype"], row["n_samples"]), []).append(row)
    for (name, dtype, n), group in sorted(series.items()):
        group.sort(key=lambda r: r["hidden"])
        xs = [r["hidden"] for r in group]
        line, = ax.plot(xs, [r["samples_per_second"] for r in group], marker="o", label=f"xpnet {name} {dtype} N={n:g}")
        for key, style, label in (("torch", "--", "PyTorch baseline"), ("tutorial", ":", "tutorial code (float64)")):
            if all(f"{key}_samples_per_second" in r for r in group):
                ax.plot(xs, [r[f"{key}_samples_per_second"] for r in group], marker="x", linestyle=style,
                        color=line.get_color(), label=f"{label} beside {name} {dtype} N={n:g}")
    first = rows[0]
    ax.set_xscale("log", base=2)
    widths = sorted({r["hidden"] for r in rows})
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_xlabel("hidden units")
    ax.set_ylabel("training samples per second (full-batch epochs)")
    ax.set_title(f"xpnet training throughput, {first['input_dim']} inputs, {first['classes']} classes")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    try:
        fig.savefig(path)
    except (OSError, ValueError) as exc:
        raise XpnetValueError(f"cannot write the plot to {path!r}: {exc}") from None


__all__ = [
    "BASELINES", "Case", "EpochRunner", "MatmulProbe", "StepCost", "TorchBaseline", "TutorialBaseline", "baseline_memory",
    "compare_names", "estimate_memory", "machine_info", "peak_memory",
    "measure_case", "measure_ceilings", "plot", "run", "step_cost", "time_interleaved", "too_big", "units",
]
