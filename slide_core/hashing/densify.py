"""Densification of empty bins (DWTA and DOPH), after Chen & Shrivastava's densified
one-permutation hashing as used by the SLIDE reference code.

A bin is *empty* when no candidate coordinate of the input falls into it (raw code -1).
Its code is borrowed from another bin, chosen by a universal hash of (bin, attempt) for
attempt = 1, 2, ..., ``max_attempts``; the first non-empty bin found lends its *raw*
(undensified) code, so the result does not depend on the order bins are visited. If every
attempt hits an empty bin (always the case for an empty or all-zero input) the code is 0,
so such inputs hash deterministically (the reference left INT_MIN there).

The universal hash: x = ((bin + 1) << 7) + attempt, h = (a*x + c) mod 2**32,
other = (h * n_bins) >> 32 (multiply-shift onto [0, n_bins), never out of range; the
reference clamped an out-of-range index with min(), hitting one past the end).
``a`` (odd) and ``c`` are < 2**31 and drawn from the seed, n_bins < 2**24 and attempt < 128,
so everything fits in int64 without overflow.
"""
from __future__ import annotations

from slide_core._numba import jit

MAX_BINS = 1 << 24
MAX_ATTEMPTS_LIMIT = 127


@jit
def borrow_index(b, attempt, n_bins, a, c):
    """Bin that empty bin ``b`` asks on its ``attempt``-th try (1-based)."""
    x = ((b + 1) << 7) + attempt
    h = (a * x + c) & 0xFFFFFFFF
    return (h * n_bins) >> 32


@jit
def densified_code(raw, b, n_bins, a, c, max_attempts):
    """Code of bin ``b``: its own raw code, or one borrowed from another non-empty bin."""
    code = raw[b]
    if code >= 0:
        return code
    for attempt in range(1, max_attempts + 1):
        code = raw[borrow_index(b, attempt, n_bins, a, c)]
        if code >= 0:
            return code
    return 0
