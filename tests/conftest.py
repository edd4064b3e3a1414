"""Shared fixtures: every model test runs on each available backend.

``backend`` is parametrized over numpy, array_api_strict (and its float32-only
``no_float64`` device), torch when installed and cupy when a GPU works (twice: float64 and
``cupy/float32``, float32 being what GPUs run); unavailable ones skip with the reason.
``dtype`` is the most precise float the backend's device has, or float32 for ``NAME/float32``.

The property tests (hypothesis) run derandomized: the same examples on every run and machine
(drawn from a hash of each test), so a run never fails on an example no earlier run saw and
a failure reproduces. ``--hypothesis-profile explore`` draws fresh random examples instead
(print_blob shows how to replay a failure with ``@reproduce_failure``).
"""

import os
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import settings

import xpnet

settings.register_profile("xpnet", derandomize=True, deadline=None, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, deadline=None, print_blob=True)
settings.load_profile("xpnet")  # the default; pytest's --hypothesis-profile NAME loads another after this

# A shell may force narrower BLAS kernels than the CPU has (these machines' shells set
# OPENBLAS_CORETYPE=Haswell); `xpnet train` then warns on stderr, which tests of its exact output
# would meet on one machine and not another. The tests' commands run with OpenBLAS's own choice;
# tests/engine/test_blas.py and tests/cli/test_blas_summary.py give the setting explicitly.
os.environ.pop("OPENBLAS_CORETYPE", None)

BACKEND_NAMES = ["numpy", "array_api_strict", "array_api_strict:no_float64", "torch", "cupy", "cupy/float32"]


def available_backend(name):
    """The backend called ``name`` (a ``/float32`` suffix is the dtype fixture's), or skip the
    test with the reason it is unavailable."""
    name = name.split("/")[0]
    if name.split(":")[0] == "array_api_strict":
        pytest.importorskip("array_api_strict")
    try:
        return xpnet.get_backend(name)
    except xpnet.BackendUnavailableError as exc:
        pytest.skip(f"{name} unavailable here: {exc}")


def backend_works(name) -> bool:
    """Whether ``get_backend(name)`` works here (e.g. ``"cupy"``: CuPy and a CUDA device)."""
    try:
        xpnet.get_backend(name)
        return True
    except xpnet.BackendUnavailableError:
        return False


@pytest.fixture(params=BACKEND_NAMES)
def backend(request):
    return available_backend(request.param)


@pytest.fixture
def dtype(request, backend):
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and str(callspec.params.get("backend", "")).endswith("/float32"):
        return "float32"
    return "float64" if "float64" in backend.dtype_names() else "float32"


@pytest.fixture
def gpu_stand_in(monkeypatch):
    """A working "CUDA device" for ``auto``: array_api_strict's device1 standing in for CuPy."""
    from xpnet.backend import namespace

    stand_in = available_backend("array_api_strict:device1")
    monkeypatch.setattr(namespace, "_cupy", lambda device, source: stand_in)
    return stand_in


def rtol_for(dtype):
    """Relative tolerance for comparing results computed in ``dtype``."""
    return 1e-10 if dtype == "float64" else 2e-4


def run_cli(*args, env=None, timeout=300, check=None, stdout=subprocess.PIPE):
    """Run ``python -m xpnet ARGS`` in a subprocess; return the CompletedProcess.

    ``stdout``: where its stdout goes (default: captured), e.g. an open ``/dev/full``.
    """
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "xpnet", *map(str, args)], stdout=stdout, stderr=subprocess.PIPE,
                          text=True, env=full_env, timeout=timeout)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, (proc.stdout or "")[-2000:], proc.stderr[-2000:])
    return proc


def skip_reasons(reports) -> Counter:
    """How many skipped tests gave each reason (``report.longrepr`` is (path, line, reason))."""
    reasons: Counter = Counter()
    for report in reports:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    return reasons


def pytest_terminal_summary(terminalreporter):
    """Each distinct skip reason once, with how many tests it skipped (pyproject's addopts
    leave skips out of the short summary, where one missing library repeats per test)."""
    reasons = skip_reasons(terminalreporter.stats.get("skipped", []))
    if reasons:
        terminalreporter.section("skipped tests, by reason", sep="-")
        for reason, count in reasons.most_common():
            terminalreporter.line(f"{count:4d} x {reason}")
