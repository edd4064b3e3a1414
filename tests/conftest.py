"""Shared fixtures: every model test runs on each available backend.

``backend`` is parametrized over numpy, array_api_strict (and its float32-only
``no_float64`` device), torch when installed and cupy when a GPU works (twice: float64 and
``cupy/float32``, float32 being what GPUs run); unavailable ones skip with the reason.
``dtype`` is the most precise float the backend's device has, or float32 for ``NAME/float32``.
"""

import os
import subprocess
import sys
from collections import Counter

import pytest

import xpnet

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


@pytest.fixture(params=BACKEND_NAMES)
def backend(request):
    return available_backend(request.param)


@pytest.fixture
def dtype(request, backend):
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and str(callspec.params.get("backend", "")).endswith("/float32"):
        return "float32"
    return "float64" if "float64" in backend.dtype_names() else "float32"


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
