"""Hashing many dense rows at once (table rehash: every neuron's weight vector), BLOCK rows
at a time, with the same keys as ``hash_dense_into`` row by row.

Why blocks (DWTA with bin_size 8 only): per row, the K*L*bin_size slot values are gathered one float at a
time (benchmarks/bench_hashing.py prints the per-vector and the hash_rows times). A block of BLOCK rows is first transposed into ``T[d, r]``
(dim x BLOCK floats, in L1); then slot (j, b) of all BLOCK rows is one 64-byte move
(``_gather_slots``), the hash function's coordinate table is read once per block instead
of once per row, and the argmax over positions runs over n_bins*BLOCK lanes
(``dwta.dwta_argmax_slots`` with a literal m = 8, vectorised).

Bit-identity with the per-row path (tests compare them): per lane, positions j ascending,
``take = (v != 0) & (v > best)``, best from -inf, code from -1, exactly as dwta.py. Packing
is vectorised over the block; a row with any empty bin (raw code -1, rare for weight rows)
gets its keys recomputed by the per-row densify+pack (dispatch._codes_to_keys), so
densification is shared code. Other families use the per-row path (a blocked SimHash with
the same float32 summation order was slower than per row: tried, dropped).

Keys are written row-major (keys[n, L]) or table-major (keys_t[L, n], what build_tables
consumes: writing it directly saves the table build a transpose of the whole key array).
"""
from __future__ import annotations

import numpy as np

from slide_core._numba import jit
from slide_core.hashing.dwta import dwta_argmax_slots
from slide_core.hashing.families import DWTA
from slide_core.hashing.packing import finalize_key

BLOCK = 16  # rows per block: 16 float32 lanes = 64 bytes = one cache line per slot


def block_scratch_sizes(family: int, dim: int, n_codes: int, L: int, bin_size: int) -> tuple[int, int]:
    """(n_float32, n_int32) scratch rows ``block_codes_and_keys`` needs."""
    n_f = dim * BLOCK + n_codes * BLOCK * bin_size
    n_i = n_codes * BLOCK + L * BLOCK + BLOCK
    return n_f, n_i


def block_supported(family: int, bin_size: int) -> bool:
    """DWTA with the reference bin size 8 (the argmax is compiled for that literal m;
    other bin sizes take the row-wise path, identical keys)."""
    return family == DWTA and bin_size == 8


@jit
def _load_block(W, lo, nb, T):
    """T[d, r] = W[lo + r, d] for r < nb, zeros for the padding lanes r >= nb."""
    dim = T.shape[0]
    for r in range(nb):
        row = W[lo + r]
        for d in range(dim):
            T[d, r] = row[d]
    for r in range(nb, BLOCK):
        for d in range(dim):
            T[d, r] = 0.0


@jit
def _gather_slots(bin_coord, Tc, Gc):
    """Gc[j, b] = Tc[bin_coord[j, b]]: the BLOCK lanes of the coordinate at position j of
    bin b. A lane group (16 float32 = 64 bytes) is moved as 4 complex128: written as a
    16-float loop, LLVM fully unrolled it into scalar moves (it cannot prove Tc and Gc
    disjoint), much slower. Pure moves: the bits are copied unchanged."""
    m, n_bins = bin_coord.shape
    for j in range(m):
        g = Gc[j]
        for b in range(n_bins):
            d = bin_coord[j, b]
            g[b, 0] = Tc[d, 0]
            g[b, 1] = Tc[d, 1]
            g[b, 2] = Tc[d, 2]
            g[b, 3] = Tc[d, 3]


@jit
def _dwta_block(bin_coord, T, G, raw):
    """raw[b, r] = DWTA raw code of bin b for lane r (-1 if no nonzero candidate)."""
    m, n_bins = bin_coord.shape
    Gc = G.view(np.complex128).reshape((m, n_bins, BLOCK // 4))
    _gather_slots(bin_coord, T.view(np.complex128), Gc)
    dwta_argmax_slots(G, raw.reshape(n_bins * BLOCK), 8)  # block_supported: bin_size 8 only


@jit
def _pack_block(hf, raw, keys_blk):
    """keys_blk[t, r] from raw[t*K + j, r], lane by lane (no densification; a sizeable
    share of the block path's time, a candidate for vectorising over lanes)."""
    for t in range(hf.L):
        kb = keys_blk[t]
        for r in range(BLOCK):
            key = np.uint64(0)
            for j in range(hf.K):
                key += np.uint64(raw[t * hf.K + j, r]) << np.uint64(hf.shifts[j])
            kb[r] = finalize_key(key, hf.fold, hf.range_pow)


@jit
def _lanes_with_empty(raw, flag):
    """flag[r] < 0 iff lane r has an empty bin (a raw code -1): a vectorised min."""
    flag[:] = 0
    for b in range(raw.shape[0]):
        rb = raw[b]
        for r in range(BLOCK):
            flag[r] = min(flag[r], rb[r])


@jit
def block_codes_and_keys(hf, W, lo, nb, sf, si):
    """Hash rows W[lo:lo+nb] (nb <= BLOCK): returns (raw codes [n_codes, BLOCK], keys
    [L, BLOCK], empty flags [BLOCK]) as views of the scratch rows. Keys of a lane with an
    empty DWTA bin are NOT densified: the caller recomputes them (dispatch.py)."""
    n_codes = hf.K * hf.L
    dim = hf.dim
    T = sf[:dim * BLOCK].reshape((dim, BLOCK))
    rest = sf[dim * BLOCK:]
    raw = si[:n_codes * BLOCK].reshape((n_codes, BLOCK))
    o = n_codes * BLOCK
    keys_blk = si[o:o + hf.L * BLOCK].reshape((hf.L, BLOCK))
    flag = si[o + hf.L * BLOCK:o + hf.L * BLOCK + BLOCK]
    _load_block(W, lo, nb, T)
    m = hf.bin_size
    _dwta_block(hf.bin_coord, T, rest[:m * n_codes * BLOCK].reshape((m, n_codes * BLOCK)), raw)
    _lanes_with_empty(raw, flag)
    _pack_block(hf, raw, keys_blk)
    return raw, keys_blk, flag
