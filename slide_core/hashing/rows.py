"""Hashing many dense rows at once (table rehash: every neuron's weight vector), BLOCK rows
at a time, with the same keys as ``hash_dense_into`` row by row.

Why blocks: hashing one 128-float row touches each hash function's few coordinates by
gathers and a loop over bins whose trip count LLVM cannot exploit well (~5 us/row for DWTA
K=6 L=50). A block of BLOCK rows is first transposed into ``T[d, r]`` (dim x BLOCK floats,
in L1), so every step of every hash function becomes one contiguous BLOCK-wide vector
operation over the block's rows: no gathers, a constant trip count, and the hash
function's tables are read once per block instead of once per row.

Bit-identity with the per-row path (tests compare them): the per-row semantics are
replayed exactly per row lane.
- DWTA: for each bin, positions j ascending, ``take = (v != 0) & (v > best)``, best from
  -inf, code from -1 (dwta.py). Packing is vectorised over the block; a row with any empty
  bin (raw code -1, rare for weight rows) gets its keys recomputed by the per-row
  densify+pack (``_codes_to_keys``), so densification is shared code.
- SimHash: acc[p] = sum over d ascending of float32(R[d, p]) * v_d in float32, exactly the
  per-row accumulation order (simhash.py; skipped zero terms there are exact no-ops here).
Other families (WTA, DOPH) fall back to the per-row path.

Keys are written row-major (keys[n, L]) or table-major (keys_t[L, n], what build_tables
consumes: writing it directly saves the table build a transpose of the whole key array).
"""
from __future__ import annotations

import numpy as np

from slide_core._numba import jit
from slide_core.hashing.functions import DWTA, SIMHASH
from slide_core.hashing.packing import finalize_key

BLOCK = 16  # rows per block: 16 float32 lanes = one AVX-512 / two AVX2 registers

def block_scratch_sizes(family: int, dim: int, n_codes: int, L: int, bin_size: int) -> tuple[int, int]:
    """(n_float32, n_int32) scratch rows ``block_codes_and_keys`` needs."""
    n_f = dim * BLOCK + (n_codes * BLOCK if family == SIMHASH else n_codes * BLOCK * bin_size)
    n_i = n_codes * BLOCK + L * BLOCK + BLOCK
    return n_f, n_i


def block_supported(family: int) -> bool:
    return family == DWTA


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
    disjoint), 2x slower. Pure moves: the bits are copied unchanged."""
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
def dwta_argmax_slots(G, codes, m):
    """codes[x] = first position j < m of the largest nonzero G[j, x] (-1 if none).

    Same comparisons as dwta._scan_position, in the same order (j ascending, strict >,
    best from -inf), but with j as the inner loop and best/code in registers: stores are
    unconditional, so the x loop vectorises. (A loop over x storing ``code if take else
    code[x]`` per j became masked stores, which are slow on AMD Zen.) Call it with a
    literal m where possible: LLVM unrolls the j loop then, which it needs to vectorise
    over x (runtime m measured ~10x slower)."""
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
def dwta_argmax(G, codes):
    """dwta_argmax_slots with the common bin sizes as literals (see there)."""
    m = G.shape[0]
    if m == 8:
        dwta_argmax_slots(G, codes, 8)
    elif m == 4:
        dwta_argmax_slots(G, codes, 4)
    elif m == 16:
        dwta_argmax_slots(G, codes, 16)
    else:
        dwta_argmax_slots(G, codes, m)


@jit
def _dwta_block(bin_coord, T, G, raw):
    """raw[b, r] = DWTA raw code of bin b for lane r (-1 if no nonzero candidate)."""
    m, n_bins = bin_coord.shape
    Gc = G.view(np.complex128).reshape((m, n_bins, BLOCK // 4))
    _gather_slots(bin_coord, T.view(np.complex128), Gc)
    dwta_argmax(G, raw.reshape(n_bins * BLOCK))


@jit
def _simhash_acc(Rrow, v, acc):
    """acc[p, r] += float32(R[d, p]) * v[r] for every projection p and lane r."""
    for p in range(acc.shape[0]):
        rp = np.float32(Rrow[p])
        a = acc[p]
        for r in range(BLOCK):
            a[r] += rp * v[r]


@jit
def _simhash_block(R, T, acc, raw):
    """raw[p, r] = 1 if lane r's projection p is < 0 else 0, summed over d ascending."""
    acc[:] = 0.0
    for d in range(T.shape[0]):
        _simhash_acc(R[d], T[d], acc)
    for p in range(acc.shape[0]):
        for r in range(BLOCK):
            raw[p, r] = 1 if acc[p, r] < 0 else 0


@jit
def _pack_block(hf, raw, keys_blk):
    """keys_blk[t, r] from raw[t*K + j, r], vectorised over lanes (no densification)."""
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
    if hf.family == DWTA:
        m = hf.bin_size
        _dwta_block(hf.bin_coord, T, rest[:m * n_codes * BLOCK].reshape((m, n_codes * BLOCK)), raw)
        _lanes_with_empty(raw, flag)
    else:
        _simhash_block(hf.sim_R, T, rest[:n_codes * BLOCK].reshape((n_codes, BLOCK)), raw)
        flag[:] = 0
    _pack_block(hf, raw, keys_blk)
    return raw, keys_blk, flag
