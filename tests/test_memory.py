"""Memory estimates and the early, clear failure when a run does not fit."""

import dataclasses

import numpy as np
import pytest

import xpnet
from xpnet import memory


@dataclasses.dataclass(frozen=True)
class TinyDevice(xpnet.Backend):
    """A backend that reports only ``free`` bytes of memory (like a small GPU)."""

    free: int = 1 << 20

    def available_memory(self):
        return self.free


def tiny(free=1 << 20):
    real = xpnet.get_backend("numpy")
    return TinyDevice(real.name, real.xp, real.device, "test", real._module, free)


def test_estimate_counts_data_parameters_and_activations():
    # 2 -> 4 -> 2, 10 rows, float64: data 10*(2+2); params (3*4 + 5*2) = 22, x4;
    # activations 10 * ((2 + 4) + 3 * (4 + 2)) = 240.
    assert memory.estimate_bytes([2, 4, 2], 10, 8) == (40 + 88 + 240) * 8
    assert memory.estimate_bytes([2, 4, 2], 10, 8, rows_at_once=5) == (40 + 88 + 120) * 8


def test_streamed_data_counts_its_chunk_buffers_not_the_file():
    # 2e7 rows of 32 features streamed from a mapped file, two chunks of 65,536 rows resident
    whole = memory.estimate_bytes([32, 64, 2], 20_000_000, 4, rows_at_once=65_536)
    streamed = memory.estimate_bytes([32, 64, 2], 20_000_000, 4, rows_at_once=65_536, resident_rows=2 * 65_536)
    assert whole - streamed == (20_000_000 - 2 * 65_536) * (32 + 2) * 4  # only the data term changes
    assert streamed < 100 * 2**20 < 2 * 2**30 < whole
    assert memory.estimate_bytes([2, 4, 2], 10, 8, resident_rows=50) == memory.estimate_bytes([2, 4, 2], 10, 8)
    backend = tiny(free=200 * 2**20)
    with pytest.raises(memory.XpnetMemoryError):
        memory.check_fits(backend, [32, 64, 2], 20_000_000, 4, 65_536)
    assert memory.check_fits(backend, [32, 64, 2], 20_000_000, 4, 65_536, resident_rows=2 * 65_536) == streamed


def test_resident_anonymous_memory_grows_with_what_is_touched_not_with_a_mapped_file(tmp_path):
    if memory.resident_anonymous() is None:
        pytest.skip("no RssAnon in /proc/self/status (not Linux)")
    np.save(tmp_path / "big.npy", np.ones((8192, 1024)))  # 64 MiB
    before = memory.resident_anonymous()
    mapped = np.load(tmp_path / "big.npy", mmap_mode="r")
    assert float(np.sum(mapped, axis=0)[0]) == 8192  # every page touched, through the page cache
    assert memory.resident_anonymous() - before < 16 * 2**20
    touched = np.full((8192, 1024), 2.0)  # 64 MiB: above malloc's mmap threshold, so fresh pages
    assert memory.resident_anonymous() - before > 48 * 2**20
    del touched, mapped
    assert memory.resident_anonymous(str(tmp_path / "missing")) is None


def test_tutorial_sized_estimate_matches_the_issue_scale():
    # The tutorial code needs ~15 GiB at N=1e5, H=4096 float64; ours counts the same order.
    need = memory.estimate_bytes([2, 4096, 2], 100_000, 8)
    assert 5 * 2**30 < need < 30 * 2**30


def test_run_that_does_not_fit_fails_early_with_the_estimate_and_the_fix():
    backend = tiny()
    model = xpnet.MLP([2, 512, 2], backend=backend)
    X, y = np.zeros((10_000, 2)), np.zeros(10_000, dtype=int)
    with pytest.raises(memory.XpnetMemoryError) as info:
        model.fit(X, y, epochs=1)
    message = str(info.value)
    assert "MiB" in message and "1.0 MiB free" in message and "--batch-size" in message
    assert isinstance(info.value, MemoryError) and isinstance(info.value, xpnet.XpnetError)


def test_run_that_fits_trains():
    model = xpnet.MLP([2, 8, 2], backend=tiny(1 << 30))
    model.fit(np.zeros((100, 2)), np.zeros(100, dtype=int), epochs=2)


def test_host_memory_is_reported():
    free = xpnet.get_backend("numpy").available_memory()
    assert free is None or free > 0


def test_out_of_memory_errors_become_the_same_message():
    backend = xpnet.get_backend("numpy")
    assert backend.is_out_of_memory(MemoryError()) and not backend.is_out_of_memory(ValueError())
    err = memory.out_of_memory(backend, MemoryError(), [2, 8, 2], 100, 4)
    assert "ran out of memory" in str(err) and "--batch-size" in str(err)


@pytest.mark.parametrize("batch_size", [None, 20])  # the full-batch epoch and the batched one
def test_out_of_memory_during_training_keeps_the_weights_and_says_what_to_do(monkeypatch, batch_size):
    from xpnet.training import optim

    model = xpnet.MLP([2, 8, 2], backend="numpy")
    before = [w.copy() for w in model.parameters()]
    calls = []

    def exhausted(*args, **kwargs):  # the update of the 4th epoch runs out of memory
        calls.append(1)
        if len(calls) > 3 * (1 if batch_size is None else 3):
            raise MemoryError("device memory exhausted")
        return real(*args, **kwargs)

    real = optim.SGD.step
    monkeypatch.setattr(optim.SGD, "step", exhausted)
    with pytest.raises(memory.XpnetMemoryError, match="ran out of memory.*--batch-size"):
        model.fit(np.zeros((50, 2)), np.zeros(50, dtype=int), epochs=10, log_every=1, batch_size=batch_size)
    assert all(np.all(np.isfinite(w)) for w in model.parameters())
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.parameters()))  # 3 epochs were kept


# -- the memory a process may really use: MemAvailable, the cgroup limit, RLIMIT_AS ----------

GiB = 1 << 30


def fake_limits(monkeypatch, meminfo=None, cgroup=None, rlimit=None):
    monkeypatch.setattr(memory, "meminfo_available", lambda: meminfo)
    monkeypatch.setattr(memory, "cgroup_available", lambda: cgroup)
    monkeypatch.setattr(memory, "rlimit_available", lambda: rlimit)


@pytest.mark.parametrize("limits, expected, source", [
    ({"meminfo": 8 * GiB, "cgroup": 2 * GiB, "rlimit": 4 * GiB}, 2 * GiB, "cgroup limit"),
    ({"meminfo": 8 * GiB, "cgroup": None, "rlimit": 3 * GiB}, 3 * GiB, "RLIMIT_AS"),
    ({"meminfo": 1 * GiB, "cgroup": 2 * GiB, "rlimit": None}, 1 * GiB, "MemAvailable"),
])
def test_available_bytes_is_the_smallest_limit_and_says_which(monkeypatch, limits, expected, source):
    fake_limits(monkeypatch, **limits)
    free, described = memory.available_bytes()
    assert free == expected and source in described


def test_available_bytes_unknown_everywhere(monkeypatch):
    fake_limits(monkeypatch)
    assert memory.available_bytes()[0] is None
    memory.require(10**15, "anything")  # nothing known: nothing refused


def test_cpu_backends_see_the_cgroup_limit(monkeypatch):
    fake_limits(monkeypatch, meminfo=8 * GiB, cgroup=1 << 20)
    assert xpnet.get_backend("numpy").available_memory() == 1 << 20
    model = xpnet.MLP([2, 512, 2], backend="numpy")
    with pytest.raises(memory.XpnetMemoryError, match="1.0 MiB free"):
        model.fit(np.zeros((10_000, 2)), np.zeros(10_000, dtype=int), epochs=1)


def test_require_names_what_the_need_the_limit_and_the_fix(monkeypatch):
    fake_limits(monkeypatch, meminfo=8 * GiB, cgroup=GiB)
    memory.require(GiB // 2, "a small thing")
    with pytest.raises(memory.XpnetMemoryError) as info:
        memory.require(3 * GiB, "the data (1e9 x 3 float64)", fix="use fewer samples")
    message = str(info.value)
    assert message.startswith("the data (1e9 x 3 float64) would need about 3.0 GiB but only 1.0 GiB is available")
    assert "(cgroup limit)" in message and message.endswith("use fewer samples") and "\n" not in message
    assert isinstance(info.value, MemoryError) and isinstance(info.value, ValueError)


def test_require_refuses_sizes_beyond_any_float():
    with pytest.raises(memory.XpnetMemoryError, match="would need about"):
        memory.require(10**400, "a model from a hostile file")
    with pytest.raises(xpnet.XpnetValueError, match="whole number"):
        memory.require(-5, "a negative size")


def cgroup_tree(tmp_path, version, limits, usages, inactive=0, path="/job/step"):
    """A fake /proc/self/cgroup, /proc/self/mountinfo and cgroup mount with a limit per level."""
    mount = tmp_path / "sys" / "fs" / "cgroup"
    files = ("memory.max", "memory.current", "inactive_file") if version == 2 else (
        "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
    level = mount
    for depth, part in enumerate([""] + path.strip("/").split("/")):
        level = level / part if part else level
        level.mkdir(parents=True, exist_ok=True)
        if depth < len(limits) and limits[depth] is not None:
            (level / files[0]).write_text(f"{limits[depth]}\n")
            (level / files[1]).write_text(f"{usages[depth]}\n")
            (level / "memory.stat").write_text(f"anon 1\n{files[2]} {inactive}\nactive_file 7\n")
    (tmp_path / "cgroup").write_text(
        f"0::{path}\n" if version == 2 else f"5:cpu,cpuacct:/\n4:memory:{path}\n1:name=systemd:/\n")
    fstype = "cgroup2 cgroup2 rw" if version == 2 else "cgroup cgroup rw,memory"
    (tmp_path / "mountinfo").write_text(
        "22 1 0:20 / / rw - ext4 /dev/sda1 rw\n"
        f"31 22 0:28 / {mount} rw,nosuid - {fstype}\n")
    return str(tmp_path / "cgroup"), str(tmp_path / "mountinfo")


def test_cgroup_v2_limit_minus_usage_of_the_tightest_level(tmp_path):
    # root: no memory.max; /job: 4 GiB with 1 GiB used; /job/step: "max" (unlimited)
    files = cgroup_tree(tmp_path, 2, [None, 4 * GiB, "max"], [None, GiB, 10], inactive=GiB // 4)
    assert memory.cgroup_available(*files) == 3 * GiB + GiB // 4  # inactive file cache is reclaimable


def test_cgroup_v1_limit_and_the_unlimited_sentinel(tmp_path):
    files = cgroup_tree(tmp_path, 1, [9223372036854771712, 2 * GiB, 9223372036854771712], [5 * GiB, GiB // 2, 0])
    assert memory.cgroup_available(*files) == GiB + GiB // 2
    unlimited = cgroup_tree(tmp_path / "u", 1, [9223372036854771712] * 3, [5 * GiB, 0, 0])
    assert memory.cgroup_available(*unlimited) is None


def test_cgroup_files_missing_or_garbage_mean_unknown(tmp_path):
    assert memory.cgroup_available(str(tmp_path / "none"), str(tmp_path / "none")) is None
    files = cgroup_tree(tmp_path, 2, [None, "garbage"], [None, "x"])
    assert memory.cgroup_available(*files) is None


RLIMIT_CHILD = """
import resource, xpnet
from xpnet import memory
vm = memory.virtual_size()
resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20), resource.RLIM_INFINITY))
free, source = memory.available_bytes()
assert "RLIMIT_AS" in source and 0 < free <= 256 << 20, (free, source)
try:
    memory.require(1 << 30, "one GiB")
except memory.XpnetMemoryError as exc:
    print(exc)
"""


def test_rlimit_as_bounds_what_is_available():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", RLIMIT_CHILD], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "one GiB would need about 1.0 GiB" in proc.stdout and "RLIMIT_AS" in proc.stdout


def test_the_check_runs_before_the_data_is_copied(monkeypatch):
    copies = []
    backend = tiny()
    real = xpnet.Backend.asarray
    monkeypatch.setattr(TinyDevice, "asarray", lambda self, host, dtype=None: copies.append(np.shape(host))
                        or real(self, host, dtype))
    model = xpnet.MLP([2, 512, 2], backend=backend)
    copies.clear()
    with pytest.raises(memory.XpnetMemoryError):
        model.fit(np.zeros((10_000, 2)), np.zeros(10_000, dtype=int), epochs=1)
    assert copies == []  # nothing of the data's size went to the device


def test_lanes_that_run_one_after_another_count_once():
    from xpnet.engine import fullbatch
    from xpnet.engine.numpy_ops import LANES, get_ops

    generic = get_ops(xpnet.get_backend("array_api_strict"))
    rows = fullbatch.chunk_rows(generic, [2, 4096, 2], 4)
    assert fullbatch.rows_at_once(generic, [2, 4096, 2], 4, 10**7) == rows  # generic lanes: one at a time
    numpy_ops = get_ops(xpnet.get_backend("numpy"))
    chunk = fullbatch.chunk_rows(numpy_ops, [2, 4096, 2], 4)
    for threads, lanes in ((1, 1), (LANES, LANES), (LANES + 3, LANES)):
        with xpnet.limit_threads(threads):
            assert fullbatch.rows_at_once(numpy_ops, [2, 4096, 2], 4, 10**7) == lanes * chunk


def test_out_of_memory_while_copying_is_xpnets_memory_error(monkeypatch):
    backend = xpnet.get_backend("numpy")

    def refuse(*args, **kwargs):
        raise MemoryError("Unable to allocate")

    broken = dataclasses.replace(backend, xp=type("XP", (), {"asarray": staticmethod(refuse)})())
    with pytest.raises(memory.XpnetMemoryError, match=r"ran out of memory copying a 3x2 array .* to it; free"):
        broken.asarray(np.zeros((3, 2)))


@pytest.mark.parametrize("front", ["estimator", "mlp"])
def test_a_billion_unit_layer_is_xpnets_memory_error_before_any_weight_is_drawn(front):
    X, y = np.random.default_rng(0).standard_normal((20, 3)), np.arange(20) % 2
    with pytest.raises(memory.XpnetMemoryError, match="would need about .* use narrower"):
        if front == "estimator":
            from xpnet.sklearn import MLPClassifier

            MLPClassifier(hidden_layer_sizes=(10**9,)).fit(X, y)
        else:
            xpnet.MLP([3, 10**9, 2]).fit(X, y)
