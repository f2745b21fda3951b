"""Hashing entry points: one vector (dense or sparse) into L bucket keys, and many weight
rows at once for table (re)builds.

``hash_dense_into`` / ``hash_sparse_into`` are Numba functions meant to be called from
other kernels (the batch step calls them inside its prange, one scratch row per chunk);
they never allocate. Their raw codes go to ``scratch_i[:K*L]``; densified families then
fill empty bins, and each table's K codes are packed into one key (packing.py).

For the same vector given densely or sparsely (indices without duplicates; for SimHash
sorted ascending, see simhash.py) the keys are identical.

Adding a hash family. Numba compiles the family choice into the kernels (the batch step
hashes inside its prange, where no Python table can be called), so the kernels branch on
``hf.family`` with if/elif chains; everything the Python side knows of a family is one
``Family`` row in families.py. A new family touches exactly:

1. slide_core/hashing/<family>.py: its ``make_<family>`` (draws its arrays from the rng) and
   its Numba ``<family>_dense_codes`` / ``<family>_sparse_codes`` (raw codes into
   ``scratch_i[:K*L]``, scratch as its Family.scratch says).
2. slide_core/hashing/families.py: the next integer code (after DOPH; codes are stored in
   checkpoints, never renumber) and its ``Family`` row in ``_ROWS`` (name, code,
   projections, topk, draw, scratch). FAMILIES, make_hash_functions, scratch_sizes,
   LayerConfig's checks, sizing.expected_retrieved / auto_K and the Python-level dispatch
   below (_check_center, _hash_rows_into) read it from there.
3. slide_core/hashing/dispatch.py: a branch in ``hash_dense_into`` and one in
   ``hash_sparse_into``, and, if its empty bins must be densified, in ``_codes_to_keys``.
4. Only if it needs an array no family has yet: a field in ``HashFunctions``
   (slide_core/hashing/functions.py, with its empty default in make_hash_functions) and a
   new ``FORMAT`` in slide_core/state.py (checkpoints save every HashFunctions field, and
   older ones lack the new one).
5. Only if its collision law is neither independent uniform codes nor sign projections: a
   formula in slide_core/sizing.py, ``expected_retrieved``.
6. tests/reference_lsh.py: its slow numpy reference, a branch in ``codes`` (and the code
   range in ``keys``); tests/test_hashing.py runs over FAMILIES already.

A blocked many-rows path (rows.py, ``block_supported``: DWTA with bin size 8) is an optional
speed-up; without one, rows are hashed one at a time through ``hash_dense_into``.
"""
from __future__ import annotations

import numba
import numpy as np

from slide_core._numba import jit, run_threads
from slide_core.hashing.densify import densified_code
from slide_core.hashing.doph import doph_dense_codes, doph_sparse_codes
from slide_core.hashing.dwta import dwta_dense_codes, dwta_sparse_codes
from slide_core.hashing.families import BY_CODE, DOPH, DWTA, SIMHASH, WTA
from slide_core.hashing.functions import HashFunctions, scratch_sizes
from slide_core.hashing.packing import add_code, finalize_key
from slide_core.hashing.rows import BLOCK, block_codes_and_keys, block_scratch_sizes, block_supported
from slide_core.hashing.simhash import simhash_dense_codes, simhash_sparse_codes
from slide_core.hashing.wta import wta_dense_codes, wta_sparse_codes


@jit
def _codes_to_keys(hf, raw, out_keys):
    """Densify (DWTA/DOPH) and pack the K codes of every table into out_keys[:L]."""
    n_bins = hf.K * hf.L
    densify = hf.family == DWTA or hf.family == DOPH
    for t in range(hf.L):
        key = np.uint64(0)
        for j in range(hf.K):
            b = t * hf.K + j
            if densify:
                code = densified_code(raw, b, n_bins, hf.densify_a, hf.densify_c, hf.max_attempts)
            else:
                code = raw[b]
            key = add_code(key, code, hf.shifts[j])
        out_keys[t] = finalize_key(key, hf.fold, hf.range_pow)


@jit
def hash_dense_into(hf, vec, out_keys, scratch_f, scratch_i):
    """Keys (int32[L]) of dense float32 vector ``vec`` (length dim) into ``out_keys``.

    Scratch rows must hold at least ``scratch_sizes(hf)`` elements; contents on entry do
    not matter. No allocation.
    """
    n_codes = hf.K * hf.L
    raw = scratch_i[:n_codes]
    if hf.family == SIMHASH:
        simhash_dense_codes(hf, vec, scratch_f, raw)
    elif hf.family == WTA:
        wta_dense_codes(hf, vec, raw)
    elif hf.family == DWTA:
        dwta_dense_codes(hf, vec, scratch_f, raw)
    else:
        doph_dense_codes(hf, vec, scratch_f, scratch_i[n_codes:], raw)
    _codes_to_keys(hf, raw, out_keys)


@jit
def hash_sparse_into(hf, idx, vals, out_keys, scratch_f, scratch_i):
    """Keys of the sparse vector (idx int32[n], vals float32[n]); same contract as
    ``hash_dense_into``. Indices must be in [0, dim) and distinct (ValueError if out of
    range; duplicates give unspecified codes)."""
    for k in range(idx.shape[0]):
        if idx[k] < 0 or idx[k] >= hf.dim:
            raise ValueError("sparse index out of range [0, dim)")
    n_codes = hf.K * hf.L
    raw = scratch_i[:n_codes]
    if hf.family == SIMHASH:
        simhash_sparse_codes(hf, idx, vals, scratch_f, raw)
    elif hf.family == WTA:
        wta_sparse_codes(hf, idx, vals, scratch_f, raw)
    elif hf.family == DWTA:
        dwta_sparse_codes(hf, idx, vals, scratch_f, raw)
    else:
        doph_sparse_codes(hf, idx, vals, scratch_f, scratch_i[n_codes:], raw)
    _codes_to_keys(hf, raw, out_keys)


@jit
def _hash_rows_chunk_rowwise(hf, W, keys, table_major, scratch_f, scratch_i, lo, hi):
    """Rows lo..hi-1 one at a time (families without a block path)."""
    for i in range(lo, hi):
        hash_dense_into(hf, W[i], scratch_i[:hf.L], scratch_f, scratch_i[hf.L:])
        for t in range(hf.L):
            if table_major:
                keys[t, i] = scratch_i[t]
            else:
                keys[i, t] = scratch_i[t]


@jit
def _hash_rows_chunk(hf, W, keys, table_major, scratch_f, scratch_i, lo, hi):
    """Rows lo..hi-1 of W, BLOCK at a time (rows.py), into keys[n, L] or keys_t[L, n].
    DWTA with bin_size 8 only (rows.block_supported); a separate kernel from the
    row-wise one so that neither compiles (and LLVM re-optimises, inlined) the other's
    code."""
    n_codes = hf.K * hf.L
    one = scratch_i[-(n_codes + hf.L):-hf.L]
    one_keys = scratch_i[-hf.L:]
    for blo in range(lo, hi, BLOCK):
        nb = min(BLOCK, hi - blo)
        raw, keys_blk, flag = block_codes_and_keys(hf, W, blo, nb, scratch_f, scratch_i)
        for r in range(nb):
            if flag[r] < 0:  # an empty DWTA bin: densify + pack like the per-row path
                for b in range(n_codes):
                    one[b] = raw[b, r]
                _codes_to_keys(hf, one, one_keys)
                for t in range(hf.L):
                    keys_blk[t, r] = one_keys[t]
        if table_major:
            for t in range(hf.L):
                kt = keys[t]
                kb = keys_blk[t]
                for r in range(nb):
                    kt[blo + r] = kb[r]
        else:
            for r in range(nb):
                kr = keys[blo + r]
                for t in range(hf.L):
                    kr[t] = keys_blk[t, r]


def rows_scratch(hf: HashFunctions, n_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-chunk scratch rows (float32, int32) for _hash_rows_chunk."""
    n_codes = hf.K * hf.L
    if block_supported(hf.family, hf.bin_size):
        n_f, n_i = block_scratch_sizes(hf.family, hf.dim, n_codes, hf.L, hf.bin_size)
        n_i += n_codes + hf.L  # one lane's raw codes and keys, at the end
    else:
        n_f, n_i = scratch_sizes(hf)
        n_i += hf.L  # one row's keys, at the start
    return np.empty((n_chunks, n_f), np.float32), np.empty((n_chunks, n_i), np.int32)


def _check_hf(hf) -> None:
    if not isinstance(hf, HashFunctions):
        raise TypeError(f"hf must be a HashFunctions (from make_hash_functions), got {type(hf).__name__}")


def _check_vec(name: str, a, dtype, ndim: int) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} must be {np.dtype(dtype).name}, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    return a


def _check_rows(hf: HashFunctions, W) -> None:
    _check_vec("W", W, np.float32, 2)
    if W.shape[1] != hf.dim:
        raise ValueError(f"W has {W.shape[1]} columns, the hash functions expect dim={hf.dim}")
    if not W.flags.c_contiguous:
        raise ValueError("W must be C-contiguous (rows are hashed as contiguous vectors)")


def hash_rows(hf: HashFunctions, W: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """Keys int32[n, L] of every row of W (float32[n, dim], C-contiguous), in parallel
    over chunks of rows: how neurons are (re)inserted from their weight vectors.
    center (SimHash only): hash the rows minus this vector (float32[dim]), see _check_center."""
    _check_hf(hf)
    _check_rows(hf, W)
    _check_center(hf, center)
    keys = np.empty((W.shape[0], hf.L), dtype=np.int32)
    _hash_rows_into(hf, W, keys, False, center)
    return keys


def hash_rows_table_major(hf: HashFunctions, W: np.ndarray, out: np.ndarray | None = None,
                          center: np.ndarray | None = None) -> np.ndarray:
    """Keys int32[L, n] (table-major: what build_tables_table_major reads) of every row of
    W (minus `center`, as hash_rows); written into ``out`` when given (reused across
    rehashes, no allocation of L*n ints)."""
    _check_hf(hf)
    _check_rows(hf, W)
    _check_center(hf, center)
    shape = (hf.L, W.shape[0])
    if out is None:
        out = np.empty(shape, dtype=np.int32)
    elif not isinstance(out, np.ndarray) or out.dtype != np.int32 or out.shape != shape or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous int32 array of shape {shape}")
    _hash_rows_into(hf, W, out, True, center)
    return out


def _check_center(hf: HashFunctions, center) -> None:
    """A center is a float32[dim] vector, for SimHash: the sign of (w - c).r is the sign of
    w.r - c.r, one subtraction per projection. Subtracting a vector common to every row leaves
    the ranking of the rows by inner product with any query unchanged, but not their angles
    (docs/retrieval.md: a trained output layer's rows all point away from the queries)."""
    if center is None:
        return
    if not BY_CODE[hf.family].projections:
        raise ValueError("hashing rows about a center is implemented for SimHash only (sign projections)")
    _check_vec("center", center, np.float32, 1)
    if center.shape[0] != hf.dim:
        raise ValueError(f"center has length {center.shape[0]}, expected dim={hf.dim}")


SIMHASH_BLOCK_ROWS = 4096  # rows per BLAS product in the SimHash rehash (4096 x K*L floats ~ 8 MB at K*L=500)


@jit
def _pack_sign_keys(P, hf, keys, table_major, row0):
    """Keys of rows row0.. from their SimHash projections P (rows x K*L): code b = P[., b] < 0,
    packed per table exactly as _codes_to_keys does."""
    for i in range(P.shape[0]):
        p = P[i]
        for t in range(hf.L):
            key = np.uint64(0)
            for j in range(hf.K):
                key = add_code(key, 1 if p[t * hf.K + j] < 0 else 0, hf.shifts[j])
            k = finalize_key(key, hf.fold, hf.range_pow)
            if table_major:
                keys[t, row0 + i] = k
            else:
                keys[row0 + i, t] = k


def _simhash_rows_into(hf: HashFunctions, W: np.ndarray, keys: np.ndarray, table_major: bool,
                       center: np.ndarray | None = None) -> None:
    """SimHash of many rows as one BLAS product per block of rows, W[block] @ R (R = the +-1/0
    projections as float32): far faster than the per-row loop (benchmarks/bench_hashing.py). The projections are summed in BLAS's order,
    not coordinate order, so a projection within float rounding of 0 may take the other sign than
    hash_dense_into gives it (never for exact zeros: an all-zero row hashes to code 0 either way)."""
    R = hf.sim_R.astype(np.float32)
    n = W.shape[0]
    rows = min(SIMHASH_BLOCK_ROWS, n)
    P = np.empty((rows, R.shape[1]), dtype=np.float32)
    offset = None if center is None else center @ R
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        np.matmul(W[lo:hi], R, out=P[:hi - lo])
        if offset is not None:
            P[:hi - lo] -= offset
        _pack_sign_keys(P[:hi - lo], hf, keys, table_major, lo)


def _hash_rows_into(hf: HashFunctions, W: np.ndarray, keys: np.ndarray, table_major: bool,
                    center: np.ndarray | None = None) -> None:
    n = W.shape[0]
    if n == 0:
        return
    if BY_CODE[hf.family].projections:
        _simhash_rows_into(hf, W, keys, table_major, center)
        return
    # chunks of whole BLOCKs, 4 per thread (pulled in order: balance on a busy machine);
    # the serial nogil chunk kernel runs on Python threads (_numba.run_threads says why)
    n_threads = numba.get_num_threads()
    n_chunks = min((n + BLOCK - 1) // BLOCK, 4 * n_threads)
    per = ((n + n_chunks - 1) // n_chunks + BLOCK - 1) // BLOCK * BLOCK
    los = list(range(0, n, per))
    sf, si = rows_scratch(hf, len(los))  # one scratch row per chunk (a few hundred KB)
    chunk = _hash_rows_chunk if block_supported(hf.family, hf.bin_size) else _hash_rows_chunk_rowwise
    run_threads(chunk, [(hf, W, keys, table_major, sf[c], si[c], lo, min(n, lo + per))
                                   for c, lo in enumerate(los)], n_threads)


def hash_dense(hf: HashFunctions, vec: np.ndarray) -> np.ndarray:
    """Convenience (allocates): keys int32[L] of one dense float32 vector."""
    _check_hf(hf)
    _check_vec("vec", vec, np.float32, 1)
    if vec.shape[0] != hf.dim:
        raise ValueError(f"vec has length {vec.shape[0]}, expected dim={hf.dim}")
    n_f, n_i = scratch_sizes(hf)
    out = np.empty(hf.L, dtype=np.int32)
    hash_dense_into(hf, vec, out, np.empty(n_f, np.float32), np.empty(n_i, np.int32))
    return out


def hash_sparse(hf: HashFunctions, idx: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """Convenience (allocates): keys int32[L] of one sparse vector."""
    _check_hf(hf)
    _check_vec("idx", idx, np.int32, 1)
    _check_vec("vals", vals, np.float32, 1)
    if idx.shape != vals.shape:
        raise ValueError(f"idx and vals differ in length: {idx.shape} vs {vals.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= hf.dim):
        raise ValueError(f"sparse index out of range [0, dim={hf.dim})")
    n_f, n_i = scratch_sizes(hf)
    out = np.empty(hf.L, dtype=np.int32)
    hash_sparse_into(hf, idx, vals, out, np.empty(n_f, np.float32), np.empty(n_i, np.int32))
    return out
