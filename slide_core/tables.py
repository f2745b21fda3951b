"""SLIDE hash tables: L tables of 2**range_pow buckets, each bucket holding at most
``capacity`` neuron ids, stored flat (CSR per table) instead of as fixed-size bucket arrays.

Layout: for table t, the neurons in bucket k are ``entries[t, offsets[t, k]:offsets[t, k+1]]``.
``offsets`` is int32[L, 2**range_pow + 1] and ``entries`` int32[L, n_neurons] (only the
first ``offsets[t, -1]`` entries of a row are used; the rest is -1), so memory is
O(L*n_neurons + L*2**range_pow), never L*2**range_pow*capacity as in the reference
(which allocated 128 ints per bucket: 50 * 2**18 * 128 * 4 B = 6.7 GB for Amazon-670K).

Neurons are inserted in id order 0..n-1 (as the reference inserts its nodes). When more
than ``capacity`` neurons hash to one bucket:
- ``fifo``: the bucket keeps the *last* ``capacity`` neurons inserted, stored in insertion
  (= ascending id) order; the same set the reference's ring buffer ends with (its default:
  Config.h FIFO 1).
- ``reservoir``: the bucket keeps a uniform random ``capacity``-subset (Algorithm R over
  the insertion order). The random draw for the r-th arrival into bucket k of table t is a
  counter-based hash of (seed, t, k, r), so the result is deterministic for a seed and
  independent of thread scheduling. (The reference's reservoir replaced with probability
  1/count instead of capacity/count, which is not uniform.)
A table is built wholly by one thread; tables are built in parallel (Python threads
running a nogil kernel).
"""
from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from slide_core._numba import jit, run_threads
from slide_core.checks import check_int
from slide_core.rng import mix64

POLICIES = ("fifo", "reservoir")
FIFO, RESERVOIR = 0, 1


class HashTables(NamedTuple):
    """L hash tables over ``n_neurons`` neurons. Build with ``build_tables``."""

    offsets: np.ndarray  # int32[L, 2**range_pow + 1]: bucket k of table t is entries[t, offsets[t,k]:offsets[t,k+1]]
    entries: np.ndarray  # int32[L, n_neurons]: neuron ids grouped by bucket; unused tail = -1
    n_neurons: int
    range_pow: int
    capacity: int
    policy: int          # index into POLICIES
    seed: int


@jit
def reservoir_draw(seed, t, k, r):
    """Uniform integer in [0, r] for the r-th (0-based) arrival into bucket k of table t."""
    z = mix64(np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(t))
    z = mix64(z ^ (np.uint64(k) * np.uint64(0xC2B2AE3D27D4EB4F)))
    z = mix64(z ^ np.uint64(r))
    # multiply-shift of the top 32 bits onto [0, r]: bias < (r+1)/2**32, negligible
    return np.int64(((z >> np.uint64(32)) * np.uint64(r + 1)) >> np.uint64(32))


@jit
def _count_and_offsets(kt, offsets_t, counts, capacity):
    """counts[k] = neurons hashing to bucket k (kt = this table's keys); offsets from the
    capped bucket sizes. Returns the largest count."""
    counts[:] = 0
    for i in range(kt.shape[0]):
        counts[kt[i]] += 1
    offsets_t[0] = 0
    biggest = 0
    for k in range(counts.shape[0]):
        c = counts[k]
        biggest = max(biggest, c)
        offsets_t[k + 1] = offsets_t[k] + min(c, capacity)
    return biggest


@jit
def _place_all(kt, offsets_t, entries_t, cursor):
    """No bucket over capacity: every neuron is kept, each bucket in arrival order, which
    is what both policies store then (fifo keeps the last <= capacity arrivals = all;
    reservoir's r-th arrival takes slot r while r < capacity). A plain stable counting-sort
    scatter with one cursor per bucket: one random read-modify-write per neuron instead of
    the policies' two."""
    for k in range(cursor.shape[0]):
        cursor[k] = offsets_t[k]
    for i in range(kt.shape[0]):
        k = kt[i]
        c = cursor[k]
        entries_t[c] = i
        cursor[k] = c + 1


@jit
def _place_fifo(kt, offsets_t, entries_t, remaining, capacity):
    """Keep the last ``capacity`` arrivals of each bucket, in arrival order.

    remaining[k] (= counts on entry) is the number of arrivals into k still to come,
    this one included: the arrival is kept iff remaining <= capacity, at slot
    stored_size - remaining.
    """
    for i in range(kt.shape[0]):
        k = kt[i]
        rem = remaining[k]
        remaining[k] = rem - 1
        if rem <= capacity:
            entries_t[offsets_t[k + 1] - rem] = i


@jit
def _place_reservoir(kt, t, offsets_t, entries_t, arrived, capacity, seed):
    """Algorithm R per bucket: the r-th arrival takes slot r while r < capacity, then
    replaces slot j = draw(r) in [0, r] when j < capacity (probability capacity/(r+1))."""
    arrived[:] = 0
    for i in range(kt.shape[0]):
        k = kt[i]
        r = arrived[k]
        arrived[k] = r + 1
        if r < capacity:
            entries_t[offsets_t[k] + r] = i
        else:
            j = reservoir_draw(seed, t, k, r)
            if j < capacity:
                entries_t[offsets_t[k] + j] = i


@jit
def _transpose_rows(keys, keys_t, lo, hi):
    """keys_t[t, i] = keys[i, t] for rows lo..hi-1, in blocks of rows, so each table's pass
    below reads its keys contiguously (reading a column of keys[n, L] directly made the
    build much slower)."""
    L = keys.shape[1]
    block = 256
    for blo in range(lo, hi, block):
        bhi = min(hi, blo + block)
        for t in range(L):
            for i in range(blo, bhi):
                keys_t[t, i] = keys[i, t]


def _transpose(keys, keys_t) -> None:
    n = keys.shape[0]
    per = max(4096, (n + 3) // 4)
    run_threads(_transpose_rows, [(keys, keys_t, lo, min(n, lo + per)) for lo in range(0, n, per)])


@jit
def _build_table(kt, t, offsets_t, entries_t, counts, capacity, policy, seed):
    biggest = _count_and_offsets(kt, offsets_t, counts, capacity)
    entries_t[offsets_t[-1]:] = -1  # the unused tail; every other slot is written below
    if biggest <= capacity:
        _place_all(kt, offsets_t, entries_t, counts)
    elif policy == FIFO:
        _place_fifo(kt, offsets_t, entries_t, counts, capacity)
    else:
        _place_reservoir(kt, t, offsets_t, entries_t, counts, capacity, seed)


@jit
def _build_worker(keys_t, offsets, entries, counts, w, n_workers, capacity, policy, seed):
    """Tables w, w + n_workers, ... with this worker's own counts row. Workers run on
    Python threads (nogil; _numba.run_threads says why not parallel=True)."""
    for t in range(w, keys_t.shape[0], n_workers):
        _build_table(keys_t[t], t, offsets[t], entries[t], counts, capacity, policy, seed)


@jit
def _check_keys(keys, n_buckets):
    """All keys in [0, n_buckets)? A branch-free min/max reduction (vectorises)."""
    flat = keys.ravel()
    lo = np.int32(0)
    hi = np.int32(0)
    for i in range(flat.shape[0]):
        lo = min(lo, flat[i])
        hi = max(hi, flat[i])
    return lo >= 0 and hi < n_buckets


def build_tables(keys: np.ndarray, range_pow: int, capacity: int = 128, policy: str = "fifo",
                 seed: int = 0) -> HashTables:
    """Tables from ``keys`` int32[n_neurons, L] (``hash_rows`` of the weight rows).

    Neuron i goes into bucket keys[i, t] of table t, subject to ``capacity`` and ``policy``
    (module docstring says which neurons survive an overflow). Parallel over tables.
    """
    if not isinstance(keys, np.ndarray) or keys.dtype != np.int32 or keys.ndim != 2:
        raise TypeError(f"keys must be an int32[n_neurons, L] numpy array, got "
                        f"{getattr(keys, 'dtype', type(keys).__name__)} {getattr(keys, 'shape', '')}")
    _check_build_args(range_pow, capacity, policy, seed)
    n, L = keys.shape
    if L < 1:
        raise ValueError("keys must have at least one table (column)")
    keys = np.ascontiguousarray(keys)
    keys_t = np.empty((L, n), dtype=np.int32)  # temporary: L*n*4 bytes
    _transpose(keys, keys_t)
    return _build_checked(keys_t, range_pow, capacity, policy, seed)


def build_tables_table_major(keys_t: np.ndarray, range_pow: int, capacity: int = 128, policy: str = "fifo",
                             seed: int = 0, reuse: HashTables | None = None) -> HashTables:
    """``build_tables`` from keys int32[L, n_neurons] (table-major, as written by
    ``hash_rows_table_major``): the same tables, without transposing the keys first.

    ``reuse``: tables of the same shape whose arrays are OVERWRITTEN and returned inside
    the new tables (a rehash then touches no fresh memory: first-touch page faults on the
    ~190 MB of an Amazon-670K layer are a noticeable cost). Anyone still holding ``reuse`` sees the
    new contents. Ignored when the shapes differ."""
    if not isinstance(keys_t, np.ndarray) or keys_t.dtype != np.int32 or keys_t.ndim != 2:
        raise TypeError(f"keys_t must be an int32[L, n_neurons] numpy array, got "
                        f"{getattr(keys_t, 'dtype', type(keys_t).__name__)} {getattr(keys_t, 'shape', '')}")
    _check_build_args(range_pow, capacity, policy, seed)
    if keys_t.shape[0] < 1:
        raise ValueError("keys_t must have at least one table (row)")
    return _build_checked(np.ascontiguousarray(keys_t), range_pow, capacity, policy, seed, reuse)


def _check_build_args(range_pow, capacity, policy, seed) -> None:
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    check_int("range_pow", range_pow, 1, 30)
    check_int("capacity", capacity, 1)
    check_int("seed", seed, 0)


def _build_checked(keys_t: np.ndarray, range_pow, capacity, policy, seed, reuse=None) -> HashTables:
    L, n = keys_t.shape
    if n >= 2**31:
        raise ValueError(f"too many neurons for int32 ids: {n}")
    n_buckets = 1 << int(range_pow)
    if not _check_keys(keys_t, n_buckets):
        raise ValueError(f"keys must be in [0, 2**range_pow) = [0, {n_buckets})")
    if (isinstance(reuse, HashTables) and reuse.offsets.shape == (L, n_buckets + 1) and reuse.entries.shape == (L, n)
            and reuse.offsets.dtype == np.int32 and reuse.entries.dtype == np.int32
            and reuse.offsets.flags.c_contiguous and reuse.entries.flags.c_contiguous
            and reuse.offsets.flags.writeable and reuse.entries.flags.writeable):
        offsets, entries = reuse.offsets, reuse.entries
    else:
        offsets = np.empty((L, n_buckets + 1), dtype=np.int32)
        entries = np.empty((L, n), dtype=np.int32)
    n_workers = max(1, min(L, numba.get_num_threads()))
    work = np.empty((n_workers, n_buckets), dtype=np.int32)
    pol = POLICIES.index(policy)
    run_threads(_build_worker, [(keys_t, offsets, entries, work[w], w, n_workers, int(capacity), pol, int(seed))
                                for w in range(n_workers)], n_workers)
    return HashTables(offsets=offsets, entries=entries, n_neurons=int(n), range_pow=int(range_pow),
                      capacity=int(capacity), policy=pol, seed=int(seed))


def max_candidates(tables: HashTables) -> int:
    """Upper bound on distinct neurons one query can return: size ``touched``/``out`` with it."""
    return int(min(tables.n_neurons, tables.offsets.shape[0] * tables.capacity))


@jit
def bucket_bounds(tables, t, key):
    """(lo, hi): entries[t, lo:hi] are the neurons in bucket ``key`` of table ``t``."""
    return tables.offsets[t, key], tables.offsets[t, key + 1]


@jit
def touch_probed(tables, keys, stamp):
    """Load every probed bucket's offset, then its first neuron's stamp, in two tight
    loops (the selection kernels in sampling.py call it before they walk the buckets).
    Those loads are independent, so their cache misses overlap; the main loop then
    finds them cached. At 670k neurons this made a query clearly faster (the walk itself is
    memory-latency bound: ~3 random cache lines per probed bucket). The caller stores the
    returned sum in an output slot it is about to overwrite anyway, so the loads are not
    optimised away."""
    s = 0
    for t in range(keys.shape[0]):
        s += tables.offsets[t, keys[t]]
    width = tables.entries.shape[1]
    for t in range(keys.shape[0]):
        lo = tables.offsets[t, keys[t]]
        if lo < width:
            s += stamp[tables.entries[t, lo]]
    return s
