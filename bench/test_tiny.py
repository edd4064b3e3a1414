"""Per-iteration overhead on the tutorials' tiny problems: xpnet against the tutorials' own loops.

XOR (4 x 3, Trask's 3 -> 4 -> 1 sigmoid net) and moons (N = 200, WildML's 2 -> 3 -> 2 tanh/softmax),
each as the plain NumPy loop of ``tests/reference.py`` and through :func:`xpnet.tutorials.run`
(i.e. :func:`xpnet.fit`). Both are timed alternately (machine noise hits both) and the
median per-iteration times and their ratio go into ``extra_info``; the issue's target is a
ratio of at most 1.5. Run: ``pytest bench -k tiny --benchmark-columns=median``.
"""

import statistics
import sys
import time
from pathlib import Path

import pytest

from xpnet import datasets, tutorials

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import reference  # noqa: E402  (the tutorials' loops, tests/reference.py)

X_MOONS, Y_MOONS = datasets.moons(200, noise=0.2, seed=0)
CASES = {  # name: (iterations, the tutorial's loop, xpnet's run, their results as comparable lists)
    "xor-4x3": (6000, lambda n: reference.three_layer("trask", n)[0],
                lambda n: tutorials.run("trask-3layer", backend="numpy", iterations=n).data["errors"]),
    "moons-200-h3": (3000, lambda n: reference.wildml(X_MOONS, Y_MOONS, 3, passes=n)[0],
                     lambda n: tutorials.run("wildml-moons", backend="numpy", hidden=3, iterations=n).data["losses"]),
}


def _seconds(fn, n):
    start = time.perf_counter()
    fn(n)
    return time.perf_counter() - start


@pytest.mark.parametrize("case", list(CASES))
def test_tiny_problem_overhead(benchmark, case):
    iterations, loop, ours = CASES[case]
    assert ours(iterations) == loop(iterations)  # the same numbers, bit for bit
    loop_times, our_times = [], []
    for _ in range(5):  # alternate, so load from other jobs hits both
        loop_times.append(_seconds(loop, iterations) / iterations)
        our_times.append(_seconds(ours, iterations) / iterations)
    benchmark.pedantic(ours, args=(iterations,), rounds=3, warmup_rounds=1)
    ratio = statistics.median(our_times) / statistics.median(loop_times)
    benchmark.extra_info.update({"case": case, "iterations": iterations,
                                 "tutorial_us_per_iteration": statistics.median(loop_times) * 1e6,
                                 "xpnet_us_per_iteration": statistics.median(our_times) * 1e6,
                                 "xpnet_over_tutorial": ratio})
    assert ratio > 0
