"""Slow, obviously-correct numpy/Python versions of the LSH kernels in slide_core.hashing
and slide_core.tables, for tests only.

They read the hash-function *parameters* (which coordinates each projection/bin holds) from
a HashFunctions, but re-derive everything else in the most direct way: projection-major
sums, per-bin scans, sorting for top-k, Python integers for bit packing and mixing, lists
of members for buckets.
"""
from __future__ import annotations

import math

import numpy as np

MASK64 = (1 << 64) - 1
SIMHASH, WTA, DWTA, DOPH = 0, 1, 2, 3


# ---------------------------------------------------------------- integer hashing helpers
def mix64(z: int) -> int:
    """splitmix64 finaliser on Python ints."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def pack(codes, K: int, code_bits: int, packing: str, code_range: int, range_pow: int) -> int:
    """Bucket key of K codes, computed from the packing's definition (not from hf.shifts)."""
    step = code_bits if (packing == "exact" or code_range <= 2) else int(math.floor(math.log(code_range)))
    key = sum(int(codes[j]) << ((K - 1 - j) * step) for j in range(K))
    max_key = sum((code_range - 1) << ((K - 1 - j) * step) for j in range(K))
    if max_key >= 2**range_pow:
        return mix64(key) >> (64 - range_pow)
    return key


def borrow_index(b: int, attempt: int, n_bins: int, a: int, c: int) -> int:
    x = ((b + 1) << 7) + attempt
    h = (a * x + c) % 2**32
    return (h * n_bins) >> 32


def densify(raw, a: int, c: int, max_attempts: int):
    n = len(raw)
    out = []
    for b in range(n):
        code = raw[b]
        attempt = 0
        while code < 0 and attempt < max_attempts:
            attempt += 1
            code = raw[borrow_index(b, attempt, n, a, c)]
        out.append(code if code >= 0 else 0)
    return out


# ---------------------------------------------------------------- family codes (dense input)
def simhash_projections(hf):
    """list over projections of (coords ascending, signs), from the sign matrix sim_R."""
    out = []
    for p in range(hf.K * hf.L):
        coords = np.flatnonzero(hf.sim_R[:, p])
        out.append((coords, hf.sim_R[coords, p].astype(np.float32)))
    return out


def simhash_codes(hf, vec):
    codes = []
    for coords, signs in simhash_projections(hf):
        terms = (signs * vec[coords]).astype(np.float32)
        # float32 running sum in ascending coordinate order (cumsum is sequential)
        s = np.cumsum(terms, dtype=np.float32)[-1] if len(terms) else np.float32(0)
        codes.append(1 if s < 0 else 0)
    return codes


def wta_codes(hf, vec):
    return [int(np.argmax(vec[hf.wta_idx[c]])) for c in range(hf.K * hf.L)]  # first max = smallest position


def bins_members(hf):
    """list over bins of [(coordinate, position)], from bin_of/pos_of."""
    members = [[] for _ in range(hf.K * hf.L)]
    for d in range(hf.dim):
        for p in range(hf.n_perm):
            b = hf.bin_of[d, p]
            if b >= 0:
                members[b].append((d, int(hf.pos_of[d, p])))
    return members


def dwta_raw_codes(hf, vec):
    raw = []
    for mem in bins_members(hf):
        cands = [(float(vec[d]), pos) for d, pos in mem if vec[d] != 0]
        if not cands:
            raw.append(-1)
            continue
        best = max(v for v, _ in cands)
        raw.append(min(pos for v, pos in cands if v == best))
    return raw


def doph_raw_codes(hf, vec):
    nz = [(float(vec[d]), d) for d in range(hf.dim) if vec[d] != 0]
    nz.sort(key=lambda e: (-e[0], e[1]))
    selected = {d for _, d in nz[:hf.topk]}
    raw = []
    for mem in bins_members(hf):
        pos = [p for d, p in mem if d in selected]
        raw.append(min(pos) if pos else -1)
    return raw


def codes(hf, vec):
    """Final (densified) K*L codes of a dense vector."""
    vec = np.asarray(vec, dtype=np.float32)
    if hf.family == SIMHASH:
        return simhash_codes(hf, vec)
    if hf.family == WTA:
        return wta_codes(hf, vec)
    raw = dwta_raw_codes(hf, vec) if hf.family == DWTA else doph_raw_codes(hf, vec)
    return densify(raw, hf.densify_a, hf.densify_c, hf.max_attempts)


def keys(hf, vec, packing: str = "exact"):
    """L bucket keys of a dense vector."""
    cs = codes(hf, vec)
    code_range = 2 if hf.family == SIMHASH else hf.bin_size
    return np.array([pack(cs[t * hf.K:(t + 1) * hf.K], hf.K, hf.code_bits, packing, code_range, hf.range_pow)
                     for t in range(hf.L)], dtype=np.int64)


# ---------------------------------------------------------------- tables
def reservoir_draw(seed: int, t: int, k: int, r: int) -> int:
    z = mix64((seed * 0x9E3779B97F4A7C15 + t) & MASK64)
    z = mix64(z ^ ((k * 0xC2B2AE3D27D4EB4F) & MASK64))
    z = mix64(z ^ r)
    return ((z >> 32) * (r + 1)) >> 32


def buckets(keys_arr, capacity: int, policy: str, seed: int = 0):
    """{(t, k): [neuron ids in stored order]} by brute force over every bucket."""
    n, L = keys_arr.shape
    out = {}
    for t in range(L):
        for k in np.unique(keys_arr[:, t]):
            members = [i for i in range(n) if keys_arr[i, t] == k]
            if policy == "fifo":
                kept = members[-capacity:]
            else:
                kept = []
                for r, i in enumerate(members):
                    if r < capacity:
                        kept.append(i)
                    else:
                        j = reservoir_draw(seed, t, int(k), r)
                        if j < capacity:
                            kept[j] = i
            out[(t, int(k))] = kept
    return out


def query_counts(bkts, qkeys, n_neurons: int):
    counts = np.zeros(n_neurons, dtype=np.int64)
    for t, k in enumerate(qkeys):
        for i in bkts.get((t, int(k)), []):
            counts[i] += 1
    return counts
