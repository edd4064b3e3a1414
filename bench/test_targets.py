"""Issue 5's speed targets, each measured side by side in one run, on NumPy.

    pytest bench -k "targets or tiny"                           # report (a table at the end)
    pytest bench -k "targets or tiny" --bench-targets=assert    # fail on a missed target

* **tutorial shape** (2 -> 1024 tanh -> 2 softmax, float32, N = 100,000): an epoch at least
  10x faster than PyTorch eager float32 and 15x faster than the tutorial's own code in
  float64 (:class:`xpnet.bench.TorchBaseline`, :class:`xpnet.bench.TutorialBaseline`,
  samples interleaved with xpnet's);
* **matrix-heavy shape** (784 -> 1024 -> 10, float32, N = 60,000): at least 80% of the
  matmul peak measured in the same run, before and after the epochs (the better of the
  two), on the FLOPs the step performs (:func:`xpnet.bench.step_cost`);
* **memory** (N = 1,000,000, H = 4096, float32): an epoch trains, its peak resident memory
  bounded by the chunks (one (N, H) float32 activation alone would be 15.3 GiB);
* **tiny problems**: ``bench/test_tiny.py`` (at most 1.5x the tutorials' own loops).

With ``--bench-grid=tiny`` the same code runs at toy sizes (a smoke test): the numbers are
reported, no target is judged.
"""

import math

import pytest

import xpnet
from xpnet import bench

# grid: (tutorial shape N, H), (matrix-heavy N, H), (memory N, H), timed samples
SIZES = {"tiny": ((2000, 64), (300, 64), (20_000, 256), 2),
         "default": ((100_000, 1024), (60_000, 1024), (1_000_000, 4096), 5)}
MEMORY_GOAL = 2 * 2**30  # bytes of peak RSS for the memory case


def sizes(bench_session):
    return SIZES["tiny" if bench_session.grid == "tiny" else "default"]


def test_target_tutorial_shape_against_torch_and_the_tutorial_code(bench_session):
    (n, h), _, _, repeat = sizes(bench_session)
    torch = _available("torch")
    case = bench.Case("numpy", "float32", n, h)
    row = bench.measure_case(case, compare=("torch", "tutorial") if torch else ("tutorial",), repeat=repeat)
    where = f"N={n:g} H={h}"
    bench_session.target(f"tutorial shape: x faster than the tutorial (float64), {where}",
                         1 / row["xpnet_over_tutorial"], 15, "x",
                         detail=f"xpnet {_ms(row['seconds_per_epoch'])}, tutorial {_ms(row['tutorial_seconds_per_epoch'])}")
    if torch:
        bench_session.target(f"tutorial shape: x faster than PyTorch eager, {where}",
                             1 / row["xpnet_over_torch"], 10, "x",
                             detail=f"xpnet {_ms(row['seconds_per_epoch'])}, torch {_ms(row['torch_seconds_per_epoch'])}")
    assert all(math.isfinite(v) and v > 0 for v in (row["seconds_per_epoch"], row["tutorial_seconds_per_epoch"]))
    if not torch:
        pytest.skip("PyTorch is not installed: the 10x-faster-than-torch target was not measured "
                    "(pip install torch==2.13.0); the tutorial-code target was")


def test_target_matrix_heavy_share_of_the_matmul_peak(bench_session):
    _, (n, h), _, repeat = sizes(bench_session)
    backend = xpnet.get_backend("numpy")
    ceiling_sizes = {"matmul_size": 128, "copy_elements": 2**16, "activation_elements": 2**16} \
        if bench_session.grid == "tiny" else {}
    before = bench.measure_ceilings(backend, "float32", **ceiling_sizes)
    case = bench.Case("numpy", "float32", n, h, input_dim=784, classes=10)
    row = bench.measure_case(case, backend=backend, repeat=repeat)
    after = bench.measure_ceilings(backend, "float32", **ceiling_sizes)
    peak = max(before["matmul_gflops"], after["matmul_gflops"])
    percent = 100 * row["gflops"] / peak
    bench_session.target(f"matrix-heavy 784->{h}->10, N={n:g}: % of the matmul peak", percent, 80, "%",
                         detail=f"{row['gflops']:.1f} GFLOP/s, {_ms(row['seconds_per_epoch'])}/epoch; peak "
                                f"{peak:.1f} GFLOP/s ({before['matmul_gflops']:.1f} before, "
                                f"{after['matmul_gflops']:.1f} after)")
    assert 0 < percent < 1000


def test_target_memory_is_bounded_by_the_chunks(bench_session):
    _, _, (n, h), _ = sizes(bench_session)
    case = bench.Case("numpy", "float32", n, h)
    reason = bench.too_big(case, xpnet.get_backend("numpy"))
    if reason:
        pytest.skip(f"does not fit here: {reason}")
    row = bench.measure_case(case, repeat=1, warmup=0, memory=True)
    if "peak_rss_bytes" not in row:
        pytest.skip("peak resident memory is measured on Linux only (/proc/self/clear_refs)")
    activation = n * h * 4
    bench_session.target(f"memory: N={n:g} H={h} trains, peak RSS (MiB)", row["peak_rss_bytes"] / 2**20,
                         MEMORY_GOAL / 2**20, "MiB", at_most=True,
                         detail=f"{_ms(row['seconds_per_epoch'])}/epoch; one (N, H) activation: "
                                f"{activation / 2**20:.0f} MiB; RSS before the epoch "
                                f"{row['rss_before_bytes'] / 2**20:.0f} MiB")
    assert row["peak_rss_bytes"] >= row["rss_before_bytes"] > 0


def _available(name: str) -> bool:
    try:
        xpnet.get_backend(name)
        return True
    except xpnet.BackendUnavailableError:
        return False


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4g} ms"
