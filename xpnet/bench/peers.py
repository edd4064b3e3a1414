"""The peers of ``compare``: the same training step in PyTorch (eager and ``torch.compile``),
JAX (``jax.jit``) and the WildML tutorial's own NumPy code, on the data and starting weights
of an :class:`~xpnet.bench.EpochRunner`, each a runner (``run(epochs)`` ends with a sync).

Optional libraries (torch, jax) are loaded through :mod:`xpnet.backend`, never imported here.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from ..backend import Backend, get_backend, native_module, to_numpy
from ..errors import BackendUnavailableError, XpnetValueError
from .runners import EpochRunner, too_big


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


