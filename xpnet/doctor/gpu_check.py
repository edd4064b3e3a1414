"""``xpnet doctor --gpu-check``: the end-to-end proof, in minutes, that training on a GPU is right.

:func:`gpu_check` trains on the device and on NumPy float64 from the same data and the
same weights and compares them within :data:`TOLERANCES`: float64 and float32, the chunked
full-batch pass and minibatches, a checkpoint written from the device and loaded on NumPy, the
scikit-learn estimators under ``array_api_dispatch`` with device arrays, two MPI ranks on two
devices (NCCL on CuPy), and the seconds per epoch of NumPy and the device at growing sizes.
Its ``device`` is ``"cupy"`` for users; the tests pass a CPU stand-in (``array_api_strict:device1``,
``torch``) so that every comparison, the table and each verdict run on a machine without a GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..backend import cuda, get_backend, to_numpy
from ..engine.fullbatch import chunk_rows
from ..errors import XpnetError
from ..mlp import MLP

TOLERANCES = {"float64": 1e-9, "float32": 2e-3}  # largest relative difference from NumPy float64 allowed
LAYERS = [2, 64, 64, 2]  # the agreement net: tanh, softmax
TRAIN = {"epochs": 30, "learning_rate": 0.1, "l2": 1e-4}
MINIBATCH = {"epochs": 3, "learning_rate": 0.01, "optimizer": "adam", "batch_size": 100, "l2": 1e-4}
SPEED_ROWS = (1_000, 10_000, 100_000, 1_000_000)
SPEED_LAYERS = [64, 512, 512, 10]
SPEED_EPOCHS = 3
SPEED_BUDGET = 20.0  # seconds of NumPy per epoch after which the table stops growing


@dataclass
class Check:
    """One comparison: ``status`` is "passed", "failed" or "skipped"; ``detail`` says what was measured."""

    name: str
    status: str
    detail: str
    difference: float | None = None  # the largest relative difference found, where one is measured


def gpu_check(device: str = "cupy", *, rank_devices=None, speed_rows=SPEED_ROWS, speed_layers=SPEED_LAYERS,
              agreement_rows: int = 2_000) -> dict:
    """Run every check on ``device`` and return the report (what ``--json`` prints).

    Parameters
    ----------
    device : str
        The backend under test: ``"cupy"`` (or ``"cupy:1"``); a CPU stand-in in tests.
    rank_devices : list of str, optional
        The backends of the two MPI ranks (default for CuPy: ``"cupy"``, which each rank
        turns into its own GPU, when two GPUs are present).
    speed_rows, speed_layers :
        The sizes of the speed table (float32, full batch).
    agreement_rows : int
        Rows of the agreement data (moons; more than 256, so not the tutorials' unchunked path).

    Returns
    -------
    dict
        ``status`` ("passed", "failed" or "skipped"), ``reason``, ``device``, ``checks`` (name,
        status, detail, difference), ``tolerances``, ``speed`` (rows, NumPy and device seconds
        per epoch), ``gpu_wins_from_rows`` (None if never) and ``seconds``.
    """
    start = time.perf_counter()
    try:
        backend = get_backend(device)
    except XpnetError as exc:
        return {"status": "skipped", "reason": f"no working CUDA device: {exc}", "device": device, "checks": [],
                "speed": [], "gpu_wins_from_rows": None, "tolerances": TOLERANCES, "seconds": 0.0}
    from ..data import datasets

    X, y = datasets.load("moons", n_samples=agreement_rows, noise=0.2, seed=0)
    name = backend.qualified_name()
    if rank_devices is None:
        rank_devices = ["cupy", "cupy"] if backend.name == "cupy" and cuda.device_count() >= 2 else []
    checks = [_guarded(f"agreement {dtype}", _agreement, name, dtype, X, y) for dtype in ("float64", "float32")]
    checks.append(_guarded("chunked full batch", _chunked, backend))
    checks.append(_guarded("minibatches (adam)", _agreement, name, "float64", X, y, MINIBATCH))
    checks.append(_guarded("checkpoint device -> numpy", _checkpoint, name, X, y))
    checks.append(_guarded("estimators (array_api_dispatch)", _estimators, backend, X, y))
    checks.append(_guarded("two MPI ranks", _two_ranks, rank_devices, X, y))
    speed = _speed_table(backend, speed_rows, speed_layers)
    wins = next((row["rows"] for row in speed if row["device_seconds"] < row["numpy_seconds"]), None)
    status, reason = verdict(checks, wins, speed, backend.describe())
    return {"status": status, "reason": reason, "device": backend.describe(), "checks": [asdict(c) for c in checks],
            "tolerances": TOLERANCES, "speed": speed, "gpu_wins_from_rows": wins,
            "seconds": round(time.perf_counter() - start, 1)}


def verdict(checks, wins, speed, where: str) -> tuple[str, str]:
    """``(status, reason)``: failed when any check failed, else passed (skipped checks say why)."""
    failed = [c.name for c in checks if c.status == "failed"]
    if failed:
        return "failed", f"{', '.join(failed)} failed on {where}; see the checks"
    skipped = [c.name for c in checks if c.status == "skipped"]
    tried = f"up to {speed[-1]['rows']:,} rows" if speed else "no sizes"
    faster = f"faster than NumPy from {wins:,} rows" if wins else f"not faster than NumPy at any size tried ({tried})"
    return "passed", (f"every check passed on {where}" + (f" ({', '.join(skipped)} skipped)" if skipped else "")
                      + f"; it is {faster}")


def _guarded(name: str, run, *args) -> Check:
    """``run(*args) -> (passed, detail, difference)`` as a :class:`Check`; an exception fails it with the reason."""
    try:
        outcome = run(*args)
    except Exception as exc:  # a check that crashes has failed, and says how
        return Check(name, "failed", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
    if outcome[0] is None:
        return Check(name, "skipped", outcome[1])
    return Check(name, "passed" if outcome[0] else "failed", outcome[1], outcome[2])


def _train(backend, dtype: str, X, y, layers=LAYERS, options=TRAIN):
    model = MLP(layers, activation="tanh", backend=backend, dtype=dtype, seed=0)  # weights drawn on the host
    result = model.fit(X, y, **options)
    return model, result


def _difference(got, want) -> float:
    """The largest difference relative to the reference's largest magnitude."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-300))


def _compare(model, result, reference, ref_result, tolerance: float) -> tuple:
    differences = [_difference(result.history, ref_result.history)]
    differences += [_difference(to_numpy(a), to_numpy(b)) for a, b in zip(model.parameters(), reference.parameters())]
    worst = max(differences)
    return worst <= tolerance, f"largest relative difference {worst:.1e} (tolerance {tolerance:.0e})", worst


def _agreement(name: str, dtype: str, X, y, options=TRAIN) -> tuple:
    reference, ref_result = _train("numpy", "float64", X, y, options=options)
    model, result = _train(name, dtype, X, y, options=options)
    return _compare(model, result, reference, ref_result, TOLERANCES[dtype])


def _chunked(backend) -> tuple:
    from ..data import datasets
    from ..engine.numpy_ops import get_ops

    ops = get_ops(backend)
    rows = 2 * chunk_rows(ops, LAYERS, 8) + 7  # three chunks of the device's full-batch pass
    X, y = datasets.load("moons", n_samples=rows, noise=0.2, seed=1)
    options = {"epochs": 3, "learning_rate": 0.1}
    reference, ref_result = _train("numpy", "float64", X, y, options=options)
    model, result = _train(backend.qualified_name(), "float64", X, y, options=options)
    passed, detail, worst = _compare(model, result, reference, ref_result, TOLERANCES["float64"])
    return passed, f"{rows:,} rows in chunks of {chunk_rows(ops, LAYERS, 8):,}: {detail}", worst


def _checkpoint(name: str, X, y) -> tuple:
    from ..io import checkpoint

    model, _ = _train(name, "float32", X, y, options={"epochs": 5, "learning_rate": 0.1})
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "gpu.npz")
        checkpoint.save(path, model)
        loaded = checkpoint.load(path, backend="numpy").model
    same = all(np.array_equal(to_numpy(a), to_numpy(b)) for a, b in zip(model.parameters(), loaded.parameters()))
    agree = float(np.mean(to_numpy(loaded.predict(X)) == to_numpy(model.predict(X))))
    passed = same and agree >= 0.999
    return passed, f"weights {'bitwise equal' if same else 'DIFFER'} on NumPy; predictions agree on {agree:.1%}", None


def _estimators(backend, X, y) -> tuple:
    os.environ.setdefault("SCIPY_ARRAY_API", "1")  # scikit-learn's array API support needs it before scipy loads
    import array_api_compat
    import sklearn

    from ..sklearn import MLPClassifier

    options = {"hidden_layer_sizes": (32,), "max_iter": 30, "random_state": 0}
    X_dev, y_dev = backend.asarray(X, "float32"), backend.asarray(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 30 iterations do not converge: the agreement is what is checked
        reference = MLPClassifier(**options).fit(X, y).predict(X)
        with sklearn.config_context(array_api_dispatch=True):
            predicted = MLPClassifier(**options).fit(X_dev, y_dev).predict(X_dev)
    same_place = array_api_compat.array_namespace(predicted) is array_api_compat.array_namespace(X_dev)
    agree = float(np.mean(to_numpy(predicted) == reference))
    return same_place and agree >= 0.98, (f"predictions {'on' if same_place else 'NOT on'} the input's namespace; "
                                          f"they agree with NumPy's estimator on {agree:.1%}"), None


RANKS_SCRIPT = f"""
import sys
import numpy as np
import xpnet
from xpnet import distributed

out, rows, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
comm = distributed.launch(require=True)
name = names[comm.rank]
name = comm.backend_name(name) if name in ("cupy", "auto") else name
X, y = xpnet.datasets.load("moons", n_samples=rows, noise=0.2, seed=0)
model = xpnet.MLP({LAYERS!r}, activation="tanh", backend=name, dtype="float64", seed=0)
with comm.abort_on_error():
    distributed.fit(model, comm.rows(X), comm.rows(y), comm=comm, **{TRAIN!r})
if comm.is_root:
    np.savez(out, *[xpnet.to_numpy(p) for p in model.parameters()])
"""


def _two_ranks(rank_devices, X, y) -> tuple:
    if len(rank_devices) < 2:
        return None, f"needs two devices (found {cuda.device_count()} CUDA devices)", None
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None, "needs mpi4py: pip install mpi4py mpich", None
    found = Path(sys.executable).with_name("mpiexec")
    mpiexec = str(found) if found.exists() else shutil.which("mpiexec")
    if not mpiexec:
        return None, "needs mpiexec: pip install mpich (or load the site's MPI)", None
    env = {k: v for k, v in os.environ.items() if k != "XPNET_BACKEND"}
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "ranks.npz")
        command = [mpiexec, "-n", "2", sys.executable, "-m", "mpi4py", "-c", RANKS_SCRIPT, out, str(X.shape[0]),
                   *rank_devices[:2]]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        if proc.returncode != 0:
            return False, f"the 2-rank job failed ({proc.returncode}): {' '.join(proc.stderr.split())[-300:]}", None
        with np.load(out) as saved:
            params = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    reference, _ = _train("numpy", "float64", X, y)
    worst = max(_difference(a, to_numpy(b)) for a, b in zip(params, reference.parameters()))
    staged = "through host memory" in proc.stderr
    how = "summed through host memory" if staged else "summed on the devices"
    return worst <= TOLERANCES["float64"], (f"{' and '.join(rank_devices[:2])}, gradients {how}: largest relative "
                                            f"difference {worst:.1e} from one NumPy process"), worst


def _speed_table(backend, rows_list, layers) -> list:
    """Seconds per full-batch float32 epoch on NumPy and on the device, at growing sizes."""
    rng = np.random.default_rng(0)
    table = []
    for rows in rows_list:
        X = rng.standard_normal((rows, layers[0])).astype(np.float32)
        y = rng.integers(0, layers[-1], rows)
        numpy_seconds = _seconds_per_epoch(get_backend("numpy"), X, y, layers)
        device_seconds = _seconds_per_epoch(backend, X, y, layers)
        table.append({"rows": rows, "numpy_seconds": numpy_seconds, "device_seconds": device_seconds,
                      "speedup": numpy_seconds / device_seconds if device_seconds > 0 else None})
        if numpy_seconds > SPEED_BUDGET:
            break
    return table


def _seconds_per_epoch(backend, X, y, layers) -> float:
    model = MLP(layers, backend=backend, dtype="float32", seed=0)
    with backend.activate():
        X_dev = backend.asarray(X, "float32")  # the copy is not part of an epoch
        model.fit(X_dev, y, epochs=1, learning_rate=0.01, log_every=1)  # warm-up: CuPy compiles its kernels
        backend.sync()
        start = time.perf_counter()
        model.fit(X_dev, y, epochs=SPEED_EPOCHS, learning_rate=0.01, log_every=SPEED_EPOCHS)
        backend.sync()
    return (time.perf_counter() - start) / SPEED_EPOCHS


def format_gpu_check(report: dict) -> str:
    """The text form: one line per check, the speed table, and the verdict."""
    lines = [f"gpu check on {report['device']}"]
    for check in report["checks"]:
        lines.append(f"  {check['status']:<7}  {check['name']:<32}  {check['detail']}")
    if report["speed"]:
        lines.append(f"  {'rows':>10}  {'numpy s/epoch':>14}  {'device s/epoch':>14}  {'speed-up':>8}")
        for row in report["speed"]:
            speedup = f"{row['speedup']:.2f}x" if row["speedup"] else "-"
            lines.append(f"  {row['rows']:>10,}  {row['numpy_seconds']:>14.4f}  {row['device_seconds']:>14.4f}  "
                         f"{speedup:>8}")
    lines.append(f"{report['status']}: {report['reason']}")
    return "\n".join(lines)


def to_json(report: dict) -> str:
    """The report as one line of JSON."""
    return json.dumps(report, separators=(",", ":"))


