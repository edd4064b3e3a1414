"""Data files bigger than memory: .npy and stored .npz memory-mapped, prepared in bounded blocks, never copied whole."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import mpi_run, write_table

import xpnet
from xpnet import memory
from xpnet.cli import prepare as prepare_module
from xpnet.cli.prepare import materialize, prepare
from xpnet.data import preprocess, rows
from xpnet.data.rows import HostRows
from xpnet.errors import XpnetValueError
from xpnet.io import tables


def data(n=600, width=4, seed=0, classes=("cat", "dog", "emu")):
    """Blobs with shifted, scaled columns (standardization matters) and ``classes`` labels."""
    X, y = xpnet.datasets.load("blobs", n_samples=n, noise=1.0, seed=seed, classes=len(classes))
    extra = np.random.default_rng(seed).normal(size=(n, width - 2)) * [10.0 ** k for k in range(width - 2)]
    return np.column_stack([X * 3 + 10, extra + 5]), np.asarray(classes)[y]


def test_a_mapped_npy_is_views_of_the_file_with_the_values_of_the_copy(tmp_path):
    X, _ = data()
    y = np.arange(600) % 3
    for name, layout in (("last.npy", [X, y]), ("first.npy", [y, X]), ("middle.npy", [X[:, :2], y, X[:, 2:]])):
        np.save(tmp_path / name, np.column_stack(layout))
        target = {"last.npy": None, "first.npy": 0, "middle.npy": 2}[name]
        copy = tables.load_file(tmp_path / name, target)
        table = tables.load_file(tmp_path / name, target, mapped=True)
        assert table.mapped and not copy.mapped and isinstance(table.X, HostRows)
        assert isinstance(table.X.data, np.memmap) and not table.X.data.flags.writeable
        assert (table.X.columns is None) == (name != "middle.npy")  # a strided view when the label is at an edge
        np.testing.assert_array_equal(table.X.materialize(), copy.X)
        np.testing.assert_array_equal(copy.X, X)
        assert table.y.tolist() == copy.y.tolist() == y.tolist() and table.feature_names == copy.feature_names


def test_a_block_maps_only_its_rows_in_either_order(tmp_path):
    X, _ = data(1001)
    table = np.column_stack([X, np.arange(1001) % 2])
    np.save(tmp_path / "c.npy", table)
    np.save(tmp_path / "f.npy", np.asfortranarray(table))
    for name in ("c.npy", "f.npy"):
        part = tables.load_file(tmp_path / name, block=lambda n: (334, 668), mapped=True)
        assert part.start == 334 and part.n_rows == 1001 and part.X.shape == (334, 4)
        np.testing.assert_array_equal(part.X.materialize(), X[334:668])
        assert part.y.tolist() == (np.arange(334, 668) % 2).tolist()
    header = (tmp_path / "c.npy").stat().st_size - table.nbytes
    c = tables.load_file(tmp_path / "c.npy", block=lambda n: (334, 668), mapped=True)
    assert c.X.data.shape[0] == 334 and c.X.data.offset == header + 334 * 5 * 8  # the map starts at the block


def test_each_process_maps_its_block_of_an_npy_through_the_python_api(tmp_path):
    from xpnet import distributed

    A = np.arange(10_001 * 3, dtype=np.float32).reshape(10_001, 3)
    np.save(tmp_path / "a.npy", A)
    parts = [distributed.load_npy_rows(tmp_path / "a.npy", rank, 3, mapped=True) for rank in range(3)]
    assert all(isinstance(part, np.memmap) and not part.flags.writeable for part in parts)
    assert [part.shape[0] for part in parts] == [3334, 3334, 3333]
    np.testing.assert_array_equal(np.concatenate(parts), A)
    read = distributed.load_npy_rows(tmp_path / "a.npy", 1, 3)
    assert not isinstance(read, np.memmap) and np.array_equal(read, parts[1])


def test_stored_npz_members_are_mapped_compressed_ones_are_read(tmp_path):
    X, labels = data()
    write_table(tmp_path / "d.npz", X, labels)
    write_table(tmp_path / "d-compressed.npz", X, labels)
    stored = tables.load_file(tmp_path / "d.npz", mapped=True)
    compressed = tables.load_file(tmp_path / "d-compressed.npz", mapped=True)
    assert stored.mapped and isinstance(stored.X.data, np.memmap)
    assert not compressed.mapped and isinstance(compressed.X, np.ndarray) and compressed.X.dtype == np.float64
    np.testing.assert_array_equal(stored.X.materialize(), compressed.X)
    assert stored.y.tolist() == compressed.y.tolist() == labels.tolist()


def test_bad_values_in_a_mapped_file_are_found_block_by_block_and_named(tmp_path, monkeypatch):
    monkeypatch.setattr(rows, "BLOCK_BYTES", 8 * 5 * 16)  # 16 rows a block: the bad cells are blocks away
    X, _ = data(200)
    table = np.column_stack([X, np.arange(200) % 2]).astype(np.float32)
    table[137, 2] = np.inf
    np.save(tmp_path / "inf.npy", table)
    with pytest.raises(XpnetValueError, match=r"inf.npy'.*row 137, column 2.*is inf"):
        tables.load_file(tmp_path / "inf.npy", mapped=True)
    table[137, 2], table[181, 4] = 0, np.nan
    np.save(tmp_path / "nolabel.npy", table)
    with pytest.raises(XpnetValueError, match=r"nolabel.npy'.*row 181.*missing label"):
        tables.load_file(tmp_path / "nolabel.npy", mapped=True)
    np.savez(tmp_path / "nan.npz", X=np.where(np.arange(200)[:, None] == 150, np.nan, X), y=np.zeros(200))
    with pytest.raises(XpnetValueError, match=r"nan.npz'.*X\[150, 0\] is nan"):
        tables.load_file(tmp_path / "nan.npz", mapped=True)


def test_a_file_that_cannot_be_mapped_is_read(tmp_path, monkeypatch):
    X, _ = data()
    np.save(tmp_path / "d.npy", np.column_stack([X, np.zeros(600)]))

    import mmap

    def no_mmap(*args, **kwargs):
        raise OSError(19, "No such device")  # a file system without mmap

    monkeypatch.setattr(mmap, "mmap", no_mmap)  # what np.memmap calls
    table = tables.load_file(tmp_path / "d.npy", mapped=True)
    assert not table.mapped
    np.testing.assert_array_equal(table.X, X)


# -- prepare: the training rows as HostRows over the mapping --------------------------------------
FILES = ["d.csv", "d.npy", "d-fortran.npy", "d.npz", "d-compressed.npz"]


def write_numbered(tmp_path, name, n=600):
    X, labels = data(n)
    numbers = np.searchsorted(["cat", "dog", "emu"], labels)
    write_table(tmp_path / name, X, numbers)
    return X, numbers


@pytest.mark.parametrize("name", FILES)
def test_prepared_rows_equal_the_csv_path_bit_for_bit(tmp_path, name):
    """Every format gives the CSV's training and validation rows, split, standardized (statistics
    from blocks of indexed rows) and encoded alike, to the last bit; mapped ones stay maps."""
    write_numbered(tmp_path, "d.csv")
    write_numbered(tmp_path, name)
    config = {"standardize": True, "validation_fraction": 0.25, "seed": 7}
    want = prepare({**config, "data": str(tmp_path / "d.csv")})
    streamed = prepare({**config, "data": str(tmp_path / name)}, stream=True)
    mapped = name.endswith(".npy") or name == "d.npz"
    assert streamed.mapped == mapped and isinstance(streamed.X, HostRows) == mapped
    got = materialize(streamed)
    assert not got.mapped and isinstance(got.X, np.ndarray)
    for key in ("X", "y", "X_val", "y_val"):
        assert np.array_equal(getattr(got, key), getattr(want, key)), key
    assert np.array_equal(got.scaler.mean, want.scaler.mean) and np.array_equal(got.scaler.scale, want.scaler.scale)
    assert (got.n_samples, got.n_val, got.n_classes, got.labels.classes) == (450, 150, 3, [0, 1, 2])
    if mapped:  # the scaler is not applied to the map: whoever reads a chunk applies it
        assert streamed.X.scaler is streamed.scaler and streamed.X_val.scaler is streamed.scaler
        raw = HostRows(streamed.X.data, streamed.X.index, streamed.X.columns).rows(0, 5)
        np.testing.assert_array_equal(streamed.scaler.transform(raw), want.X[:5])
        np.testing.assert_array_equal(streamed.X.take([3, 1]), want.X[[3, 1]])


def test_the_validation_split_is_row_numbers_in_split_orders_order(tmp_path):
    X, numbers = write_numbered(tmp_path, "d.npy", n=300)
    streamed = prepare({"data": str(tmp_path / "d.npy"), "validation_fraction": 0.2, "seed": 11}, stream=True)
    kept, held = preprocess.split_order(300, 0.2, seed=11)
    assert np.array_equal(streamed.X.index, kept) and np.array_equal(streamed.X_val.index, held)
    X_kept, y_kept, X_held, y_held = preprocess.split(X, numbers, 0.2, seed=11)  # the copying split
    np.testing.assert_array_equal(streamed.X.materialize(), X_kept)
    np.testing.assert_array_equal(streamed.X_val.materialize(), X_held)
    assert streamed.y.tolist() == y_kept.tolist() and streamed.y_val.tolist() == y_held.tolist()
    whole = prepare({"data": str(tmp_path / "d.npy"), "validation_fraction": 0}, stream=True)  # all rows, file order
    assert whole.X.index is None and whole.X_val.shape == (0, 4) and whole.rows is None


@pytest.mark.parametrize("labels, task", [
    (np.array([5, -2, 7, 5, 7] * 40), "classification"),
    (np.arange(200) * 0.5, "regression"),
    (np.where(np.arange(200) < 150, 3.0, 4.0), "classification"),  # whole numbers only after many blocks
])
def test_labels_over_blocks_give_the_classes_and_codes_of_the_whole_column(tmp_path, monkeypatch, labels, task):
    monkeypatch.setattr(prepare_module, "LABEL_BLOCK", 7)
    X, _ = data(200)
    np.save(tmp_path / "l.npy", np.column_stack([X, labels]))
    got = prepare({"data": str(tmp_path / "l.npy"), "validation_fraction": 0.1, "seed": 2})
    kept, held = preprocess.split_order(200, 0.1, seed=2)
    assert got.task == task
    if task == "classification":
        classes = np.unique(labels).astype(np.int64)
        assert got.labels.classes == classes.tolist()
        assert got.y.tolist() == np.searchsorted(classes, labels[kept]).tolist()
        assert got.y_val.tolist() == np.searchsorted(classes, labels[held]).tolist()
    else:
        np.testing.assert_allclose(got.target_scaler.inverse_transform(got.y), labels[kept], rtol=1e-14)
    words = np.array(["b", "a", "c", "a"] * 50)
    np.savez(tmp_path / "w.npz", X=X, y=words)
    got = prepare({"data": str(tmp_path / "w.npz"), "validation_fraction": 0})
    assert got.labels.classes == ["a", "b", "c"] and got.y.tolist() == np.searchsorted(["a", "b", "c"], words).tolist()


def test_a_large_csv_gets_a_note_pointing_to_npy_and_mapped_files_do_not(tmp_path, monkeypatch, capsys):
    from xpnet.cli import main

    write_numbered(tmp_path, "d.csv")
    write_numbered(tmp_path, "d.npy")
    monkeypatch.setattr(prepare_module, "LARGE_CSV_BYTES", 1000)
    note = prepare({"data": str(tmp_path / "d.csv")}).notes
    assert len(note) == 1 and "read into memory" in note[0] and f"xpnet convert {tmp_path / 'd.csv'}" in note[0]
    assert prepare({"data": str(tmp_path / "d.npy")}).notes == ()
    assert main(["train", "--data", str(tmp_path / "d.csv"), "--epochs", "2", "--backend", "numpy", "--json"]) == 0
    err = capsys.readouterr().err
    assert "xpnet: note:" in err and "xpnet convert" in err


# -- the memory cap: preparing a file several times the memory allowed -------------------------------
CAPPED = """
import json, resource, sys
import numpy as np
from xpnet import memory
from xpnet.cli.prepare import prepare

path, allowance, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open("/proc/self/status") as status:
    data_size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmData:"))
before = memory.resident_anonymous()
# RLIMIT_DATA caps what a process allocates (heap and private mappings), not a read-only file map
resource.setrlimit(resource.RLIMIT_DATA, (data_size + allowance, resource.RLIM_INFINITY))
if what == "prepare":
    prepared = prepare({"data": path, "standardize": True, "validation_fraction": 0.1, "seed": 1}, stream=True)
    first = prepared.X.rows(0, 4096)  # a chunk, as training reads it
    print(json.dumps({"grew": memory.resident_anonymous() - before, "n": [prepared.n_samples, prepared.n_val],
                      "mapped": prepared.mapped, "chunk": list(first.shape), "mean": prepared.scaler.mean.tolist(),
                      "classes": prepared.labels.classes}))
else:
    try:
        np.load(path)  # the whole file in memory: what the cap forbids
        print(json.dumps({"loaded": True}))
    except MemoryError:
        print(json.dumps({"loaded": False}))
"""


def test_preparing_a_file_three_times_the_memory_cap_never_materializes_it(tmp_path):
    rows_, width = 3_000_000, 33  # 396 MB of float32: 32 features and the label
    size = rows_ * width * 4
    allowance = 120 << 20  # what the preparation may allocate: less than a third of the file
    if sys.platform != "linux":
        pytest.skip("RLIMIT_DATA and /proc/self/status are Linux's")
    if shutil.disk_usage(tmp_path).free < 2 * size:
        pytest.skip(f"{tmp_path} has less than {2 * size >> 20} MiB free for the {size >> 20} MiB test file")
    path = tmp_path / "big.npy"
    A = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows_, width))
    rng = np.random.default_rng(0)
    sums = np.zeros(width - 1)
    for start in range(0, rows_, 500_000):
        block = rng.standard_normal((500_000, width), dtype=np.float32)
        block[:, -1] = np.arange(start, start + 500_000) % 3  # the classes
        block[:, 0] += 100.0
        A[start:start + 500_000] = block
        sums += np.sum(block[:, :-1], axis=0, dtype=np.float64)
    A.flush()
    del A
    run = [sys.executable, "-c", CAPPED, str(path), str(allowance)]
    done = subprocess.run([*run, "prepare"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout)
    assert got["mapped"] and got["n"] == [2_700_000, 300_000] and got["chunk"] == [4096, 32]
    assert got["classes"] == [0, 1, 2]
    assert got["grew"] < allowance < size / 3, got["grew"]  # resident anonymous memory: labels, row numbers
    np.testing.assert_allclose(got["mean"], sums / rows_, rtol=0, atol=2e-3)  # 90% of the rows: close to all
    control = subprocess.run([*run, "load"], capture_output=True, text=True, timeout=120)
    assert json.loads(control.stdout) == {"loaded": False}  # the cap bites: the whole file does not fit


# -- MPI: every rank maps its own block -----------------------------------------------------------
MAPPED_RANKS = """
import json, sys
import numpy as np
from xpnet import distributed
from xpnet.cli.prepare import materialize, prepare

comm = distributed.launch(require=True)
path, out = sys.argv[1], sys.argv[2]
with comm.abort_on_error():
    prepared = prepare({"data": path, "standardize": True, "validation_fraction": 0.2, "seed": 3}, comm, stream=True)
    X = prepared.X
    report = {"rank": comm.rank, "mapped": prepared.mapped, "memmap": isinstance(X.data, np.memmap),
              "block": X.data.shape[0], "offset": int(X.data.offset), "n": [prepared.n_samples, prepared.n_val]}
    done = materialize(prepared)
    np.savez(f"{out}/{comm.rank}.npz", X=done.X, rows=prepared.rows, mean=prepared.scaler.mean)
    reports = comm.allgather(report)
if comm.is_root:
    print(json.dumps(reports))
"""


def test_each_rank_maps_only_its_block_and_prepares_like_one_process(tmp_path):
    X, numbers = write_numbered(tmp_path, "d.npy", n=1001)
    proc = mpi_run(3, [sys.executable, "-m", "mpi4py", "-c", MAPPED_RANKS, tmp_path / "d.npy", tmp_path])
    assert proc.returncode == 0, proc.stderr[-2000:]
    reports = json.loads(proc.stdout)
    header = (tmp_path / "d.npy").stat().st_size - 1001 * 5 * 8
    starts = [0, 334, 668]
    want = prepare({"data": str(tmp_path / "d.npy"), "standardize": True, "validation_fraction": 0.2, "seed": 3})
    together = np.empty_like(want.X)
    for report, start in zip(reports, starts):
        assert report["mapped"] and report["memmap"] and report["n"] == [801, 200]
        assert report["block"] == (334 if start < 668 else 333)  # this rank's rows only are mapped
        assert report["offset"] == header + start * 5 * 8
        part = np.load(tmp_path / f"{report['rank']}.npz")
        together[part["rows"]] = part["X"]
        np.testing.assert_allclose(part["mean"], want.scaler.mean, rtol=1e-13)
    np.testing.assert_allclose(together, want.X, rtol=1e-12, atol=1e-13)


# -- xpnet convert --------------------------------------------------------------------------------
def test_convert_then_train_equals_training_on_the_csv(tmp_path):
    from conftest import run_cli

    write_numbered(tmp_path, "d.csv", n=500)
    done = run_cli("convert", tmp_path / "d.csv", tmp_path / "d.npy", "--json", check=0)
    assert json.loads(done.stdout)["rows"] == 500 and json.loads(done.stdout)["feature_names"] == ["f0", "f1", "f2",
                                                                                                    "f3"]
    train = ["train", "--backend", "numpy", "--dtype", "float64", "--hidden", "8", "--epochs", "30", "--standardize",
             "--validation-fraction", "0.2", "--json"]
    from_csv = json.loads(run_cli(*train, "--data", tmp_path / "d.csv", check=0).stdout)
    from_npy = json.loads(run_cli(*train, "--data", tmp_path / "d.npy", check=0).stdout)
    for key in ("history", "accuracy", "validation_accuracy", "n_samples"):
        assert from_npy[key] == from_csv[key], key


def test_convert_moves_the_target_last_and_refuses_what_an_npy_cannot_hold(tmp_path):
    from xpnet.io.convert import csv_to_npy

    (tmp_path / "t.csv").write_text("a;label;b\n1.5;0;2\n3;1;4.25\n5;1;1e39\n")
    done = csv_to_npy(tmp_path / "t.csv", tmp_path / "t.npy", "label", rows_at_once=2)
    assert done["target"] == "label" and done["feature_names"] == ["a", "b"]
    assert np.load(tmp_path / "t.npy").tolist() == [[1.5, 2, 0], [3, 4.25, 1], [5, 1e39, 1]]
    with pytest.raises(XpnetValueError, match=r"line 4, column 'b' holds 1e\+39, beyond what float32"):
        csv_to_npy(tmp_path / "t.csv", tmp_path / "t32.npy", "label", dtype="float32")
    assert not (tmp_path / "t32.npy").exists()  # written atomically: nothing left of a failed conversion
    (tmp_path / "w.csv").write_text("x,y\n1,cat\n2,dog\n")
    with pytest.raises(XpnetValueError, match=r"line 2: the label 'cat'.*word; an .npy holds numbers only"):
        csv_to_npy(tmp_path / "w.csv", tmp_path / "w.npy")
    with pytest.raises(XpnetValueError, match="ending in .npy"):
        csv_to_npy(tmp_path / "t.csv", tmp_path / "t.npz")
    with pytest.raises(XpnetValueError, match="reads a .csv"):
        csv_to_npy(tmp_path / "t.npy", tmp_path / "u.npy")


def test_convert_refuses_a_disk_too_small_before_reading(tmp_path, monkeypatch):
    import os

    from xpnet.io import convert

    (tmp_path / "t.csv").write_text("a,b\n1,0\n2,1\n")
    real = os.statvfs(tmp_path)

    class Full:
        f_bavail, f_frsize = 0, real.f_frsize

    monkeypatch.setattr(convert.os, "statvfs", lambda path: Full())
    with pytest.raises(XpnetValueError, match=r"t.npy'.*needs .* but its disk has 0 B free"):
        convert.csv_to_npy(tmp_path / "t.csv", tmp_path / "t.npy")


def test_convert_cli_errors_are_one_line(tmp_path):
    from conftest import run_cli

    (tmp_path / "w.csv").write_text("x,y\n1,cat\n")
    proc = run_cli("convert", tmp_path / "w.csv", tmp_path / "w.npy", check=2)
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("xpnet: error: ") and "word" in proc.stderr
    proc = run_cli("convert", tmp_path / "missing.csv", tmp_path / "w.npy", check=2)
    assert "no such file" in proc.stderr


def test_mapped_data_needs_no_memory_for_the_file(tmp_path, monkeypatch):
    """The memory check counts what is resident: a mapped file's rows are page cache."""
    X, _ = data(4000, width=40)
    np.save(tmp_path / "d.npy", np.column_stack([X, np.zeros(4000)]))
    features = 4000 * 40 * 8
    monkeypatch.setattr(memory, "available_bytes", lambda backend=None: (features // 2, "test limit"))
    monkeypatch.setattr(memory, "UNCHECKED", 0)
    table = tables.load_file(tmp_path / "d.npy", mapped=True)  # labels only: 32 KB
    assert table.mapped
    with pytest.raises(memory.XpnetMemoryError, match="d.npy"):
        tables.load_file(tmp_path / "d.npy")  # a float64 copy of the features: 1.3 MB
    streamed = prepare({"data": str(tmp_path / "d.npy"), "validation_fraction": 0}, stream=True)  # (default: 20%)
    with pytest.raises(memory.XpnetMemoryError, match="converting 4,000 rows"):
        materialize(streamed)
