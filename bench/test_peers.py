"""The peers of ``xpnet bench --compare``: one full-batch epoch of the same step in another library.

PyTorch eager, ``torch.compile``, ``jax.jit`` and the WildML tutorial's own NumPy code
(float64), each on the data and starting weights :class:`xpnet.bench.EpochRunner` makes, on
the tutorials' shape in float32 (``--bench-peers`` picks them). Their rows land in the
summary table beside xpnet's (``bench/test_epoch.py``), counted with xpnet's FLOPs. A
compiled peer compiles while it is built, before any round (see
:class:`xpnet.bench.TorchCompileBaseline`, :class:`xpnet.bench.JaxBaseline`); every peer runs
one more untimed epoch before pytest-benchmark's warm-up rounds (PyTorch's first call, a
lazy start, took 119.7 ms where the next took 0.4 ms).
"""

import math

import pytest
from conftest import record

import xpnet
from xpnet import bench


def test_peer_epoch(benchmark, bench_session, backend, dtype, hidden, n_samples, input_dim, classes, kernels, peer):
    numpy = xpnet.get_backend("numpy")
    case = bench.Case("numpy", dtype, n_samples, hidden, input_dim, classes)
    runner = bench.EpochRunner(case, numpy)
    baseline, reason = bench.start_peer(peer, runner)
    if reason:
        pytest.skip(f"{peer} not run: {reason}")
    baseline.run(1)  # the first epoch, untimed
    grid = bench_session.grid_for(numpy)
    benchmark.group = f"tutorial hidden={hidden} n_samples={n_samples}"

    benchmark.pedantic(baseline.run, setup=baseline.reset, rounds=grid.rounds, warmup_rounds=grid.warmup)

    if benchmark.stats is not None:
        seconds = benchmark.stats.stats.median
    else:  # --benchmark-disable: one epoch after a warm-up, timed here, keeps the units checked
        seconds = bench.time_interleaved([baseline], repeat=1, warmup=1)[0][0]
    numbers = bench.units(case, seconds, bench_session.ceilings(numpy, dtype))
    assert all(math.isfinite(v) and v > 0 for v in numbers.values()), numbers
    assert all(math.isfinite(float(abs(w).max())) for w in baseline.weights()), "the trained weights are not finite"
    record(benchmark, bench_session, {
        "runs": f"peer {peer}", "peer": peer, "backend": backend, "device": baseline.device, "dtype": dtype,
        "shape": "tutorial", "hidden": hidden, "n_samples": n_samples, "input_dim": input_dim, "classes": classes,
        "first_call_seconds": getattr(baseline, "first_call_seconds", None), **numbers})
