"""Issue 15 (reliability), library side: hostile checkpoints, bounded memory, safe writes,
rescued weights, pickling.

Every test here failed before the fix it covers. Tests that need a real small or read-only
filesystem mount a tmpfs (root only); each also has a variant that fakes the failure.
"""

import copy
import errno
import io
import json
import os
import pickle
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest
from conftest import available_backend

import xpnet
from xpnet import memory
from xpnet.errors import XpnetValueError
from xpnet.io import atomic, checkpoint
from xpnet.io.checkpoint import loader, members

X, Y = xpnet.datasets.load("moons", n_samples=64, noise=0.2, seed=0)


def trained(layer_sizes=(2, 6, 2), backend="numpy", dtype="float64", **options):
    model = xpnet.MLP(list(layer_sizes), backend=backend, dtype=dtype, **options)
    model.fit(X, Y, epochs=5, learning_rate=0.5)
    return model


@pytest.fixture
def saved(tmp_path):
    """A valid checkpoint with momentum state and a scaler, as (path, arrays, meta)."""
    from xpnet.data.labels import LabelMap
    from xpnet.data.preprocess import Scaler

    path = tmp_path / "good.npz"
    model = trained()
    state = {f"velocity_{i}": np.full(p.shape, 0.5) for i, p in enumerate(model.parameters())}
    checkpoint.save(path, model, config={"learning_rate": 0.5}, history={"epochs": [0, 5], "losses": [0.7, 0.5]},
                    epochs_done=5, optimizer_state=state, labels=LabelMap(["no", "yes"]),
                    scaler=Scaler(np.zeros(2), np.ones(2)), feature_names=["a", "b"])
    with np.load(path) as archive:
        arrays = dict(archive)
    return path, arrays, json.loads(arrays["meta"].tobytes())


def rewrite(path, arrays, meta=None, compressed=False, **changes):
    """Write an .npz like a checkpoint with some arrays or meta keys changed (None removes)."""
    arrays = dict(arrays)
    if isinstance(meta, np.ndarray):
        arrays["meta"] = meta
    elif meta is not None:
        arrays["meta"] = np.frombuffer(meta if isinstance(meta, bytes) else json.dumps(meta).encode(), np.uint8)
    for name, value in changes.items():
        name = name.replace("__", "/")
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def meta_with(meta, **changes):
    meta = json.loads(json.dumps(meta))
    for key, value in changes.items():
        target = meta
        *parents, last = key.split("__")
        for parent in parents:
            target = target[parent]
        if value is REMOVE:
            del target[last]
        else:
            target[last] = value
    return meta


REMOVE = object()

# -- a loader that trusts nothing ------------------------------------------------------------

BAD_META = [  # (what, changes to the meta, words of the error)
    ("meta is a list", lambda m: [m], ["meta is not a JSON object"]),
    ("no architecture", lambda m: meta_with(m, architecture=REMOVE), ["architecture"]),
    ("architecture is a string", lambda m: meta_with(m, architecture="mlp"), ["architecture"]),
    ("layer size is a string", lambda m: meta_with(m, architecture__layer_sizes=[2, "6", 2]), ["layer_sizes"]),
    ("layer size is fractional", lambda m: meta_with(m, architecture__layer_sizes=[2, 6.5, 2]), ["layer_sizes"]),
    ("layer size is zero", lambda m: meta_with(m, architecture__layer_sizes=[2, 0, 2]), ["layer_sizes"]),
    ("layer size is negative", lambda m: meta_with(m, architecture__layer_sizes=[2, -6, 2]), ["layer_sizes"]),
    ("layer size is a bool", lambda m: meta_with(m, architecture__layer_sizes=[2, True, 2]), ["layer_sizes"]),
    ("one layer", lambda m: meta_with(m, architecture__layer_sizes=[2]), ["layer_sizes"]),
    ("layer sizes not a list", lambda m: meta_with(m, architecture__layer_sizes={"a": 1}), ["layer_sizes"]),
    ("too few activations", lambda m: meta_with(m, architecture__activation=[]), ["activation"]),
    ("activation not a string", lambda m: meta_with(m, architecture__activation=[3]), ["activation"]),
    ("unknown activation", lambda m: meta_with(m, architecture__activation=["swish"]), ["swish"]),
    ("unknown output", lambda m: meta_with(m, architecture__output="tanh"), ["output"]),
    ("unknown loss", lambda m: meta_with(m, architecture__loss="hinge"), ["loss", "hinge"]),
    ("bias not a bool", lambda m: meta_with(m, architecture__bias="yes"), ["bias"]),
    ("seed negative", lambda m: meta_with(m, architecture__seed=-1), ["seed"]),
    ("dropout 2", lambda m: meta_with(m, architecture__dropout=2), ["dropout"]),
    ("unknown dtype", lambda m: meta_with(m, dtype="float16"), ["dtype", "float16"]),
    ("dtype object", lambda m: meta_with(m, dtype="object"), ["dtype"]),
    ("epochs_done NaN", lambda m: meta_with(m, epochs_done=float("nan")), ["epochs_done"]),
    ("epochs_done negative", lambda m: meta_with(m, epochs_done=-3), ["epochs_done"]),
    ("epochs_done huge float", lambda m: meta_with(m, epochs_done=1e300), ["epochs_done"]),
    ("epochs_done huge int", lambda m: meta_with(m, epochs_done=10**30), ["epochs_done"]),
    ("epochs_done a string", lambda m: meta_with(m, epochs_done="5"), ["epochs_done"]),
    ("history a list", lambda m: meta_with(m, history=[1, 2]), ["history"]),
    ("history lengths differ", lambda m: meta_with(m, history={"epochs": [0, 5], "losses": [1.0]}), ["history"]),
    ("config a list", lambda m: meta_with(m, config=[1]), ["config"]),
    ("classes a dict", lambda m: meta_with(m, classes={"a": 1}), ["classes"]),
    ("classes of the wrong count", lambda m: meta_with(m, classes=["a", "b", "c"]), ["classes"]),
    ("feature names of the wrong count", lambda m: meta_with(m, feature_names=["a"]), ["feature_names"]),
    ("optimizer state a string", lambda m: meta_with(m, optimizer_state="velocity_0"), ["optimizer_state"]),
    ("optimizer state not in the file", lambda m: meta_with(m, optimizer_state=["velocity_0", "velocity_9"]),
     ["optimizer/velocity_9"]),
    ("standardize without a scaler", None, ["scaler_mean"]),
    ("xpnet_version a number", lambda m: meta_with(m, xpnet_version=1), ["xpnet_version"]),
    ("format_version a bool", lambda m: meta_with(m, format_version=True), ["format_version"]),
    ("train_config a list", lambda m: meta_with(m, train_config=[1]), ["train_config", "JSON object"]),
    ("train_config with an unknown option", lambda m: meta_with(m, train_config={"epochs": 5, "bogus": 1}),
     ["train_config", "bogus"]),
    ("train_config with a negative rate", lambda m: meta_with(m, train_config={"learning_rate": -1}),
     ["train_config", "learning_rate"]),
    ("train_config with a string for a number", lambda m: meta_with(m, train_config={"epochs": "5"}),
     ["train_config", "epochs"]),
    ("train_config with a bad schedule", lambda m: meta_with(m, train_config={"schedule": {"name": "step", "step": 0}}),
     ["train_config", "step"]),
    ("train_config with an unknown schedule option", lambda m: meta_with(m, train_config={"schedule": {"bogus": 1}}),
     ["train_config", "bogus"]),
    ("train_config contradicting itself", lambda m: meta_with(m, train_config={"nesterov": True}),
     ["train_config", "nesterov"]),
]


@pytest.mark.parametrize("what, change, words", BAD_META, ids=[c[0] for c in BAD_META])
def test_every_malformed_meta_is_one_clear_error_naming_the_file(saved, tmp_path, what, change, words):
    path, arrays, meta = saved
    bad = tmp_path / "bad.npz"
    if change is None:
        rewrite(bad, arrays, scaler_mean=None)
    else:
        rewrite(bad, arrays, change(meta))
    assert_one_clear_error(bad, words)


def assert_one_clear_error(bad, words):
    """Loading ``bad`` is one line of XpnetValueError naming the file and holding every word."""
    with pytest.raises(XpnetValueError) as info:
        checkpoint.load(bad, backend="numpy")
    message = str(info.value)
    assert repr(str(bad)) in message and "\n" not in message
    for word in words:
        assert word in message, (word, message)


BAD_ARRAYS = [  # (what, arrays to change, words of the error)
    ("missing W1", {"W1": None}, ["W1"]),
    ("missing b0", {"b0": None}, ["b0"]),
    ("W0 of the wrong shape", {"W0": np.zeros((2, 32))}, ["W0", "(2, 32)", "(2, 6)"]),
    ("W0 transposed", {"W0": np.zeros((6, 2))}, ["W0", "(6, 2)"]),
    ("b1 of the wrong rank", {"b1": np.zeros((2, 1))}, ["b1"]),
    ("W0 with NaN", {"W0": np.full((2, 6), np.nan)}, ["W0", "NaN"]),
    ("b0 with Inf", {"b0": np.array([np.inf, 0, 0, 0, 0, 0])}, ["b0", "finite"]),
    ("W0 of integers", {"W0": np.zeros((2, 6), dtype=np.int64)}, ["W0", "int64"]),
    ("W0 of float32 in a float64 model", {"W0": np.zeros((2, 6), dtype=np.float32)}, ["W0", "float32"]),
    ("W0 complex", {"W0": np.zeros((2, 6), dtype=complex)}, ["W0", "complex"]),
    ("W0 of datetimes", {"W0": np.zeros((2, 6), dtype="datetime64[s]")}, ["W0", "datetime64"]),
    ("W0 structured", {"W0": np.zeros((2, 6), dtype=[("a", "f8")])}, ["W0"]),
    ("W0 of objects (a pickle)", {"W0": np.array([{"evil": 1}], dtype=object)}, ["W0", "object"]),
    ("velocity of the wrong shape", {"optimizer__velocity_0": np.zeros((6, 2))}, ["optimizer/velocity_0"]),
    ("velocity with NaN", {"optimizer__velocity_1": np.full((6, 2), np.nan)}, ["optimizer/velocity_1", "NaN"]),
    ("scaler of the wrong length", {"scaler_scale": np.ones(3)}, ["scaler_scale"]),
    ("scale of zero", {"scaler_scale": np.zeros(2)}, ["scaler_scale"]),
    ("meta of floats", {"meta": np.zeros(4)}, ["meta"]),
]


@pytest.mark.parametrize("what, changes, words", BAD_ARRAYS, ids=[c[0] for c in BAD_ARRAYS])
def test_every_wrong_array_is_one_clear_error_naming_the_file(saved, tmp_path, what, changes, words):
    path, arrays, meta = saved
    bad = rewrite(tmp_path / "bad.npz", arrays, **changes)
    assert_one_clear_error(bad, words)


def test_meta_that_is_not_json_or_not_utf8(saved, tmp_path):
    path, arrays, meta = saved
    for raw, word in ((b"{not json", "JSON"), (b"\xff\xfe{}", "UTF-8"), (b'"' + b"a" * 10 + b'"', "JSON object")):
        bad = rewrite(tmp_path / "bad.npz", arrays, raw)
        with pytest.raises(XpnetValueError, match=word):
            checkpoint.load(bad)


def test_deeply_nested_meta_is_one_line_not_a_recursion_error(saved, tmp_path):
    path, arrays, meta = saved
    deep = json.dumps(meta)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    bad = rewrite(tmp_path / "deep.npz", arrays, deep.encode())
    with pytest.raises(XpnetValueError, match="nested more than") as info:
        checkpoint.load(bad)
    assert str(bad) in str(info.value)


def test_meta_larger_than_the_cap_is_refused_before_it_is_read(saved, monkeypatch):
    path, arrays, meta = saved
    monkeypatch.setattr(members, "META_MAX_BYTES", 100)
    with pytest.raises(XpnetValueError, match="meta.*larger than"):
        checkpoint.load(path)


def test_a_member_larger_than_the_architecture_is_refused_before_it_is_inflated(saved, tmp_path):
    """A 64 MB W0 compressed to ~64 KB: refused from its header, without inflating it."""
    path, arrays, meta = saved
    bomb = rewrite(tmp_path / "bomb.npz", arrays, compressed=True, W0=np.zeros((2, 4_000_000)))
    assert bomb.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(XpnetValueError, match=r"W0.*\(2, 4000000\)"):
            checkpoint.load(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000


def test_members_that_are_not_expected_are_never_read(saved, tmp_path):
    path, arrays, meta = saved
    junk = rewrite(tmp_path / "junk.npz", arrays, compressed=True, junk=np.zeros(8_000_000),
                   pickled=np.array([{"evil": 1}], dtype=object))
    tracemalloc.start()
    try:
        ckpt = checkpoint.load(junk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ckpt.epochs_done == 5 and peak < 16_000_000


class CountingStream(io.BytesIO):
    """A stream that remembers how many bytes were asked of it."""

    asked = 0

    def read(self, n=-1):
        self.asked += n if n >= 0 else len(self.getvalue())
        return super().read(n)


def npy_bytes(array) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def test_one_bounded_npy_header_reader_with_its_limits_as_arguments():
    from xpnet.io.npy import NPY_HEADER_MAX, read_npy_header

    liar = CountingStream(b"\x93NUMPY\x02\x00" + (2**32 - 16).to_bytes(4, "little") + b"{" * 100)
    with pytest.raises(XpnetValueError, match=r"^x: its .npy header is 4294967280 bytes long, more than the 10000"):
        read_npy_header(liar, "x", 10**12)
    assert liar.asked == 12  # the magic and the length field: the 4 GB header is never read
    data = npy_bytes(np.arange(6.0).reshape(2, 3))
    header = read_npy_header(CountingStream(data), "x", len(data))
    assert header == ((2, 3), False, np.dtype("<f8")) and NPY_HEADER_MAX == 10_000
    with pytest.raises(XpnetValueError, match="more than the 64 allowed"):
        read_npy_header(CountingStream(data), "x", len(data), limit=64)
    padded = data + bytes(8)
    assert read_npy_header(CountingStream(padded), "x", len(padded)).shape == (2, 3)  # a data file may have more
    with pytest.raises(XpnetValueError, match="8 more bytes follow its data"):
        read_npy_header(CountingStream(padded), "x", len(padded), exact=True)  # a checkpoint's member may not
    with pytest.raises(XpnetValueError, match="2 x 3 float64 array .* truncated"):
        read_npy_header(CountingStream(data[:-1]), "x", len(data) - 1)
    with pytest.raises(XpnetValueError, match="Python objects"):
        blob = npy_bytes(np.array([{}], dtype=object))
        read_npy_header(CountingStream(blob), "x", len(blob))


def test_a_member_whose_zip_size_contradicts_its_header_is_refused(saved, tmp_path):
    path, arrays, meta = saved
    bad = tmp_path / "short.npz"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(bad, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info.filename, data[:-8] if info.filename == "W0.npy" else data)
    with pytest.raises(XpnetValueError, match="W0.*truncated"):
        checkpoint.load(bad)


def test_duplicate_members_are_refused(saved, tmp_path):
    path, arrays, meta = saved
    bad = tmp_path / "dup.npz"
    shutil.copy(path, bad)
    with zipfile.ZipFile(bad, "a") as archive, pytest.warns(UserWarning):
        archive.writestr("W0.npy", archive.read("W0.npy"))
    with pytest.raises(XpnetValueError, match="W0.*more than once"):
        checkpoint.load(bad)


def test_compressed_fortran_order_and_big_endian_arrays_load(saved, tmp_path):
    path, arrays, meta = saved
    W0 = np.asfortranarray(arrays["W0"])
    W1 = arrays["W1"].astype(">f8")
    other = rewrite(tmp_path / "other.npz", arrays, compressed=True, W0=W0, W1=W1)
    ckpt = checkpoint.load(other)
    np.testing.assert_array_equal(xpnet.to_numpy(ckpt.model.W[0]), arrays["W0"])
    np.testing.assert_array_equal(xpnet.to_numpy(ckpt.model.W[1]), arrays["W1"])
    np.testing.assert_array_equal(ckpt.optimizer_state["velocity_1"], arrays["optimizer/velocity_1"])


def test_not_a_regular_file_is_refused_without_reading(tmp_path):
    os.mkfifo(tmp_path / "pipe.npz")
    with pytest.raises(XpnetValueError, match=r"is not a regular file \(it is a FIFO"):
        checkpoint.load(tmp_path / "pipe.npz")  # a FIFO: reading it would block forever
    with pytest.raises(XpnetValueError, match="is a directory; give the path of a checkpoint"):
        checkpoint.load(tmp_path)


def test_data_files_and_checkpoints_share_one_opener(tmp_path, monkeypatch):
    """One regular-file opener (xpnet.io.files.open_regular): a data file that turns into a FIFO
    between the check and the open is refused on the open file, without blocking."""
    from xpnet.io import files, tables

    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(XpnetValueError, match=r"data file .*pipe.csv'.*not a regular file \(it is a FIFO"):
        tables.load_file(tmp_path / "pipe.csv")
    real_stat = os.stat
    monkeypatch.setattr(files.os, "stat", lambda p, *a, **k: real_stat(__file__) if str(p).endswith("pipe.csv")
                        else real_stat(p, *a, **k))  # the check before opening sees a regular file
    for read in (lambda: files._open(str(tmp_path / "pipe.csv")),
                 lambda: checkpoint.load(tmp_path / "pipe.csv")):
        with pytest.raises(XpnetValueError, match="not a regular file"):
            read()


def test_memory_is_checked_before_the_model_is_built(saved, tmp_path, monkeypatch):
    path, arrays, meta = saved
    big = trained((2, 20000, 2))
    checkpoint.save(tmp_path / "big.npz", big)
    monkeypatch.setattr(memory, "cgroup_available", lambda: 1 << 20)
    monkeypatch.setattr(loader, "MLP", None)  # building a model would fail loudly
    with pytest.raises(memory.XpnetMemoryError) as info:
        checkpoint.load(tmp_path / "big.npz")
    message = str(info.value)
    assert "big.npz" in message and "[2, 20000, 2]" in message and "1.0 MiB is available (cgroup limit)" in message


HUGE_CHILD = """
import resource, sys
from xpnet import checkpoint, memory
resource.setrlimit(resource.RLIMIT_AS, (memory.virtual_size() + (2 << 30), resource.RLIM_INFINITY))
try:
    checkpoint.load(sys.argv[1], backend="numpy")
except memory.XpnetMemoryError as exc:
    print("refused:", exc)
"""


def test_a_tiny_file_claiming_a_huge_model_fails_fast(saved, tmp_path):
    """A 3.5 KB checkpoint whose meta claims layer_sizes [2, 1e9, 2] (run under RLIMIT_AS, so
    that a loader that allocates first gets a MemoryError rather than the OOM killer)."""
    path, arrays, meta = saved
    huge = meta_with(meta, architecture__layer_sizes=[2, 1_000_000_000, 2], classes=None, feature_names=None,
                     optimizer_state=[], standardize=False)
    bad = rewrite(tmp_path / "huge.npz", {k: v for k, v in arrays.items() if "/" not in k}, huge)
    assert bad.stat().st_size < 5000
    proc = subprocess.run([sys.executable, "-c", HUGE_CHILD, str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.startswith("refused: the model in") and "[2, 1000000000, 2]" in proc.stdout
    assert "would need about" in proc.stdout


def test_another_major_version_warns(saved, tmp_path):
    path, arrays, meta = saved
    major = int(xpnet.__version__.split(".")[0])
    other = rewrite(tmp_path / "other.npz", arrays, meta_with(meta, xpnet_version=f"{major + 1}.0.0"))
    with pytest.warns(UserWarning, match=rf"xpnet {major + 1}\.0\.0.*major version"):
        checkpoint.load(other)
    same = rewrite(tmp_path / "same.npz", arrays, meta_with(meta, xpnet_version=f"{major}.99.0"))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checkpoint.load(same)


# -- safe writes -----------------------------------------------------------------------------

def never(handle):
    raise AssertionError("the destination should have been refused before any work")


def special_files(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    files = {"a FIFO": fifo, "a socket": tmp_path / "sock", "a directory": tmp_path / "dir"}
    (tmp_path / "dir").mkdir()
    try:
        os.mknod(tmp_path / "full", 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # what /dev/full is
        files["a character device"] = tmp_path / "full"
    except PermissionError:
        pass
    return files, sock


def test_destinations_that_are_not_regular_files_are_refused_before_any_work(tmp_path):
    files, sock = special_files(tmp_path)
    try:
        for kind, path in files.items():
            mode = os.lstat(path).st_mode
            with pytest.raises(XpnetValueError, match=f"it is {kind}"):
                checkpoint.check_destination(path)
            with pytest.raises(XpnetValueError, match=f"it is {kind}"):
                checkpoint.atomic_write(path, never)
            assert os.lstat(path).st_mode == mode  # still there, untouched
    finally:
        sock.close()


def test_symlinks_are_written_through_and_kept(tmp_path):
    target = tmp_path / "real.npz"
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    assert checkpoint.check_destination(link) == os.path.realpath(target)
    checkpoint.atomic_write(link, lambda handle: handle.write(b"new"))
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_dangling_links_and_links_to_special_files_are_refused(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(XpnetValueError, match="does not exist"):
        checkpoint.atomic_write(tmp_path / "dangling", never)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to-fifo").symlink_to(tmp_path / "fifo")
    with pytest.raises(XpnetValueError, match="it is a FIFO"):
        checkpoint.atomic_write(tmp_path / "to-fifo", never)
    assert not (tmp_path / "nowhere").exists()


def test_the_directory_must_exist_and_be_writable(tmp_path, monkeypatch):
    with pytest.raises(XpnetValueError, match="directory .* does not exist"):
        checkpoint.check_destination(tmp_path / "no" / "m.npz")
    (tmp_path / "file").write_text("x")
    with pytest.raises(XpnetValueError, match="not a directory"):
        checkpoint.check_destination(tmp_path / "file" / "m.npz")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(tmp_path) else real_access(p, mode))
    with pytest.raises(XpnetValueError, match="not writable"):
        checkpoint.check_destination(tmp_path / "m.npz")


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_new_files_get_the_umask_permissions(tmp_path, umask):
    old = os.umask(umask)
    try:
        checkpoint.save(tmp_path / "m.npz", trained())
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "m.npz").st_mode) == 0o666 & ~umask


def test_an_existing_file_keeps_its_mode(tmp_path):
    path = tmp_path / "m.npz"
    checkpoint.save(path, trained())
    os.chmod(path, 0o640)
    checkpoint.save(path, trained())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_the_directory_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def record(fd):
        synced.append((stat.S_ISDIR(os.fstat(fd).st_mode), os.path.exists(tmp_path / "m.npz")))
        return real(fd)

    monkeypatch.setattr(os, "fsync", record)
    checkpoint.save(tmp_path / "m.npz", trained())
    assert synced[-1] == (True, True)  # the directory, once the file is in place


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporary_files_of_dead_writers_are_removed(tmp_path):
    path = tmp_path / "m.npz"
    stale = tmp_path / f".m.npz.{dead_pid()}.0123abcd.tmp"
    stale.write_bytes(b"x" * 1000)
    live = tmp_path / f".m.npz.{os.getppid()}.0123abcd.tmp"  # our parent runs: perhaps writing
    live.write_bytes(b"y")
    other = tmp_path / f".m.npz.x.{dead_pid()}.0123abcd.tmp"  # a temp of another destination, m.npz.x
    other.write_bytes(b"z")
    checkpoint.save(path, trained())
    assert not stale.exists() and live.exists() and other.exists()


KILLER = """
import sys, xpnet
from xpnet import checkpoint
model = xpnet.MLP([2, 400, 400, 2], backend="numpy", dtype="float64")
print("ready", flush=True)
while True:
    checkpoint.save(sys.argv[1], model)
"""


def test_killed_writers_do_not_pile_up_temporary_files(tmp_path):
    path = tmp_path / "m.npz"
    for _ in range(4):
        with subprocess.Popen([sys.executable, "-c", KILLER, str(path)], stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout.readline().strip() == "ready"
            import time

            time.sleep(0.3)
            proc.send_signal(signal.SIGKILL)
    temps = [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    assert len(temps) <= 1  # each writer removed the one its killed predecessor left
    checkpoint.save(path, trained())
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []


# -- keep the weights when a save fails -----------------------------------------------------

def mounted(path, options):
    path.mkdir(exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root (the faked variant of this test runs everywhere)")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    return path


@pytest.fixture
def mounts():
    done = []
    yield lambda path, options: done.append(mounted(path, options)) or path
    for path in reversed(done):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def check_rescued(info, model, destination):
    err = info.value
    assert isinstance(err, xpnet.XpnetError) and err.rescue_path and err.rescue_path in str(err)
    assert str(destination) in str(err) and "\n" not in str(err)
    rescued = checkpoint.load(err.rescue_path, backend="numpy")
    for a, b in zip(model.parameters(), rescued.model.parameters()):
        np.testing.assert_array_equal(xpnet.to_numpy(a), xpnet.to_numpy(b))
    assert rescued.epochs_done == 7
    return err


def test_disk_full_on_a_small_tmpfs_rescues_the_weights(tmp_path, mounts, monkeypatch):
    full = mounts(tmp_path / "full", "size=64k")
    monkeypatch.chdir(tmp_path)
    model = trained((2, 1000, 2))  # 40 KB of float64 weights: more than the 64 KiB left free
    (full / "m.npz").write_bytes(b"previous")
    (full / "filler").write_bytes(b"f" * 40_000)
    with pytest.raises(checkpoint.SaveError, match="No space left on device") as info:
        checkpoint.save(full / "m.npz", model, epochs_done=7)
    err = check_rescued(info, model, full / "m.npz")
    assert os.path.dirname(err.rescue_path) == str(tmp_path)  # the current directory
    assert (full / "m.npz").read_bytes() == b"previous"
    assert sorted(os.listdir(full)) == ["filler", "m.npz"]  # no temporary file left behind


def test_read_only_mount_rescues_the_weights(tmp_path, mounts, monkeypatch):
    ro = mounts(tmp_path / "ro", "ro,size=64k")
    monkeypatch.chdir(tmp_path)
    model = trained()
    with pytest.raises(checkpoint.SaveError, match="not writable") as info:
        checkpoint.save(ro / "m.npz", model, epochs_done=7)
    check_rescued(info, model, ro / "m.npz")


def test_disk_full_faked_rescues_the_weights(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    real, calls = np.savez, []

    def full_once(handle, **arrays):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(handle, **arrays)

    monkeypatch.setattr(np, "savez", full_once)
    model = trained()
    with pytest.raises(checkpoint.SaveError, match="No space left on device") as info:
        checkpoint.save(tmp_path / "m.npz", model, epochs_done=7)
    err = check_rescued(info, model, tmp_path / "m.npz")
    assert os.path.dirname(err.rescue_path) == str(work)
    assert not (tmp_path / "m.npz").exists() and not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_permission_denied_faked_rescues_the_weights(tmp_path, monkeypatch):
    """Root ignores permission bits, so the refusal is faked at os.open for that directory."""
    denied = tmp_path / "denied"
    denied.mkdir()
    monkeypatch.chdir(tmp_path)
    real = os.open

    def refuse(path, *args, **kwargs):
        if os.path.dirname(os.fspath(path)) == str(denied):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    model = trained()
    with pytest.raises(checkpoint.SaveError, match="Permission denied") as info:
        checkpoint.save(denied / "m.npz", model, epochs_done=7)
    check_rescued(info, model, denied / "m.npz")


def test_when_no_rescue_is_possible_the_error_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "rescue_directories", lambda failed: [])
    monkeypatch.setattr(np, "savez", lambda handle, **a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O")))
    with pytest.raises(checkpoint.SaveError, match="no rescue file could be written") as info:
        checkpoint.save(tmp_path / "m.npz", trained(), epochs_done=7)
    assert info.value.rescue_path is None


def test_a_refused_destination_at_save_time_rescues_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the rescue goes here: never into the directory that failed
    (tmp_path / "out").mkdir()
    os.mkfifo(tmp_path / "out" / "pipe")
    model = trained()
    with pytest.raises(checkpoint.SaveError, match="FIFO") as info:
        checkpoint.save(tmp_path / "out" / "pipe", model, epochs_done=7)
    err = check_rescued(info, model, tmp_path / "out" / "pipe")
    assert os.path.dirname(err.rescue_path) == str(tmp_path)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "out" / "pipe").st_mode)


# -- pickling and copying --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["numpy", "array_api_strict", "array_api_strict:no_float64", "torch"])
def test_models_pickle_deepcopy_and_go_through_joblib(name, tmp_path):
    import joblib

    b = available_backend(name)
    dtype = "float64" if "float64" in b.dtype_names() else "float32"
    model = xpnet.MLP([2, 5, 2], backend=b, dtype=dtype, batch_norm=True)
    model.fit(X, Y, epochs=3, batch_size=16)
    expected = xpnet.to_numpy(model.predict_proba(X))
    joblib.dump(model, tmp_path / "m.joblib")
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model), joblib.load(tmp_path / "m.joblib")):
        assert clone.backend.name == b.name and clone.backend.device_name() == b.device_name()
        np.testing.assert_array_equal(xpnet.to_numpy(clone.predict_proba(X)), expected)
    clone = copy.deepcopy(model)
    assert all(type(a) is type(model.W[0]) for a in clone.W)  # copied on the device
    clone.fit(X, Y, epochs=2, batch_size=16)  # the copy trains on its own
    np.testing.assert_array_equal(xpnet.to_numpy(model.predict_proba(X)), expected)
    shallow = copy.copy(model)
    assert shallow is not model and shallow.W is model.W and shallow.backend is model.backend


def test_fit_results_pickle():
    model = xpnet.MLP([2, 5, 2], backend="numpy")
    result = model.fit(X, Y, epochs=3, momentum=0.9)
    clone = pickle.loads(pickle.dumps(result))
    assert clone.history == result.history and clone.backend == result.backend
    assert sorted(clone.optimizer_state) == sorted(result.optimizer_state)


UNPICKLE_WITHOUT = """
import pickle, sys, warnings
sys.modules[sys.argv[1]] = None  # the library cannot be imported in this process
with open(sys.argv[2], "rb") as handle:
    data = handle.read()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = pickle.loads(data)
import numpy as np, xpnet
X = np.load(sys.argv[3])
np.save(sys.argv[4], xpnet.to_numpy(model.predict_proba(X)))
print(model.backend.name, model.dtype_name, type(model.W[0]).__module__)
print(*[str(w.message) for w in caught], sep="\\n")
"""


@pytest.mark.parametrize("name, library", [("torch", "torch"), ("array_api_strict:device1", "array_api_strict")])
def test_a_model_pickled_on_any_backend_unpickles_where_that_backend_is_absent(name, library, tmp_path):
    b = available_backend(name)
    model = xpnet.MLP([2, 5, 3, 2], backend=b, dtype="float32", batch_norm=True)
    model.fit(X, Y, epochs=3, batch_size=16)
    expected = xpnet.to_numpy(model.predict_proba(X))
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(model))
    np.save(tmp_path / "X.npy", X)
    proc = subprocess.run([sys.executable, "-c", UNPICKLE_WITHOUT, library, str(tmp_path / "m.pkl"),
                           str(tmp_path / "X.npy"), str(tmp_path / "P.npy")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    restored, *warned = proc.stdout.splitlines()
    assert restored == "numpy float32 numpy"
    assert len(warned) == 1 and f"pickled on the {b.qualified_name()!r} backend, which is not available" in warned[0]
    assert "restored onto NumPy" in warned[0] and "to_backend" in warned[0]
    np.testing.assert_allclose(np.load(tmp_path / "P.npy"), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", [{"batch_norm": True}, {"bias": False}])
def test_the_pickle_holds_numpy_arrays_and_the_backend_by_name(options):
    class Recording(pickle.Unpickler):
        def find_class(self, module, name):
            found.add(module)
            return super().find_class(module, name)

    b = available_backend("torch")
    model = xpnet.MLP([2, 4, 2], backend=b, dtype="float32", **options)
    model.fit(X, Y, epochs=2)
    found: set = set()
    clone = Recording(io.BytesIO(pickle.dumps(model))).load()
    assert not [module for module in found if module.split(".")[0] == "torch"], found  # no class of torch's
    assert clone.backend.qualified_name() == "torch:cpu" and clone.dtype == b.dtype("float32")
    assert (clone.b is None, clone.bn is None) == (model.b is None, model.bn is None)
    arrays = clone.parameters() + (list(clone.bn.mean) + list(clone.bn.var) if clone.bn else [])
    assert all(type(a) is type(model.W[0]) for a in arrays)
    np.testing.assert_array_equal(xpnet.to_numpy(clone.predict_proba(X)), xpnet.to_numpy(model.predict_proba(X)))


def test_pickles_of_the_previous_layout_still_load():
    """A model pickled before the state held NumPy arrays (its attributes as they were)."""
    model = trained()
    old = xpnet.MLP.__new__(xpnet.MLP)
    old.__setstate__(dict(model.__dict__))
    np.testing.assert_array_equal(xpnet.to_numpy(old.predict_proba(X)), xpnet.to_numpy(model.predict_proba(X)))
