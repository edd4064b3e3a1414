"""xpnet.bench.disk and `xpnet bench --source file`: a case's rows from a mapped .npy, the page
cache's read bandwidth beside them, and a command's anonymous memory followed."""

import json
import os
import sys

import numpy as np
import pytest

import xpnet
from xpnet import bench, cli
from xpnet.bench import disk, runners, timing


def test_the_synthetic_rows_are_the_same_in_memory_and_in_a_file(tmp_path, monkeypatch):
    monkeypatch.setattr(runners, "BLOCK_ROWS", 7)  # several blocks, the last one short
    case = bench.Case("numpy", "float32", 30, 4, input_dim=3, classes=4)
    X, y = runners.synthetic(case, seed=5)
    assert X.shape == (30, 3) and X.dtype == np.float32 and set(np.unique(y)) <= {0, 1, 2, 3}
    path = disk.write_case_npy(case, str(tmp_path / "rows.npy"), seed=5)
    raw = np.load(path)
    assert raw.shape == (30, 4) and raw.dtype == np.float32
    np.testing.assert_array_equal(raw[:, :3], X)
    np.testing.assert_array_equal(raw[:, 3], y)
    mapped_X, labels = disk.map_case_npy(path, case)
    assert isinstance(mapped_X.base, np.memmap) or isinstance(mapped_X, np.memmap)  # a view of the mapping
    np.testing.assert_array_equal(mapped_X, X)
    np.testing.assert_array_equal(labels, y)
    assert disk.file_bytes(case) == 30 * 4 * 4 and os.path.getsize(path) > disk.file_bytes(case)  # + the header
    with pytest.raises(ValueError, match="not the case's"):
        disk.map_case_npy(path, bench.Case("numpy", "float32", 31, 4, input_dim=3, classes=4))


@pytest.mark.parametrize("kernels", ["numpy", "auto"])
def test_an_epoch_from_the_mapped_file_equals_one_in_memory_bit_for_bit(tmp_path, kernels):
    case = bench.Case("numpy", "float64", 700, 5, input_dim=3, classes=3)
    path = disk.write_case_npy(case, str(tmp_path / "rows.npy"))
    in_memory = bench.EpochRunner(case, kernels=kernels)
    streamed = bench.EpochRunner(case, kernels=kernels, data=disk.map_case_npy(path, case))
    assert streamed.run_.residency == "streamed" and in_memory.run_.residency == "device"
    assert isinstance(streamed.X.rows.data, np.memmap)  # the run reads the mapping: nothing copied
    in_memory.run(2)
    streamed.run(2)
    for mine, theirs in zip(streamed.W + streamed.b, in_memory.W + in_memory.b):
        np.testing.assert_array_equal(xpnet.to_numpy(mine), xpnet.to_numpy(theirs))


def test_the_case_file_is_removed_and_the_probe_reads_every_byte(tmp_path):
    case = bench.Case("numpy", "float32", 5000, 4, input_dim=8, classes=2)
    with disk.CaseFile(case, str(tmp_path)) as case_file:
        assert os.path.exists(case_file.path) and case_file.bytes == disk.file_bytes(case)
        probe = disk.PageCacheProbe(case_file.path, block=4096)
        assert len(probe.buffer) == 4096 and probe.bytes == os.path.getsize(case_file.path)
        assert probe.read_once() == probe.bytes
        assert probe.gbytes_per_second(0.5) == pytest.approx(probe.bytes / 0.5 / 1e9)
    assert not os.path.exists(case_file.folder)
    entries = disk.page_cache_entries(probe, [2.0, 0.5, 1.0], 4.0, 10**9)
    assert entries["page_cache_gbytes_per_second"] == pytest.approx(probe.bytes / 0.5 / 1e9)
    assert entries["read_gbytes_per_second"] == pytest.approx(0.25)
    assert entries["x_over_page_cache_floor"] == pytest.approx(4.0 / entries["page_cache_floor_seconds"])


def test_disk_room_refuses_a_file_larger_than_the_free_disk(tmp_path, monkeypatch):
    case = bench.Case("numpy", "float32", 1000, 4)
    assert disk.disk_room(case, str(tmp_path)) is None
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda folder: type("Usage", (), {"free": 1000})())
    reason = disk.disk_room(case, str(tmp_path))
    assert "its file needs" in reason and "90% of the" in reason and str(tmp_path) in reason


def test_run_with_a_file_source_reports_the_read_rate_and_the_page_cache_floor(tmp_path, capsys):
    report = bench.run(["numpy"], ["float32"], n_samples=[400], hidden=[4], input_dim=3, repeat=2,
                       ceiling_sizes={"matmul_size": 64, "copy_elements": 4096, "activation_elements": 4096},
                       source="file", data_dir=str(tmp_path))
    (row,) = report["results"]
    assert row["source"] == "file" and row["file_bytes"] == 400 * 4 * 4
    for key in ("read_gbytes_per_second", "page_cache_gbytes_per_second", "page_cache_floor_seconds",
                "x_over_page_cache_floor", "tanh_floor_seconds", "percent_of_matmul_peak"):
        assert np.isfinite(row[key]) and row[key] > 0, key
    assert os.listdir(tmp_path) == []  # the file went with its case
    assert "from the file" in bench.format_progress("result", row)
    table = bench.format_table(report)
    assert "read GB/s" in table and "cache GB/s" in table and "/read floor" in table
    with pytest.raises(xpnet.XpnetValueError, match="data_dir"):
        bench.run(["numpy"], n_samples=[10], hidden=[2], source="file", data_dir=str(tmp_path / "none"))
    with pytest.raises(xpnet.XpnetValueError, match="source"):
        bench.run(["numpy"], n_samples=[10], hidden=[2], source="disk")


def test_cli_bench_source_file_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench.timing, "default_ceiling_sizes",
                        lambda backend: {"matmul_size": 64, "copy_elements": 4096, "activation_elements": 4096})
    assert cli.main(["bench", "--backend", "numpy", "--n-samples", "300", "--hidden", "4", "--repeat", "1",
                     "--source", "file", "--data-dir", str(tmp_path), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert row["source"] == "file" and row["page_cache_gbytes_per_second"] > 0
    assert cli.main(["bench", "--source", "tape"]) == 2
    assert "--source: invalid choice: 'tape'" in capsys.readouterr().err


def test_watch_memory_follows_a_commands_anonymous_memory_and_stops_it_past_a_limit():
    if not os.path.exists("/proc/self/status"):
        pytest.skip("Linux only")
    grow = "import time; a = b'x' * 150_000_000; time.sleep(0.3); print('done')"  # 150 MB written: resident
    watched = timing.watch_memory([sys.executable, "-c", grow])
    assert watched["returncode"] == 0 and not watched["stopped"] and watched["stdout"].strip() == "done"
    assert watched["peak_anon_bytes"] >= 150 * 10**6  # sampled every 20 ms while it sleeps
    stopped = timing.watch_memory([sys.executable, "-c", grow.replace("0.3", "30")], limit_bytes=100 * 10**6)
    assert stopped["stopped"] and stopped["returncode"] != 0 and stopped["seconds"] < 25
    assert stopped["peak_anon_bytes"] > 100 * 10**6


def test_watch_memory_does_not_count_a_mapped_files_pages(tmp_path):
    """What the big-file target relies on: reading a mapped .npy fills the page cache, not RssAnon."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("Linux only")
    path = tmp_path / "big.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(50_000_000,))[:] = 1  # 200 MB
    read = ("import numpy as np, sys, time; m = np.load(sys.argv[1], mmap_mode='r'); print(float(m.sum())); "
            "time.sleep(0.2)")
    watched = timing.watch_memory([sys.executable, "-c", read, str(path)])
    assert watched["returncode"] == 0 and float(watched["stdout"]) == 5e7
    assert 0 < watched["peak_anon_bytes"] < 120 * 10**6  # the interpreter and NumPy, not the 200 MB
