"""xpnet.engine.stream: rows read from a host source a chunk at a time give the bits of rows on the device."""

import dataclasses
from unittest import mock

import numpy as np
import pytest
from conftest import available_backend
from helpers import pass_gradients

import xpnet
from xpnet.core import losses
from xpnet.core.ops import Ops
from xpnet.data.preprocess import Scaler
from xpnet.engine import fullbatch, numpy_ops, plan, stream
from xpnet.engine.kernels import numba_support
from xpnet.engine.rows import HostRows
from xpnet.engine.stream import StreamedRows, StreamedTargets
from xpnet.errors import XpnetTypeError, XpnetValueError


def mapped_table(tmp_path, n, width, dtype=np.float32, seed=0):
    """A float table saved as .npy with a label column last (classes 0..2), and its read-only map."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, width + 1)) * np.linspace(0.5, 3, width + 1) + np.linspace(-2, 2, width + 1)
    A[:, -1] = rng.integers(0, 3, size=n)
    np.save(tmp_path / "t.npy", A.astype(dtype))
    return np.load(tmp_path / "t.npy", mmap_mode="r")


def sources(M, seed=1):
    """The ways training sees a mapped file: all rows, a shuffled index with a scaler (a split and
    --standardize), the features a strided view of the map (the label column left out)."""
    n, width = M.shape[0], M.shape[1] - 1
    order = np.random.default_rng(seed).permutation(n)[: n - n // 7]
    features = HostRows(M[:, :width])
    return {"all": features, "split+scaler": HostRows(M[:, :width], order, scaler=Scaler.fit(features)),
            "columns": HostRows(M, columns=np.arange(1, width + 1))}


def resident(model, rows: HostRows):
    """What training held before streaming: the float64 rows, then on the device in the model's dtype."""
    return model.as_inputs(rows.materialize())


NEEDS_NUMBA = pytest.mark.skipif(not numba_support.available(), reason=numba_support.unavailable_reason() or "")
NETS = [([6, 8, 3], "softmax", "numpy"), pytest.param([6, 8, 3], "softmax", "jit", marks=NEEDS_NUMBA),
        ([6, 9, 5, 3], "softmax", "auto"),
        ([6, 7, 1], "identity", "auto"), ([6, 12, 2], "sigmoid", "numpy"), ([6, 40, 3], "softmax", "generic")]


@pytest.mark.parametrize("sizes, output, kernels", NETS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_streamed_pass_has_the_bits_of_a_resident_one(tmp_path, sizes, output, kernels, dtype):
    """Every kernel and the generic pass, threads on, chunks forced small and at their own size,
    with the target column of a weighted loss: identical gradients and loss."""
    M = mapped_table(tmp_path, 3000, sizes[0])
    model = xpnet.MLP(sizes, output=output, backend="numpy", dtype=dtype, seed=3)
    ops = numpy_ops.NumpyOps(model.xp)
    for name, rows in sources(M).items():
        n = rows.shape[0]
        y = np.random.default_rng(n).integers(0, sizes[-1], n) if output == "softmax" else \
            np.random.default_rng(n).random((n, sizes[-1]))
        Xs, Ts = StreamedRows(rows, model.backend, model.dtype), model.as_targets(y, n, streamed=True)
        Xr, Tr = resident(model, rows), model.as_targets(y, n)
        weights = np.random.default_rng(2).random(n) * 2
        weighted = dataclasses.replace(model.spec, loss=losses.weighted(model.spec.loss))
        cases = [(model.spec, Xs, Ts, Xr, Tr), (weighted, Xs, Ts.with_weights(weights), Xr,
                                                np.concatenate([Tr, weights.astype(dtype)[:, None]], axis=1))]
        for chunk in (None, 200):
            with mock.patch.object(fullbatch, "PARALLEL_MIN", 0):
                for spec, X1, T1, X2, T2 in cases:
                    kernel = "auto" if kernels == "generic" else kernels
                    impl = ops if kernels != "generic" else Ops(model.xp)
                    got = pass_gradients(impl, spec, model.W, model.b, X1, T1, "mean", with_loss=True, rows=chunk,
                                         kernel=kernel)
                    want = pass_gradients(impl, spec, model.W, model.b, X2, T2, "mean", with_loss=True, rows=chunk,
                                          kernel=kernel)
                    for a, b in zip(got.flat(), want.flat()):
                        np.testing.assert_array_equal(a, b, err_msg=name)
                    assert float(got.data_loss) == float(want.data_loss), name


@pytest.mark.parametrize("name", ["array_api_strict", "array_api_strict:no_float64", "torch"])
def test_streamed_and_resident_passes_agree_bit_for_bit_on_other_backends(tmp_path, name):
    backend = available_backend(name)
    dtype = "float64" if "float64" in backend.dtype_names() else "float32"
    M = mapped_table(tmp_path, 2000, 5)
    model = xpnet.MLP([5, 9, 3], backend=backend, dtype=dtype, seed=1)
    rows = sources(M)["split+scaler"]
    n = rows.shape[0]
    y = np.arange(n) % 3
    Xs, Ts = StreamedRows(rows, backend, model.dtype), model.as_targets(y, n, streamed=True)
    Xr, Tr = resident(model, rows), model.as_targets(y, n)
    for chunk in (150, None):
        got = pass_gradients(_ops(model), model.spec, model.W, model.b, Xs, Ts, "sum", with_loss=True, rows=chunk)
        want = pass_gradients(_ops(model), model.spec, model.W, model.b, Xr, Tr, "sum", with_loss=True, rows=chunk)
        for a, b in zip(got.flat(), want.flat()):
            np.testing.assert_array_equal(xpnet.to_numpy(a), xpnet.to_numpy(b))
        assert float(got.data_loss) == float(want.data_loss)


def _ops(model):
    from xpnet.engine.numpy_ops import get_ops

    return get_ops(model.backend)


class Spy:
    """The uploader protocol, recording which chunks start and finish (a stand-in for CuPy's)."""

    def __init__(self, backend, dtype):
        self.backend, self.dtype, self.events = backend, dtype, []

    def start(self, host):
        self.events.append(("start", float(host[0, 0]), host.shape[0]))
        return host

    def finish(self, ticket):
        self.events.append(("finish", float(ticket[0, 0]), ticket.shape[0]))
        return self.backend.asarray(ticket, self.dtype)


@pytest.mark.parametrize("name", ["array_api_strict", "torch"])
def test_each_chunk_is_sent_once_and_the_next_one_starts_before_the_current_one_computes(name):
    """On a device, the chunk a lane reads next is started when the current one is handed over
    (CuPy's copy of it then overlaps the compute); every chunk is read from the host once."""
    backend = available_backend(name)
    data = np.arange(1000 * 3, dtype=np.float64).reshape(1000, 3) / 3  # row r starts with r
    X = StreamedRows(HostRows(data), backend, backend.dtype("float32"))
    spy = X.uploader = Spy(backend, X.dtype)
    groups = [[(0, 100), (400, 500), (800, 900)], [(100, 200), (500, 600), (900, 1000)],
              [(200, 300), (600, 700)], [(300, 400), (700, 800)]]
    view = X.reading(groups, parallel=False)
    order = [span for group in groups for span in group]
    for a, z in order:
        chunk = view[a:z]
        assert chunk.shape == (z - a, 3) and float(xpnet.to_numpy(chunk)[0, 0]) == a
    starts = [e[1] for e in spy.events if e[0] == "start"]
    assert starts == [float(a) for a, _ in order]  # each once, in the order the lanes read them
    for k, (a, _) in enumerate(order[:-1]):  # chunk k+1 started before chunk k was handed over... after k's finish
        finish_k = spy.events.index(("finish", float(a), 100))
        assert spy.events[finish_k + 1] == ("start", float(order[k + 1][0]), 100)
    assert view._pending is None  # the last chunk has no successor: nothing left on its way
    spy.events.clear()
    assert float(xpnet.to_numpy(X[50:60])[0, 0]) == 50 and float(xpnet.to_numpy(X[60:70])[0, 0]) == 60
    assert [e[0] for e in spy.events].count("start") == 3  # read in order, the following rows are on their way


def test_lanes_on_threads_prefetch_their_own_next_chunk(tmp_path):
    M = mapped_table(tmp_path, 1000, 4)
    rows = HostRows(M[:, :4])
    seen = []
    with mock.patch.object(HostRows, "prefetch", lambda self, a, z: seen.append((a, z))):
        X = StreamedRows(rows, xpnet.get_backend("numpy"), np.float32)
        view = X.reading([[(0, 10), (40, 50)], [(10, 20), (50, 60)]], parallel=True)
        view[0:10], view[10:20], view[40:50], view[50:60]
        assert seen == [(40, 50), (50, 60)]
        seen.clear()
        X[0:10], X[990:1000]  # read alone: the following rows
        assert seen == [(10, 20)]


def test_prefetch_advises_the_bytes_of_the_rows(tmp_path):
    M = mapped_table(tmp_path, 5000, 32)  # rows of 33 float32: 132 bytes, features a strided view
    rows = HostRows(M[:, :32])
    mm, base, size = rows._map
    assert size == len(mm) and base <= M.ctypes.data < base + size
    calls = []

    class Recorder:
        def madvise(self, option, start, length):
            calls.append((option, start, length))

    rows.__dict__["_map"] = (Recorder(), base, size)
    rows.prefetch(100, 200)
    import mmap

    first = M.ctypes.data - base + 100 * 132
    ((option, start, length),) = calls
    assert option == mmap.MADV_WILLNEED and start % mmap.PAGESIZE == 0
    assert start <= first < start + mmap.PAGESIZE and start + length == first + 100 * 132
    calls.clear()
    picked = rows.subset(np.arange(1000, 3000, 2))  # increasing rows: the range they span
    picked.__dict__["_map"] = (Recorder(), base, size)
    picked.prefetch(0, 10)
    assert calls and calls[0][1] + calls[0][2] == M.ctypes.data - base + 1019 * 132
    calls.clear()
    shuffled = rows.subset(np.random.default_rng(0).permutation(5000))
    shuffled.__dict__["_map"] = (Recorder(), base, size)
    shuffled.prefetch(0, 10)
    assert not calls  # scattered rows: nothing to advise
    HostRows(M[:, :32]).prefetch(0, 5000)  # the real madvise takes it
    assert HostRows(np.zeros((4, 2)))._map is None  # data in memory: nothing to advise


def test_reading_a_chunk_converts_standardizes_and_checks(tmp_path):
    M = mapped_table(tmp_path, 500, 3, dtype=np.float64)
    rows = sources(M)["split+scaler"]
    backend = xpnet.get_backend("numpy")
    X = StreamedRows(rows, backend, np.float32)
    assert X.verify  # a scaler could overflow float32: checked, once (training) or per chunk (inference)
    np.testing.assert_array_equal(X[10:20], rows.rows(10, 20).astype(np.float32))
    np.testing.assert_array_equal(X.take([5, 1, 5]), rows.rows(0, 6)[[5, 1, 5]].astype(np.float32))
    assert X[10:20].dtype == np.float32 and X[10:20].flags.c_contiguous
    with pytest.raises(XpnetTypeError, match="a chunk at a time"):
        np.asarray(X)
    with pytest.raises(XpnetTypeError, match="row slices"):
        X[[1, 2]]
    assert not StreamedRows(HostRows(M[:, :3], checked=True), backend, np.float64).verify  # scanned, no overflow
    bad = np.array(M[:, :3])
    bad[321, 1] = np.nan
    with pytest.raises(XpnetValueError, match=r"NaN or Inf \(row 321, column 1\)"):
        StreamedRows(HostRows(bad), backend, np.float64)[300:400]
    bad[321, 1] = 1e300
    with pytest.raises(XpnetValueError, match=r"1e\+300 \(row 321, column 1\), beyond float32's range"):
        StreamedRows(HostRows(bad), backend, np.float32)[300:400]
    with pytest.raises(XpnetValueError, match="beyond float32's range"):
        StreamedRows(HostRows(bad), backend, np.float32).check()
    StreamedRows(HostRows(bad), backend, np.float64).check()  # float64 holds it


def test_targets_are_made_per_chunk_as_the_resident_ones(backend):
    dtype = "float64" if "float64" in backend.dtype_names() else "float32"
    dt = backend.dtype(dtype)
    y = np.array([2, 0, 1, 1, 2, 0])
    T = StreamedTargets(backend, dt, "softmax", 3, y, 6)
    want = xpnet.to_numpy(xpnet.MLP([2, 3], backend=backend, dtype=dtype).as_targets(y, 6))
    np.testing.assert_array_equal(xpnet.to_numpy(T[1:4]), want[1:4])
    np.testing.assert_array_equal(xpnet.to_numpy(T.take([5, 0])), want[[5, 0]])
    weighted = T.with_weights(np.array([1, 2, 3, 4, 5, 6.0]))
    assert weighted.shape == (6, 4)
    np.testing.assert_array_equal(xpnet.to_numpy(weighted.subset([4, 5])[0:2])[:, 3], [5, 6])
    with pytest.raises(XpnetValueError, match="negative"):
        T.with_weights(-np.ones(6))
    with pytest.raises(XpnetValueError, match="class labels in 0..2"):
        StreamedTargets(backend, dt, "softmax", 3, np.array([0, 3]), 2)
    values = StreamedTargets(backend, dt, "identity", 1, np.linspace(0, 1, 6), 6)
    np.testing.assert_allclose(xpnet.to_numpy(values[2:4])[:, 0], [0.4, 0.6])


def test_residency_streams_on_numpy_and_where_the_device_has_no_room(monkeypatch):
    numpy = xpnet.get_backend("numpy")
    assert stream.residency(numpy, 10) == "streamed"
    assert stream.residency(numpy, 10, streamable=False) == "device"  # a pass over all rows at once needs them
    torch = available_backend("torch")
    assert stream.residency(torch, 10) == "device"
    monkeypatch.setattr(type(torch), "available_memory", lambda self: 1000)
    assert stream.residency(torch, 10_000) == "streamed" and stream.residency(torch, 800) == "device"
    assert plan.takes_all_rows(xpnet.MLP([2, 3, 2]).spec, numpy_ops.SMALL)
    assert not plan.takes_all_rows(xpnet.MLP([2, 3, 2]).spec, numpy_ops.SMALL + 1)
    assert plan.takes_all_rows(xpnet.MLP([2, 3, 2], dropout=0.1).spec, 10**6)


def test_a_source_is_copied_to_a_device_a_block_at_a_time(tmp_path, backend, monkeypatch):
    dtype = "float64" if "float64" in backend.dtype_names() else "float32"
    M = mapped_table(tmp_path, 700, 4)
    rows = sources(M)["split+scaler"]
    monkeypatch.setattr(stream, "FILL_BYTES", 8 * 4 * 64)  # blocks of 64 rows
    model = xpnet.MLP([4, 3], backend=backend, dtype=dtype)
    got = stream.resident(rows, backend, model.dtype)
    np.testing.assert_array_equal(xpnet.to_numpy(got), xpnet.to_numpy(resident(model, rows)))
