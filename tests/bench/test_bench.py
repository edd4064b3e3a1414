"""xpnet.bench and `xpnet bench`: counts, synced timing, the peers, the CLI and the suite.

No test here asserts on a timing or a ratio of timings (a busy machine must pass): timed
numbers are checked for presence, finiteness and sign, and the speed targets live in bench/.
"""

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import available_backend

import xpnet
from xpnet import bench, cli, memory
from xpnet.backend import Backend
from xpnet.bench import peers, probes, runners, timing
from xpnet.engine import plan

ROOT = Path(__file__).resolve().parents[2]
TINY_CEILINGS = {"matmul_size": 64, "copy_elements": 4096, "activation_elements": 4096}
RESULT_KEYS = ("backend", "dtype", "n_samples", "hidden", "input_dim", "classes", "seconds_per_epoch",
               "samples_per_second", "epochs_per_second", "gflops", "percent_of_matmul_peak", "flops",
               "matmul_flops", "bytes_moved", "gbytes_per_second", "time_over_bandwidth_floor",
               "time_over_activation_floor", "tanh_floor_seconds", "x_over_tanh_floor")
POSITIVE_KEYS = RESULT_KEYS[6:]
KERNEL_KEYS = ("kernels", "kernel_choice", "compile_seconds", "compiled")


# -- counting ------------------------------------------------------------------------------
def test_step_cost_by_hand_tutorial_shape():
    # 2 -> 3 tanh -> 2 softmax, N = 5, L2 on.
    # matmuls: X@W1 2*5*2*3=60, H@W2 2*5*3*2=60, H.T@dZ 60, dZ@W2.T 60, X.T@dZ1 60; no dX.
    # elementwise: +b1 15, tanh 15, +b2 10, softmax 5*10, Y-T 10, /N 10, db2 10, 1-Y*Y and *dY 3*15,
    # db1 15, update 4*(6+6) + 2*(3+2)  ->  15+15+10+50+10+10+10+45+15+58 = 238
    cost = bench.step_cost((2, 3, 2), 5)
    assert cost.matmul_flops == 300
    assert cost.elementwise_flops == 238
    assert cost.transcendentals == 15 + 10  # tanh on (5, 3), exp on (5, 2)
    assert cost.flops == 538
    no_l2 = bench.step_cost((2, 3, 2), 5, l2=0.0)
    assert cost.elementwise_flops - no_l2.elementwise_flops == 2 * (6 + 6)  # l2*W and g + l2*W
    assert bench.step_cost((2, 3, 2), 5, itemsize=8).bytes_moved == 2 * cost.bytes_moved


def test_step_cost_matmuls_mnist_shape_and_deep_net():
    N, d, h, c = 1000, 784, 256, 10
    assert bench.step_cost((d, h, c), N).matmul_flops == 4 * N * d * h + 6 * N * h * c
    # two hidden layers: dX is computed for layers 2 and 3, never for the input layer
    sizes = (2, 3, 4, 2)
    per_layer = [2 * 7 * a * o for a, o in zip(sizes[:-1], sizes[1:])]  # N = 7
    expected = sum(per_layer) * 2 + sum(per_layer[1:])
    assert bench.step_cost(sizes, 7).matmul_flops == expected


class Counting(np.ndarray):
    """An ndarray that tallies every ufunc it goes through, to count the real step's work."""

    tally = None

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        arrays = [np.asarray(x).view(np.ndarray) if isinstance(x, Counting) else x for x in inputs]
        out = getattr(ufunc, method)(*arrays, **kwargs)
        sizes = [x.size for x in arrays if isinstance(x, np.ndarray)]
        t = Counting.tally
        if ufunc is np.matmul:
            (m, k), (_, n) = arrays[0].shape, arrays[1].shape
            t["matmul"] += 2 * m * k * n
        elif method == "reduce":
            t["elementwise"] += arrays[0].size
        else:
            t["elementwise"] += out.size
            t["transcendental"] += out.size if ufunc in (np.tanh, np.exp) else 0
        t["elements"] += sum(sizes) + np.size(out)
        return out.view(Counting) if isinstance(out, np.ndarray) else out


def test_step_cost_equals_the_work_the_real_step_does():
    """The count is the step as xpnet.mlp writes it: the trainer's epoch with the plan's pass on
    the generic primitives (NumPy's fast paths compute the same gradients with their work
    arranged differently, see tests/core/test_ops.py)."""
    case = bench.Case("numpy", "float64", 9, 5, input_dim=3, classes=4)
    runner = bench.EpochRunner(case)
    generic = xpnet.core.ops.Ops(runner.xp)
    runner.run_.passes[case.n_samples] = plan.Pass("plain", generic, runner.spec, "float64")
    runner.feed(runner.X.view(Counting), runner.T.view(Counting))
    runner.W0 = [w.view(Counting) for w in runner.W0]
    runner.b0 = [b.view(Counting) for b in runner.b0]
    runner.reset()
    Counting.tally = dict.fromkeys(("matmul", "elementwise", "transcendental", "elements"), 0)
    runner.step()
    cost = bench.step_cost(case.layer_sizes, case.n_samples, itemsize=8, l2=case.l2)
    assert Counting.tally["matmul"] == cost.matmul_flops
    assert Counting.tally["elementwise"] == cost.elementwise_flops
    assert Counting.tally["transcendental"] == cost.transcendentals
    assert Counting.tally["elements"] * 8 == cost.bytes_moved


def test_units_against_ceilings():
    case = bench.Case("numpy", "float32", 1000, 64)
    cost = bench.step_cost(case.layer_sizes, 1000)
    ceilings = {"matmul_gflops": cost.flops / 1e9 / 0.5, "copy_gbytes_per_second": cost.bytes_moved / 1e9 / 0.25,
                "activation_elements_per_second": cost.transcendentals / 0.1}
    u = bench.units(case, 2.0, ceilings)
    assert u["samples_per_second"] == 500 and u["epochs_per_second"] == 0.5
    assert u["percent_of_matmul_peak"] == pytest.approx(25.0)
    assert u["time_over_bandwidth_floor"] == pytest.approx(8.0)
    assert u["time_over_activation_floor"] == pytest.approx(20.0)


# -- the step and its timing ---------------------------------------------------------------------
def test_epoch_runner_is_the_step_fit_takes(backend, dtype):
    case = bench.Case(backend.name, dtype, 40, 6, input_dim=3, classes=3)
    runner = bench.EpochRunner(case, backend)
    for _ in range(3):
        runner.step()
    model = xpnet.MLP(case.layer_sizes, activation="tanh", dtype=dtype, backend=backend, seed=0)
    xpnet.fit(model, xpnet.to_numpy(runner.X), runner.labels, epochs=3, learning_rate=case.learning_rate,
              l2=case.l2, reduction="mean")
    for mine, theirs in zip(runner.W + runner.b, model.W + model.b):
        np.testing.assert_array_equal(xpnet.to_numpy(mine), xpnet.to_numpy(theirs))
    runner.reset()
    np.testing.assert_array_equal(xpnet.to_numpy(runner.W[0]), xpnet.to_numpy(runner.W0[0]))


@dataclasses.dataclass(frozen=True)
class RecordingBackend(Backend):
    """NumPy, but every sync() is written to a log shared with a fake clock and the step."""

    log: list = dataclasses.field(default_factory=list, compare=False, repr=False)

    def sync(self):
        self.log.append("sync")


def recording():
    np_backend = xpnet.get_backend("numpy")
    fake = RecordingBackend(np_backend.name, np_backend.xp, np_backend.device, "test", np_backend._module)
    ticks = iter(range(1, 10**6))

    def clock():
        fake.log.append("clock")
        return float(next(ticks))

    return fake, clock


def test_timed_region_ends_with_sync():
    fake, clock = recording()
    runner = bench.EpochRunner(bench.Case("numpy", "float32", 16, 4), fake)
    step = runner.step
    runner.step = lambda: (fake.log.append("step"), step())
    fake.log.clear()
    times = bench.time_interleaved([runner], repeat=3, epochs=2, warmup=1, clock=clock)
    sample = ["clock", "step", "step", "sync", "clock"]
    assert fake.log == ["step", "step", "sync"] + sample * 3
    assert times == [[0.5, 0.5, 0.5]]  # one tick per sample over 2 epochs
    fake.log.clear()
    runner.timed()  # what the pytest-benchmark suite times
    assert fake.log == ["step", "sync"]


def test_ceilings_are_timed_with_sync():
    fake, clock = recording()
    fake.log.clear()
    c = bench.measure_ceilings(fake, "float32", repeat=2, clock=clock, **TINY_CEILINGS)
    assert all(c[k] > 0 for k in ("matmul_gflops", "copy_gbytes_per_second", "activation_elements_per_second"))
    closing = [i for i, e in enumerate(fake.log) if e == "clock"][1::2]
    assert len(closing) == 3 * 2 and all(fake.log[i - 1] == "sync" for i in closing)


def test_matmul_probe_is_a_synced_runner_for_interleaving():
    fake, clock = recording()
    probe = bench.MatmulProbe(fake, "float32", 32)
    fake.log.clear()
    times = bench.time_interleaved([probe], repeat=2, warmup=1, clock=clock)
    assert fake.log == ["sync", "clock", "sync", "clock", "clock", "sync", "clock"]
    assert times == [[1.0, 1.0]] and probe.gflops(0.5) == pytest.approx(2 * 32**3 / 0.5 / 1e9)


def test_torch_baseline_takes_the_same_step():
    available_backend("torch")
    runner = bench.EpochRunner(bench.Case("numpy", "float64", 50, 7, input_dim=3, classes=3))
    baseline = bench.TorchBaseline(runner)
    fake, _ = recording()
    baseline.backend = fake
    for _ in range(3):
        runner.step()
    baseline.run(3)
    assert fake.log == ["sync"]
    for mine, theirs in zip(runner.W, baseline.weights()):
        np.testing.assert_allclose(xpnet.to_numpy(mine), theirs, rtol=1e-10, atol=1e-13)
    baseline.reset()
    np.testing.assert_allclose(baseline.weights()[0], xpnet.to_numpy(runner.W0[0]), rtol=0, atol=0)


def test_tutorial_baseline_takes_the_same_step():
    """WildML's own float64 step (with the mean gradient) lands where xpnet's step does."""
    runner = bench.EpochRunner(bench.Case("numpy", "float64", 60, 5, input_dim=3, classes=3))
    baseline = bench.TutorialBaseline(runner)
    for _ in range(3):
        runner.step()
    baseline.run(3)
    for mine, theirs in zip(runner.W, baseline.weights()):
        np.testing.assert_allclose(xpnet.to_numpy(mine), theirs, rtol=1e-12, atol=1e-15)
    baseline.reset()
    np.testing.assert_array_equal(baseline.weights()[0], xpnet.to_numpy(runner.W0[0]))
    assert baseline.weights()[0].dtype == np.float64  # float64 whatever the case dtype:
    assert bench.TutorialBaseline(bench.EpochRunner(bench.Case("numpy", "float32", 8, 2))).X.dtype == np.float64
    with pytest.raises(xpnet.XpnetValueError, match="tanh"):
        bench.TutorialBaseline(bench.EpochRunner(bench.Case("numpy", "float32", 8, 2, activation="relu")))


def test_compare_names_accept_lists_and_comma_separated_text():
    assert bench.compare_names(None) == ()
    assert bench.compare_names("torch") == ("torch",)
    assert bench.compare_names("torch, tutorial") == ("torch", "tutorial")
    assert bench.compare_names(["tutorial", "torch", "tutorial"]) == ("tutorial", "torch")
    assert bench.compare_names("jax,torch-compile") == ("jax", "torch-compile")
    assert set(bench.COMPARE) == {"torch", "tutorial", "jax", "torch-compile"} == set(bench.BASELINES)
    assert [bench.compare_key(n) for n in bench.COMPARE] == ["torch", "tutorial", "jax", "torch_compile"]
    with pytest.raises(xpnet.XpnetValueError, match="compare"):
        bench.compare_names("tensorflow")


def test_the_memory_estimate_is_memory_estimate_bytes_plus_the_peers():
    case = bench.Case("numpy", "float32", 5000, 64)
    numpy = xpnet.get_backend("numpy")
    rows = runners.rows_alive(case, numpy)
    assert 0 < rows <= case.n_samples
    alone = memory.estimate_bytes(case.layer_sizes, case.n_samples, 4, rows)
    assert bench.estimate_memory(case) == alone
    assert bench.estimate_memory(case, compare="torch,tutorial") == (
        alone + bench.baseline_memory(case, "torch") + bench.baseline_memory(case, "tutorial"))
    assert bench.baseline_memory(case, "jax") == bench.baseline_memory(case, "torch-compile") > 0


def test_too_big_uses_the_backends_free_memory_and_the_one_headroom(monkeypatch):
    case = bench.Case("numpy", "float32", 5000, 64)
    need = bench.estimate_memory(case)
    numpy = xpnet.get_backend("numpy")
    monkeypatch.setattr(Backend, "available_memory", lambda self: int(need / memory.HEADROOM) + 8)
    assert bench.too_big(case, numpy) is None
    reason = bench.too_big(case, numpy, extra_bytes=1024)
    assert f"{memory.HEADROOM:.0%}" in reason and "GiB free on numpy on cpu" in reason
    monkeypatch.setattr(Backend, "available_memory", lambda self: None)  # unknown: never refused
    assert bench.too_big(case, numpy, extra_bytes=10**15) is None


def test_a_baseline_that_cannot_fit_is_left_out_with_the_reason(monkeypatch):
    case = bench.Case("numpy", "float32", 64, 4)
    free = bench.estimate_memory(case) * 2  # room for the case, not for the tutorial's float64 beside it
    monkeypatch.setattr(Backend, "available_memory", lambda self: free)
    monkeypatch.setattr(runners, "baseline_memory", lambda case, name: 10 * free)
    row = bench.measure_case(case, compare="tutorial", repeat=1, ceilings=None)
    assert "tutorial_seconds_per_epoch" not in row and "GiB free" in row["tutorial_skipped"]
    assert row["seconds_per_epoch"] > 0  # xpnet's case itself still ran
    relu = bench.measure_case(bench.Case("numpy", "float32", 64, 4, activation="relu"), compare="tutorial", repeat=1)
    assert "tanh" in relu["tutorial_skipped"]


class Refuses:
    """A peer whose library fails while it starts (as a compiler without its toolchain does)."""

    def __init__(self, like):
        raise RuntimeError("no C++ compiler found\nlong traceback text")


class NotInstalled:
    def __init__(self, like):
        raise xpnet.BackendUnavailableError("--compare jax needs JAX, which is not installed: pip install jax")


def test_a_peer_that_is_missing_or_fails_to_start_is_skipped_with_the_reason(monkeypatch):
    monkeypatch.setattr(peers, "baseline_backend", lambda name, backend: backend)  # with or without torch here
    monkeypatch.setitem(bench.BASELINES, "torch-compile", Refuses)
    monkeypatch.setitem(bench.BASELINES, "jax", NotInstalled)
    row = bench.measure_case(bench.Case("numpy", "float32", 64, 4), compare="jax,torch-compile,tutorial", repeat=1)
    assert row["torch_compile_skipped"] == "torch-compile failed to start: RuntimeError: no C++ compiler found"
    assert row["jax_skipped"].endswith("pip install jax")
    assert not any(k.startswith(("jax_seconds", "torch_compile_seconds", "xpnet_over_jax")) for k in row)
    assert row["xpnet_over_tutorial"] > 0  # the others still ran
    text = bench.format_table({"results": [row], "skipped": []})
    assert "torch-compile not run beside n_samples=64 hidden=4: torch-compile failed to start" in text
    assert "jax not run beside" in text and "tutorial ms" in text
    line = bench.format_progress("result", row)
    assert "; jax not run: --compare jax needs JAX" in line and "; tutorial " in line


def test_jax_baseline_takes_the_same_step():
    """jax.jit of the whole step lands where xpnet's step does (float64: JAX's 64-bit mode)."""
    pytest.importorskip("jax")
    runner = bench.EpochRunner(bench.Case("numpy", "float64", 50, 7, input_dim=3, classes=3))
    baseline = bench.JaxBaseline(runner)
    assert baseline.first_call_seconds > 0 and baseline.device
    for _ in range(3):
        runner.step()
    baseline.run(3)
    for mine, theirs in zip(runner.W, baseline.weights()):
        assert theirs.dtype == np.float64
        np.testing.assert_allclose(xpnet.to_numpy(mine), theirs, rtol=1e-10, atol=1e-13)
    baseline.reset()
    np.testing.assert_array_equal(baseline.weights()[0], xpnet.to_numpy(runner.W0[0]))
    relu = bench.EpochRunner(bench.Case("numpy", "float32", 40, 5, activation="relu"))
    peer = bench.JaxBaseline(relu)
    relu.run(2)
    peer.run(2)
    assert peer.weights()[0].dtype == np.float32
    np.testing.assert_allclose(xpnet.to_numpy(relu.W[0]), peer.weights()[0], rtol=1e-5, atol=1e-6)


def test_torch_compile_baseline_takes_the_same_step():
    """torch.compile of the torch step (compiled while it is built, before any timed sample)."""
    available_backend("torch")
    runner = bench.EpochRunner(bench.Case("numpy", "float64", 50, 7, input_dim=3, classes=3))
    baseline, reason = bench.start_peer("torch-compile", runner)
    if reason and "failed to start" in reason:
        pytest.skip(f"torch.compile cannot compile here: {reason}")
    assert reason is None and baseline.first_call_seconds > 0
    np.testing.assert_array_equal(baseline.weights()[0], xpnet.to_numpy(runner.W0[0]))  # the compile step was undone
    for _ in range(3):
        runner.step()
    baseline.run(3)
    for mine, theirs in zip(runner.W, baseline.weights()):
        np.testing.assert_allclose(xpnet.to_numpy(mine), theirs, rtol=1e-10, atol=1e-13)


def test_tanh_floor_is_the_backends_tanh_in_place_on_every_row_and_synced():
    fake, clock = recording()
    floor = bench.TanhFloor(fake, "float32", 37, 5)
    start = floor.A.copy()
    with xpnet.limit_threads(2):  # rows cut into one block per thread: every row still done once
        floor.run(1)
    np.testing.assert_array_equal(floor.A, np.tanh(start))
    fake.log.clear()
    times = bench.time_interleaved([floor], repeat=2, warmup=1, clock=clock)
    assert fake.log == ["sync", "clock", "sync", "clock", "clock", "sync", "clock"]
    assert times == [[1.0, 1.0]] and floor.elements_per_second(0.5) == 37 * 5 / 0.5
    case = bench.Case("numpy", "float64", 37, 5)
    assert bench.TanhFloor.bytes_needed(case) == 37 * 5 * 8 and floor.floor_seconds(0.5) == 0.5


def test_a_tanh_floor_over_its_byte_cap_times_the_first_rows_and_scales():
    floor = bench.TanhFloor("numpy", "float32", 1000, 8, max_bytes=100 * 8 * 4 + 5)  # room for 100 rows
    assert floor.measured_rows == 100 and floor.A.shape == (100, 8)
    start = floor.A.copy()
    floor.run(1)
    np.testing.assert_array_equal(floor.A, np.tanh(start))
    assert floor.floor_seconds(0.25) == pytest.approx(2.5) and floor.elements_per_second(0.5) == 1600
    big = bench.Case("numpy", "float32", 10**9, 1024)
    assert bench.TanhFloor.bytes_needed(big) == probes.FLOOR_BYTES
    row = bench.measure_case(bench.Case("numpy", "float32", 1000, 8), repeat=1)
    assert row["tanh_floor_measured_elements"] == row["tanh_floor_elements"] == 8000


def test_tanh_floor_on_another_backend_is_its_namespaces_tanh():
    strict = available_backend("array_api_strict")
    floor = bench.TanhFloor(strict, "float32", 6, 4)
    start = xpnet.to_numpy(floor.A).copy()
    floor.run(2)
    np.testing.assert_allclose(xpnet.to_numpy(floor.A), np.tanh(np.tanh(start)), rtol=1e-6)


def test_every_case_row_has_its_tanh_floor_or_the_reason(monkeypatch):
    case = bench.Case("numpy", "float32", 300, 8)
    row = bench.measure_case(case, repeat=2)
    for key in ("tanh_floor_seconds", "x_over_tanh_floor"):
        assert math.isfinite(row[key]) and row[key] > 0
    assert row["x_over_tanh_floor"] == pytest.approx(row["seconds_per_epoch"] / row["tanh_floor_seconds"])
    assert row["tanh_floor_elements"] == 300 * 8
    assert "tanh_floor_seconds" not in bench.measure_case(case, repeat=1, tanh_floor=False)
    free = bench.estimate_memory(case) + 100  # room for the case, not for its N x H floor array
    monkeypatch.setattr(Backend, "available_memory", lambda self: int(free / memory.HEADROOM))
    row = bench.measure_case(case, repeat=1)
    assert "tanh_floor_seconds" not in row and "GiB free" in row["tanh_floor_skipped"]
    assert "tanh floor not run beside n_samples=300 hidden=8" in bench.format_table({"results": [row], "skipped": []})


def test_peak_memory_sees_an_allocation_inside_the_block():
    size = 64 * 2**20
    report = bench.peak_memory(lambda: np.ones(size // 8).sum())
    if report is None:
        pytest.skip("peak resident memory is measured on Linux only")
    assert report["peak_rss_bytes"] - report["rss_before_bytes"] >= 0.9 * size


# -- run(), memory, plot ---------------------------------------------------------------------
def test_run_skips_cases_that_cannot_fit_with_the_estimate():
    seen = []
    report = bench.run(["numpy"], ["float32"], n_samples=[32, 10**10], hidden=[4], repeat=1,
                       ceiling_sizes=TINY_CEILINGS, progress=lambda kind, item: seen.append(kind))
    assert [(r["n_samples"], r["hidden"]) for r in report["results"]] == [(32, 4)]
    (skipped,) = report["skipped"]
    # the data alone: 10^10 rows x (2 inputs + 2 one-hot targets) float32
    assert skipped["n_samples"] == 10**10 and skipped["estimated_memory_bytes"] >= 10**10 * 4 * 4
    assert "needs about" in skipped["reason"] and "GiB" in skipped["reason"]
    assert seen == ["blas", "ceilings", "result", "skipped"]


def test_bench_figure_writes_a_figure_without_pyplot(tmp_path):
    pytest.importorskip("matplotlib")
    from xpnet import plot

    report = bench.run(["numpy"], ["float32"], n_samples=[32], hidden=[4, 8], repeat=1, ceiling_sizes=TINY_CEILINGS,
                       compare="tutorial")
    path = tmp_path / "throughput.png"
    code = ("import sys, json; from xpnet import plot; "
            f"plot.bench_figure(json.loads(sys.stdin.read()), {str(path)!r}); "
            "print('matplotlib.pyplot' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(report), capture_output=True, text=True,
                          check=True, cwd=ROOT)
    assert proc.stdout.strip() == "False"  # drawn on a Figure: pyplot (and its global backend) untouched
    assert path.read_bytes()[:4] == b"\x89PNG"
    plot.bench_figure(report, str(tmp_path / "t.svg"))  # the file type follows the extension
    assert (tmp_path / "t.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(xpnet.XpnetValueError, match="every case was skipped"):
        plot.bench_figure({"results": [], "skipped": []}, str(path))


# -- the text the CLI prints -------------------------------------------------------------------
def fake_row(**extra):
    row = {"backend": "numpy", "dtype": "float32", "n_samples": 1000, "hidden": 64, "seconds_per_epoch": 0.002,
           "samples_per_second": 5e5, "gflops": 1.5, "percent_of_matmul_peak": 3.0, "gbytes_per_second": 2.0,
           "time_over_bandwidth_floor": 4.0, "tanh_floor_seconds": 0.0005, "x_over_tanh_floor": 4.0,
           "kernels": "numpy-gram"}
    return {**row, **extra}


def test_format_table_has_a_row_per_case_and_a_column_pair_per_peer():
    peers = {"torch_seconds_per_epoch": 0.02, "xpnet_over_torch": 0.1,
             "torch_compile_seconds_per_epoch": 0.01, "xpnet_over_torch_compile": 0.2, "peak_rss_bytes": 300 * 2**20}
    report = {"results": [fake_row(**peers), fake_row(n_samples=2000, jax_skipped="not installed")],
              "skipped": [{"backend": "numpy", "dtype": "float32", "n_samples": 10**10, "hidden": 64,
                           "reason": "too big"}]}
    lines = bench.format_table(report).splitlines()
    with_blas = bench.format_table({**report, "blas": {"describe": "OpenBLAS 9, 2 threads", "warning": "W=1 narrows"}})
    assert with_blas.splitlines()[:2] == ["BLAS: OpenBLAS 9, 2 threads", "warning: W=1 narrows"]
    assert with_blas.splitlines()[2:] == lines
    head = lines[0].split()
    for column in ("kernels", "ms/epoch", "samples/s", "%peak", "/tanh", "torch", "torch-compile", "jax"):
        assert column in head, column
    assert head.index("torch") < head.index("jax") < head.index("torch-compile")  # bench.COMPARE's order
    assert lines[0].endswith("peak RSS MiB") and "tutorial" not in lines[0]
    first, second = lines[1].split(), lines[2].split()
    assert first[:5] == ["numpy", "float32", "1000", "64", "numpy-gram"] and first[-1] == "300"
    assert second[2] == "2000" and "not" in second and second[-1] == "-"
    assert lines[3] == "jax not run beside n_samples=2000 hidden=64: not installed"
    assert lines[4].startswith("skipped  numpy float32 n_samples=10000000000") and lines[4].endswith("too big")
    assert not bench.format_table(report).endswith("\n")


def test_format_progress_words_each_kind():
    ceilings = {"backend": "numpy", "dtype": "float32", "matmul_size": 64, "matmul_gflops": 1.0,
                "copy_gbytes_per_second": 2.0, "activation": "tanh", "activation_elements_per_second": 3e8}
    assert bench.format_progress("ceilings", ceilings).startswith("numpy float32 ceilings: matmul 64^3")
    skipped = {"backend": "numpy", "dtype": "float32", "n_samples": 5, "hidden": 2, "reason": "too big"}
    assert bench.format_progress("skipped", skipped) == "numpy float32 n_samples=5 hidden=2: skipped, too big"
    line = bench.format_progress("result", fake_row(jax_seconds_per_epoch=0.01, xpnet_over_jax=0.2))
    assert line.startswith("numpy float32 n_samples=1000 hidden=64 [numpy-gram]: 2.000 ms/epoch")
    assert "tanh floor 0.500 ms" in line and "; jax 10.000 ms/epoch (5x faster)" in line
    assert "\n" not in line


# -- the CLI --------------------------------------------------------------------------------
BLAS_KEYS = ("library", "version", "threads", "core_type", "variable", "kernel_isa", "cpu_isa", "warning", "describe")


def check_results(report, n_expected):
    assert set(report) == {"machine", "blas", "ceilings", "results", "skipped"}
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["blas"] is not None
    assert set(BLAS_KEYS) <= set(report["blas"]) and report["blas"] == report["machine"]["numpy_blas"]
    assert report["blas"]["threads"] >= 1 and report["blas"]["library"]
    assert len(report["results"]) == n_expected
    for row in report["results"]:
        assert set(RESULT_KEYS) <= set(row) and set(KERNEL_KEYS) <= set(row)
        assert row["compile_seconds"] >= 0 and isinstance(row["compiled"], bool)
        for key in POSITIVE_KEYS:
            assert isinstance(row[key], (int, float)) and math.isfinite(row[key]) and row[key] > 0, (key, row[key])
    for c in report["ceilings"]:
        assert c["matmul_gflops"] > 0 and c["copy_gbytes_per_second"] > 0 and c["activation_elements_per_second"] > 0


@pytest.fixture
def small_ceilings(monkeypatch):
    """Keep the CLI tests fast: measure the ceilings on small arrays (the numbers stay positive)."""
    monkeypatch.setattr(timing, "default_ceiling_sizes", lambda backend: dict(TINY_CEILINGS))


def test_cli_bench_json_tiny_grid(small_ceilings, capsys):
    assert cli.main(["bench", "--backend", "numpy", "--dtype", "float32,float64", "--n-samples", "64,1e2",
                     "--hidden", "4,8", "--input-dim", "3", "--classes", "3", "--repeat", "2", "--json"]) == 0
    proc = capsys.readouterr()
    lines = proc.out.splitlines()
    assert len(lines) == 1 and proc.out.endswith("\n")
    report = json.loads(lines[0])
    check_results(report, 8)
    rows = report["results"]
    assert {(r["dtype"], r["n_samples"], r["hidden"]) for r in rows} == {
        (d, n, h) for d in ("float32", "float64") for n in (64, 100) for h in (4, 8)}
    assert all(r["input_dim"] == 3 and r["classes"] == 3 for r in rows)
    assert proc.err.count("ms/epoch") == 8 and proc.err.count("ceilings:") == 2
    assert {r["kernels"] for r in rows} == {"plain"} and {r["kernel_choice"] for r in rows} == {"auto"}


def test_cli_bench_kernels_flag_chooses_and_reports_the_kernels(small_ceilings, capsys):
    """--kernels numpy: the NumPy kernel for the tutorials' net, the generic pass for a deeper one;
    every row says what ran, and no JIT kernel means no compile time."""
    assert cli.main(["bench", "--backend", "numpy", "--n-samples", "300", "--hidden", "4", "--repeat", "1",
                     "--kernels", "numpy", "--json"]) == 0
    proc = capsys.readouterr()
    (row,) = json.loads(proc.out)["results"]
    assert row["kernels"] == "numpy-gram" and row["kernel_choice"] == "numpy"
    assert row["compile_seconds"] == 0 and row["compiled"] is False
    assert "[numpy-gram]" in proc.err and "compiling" not in proc.err
    assert cli.main(["bench", "--n-samples", "300", "--hidden", "4", "--kernels", "fast"]) == 2
    assert "--kernels: invalid choice: 'fast'" in capsys.readouterr().err


def test_a_jit_kernel_compiles_before_the_timed_epochs(monkeypatch):
    """The compile (or cache load) is timed apart; the progress callback hears of a compile first."""
    from xpnet.engine.kernels import numba_support

    if not numba_support.available():
        pytest.skip(numba_support.unavailable_reason())
    heard = []
    row = bench.measure_case(bench.Case("numpy", "float64", 300, 5), repeat=1, kernels="jit",
                             progress=lambda kind, item: heard.append((kind, item["kernels"])))
    assert row["kernels"] == "numba-fused" and row["kernel_choice"] == "jit"
    assert row["compile_seconds"] > 0 and heard in ([], [("compiling", "numba-fused")])
    assert row["compiled"] is bool(heard)
    line = bench.format_progress("result", row)
    assert "[numba-fused]" in line and (("compiled in" in line) is row["compiled"])
    assert bench.format_progress("compiling", row) == ("numpy float64 n_samples=300 hidden=5: compiling the JIT "
                                                       "kernels (first run only)...")


def test_cli_bench_compare_torch_and_the_tutorial(tmp_path, capsys, small_ceilings):
    available_backend("torch")
    pytest.importorskip("matplotlib")
    plot = tmp_path / "bench.svg"
    assert cli.main(["bench", "--backend", "numpy", "--n-samples", "50", "--hidden", "4", "--repeat", "2",
                     "--compare", "torch,tutorial", "--memory", "--plot", str(plot), "--threads", "1"]) == 0
    out, err = capsys.readouterr()
    blas, header, row = out.splitlines()[:3]
    assert blas.startswith("BLAS: ") and err.startswith(blas + "\n")
    assert "torch ms" in header and "tutorial ms" in header and header.endswith("peak RSS MiB")
    values = row.split()
    torch_x, tutorial_x, rss = float(values[-4]), float(values[-2]), float(values[-1])
    # "x faster" is a ratio of timings printed to 0.1: only its presence is certain on a busy machine
    assert math.isfinite(torch_x) and math.isfinite(tutorial_x) and rss > 10
    assert "x faster)" in err and "; tutorial " in err
    assert plot.read_text().lstrip().startswith("<?xml")


def test_cli_bench_json_has_the_baselines_keys(capsys, small_ceilings):
    assert cli.main(["bench", "--backend", "numpy", "--n-samples", "40", "--hidden", "3", "--repeat", "1",
                     "--compare", "tutorial", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    for key in ("tutorial_seconds_per_epoch", "tutorial_seconds_min", "tutorial_samples_per_second",
                "xpnet_over_tutorial"):
        assert row[key] > 0
    assert row["xpnet_over_tutorial"] == pytest.approx(row["seconds_per_epoch"] / row["tutorial_seconds_per_epoch"])


@pytest.mark.parametrize("args, message", [
    (["--classes", "1"], "classes=1 must be at least 2"),
    (["--dtype", "float16"], "dtype 'float16' is not supported"),
    (["--hidden", "0"], "--hidden"),
    (["--n-samples", "1.5e2x"], "--n-samples"),
    (["--compare", "tensorflow"], "unknown baseline 'tensorflow'"),
    (["--backend", "no_such_lib"], "no_such_lib"),
])
def test_cli_bench_errors_are_one_line(capsys, small_ceilings, args, message):
    assert cli.main(["bench", "--n-samples", "8", "--hidden", "2", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xpnet: error:") and message in err and err.count("\n") == 1


def test_cli_bench_help_names_every_flag(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    text = capsys.readouterr().out
    for flag in ("--backend", "--dtype", "--n-samples", "--hidden", "--input-dim", "--classes", "--epochs",
                 "--repeat", "--json", "--plot", "--compare", "--memory", "--threads", "--kernels", "--source",
                 "--data-dir", "--sweep", "--budget", "compare"):
        assert flag in text
