"""One full-batch training epoch (forward, backward, update, synced) per backend x kernels x dtype x shape x size.

Timed with ``benchmark.pedantic``: each round starts from the starting weights
(``setup=runner.reset``: a fresh model, since xpnet never updates arrays in place), after one
untimed epoch and pytest-benchmark's warm-up rounds; the timed function ends with
``backend.sync()``. A JIT kernel is compiled before any round; its compile time (or numba
cache load) goes into ``extra_info["compile_seconds"]``.
"""

import math
import statistics

import pytest
from conftest import SHAPES, record

import xpnet
from xpnet import bench


def test_training_epoch(benchmark, bench_session, backend, dtype, hidden, n_samples, input_dim, classes, kernels,
                        peer):
    try:
        be = xpnet.get_backend(backend)
    except xpnet.BackendUnavailableError as exc:
        pytest.skip(f"{backend} unavailable here: {exc}")
    if dtype not in be.dtype_names():
        pytest.skip(f"{be.describe()} has no {dtype}")
    case = bench.Case(backend, dtype, n_samples, hidden, input_dim, classes)
    reason = bench.too_big(case, be)
    if reason:
        pytest.skip(f"does not fit: {reason}")
    if kernels == "jit":
        from xpnet.engine.kernels import numba_support

        if not numba_support.available():
            pytest.skip(f"no JIT kernels: {numba_support.unavailable_reason()}")
    runner = bench.EpochRunner(case, be, kernels=kernels)
    compile_seconds, _ = runner.warm_up()
    runner.run(1)  # the first epoch, untimed: a library's lazy start never lands in a sample
    grid = bench_session.grid_for(be)
    shape = next((name for name, dc in SHAPES.items() if dc == (input_dim, classes)), f"{input_dim}x{classes}")
    benchmark.group = f"{shape} hidden={hidden} n_samples={n_samples}"

    benchmark.pedantic(runner.timed, setup=runner.reset, rounds=grid.rounds, warmup_rounds=grid.warmup)

    if benchmark.stats is not None:
        seconds = benchmark.stats.stats.median
    else:  # --benchmark-disable: one synced epoch after a warm-up, timed here, keeps the units checked
        seconds = statistics.median(bench.time_interleaved([runner], repeat=1, warmup=1)[0])
    numbers = bench.units(case, seconds, bench_session.ceilings(be, dtype))
    assert all(math.isfinite(v) and v > 0 for v in numbers.values()), numbers
    W = [xpnet.to_numpy(w) for w in runner.W]
    assert all((w == w).all() for w in W), "the trained weights hold NaN"
    assert any((w != xpnet.to_numpy(w0)).any() for w, w0 in zip(W, runner.W0)), "the step changed nothing"
    ran = runner.pass_name
    record(benchmark, bench_session, {
        "runs": f"{backend} {ran}" if be.name == "numpy" else backend, "backend": be.name,
        "device": be.device_name(), "dtype": dtype, "shape": shape, "hidden": hidden, "n_samples": n_samples,
        "input_dim": input_dim, "classes": classes, "kernels": ran, "kernel_choice": kernels,
        "compile_seconds": compile_seconds, **numbers})
