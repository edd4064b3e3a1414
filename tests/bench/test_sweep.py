"""xpnet.bench.sweep and `xpnet bench --sweep`: the cost curve over rows or hidden widths."""

import json

import pytest

import xpnet
from xpnet import bench, cli
from xpnet.bench import machine, sweep

TINY_CEILINGS = {"matmul_size": 64, "copy_elements": 4096, "activation_elements": 4096}


def test_rows_range_is_1_2_5_per_decade_up_to_the_budget():
    case = bench.Case("numpy", "float32", 1000, 16)
    budget = bench.estimate_memory(bench.Case("numpy", "float32", 50_000, 16))
    assert sweep.rows_range(case, budget) == [1000, 2000, 5000, 10_000, 20_000, 50_000]
    with_file = sweep.rows_range(case, budget, source="file")  # the file counts too
    assert with_file == [1000, 2000, 5000, 10_000, 20_000]
    assert sweep.rows_range(case, 10) == []


def test_hidden_range_is_powers_of_two_from_16_to_8192_that_fit():
    case = bench.Case("numpy", "float32", 1000, 16)
    assert sweep.hidden_range(case, 2**40) == [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
    budget = bench.estimate_memory(bench.Case("numpy", "float32", 1000, 100))
    assert sweep.hidden_range(case, budget) == [16, 32, 64]


def test_cache_crossings_are_where_the_data_or_the_weights_fill_a_cache():
    caches = [{"level": 1, "type": "Data", "bytes": 32768}, {"level": 1, "type": "Instruction", "bytes": 32768},
              {"level": 2, "type": "Unified", "bytes": 2**20}, {"level": 3, "type": "Unified", "bytes": 2**25}]
    rows = [{"dtype": "float32", "input_dim": 2, "classes": 2, "n_samples": n, "hidden": 8} for n in (1000, 10**6)]
    crossings = sweep.cache_crossings("rows", rows, caches)
    # data = N * (2 + 2) * 4 bytes: L1 at 2048 rows, L2 at 65536, L3 at 2^21 (past the range)
    assert crossings == [(2048.0, "data = L1 (32.0 KiB)"), (65536.0, "data = L2 (1.0 MiB)")]
    widths = [{"dtype": "float64", "input_dim": 10, "classes": 2, "n_samples": 100, "hidden": h} for h in (16, 16384)]
    (at, label), (at2, _) = sweep.cache_crossings("hidden", widths, caches)
    assert label == "weights = L1 (32.0 KiB)" and ((10 + 1) * at + (at + 1) * 2) * 8 == pytest.approx(32768)
    assert at2 == pytest.approx((2**20 / 8 - 2) / 13)
    assert sweep.cache_crossings("rows", [], caches) == []


def test_cpu_caches_reads_the_kernels_folders(tmp_path):
    for i, (level, kind, size) in enumerate([("1", "Data", "48K"), ("2", "Unified", "2048K"), ("3", "Unified", "32M")]):
        folder = tmp_path / f"index{i}"
        folder.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size), ("shared_cpu_list", "0-1")):
            (folder / name).write_text(value + "\n")
    (tmp_path / "index9").mkdir()  # unreadable entries are left out
    assert machine.cpu_caches(str(tmp_path)) == [
        {"level": 1, "type": "Data", "bytes": 48 * 2**10, "shared_cpus": "0-1"},
        {"level": 2, "type": "Unified", "bytes": 2 * 2**20, "shared_cpus": "0-1"},
        {"level": 3, "type": "Unified", "bytes": 32 * 2**20, "shared_cpus": "0-1"}]
    assert machine.cpu_caches(str(tmp_path / "none")) == []


def test_run_sweep_times_each_size_and_draws_the_curve(tmp_path):
    pytest.importorskip("matplotlib")
    budget = bench.estimate_memory(bench.Case("numpy", "float32", 2000, 8, input_dim=3))
    report = sweep.run_sweep("rows", ["numpy"], hidden=[8, 4], input_dim=3, budget=budget, repeat=1,
                             ceiling_sizes=TINY_CEILINGS)
    assert report["sweep"] == {"kind": "rows", "sizes": {"8": [1000, 2000], "4": [1000, 2000]},
                               "budget_bytes": budget, "source": "memory"}
    assert [(r["hidden"], r["n_samples"]) for r in report["results"]] == [(8, 1000), (8, 2000), (4, 1000), (4, 2000)]
    assert all(r["seconds_per_epoch"] > 0 and r["tanh_floor_seconds"] > 0 for r in report["results"])
    sweep.sweep_figure(report, tmp_path / "rows.png")
    assert (tmp_path / "rows.png").read_bytes()[:4] == b"\x89PNG"
    hidden = sweep.run_sweep("hidden", ["numpy"], n_samples=[300], budget=bench.estimate_memory(
        bench.Case("numpy", "float32", 300, 32)), repeat=1, ceiling_sizes=TINY_CEILINGS, source="file",
        data_dir=str(tmp_path))
    assert [r["hidden"] for r in hidden["results"]] == [16, 32]
    assert all(r["page_cache_floor_seconds"] > 0 for r in hidden["results"])
    sweep.sweep_figure(hidden, tmp_path / "hidden.svg")
    assert (tmp_path / "hidden.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(xpnet.XpnetValueError, match="too small"):
        sweep.run_sweep("rows", ["numpy"], budget=10)
    with pytest.raises(xpnet.XpnetValueError, match="sweep"):
        sweep.run_sweep("depth", ["numpy"])


def test_cli_bench_sweep_json_and_its_flags(capsys, monkeypatch):
    monkeypatch.setattr(bench.timing, "default_ceiling_sizes", lambda backend: dict(TINY_CEILINGS))
    assert cli.main(["bench", "--backend", "numpy", "--sweep", "hidden", "--n-samples", "300", "--budget", "200K",
                     "--repeat", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sweep"]["kind"] == "hidden" and report["sweep"]["budget_bytes"] == 200 * 1024
    assert [r["hidden"] for r in report["results"]] == report["sweep"]["sizes"]["300"]
    assert report["results"][0]["hidden"] == 16 and len(report["results"]) >= 2
    for args, message in ((["--budget", "2G"], "--budget bounds a --sweep"),
                          (["--sweep", "rows", "--budget", "lots"], "--budget: expected a size"),
                          (["--sweep", "rows", "--budget", "0"], "--budget: must be at least 1 byte"),
                          (["--sweep", "depth"], "--sweep: invalid choice: 'depth'")):
        assert cli.main(["bench", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("xpnet: error:") and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("text, size", [("2e9", 2 * 10**9), ("512M", 512 * 2**20), ("2G", 2 * 2**30),
                                        ("2GiB", 2 * 2**30), ("1.5k", 1536), ("100", 100)])
def test_budget_sizes(text, size):
    from xpnet.cli.bench import _byte_size

    assert _byte_size(text) == size
