"""SimHash: signed random projections with sparse +-1 entries (Charikar; SLIDE's
SparseRandomProjection with Ratio 3).

Each of the K*L projections picks ``ceil(density * dim)`` distinct coordinates without
replacement and a random sign for each; code = 1 if the signed sum of the input over those
coordinates is < 0, else 0 (1 bit per code, as the reference: s >= 0 -> 0).

Storage is coordinate-major (a CSR over input coordinates: for coordinate d, the
projections that contain it and their signs), so dense and sparse inputs run the same
loop: for each nonzero input value, add +-value to the accumulator of every projection
holding that coordinate. Each accumulator therefore sums its terms in ascending coordinate
order for a dense input and in the given order for a sparse one: with sorted sparse indices
(canonical CSR) dense and sparse codes are bit-identical. Zeros are skipped, which is exact
(adding +-0 never changes a float32 sum that starts at +0). Accumulation is float32 without
fastmath, so the numpy reference reproduces it exactly.
"""
from __future__ import annotations

import math

import numpy as np

from slide_core._numba import jit


def make_simhash(rng: np.random.Generator, dim: int, n_codes: int, density: float):
    """(indptr int32[dim+1], proj int32[nnz], sign float32[nnz]), coordinate-major."""
    per_proj = max(1, min(dim, int(math.ceil(density * dim))))
    coords = np.empty((n_codes, per_proj), dtype=np.int64)
    for p in range(n_codes):
        coords[p] = rng.choice(dim, size=per_proj, replace=False)
    signs = np.where(rng.random((n_codes, per_proj)) < 0.5, 1.0, -1.0).astype(np.float32)
    projs = np.repeat(np.arange(n_codes, dtype=np.int64), per_proj)
    coords = coords.ravel()
    # sort by (coordinate, projection) so each coordinate's projections are contiguous
    order = np.lexsort((projs, coords))
    indptr = np.zeros(dim + 1, dtype=np.int64)
    np.cumsum(np.bincount(coords, minlength=dim), out=indptr[1:])
    if indptr[-1] >= 2**31:
        raise ValueError(f"SimHash with dim={dim}, {n_codes} codes needs more than 2**31 entries")
    return (indptr.astype(np.int32), projs[order].astype(np.int32),
            signs.ravel()[order].astype(np.float32))


@jit
def _accumulate(indptr, proj, sign, d, v, acc):
    for e in range(indptr[d], indptr[d + 1]):
        acc[proj[e]] += sign[e] * v


@jit
def _signs_to_codes(acc, n_codes, codes):
    for p in range(n_codes):
        codes[p] = 1 if acc[p] < 0 else 0


@jit
def simhash_dense_codes(hf, vec, scratch_f, codes):
    n_codes = hf.K * hf.L
    acc = scratch_f[:n_codes]
    acc[:] = 0.0
    for d in range(hf.dim):
        v = vec[d]
        if v != 0:
            _accumulate(hf.sim_indptr, hf.sim_proj, hf.sim_sign, d, v, acc)
    _signs_to_codes(acc, n_codes, codes)


@jit
def simhash_sparse_codes(hf, idx, vals, scratch_f, codes):
    n_codes = hf.K * hf.L
    acc = scratch_f[:n_codes]
    acc[:] = 0.0
    for k in range(idx.shape[0]):
        v = vals[k]
        if v != 0:
            _accumulate(hf.sim_indptr, hf.sim_proj, hf.sim_sign, idx[k], v, acc)
    _signs_to_codes(acc, n_codes, codes)
