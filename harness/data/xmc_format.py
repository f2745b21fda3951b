"""Numba kernel behind harness.data.xmc.write_xmc: XMC text of CSR rows as raw bytes.

Values are written like '%.9g' (9 significant digits), which any float32 reads back from
bit-identical; formatting in a kernel keeps writing an Amazon-sized file to seconds.
"""
from __future__ import annotations

import numpy as np

from slide_core._numba import drop_stale_cache_for, jit

# The bytes of the XMC text format, for this writer and the parser (xmc_parse). Numba freezes
# them into both modules' compiled kernels (and on-disk caches): ASCII, they never change.
NL = 10
CR = 13
TAB = 9
SP = 32
COLON = 58
COMMA = 44
MINUS = 45
PLUS = 43
DOT = 46
ZERO = 48
LOWER_E = 101  # 'e'; 'E' is LOWER_E with bit 5 cleared (c | 32 == LOWER_E reads both)

# the engine's Numba policy (cache, nogil; no fastmath: the digits must be exact), and its
# stale-cache rule: this module's cache goes when this file or the policy changes
drop_stale_cache_for(__file__)


@jit
def _put_uint(out, pos, v):
    """Decimal digits of a non-negative int at out[pos:]; returns the new position."""
    if v == 0:
        out[pos] = ZERO
        return pos + 1
    n = 0
    t = v
    while t > 0:
        t //= 10
        n += 1
    for i in range(n - 1, -1, -1):
        out[pos + i] = ZERO + v % 10
        v //= 10
    return pos + n


@jit
def _nine_digits(x, e):
    """round(x / 10**(e - 8)): the 9 leading significant digits of x, given e ~ floor(log10 x)."""
    k = 8 - e
    if k >= 0:
        return np.int64(x * 10.0 ** k + 0.5)
    return np.int64(x / 10.0 ** (-k) + 0.5)


@jit
def _put_float(out, pos, v):
    """Like '%.9g': 9 significant digits, enough for any float32 to read back bit-identical."""
    if v == 0.0:
        out[pos] = ZERO
        return pos + 1
    x = np.float64(v)
    if x < 0:
        out[pos] = MINUS
        pos += 1
        x = -x
    e = int(np.floor(np.log10(x)))
    m = _nine_digits(x, e)
    if m >= 1000000000:  # log10 was a hair low, or rounding carried into a 10th digit
        e += 1
        m = _nine_digits(x, e)
    elif m < 100000000:
        e -= 1
        m = _nine_digits(x, e)
    digits = np.empty(9, dtype=np.uint8)
    for i in range(8, -1, -1):
        digits[i] = ZERO + m % 10
        m //= 10
    nd = 9
    while nd > 1 and digits[nd - 1] == ZERO:
        nd -= 1
    if -5 <= e < 0:  # 0.000ddd
        out[pos] = ZERO
        out[pos + 1] = DOT
        pos += 2
        for _ in range(-e - 1):
            out[pos] = ZERO
            pos += 1
        for i in range(nd):
            out[pos] = digits[i]
            pos += 1
    elif 0 <= e < 9:  # ddd.ddd or ddd
        for i in range(max(nd, e + 1)):
            out[pos] = digits[i] if i < nd else ZERO
            pos += 1
            if i == e and i < nd - 1:
                out[pos] = DOT
                pos += 1
    else:  # d.ddde+XX
        out[pos] = digits[0]
        pos += 1
        if nd > 1:
            out[pos] = DOT
            pos += 1
            for i in range(1, nd):
                out[pos] = digits[i]
                pos += 1
        out[pos] = LOWER_E
        out[pos + 1] = MINUS if e < 0 else PLUS
        pos = _put_uint(out, pos + 2, abs(e))
    return pos


# Bytes a row can take at most: label ids (10 digits + ','), features (10 digits + ':' + a
# 15-byte value + ' '), plus the row's leading space and '\n'.
LABEL_BYTES = 11
FEATURE_BYTES = 28
ROW_BYTES = 2


@jit
def format_rows(f_indptr, f_indices, f_data, l_indptr, l_indices, lo, hi, out):
    """XMC text of rows lo..hi-1 into out (sized with the *_BYTES bounds); returns bytes used."""
    pos = 0
    for r in range(lo, hi):
        a = l_indptr[r]
        b = l_indptr[r + 1]
        for i in range(a, b):
            if i > a:
                out[pos] = COMMA
                pos += 1
            pos = _put_uint(out, pos, l_indices[i])
        for i in range(f_indptr[r], f_indptr[r + 1]):
            out[pos] = SP
            pos += 1
            pos = _put_uint(out, pos, f_indices[i])
            out[pos] = COLON
            pos += 1
            pos = _put_float(out, pos, f_data[i])
        if a == b and f_indptr[r] == f_indptr[r + 1]:
            out[pos] = SP  # a point with neither labels nor features: keep the line non-empty
            pos += 1
        out[pos] = NL
        pos += 1
    return pos
