"""Per-iteration overhead on the tutorials' tiny problems: xpnet against the tutorials' own loops.

* XOR: Trask's 11-line network (4 x 3 inputs, 3 -> 4 -> 1 sigmoid), exactly as he wrote it
  (Python 3's ``range``), seeded as his 3-layer program; xpnet trains the same net through
  :func:`xpnet.fit` (``init="trask"``, seed 1, ``learning_rate=1``, summed gradient) to the
  same weights, bit for bit.
* moons: WildML's ``build_model`` (N = 200, 2 -> 3 tanh -> 2 softmax, the loss printed every
  1,000 passes; ``tests/reference.py``) against :func:`xpnet.tutorials.run` ("wildml-moons"),
  which prints the same losses, bit for bit.

The two sides alternate in short samples (machine noise hits both); the median of the
per-pair time ratios goes into ``extra_info`` and into issue 5's targets table (at most
1.5). Run: ``pytest bench -k tiny``.
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np

import xpnet
from xpnet import tutorials
from xpnet.data import datasets

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import reference  # noqa: E402  (WildML's loop, tests/reference.py)

X_MOONS, Y_MOONS = datasets.moons(200, noise=0.2, seed=0)
X_XOR, Y_XOR = datasets.xor()
PAIRS = 15  # alternating samples per side
GOAL = 1.5  # issue 5: xpnet's time per iteration at most this times the tutorial loop's


def trask_11_lines(iterations):
    """Trask's "A Neural Network in 11 lines of Python", seeded (1) as his 3-layer program."""
    X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]])
    y = np.array([[0, 1, 1, 0]]).T
    np.random.seed(1)
    syn0 = 2 * np.random.random((3, 4)) - 1
    syn1 = 2 * np.random.random((4, 1)) - 1
    for j in range(iterations):  # noqa: B007 (his loop, as he wrote it)
        l1 = 1 / (1 + np.exp(-(np.dot(X, syn0))))
        l2 = 1 / (1 + np.exp(-(np.dot(l1, syn1))))
        l2_delta = (y - l2) * (l2 * (1 - l2))
        l1_delta = l2_delta.dot(syn1.T) * (l1 * (1 - l1))
        syn1 += l1.T.dot(l2_delta)
        syn0 += X.T.dot(l1_delta)
    return [syn0, syn1]


def xpnet_xor(iterations):
    model = xpnet.MLP([3, 4, 1], activation="sigmoid", output="sigmoid", loss="squared", bias=False,
                      init="trask", dtype="float64", backend="numpy", seed=1)
    model.fit(X_XOR, Y_XOR, epochs=iterations, learning_rate=1.0, reduction="sum")
    return [xpnet.to_numpy(w) for w in model.W]


CASES = {  # name: (iterations per sample, the tutorial's loop, xpnet, their results as comparable lists)
    "xor-4x3": (2000, trask_11_lines, xpnet_xor),
    "moons-200-h3": (1000, lambda n: reference.wildml(X_MOONS, Y_MOONS, 3, passes=n)[0],
                     lambda n: tutorials.run("wildml-moons", backend="numpy", hidden=3, iterations=n).data["losses"]),
}
# the benchmark parameters of each (bench/conftest.py): name: (input_dim, hidden, outputs, n_samples)
SHAPES = {"xor-4x3": (3, 4, 1, 4), "moons-200-h3": (2, 3, 2, 200)}


def _seconds(fn, n):
    start = time.perf_counter()
    fn(n)
    return time.perf_counter() - start


def test_tiny_problem_overhead(benchmark, bench_session, backend, dtype, hidden, n_samples, input_dim, classes,
                               kernels, peer):
    case = next(name for name, shape in SHAPES.items() if shape == (input_dim, hidden, classes, n_samples))
    iterations, loop, ours = CASES[case]
    if bench_session.grid == "tiny":
        iterations //= 10
    for a, b in zip(ours(iterations), loop(iterations)):  # the same numbers, bit for bit
        np.testing.assert_array_equal(a, b)
    loop_times, our_times = [], []
    for k in range(PAIRS):  # alternate, first one side then the other, so load from other jobs hits both
        for fn, times in ((loop, loop_times), (ours, our_times))[::1 if k % 2 == 0 else -1]:
            times.append(_seconds(fn, iterations) / iterations)
    benchmark.pedantic(ours, args=(iterations,), rounds=3, warmup_rounds=1)
    ratio = statistics.median(o / t for o, t in zip(our_times, loop_times))
    seconds = statistics.median(our_times)  # per iteration: one full-batch epoch
    benchmark.extra_info.update({"case": case, "iterations": iterations, "seconds_per_epoch": seconds,
                                 "samples_per_second": n_samples / seconds,
                                 "samples_per_round": n_samples * iterations,  # a round: `iterations` epochs
                                 "tutorial_us_per_iteration": statistics.median(loop_times) * 1e6,
                                 "xpnet_us_per_iteration": seconds * 1e6, "xpnet_over_tutorial": ratio})
    bench_session.target(f"tiny {case}: time per iteration / the tutorial loop's", ratio, GOAL, "x", at_most=True,
                         detail=f"xpnet {statistics.median(our_times) * 1e6:.1f} us, tutorial "
                                f"{statistics.median(loop_times) * 1e6:.1f} us per iteration")
    assert ratio > 0

