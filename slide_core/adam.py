"""Adam after each batch, in two named modes (docs/design.md, "The optimiser"):

- "lazy": only the W rows / biases the batch touched (row_stamp == batch id) are updated;
  untouched rows keep their weights AND their moments (TF LazyAdam semantics). This is the
  sub-linear mode: the work is proportional to the active rows, not to the layer.
- "dense": every row every batch (the reference C++ does this); rows the batch did not touch
  get g = 0, so their moments decay and their weights keep moving.

Both use the global step t for bias correction, in the Keras form
lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t),  W -= lr_t * m / (sqrt(v) + eps),
which is also the reference code's update. The gradient rows read are zeroed (consumed).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import prange

from slide_core._numba import jit
from slide_core.twin import twin


def adam_lr(lr: float, beta1: float, beta2: float, t: int) -> float:
    """Bias-corrected step size for step t >= 1."""
    return lr * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)


LAZY, DENSE, UNTOUCHED = 0, 1, 2


@jit
def _float32_scalars(lr_t, b1, b2, eps):
    """The update's scalars as float32, so that the row loops run in float32: beta1, beta2,
    1 - beta1 and 1 - beta2 (each difference taken in float64, then rounded), lr_t, eps.
    Called once per kernel call, outside the loops; no fastmath (conversions only)."""
    return (np.float32(b1), np.float32(b2), np.float32(1.0 - b1), np.float32(1.0 - b2),
            np.float32(lr_t), np.float32(eps))


def _adam_impl(W, m, v, g, stamp, batch_id, mode, lr_t, b1, b2, eps, n_chunks):
    """Adam (Keras form) on rows of W. mode LAZY: only rows with stamp == batch_id; DENSE:
    every row; UNTOUCHED: only rows with stamp != batch_id (the dense mode's g = 0 rows after
    grouped_adam did the touched ones). Consumes the gradient (zeroes the rows it read);
    untouched rows never read g (it is zero there), so g may be a dummy in UNTOUCHED mode."""
    n_rows = W.shape[0]
    n_cols = W.shape[1]
    b1f, b2f, one_b1, one_b2, lr_f, eps_f = _float32_scalars(lr_t, b1, b2, eps)
    for c in prange(n_chunks):
        for r in range(c * n_rows // n_chunks, (c + 1) * n_rows // n_chunks):
            touched = stamp[r] == batch_id
            if (mode == LAZY and not touched) or (mode == UNTOUCHED and touched):
                continue
            # row views: indices below are range variables, so the loop vectorises
            w = W[r]
            mr = m[r]
            vr = v[r]
            gr = g[r] if touched else g[0]
            for k in range(n_cols):
                gk = gr[k] if touched else np.float32(0.0)
                mk = b1f * mr[k] + one_b1 * gk
                vk = b2f * vr[k] + one_b2 * gk * gk
                mr[k] = mk
                vr[k] = vk
                w[k] -= lr_f * mk / (np.sqrt(vk) + eps_f)
            if touched:
                for k in range(n_cols):
                    gr[k] = 0.0


adam_serial, adam_parallel = twin(_adam_impl)


def adam_update(kernel, p, batch_id: int, mode: int, lr: float, beta1: float, beta2: float,
                eps: float, n_chunks: int) -> None:
    """Adam on one LayerParams (W rows and biases) with the compiled `kernel` variant."""
    lr_t = adam_lr(lr, beta1, beta2, batch_id)
    kernel(p.W, p.mW, p.vW, p.gW, p.row_stamp, batch_id, mode, lr_t, beta1, beta2, eps, n_chunks)
    kernel(p.b.reshape(-1, 1), p.mb.reshape(-1, 1), p.vb.reshape(-1, 1), p.gb.reshape(-1, 1),
           p.bias_stamp, batch_id, mode, lr_t, beta1, beta2, eps, max(1, min(n_chunks, p.b.shape[0])))


class RowGroups(NamedTuple):
    """The batch's (sample, slot) pairs grouped by output row, per chunk (first axis)."""
    rows: np.ndarray  # int32 (T, n): chunk c's touched rows rows[c, :n_rows[c]], ascending
    n_rows: np.ndarray  # int64 (T,)
    ptr: np.ndarray  # int64 (T, n + 1): row t's pairs are pairs[c, ptr[c, t]:ptr[c, t + 1]]
    pairs: np.ndarray  # int64 (T, n): flat indices s * cap + i into the active sets; -(j + 1): shared-tail row j


class SharedGrad(NamedTuple):
    """The shared tail's rows (tail.py) and their gradient, assembled by two products before
    the grouped Adam; m = 0: no shared tail."""
    ids: np.ndarray  # int32 (m,): the shared neurons
    gW: np.ndarray  # float32 (m, n_in): sum_s dz[s, j] h_s of each
    gb: np.ndarray  # float32 (m,): sum_s dz[s, j]


@jit
def _count_row(a, lo, hi, row_count, rows, n_t):
    """Count one pair of row a if the chunk [lo, hi) owns it, listing a on its first pair;
    returns the chunk's new number of listed rows."""
    if a < lo or a >= hi:
        return n_t
    if row_count[a] == 0:
        rows[n_t] = a
        n_t += 1
    row_count[a] += 1
    return n_t


def _group_rows_impl(ids, cnt, has_grad, shared, row_count, groups, p, batch_id, n_chunks):
    """Group the batch's (sample, slot) pairs by output neuron (a counting sort per chunk)
    into RowGroups `groups`, and stamp the touched rows of LayerParams p with batch_id.
    The shared tail's rows (SharedGrad `shared`, read: ids) join as one pseudo-pair each,
    -(j + 1) for shared row j, listed before the row's sample pairs.

    Chunk c owns the rows [c * n_out // n_chunks, (c + 1) * n_out // n_chunks): it scans every
    pair, keeps those of its rows, and writes only its own rows' counters and stamps and its
    own lists, so the chunks share nothing. A row's pairs are listed in sample order, so
    every row's gradient is summed in the same order whatever the chunk count: the parallel
    variant gives the serial one's result bit for bit. row_count (n_out zeros) is restored to
    zeros."""
    touched_rows = groups.rows
    n_touched = groups.n_rows
    row_ptr = groups.ptr
    pairs = groups.pairs
    row_stamp = p.row_stamp
    bias_stamp = p.bias_stamp
    shared_ids = shared.ids
    cap = ids.shape[1]
    n_out = row_count.shape[0]
    for c in prange(n_chunks):
        lo = c * n_out // n_chunks
        hi = (c + 1) * n_out // n_chunks
        rows = touched_rows[c]
        ptr = row_ptr[c]
        out = pairs[c]
        n_t = 0
        for j in range(shared_ids.shape[0]):
            n_t = _count_row(shared_ids[j], lo, hi, row_count, rows, n_t)
        for s in range(ids.shape[0]):
            if has_grad[s] == 0:
                continue
            for i in range(cnt[s]):
                n_t = _count_row(ids[s, i], lo, hi, row_count, rows, n_t)
        # rows in ascending order (a scan of the counts when dense, cheaper than a sort): the
        # Adam pass then walks W, m, v forwards, which the hardware prefetchers follow
        if n_t * 8 > hi - lo:
            n_t = 0
            for a in range(lo, hi):
                if row_count[a] > 0:
                    rows[n_t] = a
                    n_t += 1
        else:
            rows[:n_t].sort()
        pos = 0
        for t in range(n_t):
            a = rows[t]
            k = row_count[a]
            ptr[t] = pos
            row_count[a] = pos  # becomes the write cursor of row a
            pos += k
        ptr[n_t] = pos
        for j in range(shared_ids.shape[0]):
            a = shared_ids[j]
            if a < lo or a >= hi:
                continue
            out[row_count[a]] = -(j + 1)
            row_count[a] += 1
        for s in range(ids.shape[0]):
            if has_grad[s] == 0:
                continue
            for i in range(cnt[s]):
                a = ids[s, i]
                if a < lo or a >= hi:
                    continue
                out[row_count[a]] = s * cap + i
                row_count[a] += 1
        for t in range(n_t):
            a = rows[t]
            row_count[a] = 0
            row_stamp[a] = batch_id
            bias_stamp[a] = batch_id
        n_touched[c] = n_t


group_rows_serial, group_rows_parallel = twin(_group_rows_impl)


def _grouped_impl(p, groups, dz, H, shared, gbuf, lr_t, b1, b2, eps, n_chunks):
    """Lazy Adam on LayerParams p's rows the batch touched (RowGroups from _group_rows_impl
    with the same n_chunks), assembling each row's gradient sum_s dz[s, a] h_s on the fly (h_s: the
    dense hidden activations, cache-resident), so no gradient array exists for the output
    layer: per touched row only W, m, v are read and written once, and nothing races (each
    row belongs to one chunk). A shared-tail pseudo-pair -(j + 1) adds SharedGrad row j."""
    W = p.W
    m = p.mW
    v = p.vW
    b = p.b
    mb = p.mb
    vb = p.vb
    touched_rows = groups.rows
    n_touched = groups.n_rows
    row_ptr = groups.ptr
    pairs = groups.pairs
    s_gW = shared.gW
    s_gb = shared.gb
    n_cols = W.shape[1]
    cap = dz.shape[1]
    b1f, b2f, one_b1, one_b2, lr_f, eps_f = _float32_scalars(lr_t, b1, b2, eps)
    for c in prange(n_chunks):
        gr = gbuf[c]
        rows = touched_rows[c]
        ptr = row_ptr[c]
        own = pairs[c]
        for t in range(n_touched[c]):
            a = rows[t]
            for k in range(n_cols):
                gr[k] = 0.0
            gbias = np.float32(0.0)
            for e in range(ptr[t], ptr[t + 1]):
                pair = own[e]
                if pair < 0:
                    j = -pair - 1
                    gbias += s_gb[j]
                    sg = s_gW[j]
                    for k in range(n_cols):
                        gr[k] += sg[k]
                    continue
                s = pair // cap
                d = dz[s, pair - s * cap]
                gbias += d
                h = H[s]
                for k in range(n_cols):
                    gr[k] += d * h[k]
            w = W[a]
            mr = m[a]
            vr = v[a]
            for k in range(n_cols):
                gk = gr[k]
                mk = b1f * mr[k] + one_b1 * gk
                vk = b2f * vr[k] + one_b2 * gk * gk
                mr[k] = mk
                vr[k] = vk
                w[k] -= lr_f * mk / (np.sqrt(vk) + eps_f)
            mk = b1f * mb[a] + one_b1 * gbias
            vk = b2f * vb[a] + one_b2 * gbias * gbias
            mb[a] = mk
            vb[a] = vk
            b[a] -= lr_f * mk / (np.sqrt(vk) + eps_f)


grouped_serial, grouped_parallel = twin(_grouped_impl)
