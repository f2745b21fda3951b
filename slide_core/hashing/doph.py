"""DOPH: densified one-permutation minhash over the top-k coordinates of the input (the
reference's "topk minhash", DensifiedMinhash.cpp; Shrivastava 2017).

The input is turned into a set: its ``topk`` largest *nonzero* entries by value (ties to
the smaller coordinate index, so the set does not depend on input order; zeros are absent,
as in DWTA, so dense and sparse inputs agree; with fewer than topk nonzeros all of them are
taken). The set is min-hashed with one permutation cut into bins, using the same bin layout
as DWTA (random permutations laid end to end, bins of ``bin_size`` slots): the code of a
bin is the smallest in-bin position of a selected coordinate, i.e. which of the bin's
coordinates comes first in permuted order (log2(bin_size) bits). Empty bins are densified.

Deviation from the reference: it assigned coordinates to bins by MurmurHash (bins of
uneven size) and used the largest coordinate index as the code, so its codes needed a
multiplicative hash to pack. Ours are in-bin positions like DWTA's, so the same exact
packing applies. Default topk = 30 (reference Config.h TOPK).

Top-k selection runs a size-k heap in the caller's scratch rows (no allocation).
"""
from __future__ import annotations

from slide_core._numba import jit


@jit
def _worse(v1, d1, v2, d2):
    """True when entry (v1, d1) ranks below (v2, d2): smaller value, or equal value and
    larger coordinate index."""
    return v1 < v2 or (v1 == v2 and d1 > d2)


@jit
def _sift_down(hv, hi, n, i):
    """Restore the min-heap (root = worst kept entry) below position i."""
    while True:
        left = 2 * i + 1
        if left >= n:
            return
        w = left
        r = left + 1
        if r < n and _worse(hv[r], hi[r], hv[left], hi[left]):
            w = r
        if _worse(hv[w], hi[w], hv[i], hi[i]):
            hv[i], hv[w] = hv[w], hv[i]
            hi[i], hi[w] = hi[w], hi[i]
            i = w
        else:
            return


@jit
def _sift_up(hv, hi, i):
    while i > 0:
        parent = (i - 1) // 2
        if _worse(hv[i], hi[i], hv[parent], hi[parent]):
            hv[i], hv[parent] = hv[parent], hv[i]
            hi[i], hi[parent] = hi[parent], hi[i]
            i = parent
        else:
            return


@jit
def _push(hv, hi, n, k, d, v):
    """Offer entry (d, v) to a heap holding n of at most k entries; returns the new n."""
    if n < k:
        hv[n] = v
        hi[n] = d
        _sift_up(hv, hi, n)
        return n + 1
    if _worse(hv[0], hi[0], v, d):
        hv[0] = v
        hi[0] = d
        _sift_down(hv, hi, n, 0)
    return n


@jit
def _minhash_bins(hf, sel, n_sel, codes):
    codes[:hf.K * hf.L] = -1
    for s in range(n_sel):
        d = sel[s]
        for p in range(hf.n_perm):
            b = hf.bin_of[d, p]
            if b < 0:
                continue
            pos = hf.pos_of[d, p]
            if codes[b] < 0 or pos < codes[b]:
                codes[b] = pos


@jit
def doph_dense_codes(hf, vec, scratch_f, scratch_i, codes):
    k = hf.topk
    hv = scratch_f[:k]
    hi = scratch_i[:k]
    n = 0
    for d in range(hf.dim):
        v = vec[d]
        if v != 0:
            n = _push(hv, hi, n, k, d, v)
    _minhash_bins(hf, hi, n, codes)


@jit
def doph_sparse_codes(hf, idx, vals, scratch_f, scratch_i, codes):
    k = hf.topk
    hv = scratch_f[:k]
    hi = scratch_i[:k]
    n = 0
    for j in range(idx.shape[0]):
        v = vals[j]
        if v != 0:
            n = _push(hv, hi, n, k, idx[j], v)
    _minhash_bins(hf, hi, n, codes)
