"""Numba kernels behind harness.data.xmc.read_xmc: parse the XMC text format as raw bytes.

Parsing runs over the whole file as a uint8 array in two passes: `count_separators` bounds the
output sizes (every feature token holds one ':', a row has at most commas + 1 label ids), then
`parse_body` fills preallocated CSR arrays. Every check (ranges, "f:v" syntax, finite values,
duplicate feature ids, row count) happens inside `parse_body`: on the first problem it stops
and reports an error code, the 1-based line, the offending id and the byte offset of the
offending token; harness.data.xmc turns those into a message. Kernels never raise, because
a Numba exception cannot carry the file name and formatting a message in nopython mode is awkward.
"""
from __future__ import annotations

import numpy as np

from harness.data import xmc_format
from harness.data.xmc_format import (COLON, COMMA, CR, DOT, LOWER_E, MINUS, NL, PLUS, SP, TAB,
                                      ZERO)
from slide_core._numba import drop_stale_cache_for, jit

# Error codes returned by parse_body (err[0]); 0 = no error.
E_MALFORMED_FEATURE = 1
E_NEGATIVE_FEATURE = 2
E_FEATURE_RANGE = 3
E_MALFORMED_LABEL = 4
E_NEGATIVE_LABEL = 5
E_LABEL_RANGE = 6
E_NONFINITE = 7
E_DUPLICATE_FEATURE = 8
E_TOO_FEW_ROWS = 9
E_TOO_MANY_ROWS = 10

# Integers saturate here while parsing, so a 40-digit id cannot overflow int64: anything
# above it is out of range for an int32 id anyway.
_INT_CAP = 1 << 40
# float32(x) is inf from here on: FLT_MAX plus half an ulp (ties round to even, i.e. up)
_FLOAT32_OVERFLOW = 3.4028235677973366e38

# Powers of ten that float64 holds exactly: one division by these rounds correctly.
_POW10 = 10.0 ** np.arange(23, dtype=np.float64)

# the engine's Numba policy (cache, nogil; no fastmath: values must parse exactly), and its
# stale-cache rule: the compiled parser freezes xmc_format's byte constants, so a change there
# (or here, or to the policy) drops this module's cache
drop_stale_cache_for(__file__, xmc_format.__file__)


@jit
def _is_space(c):
    return c == SP or c == TAB or c == CR


@jit
def _is_digit(c):
    return c >= ZERO and c <= ZERO + 9


@jit
def count_separators(buf, start, end):
    """Numbers of ':', ',' and '\n' bytes in buf[start:end]: upper bounds for the feature and
    label arrays and for the number of rows."""
    n_colon = 0
    n_comma = 0
    n_newline = 0
    for i in range(start, end):  # branch-free so that LLVM vectorises the loop
        c = buf[i]
        n_colon += c == COLON
        n_comma += c == COMMA
        n_newline += c == NL
    return n_colon, n_comma, n_newline


@jit
def _parse_uint(buf, a, b):
    """Digits in buf[a:b] as an int, saturating at _INT_CAP; -1 if empty or not all digits."""
    if a >= b:
        return -1
    v = 0
    for i in range(a, b):
        c = buf[i]
        if not _is_digit(c):
            return -1
        if v < _INT_CAP:
            v = v * 10 + (c - ZERO)
    return v


@jit
def _matches_word(buf, a, b, word):
    """buf[a:b] equals the lower-case ASCII `word` (a uint8 array), ignoring case."""
    if b - a != len(word):
        return False
    for i in range(b - a):
        if (buf[a + i] | 32) != word[i]:
            return False
    return True


_NAN = np.frombuffer(b"nan", dtype=np.uint8).copy()
_INF = np.frombuffer(b"inf", dtype=np.uint8).copy()
_INFINITY = np.frombuffer(b"infinity", dtype=np.uint8).copy()


@jit
def _is_nonfinite_word(buf, a, b):
    return (_matches_word(buf, a, b, _NAN) or _matches_word(buf, a, b, _INF)
            or _matches_word(buf, a, b, _INFINITY))


@jit
def _parse_float(buf, a, b):
    """Decimal float that must fill buf[a:b] -> (value, status); status 0 ok, 1 malformed,
    2 non-finite (nan, inf, or beyond float32's range)."""
    i = a
    if i < b and (buf[i] == MINUS or buf[i] == PLUS):
        i += 1
    if i < b and (buf[i] | 32) in (110, 105):  # 'n' or 'i': maybe nan / inf / infinity
        return 0.0, (2 if _is_nonfinite_word(buf, i, b) else 1)
    v, status, stop = _parse_number(buf, a, b)
    if status == 0 and stop != b:
        return 0.0, 1
    return v, status


@jit
def _parse_number(buf, a, b):
    """The decimal number starting at buf[a] (not past b) -> (value, status, stop): stop is
    the first byte after it; status as in _parse_float (nan / inf words are not numbers here).

    Up to 18 significant digits are kept in an int64 mantissa and scaled by a power of ten in
    float64: exact enough for a float32 result (and for the 9-digit values write_xmc emits)."""
    i = a
    neg = False
    if i < b and (buf[i] == MINUS or buf[i] == PLUS):
        neg = buf[i] == MINUS
        i += 1
    mant = 0
    sig = 0
    exp10 = 0
    n_digits = 0
    while i < b and _is_digit(buf[i]):
        if sig < 18:
            mant = mant * 10 + (buf[i] - ZERO)
            if mant > 0:
                sig += 1
        else:
            exp10 += 1
        n_digits += 1
        i += 1
    if i < b and buf[i] == DOT:
        i += 1
        while i < b and _is_digit(buf[i]):
            if sig < 18:
                mant = mant * 10 + (buf[i] - ZERO)
                exp10 -= 1
                if mant > 0:
                    sig += 1
            n_digits += 1
            i += 1
    if n_digits == 0:
        return 0.0, 1, i
    if i < b and (buf[i] | 32) == LOWER_E:  # 'e' / 'E'
        i += 1
        eneg = False
        if i < b and (buf[i] == MINUS or buf[i] == PLUS):
            eneg = buf[i] == MINUS
            i += 1
        if i >= b or not _is_digit(buf[i]):
            return 0.0, 1, i
        e = 0
        while i < b and _is_digit(buf[i]):
            if e < 100000:
                e = e * 10 + (buf[i] - ZERO)
            i += 1
        exp10 += -e if eneg else e
    if mant == 0:
        return 0.0, 0, i
    if exp10 > 400:
        return 0.0, 2, i
    if exp10 < -400:
        return 0.0, 0, i
    if exp10 >= 0:
        v = mant * (_POW10[exp10] if exp10 < 23 else 10.0 ** exp10)
    else:
        v = mant / (_POW10[-exp10] if exp10 > -23 else 10.0 ** (-exp10))
    if v >= _FLOAT32_OVERFLOW:
        return 0.0, 2, i
    return (-v if neg else v), 0, i


@jit
def _sort_row(indices, data, lo, hi):
    """Sort indices[lo:hi] (and data alongside) ascending; no-op when already sorted,
    which is the common case in the public files."""
    ok = True
    for i in range(lo + 1, hi):
        if indices[i] < indices[i - 1]:
            ok = False
            break
    if ok:
        return
    if hi - lo <= 32:  # insertion sort: no allocation for the short rows that dominate
        for i in range(lo + 1, hi):
            k = indices[i]
            v = data[i]
            j = i - 1
            while j >= lo and indices[j] > k:
                indices[j + 1] = indices[j]
                data[j + 1] = data[j]
                j -= 1
            indices[j + 1] = k
            data[j + 1] = v
    else:  # heapsort: O(n log n) in place; np.argsort would cost seconds of compile time
        n = hi - lo
        for start in range(n // 2 - 1, -1, -1):
            _sift_down(indices, data, lo, start, n)
        for last in range(n - 1, 0, -1):
            _swap(indices, data, lo, lo + last)
            _sift_down(indices, data, lo, 0, last)


@jit
def _swap(indices, data, i, j):
    indices[i], indices[j] = indices[j], indices[i]
    data[i], data[j] = data[j], data[i]


@jit
def _sift_down(indices, data, lo, root, n):
    """Restore the max-heap property of indices[lo:lo+n] below `root` (heap-relative)."""
    while True:
        child = 2 * root + 1
        if child >= n:
            return
        if child + 1 < n and indices[lo + child + 1] > indices[lo + child]:
            child += 1
        if indices[lo + root] >= indices[lo + child]:
            return
        _swap(indices, data, lo + root, lo + child)
        root = child


@jit
def _sort_unique_labels(labels, lo, hi):
    """Sort labels[lo:hi] in place and drop repeats; returns the new end."""
    for i in range(lo + 1, hi):
        k = labels[i]
        j = i - 1
        while j >= lo and labels[j] > k:
            labels[j + 1] = labels[j]
            j -= 1
        labels[j + 1] = k
    if hi - lo <= 1:
        return hi
    w = lo + 1
    for i in range(lo + 1, hi):
        if labels[i] != labels[w - 1]:
            labels[w] = labels[i]
            w += 1
    return w


@jit
def _fail(err, code, line, value, pos):
    err[0] = code
    err[1] = line
    err[2] = value
    err[3] = pos


@jit
def parse_body(buf, pos, end, first_line, n_rows, n_features, n_labels,
               f_indptr, f_indices, f_data, l_indptr, l_indices, err):
    """Parse n_rows point lines of buf[pos:end] into the given arrays.

    `end` excludes trailing line breaks, so a blank last line is not taken for a point; after
    n_rows points only whitespace may follow. Returns (rows parsed, feature nnz, label nnz,
    repeated label ids dropped); err[:4] = (code, line, id, byte offset) on failure.
    """
    fk = 0
    lk = 0
    n_dup_labels = 0
    line = first_line
    f_indptr[0] = 0
    l_indptr[0] = 0
    for row in range(n_rows):
        if pos >= end:
            _fail(err, E_TOO_FEW_ROWS, line, row, pos)
            return row, fk, lk, n_dup_labels
        line_start = pos
        f_lo = fk
        l_lo = lk
        label_field_open = False  # the previous label token ended with ',' ("3, 7" style)
        while pos < end and buf[pos] != NL:
            if _is_space(buf[pos]):
                pos += 1
                continue
            tok = pos
            # Fast path for a well-formed "f:v" in range: one pass over its bytes. Anything
            # else (labels, errors) falls through to the general path below, which re-reads
            # the token and classifies it.
            fid = 0
            while pos < end and _is_digit(buf[pos]):
                if fid < _INT_CAP:
                    fid = fid * 10 + (buf[pos] - ZERO)
                pos += 1
            if pos > tok and pos < end and buf[pos] == COLON and fid < n_features:
                val, status, stop = _parse_number(buf, pos + 1, end)
                if status == 0 and (stop == end or buf[stop] == NL or _is_space(buf[stop])):
                    f_indices[fk] = fid
                    f_data[fk] = val
                    fk += 1
                    pos = stop
                    label_field_open = False
                    continue
            pos = tok
            colon = -1
            while pos < end and buf[pos] != NL and not _is_space(buf[pos]):
                if buf[pos] == COLON and colon < 0:
                    colon = pos
                pos += 1
            tok_end = pos
            if colon < 0:
                # A label list: only the first token of a line (a line without labels starts
                # with a space), or the continuation of a list whose token ended with ','.
                if tok != line_start and not label_field_open:
                    _fail(err, E_MALFORMED_FEATURE, line, 0, tok)
                    return row, fk, lk, n_dup_labels
                a = tok
                label_field_open = False
                while a < tok_end:
                    b = a
                    while b < tok_end and buf[b] != COMMA:
                        b += 1
                    if buf[a] == MINUS and _parse_uint(buf, a + 1, b) >= 0:
                        _fail(err, E_NEGATIVE_LABEL, line, -_parse_uint(buf, a + 1, b), tok)
                        return row, fk, lk, n_dup_labels
                    v = _parse_uint(buf, a, b)
                    if v < 0:
                        _fail(err, E_MALFORMED_LABEL, line, 0, tok)
                        return row, fk, lk, n_dup_labels
                    if v >= n_labels:
                        _fail(err, E_LABEL_RANGE, line, v, tok)
                        return row, fk, lk, n_dup_labels
                    l_indices[lk] = v
                    lk += 1
                    if b == tok_end - 1:  # token ends with ',': the list goes on
                        label_field_open = True
                    a = b + 1
                continue
            label_field_open = False
            # a feature "f:v"
            if buf[tok] == MINUS and _parse_uint(buf, tok + 1, colon) >= 0:
                _fail(err, E_NEGATIVE_FEATURE, line, -_parse_uint(buf, tok + 1, colon), tok)
                return row, fk, lk, n_dup_labels
            fid = _parse_uint(buf, tok, colon)
            if fid < 0:
                _fail(err, E_MALFORMED_FEATURE, line, 0, tok)
                return row, fk, lk, n_dup_labels
            if fid >= n_features:
                _fail(err, E_FEATURE_RANGE, line, fid, tok)
                return row, fk, lk, n_dup_labels
            val, status = _parse_float(buf, colon + 1, tok_end)
            if status == 1:
                _fail(err, E_MALFORMED_FEATURE, line, fid, tok)
                return row, fk, lk, n_dup_labels
            if status == 2:
                _fail(err, E_NONFINITE, line, fid, tok)
                return row, fk, lk, n_dup_labels
            f_indices[fk] = fid
            f_data[fk] = val
            fk += 1
        _sort_row(f_indices, f_data, f_lo, fk)
        for i in range(f_lo + 1, fk):
            if f_indices[i] == f_indices[i - 1]:
                _fail(err, E_DUPLICATE_FEATURE, line, f_indices[i], line_start)
                return row, fk, lk, n_dup_labels
        new_lk = _sort_unique_labels(l_indices, l_lo, lk)
        n_dup_labels += lk - new_lk
        lk = new_lk
        f_indptr[row + 1] = fk
        l_indptr[row + 1] = lk
        if pos < end:  # step over the '\n'
            pos += 1
        line += 1
    # Only blank lines may follow the declared points.
    while pos < end:
        c = buf[pos]
        if c == NL:
            line += 1
        elif not _is_space(c):
            _fail(err, E_TOO_MANY_ROWS, line, n_rows, pos)
            return n_rows, fk, lk, n_dup_labels
        pos += 1
    return n_rows, fk, lk, n_dup_labels
