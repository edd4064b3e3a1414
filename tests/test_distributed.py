"""Data-parallel training (xpnet.distributed): sharding, the size-1 path without MPI, and
real 2- and 3-process MPI jobs compared with single-process training.

The MPI tests launch ``mpiexec -n P python -m mpi4py ...`` in a subprocess with a timeout;
they skip with the reason when mpi4py or mpiexec is missing (CI installs
``pip install mpi4py mpich`` so that they run).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet import distributed

from conftest import rtol_for, run_cli

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
    with pytest.raises(xpnet.XpnetError, match=r"MPI launcher \(4 processes\).*pip install 'xpnet\[mpi\]'"):
        distributed.launch()


def test_require_without_mpi4py_is_an_error(no_mpi):
    with pytest.raises(xpnet.XpnetError, match=r"^mpi4py cannot be imported.*pip install mpich"):
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
def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py is not installed: pip install mpi4py mpich")
    found = Path(sys.executable).with_name("mpiexec")  # the mpich wheel installs it beside python
    found = str(found) if found.exists() else shutil.which("mpiexec")
    if not found:
        pytest.skip("no mpiexec on PATH: pip install mpich (or load the site's MPI)")
    return found


def _mpi_run(*programs, timeout=TIMEOUT):
    """Run ``mpiexec -n P1 ARGS1 : -n P2 ARGS2 ...``; programs are (P, [args...])."""
    command = [_mpiexec()]
    for i, (n, args) in enumerate(programs):
        command += ([":"] if i else []) + ["-n", str(n), *map(str, args)]
    env = {k: v for k, v in os.environ.items() if k != "XPNET_BACKEND"}
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the MPI job hung for {timeout} s (a rank waits forever?): {exc.stderr!r}"[:2000])


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
    proc = _mpi_run((processes, [*XPNET, *TRAIN, *extra, "--distributed"]))
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


def test_cli_text_output_comes_from_rank_zero_only():
    args = [a for a in TRAIN if a != "--json"]
    proc = _mpi_run((2, [*XPNET, *args, "--distributed"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("accuracy  ") == 1 and proc.stdout.count("loss      ") == 1
    assert f"({N_ROWS} samples)" in proc.stderr and proc.stderr.count("xpnet: training") == 1


LIBRARY_RUN = """
import sys
import numpy as np
import xpnet
from xpnet import distributed

backend, dtype, out = sys.argv[1:4]
comm = distributed.launch(require=True)
X, y = xpnet.datasets.load("moons", n_samples=%d, noise=0.2, seed=0)
# a different seed on every rank: the broadcast from rank 0 must make the start identical
model = xpnet.MLP([2, 8, 2], backend=backend, dtype=dtype, seed=comm.rank)
with comm.abort_on_error(), xpnet.limit_threads(comm.threads_per_rank()):
    result = distributed.fit(model, comm.rows(X), comm.rows(y), comm=comm,
                             epochs=20, learning_rate=0.5, l2=0.001, log_every=5)
assert comm.stats.calls >= 20, comm.stats
if comm.is_root:
    flat = [np.reshape(xpnet.to_numpy(p), (-1,)) for p in model.parameters()]
    np.savez(out, params=np.concatenate(flat), history=np.asarray(result.history))
""" % N_ROWS


def test_weights_after_k_steps_equal_one_process(backend, dtype, tmp_path):
    # 3 uneven shards; 2 for torch, whose import costs seconds per process (the CLI tests
    # above cover 2 and 3 processes on numpy)
    processes = 2 if backend.name == "torch" else 3
    out = tmp_path / "weights.npz"
    name = backend.name if backend.device_name() in ("cpu", "CPU_DEVICE") else f"{backend.name}:{backend.device_name()}"
    proc = _mpi_run((processes, [sys.executable, "-m", "mpi4py", "-c", LIBRARY_RUN, name, dtype, out]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = np.load(out)
    X, y = xpnet.datasets.load("moons", n_samples=N_ROWS, noise=0.2, seed=0)
    model = xpnet.MLP([2, 8, 2], backend=backend, dtype=dtype, seed=0)
    result = model.fit(X, y, epochs=20, learning_rate=0.5, l2=0.001, log_every=5)
    want = np.concatenate([np.reshape(xpnet.to_numpy(p), (-1,)) for p in model.parameters()])
    rtol = 1e-12 if dtype == "float64" else rtol_for(dtype)
    np.testing.assert_allclose(saved["params"], want, rtol=rtol, atol=rtol * np.max(np.abs(want)))
    np.testing.assert_allclose(saved["history"], result.history, rtol=rtol)


BITWISE_CHECK = """
import numpy as np
import xpnet
from xpnet import distributed

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
    proc = _mpi_run((3, [sys.executable, "-m", "mpi4py", "-c", BITWISE_CHECK]))
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
    proc = _mpi_run((1, [sys.executable, *runner, *args]), (1, [sys.executable, *runner, *args, "--backend", "nosuch"]),
                    timeout=60)  # a hang fails the test after 60 s; an abort takes about a second
    assert proc.returncode == 2
    assert "xpnet: error: rank 1 of 2: backend 'nosuch' is not an importable module" in proc.stderr


NPY_RUN = """
import json
import sys
import xpnet
from xpnet import distributed

comm = distributed.launch(require=True)
X, y = comm.load_npy_rows(sys.argv[1]), comm.load_npy_rows(sys.argv[2])  # only this rank's rows
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
    proc = _mpi_run((3, [sys.executable, "-m", "mpi4py", "-c", NPY_RUN, tmp_path / "X.npy", tmp_path / "y.npy"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert got["rows"] == 334  # rank 0's block of 1001 rows over 3 processes
    want = xpnet.MLP([2, 4, 2], backend="numpy", dtype="float64", seed=0).fit(X, y, epochs=10, learning_rate=0.5)
    np.testing.assert_allclose(got["history"], want.history, rtol=1e-12)


def test_an_xpnet_error_on_one_rank_aborts_the_library_job(tmp_path):
    _npy_data(tmp_path, nan_row=1000)  # the last row belongs to rank 1 of 2 only
    proc = _mpi_run((2, [sys.executable, "-m", "mpi4py", "-c", NPY_RUN, tmp_path / "X.npy", tmp_path / "y.npy"]),
                    timeout=60)
    assert proc.returncode == 2  # 2: xpnet's own abort (an uncaught exception would give 1)
    assert "xpnet: error: rank 1 of 2: X contains NaN or Inf" in proc.stderr
    assert proc.stdout == ""


def test_plain_python_under_mpiexec_also_trains_distributed():
    proc = _mpi_run((2, [sys.executable, "-m", "xpnet", *TRAIN, "--distributed"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["processes"] == 2


THREADS_RUN = """
import threadpoolctl
import xpnet
from xpnet import distributed

comm = distributed.launch(require=True)
with xpnet.limit_threads(comm.threads_per_rank()):
    blas = max(p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")
    total, total_blas = comm.sum_floats([comm.threads_per_rank(), blas])  # rank 0 alone prints
if comm.is_root:
    print(f"threads {total:g} blas {total_blas:g}")
"""


def test_processes_on_one_machine_share_its_cores_without_oversubscribing():
    proc = _mpi_run((2, [sys.executable, "-m", "mpi4py", "-c", THREADS_RUN]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    share = max(1, len(os.sched_getaffinity(0)) // 2)  # mpiexec does not bind here: both see all cores
    assert proc.stdout.strip() == f"threads {2 * share} blas {2 * share}"  # summed over the 2 processes


def test_cli_data_file_checkpoint_and_validation_match_one_process(tmp_path):
    X, y = xpnet.datasets.load("moons", n_samples=3001, noise=0.2, seed=3)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    args = ["train", "--data", tmp_path / "d.npz", "--backend", "numpy", "--dtype", "float64", "--epochs", 30,
            "--validation-fraction", 0.2, "--standardize", "--json"]
    want = json.loads(run_cli(*args, "--save", tmp_path / "one.npz", check=0).stdout)
    proc = _mpi_run((2, [*XPNET, *args, "--save", tmp_path / "two.npz", "--distributed"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    np.testing.assert_allclose(got["history"], want["history"], rtol=1e-12)
    assert got["validation_accuracy"] == want["validation_accuracy"] and got["processes"] == 2
    saved_one, saved_two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert sorted(saved_one.files) == sorted(saved_two.files)
    for key in saved_one.files:
        if saved_one[key].dtype.kind == "f":
            np.testing.assert_allclose(saved_two[key], saved_one[key], rtol=1e-12, atol=1e-15)


def test_options_not_yet_data_parallel_are_refused_clearly():
    proc = _mpi_run((2, [*XPNET, *TRAIN, "--dropout", "0.2", "--distributed"]), timeout=60)
    assert proc.returncode == 2
    assert "dropout is not supported in data-parallel training yet" in proc.stderr
