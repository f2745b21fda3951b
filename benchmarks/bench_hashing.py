"""Hashing and hash-table benchmark at the Amazon-670K output-layer shape.

    python benchmarks/bench_hashing.py [--threads 2] [--neurons 670091] [--queries 2000]

Prints: per-vector dense hash time (DWTA K=6 L=50 and SimHash K=9 L=50, dim 128, one
thread, no Python overhead), hash_rows + build_tables time for all neurons (K=6, L=50,
range_pow 18, bucket capacity 128), peak RSS, and per-query union/count times with the
mean active-set size; then the network's rehash path (table-major keys into a reused buffer,
tables rebuilt in the previous tables' arrays) for DWTA and SimHash (K=9), medians of
``--repeats`` runs. Numba compilation is done before timing (warm-up call).
``--packing reference_ln`` builds the tables with the reference C++'s overlapping packing
(only ~9.6k reachable buckets: far larger active sets).
"""
from __future__ import annotations

import argparse
import os
import time

import numba
import numpy as np

from harness.sysinfo import peak_rss_mb
from slide_core._numba import jit
from slide_core.hashing import hash_dense_into, hash_rows, hash_rows_table_major, make_hash_functions, scratch_sizes
from slide_core.sampling import STAMP_STRIDE, count_select, union_select
from slide_core.tables import build_tables, build_tables_table_major, max_candidates


@jit
def _hash_many(hf, X, keys, sf, si):
    for i in range(X.shape[0]):
        hash_dense_into(hf, X[i], keys[i], sf, si)


@jit
def _union_many(tables, qkeys, stamp, out, max_out):
    """Training's vanilla selection (no labels) for every query."""
    total = 0
    for q in range(qkeys.shape[0]):
        total += union_select(tables, qkeys[q], stamp, (q + 1) * STAMP_STRIDE, out, 0, max_out)[0]
    return total


@jit
def _topk_many(tables, qkeys, stamp, counts, touched, hist, out, max_out):
    """Training's top-k-by-frequency selection (no labels) for every query."""
    total = 0
    for q in range(qkeys.shape[0]):
        total += count_select(tables, qkeys[q], stamp, (q + 1) * STAMP_STRIDE, counts, touched, hist, out, 0,
                              max_out, 1, True)[0]
    return total


def bench_per_vector(family, K, L, dim, n_vec, rng):
    hf = make_hash_functions(family, dim, K, L, 18, seed=0)
    X = np.maximum(rng.standard_normal((n_vec, dim)), 0).astype(np.float32)  # ReLU-like activations
    keys = np.empty((n_vec, L), np.int32)
    n_f, n_i = scratch_sizes(hf)
    sf, si = np.empty(n_f, np.float32), np.empty(n_i, np.int32)
    _hash_many(hf, X[:2], keys[:2], sf, si)  # compile
    t = time.perf_counter()
    _hash_many(hf, X, keys, sf, si)
    dt = time.perf_counter() - t
    print(f"hash_dense_into {family:8s} K={K} L={L} dim={dim}: {dt / n_vec * 1e6:8.2f} us/vector (1 thread)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    ap.add_argument("--neurons", type=int, default=670_091)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--packing", default="exact", choices=["exact", "reference_ln"])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"threads={numba.get_num_threads()} neurons={args.neurons} dim={args.dim} packing={args.packing} "
          f"load average={os.getloadavg()[0]:.1f} (numbers are only comparable on a quiet machine)")

    bench_per_vector("dwta", 6, 50, args.dim, 20_000, rng)
    bench_per_vector("simhash", 9, 50, args.dim, 20_000, rng)

    K, L, range_pow = 6, 50, 18
    hf = make_hash_functions("dwta", args.dim, K, L, range_pow, seed=1, packing=args.packing)
    W = rng.standard_normal((args.neurons, args.dim), dtype=np.float32)  # float32 directly: no 2x float64 temp
    W *= 0.01
    build_tables(hash_rows(hf, W[:1000]), range_pow)  # compile both kernels
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    keys = hash_rows(hf, W)
    t1 = time.perf_counter()
    tables = build_tables(keys, range_pow, capacity=128, policy="fifo")
    t2 = time.perf_counter()
    build_tables(keys, range_pow, capacity=128, policy="reservoir", seed=1)
    t3 = time.perf_counter()
    print(f"hash_rows  dwta K={K} L={L} rp={range_pow}: {t1 - t0:.2f} s for {args.neurons} neurons "
          f"({(t1 - t0) / args.neurons * 1e6:.2f} us/neuron)")
    print(f"build_tables fifo: {t2 - t1:.2f} s   reservoir: {t3 - t2:.2f} s")
    print(f"tables: {(tables.offsets.nbytes + tables.entries.nbytes) / 2**20:.0f} MiB; weights "
          f"{W.nbytes / 2**20:.0f} MiB; keys {keys.nbytes / 2**20:.0f} MiB; peak RSS {peak_rss_mb():.0f} MB "
          f"(before the build {rss0:.0f} MB)")
    sizes = np.diff(tables.offsets, axis=1)
    print(f"buckets used per table {np.mean((sizes > 0).sum(axis=1)):.0f} of {2**range_pow}; "
          f"largest bucket {sizes.max()}; neurons dropped by capacity {args.neurons - tables.offsets[:, -1].mean():.0f} per table")

    X = np.maximum(rng.standard_normal((args.queries, args.dim)), 0).astype(np.float32)
    qkeys = np.empty((args.queries, L), np.int32)
    n_f, n_i = scratch_sizes(hf)
    _hash_many(hf, X, qkeys, np.empty(n_f, np.float32), np.empty(n_i, np.int32))
    out = np.empty(max_candidates(tables), np.int32)
    stamp = np.zeros(args.neurons, np.int64)
    _union_many(tables, qkeys[:2], stamp, out, out.shape[0])
    stamp[:] = 0
    t = time.perf_counter()
    total = _union_many(tables, qkeys, stamp, out, out.shape[0])
    dt = time.perf_counter() - t
    print(f"union_select (vanilla): {dt / args.queries * 1e6:.2f} us/query, mean active set {total / args.queries:.0f}")
    stamp[:] = 0
    counts = np.zeros(args.neurons, np.int32)
    touched = np.empty(max_candidates(tables), np.int32)
    hist = np.zeros(L + 2, np.int64)
    limit = 1229  # the engine's retrieval cap at 670k labels
    _topk_many(tables, qkeys[:2], stamp, counts, touched, hist, out, limit)
    stamp[:] = 0
    t = time.perf_counter()
    total = _topk_many(tables, qkeys, stamp, counts, touched, hist, out, limit)
    dt = time.perf_counter() - t
    print(f"count_select (topk, limit {limit}): {dt / args.queries * 1e6:.2f} us/query, "
          f"mean chosen {total / args.queries:.0f}")
    del tables
    for family, fk in (("dwta", K), ("simhash", 9)):
        bench_rehash(family, fk, L, range_pow, args.packing, W, args.repeats)
    print(f"peak RSS {peak_rss_mb():.0f} MB")


def bench_rehash(family, K, L, range_pow, packing, W, repeats):
    """What SlideNetwork._rehash runs: median seconds of hashing and of the table build."""
    hf = make_hash_functions(family, W.shape[1], K, L, range_pow, seed=2, packing=packing)
    build_tables_table_major(hash_rows_table_major(hf, W[:1000]), range_pow)  # compile
    buf = np.empty((L, W.shape[0]), np.int32)
    tables = None
    t_hash, t_build = [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        hash_rows_table_major(hf, W, out=buf)
        t1 = time.perf_counter()
        tables = build_tables_table_major(buf, range_pow, 128, "reservoir", seed=r, reuse=tables)
        t2 = time.perf_counter()
        t_hash.append(t1 - t0)
        t_build.append(t2 - t1)
    h, b = float(np.median(t_hash)), float(np.median(t_build))
    print(f"rehash {family:7s} K={K} L={L}: hash_rows_table_major {h:.2f} s + build_tables_table_major "
          f"(reservoir, reused arrays) {b:.2f} s = {h + b:.2f} s (medians of {repeats})")


if __name__ == "__main__":
    main()
