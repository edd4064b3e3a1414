"""Data-parallel training (xpnet.distributed): sharding, the size-1 path without MPI, and
real 2- and 3-process MPI jobs compared with single-process training: built-in datasets,
data files read a block per rank (every format), rows spread anywhere, the one buffer per
step, Ctrl-C under mpiexec, failing ranks.

The MPI tests launch ``mpiexec -n P python -m mpi4py ...`` in a subprocess with a timeout;
they skip with the reason when mpi4py or mpiexec is missing (CI installs
``pip install mpi4py mpich`` so that they run).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import available_backend, rtol_for, run_cli
from helpers import mpi_env, mpi_run, mpiexec

import xpnet
from xpnet import distributed
from xpnet.io import checkpoint

N_ROWS = 10_001  # uneven over 2 and 3 processes
TIMEOUT = 120
TRAIN = ["train", "--backend", "numpy", "--dtype", "float64", "--n-samples", N_ROWS, "--hidden", "8",
         "--epochs", 25, "--log-every", 5, "--json"]


# -- sharding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n_rows, size", [(10_001, 1), (10_001, 2), (10_001, 3), (7, 7), (5, 4)])
def test_shards_are_contiguous_cover_every_row_and_differ_by_at_most_one(n_rows, size):
    bounds = [distributed.shard_bounds(n_rows, rank, size) for rank in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n_rows
    assert all(stop == start for (_, stop), (start, _) in zip(bounds, bounds[1:]))
    counts = [stop - start for start, stop in bounds]
    assert max(counts) - min(counts) <= 1 and min(counts) >= 1
    assert counts == sorted(counts, reverse=True)  # the extra rows go to the first ranks


def test_more_processes_than_rows_is_a_clear_error():
    with pytest.raises(xpnet.XpnetValueError, match="3 rows cannot be shared by 4 processes"):
        distributed.shard_bounds(3, 0, 4)
    with pytest.raises(xpnet.XpnetValueError, match="rank=2"):
        distributed.shard_bounds(10, 2, 2)


def test_npy_rows_of_all_ranks_concatenate_to_the_file(tmp_path):
    whole = np.arange(11 * 3, dtype=np.float64).reshape(11, 3)
    path = tmp_path / "X.npy"
    np.save(path, whole)
    parts = [distributed.load_npy_rows(path, rank, 3) for rank in range(3)]
    assert [p.shape for p in parts] == [(4, 3), (4, 3), (3, 3)]
    assert all(isinstance(p, np.ndarray) and not isinstance(p, np.memmap) for p in parts)  # copied, file closed
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_npy_rows_errors_name_the_file(tmp_path):
    with pytest.raises(xpnet.XpnetValueError, match="missing.npy"):
        distributed.load_npy_rows(tmp_path / "missing.npy")
    np.save(tmp_path / "scalar.npy", np.float64(1.0))
    with pytest.raises(xpnet.XpnetValueError, match="scalar"):
        distributed.load_npy_rows(tmp_path / "scalar.npy")


def test_gpu_per_rank_leaves_cpu_backends_alone(monkeypatch):
    from xpnet.backend import backend_for_rank

    monkeypatch.setitem(sys.modules, "cupy", None)  # as on this machine: no CuPy, no GPU
    assert [backend_for_rank(name, 3) for name in ("numpy", "torch:cpu", "array_api_strict", None)] == \
        ["numpy", "torch:cpu", "array_api_strict", None]
    assert backend_for_rank("cupy", 3) == "cupy"  # unchanged: get_backend then explains CuPy is missing
    assert backend_for_rank("cupy:1", 3) == "cupy:1"


# -- one process, no MPI ------------------------------------------------------------------
@pytest.fixture
def no_mpi(monkeypatch):
    """Simulate a machine without mpi4py (and a program not started by mpiexec)."""
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # `import mpi4py` now raises ImportError
    monkeypatch.delitem(sys.modules, "mpi4py.MPI", raising=False)
    for name in distributed.LAUNCHER_SIZE_VARS:
        monkeypatch.delenv(name, raising=False)


def test_without_mpi_launch_gives_a_size_one_communicator(no_mpi):
    comm = distributed.launch()
    assert (comm.rank, comm.size, comm.is_root, comm.where()) == (0, 1, True, "")
    assert comm.threads_per_rank() == len(os.sched_getaffinity(0))
    X = np.arange(10.0).reshape(5, 2)
    assert comm.rows(X) is X
    assert comm.sum_floats([1, 2.5]) == [1.0, 2.5]


def test_without_mpi_distributed_fit_equals_fit_bitwise(no_mpi, backend, dtype):
    X, y = xpnet.datasets.load("moons", n_samples=101, noise=0.2, seed=1)
    options = dict(epochs=15, learning_rate=0.5, l2=0.01, log_every=5)
    plain = xpnet.MLP([2, 6, 2], backend=backend, dtype=dtype, seed=3)
    expected = plain.fit(X, y, **options)
    model = xpnet.MLP([2, 6, 2], backend=backend, dtype=dtype, seed=3)
    result = distributed.fit(model, X, y, comm=distributed.launch(), **options)
    assert result.history == expected.history
    for got, want in zip(model.parameters(), plain.parameters()):
        np.testing.assert_array_equal(xpnet.to_numpy(got), xpnet.to_numpy(want))


def test_launched_by_mpiexec_without_mpi4py_is_an_error_not_p_separate_runs(no_mpi, monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "4")
    with pytest.raises(xpnet.XpnetError, match=r"MPI launcher \(4 processes\).*pip install mpi4py mpich"):
        distributed.launch()


def test_require_without_mpi4py_is_an_error(no_mpi):
    with pytest.raises(xpnet.XpnetError, match=r"^mpi4py cannot be imported.*pip install mpi4py mpich"):
        distributed.launch(require=True)


def test_cli_distributed_without_mpi_prints_what_train_prints():
    blocked = ("import sys; sys.modules['mpi4py'] = None; from xpnet.cli import main; "
               f"sys.exit(main({[str(a) for a in TRAIN] + ['--distributed']!r}))")
    env = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCHER_SIZE_VARS}
    proc = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    want = json.loads(run_cli(*TRAIN, check=0).stdout)
    assert got["processes"] == 1
    assert (got["history"], got["accuracy"], got["n_samples"]) == (want["history"], want["accuracy"], N_ROWS)


# -- real MPI jobs ------------------------------------------------------------------------------
XPNET = [sys.executable, "-m", "mpi4py", "-m", "xpnet"]


@pytest.mark.parametrize("processes, extra", [
    (2, []),
    (3, []),
    (2, ["--l2", "0.01", "--reduction", "sum", "--learning-rate", "5e-5"]),
    # minibatches: every global batch is split across the processes that hold its rows
    (3, ["--batch-size", "1000", "--momentum", "0.9", "--nesterov", "--clip-norm", "1.0", "--schedule", "cosine"]),
    (2, ["--batch-size", "700", "--reduction", "sum", "--l2", "0.001", "--learning-rate", "0.001",
         "--early-stopping", "--validation-fraction", "0.2", "--patience", "2"]),
], ids=["2", "3", "2-sum-l2", "3-minibatch-momentum", "2-minibatch-early-stopping"])
def test_cli_on_p_processes_equals_one_process(processes, extra):
    proc = mpi_run((processes, [*XPNET, *TRAIN, *extra, "--distributed"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, "only rank 0 may print the JSON line"
    got = json.loads(lines[0])
    want = json.loads(run_cli(*TRAIN, *extra, check=0).stdout)
    assert got["processes"] == processes and got["n_samples"] == want["n_samples"]
    assert got["logged_epochs"] == want["logged_epochs"]
    assert got["logged_epochs"][:2] == [0, 5]
    np.testing.assert_allclose(got["history"], want["history"], rtol=1e-12, atol=0)
    assert got["accuracy"] == want["accuracy"]
    for key in ("validation_accuracy", "validation_history", "best_epoch", "stopped_early"):
        if want.get(key) is not None:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-12)
    assert proc.stderr.count("epoch 25/25") <= 1 and proc.stderr.count("epoch  5/25") == 1, \
        "progress must come from rank 0 only"


def test_divergence_is_caught_from_the_step_buffer_before_the_update():
    # the loss of the step arrives with its gradients; every rank sees it blow up at the same check
    extra = ["--activation", "relu", "--reduction", "sum", "--learning-rate", 1e3, "--log-every", 1]
    want = json.loads(run_cli(*TRAIN, *extra, check=1).stdout)
    proc = mpi_run((2, [*XPNET, *TRAIN, *extra, "--distributed"]))
    assert proc.returncode == 1, proc.stderr[-2000:]
    got = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))
    assert got["diverged"] and (got["epochs"], got["logged_epochs"]) == (want["epochs"], want["logged_epochs"])
    np.testing.assert_allclose(got["history"], want["history"], rtol=1e-12)
    assert proc.stderr.count("xpnet: error: training diverged at epoch 1") == 1  # from rank 0 only


def test_cli_text_output_comes_from_rank_zero_only():
    args = [a for a in TRAIN if a != "--json"]
    proc = mpi_run((2, [*XPNET, *args, "--distributed"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("accuracy  ") == 1 and proc.stdout.count("loss      ") == 1
    assert f"({N_ROWS} samples)" in proc.stderr and proc.stderr.count("xpnet: training") == 1


LIBRARY_RUN = """
import sys
import numpy as np
import xpnet
from xpnet import checkpoint, distributed

backend, dtype, out = sys.argv[1:4]
comm = distributed.launch(require=True)
X, y = xpnet.datasets.load("moons", n_samples={n_rows}, noise=0.2, seed=0)
# a different seed on every rank: the broadcast from rank 0 must make the start identical
model = xpnet.MLP([2, 8, 2], backend=backend, dtype=dtype, seed=comm.rank)
with comm.abort_on_error(), xpnet.limit_threads(comm.threads_per_rank()):
    result = distributed.fit(model, comm.rows(X), comm.rows(y), comm=comm,
                             epochs=20, learning_rate=0.5, l2=0.001, log_every=5)
assert comm.stats.calls >= 20, comm.stats
if comm.is_root:
    flat = [np.reshape(xpnet.to_numpy(p), (-1,)) for p in model.parameters()]
    np.savez(out, params=np.concatenate(flat), history=np.asarray(result.history))
""".replace("{n_rows}", str(N_ROWS))


def test_weights_after_k_steps_equal_one_process(backend, dtype, tmp_path):
    # 3 uneven shards; 2 for torch, whose import costs seconds per process (the CLI tests
    # above cover 2 and 3 processes on numpy)
    processes = 2 if backend.name == "torch" else 3
    out = tmp_path / "weights.npz"
    name = backend.qualified_name()  # e.g. cupy:0, array_api_strict:no_float64: what get_backend reads back
    proc = mpi_run((processes, [sys.executable, "-m", "mpi4py", "-c", LIBRARY_RUN, name, dtype, out]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = np.load(out)
    X, y = xpnet.datasets.load("moons", n_samples=N_ROWS, noise=0.2, seed=0)
    model = xpnet.MLP([2, 8, 2], backend=backend, dtype=dtype, seed=0)
    result = model.fit(X, y, epochs=20, learning_rate=0.5, l2=0.001, log_every=5)
    want = np.concatenate([np.reshape(xpnet.to_numpy(p), (-1,)) for p in model.parameters()])
    rtol = 1e-12 if dtype == "float64" else rtol_for(dtype)
    np.testing.assert_allclose(saved["params"], want, rtol=rtol, atol=rtol * np.max(np.abs(want)))
    np.testing.assert_allclose(saved["history"], result.history, rtol=rtol)


OPTIONS_RUN = """
import sys
import numpy as np
import xpnet
from xpnet import distributed
from xpnet.activations import Activation

out = sys.argv[1]
softsign = Activation("softsign", lambda xp, Z: Z / (1 + xp.abs(Z)), lambda xp, dY, Y: dY * (1 - xp.abs(Y)) ** 2)
comm = distributed.launch(require=True)
X, y = xpnet.datasets.load("moons", n_samples={n_rows}, noise=0.2, seed=0)
saved = {}
with comm.abort_on_error():
    for name, options in (("adam", dict(optimizer="adam", learning_rate=0.01, batch_size=200)),
                          ("softsign", dict(learning_rate=0.5))):
        model = xpnet.MLP([2, 8, 2], dtype="float64", backend="numpy", seed=1,
                          activation=softsign if name == "softsign" else "tanh")
        distributed.fit(model, comm.rows(X), comm.rows(y), comm=comm, epochs=8, log_every=4, **options)
        saved[name] = np.concatenate([np.reshape(xpnet.to_numpy(p), (-1,)) for p in model.parameters()])
if comm.is_root:
    np.savez(out, **saved)
""".replace("{n_rows}", str(N_ROWS))


def test_adam_and_a_user_activation_under_mpi_equal_one_process(tmp_path):
    """Issues 13 and 16: Adam (its moments stay the same on every rank, as the gradients are
    summed first) and an activation defined in the program train over processes as in one."""
    from xpnet.core.activations import Activation

    out = tmp_path / "options.npz"
    proc = mpi_run((2, [sys.executable, "-m", "mpi4py", "-c", OPTIONS_RUN, out]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = np.load(out)
    softsign = Activation("softsign", lambda xp, Z: Z / (1 + xp.abs(Z)), lambda xp, dY, Y: dY * (1 - xp.abs(Y)) ** 2)
    X, y = xpnet.datasets.load("moons", n_samples=N_ROWS, noise=0.2, seed=0)
    for name, options in (("adam", dict(optimizer="adam", learning_rate=0.01, batch_size=200)),
                          ("softsign", dict(learning_rate=0.5))):
        model = xpnet.MLP([2, 8, 2], dtype="float64", backend="numpy", seed=1,
                          activation=softsign if name == "softsign" else "tanh")
        model.fit(X, y, epochs=8, log_every=4, **options)
        want = np.concatenate([np.reshape(xpnet.to_numpy(p), (-1,)) for p in model.parameters()])
        np.testing.assert_allclose(saved[name], want, rtol=1e-10, atol=1e-12, err_msg=name)


SCATTERED_RUN = """
import json
import sys
import numpy as np
import xpnet
from xpnet import checkpoint, distributed

comm = distributed.launch(require=True)
X, y = xpnet.datasets.load("moons", n_samples=1001, noise=0.2, seed=4)
# rows dealt at random, 70/30 over ranks 0 and 1; the last rank holds none
owner = np.random.default_rng(7).choice(2, size=X.shape[0], p=[0.7, 0.3])
mine = np.flatnonzero(owner == comm.rank)
out = {}
with comm.abort_on_error():
    for name, extra in (("full", {}), ("minibatch", dict(batch_size=300, momentum=0.9))):
        model = xpnet.MLP([2, 8, 2], backend="numpy", dtype="float64", seed=0)
        comm.stats = distributed.ReduceStats()
        result = distributed.fit(model, X[mine], y[mine], comm=comm, global_rows=mine, epochs=6, learning_rate=0.5,
                                 log_every=2, **extra)
        out[name] = {"history": result.history, "calls": comm.stats.calls, "values": comm.stats.values,
                     "params": np.concatenate([np.ravel(p) for p in model.parameters()]).tolist()}
    sample = comm.sample(X[mine], y[mine], 100)
    try:  # every rank claims rows 0, 1, ...: overlapping positions, refused on every rank
        distributed.fit(model, X[mine], y[mine], comm=comm, global_rows=np.arange(len(mine)), epochs=1)
    except xpnet.XpnetValueError as exc:
        out["overlap"] = str(exc)
if comm.is_root:
    out["sample"] = [sample[0].tolist(), sample[1].tolist()]
    print(json.dumps(out))
"""


def test_rows_anywhere_train_like_one_process_with_one_buffer_per_step():
    """Rows dealt at random (uneven, out of order, one rank empty) with their positions:
    full batch and minibatch equal one process; every step is ONE Allreduce holding the
    gradients, the count, the loss and the interrupt flag (no extra exchange for the loss)."""
    proc = mpi_run((3, [sys.executable, "-m", "mpi4py", "-c", SCATTERED_RUN]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    X, y = xpnet.datasets.load("moons", n_samples=1001, noise=0.2, seed=4)
    n_params = 2 * 8 + 8 * 2 + 8 + 2
    for name, extra in (("full", {}), ("minibatch", dict(batch_size=300, momentum=0.9))):
        model = xpnet.MLP([2, 8, 2], backend="numpy", dtype="float64", seed=0)
        want = model.fit(X, y, epochs=6, learning_rate=0.5, log_every=2, **extra)
        np.testing.assert_allclose(got[name]["history"], want.history, rtol=1e-12)
        params = np.concatenate([np.ravel(p) for p in model.parameters()])
        np.testing.assert_allclose(got[name]["params"], params, rtol=1e-12, atol=1e-14)
    # full batch, 6 epochs: 7 step buffers (6 updates and the final loss) of n_params + 3 values, plus
    # 3 one-number reductions: the global row count, the positions check, the final bitwise check
    assert (got["full"]["calls"], got["full"]["values"]) == (7 + 3, 7 * (n_params + 3) + 3)
    # minibatch: 4 batches x 6 epochs step buffers, and at the 4 logging points a 1-number loss exchange
    assert (got["minibatch"]["calls"], got["minibatch"]["values"]) == (24 + 4 + 3, 24 * (n_params + 3) + 4 * 1 + 3)
    np.testing.assert_array_equal(got["sample"][0], X[::11])  # 100 points of 1001: every 11th, in order
    np.testing.assert_array_equal(got["sample"][1], y[::11])
    assert "do not cover the 1001 global rows once each" in got["overlap"]


BITWISE_CHECK = """
import numpy as np
import xpnet
from xpnet import checkpoint, distributed

comm = distributed.launch(require=True)
model = xpnet.MLP([2, 4, 2], backend="numpy", dtype="float64", seed=0)
comm.broadcast_parameters(model)
comm.check_identical(model)
if comm.rank == 1:
    model.W[0] = np.nextafter(model.W[0], np.inf)  # one ulp apart
try:
    comm.check_identical(model)
except xpnet.XpnetError as exc:
    print("caught on rank", comm.rank, ":", exc)
"""


def test_final_check_catches_a_one_ulp_difference_on_every_rank():
    proc = mpi_run((3, [sys.executable, "-m", "mpi4py", "-c", BITWISE_CHECK]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the ranks' lines may interleave on the shared stdout: count, do not split
    assert proc.stdout.count("caught on rank") == 3
    assert proc.stdout.count("the weights of 1 of 3 ranks differ from rank 0's") == 3


@pytest.mark.parametrize("runner", [["-m", "mpi4py", "-m", "xpnet"], ["-m", "xpnet"]],
                         ids=["python -m mpi4py", "plain python"])
def test_a_failing_rank_ends_the_job_quickly(runner):
    # MPMD launch: rank 1 asks for a backend that does not exist and fails while rank 0 is
    # already waiting in the weight broadcast; without the abort rank 0 would hang forever.
    args = [*TRAIN, "--epochs", 1000, "--distributed"]
    proc = mpi_run((1, [sys.executable, *runner, *args]), (1, [sys.executable, *runner, *args, "--backend", "nosuch"]),
                    timeout=60)  # a hang fails the test after 60 s; an abort takes about a second
    assert proc.returncode == 2
    assert "xpnet: error: rank 1 of 2: backend 'nosuch' is not an importable module" in proc.stderr


NPY_RUN = """
import json
import sys
import xpnet
from xpnet import checkpoint, distributed

comm = distributed.launch(require=True)
X, y = [distributed.load_npy_rows(path, comm.rank, comm.size) for path in sys.argv[1:3]]  # only this rank's rows
model = xpnet.MLP([2, 4, 2], backend="numpy", dtype="float64", seed=0)
with comm.abort_on_error():
    result = distributed.fit(model, X, y, comm=comm, epochs=10, learning_rate=0.5)
if comm.is_root:
    print(json.dumps({"rows": int(X.shape[0]), "history": result.history}))
"""


def _npy_data(tmp_path, nan_row=None):
    X, y = xpnet.datasets.load("moons", n_samples=1001, noise=0.2, seed=2)
    if nan_row is not None:
        X = X.copy()
        X[nan_row, 0] = np.nan
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    return X, y


def test_each_rank_reads_its_rows_of_npy_files_and_trains_like_one_process(tmp_path):
    X, y = _npy_data(tmp_path)
    proc = mpi_run((3, [sys.executable, "-m", "mpi4py", "-c", NPY_RUN, tmp_path / "X.npy", tmp_path / "y.npy"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert got["rows"] == 334  # rank 0's block of 1001 rows over 3 processes
    want = xpnet.MLP([2, 4, 2], backend="numpy", dtype="float64", seed=0).fit(X, y, epochs=10, learning_rate=0.5)
    np.testing.assert_allclose(got["history"], want.history, rtol=1e-12)


def test_an_xpnet_error_on_one_rank_aborts_the_library_job(tmp_path):
    _npy_data(tmp_path, nan_row=1000)  # the last row belongs to rank 1 of 2 only
    proc = mpi_run((2, [sys.executable, "-m", "mpi4py", "-c", NPY_RUN, tmp_path / "X.npy", tmp_path / "y.npy"]),
                    timeout=60)
    assert proc.returncode == 2  # 2: xpnet's own abort (an uncaught exception would give 1)
    assert "xpnet: error: rank 1 of 2: X contains NaN or Inf" in proc.stderr
    assert proc.stdout == ""


def test_plain_python_under_mpiexec_also_trains_distributed():
    proc = mpi_run((2, [sys.executable, "-m", "xpnet", *TRAIN, "--distributed"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["processes"] == 2


THREADS_RUN = """
import threadpoolctl
import xpnet
from xpnet import checkpoint, distributed

comm = distributed.launch(require=True)
with xpnet.limit_threads(comm.threads_per_rank()):
    blas = max(p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")
    total, total_blas = comm.sum_floats([comm.threads_per_rank(), blas])  # rank 0 alone prints
if comm.is_root:
    print(f"threads {total:g} blas {total_blas:g}")
"""


def test_processes_on_one_machine_share_its_cores_without_oversubscribing():
    proc = mpi_run((2, [sys.executable, "-m", "mpi4py", "-c", THREADS_RUN]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    share = max(1, len(os.sched_getaffinity(0)) // 2)  # mpiexec does not bind here: both see all cores
    assert proc.stdout.strip() == f"threads {2 * share} blas {2 * share}"  # summed over the 2 processes


# -- data files: each rank reads its own rows ---------------------------------------------------
def _file_data(tmp_path, name, n_rows=N_ROWS, n_features=2):
    """A labelled table in the format of ``name`` (see tests/data/test_data.py's write_table).

    CSV labels are words except in the first rows, which are whole numbers: the first
    rank's block alone would type them as integers, one process types them all as words.
    NPY labels are whole numbers, NPZ labels words.
    """
    from helpers import write_table

    X, y = xpnet.datasets.load("blobs", n_samples=n_rows, noise=1.0, seed=5, classes=3)
    X = np.column_stack([X * 3 + 10, np.random.default_rng(5).normal(size=(n_rows, n_features - 2))])
    words = np.array(["cat", "dog", "emu"])[y]
    if name.endswith(".csv"):
        words[:n_rows // 5] = np.array(["7", "8", "9"])[y[:n_rows // 5]]
    write_table(tmp_path / name, X, y if name.endswith(".npy") else words)
    return tmp_path / name


PREPARE_RUN = """
import json
import sys
import tracemalloc
import numpy as np
from xpnet import distributed
from xpnet.cli.prepare import prepare

comm = distributed.launch(require=True)
out, paths = sys.argv[1], sys.argv[2:]
peaks = []
with comm.abort_on_error():
    for i, path in enumerate(paths):
        config = {"data": path, "standardize": True, "validation_fraction": 0.2, "seed": 3}
        prepare(config, comm)  # warm-up: what the first call imports is no data
        tracemalloc.start()
        prepared = prepare(config, comm)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        np.savez(f"{out}/{i}-{comm.rank}.npz", X=prepared.X, y=prepared.y, X_val=prepared.X_val,
                 y_val=prepared.y_val, rows=prepared.rows, mean=prepared.scaler.mean, scale=prepared.scaler.scale)
        if comm.is_root:
            print(json.dumps({"classes": prepared.labels.classes, "n": [prepared.n_samples, prepared.n_val],
                              "n_classes": prepared.n_classes}))
peaks = comm.allgather(peaks)
if comm.is_root:
    print(json.dumps({"peaks": peaks}))
"""

DATA_FILES = ["d.csv", "d.npy", "d.npz", "d-compressed.npz"]


def test_each_rank_reads_and_prepares_only_its_rows_of_a_data_file(tmp_path):
    from xpnet.cli.prepare import prepare

    paths = [_file_data(tmp_path, name, n_features=24) for name in DATA_FILES]
    proc = mpi_run((3, [sys.executable, "-m", "mpi4py", "-c", PREPARE_RUN, tmp_path, *paths]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    *summaries, peaks = [json.loads(line) for line in proc.stdout.splitlines()]
    for i, (path, summary) in enumerate(zip(paths, summaries)):
        want = prepare({"data": str(path), "standardize": True, "validation_fraction": 0.2, "seed": 3})
        assert summary == {"classes": want.labels.classes, "n": [8001, 2000], "n_classes": want.n_classes}, path.name
        parts = [np.load(tmp_path / f"{i}-{rank}.npz") for rank in range(3)]
        assert sum(len(part["y"]) + len(part["y_val"]) for part in parts) == N_ROWS
        assert max(len(part["y"]) + len(part["y_val"]) for part in parts) == 3334  # each rank: its block only
        X, y = np.empty_like(want.X), np.empty_like(want.y)
        for part in parts:  # the training rows go where `rows` says
            X[part["rows"]], y[part["rows"]] = part["X"], part["y"]
            np.testing.assert_allclose(part["mean"], want.scaler.mean, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(part["scale"], want.scaler.scale, rtol=1e-13)
        np.testing.assert_allclose(X, want.X, rtol=1e-12, atol=1e-13)
        np.testing.assert_array_equal(y, want.y)
        held = np.concatenate([np.column_stack([part["X_val"], part["y_val"]]) for part in parts])
        expected = np.column_stack([want.X_val, want.y_val])
        np.testing.assert_allclose(held[np.argsort(held[:, 0])], expected[np.argsort(expected[:, 0])],
                                   rtol=1e-12, atol=1e-13)  # the same held-out rows, spread over the ranks
    # a third of the rows per rank: its block, then the block's training and held-out copies (about two
    # thirds of the file at the peak), never the whole file
    whole = N_ROWS * 24 * 8  # the file's features as float64
    for rank, rank_peaks in enumerate(peaks["peaks"]):
        for path, peak in zip(paths, rank_peaks):
            assert peak < 0.9 * whole, f"rank {rank} held {peak / whole:.0%} of {path.name}'s data at once"


CLI_FILE_CASES = {  # file, processes, flags: every format, 2 and 3 ranks, held-out rows spread over the ranks
    "csv-2-standardize": ("d.csv", 2, ["--standardize", "--validation-fraction", 0.2]),
    "npy-3-minibatch": ("d.npy", 3, ["--validation-fraction", 0.2, "--batch-size", 700, "--momentum", 0.9,
                                     "--learning-rate", 0.02]),  # unscaled inputs: 0.5 would be chaotic
    "npz-2-sum-l2": ("d.npz", 2, ["--standardize", "--validation-fraction", 0.3, "--reduction", "sum", "--l2", 0.01,
                                  "--learning-rate", 1e-4]),
    "compressed-3-early-stopping": ("d-compressed.npz", 3, ["--standardize", "--early-stopping", "--patience", 3,
                                                            "--batch-size", 2000, "--learning-rate", 0.05]),
}


@pytest.mark.parametrize("case", list(CLI_FILE_CASES))
def test_cli_data_file_trains_and_saves_like_one_process(tmp_path, case):
    name, processes, flags = CLI_FILE_CASES[case]
    path = _file_data(tmp_path, name)
    args = ["train", "--data", path, "--backend", "numpy", "--dtype", "float64", "--hidden", 8, "--epochs", 25,
            "--log-every", 5, "--json", *flags]
    want = json.loads(run_cli(*args, "--save", tmp_path / "one.npz", check=0).stdout)
    proc = mpi_run((processes, [*XPNET, *args, "--save", tmp_path / "many.npz", "--distributed"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert got["processes"] == processes and got["n_samples"] == want["n_samples"]
    mapped = name.endswith(".npy") or name == "d.npz"  # every rank streams its block of the map
    assert got["data_residency"] == want["data_residency"] == ("streamed" if mapped else "device")
    assert got["logged_epochs"] == want["logged_epochs"]
    np.testing.assert_allclose(got["history"], want["history"], rtol=1e-12)
    assert (got["accuracy"], got["validation_accuracy"]) == (want["accuracy"], want["validation_accuracy"])
    if "--early-stopping" in flags:
        np.testing.assert_allclose(got["validation_history"], want["validation_history"], rtol=1e-12)
        assert (got["best_epoch"], got["stopped_early"]) == (want["best_epoch"], want["stopped_early"])
    saved_one, saved_many = np.load(tmp_path / "one.npz"), np.load(tmp_path / "many.npz")
    assert sorted(saved_one.files) == sorted(saved_many.files)
    for key in set(saved_one.files) - {"meta"}:  # weights, biases, velocities, standardization
        np.testing.assert_allclose(saved_many[key], saved_one[key], rtol=1e-12, atol=1e-14)
    meta_one, meta_many = (json.loads(bytes(saved["meta"])) for saved in (saved_one, saved_many))
    np.testing.assert_allclose(meta_many["history"].pop("losses"), meta_one["history"].pop("losses"), rtol=1e-12)
    assert meta_many == meta_one  # classes, column names, configuration, epochs...


def test_ctrl_c_under_mpiexec_stops_every_rank_after_the_same_epoch_and_saves(tmp_path):
    """Ctrl-C in a terminal signals mpiexec's process group; MPICH's mpiexec forwards SIGINT to
    every rank ("Sending Ctrl-C to processes as requested"). The flag rides in the step buffer,
    so all ranks stop after the same epoch and rank 0 saves it, as one process does."""
    import signal

    args = ["train", "--backend", "numpy", "--dtype", "float64", "--n-samples", 2001, "--hidden", 8,
            "--epochs", 10**6, "--log-every", 10]
    command = [mpiexec(), "-n", "2", *XPNET, *map(str, args), "--save", str(tmp_path / "ck.npz"), "--json",
               "--distributed"]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=mpi_env(),
                           start_new_session=True)  # its own process group, as a terminal's foreground job
    try:
        for line in job.stderr:  # training has begun on every rank once rank 0 logs epoch 0
            if line.startswith("epoch"):
                break
        os.killpg(job.pid, signal.SIGINT)
        out, err = job.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        pytest.fail("the MPI job did not stop within 60 s of Ctrl-C")
    assert job.returncode == 130, err[-2000:]
    got = json.loads(next(line for line in out.splitlines() if line.startswith("{")))  # mpiexec prints too
    done = got["epochs"]
    assert got["interrupted"] and 0 < done < 10**6 and got["logged_epochs"][-1] == done
    assert f"xpnet: interrupted after epoch {done}; saved epoch {done}" in err
    assert checkpoint.load(tmp_path / "ck.npz").epochs_done == done
    # the checkpoint holds exactly epoch `done`: resuming it equals an uninterrupted run
    total = ["--epochs", done + 3, "--json", "--quiet"]
    resumed = json.loads(run_cli("train", "--resume", tmp_path / "ck.npz", *total, check=0).stdout)
    straight = json.loads(run_cli(*args[:-4], *total, check=0).stdout)
    np.testing.assert_allclose(resumed["final_loss"], straight["final_loss"], rtol=1e-12)


def test_options_not_yet_data_parallel_are_refused_clearly():
    proc = mpi_run((2, [*XPNET, *TRAIN, "--dropout", "0.2", "--distributed"]), timeout=60)
    assert proc.returncode == 2
    assert "dropout is not supported in data-parallel training yet" in proc.stderr


# -- the command line under mpiexec: every rank agrees, none hangs ------------------------------
SMALL = ["train", "--backend", "numpy", "--n-samples", 400, "--hidden", 8, "--epochs", 30, "--log-every", 10,
         "--distributed"]


@pytest.mark.parametrize("rank1, flag", [(["--seed", "1"], "--seed"),
                                         (["--standardize"], "--standardize"),
                                         (["--plot", "{tmp}/p.png"], "--plot")])
def test_ranks_given_different_settings_stop_with_a_clear_error(tmp_path, rank1, flag):
    rank1 = [a.format(tmp=tmp_path) for a in rank1]
    proc = mpi_run((1, [*XPNET, *SMALL]), (1, [*XPNET, *SMALL, *rank1]), timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "the processes were started with different settings" in proc.stderr and flag in proc.stderr
    assert "epoch" not in proc.stderr.replace("epochs", "")  # stopped before training
    assert not (tmp_path / "p.png").exists()


def test_a_bad_destination_on_rank_zero_ends_every_rank(tmp_path):
    proc = mpi_run((2, [*XPNET, *SMALL, "--save", tmp_path / "missing" / "ck.npz"]), timeout=60)
    assert proc.returncode == 2 and "does not exist" in proc.stderr, proc.stderr[-2000:]


SAVE_RUN = """
import errno, sys
import xpnet.checkpoint as c
save = c.save
def record(path, model, **kw):
    if "fail" in sys.argv:
        raise OSError(errno.ENOSPC, "No space left on device")
    print("saved", kw["epochs_done"], file=sys.stderr, flush=True)
    return save(path, model, **kw)
c.save = record
from xpnet.cli import main
sys.exit(main([a for a in sys.argv[1:] if a != "fail"]))
"""


def test_save_every_under_mpiexec_is_written_by_rank_zero(tmp_path):
    path = tmp_path / "ck.npz"
    proc = mpi_run((2, [sys.executable, "-m", "mpi4py", "-c", SAVE_RUN, *SMALL, "--save-every", 10, "--save", path,
                         "--quiet"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [line for line in proc.stderr.splitlines() if line.startswith("saved")] == \
        ["saved 10", "saved 20", "saved 30"]  # once each: rank 0 writes
    assert checkpoint.load(path).epochs_done == 30


def test_a_failed_save_on_rank_zero_gives_every_rank_the_same_exit_status(tmp_path):
    proc = mpi_run((2, [sys.executable, "-m", "mpi4py", "-c", SAVE_RUN, *SMALL, "--save", tmp_path / "ck.npz",
                         "--json", "fail"]))
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.count("could not save the checkpoint") == 1 and "No space left on device" in proc.stderr
    assert json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))["epochs"] == 30


def test_sigterm_to_mpiexec_stops_every_rank_saves_and_exits_143(tmp_path):
    """What a batch system sends: mpiexec forwards SIGTERM to every rank, which finish the
    epoch together (the flag rides in the step buffer); rank 0 saves; the job exits 128 + 15."""
    import signal

    command = [mpiexec(), "-n", "2", *XPNET, *map(str, SMALL[:-1]), "--epochs", "1000000", "--save",
               str(tmp_path / "ck.npz"), "--json", "--distributed"]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=mpi_env(),
                           start_new_session=True)
    try:
        for line in job.stderr:
            if line.startswith("epoch"):
                break
        job.send_signal(signal.SIGTERM)
        out, err = job.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        pytest.fail("the MPI job did not stop within 60 s of SIGTERM")
    assert job.returncode == 143, err[-2000:]
    got = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    done = got["epochs"]
    assert got["interrupted"] and f"xpnet: interrupted by SIGTERM after epoch {done}; saved epoch {done}" in err
    assert checkpoint.load(tmp_path / "ck.npz").epochs_done == done


DEVICE_PER_RANK_RUN = """
import sys
import numpy as np
import xpnet
from xpnet import distributed

out, dtype = sys.argv[1:3]
comm = distributed.launch(require=True)
backend = xpnet.get_backend(f"array_api_strict:device{comm.rank + 1}")  # one device per rank, as one GPU each
X, y = xpnet.datasets.load("moons", n_samples=1001, noise=0.2, seed=0)
model = xpnet.MLP([2, 8, 2], backend=backend, dtype=dtype, seed=0)
with comm.abort_on_error():
    result = distributed.fit(model, comm.rows(X), comm.rows(y), comm=comm, epochs=6, learning_rate=0.01,
                             batch_size=100, optimizer="adam")
state = [v for v in result.optimizer_state.values() if hasattr(v, "device") and not isinstance(v, np.ndarray)]
assert state and all(a.device == backend.device for a in model.parameters() + state), "an array left its device"
if comm.is_root:
    np.savez(out, *[xpnet.to_numpy(p) for p in model.parameters()])
"""


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_device_per_rank_keeps_every_array_there_and_equals_one_process(tmp_path, dtype):
    available_backend("array_api_strict:device2")
    out = tmp_path / "weights.npz"
    proc = mpi_run((2, [sys.executable, "-m", "mpi4py", "-c", DEVICE_PER_RANK_RUN, out, dtype]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    X, y = xpnet.datasets.load("moons", n_samples=1001, noise=0.2, seed=0)
    model = xpnet.MLP([2, 8, 2], backend="numpy", dtype=dtype, seed=0)
    model.fit(X, y, epochs=6, learning_rate=0.01, batch_size=100, optimizer="adam")
    with np.load(out) as saved:
        for i, want in enumerate(model.parameters()):
            np.testing.assert_allclose(saved[f"arr_{i}"], want, rtol=1e-12 if dtype == "float64" else 1e-4, atol=1e-7)


def test_the_end_of_run_diagnosis_under_mpiexec_is_one_line_from_rank_zero(tmp_path):
    """The summary's cause of a diverged run (raw columns far from the unit range, with their
    ranges over every rank's rows) is gathered on every rank and said once by rank 0."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1e3, size=(300, 2))
    y = X @ np.array([0.5, -0.25]) + 0.5
    data = tmp_path / "r.csv"
    data.write_text("area,price_cents,value\n" + "".join(f"{float(a)!r},{float(b)!r},{float(v)!r}\n"
                                                         for (a, b), v in zip(X, y)))
    args = ["train", "--data", data, "--no-standardize", "--validation-fraction", 0, "--activation", "relu",
            "--epochs", 200, "--backend", "numpy", "--json"]
    want = run_cli(*args)
    proc = mpi_run((2, [*XPNET, *args, "--distributed"]))
    assert want.returncode == proc.returncode == 1, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("xpnet: error: training diverged")]
    assert len(lines) == 1 and lines[0] == want.stderr.strip().splitlines()[-1]
    assert f"area ({X[:, 0].min():.4g} to {X[:, 0].max():.4g})" in lines[0]
