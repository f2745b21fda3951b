"""Active-set strategies: which neurons of a layer one input computes (per sample, Numba).

Deduplication uses a per-thread stamp array over the layer's neurons (never cleared: each
sample takes fresh stamp values from a per-thread counter, "clear only what you set" for
free). Per sample, with base = the sample's first stamp value:
    stamp[a] <  base        unseen
    stamp[a] == base        in the active set (retrieved or padded)
    stamp[a] == base + 1    a true label, forced in, not (yet) retrieved by the tables
    stamp[a] == base + 2    a true label that the tables retrieved too
so the true labels sit first in the active list (positions [0, n_forced)) and the tables'
recall of the labels is counted without a second pass. STAMP_STRIDE values per sample.

Strategies (codes below): vanilla union of the L probed buckets, hard threshold (seen in
>= m buckets), top-k by frequency, exact top-k (oracle), each up to the layer's chosen
limit; uniform random (the sampled-softmax control) chooses nothing. Padding with
uniformly random neurons up to the budget follows every strategy (config.LayerConfig).
"""
from __future__ import annotations

import numpy as np

from slide_core._numba import jit, jit_fast
from slide_core.rng import next_below
from slide_core.tables import bucket_bounds, touch_probed

VANILLA, THRESHOLD, TOPK, RANDOM, ORACLE = 0, 1, 2, 3, 4
STRATEGY_CODES = {"vanilla": VANILLA, "threshold": THRESHOLD, "topk": TOPK, "random": RANDOM, "oracle": ORACLE}
STAMP_STRIDE = 4


@jit
def force_labels(y_ids, lo, hi, stamp, base, out):
    """Put the distinct labels y_ids[lo:hi] first in `out`; returns how many."""
    n = 0
    for e in range(lo, hi):
        a = y_ids[e]
        if stamp[a] < base:
            stamp[a] = base + 1
            out[n] = a
            n += 1
    return n


@jit
def union_select(tables, keys_row, stamp, base, out, n, cap):
    """Vanilla: append the union of the L probed buckets (in table order) until `cap`.

    Returns (n, labels retrieved). Buckets are scanned to the end even once the cap is hit,
    so the label recall is that of the tables, not of the cap.
    """
    retrieved = 0
    if n < out.shape[0]:  # a slot the first appended neuron overwrites (out[n:] is scratch anyway)
        out[n] = touch_probed(tables, keys_row, stamp)
    for t in range(keys_row.shape[0]):
        lo, hi = bucket_bounds(tables, t, keys_row[t])
        ent = tables.entries[t]
        for e in range(lo, hi):
            a = ent[e]
            st = stamp[a]
            if st < base:
                if n < cap:
                    stamp[a] = base
                    out[n] = a
                    n += 1
            elif st == base + 1:
                stamp[a] = base + 2
                retrieved += 1
    return n, retrieved


@jit
def count_select(tables, keys_row, stamp, base, counts, touched, hist, out, n, cap, threshold, by_rank):
    """Threshold (by_rank False: count >= threshold) or top-k by frequency (by_rank True:
    the cap - n most frequent; ties broken by first appearance). Returns (n, retrieved).

    counts[a] is the number of probed buckets holding neuron a; only the entries set here
    are reset before returning (touched list). hist: int64 workspace of >= L + 2 entries.
    """
    n_touched = 0
    if touched.shape[0] > 0:  # overwritten by the first neuron listed
        touched[0] = touch_probed(tables, keys_row, counts)
    for t in range(keys_row.shape[0]):
        lo, hi = bucket_bounds(tables, t, keys_row[t])
        ent = tables.entries[t]
        for e in range(lo, hi):
            a = ent[e]
            if counts[a] == 0:
                touched[n_touched] = a
                n_touched += 1
            counts[a] += 1
    L = keys_row.shape[0]
    cut = threshold
    if by_rank:
        # histogram of counts (1..L) -> smallest count c such that #(count >= c) fills the
        # remaining room, so no sort is needed
        room = cap - n
        for c in range(L + 2):
            hist[c] = 0
        for i in range(n_touched):
            a = touched[i]
            if stamp[a] < base:
                hist[counts[a]] += 1
        cut = L + 1
        acc = 0
        while cut > 1 and acc + hist[cut - 1] <= room:
            cut -= 1
            acc += hist[cut]
        # neurons at count == cut - 1 may partly fit: take them in order of appearance
        extra = room - acc
        for i in range(n_touched):
            a = touched[i]
            c = counts[a]
            if stamp[a] < base and c == cut - 1 and extra > 0 and c >= 1:
                stamp[a] = base
                out[n] = a
                n += 1
                extra -= 1
    retrieved = 0
    for i in range(n_touched):
        a = touched[i]
        c = counts[a]
        counts[a] = 0
        st = stamp[a]
        if c >= cut:
            if st < base and n < cap:
                stamp[a] = base
                out[n] = a
                n += 1
            elif st == base + 1:
                stamp[a] = base + 2
                retrieved += 1
    return n, retrieved


@jit
def pad_random(state, width, stamp, base, out, n, target):
    """Append distinct uniformly random neurons until n == target (<= width)."""
    if target > width:
        target = width
    attempts = 0
    max_attempts = 8 * (target - n) + 64
    while n < target and attempts < max_attempts:
        state, a = next_below(state, width)
        attempts += 1
        if stamp[a] < base:
            stamp[a] = base
            out[n] = a
            n += 1
    if n < target:
        # dense request (target close to width): finish with a scan from a random start
        state, start = next_below(state, width)
        for i in range(width):
            a = (start + i) % width
            if n >= target:
                break
            if stamp[a] < base:
                stamp[a] = base
                out[n] = a
                n += 1
    return state, n


@jit_fast
def score_all(W, b, input_major, i_ids, i_vals, lo, cnt, i_dense, scores):
    """Exact pre-activations of every neuron (oracle control). fastmath: dot products."""
    width = b.shape[0]
    for a in range(width):
        scores[a] = b[a]
    xi = i_ids[lo:lo + cnt]  # sliced once so indices are range variables (vectorises)
    xv = i_vals[lo:lo + cnt]
    if input_major:
        for k in range(cnt):
            w = W[k] if i_dense else W[xi[k]]
            x = xv[k]
            for a in range(width):
                scores[a] += x * w[a]
    else:
        for a in range(width):
            scores[a] += _row_dot(W[a], xi, xv, cnt, i_dense)


@jit_fast
def _row_dot(w, xi, xv, cnt, i_dense):
    """w . x for one neuron-major row w and a dense (xv) or sparse (xi, xv) input."""
    acc = np.float32(0.0)
    if i_dense:
        for k in range(cnt):
            acc += w[k] * xv[k]
    else:
        for k in range(cnt):
            acc += w[xi[k]] * xv[k]
    return acc


@jit
def _kth_largest(buf, n, k):
    """Value of the k-th largest (1-based) of buf[:n], in place (quickselect, buf reordered)."""
    lo, hi = 0, n - 1
    target = k - 1
    while lo < hi:
        pivot = buf[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:
            while buf[i] > pivot:
                i += 1
            while buf[j] < pivot:
                j -= 1
            if i <= j:
                buf[i], buf[j] = buf[j], buf[i]
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            break
    return buf[target]


@jit_fast
def _pool_logits(W, b, i_ids, i_vals, lo, cnt, i_dense, pool, m, scores):
    """scores[i] = exact logit of neuron pool[i], i < m (neuron-major W). fastmath: dot products."""
    xi = i_ids[lo:lo + cnt]
    xv = i_vals[lo:lo + cnt]
    for i in range(m):
        a = pool[i]
        scores[i] = _row_dot(W[a], xi, xv, cnt, i_dense) + b[a]


@jit
def rerank_select(W, b, i_ids, i_vals, lo, cnt, i_dense, scores, work, pool, stamp, base, out, first, n, limit):
    """Of the pool out[first:n] (chosen by hit count), keep in out[first:limit] the neurons with
    the largest exact logits (ties in pool order); the others are unstamped (stamp base - 1:
    unseen), so the tail may still draw them. scores / work / pool: scratch of >= n - first.
    Returns the new n (= limit)."""
    m = n - first
    room = limit - first
    if m <= room:
        return n
    for i in range(m):
        pool[i] = out[first + i]
    _pool_logits(W, b, i_ids, i_vals, lo, cnt, i_dense, pool, m, scores)
    for i in range(m):
        work[i] = scores[i]
    kth = _kth_largest(work, m, room)
    k = first
    for i in range(m):  # strictly greater first, then ties at the k-th value in pool order
        if scores[i] > kth:
            out[k] = pool[i]
            pool[i] = -1
            k += 1
    for i in range(m):
        if k >= limit:
            break
        if scores[i] == kth:
            out[k] = pool[i]
            pool[i] = -1
            k += 1
    for i in range(m):
        if pool[i] >= 0:
            stamp[pool[i]] = base - 1
    return k


@jit
def oracle_select(scores, work, stamp, base, out, n, cap):
    """Append the cap - n unselected neurons with the largest scores (ties by index)."""
    width = scores.shape[0]
    room = cap - n
    if room <= 0:
        return n
    m = 0
    for a in range(width):
        if stamp[a] < base:
            work[m] = scores[a]
            m += 1
    if m == 0:
        return n
    if room >= m:
        kth = -np.inf
    else:
        kth = _kth_largest(work, m, room)
    # strictly greater first, then ties in index order, so exactly `room` are taken
    for a in range(width):
        if stamp[a] < base and scores[a] > kth:
            stamp[a] = base
            out[n] = a
            n += 1
    for a in range(width):
        if n >= cap:
            break
        if stamp[a] < base and scores[a] == kth:
            stamp[a] = base
            out[n] = a
            n += 1
    if room >= m:
        for a in range(width):
            if n >= cap:
                break
            if stamp[a] < base:
                stamp[a] = base
                out[n] = a
                n += 1
    return n
