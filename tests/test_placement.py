"""Placement: arrays made on a device that is not the default stay there through training; the
device is made current for the run (Backend.activate); CuPy's own API only in backend/cuda.py;
one GPU per MPI rank; the step buffer in the gradients' dtype with exact counts."""

import pathlib
import re
import types

import numpy as np
import pytest
from conftest import available_backend

import xpnet
from xpnet.backend import cuda
from xpnet.parallel import buffers

PACKAGE = pathlib.Path(xpnet.__file__).parent
CUPY_API = re.compile(r"cupy\.cuda|\.cuda\.runtime|\.cuda\.memory\.|memGetInfo|get_default_memory_pool|"
                      r"import nccl|\bnccl\.|cuda\.Device\(|\.device\.id\b")


def test_only_backend_cuda_mentions_cupys_own_api():
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if p != PACKAGE / "backend" / "cuda.py" and CUPY_API.search(p.read_text())]
    assert offenders == []


OPTIONS = [dict(), dict(batch_size=64, optimizer="adam", learning_rate=0.01),
           dict(batch_size=50, momentum=0.9, nesterov=True, clip_norm=1.0, schedule="cosine", l2=1e-3),
           dict(early_stopping=True, validation_fraction=0.2, patience=2, batch_size=100, tol=1e-4)]


@pytest.mark.parametrize("device", ["device1", "device2"])
@pytest.mark.parametrize("options", OPTIONS, ids=["full", "adam", "momentum-clip", "early-stopping"])
def test_arrays_made_on_a_device_stay_there_through_training(device, options):
    backend = available_backend(f"array_api_strict:{device}")
    X, y = xpnet.datasets.load("moons", n_samples=300, noise=0.2, seed=0)
    model = xpnet.MLP([2, 16, 16, 2], backend=backend, dtype="float64", seed=1)
    result = model.fit(X, y, epochs=4, **options)  # array_api_strict refuses arrays of two devices in one operation
    assert result.device == device
    arrays = model.parameters() + [v for v in result.optimizer_state.values() if hasattr(v, "device")
                                   and not isinstance(v, np.ndarray)]
    assert arrays and all(a.device == backend.device for a in arrays)
    assert model.predict(X).device == backend.device


def test_fit_runs_inside_the_backends_activate(monkeypatch):
    entered = []
    real = xpnet.Backend.activate

    def recording(self):
        entered.append(self.describe())
        return real(self)

    monkeypatch.setattr(xpnet.Backend, "activate", recording)
    xpnet.MLP([2, 3, 2], backend="numpy").fit(np.zeros((4, 2)), np.array([0, 1, 0, 1]), epochs=1)
    assert entered == ["numpy on cpu"]


@pytest.mark.parametrize("call", ["predict", "predict_proba", "accuracy", "loss"])
def test_inference_runs_with_the_models_device_current(monkeypatch, call):
    """Every forward pass of inference happens inside the model's Backend.activate()."""
    import contextlib

    import xpnet.mlp as mlp_module

    inside = []

    @contextlib.contextmanager
    def current(self):
        inside.append(True)
        try:
            yield
        finally:
            inside.pop()

    real_forward = mlp_module.forward

    def forward(*args, **kwargs):
        assert inside, "a forward pass ran without the model's device current"
        return real_forward(*args, **kwargs)

    model = xpnet.MLP([2, 3, 2], backend="numpy")
    monkeypatch.setattr(xpnet.Backend, "activate", current)
    monkeypatch.setattr(mlp_module, "forward", forward)
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    getattr(model, call)(*((X, y) if call in ("accuracy", "loss") else (X,)))


def test_activate_is_the_cupy_device_context_and_a_no_op_elsewhere():
    device = object()
    numpy = xpnet.get_backend("numpy")
    fake = xpnet.Backend("cupy", numpy.xp, device, "test", None)
    assert fake.activate() is device  # cupy.cuda.Device is the context (cuda.activate)
    with numpy.activate():
        pass


# -- a stand-in for CuPy's module: what backend/cuda.py calls, recorded ------------------------------
def fake_cupy(count=2, free=1000, pool_free=300, pool_used=500, limit=0):
    calls = []

    class Device:
        def __init__(self, index=None):
            self.id = 0 if index is None else index

        def __int__(self):
            return self.id

        def use(self):
            calls.append(("use", self.id))

        def __enter__(self):
            calls.append(("enter", self.id))

        def __exit__(self, *exc):
            calls.append(("exit", self.id))

    pool = types.SimpleNamespace(free_bytes=lambda: pool_free, used_bytes=lambda: pool_used, get_limit=lambda: limit)
    runtime = types.SimpleNamespace(getDeviceCount=lambda: count, memGetInfo=lambda: (free, 10**6))
    module = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime, Device=Device),
                                   get_default_memory_pool=lambda: pool)
    return module, calls


def test_each_rank_gets_its_gpu_and_makes_it_current(monkeypatch):
    module, calls = fake_cupy(count=2)
    monkeypatch.setitem(__import__("sys").modules, "cupy", module)
    assert cuda.backend_for_rank("cupy", 3) == "cupy:1" and ("use", 1) in calls
    calls.clear()
    assert cuda.backend_for_rank(None, 2, "auto") is None and calls == [("use", 0)]  # auto picks the current GPU
    calls.clear()
    assert cuda.backend_for_rank("cupy:1", 0) == "cupy:1" and cuda.backend_for_rank("numpy", 1) == "numpy"
    assert calls == []


def test_free_device_memory_counts_the_pools_cached_blocks():
    module, calls = fake_cupy(free=1000, pool_free=300)
    device = module.cuda.Device(1)
    assert cuda.free_bytes(module, device) == 1300 and calls == [("enter", 1), ("exit", 1)]
    limited, _ = fake_cupy(free=1000, pool_free=300, pool_used=500, limit=900)
    assert cuda.free_bytes(limited, device) == 400  # the pool's limit binds first


class FakeMpi:
    def __init__(self, places):
        self.places = places

    def Get_rank(self):
        return 0

    def Get_size(self):
        return len(self.places)

    def allgather(self, value):
        return self.places if isinstance(value, tuple) else [value] * len(self.places)

    def bcast(self, value, root=0):
        return value



def _gpu_backend(module):
    numpy = xpnet.get_backend("numpy")
    return xpnet.Backend("cupy", numpy.xp, module.cuda.Device(0), "test", module)


@pytest.mark.parametrize("shared", [True, False])
def test_ranks_sharing_a_gpu_or_a_failing_nccl_stage_through_the_host(monkeypatch, shared):
    module, _ = fake_cupy()
    module.cuda.runtime.deviceGetPCIBusId = lambda index: "0000:01:00.0"

    def refuse(*args):
        raise RuntimeError("NCCL_ERROR_INVALID_USAGE: duplicate GPU")

    nccl = types.SimpleNamespace(available=True, get_unique_id=lambda: b"x" * 128, NcclCommunicator=refuse)
    monkeypatch.setitem(__import__("sys").modules, "cupy", module)
    monkeypatch.setitem(__import__("sys").modules, "cupy.cuda", module.cuda)
    module.cuda.nccl = nccl
    monkeypatch.setitem(__import__("sys").modules, "cupy.cuda.nccl", nccl)
    monkeypatch.delenv("XPNET_CUDA_AWARE_MPI", raising=False)
    places = [("node", "0000:01:00.0")] * 2 if shared else [("node", "0000:01:00.0"), ("node", "0000:02:00.0")]
    reducer, note = cuda.device_allreducer(_gpu_backend(module), FakeMpi(places))
    assert reducer is None
    assert note.startswith("xpnet: note: gradients are summed through host memory") and "\n" not in note
    assert ("share a GPU" in note) if shared else ("NCCL failed to set up (RuntimeError" in note)


def test_float32_step_buffers_keep_counts_and_flags_exact():
    counts = [2**39 + 12345, 77_777_777, 3]
    parts = [buffers.encode(n, 0.5, flag, np.float32) for n, flag in zip(counts, (0, 1, 0))]
    summed = np.sum(np.asarray(parts, dtype=np.float32), axis=0, dtype=np.float32)  # as MPI/NCCL add them
    n, loss, flags = buffers.decode(summed, np.float32)
    assert n == sum(counts) and flags == 1 and loss == 1.5
    assert buffers.decode(np.asarray(buffers.encode(7, 0.25, 1, np.float64)), np.float64) == (7, 0.25, 1.0)


def test_the_step_buffer_has_the_gradients_dtype():
    xp = xpnet.get_backend("numpy").xp
    assert buffers.buffer_dtype([xp.zeros(3, dtype=xp.float32)] * 2) == np.float32
    assert buffers.buffer_dtype([xp.zeros(3, dtype=xp.float64)]) == np.float64
    packed = buffers.pack([np.ones((2, 2), np.float32)], buffers.encode(5, 1.0, 0, np.float32), np.float32)
    assert packed.dtype == np.float32 and packed.size == 4 + buffers.tail_size(np.float32)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_device_step_buffer_is_built_reduced_and_split_on_the_device(dtype):
    backend = available_backend("array_api_strict:device2")
    xp = backend.xp
    grads = [backend.asarray(np.arange(6.0).reshape(2, 3), dtype), backend.asarray([0.5, -1.0], dtype)]
    loss = xp.sum(grads[1])  # a 0-d device array: it stays on the device
    seen = []

    def two_identical_ranks(buffer):  # the reducer sees the whole buffer (NCCL would sum it in place)
        seen.append((buffer.dtype, buffer.device))

    kind = np.float32 if dtype == "float32" else np.float64
    out, tail = buffers.reduce_on_device(backend, two_identical_ranks, grads, 300, loss, 1, kind)
    assert seen == [(getattr(xp, dtype), backend.device)]  # the gradients' dtype, on the device: nothing cast
    assert [o.device for o in out] == [backend.device] * 2 and out[0].shape == (2, 3)
    np.testing.assert_array_equal(xpnet.to_numpy(out[0]), np.arange(6.0).reshape(2, 3))
    summed = xpnet.to_numpy(tail) * 2  # as two processes' tails add up
    assert buffers.decode(summed, kind) == (600, -1.0, 2.0)


def test_bench_memory_reports_the_device_pools_peak_for_device_backends():
    import dataclasses

    from xpnet.bench.timing import peak_memory

    @dataclasses.dataclass(frozen=True)
    class Device(xpnet.Backend):
        def uses_host_memory(self):
            return False

        def reset_peak_memory(self):
            object.__setattr__(self, "reason", "reset")

        def peak_memory(self):
            return 4096 if self.reason == "reset" else None

    numpy = xpnet.get_backend("numpy")
    device = Device("fake", numpy.xp, "gpu0", "", numpy._module)
    assert peak_memory(lambda: None, device) == {"device_peak_bytes": 4096}
    assert numpy.peak_memory() is None
