"""Backends: selection, errors that never fall back silently, data movement, threads."""

import pathlib
import re

import numpy as np
import pytest
from conftest import available_backend, rtol_for, run_cli

import xpnet

PACKAGE = pathlib.Path(xpnet.__file__).parent
OPTIONAL_LIBS = ("cupy", "torch", "array_api_strict", "jax", "dask")


def test_only_the_backend_package_imports_optional_array_libraries():
    pattern = re.compile(rf"^\s*(import|from)\s+({'|'.join(OPTIONAL_LIBS)})\b", re.MULTILINE)
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if p.parent.name != "backend" and pattern.search(p.read_text())]
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
        assert "cupy" in message and ("cupy-cuda12x" in message or "CUDA device" in message)
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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gpu_backend_really_runs_when_present_chunked_and_agrees_with_numpy(monkeypatch, dtype):
    from xpnet.core.ops import Ops

    b = available_backend("cupy")
    monkeypatch.setattr(Ops, "chunk_bytes", 1 << 14)  # chunks of 64 rows: the chunked pass on the device
    X, y = xpnet.datasets.load("moons", n_samples=1000, seed=2)
    models = [xpnet.MLP([2, 32, 2], backend=name, dtype=dtype, seed=1) for name in (b, "numpy")]
    results = [m.fit(X, y, epochs=5, learning_rate=0.1) for m in models]
    assert models[0].W[0].device == b.device and results[0].kernels == "generic"
    np.testing.assert_allclose(results[0].history, results[1].history, rtol=10 * rtol_for(dtype))


def test_same_result_whatever_the_thread_count():
    X, y = xpnet.datasets.load("moons", n_samples=3000, seed=1)
    weights = []
    for threads in (1, 2):
        with xpnet.limit_threads(threads):
            model = xpnet.MLP([2, 256, 256, 2], backend="numpy", dtype="float64", seed=3)
            model.fit(X, y, epochs=5, learning_rate=0.1)
        weights.append([xpnet.to_numpy(w) for w in model.W])
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


# -- names: only array-API namespaces are imported; devices must exist; pickling by name ------

def test_a_module_that_is_not_an_array_namespace_is_never_imported():
    import subprocess
    import sys

    code = ("import sys, xpnet\n"
            "try:\n    xpnet.get_backend('this')\n"
            "except xpnet.BackendUnavailableError as exc:\n    print('refused:', exc)\n"
            "print('imported' if 'this' in sys.modules else 'not imported')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Beautiful is better than ugly" not in proc.stdout  # `import this` prints the Zen of Python
    assert "refused: backend 'this'" in proc.stdout and "array-API" in proc.stdout
    assert proc.stdout.rstrip().endswith("not imported")


def test_an_importable_module_with_side_effects_is_refused_without_running_it(tmp_path, monkeypatch):
    (tmp_path / "xpnet_test_side_effect.py").write_text(
        f"open({str(tmp_path / 'ran')!r}, 'w').close()\nasarray = lambda x: x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(xpnet.BackendUnavailableError, match="not an array-API namespace"):
        xpnet.get_backend("xpnet_test_side_effect")
    assert not (tmp_path / "ran").exists()


def test_a_module_declaring_the_array_api_is_accepted(tmp_path, monkeypatch):
    pytest.importorskip("array_api_strict")
    (tmp_path / "xpnet_test_namespace.py").write_text(
        "from array_api_strict import *\nfrom array_api_strict import __array_namespace_info__\n"
        "__array_api_version__ = '2023.12'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    b = xpnet.get_backend("xpnet_test_namespace")
    assert b.name == "xpnet_test_namespace" and xpnet.to_numpy(b.asarray([1.0, 2.0])).tolist() == [1.0, 2.0]


@pytest.mark.parametrize("name", ["os;rm", "numpy..linalg", "1numpy", "numpy/../x"])
def test_names_that_are_not_module_names_are_refused(name):
    with pytest.raises(xpnet.BackendUnavailableError, match="not a module name"):
        xpnet.get_backend(name)


@pytest.mark.parametrize("name, devices", [("numpy:gpu7", "cpu"), ("torch:gpu7", "cpu"), ("torch:meta", "cpu"),
                                           ("array_api_strict:gpu7", "no_float64")])
def test_a_device_that_does_not_exist_names_those_that_do(name, devices):
    lib = name.split(":")[0]
    pytest.importorskip(lib)
    with pytest.raises(xpnet.BackendUnavailableError) as info:
        xpnet.get_backend(name)
    message = str(info.value)
    assert name.split(":")[1] in message and devices in message and "\n" not in message


def test_numpy_cpu_is_a_device_name():
    assert xpnet.get_backend("numpy:cpu").describe() == "numpy on cpu"


@pytest.mark.parametrize("name", ["numpy", "array_api_strict:no_float64", "torch", "torch:cpu"])
def test_backends_pickle_and_copy_by_name(name):
    import copy
    import pickle

    b = available_backend(name)
    for clone in (pickle.loads(pickle.dumps(b)), copy.deepcopy(b), copy.copy(b)):
        assert (clone.name, clone.device_name(), clone.dtype_names()) == (b.name, b.device_name(), b.dtype_names())
        assert clone.xp is b.xp and clone.reason == b.reason


def test_qualified_name_round_trips():
    for name in ("numpy", "array_api_strict:no_float64", "torch"):
        b = available_backend(name)
        assert xpnet.get_backend(b.qualified_name()).device_name() == b.device_name()


# -- names: suggestions and install hints -----------------------------------------------------------
@pytest.mark.parametrize("name, meant", [("cuda", "'cupy' or 'torch:cuda'"), ("nmpy", "'numpy'"), ("gpu", "'cupy'"),
                                         ("numpyy", "'numpy'"), ("array-api-strict", "'array_api_strict'")])
def test_a_name_close_to_a_known_one_gets_a_suggestion(name, meant):
    with pytest.raises(xpnet.BackendUnavailableError) as info:
        xpnet.get_backend(name)
    assert f"did you mean {meant}" in str(info.value) and "\n" not in str(info.value)


def test_a_known_library_that_is_not_installed_gets_its_install_command(monkeypatch):
    import sys

    for module in ("jax", "jax.numpy"):
        monkeypatch.setitem(sys.modules, module, None)  # as if jax were not installed
    with pytest.raises(xpnet.BackendUnavailableError, match=r"needs jax, which is not installed; `pip install jax`"):
        xpnet.get_backend("jax")


def test_cupy_cuda_n_is_cupys_device_n(monkeypatch):
    from xpnet.backend import namespace

    opened = []
    monkeypatch.setattr(namespace.cuda, "import_cupy", lambda: None)
    monkeypatch.setattr(namespace, "_compat", lambda lib: None)
    monkeypatch.setattr(namespace.cuda, "open_device", lambda cupy, index: opened.append(index) or index)
    for name in ("cupy:cuda:1", "cupy:1", "cupy", "cupy:cuda"):
        xpnet.get_backend(name)
    assert opened == [1, 1, None, None]  # None: the current device
    with pytest.raises(xpnet.BackendUnavailableError, match="cupy:0, cupy:1"):
        xpnet.get_backend("cupy:gpu1")


def test_a_cupy_import_warning_makes_cupy_unavailable_not_an_error(tmp_path, monkeypatch):
    import sys
    import warnings

    (tmp_path / "cupy.py").write_text("import warnings\nwarnings.warn('CUDA path could not be detected')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as the suite's filterwarnings = error
        with pytest.raises(xpnet.BackendUnavailableError, match="UserWarning: CUDA path could not be detected"):
            xpnet.get_backend("cupy")
        with pytest.raises(pytest.skip.Exception, match="CUDA path"):  # the suite's CuPy tests skip
            available_backend("cupy")


# -- auto: CuPy only where a GPU gains -----------------------------------------------------------------
@pytest.fixture
def gpu_stand_in(monkeypatch):
    """A working "CUDA device": array_api_strict's device1 standing in for CuPy."""
    from xpnet.backend import namespace

    stand_in = available_backend("array_api_strict:device1")
    monkeypatch.setattr(namespace, "_cupy", lambda device, source: stand_in)
    return stand_in


def test_auto_with_a_gpu_waits_for_the_size_and_keeps_tutorials_on_numpy(gpu_stand_in):
    pending = xpnet.get_backend("auto")
    assert pending.name == "numpy" and pending.pending and "training chooses" in pending.reason
    model = xpnet.MLP([2, 8, 2], backend="auto")
    result = model.fit(*xpnet.datasets.load("moons", n_samples=1000, seed=0), epochs=2)
    assert result.backend == "numpy" and not model.backend.pending
    assert result.backend_reason.startswith("auto chose numpy although a CUDA device works: an epoch is")
    from xpnet import tutorials

    plain = tutorials.run("trask-2layer", backend="numpy", iterations=30).data
    assert tutorials.run("trask-2layer", backend="auto", iterations=30).data == plain  # NumPy's digits


def test_auto_picks_the_gpu_when_an_epoch_is_big_enough(gpu_stand_in):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((3000, 20)), rng.integers(0, 2, 3000)
    model = xpnet.MLP([20, 512, 2], backend="auto", seed=0)
    result = model.fit(X, y, epochs=1)
    assert model.backend.device == gpu_stand_in.device and result.device == "device1"
    assert result.backend_reason.startswith("auto chose array_api_strict on device1: an epoch is 2e+08 FLOPs")
    minibatches = xpnet.MLP([20, 512, 2], backend="auto").fit(X, y, epochs=1, batch_size=10)
    assert minibatches.backend == "numpy"  # 300 small updates: launch-bound on a GPU


def test_the_threshold_follows_the_cost_model():
    from xpnet.backend import choice

    tutorial = choice.epoch_work([2, 32, 2], 1000)  # the default `xpnet train`
    assert not tutorial.gpu_gains() and tutorial.flops == 6 * 1000 * 128
    mnist = choice.epoch_work([784, 512, 10], 60_000)
    assert mnist.gpu_gains() and mnist.updates == 1
    assert not choice.epoch_work([784, 512, 10], 60_000, batch_size=16).gpu_gains()
    assert choice.epoch_work([784, 512, 10], 60_000, batch_size=4096).gpu_gains()


def test_a_pending_backend_pickles_as_auto(gpu_stand_in):
    import pickle

    clone = pickle.loads(pickle.dumps(xpnet.get_backend("auto")))
    assert clone.pending and clone.name == "numpy"
