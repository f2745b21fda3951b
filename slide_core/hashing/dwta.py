"""DWTA: densified winner-take-all hashing (Chen & Shrivastava 2018; SLIDE's default for
Amazon-670K, DensifiedWtaHash.cpp).

Layout (as the reference): P = ceil(n_bins * bin_size / dim) random permutations of the
``dim`` coordinates are laid end to end; slot s of that sequence is position
``s % bin_size`` of bin ``s // bin_size``; slots past the last of the n_bins = K*L bins are
unused. So every bin covers ``bin_size`` coordinate slots, bins may straddle two
permutations, and a coordinate appears in up to P bins. Stored coordinate-major:
``bin_of[d, p]`` / ``pos_of[d, p]`` is where coordinate d sits in permutation p (bin -1 if
unused), so a sparse input touches only its own rows; and bin-major,
``bin_coord[j, b]`` = the coordinate at position j of bin b, which the dense path scans
(K*L*bin_size reads, vectorisable across bins) instead of dim*P scattered updates.

Code of a bin = position of the largest *candidate* value in it; ties go to the smallest
position, so the code does not depend on the order coordinates are visited.

Candidates are the nonzero entries only. For sparse input this is what the reference does
(it only ever sees the nonzeros); for dense input the reference also compared the zeros,
so the same vector hashed differently depending on its format. We treat an exact 0.0 in a
dense vector as absent, so dense and sparse codes are identical. Negative values are
candidates (a bin whose only nonzero is -3 has that coordinate as winner). A bin without
candidates is empty (raw code -1) and is densified (see densify.py). Best values start at
-inf, so non-finite inputs give unspecified codes.
"""
from __future__ import annotations

import math

import numpy as np

from slide_core._numba import jit


def make_bins(rng: np.random.Generator, dim: int, n_bins: int, bin_size: int):
    """(bin_of int32[dim, P], pos_of int32[dim, P], bin_coord int32[bin_size, n_bins]) for
    P = ceil(n_bins*bin_size/dim) permutations."""
    n_perm = int(math.ceil(n_bins * bin_size / dim))
    bin_of = np.empty((dim, n_perm), dtype=np.int32)
    pos_of = np.empty((dim, n_perm), dtype=np.int32)
    for p in range(n_perm):
        perm = rng.permutation(dim)
        slot = p * dim + np.arange(dim, dtype=np.int64)
        b = slot // bin_size
        bin_of[perm, p] = np.where(b < n_bins, b, -1)
        pos_of[perm, p] = slot % bin_size
    bin_coord = np.empty((bin_size, n_bins), dtype=np.int32)
    used = bin_of >= 0
    coords = np.broadcast_to(np.arange(dim, dtype=np.int32)[:, None], bin_of.shape)
    bin_coord[pos_of[used], bin_of[used]] = coords[used]
    return bin_of, pos_of, bin_coord


@jit
def _offer(hf, d, v, best, codes):
    """Coordinate d with value v competes in every bin it occupies."""
    for p in range(hf.n_perm):
        b = hf.bin_of[d, p]
        if b < 0:
            continue
        pos = hf.pos_of[d, p]
        if v > best[b] or (v == best[b] and pos < codes[b]):
            best[b] = v
            codes[b] = pos


@jit
def dwta_argmax_slots(G, codes, m):
    """codes[x] = first position j < m of the largest nonzero G[j, x] (-1 if none).

    Same comparisons as a scan over positions, in the same order (j ascending, strict >,
    best from -inf), but with j as the inner loop and best/code in registers: stores are
    unconditional, so the x loop vectorises. (A loop over x storing ``code if take else
    code[x]`` per j became masked stores, which are slow on AMD Zen.) Call it with a
    literal m where possible: LLVM unrolls the j loop then, which it needs to vectorise
    over x (with a runtime m it measured several times slower). Each literal is its own compiled copy."""
    for x in range(codes.shape[0]):
        best = np.float32(-np.inf)
        c = np.int32(-1)
        for j in range(m):
            v = G[j, x]
            take = (v != 0) & (v > best)
            best = v if take else best
            c = np.int32(j) if take else c
        codes[x] = c


@jit
def dwta_dense_codes(hf, vec, scratch_f, codes):
    """Bin-major: gather the K*L*bin_size slot values into scratch (slots[j, b] = value at
    position j of bin b) with one plain gather loop, then the argmax over positions."""
    n_bins = hf.K * hf.L
    m = hf.bin_size
    slots = scratch_f[n_bins:n_bins * (1 + m)]
    flat = hf.bin_coord.ravel()
    for s in range(flat.shape[0]):
        slots[s] = vec[flat[s]]
    # literal 8 (the reference bin size): unrolled and vectorised; other m scalar
    G = slots.reshape((m, n_bins))
    if m == 8:
        dwta_argmax_slots(G, codes[:n_bins], 8)
    else:
        dwta_argmax_slots(G, codes[:n_bins], m)


@jit
def dwta_sparse_codes(hf, idx, vals, scratch_f, codes):
    n_bins = hf.K * hf.L
    best = scratch_f[:n_bins]
    best[:] = -np.inf
    codes[:n_bins] = -1
    for k in range(idx.shape[0]):
        v = vals[k]
        if v != 0:
            _offer(hf, idx[k], v, best, codes)
