"""Issue 5's speed targets, each measured side by side in one run, on NumPy.

    pytest bench -k "targets or tiny"                           # report (a table at the end)
    pytest bench -k "targets or tiny" --bench-targets=assert    # fail on a missed target

* **tutorial shape** (2 -> 1024 tanh -> 2 softmax, float32, N = 100,000): an epoch at least
  10x faster than PyTorch eager float32 and 15x faster than the tutorial's own code in
  float64 (:class:`xpnet.bench.TorchBaseline`, :class:`xpnet.bench.TutorialBaseline`,
  samples interleaved with xpnet's);
* **matrix-heavy shape** (784 -> 1024 -> 10, float32, N = 60,000): at least 80% of the
  matmul peak measured in the same run, its samples alternating with the epoch's (best
  against best), on the FLOPs of the step (:func:`xpnet.bench.step_cost`);
* **memory** (N = 1,000,000, H = 4096, float32): an epoch trains, its peak resident memory
  bounded by the chunks (one (N, H) float32 activation alone would be 15.3 GiB);
* **tiny problems**: ``bench/test_tiny.py`` (at most 1.5x the tutorials' own loops).

With ``--bench-grid=tiny`` the same code runs at toy sizes (a smoke test): the numbers are
reported, no target is judged.
"""

import math
import statistics

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
    """The epoch's samples alternate with samples of the square matmul ceiling
    (:class:`xpnet.bench.MatmulProbe`): best epoch against best matmul, both of the same
    minutes (a ceiling measured once moved by +-40% between runs on this project's VM)."""
    _, (n, h), _, repeat = sizes(bench_session)
    backend = xpnet.get_backend("numpy")
    case = bench.Case("numpy", "float32", n, h, input_dim=784, classes=10)
    runner = bench.EpochRunner(case, backend)
    probe = bench.MatmulProbe(backend, "float32", 128 if bench_session.grid == "tiny" else None)
    epoch_times, probe_times = bench.time_interleaved([runner, probe], repeat=repeat, epochs=1)
    best = min(epoch_times)
    gflops = bench.step_cost(case.layer_sizes, n).flops / best / 1e9
    peak = probe.gflops(min(probe_times))
    percent = 100 * gflops / peak
    bench_session.target(f"matrix-heavy 784->{h}->10, N={n:g}: % of the matmul peak", percent, 80, "%",
                         detail=f"best epoch {_ms(best)} ({gflops:.1f} GFLOP/s), median {_ms(statistics.median(epoch_times))}; "
                                f"best {probe.size}^3 matmul beside it {peak:.1f} GFLOP/s")
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
