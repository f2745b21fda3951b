"""WTA (winner-take-all) hashing (Yagnik et al.): each code looks at ``bin_size`` distinct
coordinates (a random permutation prefix, drawn independently per code) and its value is
the position (0..bin_size-1) of the largest of them: log2(bin_size) bits.

Unlike DWTA, plain WTA compares the values of all its coordinates including zeros (there
is no densification, every code always has a winner). Ties go to the smallest position,
so the code depends only on the values, not on evaluation order. A sparse input is
scattered into the float scratch row (``dim`` floats, zeroed on every call: O(dim) per
sparse hash, so prefer DWTA for very wide sparse inputs), which makes dense and sparse
codes identical by construction. The reference WtaHash.cpp read the wrong
coordinate for the winning value and returned a coordinate index instead of a position;
we implement WTA as published.
"""
from __future__ import annotations

import numpy as np

from slide_core._numba import jit


def make_wta(rng: np.random.Generator, dim: int, n_codes: int, bin_size: int) -> np.ndarray:
    """int32[n_codes, bin_size]: the coordinates each code compares, in position order."""
    if bin_size > dim:
        raise ValueError(f"wta needs bin_size <= dim (distinct coordinates per code), got bin_size={bin_size}, dim={dim}")
    out = np.empty((n_codes, bin_size), dtype=np.int32)
    for c in range(n_codes):
        out[c] = rng.choice(dim, size=bin_size, replace=False)
    return out


@jit
def wta_dense_codes(hf, vec, codes):
    idx = hf.wta_idx
    for c in range(hf.K * hf.L):
        best = vec[idx[c, 0]]
        best_pos = 0
        for j in range(1, hf.bin_size):
            v = vec[idx[c, j]]
            if v > best:
                best = v
                best_pos = j
        codes[c] = best_pos


@jit
def wta_sparse_codes(hf, idx, vals, scratch_f, codes):
    dense = scratch_f[:hf.dim]
    dense[:] = 0.0
    for k in range(idx.shape[0]):
        dense[idx[k]] = vals[k]
    wta_dense_codes(hf, dense, codes)
