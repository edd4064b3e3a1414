"""Memory estimates and the early, clear failure when a run does not fit."""

import dataclasses

import numpy as np
import pytest

import xpnet
from xpnet import memory


@dataclasses.dataclass(frozen=True)
class TinyDevice(xpnet.Backend):
    """A backend that reports only ``free`` bytes of memory (like a small GPU)."""

    free: int = 1 << 20

    def available_memory(self):
        return self.free


def tiny(free=1 << 20):
    real = xpnet.get_backend("numpy")
    return TinyDevice(real.name, real.xp, real.device, "test", real._module, free)


def test_estimate_counts_data_parameters_and_activations():
    # 2 -> 4 -> 2, 10 rows, float64: data 10*(2+2); params (3*4 + 5*2) = 22, x4;
    # activations 10 * ((2 + 4) + 3 * (4 + 2)) = 240.
    assert memory.estimate_bytes([2, 4, 2], 10, 8) == (40 + 88 + 240) * 8
    assert memory.estimate_bytes([2, 4, 2], 10, 8, rows_at_once=5) == (40 + 88 + 120) * 8


def test_tutorial_sized_estimate_matches_the_issue_scale():
    # The tutorial code needs ~15 GiB at N=1e5, H=4096 float64; ours counts the same order.
    need = memory.estimate_bytes([2, 4096, 2], 100_000, 8)
    assert 5 * 2**30 < need < 30 * 2**30


def test_run_that_does_not_fit_fails_early_with_the_estimate_and_the_fix():
    backend = tiny()
    model = xpnet.MLP([2, 512, 2], backend=backend)
    X, y = np.zeros((10_000, 2)), np.zeros(10_000, dtype=int)
    with pytest.raises(memory.XpnetMemoryError) as info:
        model.fit(X, y, epochs=1)
    message = str(info.value)
    assert "MiB" in message and "1.0 MiB free" in message and "--batch-size" in message
    assert isinstance(info.value, MemoryError) and isinstance(info.value, xpnet.XpnetError)


def test_run_that_fits_trains():
    model = xpnet.MLP([2, 8, 2], backend=tiny(1 << 30))
    model.fit(np.zeros((100, 2)), np.zeros(100, dtype=int), epochs=2)


def test_host_memory_is_reported():
    free = xpnet.get_backend("numpy").available_memory()
    assert free is None or free > 0


def test_out_of_memory_errors_become_the_same_message():
    backend = xpnet.get_backend("numpy")
    assert backend.is_out_of_memory(MemoryError()) and not backend.is_out_of_memory(ValueError())
    err = memory.out_of_memory(backend, MemoryError(), [2, 8, 2], 100, 4)
    assert "ran out of memory" in str(err) and "--batch-size" in str(err)


@pytest.mark.parametrize("batch_size", [None, 20])  # the full-batch epoch and the batched one
def test_out_of_memory_during_training_keeps_the_weights_and_says_what_to_do(monkeypatch, batch_size):
    from xpnet import optim

    model = xpnet.MLP([2, 8, 2], backend="numpy")
    before = [w.copy() for w in model.parameters()]
    calls = []

    def exhausted(*args, **kwargs):  # the update of the 4th epoch runs out of memory
        calls.append(1)
        if len(calls) > 3 * (1 if batch_size is None else 3):
            raise MemoryError("device memory exhausted")
        return real(*args, **kwargs)

    real = optim.SGD.step
    monkeypatch.setattr(optim.SGD, "step", exhausted)
    with pytest.raises(memory.XpnetMemoryError, match="ran out of memory.*--batch-size"):
        model.fit(np.zeros((50, 2)), np.zeros(50, dtype=int), epochs=10, log_every=1, batch_size=batch_size)
    assert all(np.all(np.isfinite(w)) for w in model.parameters())
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.parameters()))  # 3 epochs were kept
