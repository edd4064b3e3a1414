"""Streaming preprocessing: rows read a block at a time by index, statistics in one pass over blocks."""

import numpy as np
import pytest

from xpnet.data import preprocess, rows
from xpnet.data.preprocess import Moments, Scaler
from xpnet.data.rows import HostRows


def table(n=1000, width=5, seed=0, dtype=np.float64):
    """Columns of very different scales and offsets (the case where a naive one-pass variance loses digits)."""
    rng = np.random.default_rng(seed)
    scales = np.geomspace(1e-3, 1e3, width)
    return (rng.normal(size=(n, width)) * scales + np.linspace(-5, 5, width) * scales).astype(dtype)


@pytest.fixture
def mapped(tmp_path):
    """A float32 table saved as .npy and mapped, with its label (a whole number) in the last column."""
    A = np.column_stack([table(777, 4, dtype=np.float32), np.arange(777) % 3]).astype(np.float32)
    np.save(tmp_path / "t.npy", A)
    return A, np.load(tmp_path / "t.npy", mmap_mode="r")


def test_host_rows_read_the_selected_rows_and_columns_converted_and_scaled(mapped):
    A, M = mapped
    index = np.random.default_rng(1).permutation(777)[:500]
    for data, columns in ((M[:, :-1], None), (M, np.array([0, 2])), (M, slice(1, 3))):
        picked = A[:, :-1] if columns is None else A[:, columns]
        scaler = Scaler(np.linspace(-1, 2, picked.shape[1]), np.linspace(0.5, 4, picked.shape[1]))
        full = HostRows(data, index, columns)
        assert full.shape == (500, picked.shape[1]) and len(full) == 500
        np.testing.assert_array_equal(full.rows(10, 40), picked[index[10:40]].astype(np.float64))
        np.testing.assert_array_equal(full.take([7, 3, 499]), picked[index[[7, 3, 499]]].astype(np.float64))
        np.testing.assert_array_equal(full.materialize(), picked[index].astype(np.float64))
        scaled = HostRows(data, index, columns, scaler)
        np.testing.assert_array_equal(scaled.materialize(), scaler.transform(picked[index]))
        np.testing.assert_array_equal(scaled.rows(5, 9), scaler.transform(picked[index[5:9]]))
    everything = HostRows(M[:, :-1])
    assert everything.mapped and everything.shape == (777, 4)
    assert np.shares_memory(everything.raw(0, 10), M)  # no index, no conversion asked: a view of the map
    assert not HostRows(A).mapped


def test_blocks_cover_the_rows_in_bounded_pieces():
    X = table(1000, 3)
    seen = [(start, stop, block.shape) for start, stop, block in HostRows(X).blocks(300)]
    assert seen == [(0, 300, (300, 3)), (300, 600, (300, 3)), (600, 900, (300, 3)), (900, 1000, (100, 3))]
    assert rows.block_rows(1) == rows.BLOCK_BYTES // 8 and rows.block_rows(10**12) == 1
    assert list(rows.spans(5, 2)) == [(0, 2), (2, 4), (4, 5)] and list(rows.spans(0, 2)) == []


def test_materialize_holds_the_result_and_one_block_not_two_copies(tmp_path, monkeypatch):
    import tracemalloc

    np.save(tmp_path / "m.npy", table(40_000, 5, dtype=np.float32))
    M = np.load(tmp_path / "m.npy", mmap_mode="r")
    monkeypatch.setattr(rows, "BLOCK_BYTES", 8 * 4 * 500)  # 500 rows a block
    rows_read = HostRows(M[:, 1:], np.arange(40_000)[::-1].copy(), None, Scaler(np.zeros(4), np.ones(4)))
    rows_read.rows(0, 10)  # what a first call sets up is not data
    tracemalloc.start()
    try:
        out = rows_read.materialize()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (40_000, 4) and out.nbytes == 40_000 * 4 * 8
    assert peak < out.nbytes + 128 * 1024  # the result and a block's buffers (16 KB each), not the data again


@pytest.mark.parametrize("n, block", [(1000, None), (1000, 64), (1000, 1), (7, 3)])
def test_streaming_statistics_equal_numpys_in_memory_ones(n, block):
    X = table(n)
    got = Moments.of(X, block)
    assert got.n == n
    np.testing.assert_allclose(got.mean, X.mean(axis=0), rtol=1e-12, atol=0)
    np.testing.assert_allclose(np.sqrt(got.variance), X.std(axis=0), rtol=1e-12)
    if block is None:  # one block: NumPy's own operations, bit for bit
        assert np.array_equal(got.mean, X.mean(axis=0)) and np.array_equal(np.sqrt(got.variance), X.std(axis=0))


def test_the_scaler_fitted_over_blocks_of_indexed_rows_equals_the_one_fitted_on_the_copy(mapped, monkeypatch):
    A, M = mapped
    index = np.random.default_rng(2).permutation(777)[:600]
    want = Scaler.fit(A[index, :-1].astype(np.float64))
    monkeypatch.setattr(rows, "BLOCK_BYTES", 8 * 4 * 37)  # 37 rows a block: 17 blocks
    got = Scaler.fit(HostRows(M[:, :-1], index))
    assert len(list(HostRows(M[:, :-1], index).blocks())) == 17
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-12)
    np.testing.assert_allclose(got.scale, want.scale, rtol=1e-12)
    np.testing.assert_allclose(got.transform(A[index[:9], :-1]), want.transform(A[index[:9], :-1]), rtol=1e-12,
                               atol=1e-12)


def test_constant_features_keep_scale_one_and_no_rows_give_nan_means():
    X = np.column_stack([np.full(2000, 4.0), table(2000, 1)[:, 0]])
    scaler = Scaler.fit(HostRows(X), None)
    assert scaler.scale[0] == 1.0 and scaler.scale[1] != 1.0
    empty = Moments.of(np.zeros((0, 2)))
    assert empty.n == 0 and np.isnan(empty.mean).all()


def test_merged_moments_of_parts_equal_the_whole():
    X = table(1001)
    parts = [Moments.of(X[a:b]) for a, b in ((0, 10), (10, 10), (10, 600), (600, 1001))]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    whole = Moments.of(X)
    assert merged.n == 1001
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-13)
    np.testing.assert_allclose(merged.m2, whole.m2, rtol=1e-12)


class Summing:
    """A communicator of ``size`` processes whose collective sums are given in advance:
    every ``sum_floats`` call returns the next of ``totals`` (what the other processes would add)."""

    def __init__(self, size, totals):
        self.size, self.totals, self.sent = size, list(totals), []

    def sum_floats(self, values):
        self.sent.append([float(v) for v in values])
        return self.totals.pop(0)


def test_moments_over_processes_add_counts_means_and_spreads():
    X = table(900)
    blocks = [X[:250], X[250:251], X[251:900], X[:0]]  # uneven, one process with a single row, one with none
    local = [Moments.of(b) for b in blocks]
    # the first collective: each process sends [n, n * mean]; their sum gives the global mean
    firsts = [[m.n, *(m.mean * m.n if m.n else np.zeros(5))] for m in local]
    first = list(np.sum(firsts, axis=0))
    mean = np.asarray(first[1:]) / first[0]
    seconds = [m.m2 + m.n * (m.mean - mean) ** 2 if m.n else np.zeros(5) for m in local]
    second = list(np.sum(seconds, axis=0))
    for m, sent_first, sent_second in zip(local, firsts, seconds):
        comm = Summing(4, [first, second])
        got = m.over(comm)
        assert comm.sent == [[float(v) for v in sent_first], [float(v) for v in sent_second]]
        assert got.n == 900
        np.testing.assert_allclose(got.mean, X.mean(axis=0), rtol=1e-13)
        np.testing.assert_allclose(np.sqrt(got.variance), X.std(axis=0), rtol=1e-12)


def test_split_order_is_index_arrays_and_split_is_their_copy():
    X, y = table(50, 2), np.arange(50)
    kept, held = preprocess.split_order(50, 0.2, seed=4)
    assert kept.dtype == held.dtype == np.int64 and (len(kept), len(held)) == (40, 10)
    assert sorted(np.concatenate([kept, held])) == list(range(50))
    X_kept, y_kept, X_held, y_held = preprocess.split(X, y, 0.2, seed=4)
    np.testing.assert_array_equal(HostRows(X, kept).materialize(), X_kept)
    np.testing.assert_array_equal(HostRows(X, held).materialize(), X_held)
    assert y_kept.tolist() == kept.tolist() and y_held.tolist() == held.tolist()


def test_unordered_blocks_read_distinct_rows_in_file_order_and_repeated_ones_in_their_order(mapped):
    A, M = mapped
    index = np.random.default_rng(3).permutation(777)[:300]
    scaler = Scaler(np.full(4, 2.0), np.full(4, 3.0))
    got = np.concatenate(list(HostRows(M[:, :-1], index, None, scaler).unordered_blocks(50)))
    np.testing.assert_array_equal(got, scaler.transform(A[np.sort(index), :-1]))  # front to back through the map
    repeated = np.array([5, 5, 700, 2])
    got = np.concatenate(list(HostRows(M[:, :-1], repeated).unordered_blocks(3)))
    np.testing.assert_array_equal(got, A[repeated, :-1])
    assert len(list(HostRows(M[:, :-1], index[:0]).unordered_blocks())) == 0


def test_materialize_returns_a_float64_array_in_memory_as_it_is_when_nothing_is_to_be_done(mapped):
    A, M = mapped
    X = A[:, :-1].astype(np.float64)
    assert HostRows(X).materialize() is X  # no copy of data that is ready
    assert HostRows(X, np.arange(777)).materialize() is not X
    assert not np.shares_memory(HostRows(M[:, :-1]).materialize(), M)  # a map is always copied out
