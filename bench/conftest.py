"""pytest-benchmark suite for xpnet: one full-batch training epoch per case.

Kept out of the default test run (pyproject's ``testpaths = ["tests"]``); run it with

    pytest bench                                        # numpy (and cupy when a GPU works), default grid
    pytest bench --backend numpy --backend torch --benchmark-group-by=param:hidden,param:n_samples
    pytest bench --bench-grid=full --benchmark-save=numpy-full
    pytest bench --bench-grid=tiny --benchmark-disable  # smoke test (CI)
    xpnet bench compare before after                    # two saved runs side by side, in samples/s

Every benchmark carries the same parameters (:data:`PARAMS`: backend, dtype, hidden, n_samples,
input_dim, classes, kernels, peer; ``none`` where one does not apply), so any
``--benchmark-group-by=param:NAME`` and ``pytest-benchmark compare --group-by=param:NAME`` works
on every run; collection refuses a benchmark without them. Each records ``samples_per_second``
and ``seconds_per_epoch`` (and more) in ``extra_info``.

Options added here:

``--backend NAME`` (repeatable)
    Backends to time; default numpy, plus cupy when CuPy finds a working CUDA device.
``--bench-threads N``
    Bound the BLAS (and torch) threads to N for the whole run (default: all cores).
``--bench-grid {tiny,default,full}``
    ``default``: hidden 64/256/1024 x samples 1e3/1e4/1e5 on CPU, keeping the cases with
    n_samples * hidden <= 2e7 (a few minutes on 2 cores); hidden up to 4096 and samples
    up to 1e6 on a GPU. ``full``: hidden 64...4096 (8192 on a GPU) x samples 1e3...1e6
    (1e7 on a GPU); cases that cannot fit in memory skip with the estimate as the reason.
    ``tiny``: a few small cases, for smoke tests.
``--bench-peers NAME[,NAME...]``
    The peers of ``xpnet bench --compare`` timed by ``bench/test_peers.py`` (torch,
    tutorial, jax, torch-compile; default: all of them, but torch-compile on the tiny grid,
    where its seconds of compiling would be most of a smoke test; ``none`` for none). A peer
    whose library is missing is skipped with the reason.
``--bench-targets {report,assert}``
    The speed targets of ``bench/test_targets.py`` and ``bench/test_tiny.py``: a table
    saying which are met, as information (default), or fail the benchmark that misses one.

Each case runs both network shapes: ``tutorial`` (2 inputs, 2 classes) and ``mnist``
(784 inputs, 10 classes, synthetic data); on NumPy each runs twice, with the NumPy kernels
(``kernels="numpy"``, ids ``numpy-...``) and with the numba ones (``kernels="jit"``, ids
``numpy-jit-...``; skipped with the reason without numba, compiled before the timed rounds).
Every case runs one untimed epoch before pytest-benchmark's warm-up rounds, so a first call's
cost (a library's lazy start, a kernel's compilation) never lands in a sample. The end of the
run prints the skips once per reason, the epochs' table (with each case's spread between rounds)
and the speed targets.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field

import pytest
from pytest_benchmark.logger import PytestBenchmarkWarning

import xpnet
from xpnet import bench
from xpnet.engine import blas

SHAPES = {"tutorial": (2, 2), "mnist": (784, 10)}  # name: (input_dim, classes)
GRID_NAMES = ("tiny", "default", "full")
DEFAULT_CPU_WORK = 2 * 10**7  # default CPU grid: n_samples * hidden at most this
TINY_CEILINGS = {"matmul_size": 128, "copy_elements": 2**16, "activation_elements": 2**16}
KERNELS_ON_NUMPY = ("numpy", "jit")  # NumPy cases run with each family of whole-pass kernels
# The parameters of every benchmark, in this order: what --benchmark-group-by=param:NAME and
# pytest-benchmark compare --group-by=param:NAME may name. NONE where one does not apply.
PARAMS = ("backend", "dtype", "hidden", "n_samples", "input_dim", "classes", "kernels", "peer")
NONE = "none"
NOISY = 1.5  # a case whose slowest round took more than this times its fastest is flagged in the table


@dataclass(frozen=True)
class Grid:
    hidden: tuple
    n_samples: tuple
    rounds: int  # timed rounds per case (pedantic), each on a fresh model
    warmup: int  # untimed rounds first (after the case's own untimed first epoch)
    max_work: int | None = None  # keep cases with n_samples * hidden <= max_work

    def cases(self) -> list:
        return [(h, n) for n in self.n_samples for h in self.hidden if self.max_work is None or n * h <= self.max_work]


def grid_for(name: str, on_gpu: bool) -> Grid:
    """The cases of grid ``name`` for a CPU or a GPU backend."""
    if name == "tiny":
        return Grid((4, 16), (32, 300), rounds=2, warmup=1)  # 300 rows: past numpy_ops.SMALL, so kernels run
    if name == "default":
        if on_gpu:
            return Grid((64, 256, 1024, 4096), (10**3, 10**4, 10**5, 10**6), rounds=5, warmup=2)
        return Grid((64, 256, 1024), (10**3, 10**4, 10**5), rounds=5, warmup=1, max_work=DEFAULT_CPU_WORK)
    extra_h, extra_n = ((8192,), (10**7,)) if on_gpu else ((), ())
    return Grid((64, 256, 1024, 4096) + extra_h, (10**3, 10**4, 10**5, 10**6) + extra_n, rounds=3, warmup=1)


def pytest_addoption(parser):
    group = parser.getgroup("xpnet-bench", "xpnet benchmarks")
    group.addoption("--backend", action="append", default=None, metavar="NAME",
                    help="backend to benchmark, repeatable (default: numpy, plus cupy when a GPU works)")
    group.addoption("--bench-grid", choices=GRID_NAMES, default="default",
                    help="tiny: smoke test; default: a few minutes on 2 CPU cores; full: every case that fits")
    group.addoption("--bench-targets", choices=("report", "assert"), default="report",
                    help="the speed targets of issues 5, 14 and 22 (bench/test_targets.py, bench/test_tiny.py): "
                         "report whether each is met, as information (default), or fail the benchmark that misses "
                         "one (never on --bench-grid=tiny)")
    group.addoption("--bench-peers", type=_peer_names, default=None, metavar="NAME[,NAME...]",
                    help=f"peers timed by bench/test_peers.py: {', '.join(bench.COMPARE)} (default: all, but "
                         "torch-compile on --bench-grid=tiny), or none")
    group.addoption("--bench-threads", type=int, default=None, metavar="N",
                    help="bound the BLAS (and torch) threads to N for the whole run (default: all cores); "
                         "1 gives steadier numbers on a machine shared with other jobs")


def _peer_names(text: str) -> tuple:
    return () if text.strip() == NONE else bench.compare_names(text)


def peer_names(config) -> tuple:
    """``--bench-peers``, or its default: every peer, but torch-compile on the tiny grid."""
    names = config.getoption("--bench-peers")
    if names is not None:
        return names
    tiny = config.getoption("--bench-grid") == "tiny"
    return tuple(name for name in bench.COMPARE if not (tiny and name == "torch-compile"))


def _resolve(name: str):
    try:
        return xpnet.get_backend(name)
    except xpnet.BackendUnavailableError:
        return None


def backend_names(config) -> list[str]:
    names = config.getoption("--backend")
    if names:
        return list(dict.fromkeys(names))
    return ["numpy"] + (["cupy"] if _resolve("cupy") is not None else [])


@dataclass
class BenchSession:
    """Per-run state: the grid name, measured ceilings (cached) and the rows for the table."""

    grid: str
    targets_mode: str = "report"  # --bench-targets
    rows: list = field(default_factory=list)
    targets: list = field(default_factory=list)  # Target rows for the summary
    machine: dict | None = None  # bench.machine_info() taken inside the --bench-threads limit
    _ceilings: dict = field(default_factory=dict)

    def grid_for(self, backend) -> Grid:
        return grid_for(self.grid, bench.on_gpu(backend))

    @staticmethod
    def shape(name: str) -> tuple:
        return SHAPES[name]

    def target(self, name: str, measured: float | None, goal: float, unit: str, *, at_most: bool = False,
               detail: str = "", judged: bool = True) -> None:
        """Record one of the speed targets (shown in the summary); with ``--bench-targets=assert``
        fail when it is missed. ``at_most``: lower is better (a ratio of times). ``measured``
        None: not measured (a peer missing), with the reason in ``detail``. ``judged=False``:
        measured, but not under the target's conditions (said in ``detail``)."""
        met = None if measured is None else measured <= goal if at_most else measured >= goal
        judged = judged and self.grid != "tiny"  # the smoke grid measures the same things at toy sizes
        self.targets.append({"target": name, "measured": measured, "goal": goal, "unit": unit,
                             "at_most": at_most, "met": met if judged else None, "detail": detail})
        if judged and self.targets_mode == "assert" and measured is not None:
            assert met, f"{name}: {measured:.3g} {unit}, target {'<=' if at_most else '>='} {goal:g} ({detail})"

    def ceilings(self, backend, dtype: str) -> dict:
        key = (backend.name, backend.device_name(), dtype)
        if key not in self._ceilings:
            sizes = TINY_CEILINGS if self.grid == "tiny" else {}
            self._ceilings[key] = bench.measure_ceilings(backend, dtype, **sizes)
        return self._ceilings[key]


_SESSION = pytest.StashKey[BenchSession]()


def pytest_configure(config):
    config.stash[_SESSION] = BenchSession(config.getoption("--bench-grid"), config.getoption("--bench-targets"))


@pytest.hookimpl(hookwrapper=True)
def pytest_benchmark_compare_machine_info(config, benchmarksession, machine_info, compared_benchmark):
    # pyproject turns warnings into errors; comparing runs of different machines or backends
    # (numpy today vs cupy) must only warn that their machine_info differs, as designed.
    with warnings.catch_warnings():
        warnings.simplefilter("default", PytestBenchmarkWarning)
        yield


@pytest.fixture(scope="session")
def bench_session(pytestconfig) -> BenchSession:
    return pytestconfig.stash[_SESSION]


@pytest.fixture(scope="session", autouse=True)
def _bench_threads(pytestconfig, bench_session):
    with xpnet.limit_threads(pytestconfig.getoption("--bench-threads")):
        bench_session.machine = _machine_info(pytestconfig)  # BLAS threads as the benchmarks see them
        yield


def _machine_info(config) -> dict:
    backends = [b for b in map(_resolve, backend_names(config)) if b is not None]
    return {**bench.machine_info(backends), "bench_grid": config.getoption("--bench-grid"),
            "bench_threads": config.getoption("--bench-threads")}


# -- the parameters every benchmark carries ------------------------------------------------
def pytest_generate_tests(metafunc):
    make = _CASES.get(metafunc.function.__name__)
    if make is None:
        return
    cases = make(metafunc)
    metafunc.parametrize(",".join(PARAMS), [values for _, values in cases], ids=[name for name, _ in cases])


def _epoch_cases(metafunc) -> list:
    """backend x kernels x dtype x shape x (hidden, n_samples) of the grid: xpnet's own epochs."""
    grid_name = metafunc.config.getoption("--bench-grid")
    cases = []
    for name in backend_names(metafunc.config):
        resolved = _resolve(name)
        grid = grid_for(grid_name, resolved is not None and bench.on_gpu(resolved))
        for choice in (KERNELS_ON_NUMPY if name == "numpy" else ("auto",)):
            label = name if choice in ("auto", "numpy") else f"{name}-{choice}"
            for dtype in ("float32", "float64"):
                for shape, (d, c) in SHAPES.items():
                    for h, n in grid.cases():
                        cases.append((f"{label}-{dtype}-{shape}-h{h}-n{n:g}", (name, dtype, h, n, d, c, choice, NONE)))
    return cases


PEER_LIBRARY = {"torch": "torch", "torch-compile": "torch", "jax": "jax", "tutorial": "numpy"}


def _peer_cases(metafunc) -> list:
    """peer x (hidden, n_samples) of the CPU grid, on the tutorials' shape in float32 (the
    tiny grid: its first case only, as torch.compile compiles each case afresh). ``backend``
    is the library the peer runs on."""
    grid_name = metafunc.config.getoption("--bench-grid")
    cases = grid_for(grid_name, False).cases()
    if grid_name == "tiny":
        cases = cases[:1]
    d, c = SHAPES["tutorial"]
    return [(f"{peer}-h{h}-n{n:g}", (PEER_LIBRARY[peer], "float32", h, n, d, c, NONE, peer))
            for peer in peer_names(metafunc.config) for h, n in cases]


def _tiny_cases(metafunc) -> list:
    """The tutorials' tiny problems of ``bench/test_tiny.py`` (its ``SHAPES``), xpnet on NumPy
    in float64 as the tutorials run."""
    shapes = metafunc.module.SHAPES
    return [(name, ("numpy", "float64", h, n, d, c, "auto", NONE)) for name, (d, h, c, n) in shapes.items()]


_CASES = {"test_training_epoch": _epoch_cases, "test_peer_epoch": _peer_cases,
          "test_tiny_problem_overhead": _tiny_cases}


def pytest_collection_modifyitems(config, items):
    """Every benchmark carries exactly :data:`PARAMS`: a group-by on any of them must work."""
    for item in items:
        if "benchmark" in getattr(item, "fixturenames", ()):
            params = getattr(getattr(item, "callspec", None), "params", {})
            if set(params) != set(PARAMS):
                raise pytest.UsageError(f"{item.nodeid}: a benchmark must carry the parameters {', '.join(PARAMS)} "
                                        f"(bench/conftest.py PARAMS); it has {', '.join(params) or 'none'}")


def record(benchmark, bench_session, info: dict) -> None:
    """Add ``info`` to ``benchmark.extra_info`` (mutated, never replaced: pytest-benchmark holds
    that dict) with ``samples_per_round`` (what ``xpnet bench compare`` divides by the round
    times) and the spread of the timed rounds, and keep it for the summary table."""
    info.setdefault("samples_per_round", info["n_samples"])
    stats = getattr(benchmark.stats, "stats", None)
    if stats is not None and stats.min > 0:
        info["rounds"] = stats.rounds
        info["spread"] = stats.max / stats.min  # slowest round / fastest
    benchmark.extra_info.update(info)
    bench_session.rows.append(info)


# -- the end of the run -----------------------------------------------------------------------
def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["xpnet"] = config.stash[_SESSION].machine or _machine_info(config)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    _skips_summary(terminalreporter)
    _targets_summary(terminalreporter, config.stash[_SESSION].targets)
    _rows_summary(terminalreporter, config.stash[_SESSION].rows)


def _skips_summary(tr) -> None:
    """Each distinct skip reason once, with how many benchmarks it skipped."""
    reasons: Counter = Counter()
    for report in tr.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    if reasons:
        tr.section("xpnet: skipped, once per reason")
        for reason, count in reasons.most_common():
            tr.write_line(f"{count:4d} x {reason}")


def _rows_summary(tr, rows: list) -> None:
    if not rows:
        return
    tr.section("xpnet: one full-batch training epoch (median)")
    tr.write_line(f"{'runs':<19} {'dtype':<7} {'in':>4} {'hidden':>6} {'out':>3} {'n_samples':>9} {'ms/epoch':>10} "
                  f"{'samples/s':>10} {'GFLOP/s':>8} {'GB/s':>7} {'%peak':>6} {'spread':>6}")
    noisy = 0
    for r in rows:
        spread = r.get("spread")
        noisy += spread is not None and spread > NOISY
        mark = "-" if spread is None else f"{spread:.2f}" + ("*" if spread > NOISY else "")
        tr.write_line(f"{r['runs']:<19} {r['dtype']:<7} {r['input_dim']:>4} {r['hidden']:>6} {r['classes']:>3} "
                      f"{r['n_samples']:>9} {r['seconds_per_epoch'] * 1e3:>10.3f} {r['samples_per_second']:>10.3g} "
                      f"{r['gflops']:>8.2f} {r['gbytes_per_second']:>7.2f} {r.get('percent_of_matmul_peak', 0):>6.1f} "
                      f"{mark:>6}")
    tr.write_line("GFLOP/s counts matmuls (2mnk each, no dX for the input layer) and elementwise ops (1 per "
                  "element, tanh/exp as 1); GB/s is an estimate (operands read once, results written once); "
                  "%peak is against the matmul GFLOP/s measured in this run. See xpnet.bench.step_cost. "
                  "'peer NAME' rows: the same step in another library (xpnet bench --compare NAME), "
                  "counted as xpnet's. spread: slowest round / fastest.")
    if noisy:
        tr.write_line(f"{noisy} case(s) marked * had rounds more than {NOISY}x apart: the machine was busy or the "
                      "case is short; their medians are rough (more rounds: --bench-grid=full; compare runs with "
                      "xpnet bench compare, which shows each side's spread)")


def _targets_summary(tr, targets: list) -> None:
    if not targets:
        return
    tr.section("xpnet: speed targets (issues 5, 14 and 22), measured side by side in this run")
    info = blas.numpy_blas()
    if info is not None:
        tr.write_line(f"BLAS: {info.describe()}")
        if info.warning:
            tr.write_line(f"      {info.warning}")
    width = max(len(t["target"]) for t in targets)
    tr.write_line(f"{'target':<{width}} {'measured':>12} {'goal':>12} {'status':>8}  detail")
    for t in targets:
        goal = f"{'<=' if t['at_most'] else '>='} {t['goal']:g} {t['unit']}"
        status = {True: "met", False: "not met", None: "-"}[t["met"]]
        measured = "not measured" if t["measured"] is None else f"{t['measured']:.3g}"
        tr.write_line(f"{t['target']:<{width}} {measured:>12} {goal:>12} {status:>8}  {t['detail']}")
    judged = [t for t in targets if t["met"] is not None]
    if judged:
        tr.write_line(f"{sum(t['met'] for t in judged)} of {len(judged)} targets met in this run. Targets are "
                      "information: they never fail this run (--bench-targets=assert makes a missed one fail).")
    if any(t["measured"] is not None and t["met"] is None for t in targets):
        tr.write_line("'-': measured but not judged (toy sizes on --bench-grid=tiny, or conditions the detail names)")
