"""SimHash: signed random projections with sparse +-1 entries (Charikar; SLIDE's
SparseRandomProjection with Ratio 3).

Each of the K*L projections picks ``ceil(density * dim)`` distinct coordinates without
replacement and a random sign for each; code = 1 if the signed sum of the input over those
coordinates is < 0, else 0 (1 bit per code, as the reference: s >= 0 -> 0).

Storage: ``sim_R`` int8[dim, K*L] with entries -1/0/+1, coordinate-major. At density 1/3
one byte per (coordinate, projection) is smaller than an index+sign list (8 bytes per
nonzero entry). Dense and sparse inputs run the same loop: for each nonzero input value v
at coordinate d, ``acc[:] += R[d, :] * v`` over all projections. That inner loop is
independent across projections, so it vectorises without fastmath, and every accumulator
still sums its terms in coordinate order (ascending for a dense input, the given order for
a sparse one), in float32. Adding the 0*v terms of projections that do not contain d is
exact (x + +-0 == x, and a sum starting at +0 never becomes -0). So with sorted sparse
indices (canonical CSR) dense and sparse codes are bit-identical, and the numpy reference
reproduces them exactly. Non-finite inputs give unspecified codes.
"""
from __future__ import annotations

import math

import numpy as np

from slide_core._numba import jit


def make_simhash(rng: np.random.Generator, dim: int, n_codes: int, density: float) -> np.ndarray:
    """int8[dim, n_codes]: R[d, p] = sign of coordinate d in projection p, or 0."""
    per_proj = max(1, min(dim, int(math.ceil(density * dim))))
    R = np.zeros((dim, n_codes), dtype=np.int8)
    for p in range(n_codes):
        coords = rng.choice(dim, size=per_proj, replace=False)
        R[coords, p] = np.where(rng.random(per_proj) < 0.5, 1, -1)
    return R


@jit
def _accumulate(R, d, v, acc):
    row = R[d]
    for p in range(acc.shape[0]):
        acc[p] += np.float32(row[p]) * v


@jit
def _signs_to_codes(acc, codes):
    for p in range(acc.shape[0]):
        codes[p] = 1 if acc[p] < 0 else 0


@jit
def simhash_dense_codes(hf, vec, scratch_f, codes):
    acc = scratch_f[:hf.K * hf.L]
    acc[:] = 0.0
    for d in range(hf.dim):
        v = vec[d]
        if v != 0:
            _accumulate(hf.sim_R, d, v, acc)
    _signs_to_codes(acc, codes)


@jit
def simhash_sparse_codes(hf, idx, vals, scratch_f, codes):
    acc = scratch_f[:hf.K * hf.L]
    acc[:] = 0.0
    for k in range(idx.shape[0]):
        v = vals[k]
        if v != 0:
            _accumulate(hf.sim_R, idx[k], v, acc)
    _signs_to_codes(acc, codes)
