"""Packing K hash codes into one bucket key in [0, 2**range_pow).

Two named packings (paper terms: K codes per table, range_pow bits per key):

- ``exact`` (default): every code gets ``code_bits = ceil(log2(code_range))`` bits (1 for
  SimHash, log2(bin_size) for WTA/DWTA/DOPH) and the K codes are concatenated, code 0 in the
  highest bits: ``key = sum_j code_j << (K-1-j)*code_bits``. Distinct code tuples give
  distinct keys whenever ``K*code_bits <= range_pow``.
- ``reference_ln``: what the reference C++ (LSH::hashesToIndex) does for WTA/DWTA: codes
  are *added* with a shift of ``floor(ln(bin_size))`` bits (2 for bin_size 8, natural log,
  not log2), so neighbouring 3-bit codes overlap and carry into each other. With K=6,
  bin_size=8 the largest key is 7*(1+4+...+4**5) = 9,555: only ~9.6k of the 2**18 buckets
  are reachable, buckets are fuller and the active sets larger. The paper's published
  accuracy was obtained with this packing, hence it is kept, by name. For SimHash the
  reference shifts by 1 bit per code, so ``reference_ln`` equals ``exact`` there. We apply
  the same floor(ln m) shift to our DOPH codes (which, like DWTA codes, are in-bin
  positions); the reference combined its DOPH codes with a multiplicative hash instead.

Folding: if the largest possible packed value does not fit in range_pow bits (for example
K*code_bits > range_pow), the packed 64-bit value is passed through the splitmix64
finaliser (a bijection on 64-bit integers) and its top ``range_pow`` bits are the key.
Equal code tuples still give equal keys (the LSH property); unequal tuples collide with
probability ~2**-range_pow. The reference code instead indexed out of range for WTA/DWTA.
"""
from __future__ import annotations

import math

import numpy as np

from slide_core._numba import jit
from slide_core.rng import mix64

PACKINGS = ("exact", "reference_ln")
PACK_EXACT = 0
PACK_REFERENCE_LN = 1

_ONE = np.uint64(1)


def code_bits_for(code_range: int) -> int:
    """Bits needed to hold one code in [0, code_range): ceil(log2(code_range))."""
    if code_range < 1:
        raise ValueError(f"code_range must be >= 1, got {code_range}")
    return int(code_range - 1).bit_length()


def packing_layout(packing: str, K: int, code_range: int, range_pow: int) -> tuple[int, np.ndarray, int]:
    """(code_bits, shifts int64[K], fold) for the named packing.

    ``shifts[j]`` is the left shift of code j; ``fold`` is 1 when the largest packed value
    does not fit in range_pow bits and keys must be folded by mixing.
    """
    if packing not in PACKINGS:
        raise ValueError(f"packing must be one of {PACKINGS}, got {packing!r}")
    bits = code_bits_for(code_range)
    if packing == "exact" or code_range <= 2:
        step = bits
    else:
        step = int(math.floor(math.log(code_range)))
    shifts = np.array([(K - 1 - j) * step for j in range(K)], dtype=np.int64)
    max_key = sum((code_range - 1) << int(s) for s in shifts)
    if max_key >= 2**64:
        raise ValueError(
            f"K={K} codes of {bits} bits do not fit in 64 bits even before folding; use a smaller K")
    fold = int(max_key >= 2**range_pow)
    return bits, shifts, fold


@jit
def add_code(key, code, shift):
    """key + code << shift, all in uint64 (addition, so reference_ln codes may carry)."""
    return key + (np.uint64(code) << np.uint64(shift))


@jit
def finalize_key(key, fold, range_pow):
    """The bucket key in [0, 2**range_pow) as int32; folds by mixing when needed."""
    if fold:
        return np.int32(mix64(key) >> np.uint64(64 - range_pow))
    return np.int32(key & ((_ONE << np.uint64(range_pow)) - _ONE))
