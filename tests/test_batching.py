"""Seeded epoch order, batches, and the fixed evaluation subset."""
from __future__ import annotations

import numpy as np
import pytest

from harness.data.batching import epoch_order, eval_subset, iterate_batches, n_batches
from harness.data.csr import CSR
from harness.data.xmc import XMCSplit


def _split(n: int) -> XMCSplit:
    """Row i has feature i % 7 with value i and label i % 3 (so rows are recognisable)."""
    feats = CSR.from_rows([[i % 7] for i in range(n)], 7, [[float(i)] for i in range(n)])
    labels = CSR.from_rows([[i % 3] if i % 4 else [] for i in range(n)], 3)
    return XMCSplit(feats, labels)


def test_epoch_order_is_a_seeded_permutation():
    a = epoch_order(1000, epoch=0, seed=7)
    assert a.dtype == np.int64
    assert np.array_equal(np.sort(a), np.arange(1000))
    np.testing.assert_array_equal(a, epoch_order(1000, epoch=0, seed=7))
    assert not np.array_equal(a, epoch_order(1000, epoch=1, seed=7))
    assert not np.array_equal(a, epoch_order(1000, epoch=0, seed=8))
    assert not np.array_equal(a, np.arange(1000))  # actually shuffled (label-sorted files)
    assert epoch_order(0, 0, 0).shape == (0,)


def test_batches_cover_every_row_once_in_epoch_order_and_keep_the_last_partial():
    split = _split(103)
    batches = list(iterate_batches(split, batch_size=10, epoch=2, seed=3))
    assert len(batches) == n_batches(103, 10) == 11
    assert [x.n_rows for x, _ in batches] == [10] * 10 + [3]
    order = epoch_order(103, epoch=2, seed=3)
    seen = np.concatenate([x.data for x, _ in batches]).astype(np.int64)  # value = row id
    np.testing.assert_array_equal(seen, order)
    for b, (x, y) in enumerate(batches):
        rows = order[b * 10:(b + 1) * 10]
        expected = split.labels.take_rows(rows)
        np.testing.assert_array_equal(y.indptr, expected.indptr)
        np.testing.assert_array_equal(y.indices, expected.indices)
        assert x.n_cols == 7 and y.n_cols == 3
        assert x.indptr.dtype == np.int64 and x.indices.dtype == np.int32


def test_batches_are_deterministic_and_differ_by_epoch():
    split = _split(50)
    first = [x.data.tolist() for x, _ in iterate_batches(split, 8, epoch=0, seed=1)]
    again = [x.data.tolist() for x, _ in iterate_batches(split, 8, epoch=0, seed=1)]
    other = [x.data.tolist() for x, _ in iterate_batches(split, 8, epoch=1, seed=1)]
    assert first == again and first != other


def test_batch_larger_than_the_split():
    batches = list(iterate_batches(_split(5), batch_size=128, epoch=0, seed=0))
    assert len(batches) == 1 and batches[0][0].n_rows == 5


def test_eval_subset_is_fixed_sorted_and_sized():
    s = eval_subset(10_000, 1000, seed=0)
    assert s.dtype == np.int64 and len(s) == 1000
    assert np.all(np.diff(s) > 0) and s[0] >= 0 and s[-1] < 10_000
    np.testing.assert_array_equal(s, eval_subset(10_000, 1000, seed=0))
    assert not np.array_equal(s, eval_subset(10_000, 1000, seed=1))
    np.testing.assert_array_equal(eval_subset(50, 1000, seed=0), np.arange(50))
    assert eval_subset(50, 0, seed=0).shape == (0,)


def test_eval_subset_is_spread_over_the_test_set():
    s = eval_subset(100_000, 2000, seed=4)
    hist = np.histogram(s, bins=10, range=(0, 100_000))[0]
    assert hist.min() > 120  # ~200 per tenth: not the first rows of a label-sorted file


@pytest.mark.parametrize("call", [
    lambda: epoch_order(-1, 0, 0),
    lambda: epoch_order(10, -1, 0),
    lambda: epoch_order(10, 0, -5),
    lambda: list(iterate_batches(_split(5), 0, 0, 0)),
    lambda: eval_subset(10, -1, 0),
])
def test_invalid_arguments(call):
    with pytest.raises(ValueError):
        call()
