"""Prediction: exact dense output (default) or LSH-sparse, with a fast top-k.

Dense (`dense_topk`, used by SlideNetwork and by the TF/numpy baselines' evaluation, so every
model ranks labels with the same code and the same tie-breaking): the hidden layers run
through the step's forward kernel (every neuron, exact); the output layer is a blocked product
W_out[labels block] @ H[points block].T (labels x points, single-threaded BLAS) small enough to
stay in cache (2048 x 256 floats = 2 MB), and each block is merged into a running per-point
top-k by a Numba kernel (a k-sized insertion list per point: almost every score fails the
"beats the current k-th" test, so this is one compare per score; never a sort over all
labels). `threads` Python threads take label blocks from a shared counter, each with its own
BLAS call, scores buffer and top-k lists; the lists are merged at the end. Ties keep the
lower label id first (same as a stable sort of -scores).
Why not one multi-threaded BLAS call over a big block: measured here (OpenBLAS), single-threaded
sgemm on L2-sized blocks runs close to one core's peak, while 2-thread sgemm on large blocks
reached barely more than one core's rate with both cores and then left the top-k merge
serial (benchmarks/bench_inference.py, and the sgemm rate bench_slide.py prints).
LSH: the same active-set selection as training (no label forcing), logits over the active
set only, top-k among them; rows with fewer than k active neurons are padded with -1.
"""
from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import prange

from slide_core._numba import jit, jit_parallel
from slide_core.rng import PREDICT_STREAM
from slide_core.workspace import make_workspace

NEG = np.float32(-3.0e38)  # "no score yet": finite, so comparisons stay well-defined
# Block shape measured at 670K labels x 128 hidden (benchmarks/bench_inference.py): 256 x 2048
# was best or tied among 128x2048, 128x4096, 256x1024 (each W block serves 256 points; the 2 MB
# scores block stays in L2/L3 for the merge), all clearly ahead of the old 256 x 16384 with 2-thread BLAS.
BLOCK_POINTS = 256   # points per BLAS block (columns of the labels x points scores block)
BLOCK_LABELS = 2048  # labels per BLAS block
HIDDEN_ROWS = 2048   # rows whose hidden activations SlideNetwork computes at once


@jit
def _insert(vals, ids, k, v, a):
    """Insert (v, a) into the descending list vals/ids[:k] if it beats the last entry
    (an equal value does not: earlier insertions, i.e. lower label ids, stay first)."""
    if v <= vals[k - 1]:
        return
    pos = k - 1
    while pos > 0 and vals[pos - 1] < v:
        vals[pos] = vals[pos - 1]
        ids[pos] = ids[pos - 1]
        pos -= 1
    vals[pos] = v
    ids[pos] = a


@jit
def _topk_merge(scores, bias, offset, top_vals, top_ids, thr):
    """Merge scores[j, p] + bias[j] (label offset + j, point p) into each point's running
    top-k; labels must arrive in ascending order (ties keep the first). thr[p] mirrors
    top_vals[p, k-1]: each row (label) is first tested against every point's k-th score in
    one vectorised pass (an OR of exact comparisons, so no fastmath is needed), and only the
    rare rows that beat some point take the scalar insertion pass."""
    k = top_vals.shape[1]
    n_pts = scores.shape[1]
    for p in range(n_pts):
        thr[p] = top_vals[p, k - 1]
    for j in range(scores.shape[0]):
        row = scores[j]
        bj = bias[j]
        hit = False
        for p in range(n_pts):
            hit |= row[p] + bj > thr[p]
        if hit:
            for p in range(n_pts):
                v = row[p] + bj
                if v > thr[p]:
                    _insert(top_vals[p], top_ids[p], k, v, offset + j)
                    thr[p] = top_vals[p, k - 1]


@jit
def _merge_lists(all_vals, all_ids, out):
    """out[p] = the k best of the per-thread lists all_*[t, p], ordered by (value desc,
    label id asc); entries with id -1 (a thread that saw fewer than k labels) are skipped."""
    n_lists, n_pts, k = all_vals.shape
    vals = np.empty(k, dtype=np.float32)
    for p in range(n_pts):
        ids = out[p]
        n = 0
        for t in range(n_lists):
            for i in range(k):
                a = all_ids[t, p, i]
                v = all_vals[t, p, i]
                if a < 0:
                    break
                if n == k and (v < vals[k - 1] or (v == vals[k - 1] and a > ids[k - 1])):
                    break  # each list is sorted: nothing further in it can enter
                pos = n if n < k else k - 1
                while pos > 0 and (vals[pos - 1] < v or (vals[pos - 1] == v and ids[pos - 1] > a)):
                    vals[pos] = vals[pos - 1]  # pos <= k - 1: the last entry falls off when full
                    ids[pos] = ids[pos - 1]
                    pos -= 1
                vals[pos] = v
                ids[pos] = a
                if n < k:
                    n += 1


def _check_dense_args(hidden, W_out, b_out, k):
    for name, a, nd in (("hidden", hidden, 2), ("W_out", W_out, 2), ("b_out", b_out, 1)):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
        if a.dtype != np.float32:
            raise TypeError(f"{name} must be float32, got {a.dtype}")
        if a.ndim != nd:
            raise ValueError(f"{name} must be {nd}-D, got shape {a.shape}")
    if not W_out.flags.c_contiguous:
        raise ValueError("W_out must be C-contiguous (n_labels, d): each label's weights in one row")
    if hidden.shape[1] != W_out.shape[1]:
        raise ValueError(f"hidden has {hidden.shape[1]} columns but W_out rows have {W_out.shape[1]}")
    if b_out.shape[0] != W_out.shape[0]:
        raise ValueError(f"b_out has {b_out.shape[0]} entries for {W_out.shape[0]} labels")
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= W_out.shape[0]:
        raise ValueError(f"k must be an int in [1, {W_out.shape[0]}], got {k!r}")


def dense_topk(hidden: np.ndarray, W_out: np.ndarray, b_out: np.ndarray, k: int, threads: int = 1,
               block_points: int = BLOCK_POINTS, block_labels: int = BLOCK_LABELS) -> np.ndarray:
    """int32 (n, k): per row of hidden (n, d) float32, the k labels with the highest score
    hidden @ W_out.T + b_out, best first, ties by lower label id (= a stable sort of -scores).
    W_out: float32 (n_labels, d) C-contiguous (one row per label, as SlideNetwork stores it;
    a (d, n_labels) Keras kernel is passed as np.ascontiguousarray(kernel.T)); b_out (n_labels,).
    threads: worker threads, each running single-threaded BLAS on its own label blocks; the
    BLAS thread count is set to 1 for the duration of the call (threadpoolctl) and restored.
    A NaN score never enters a top-k (a row whose scores are all NaN gets -1 ids)."""
    _check_dense_args(hidden, W_out, b_out, k)
    if threads < 1 or block_points < 1 or block_labels < 1:
        raise ValueError(f"threads, block_points, block_labels must be >= 1, got {threads}, "
                         f"{block_points}, {block_labels}")
    out = np.empty((hidden.shape[0], int(k)), dtype=np.int32)
    if hidden.shape[0] == 0:
        return out
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        _dense_topk_into(np.ascontiguousarray(hidden), W_out, b_out, int(k), out, int(threads),
                         block_points, block_labels)
    return out


def _dense_topk_into(H, W, b, k, out, threads, block_points, block_labels):
    """The kernel behind dense_topk (arguments already checked, BLAS single-threaded)."""
    n, n_out = H.shape[0], W.shape[0]
    bp = min(block_points, n)
    bl = min(block_labels, n_out)
    n_blocks = -(-n_out // bl)
    T = max(1, min(threads, n_blocks))
    s_bufs = np.empty((T, bl * bp), dtype=np.float32)
    top_vals = np.empty((T, bp, k), dtype=np.float32)
    top_ids = np.empty((T, bp, k), dtype=np.int32)
    thr = np.empty((T, bp), dtype=np.float32)

    def work(t, Hb, counter):
        rows = Hb.shape[0]
        tv, ti = top_vals[t, :rows], top_ids[t, :rows]
        tv.fill(NEG)
        ti.fill(-1)
        for i in counter:  # next() on a shared itertools.count is atomic under the GIL
            l0 = i * bl
            if l0 >= n_out:
                break
            l1 = min(n_out, l0 + bl)
            S = s_bufs[t, :rows * (l1 - l0)].reshape(l1 - l0, rows)
            np.matmul(W[l0:l1], Hb.T, out=S)
            _topk_merge(S, b[l0:l1], l0, tv, ti, thr[t, :rows])

    if T == 1:
        for p0 in range(0, n, bp):
            p1 = min(n, p0 + bp)
            work(0, H[p0:p1], itertools.count())
            out[p0:p1] = top_ids[0, :p1 - p0]
        return
    with ThreadPoolExecutor(T, thread_name_prefix="dense_topk") as pool:
        for p0 in range(0, n, bp):
            p1 = min(n, p0 + bp)
            counter = itertools.count()
            for f in [pool.submit(work, t, H[p0:p1], counter) for t in range(T)]:
                f.result()
            _merge_lists(top_vals[:, :p1 - p0], top_ids[:, :p1 - p0], out[p0:p1])


@jit_parallel
def topk_rows(vals, ids, cnt, dense, out_ids, top_vals):
    """Top-k of each padded row vals[s, :cnt[s]] (neuron ids ids[s, i], or i if dense)."""
    k = out_ids.shape[1]
    for s in prange(vals.shape[0]):
        tv = top_vals[s]
        ti = out_ids[s]
        for i in range(k):
            tv[i] = NEG
            ti[i] = -1
        for i in range(cnt[s]):
            _insert(tv, ti, k, vals[s, i], i if dense else ids[s, i])


def _fill_input(ws, x_ptr, p0, p1):
    rows = p1 - p0
    np.subtract(x_ptr[p0:p1], x_ptr[0], out=ws.x_start[:rows])
    np.subtract(x_ptr[p0 + 1:p1 + 1], x_ptr[p0:p1], out=ws.x_cnt[:rows])
    return rows


def _hidden(net, ws, x_ids, x_vals, rows):
    """Run the hidden layers densely (every neuron, exact); returns the last one's vals."""
    kern = net.kernels
    inp = ws.batch_input(rows, x_ids, x_vals)
    for i in range(len(net.config.layers) - 1):
        lw = ws.layers[i]
        kern.forward(net.params[i], net.input_major(i), True, inp, lw.active(rows, True), ws.n_chunks, lw.stats)
        inp = lw.as_input(rows, True)
    return ws.layers[len(net.config.layers) - 2].vals[:rows]


def predict_dense(net, x_ptr, x_ids, x_vals, k: int, block_points: int = BLOCK_POINTS,
                  block_labels: int = BLOCK_LABELS) -> np.ndarray:
    """Exact dense top-k of a SlideNetwork: hidden layers in chunks of HIDDEN_ROWS rows (the
    step's forward kernel), then dense_topk over the output layer with net.threads workers."""
    from threadpoolctl import threadpool_limits

    n = len(x_ptr) - 1
    out = np.empty((n, k), dtype=np.int32)
    if n == 0:
        return out
    last = len(net.config.layers) - 1
    Wout, bout = net.params[last].W, net.params[last].b
    rows_max = min(HIDDEN_ROWS, n)
    key = ("dense", rows_max, net.n_chunks)
    ws = net._ws_predict.get(key)
    if ws is None:
        ws = make_workspace(net.config.layers[:-1], rows_max, 0, net.n_chunks, net.hfs[:-1], dense=True)
        net._ws_predict[key] = ws
    with threadpool_limits(1, user_api="blas"):
        for p0 in range(0, n, rows_max):
            p1 = min(n, p0 + rows_max)
            rows = _fill_input(ws, x_ptr, p0, p1)
            H = np.ascontiguousarray(_hidden(net, ws, x_ids, x_vals, rows))
            _dense_topk_into(H, Wout, bout, k, out[p0:p1], net.threads, block_points, block_labels)
    return out


def predict_lsh(net, x_ptr, x_ids, x_vals, k: int, block_points: int = BLOCK_POINTS) -> np.ndarray:
    n = len(x_ptr) - 1
    out = np.empty((n, k), dtype=np.int32)
    if n == 0:
        return out
    kern = net.kernels
    layers = net.config.layers
    last = len(layers) - 1
    bp = min(block_points, n)
    ws = net._predict_workspace(bp, dense=False)
    y_ptr = np.zeros(bp + 1, dtype=np.int64)
    y_ids = np.zeros(0, dtype=np.int32)
    top_vals = np.empty((bp, k), dtype=np.float32)
    for p0 in range(0, n, bp):
        p1 = min(n, p0 + bp)
        rows = _fill_input(ws, x_ptr, p0, p1)
        inp = ws.batch_input(rows, x_ids, x_vals)
        for i, cfg in enumerate(layers):
            lw = ws.layers[i]
            p = net.params[i]
            if not cfg.dense:
                net._select(kern, i, ws, inp, rows, False, y_ptr[:rows + 1], y_ids, PREDICT_STREAM + p0, False,
                            sample=False)
            kern.forward(p, net.input_major(i), i < last, inp, lw.active(rows, cfg.dense), ws.n_chunks, lw.stats)
            inp = lw.as_input(rows, cfg.dense)
        lw = ws.layers[last]
        topk_rows(lw.vals[:rows], lw.ids[:rows], lw.cnt[:rows], layers[last].dense, out[p0:p1], top_vals[:rows])
    return out
