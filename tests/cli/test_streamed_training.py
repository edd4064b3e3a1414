"""`xpnet train --data big.npy` streams the mapped file: a run under a memory cap a third of the file's size."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_cli

CAPPED = """
import resource, sys
import numpy as np
import xpnet.cli

path, allowance, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open("/proc/self/status") as status:
    data_size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmData:"))
# RLIMIT_DATA caps what a process allocates (heap, private mappings, thread stacks), not a read-only file map
resource.setrlimit(resource.RLIMIT_DATA, (data_size + allowance, resource.RLIM_INFINITY))
if what == "train":
    sys.exit(xpnet.cli.main(["train", "--data", path, *sys.argv[4:]]))
try:
    np.load(path)  # the whole file in memory: what the cap forbids
    print("loaded")
except MemoryError:
    print("refused")
"""


def test_training_on_a_file_three_times_the_memory_cap_streams_it(tmp_path):
    rows, width = 4_000_000, 33  # 528 MB of float32: 32 features and the label
    size = rows * width * 4
    allowance = 160 << 20  # what the run may allocate (its virtual size: BLAS buffers, threads too): < a third
    if sys.platform != "linux":
        pytest.skip("RLIMIT_DATA and /proc/self/status are Linux's")
    if shutil.disk_usage(tmp_path).free < 2 * size:
        pytest.skip(f"{tmp_path} has less than {2 * size >> 20} MiB free for the {size >> 20} MiB test file")
    path = tmp_path / "big.npy"
    A = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, width))
    rng = np.random.default_rng(0)
    for start in range(0, rows, 500_000):
        block = rng.standard_normal((500_000, width), dtype=np.float32)
        block[:, -1] = block[:, 0] + block[:, 1] > 0  # the classes
        A[start:start + 500_000] = block
    A.flush()
    del A
    run = [sys.executable, "-c", CAPPED, str(path), str(allowance)]
    flags = ["--epochs", "2", "--hidden", "8", "--kernels", "numpy", "--threads", "1", "--backend", "numpy", "--json"]
    done = subprocess.run([*run, "train", *flags], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout)
    assert got["data_residency"] == "streamed" and got["epochs"] == 2
    assert got["n_samples"] + got["validation_samples"] == rows  # a data file's default: 20% held out, by index
    assert got["accuracy"] > 0.6 and got["history"][-1] < got["history"][0]
    control = subprocess.run([*run, "load"], capture_output=True, text=True, timeout=120)
    assert control.stdout.strip() == "refused", control.stderr[-2000:]  # the cap bites: the whole file does not fit


def test_a_mapped_file_trains_streamed_with_the_results_of_its_csv(tmp_path):
    """The same rows from a CSV (held in memory) and from an .npy (streamed): the same run, bit for
    bit, with --standardize, a validation split, early stopping and the text summary's line."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(900, 5)) * [1, 2, 3, 4, 5] + [0, 1, 2, 3, 4]
    label = (X[:, 0] + X[:, 1] / 2 > 1).astype(np.float64)
    table = np.column_stack([X, label])
    np.savetxt(tmp_path / "d.csv", table, delimiter=",", fmt="%.17g")
    np.save(tmp_path / "d.npy", table)
    train = ["train", "--backend", "numpy", "--dtype", "float64", "--hidden", "8", "--epochs", "20", "--standardize",
             "--validation-fraction", "0.2", "--early-stopping", "--patience", "50", "--json"]
    from_csv = json.loads(run_cli(*train, "--data", tmp_path / "d.csv", check=0).stdout)
    from_npy = json.loads(run_cli(*train, "--data", tmp_path / "d.npy", check=0).stdout)
    assert from_csv["data_residency"] == "device" and from_npy["data_residency"] == "streamed"
    for key in ("history", "validation_history", "accuracy", "validation_accuracy", "validation_loss", "best_epoch"):
        assert from_npy[key] == from_csv[key], key
    text = run_cli(*train[:-1], "--data", tmp_path / "d.npy", check=0).stdout
    assert "data      streamed from" in text
