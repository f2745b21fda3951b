"""The rehash fast paths give exactly the keys and tables of the plain ones: block-wise
hash_rows (DWTA) vs hash_dense row by row, table-major keys, the no-overflow scatter and
buffer reuse in build_tables_table_major."""
from __future__ import annotations

import numpy as np
import pytest

from slide_core.hashing import hash_dense, hash_rows, hash_rows_table_major, make_hash_functions
from slide_core.tables import build_tables, build_tables_table_major


def _rows(rng, n, dim):
    W = rng.standard_normal((n, dim)).astype(np.float32)
    W[rng.random(W.shape) < 0.6] = 0  # empty DWTA bins: the densified fallback per lane
    W[3] = 0  # all bins empty
    W[7, ::2] = -0.0
    W[9, :5] = W[9, 5]  # ties: smallest position wins
    return W


@pytest.mark.parametrize("family", ["dwta", "simhash", "wta", "doph"])
@pytest.mark.parametrize("packing", ["exact", "reference_ln"])
@pytest.mark.parametrize("dim,K,L,rp,bin_size", [(128, 6, 50, 18, 8), (37, 3, 7, 5, 8), (20, 9, 4, 12, 4),
                                                 (33, 2, 5, 20, 5), (40, 2, 3, 8, 16)])
def test_hash_rows_equals_per_row(family, packing, dim, K, L, rp, bin_size):
    rng = np.random.default_rng(dim * K + L)
    hf = make_hash_functions(family, dim, K, L, rp, seed=11, packing=packing, bin_size=bin_size)
    n = 16 * 3 + 5  # whole blocks and a partial one
    W = _rows(rng, n, dim)
    ref = np.stack([hash_dense(hf, W[i]) for i in range(n)])
    np.testing.assert_array_equal(hash_rows(hf, W), ref)
    out = np.full((L, n), -7, np.int32)
    assert hash_rows_table_major(hf, W, out=out) is out
    np.testing.assert_array_equal(out, ref.T)
    np.testing.assert_array_equal(hash_rows_table_major(hf, W[:0]), np.empty((L, 0), np.int32))


def test_hash_rows_table_major_validates_out():
    hf = make_hash_functions("dwta", 16, 2, 3, 6, seed=0)
    W = np.ones((4, 16), np.float32)
    with pytest.raises(ValueError, match="out must be"):
        hash_rows_table_major(hf, W, out=np.empty((4, 3), np.int32))


@pytest.mark.parametrize("policy", ["fifo", "reservoir"])
@pytest.mark.parametrize("capacity", [1, 3, 1000])
def test_table_major_build_and_reuse_equal_build_tables(policy, capacity):
    rng = np.random.default_rng(capacity)
    keys = rng.integers(0, 2**6, (500, 4)).astype(np.int32)
    ref = build_tables(keys, 6, capacity, policy, seed=5)
    got = build_tables_table_major(np.ascontiguousarray(keys.T), 6, capacity, policy, seed=5)
    np.testing.assert_array_equal(got.offsets, ref.offsets)
    np.testing.assert_array_equal(got.entries, ref.entries)
    old = build_tables(rng.integers(0, 2**6, (500, 4)).astype(np.int32), 6, capacity, policy, seed=1)
    again = build_tables_table_major(np.ascontiguousarray(keys.T), 6, capacity, policy, seed=5, reuse=old)
    assert again.entries is old.entries and again.offsets is old.offsets
    np.testing.assert_array_equal(again.offsets, ref.offsets)
    np.testing.assert_array_equal(again.entries, ref.entries)
    with pytest.raises(ValueError, match=r"keys must be in"):
        build_tables_table_major(np.full((2, 3), 64, np.int32), 6)
