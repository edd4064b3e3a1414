"""Training on a memory map or HostRows: streamed a chunk at a time, with the bits of training in memory."""

import tracemalloc

import numpy as np
import pytest
from conftest import available_backend

import xpnet
from xpnet.data.preprocess import Scaler
from xpnet.engine.kernels import numba_support
from xpnet.engine.rows import HostRows
from xpnet.errors import XpnetValueError


def mapped(tmp_path, n=3000, features=6, seed=0, dtype=np.float32, name="x.npy"):
    """``(memmap of the features, labels 0..2, the same features in memory)``."""
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, features)) * np.linspace(0.5, 2, features)).astype(dtype)
    y = (np.argmax(X[:, :3], axis=1) + (X[:, 3] > 1)) % 3
    np.save(tmp_path / name, X)
    return np.load(tmp_path / name, mmap_mode="r"), y, X


def weights_of(model):
    return [xpnet.to_numpy(a).copy() for a in model.parameters()]


def assert_same_training(a, b):
    (result_a, model_a), (result_b, model_b) = a, b
    for p, q in zip(weights_of(model_a), weights_of(model_b)):
        np.testing.assert_array_equal(p, q)
    assert result_a.history == result_b.history and result_a.epoch_losses == result_b.epoch_losses
    assert result_a.validation_history == result_b.validation_history and result_a.best_epoch == result_b.best_epoch


def trained(X, y, sizes=(6, 16, 3), backend="numpy", dtype="float32", kernels="auto", output="softmax", **options):
    model = xpnet.MLP(list(sizes), backend=backend, dtype=dtype, kernels=kernels, output=output, seed=2)
    return model.fit(X, y, **{"epochs": 4, "learning_rate": 0.3, "log_every": 1, **options}), model


CASES = {
    "full batch": {},
    "full batch, jit kernels, momentum": {"kernels": "jit", "momentum": 0.9},
    "deep, numpy kernels": {"sizes": (6, 12, 7, 3), "kernels": "numpy"},
    "float64": {"dtype": "float64", "optimizer": "adam", "learning_rate": 0.01},
    "minibatches": {"batch_size": 256, "shuffle": True, "momentum": 0.5},
    "early stopping, split": {"early_stopping": True, "validation_fraction": 0.2, "patience": 2, "epochs": 6},
    "stall rule, l2": {"tol": 1e-9, "n_iter_no_change": 3, "l2": 0.01},
    "sample weights": {"sample_weight": True},
    "regression": {"output": "identity", "sizes": (6, 10, 1), "learning_rate": 0.05},
}


NEEDS_NUMBA = pytest.mark.skipif(not numba_support.available(), reason=numba_support.unavailable_reason() or "")


@pytest.mark.parametrize("case", [pytest.param(c, marks=NEEDS_NUMBA) if CASES[c].get("kernels") == "jit" else c
                                  for c in CASES])
def test_fit_on_a_memory_map_streams_it_and_equals_fit_in_memory(tmp_path, case):
    M, y, X = mapped(tmp_path)
    options = dict(CASES[case])
    if options.get("output") == "identity":
        y = X[:, 0] * 0.5 - X[:, 1]
    if options.pop("sample_weight", False):
        options["sample_weight"] = np.linspace(0.2, 1.8, X.shape[0])
    in_memory, streamed = trained(X, y, **options), trained(M, y, **options)
    assert in_memory[0].data_residency == "device" and streamed[0].data_residency == "streamed"
    assert streamed[0].to_dict()["data_residency"] == "streamed"
    assert_same_training(streamed, in_memory)


def test_prepared_host_rows_train_as_their_float64_copy(tmp_path):
    """What `xpnet train --data big.npy --standardize --validation-fraction` hands to fit: rows of
    a map by a shuffled index, standardized per chunk; and the validation rows for early stopping."""
    M, y, X = mapped(tmp_path, n=2500)
    order = np.random.default_rng(4).permutation(2500)
    train, held = HostRows(M, order[500:]), HostRows(M, order[:500])
    scaler = Scaler.fit(train)
    train, held = train.with_scaler(scaler), held.with_scaler(scaler)
    options = {"early_stopping": True, "patience": 3, "epochs": 5}
    streamed = trained(train, y[order[500:]], validation_data=(held, y[order[:500]]), **options)
    copied = trained(train.materialize(), y[order[500:]], validation_data=(held.materialize(), y[order[:500]]),
                     **options)
    assert streamed[0].data_residency == "streamed"
    assert_same_training(streamed, copied)


@pytest.mark.parametrize("name", ["array_api_strict", "array_api_strict:no_float64", "torch"])
def test_off_numpy_a_source_stays_on_the_device_when_it_fits_and_streams_when_it_does_not(tmp_path, name,
                                                                                          monkeypatch):
    backend = available_backend(name)
    dtype = "float64" if "float64" in backend.dtype_names() else "float32"
    M, y, X = mapped(tmp_path, n=1200)
    options = {"backend": backend, "dtype": dtype, "sample_weight": np.linspace(0.5, 1.5, 1200)}
    in_memory = trained(X, y, **options)
    fits = trained(M, y, **options)
    assert fits[0].data_residency == "device"
    assert_same_training(fits, in_memory)
    # a device with room for the chunks but not the rows: streamed
    monkeypatch.setattr(type(backend), "available_memory", lambda self: 1000)  # memory checks start at 1 MiB
    streamed = trained(M, y, **options)
    minibatches = trained(M, y, batch_size=300, **options)
    monkeypatch.undo()
    assert streamed[0].data_residency == minibatches[0].data_residency == "streamed"
    assert_same_training(streamed, in_memory)
    assert_same_training(minibatches, trained(X, y, batch_size=300, **options))


def test_inference_reads_a_source_in_chunks_with_the_results_of_an_array(tmp_path, monkeypatch):
    from xpnet import mlp

    M, y, X = mapped(tmp_path, n=2000)
    model = trained(X, y)[1]
    monkeypatch.setattr(mlp, "PREDICT_BYTES", 16 * 4 * 300)  # chunks of 300 rows
    np.testing.assert_array_equal(model.predict_proba(M), model.predict_proba(X))
    np.testing.assert_array_equal(model.predict(HostRows(M)), model.predict(X))
    assert model.accuracy(M, y) == model.accuracy(X, y)
    assert model.loss(M, y, l2=0.1) == model.loss(X, y, l2=0.1)
    assert model.loss(HostRows(M)[100:900], y[100:900]) == model.loss(X[100:900], y[100:900])
    with pytest.raises(XpnetValueError, match=r"the model expects \(n_samples, 6\)"):
        model.predict(M[:, :4])


def test_training_on_a_map_never_copies_it(tmp_path):
    """The allocations of a whole fit on a 48 MB map: a pass's chunks and activations (about 7.5 MB
    here: four lanes of 16,384 rows), not the file; a fit on rows in memory converts them (the control)."""
    M, y, X = mapped(tmp_path, n=1_000_000, features=12, name="big.npy")
    y = y.astype(np.int64)
    model = xpnet.MLP([12, 16, 3], backend="numpy", seed=0)
    model.fit(M[:500], y[:500], epochs=1)  # what a first fit sets up (threads, kernels) is not data
    for data, labels in ((M, y), (X[:200_000], y[:200_000])):
        tracemalloc.start()
        try:
            result = model.fit(data, labels, epochs=2, learning_rate=0.1)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        if data is M:
            assert result.data_residency == "streamed" and peak < M.nbytes / 4, peak
        else:
            assert result.data_residency == "device" and peak > data.nbytes, peak


def test_a_map_with_nan_or_the_wrong_width_is_refused_before_training(tmp_path):
    M, y, X = mapped(tmp_path, n=600)
    bad = X.copy()
    bad[417, 2] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(XpnetValueError, match="NaN or Inf"):
        trained(np.load(tmp_path / "bad.npy", mmap_mode="r"), y)
    with pytest.raises(XpnetValueError, match=r"expects \(n_samples, 6\)"):
        trained(M[:, :5], y)
    with pytest.raises(XpnetValueError, match="class labels in 0..2"):
        trained(M, y + 1)


def test_a_resumed_streamed_run_equals_an_uninterrupted_one(tmp_path):
    M, y, _ = mapped(tmp_path, n=1500)
    options = {"batch_size": 200, "momentum": 0.9, "log_every": 3}
    whole = trained(M, y, epochs=6, **options)
    first, model = trained(M, y, epochs=3, **options)
    rest = model.fit(M, y, epochs=3, initial_epoch=3, optimizer_state=first.optimizer_state, learning_rate=0.3,
                     **options)
    assert rest.data_residency == "streamed"
    for p, q in zip(weights_of(model), weights_of(whole[1])):
        np.testing.assert_array_equal(p, q)
