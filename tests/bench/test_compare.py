"""xpnet.bench.compare and `xpnet bench compare`: two saved pytest-benchmark runs side by side."""

import json

import pytest

from xpnet import XpnetValueError, cli
from xpnet.bench import compare


def entry(name, median, low, high, n_samples=1000, samples_per_round=None, **params):
    info = {"samples_per_round": samples_per_round} if samples_per_round else {}
    return {"name": name, "params": {"n_samples": n_samples, **params},
            "stats": {"median": median, "min": low, "max": high, "rounds": 5}, "extra_info": info}


def saved(tmp_path, number, name, benchmarks, machine="Linux-CPython-3.11-64bit"):
    folder = tmp_path / ".benchmarks" / machine
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{number}_{name}.json"
    path.write_text(json.dumps({"machine_info": {"xpnet": {"cpu": "Test CPU", "numpy_blas": {"describe": "BLAS X"}}},
                                "commit_info": {"id": "0123456789abcdef"}, "datetime": "2026-12-07T10:00:00",
                                "benchmarks": benchmarks}))
    return path


A = [entry("test_training_epoch[a]", 0.010, 0.009, 0.011, backend="numpy"),
     entry("test_training_epoch[b]", 0.010, 0.0099, 0.0101, backend="torch"),
     entry("test_tiny_problem_overhead[xor]", 0.5, 0.49, 0.51, n_samples=4, samples_per_round=8000),
     entry("test_training_epoch[gone]", 0.01, 0.01, 0.01, backend="cupy")]
B = [entry("test_training_epoch[a]", 0.0105, 0.0095, 0.012, backend="numpy"),  # ranges overlap: noise
     entry("test_training_epoch[b]", 0.005, 0.0049, 0.0051, backend="torch"),  # twice as fast, clear of noise
     entry("test_tiny_problem_overhead[xor]", 1.0, 0.99, 1.01, n_samples=4, samples_per_round=8000),
     entry("test_training_epoch[new]", 0.01, 0.01, 0.01, backend="jax")]


def test_compare_runs_matches_by_test_and_parameters_in_samples_per_second(tmp_path):
    a = compare.load_run(str(saved(tmp_path, "0001", "before", A)))
    b = compare.load_run(str(saved(tmp_path, "0002", "after", B)))
    result = compare.compare_runs(a, b)
    rows = {r["name"]: r for r in result["rows"]}
    assert list(rows) == ["test_training_epoch[a]", "test_training_epoch[b]", "test_tiny_problem_overhead[xor]"]
    a_row = rows["test_training_epoch[a]"]
    assert a_row["a"]["samples_per_second"] == pytest.approx(1000 / 0.010)
    assert a_row["a"]["fastest"] == pytest.approx(1000 / 0.009) and a_row["a"]["slowest"] == pytest.approx(1000 / 0.011)
    assert a_row["a"]["noise"] == pytest.approx(0.1) and a_row["ratio"] == pytest.approx(0.010 / 0.0105)
    assert a_row["verdict"] == "within noise"
    b_row = rows["test_training_epoch[b]"]
    assert b_row["ratio"] == pytest.approx(2.0) and b_row["verdict"] == "faster"
    tiny = rows["test_tiny_problem_overhead[xor]"]  # a round is 2,000 epochs of 4 rows
    assert tiny["a"]["samples_per_second"] == pytest.approx(8000 / 0.5) and tiny["verdict"] == "slower"
    assert result["only_a"] == ["test_training_epoch[gone]"] and result["only_b"] == ["test_training_epoch[new]"]
    text = compare.format_comparison(result, a, b).splitlines()
    assert text[0].startswith("A: ") and "0001_before.json" in text[0] and "commit 0123456789" in text[0]
    assert "Test CPU" in text[0] and "BLAS X" in text[0]
    assert text[2].split()[:3] == ["benchmark", "A", "samples/s"]
    assert text[3].split()[1:] == ["1e+05", "±10%", "9.524e+04", "±12%", "0.95x", "within", "noise"]
    assert text[4].endswith("2.00x  faster") and text[5].endswith("slower")
    assert "1 faster, 1 slower, 1 within noise" in text[6]
    assert text[7] == "only in A (or without timings): test_training_epoch[gone]"


def test_a_run_is_named_by_file_number_or_saved_name(tmp_path, monkeypatch):
    first = saved(tmp_path, "0001", "main", A)
    saved(tmp_path, "0002", "change", B)
    newest_main = saved(tmp_path, "0003", "main", B, machine="Other-machine")
    storage = str(tmp_path / ".benchmarks")
    assert compare.find_run(str(first), storage) == first
    assert compare.find_run("0001", storage) == first
    assert compare.find_run("main", storage) == newest_main  # the newest run saved under that name
    assert compare.find_run("chan", storage).name == "0002_change.json"  # part of one name
    with pytest.raises(XpnetValueError, match="ambiguous"):
        compare.find_run("00", storage)
    with pytest.raises(XpnetValueError, match="no run 'zzz' in .*saved runs: 0001_main, 0002_change, 0003_main"):
        compare.find_run("zzz", storage)
    with pytest.raises(XpnetValueError, match="holds no saved runs"):
        compare.find_run("main", str(tmp_path / "nothing"))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(XpnetValueError, match="not a pytest-benchmark run"):
        compare.load_run(str(tmp_path / "bad.json"))
    assert compare.storage_path("file://./runs") == "./runs" and compare.storage_path("runs") == "runs"


def test_cli_bench_compare_prints_the_table_or_one_json_line(tmp_path, monkeypatch, capsys):
    saved(tmp_path, "0001", "before", A)
    saved(tmp_path, "0002", "after", B)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench", "compare", "before", "after"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("A: ") and "2.00x  faster" in out
    assert cli.main(["bench", "compare", "0001", "0002", "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and json.loads(out)["rows"][1]["verdict"] == "faster"
    assert cli.main(["bench", "compare", "before", "missing"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xpnet: error: no run 'missing'") and err.count("\n") == 1
    assert cli.main(["bench", "compare", "before", "after", "--storage", str(tmp_path / "none")]) == 2
    assert "holds no saved runs" in capsys.readouterr().err
