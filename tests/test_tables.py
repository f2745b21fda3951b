"""Hash tables against a brute-force bucket scan (tests/reference_lsh.py)."""
from __future__ import annotations

import numpy as np
import pytest

from slide_core.tables import HashTables, bucket_bounds, build_tables

try:
    from tests import reference_lsh as ref
except ImportError:  # tests/ on sys.path instead of the project root
    import reference_lsh as ref


def _keys(n=300, L=4, range_pow=4, seed=0, skew=True):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 2**range_pow, size=(n, L))
    if skew:  # make some buckets overflow a small capacity, leave others empty
        keys[rng.random((n, L)) < 0.3] = 3
    return keys.astype(np.int32)


def _as_dict(tables: HashTables):
    L, n_buckets = tables.offsets.shape[0], tables.offsets.shape[1] - 1
    out = {}
    for t in range(L):
        for k in range(n_buckets):
            lo, hi = bucket_bounds(tables, t, k)
            if hi > lo:
                out[(t, k)] = tables.entries[t, lo:hi].tolist()
    return out


@pytest.mark.parametrize("policy", ["fifo", "reservoir"])
@pytest.mark.parametrize("capacity", [1, 7, 1000])
def test_build_matches_brute_force(policy, capacity):
    keys = _keys()
    tables = build_tables(keys, range_pow=4, capacity=capacity, policy=policy, seed=9)
    assert tables.offsets.shape == (4, 17) and tables.entries.shape == (4, 300)
    want = ref.buckets(keys, capacity, policy, seed=9)
    got = _as_dict(tables)
    assert got == want  # same neurons, same stored order, empty buckets absent
    sizes = np.diff(tables.offsets, axis=1)
    assert sizes.max() <= capacity
    for t in range(4):  # unused tail of each row is -1
        assert (tables.entries[t, tables.offsets[t, -1]:] == -1).all()


def test_fifo_keeps_last_inserted_in_order():
    keys = np.zeros((50, 2), np.int32)  # everyone in bucket 0
    tables = build_tables(keys, range_pow=2, capacity=8, policy="fifo")
    lo, hi = bucket_bounds(tables, 1, 0)
    assert tables.entries[1, lo:hi].tolist() == list(range(42, 50))
    assert bucket_bounds(tables, 1, 3) == (8, 8)


def test_reservoir_deterministic_and_uniform():
    n, cap, L = 40, 10, 600
    keys = np.zeros((n, L), np.int32)  # one full bucket per table; each table draws independently
    a = build_tables(keys, range_pow=1, capacity=cap, policy="reservoir", seed=5)
    b = build_tables(keys, range_pow=1, capacity=cap, policy="reservoir", seed=5)
    c = build_tables(keys, range_pow=1, capacity=cap, policy="reservoir", seed=6)
    np.testing.assert_array_equal(a.entries, b.entries)
    assert not np.array_equal(a.entries, c.entries)
    kept = a.entries[:, :cap]
    assert all(len(set(row)) == cap for row in kept.tolist())
    freq = np.bincount(kept.ravel(), minlength=n) / L  # P(neuron kept) should be cap/n = 0.25
    assert np.abs(freq - cap / n).max() < 0.08, freq  # ~4.5 sigma for 600 draws
    # early and late arrivals equally likely (the reference's 1/count rule favours early ones)
    assert abs(freq[:cap].mean() - freq[-cap:].mean()) < 0.05


# queries of the tables: tests/test_selection.py (the selection kernels training calls)


def test_memory_is_linear_in_neurons_and_buckets():
    keys = _keys(n=1000, L=6, range_pow=10, skew=False)
    tables = build_tables(keys, range_pow=10, capacity=128)
    assert tables.offsets.nbytes + tables.entries.nbytes == 4 * 6 * (2**10 + 1 + 1000)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(keys=np.zeros((3, 2), np.int64)), TypeError, "int32"),
    (dict(keys=np.full((3, 2), 16, np.int32)), ValueError, "range_pow"),
    (dict(keys=np.full((3, 2), -1, np.int32)), ValueError, "range_pow"),
    (dict(policy="lru"), ValueError, "policy"),
    (dict(capacity=0), ValueError, "capacity"),
    (dict(range_pow=31), ValueError, "range_pow"),
])
def test_build_validates(kwargs, exc, match):
    args = dict(keys=np.zeros((3, 2), np.int32), range_pow=4)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        build_tables(**args)
