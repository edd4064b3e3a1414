"""Backends: selection, errors that never fall back silently, data movement, threads."""

import pathlib
import re

import numpy as np
import pytest

import xpnet
from conftest import available_backend, run_cli
from xpnet import backend as backend_module

PACKAGE = pathlib.Path(xpnet.__file__).parent
OPTIONAL_LIBS = ("cupy", "torch", "array_api_strict", "jax", "dask")


def test_only_backend_module_imports_optional_array_libraries():
    pattern = re.compile(rf"^\s*(import|from)\s+({'|'.join(OPTIONAL_LIBS)})\b", re.MULTILINE)
    offenders = [p.name for p in PACKAGE.rglob("*.py") if p.name != "backend.py" and pattern.search(p.read_text())]
    assert offenders == []


def test_numpy_backend():
    b = xpnet.get_backend("numpy")
    assert b.name == "numpy" and b.describe() == "numpy on cpu"
    assert b.dtype_names() == ("float32", "float64")
    x = b.asarray([[1, 2]], "float32")
    assert xpnet.to_numpy(x).dtype == np.float32


def test_default_comes_from_environment(monkeypatch):
    monkeypatch.setenv("XPNET_BACKEND", "numpy")
    b = xpnet.get_backend()
    assert b.name == "numpy" and "XPNET_BACKEND" in b.reason
    monkeypatch.delenv("XPNET_BACKEND")
    assert xpnet.get_backend().reason.startswith("auto chose")


def test_auto_states_its_choice():
    b = xpnet.get_backend("auto")
    assert b.reason.startswith(f"auto chose {b.name}")
    model = xpnet.MLP([2, 3, 2], backend="auto")
    result = model.fit(np.zeros((4, 2)), np.array([0, 1, 0, 1]), epochs=2)
    assert result.backend == b.name and result.backend_reason == b.reason


def test_cupy_without_gpu_is_a_clear_error_not_a_fallback():
    try:
        xpnet.get_backend("cupy")
    except xpnet.BackendUnavailableError as exc:
        message = str(exc)
        assert "cupy" in message and ("xpnet[cuda12]" in message or "CUDA device" in message)
    else:
        pytest.skip("a CUDA device is present: cupy is available")


def test_cli_cupy_without_gpu_exits_2_with_one_line():
    if _cupy_works():
        pytest.skip("a CUDA device is present")
    proc = run_cli("train", "--backend", "cupy", "--epochs", "1")
    assert proc.returncode == 2
    assert proc.stderr.startswith("xpnet: error: backend 'cupy'") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def _cupy_works():
    try:
        xpnet.get_backend("cupy")
        return True
    except xpnet.BackendUnavailableError:
        return False


@pytest.mark.parametrize("name", ["no_such_module_xyz", "json", "", "array_api_strict:no_such_device"])
def test_unknown_backends_raise(name):
    if name.startswith("array_api_strict"):
        pytest.importorskip("array_api_strict")
    with pytest.raises(xpnet.XpnetValueError):
        xpnet.get_backend(name)


def test_float64_on_a_float32_only_device_is_refused():
    b = available_backend("array_api_strict:no_float64")
    assert b.dtype_names() == ("float32",)
    with pytest.raises(xpnet.XpnetValueError, match="float32"):
        xpnet.MLP([2, 2], dtype="float64", backend=b)


def test_round_trip_to_numpy(backend, dtype):
    host = np.arange(6.0).reshape(2, 3)
    x = backend.asarray(host, dtype)
    assert xpnet.to_numpy(x).tolist() == host.tolist()
    backend.sync()


def test_gpu_backend_really_runs_when_present():
    b = available_backend("cupy")
    model = xpnet.MLP([2, 4, 2], backend=b)
    model.fit(np.ones((8, 2)), np.array([0, 1] * 4), epochs=3)
    assert model.W[0].device == b.device


def test_same_result_whatever_the_thread_count():
    X, y = xpnet.datasets.load("moons", n_samples=3000, seed=1)
    weights = []
    for threads in (1, 2):
        with backend_module.limit_threads(threads):
            model = xpnet.MLP([2, 256, 256, 2], backend="numpy", dtype="float64", seed=3)
            model.fit(X, y, epochs=5, learning_rate=0.1)
        weights.append([xpnet.to_numpy(w) for w in model.W])
    assert all(np.array_equal(a, b) for a, b in zip(*weights))
