"""The command line under faults, hostile flags and odd environments (issue 15), and the test
suite's own output (issue 17): each through a subprocess, as a user meets it."""

import os
import subprocess
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)


def test_skip_reasons_are_printed_once_each_with_a_count(tmp_path):
    (tmp_path / "conftest.py").write_text(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('xpnet_conftest', {os.path.join(TESTS, 'conftest.py')!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "pytest_terminal_summary = module.pytest_terminal_summary\n")
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n"
        "@pytest.mark.parametrize('k', range(5))\n"
        "def test_needs_a_gpu(k):\n"
        "    pytest.skip('no GPU here: install CuPy')\n"
        "def test_other():\n"
        "    pytest.skip('another reason')\n"
        "def test_runs():\n"
        "    assert True\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c",
                           os.path.join(ROOT, "pyproject.toml"), "--rootdir", str(tmp_path), str(tmp_path)],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    out = proc.stdout
    assert "SKIPPED [" not in out  # not one line per skipped test
    assert out.count("no GPU here: install CuPy") == 1 and "   5 x no GPU here: install CuPy" in out
    assert "   1 x another reason" in out and "1 passed, 6 skipped" in out
