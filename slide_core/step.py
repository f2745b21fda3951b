"""The batch step: per-layer phase kernels, each written once and compiled twice.

A batch runs as a short sequence of kernels (network.py orders them), each a loop over
chunks of the batch (`prange`, one chunk per thread) and, inside a chunk, over its samples:
    hash      keys of each sample's input to a sparse layer           (LSH layers only)
    select    the active set from the tables / a control strategy      (sparse layers only)
    forward   hidden layers: active neurons' ReLU activations
    output    output layer: logits over the active set, softmax, loss, gradient
              (p - y/|y|) / batch, backward into its weights and into the hidden delta
    backward  hidden layers, last to first
    adam      after the batch, on the rows the batch touched (lazy) or on every row (dense)
Every phase keeps the batch's rows in preallocated workspaces (network.Workspace), so no
kernel allocates in its prange body.

Each kernel is compiled twice (`slide_core.twin`): serial (n_chunks = 1, bit-reproducible for a seed)
and parallel (HOGWILD: samples of a batch on all threads; the only races are the
`gW[...] +=` / `gb[...] +=` gradient writes and the row stamps, which all write the same
value). Statistics go to per-chunk rows of `stats`.

Kernels take NamedTuples of arrays, so a signature says what a kernel reads: the layer's
parameters (layer.LayerParams), its input (LayerInput: sample s's input is entries
start[s] .. start[s] + cnt[s] of the flat arrays ids/vals, ids ignored when dense: then entry
k is coordinate k; the first layer's input is the CSR batch itself, a hidden layer's the
previous layer's padded (B, cap) buffers), its active sets (ActiveSets), the batch's labels
(Labels) and the batch's results (BatchResult). Each kernel binds the fields it reads to
locals, one assignment each, before its prange loop: unpacking a NamedTuple or reading its
fields inside the loop mis-compiled in the parallel variant (docs/pitfalls.md, Numba).
fastmath (jit_fast policy): only dot products / sums are reassociated; nothing here relies
on inf/NaN (softmax subtracts the max of finite logits).
"""
from __future__ import annotations

import types
from typing import NamedTuple

import numpy as np
from numba import prange

from slide_core._numba import jit_fast
from slide_core.adam import (
    adam_parallel, adam_serial, group_rows_parallel, group_rows_serial, grouped_parallel, grouped_serial,
)
from slide_core.hashing import hash_dense_into, hash_sparse_into
from slide_core.rng import stream_seed
from slide_core.tail import UNIFORM, pad_by_law
from slide_core.sampling import (
    ORACLE, STAMP_STRIDE, THRESHOLD, TOPK, VANILLA,
    count_select, force_labels, oracle_select, pad_random, rerank_select, score_all, union_select,
)
from slide_core.twin import twin

class LayerInput(NamedTuple):
    start: np.ndarray  # int64 (B,): sample s's first entry
    cnt: np.ndarray  # int64 (B,): its number of entries
    ids: np.ndarray  # int32 (flat): input coordinates (unused when dense)
    vals: np.ndarray  # float32 (flat): input values
    dense: bool  # entry k of a sample is coordinate k


class ActiveSets(NamedTuple):
    """A layer's active neurons for the batch's rows: ids[s, :cnt[s]] and their values."""
    ids: np.ndarray  # int32 (B, cap) (unused when dense)
    cnt: np.ndarray  # int64 (B,)
    vals: np.ndarray  # float32 (B, cap): activations (hidden) / logits -> gradient (output)
    n_forced: np.ndarray  # int64 (B,): the first n_forced[s] are the true labels (output layer)
    n_exact: np.ndarray  # int64 (B,): those before n_exact[s] were chosen, the rest sampled
    shift: np.ndarray  # float32 (B, cap): the sampled-softmax correction -log(pi) of each sampled slot
    dense: bool  # every neuron active: position i is neuron i


class Labels(NamedTuple):
    ptr: np.ndarray  # int64 (B + 1,): sample s's labels are ids[ptr[s]:ptr[s + 1]]
    ids: np.ndarray  # int32


class BatchResult(NamedTuple):
    losses: np.ndarray  # float32 (B,)
    has_grad: np.ndarray  # uint8 (B,): 0 for a sample without labels (no gradient, no row touched)


class SharedTail(NamedTuple):
    """The batch's shared tail (tail.py) as the output kernel takes it: m neurons whose logits
    for every sample were computed as one product before the kernel. m = 0: no shared tail."""
    z: np.ndarray  # float32 (B, m): h_s . w_j in, the gradient dL/dz_sj out (0 for a masked hit)
    shift: np.ndarray  # float32 (m,): b_j - log(pi_j), added to every sample's z[s, j]
    pos: np.ndarray  # int32 (width,): neuron -> its column in z, -1 if not in the shared tail


class OutputSpec(NamedTuple):
    """Scalars of one output-layer call."""
    log_q: bool  # correct sampled slots by their shift (the sampled-softmax correction)
    defer: bool  # leave the weight gradient to the grouped Adam (dz stays in act.vals)
    inv_batch: float  # 1 / batch rows: the loss is a batch mean
    batch_id: int  # stamps of the touched rows


class SelectScratch(NamedTuple):
    """Per-chunk (first axis) working memory of the selection kernels (workspace.LayerWork)."""
    stamp: np.ndarray
    stamp_next: np.ndarray
    counts: np.ndarray
    touched: np.ndarray
    hist: np.ndarray
    scores: np.ndarray
    work: np.ndarray


class SelectSpec(NamedTuple):
    """What one selection call chooses (network._select fills it from the LayerConfig)."""
    strategy: int  # sampling.STRATEGY_CODES
    cap: int  # room per sample in ActiveSets
    chosen_limit: int  # most neurons the strategy chooses besides labels
    pool_limit: int  # topk with a re-rank: neurons taken by hit count, chosen_limit kept by exact logit
    sampled_target: int  # fill up to this many besides labels with uniform samples (0: none)
    threshold: int
    force: bool  # the labels go in first (training)
    seed: int  # RNG stream of the padding: (seed, stream, sample, layer)
    stream: int
    layer: int


# columns of the per-chunk statistics rows (ST_SHARED: shared-tail neurons a sample kept, hits removed)
ST_SAMPLES, ST_ACTIVE, ST_LABELS, ST_RETRIEVED, ST_CANDIDATES, ST_MULTS, ST_SHARED = 0, 1, 2, 3, 4, 5, 6
N_STATS = 8
NEG_LOGIT = np.float32(-3.0e38)  # a masked shared-tail logit: exp(NEG_LOGIT - zmax) == 0


@jit_fast
def _dot(W, a, input_major, xi, xv, i_dense):
    """Pre-activation of neuron a without bias: sum_k W[a, j_k] x_k (layout-aware).

    xi/xv are the sample's input ids/values already sliced, so every index below is a
    range variable (provably >= 0: no negative-index wraparound test, loops vectorise)."""
    acc = np.float32(0.0)
    cnt = xv.shape[0]
    if input_major:
        if i_dense:
            for k in range(cnt):
                acc += xv[k] * W[k, a]
        else:
            for k in range(cnt):
                acc += xv[k] * W[xi[k], a]
    elif i_dense:
        w = W[a]
        for k in range(cnt):
            acc += w[k] * xv[k]
    else:
        w = W[a]
        for k in range(cnt):
            acc += w[xi[k]] * xv[k]
    return acc


@jit_fast
def _layer_forward_row(W, b, input_major, xi, xv, i_dense, ids, n, o_dense, out):
    """out[:n] = pre-activations of the n active neurons (all of them if o_dense)."""
    if o_dense and input_major:
        # first layer, dense output: add whole contiguous input rows W[j] (the fast path)
        for a in range(n):
            out[a] = b[a]
        for k in range(xv.shape[0]):
            w = W[k] if i_dense else W[xi[k]]
            x = xv[k]
            for a in range(n):
                out[a] += x * w[a]
    else:
        for i in range(n):
            a = i if o_dense else ids[i]
            out[i] = b[a] + _dot(W, a, input_major, xi, xv, i_dense)


@jit_fast
def _backprop_neuron_rows(W, gW, gb, row_stamp, bias_stamp, batch_id, ids, n, o_dense, d,
                          xi, xv, i_dense, xd, need_delta):
    """Neuron-major layer: gW[a] += d_a x, gb[a] += d_a, xd += d_a W[a] (fused pass)."""
    cnt = xv.shape[0]
    for i in range(n):
        g = d[i]
        if g == 0.0:
            continue
        a = i if o_dense else ids[i]
        gb[a] += g
        bias_stamp[a] = batch_id
        row_stamp[a] = batch_id
        w = W[a]
        gw = gW[a]
        if i_dense:
            if need_delta:
                for k in range(cnt):
                    gw[k] += g * xv[k]
                    xd[k] += g * w[k]
            else:
                for k in range(cnt):
                    gw[k] += g * xv[k]
        else:
            for k in range(cnt):
                j = xi[k]
                gw[j] += g * xv[k]
                if need_delta:
                    xd[k] += g * w[j]


@jit_fast
def _backprop_input_rows(W, gW, gb, row_stamp, bias_stamp, batch_id, ids, n, o_dense, d,
                         xi, xv, i_dense, xd, need_delta):
    """Input-major layer: gW[j] += x_j d (rows of the input features), gb += d."""
    for i in range(n):
        g = d[i]
        if g != 0.0:
            a = i if o_dense else ids[i]
            gb[a] += g
            bias_stamp[a] = batch_id
    for k in range(xv.shape[0]):
        x = xv[k]
        j = k if i_dense else xi[k]
        w = W[j]
        if need_delta:
            acc = np.float32(0.0)
            for i in range(n):
                a = i if o_dense else ids[i]
                acc += w[a] * d[i]
            xd[k] += acc
        if x == 0.0:
            continue
        row_stamp[j] = batch_id
        gw = gW[j]
        if o_dense:
            for a in range(n):
                gw[a] += x * d[a]
        else:
            for i in range(n):
                gw[ids[i]] += x * d[i]


def _forward_impl(p, input_major, relu, inp, act, n_chunks, stats):
    """Hidden layer forward (or output logits at inference): act.vals[s, :act.cnt[s]] from
    LayerParams p and LayerInput inp into ActiveSets act."""
    W = p.W
    b = p.b
    i_start = inp.start
    i_cnt = inp.cnt
    i_ids = inp.ids
    i_vals = inp.vals
    i_dense = inp.dense
    o_ids = act.ids
    o_cnt = act.cnt
    o_vals = act.vals
    o_dense = act.dense
    B = i_start.shape[0]
    width = b.shape[0]
    for c in prange(n_chunks):
        mults = 0.0
        for s in range(c * B // n_chunks, (c + 1) * B // n_chunks):
            lo = i_start[s]
            cnt = i_cnt[s]
            if o_dense:
                o_cnt[s] = width
            n = o_cnt[s]
            out = o_vals[s]
            xi = i_ids[lo:lo + cnt]  # sliced once: see _dot
            xv = i_vals[lo:lo + cnt]
            _layer_forward_row(W, b, input_major, xi, xv, i_dense, o_ids[s], n, o_dense, out)
            if relu:
                for i in range(n):
                    if out[i] < 0.0:
                        out[i] = 0.0
            mults += n * cnt
        stats[c, ST_MULTS] += mults


def _output_impl(p, inp, i_delta, act, labels, spec, tail, result, n_chunks, stats):
    """Output layer (neuron-major): logits, softmax over the active set (and the shared tail),
    loss, gradient (p - y/|y|) * spec.inv_batch, backward into p.gW/p.gb and the input's delta
    i_delta (when it is not empty).

    spec.defer: leave the weight gradient as act.vals (dz per active neuron) for
    adam.grouped_adam to assemble row by row (dense hidden input, sparse output only): no gW
    traffic, no race. Sparse output: the labels are the first act.n_forced[s] active neurons
    (sampling.py); slots from act.n_exact[s] on were sampled and, with spec.log_q, get their
    correction act.shift[s, i]. SharedTail tail (m > 0): the shared neurons' products
    tail.z[s] join every sample's softmax, shifted by tail.shift, except those the sample
    holds already (masked: no logit, no gradient); tail.z[s] returns dL/dz of each.
    Dense output: every neuron active, the labels are looked up directly (deduplicated).
    A sample without labels has loss 0, no gradient, and touches no row.
    """
    W = p.W
    b = p.b
    gW = p.gW
    gb = p.gb
    row_stamp = p.row_stamp
    bias_stamp = p.bias_stamp
    i_start = inp.start
    i_cnt = inp.cnt
    i_ids = inp.ids
    i_vals = inp.vals
    i_dense = inp.dense
    o_ids = act.ids
    o_cnt = act.cnt
    o_vals = act.vals
    n_forced = act.n_forced
    n_exact = act.n_exact
    o_shift = act.shift
    o_dense = act.dense
    y_ptr = labels.ptr
    y_ids = labels.ids
    log_q = spec.log_q
    defer = spec.defer
    inv_batch = spec.inv_batch
    batch_id = spec.batch_id
    t_z = tail.z
    t_shift = tail.shift
    t_pos = tail.pos
    losses = result.losses
    has_grad = result.has_grad
    need_delta = i_delta.shape[0] > 0
    B = i_start.shape[0]
    width = b.shape[0]
    m = t_z.shape[1]
    for c in prange(n_chunks):
        mults = 0.0
        kept = 0.0
        for s in range(c * B // n_chunks, (c + 1) * B // n_chunks):
            lo = i_start[s]
            cnt = i_cnt[s]
            if o_dense:
                o_cnt[s] = width
            n = o_cnt[s]
            ids = o_ids[s]
            out = o_vals[s]
            zt = t_z[s]
            xi = i_ids[lo:lo + cnt]  # sliced once: see _dot
            xv = i_vals[lo:lo + cnt]
            xd = i_delta[lo:lo + cnt]
            if need_delta:
                for k in range(cnt):
                    xd[k] = 0.0
            y_lo = y_ptr[s]
            y_hi = y_ptr[s + 1]
            n_lab = 0
            if o_dense:
                for e in range(y_lo, y_hi):
                    dup = False
                    for e2 in range(y_lo, e):
                        if y_ids[e2] == y_ids[e]:
                            dup = True
                    if not dup:
                        n_lab += 1
            else:
                n_lab = n_forced[s]
            if n_lab == 0 or n == 0:
                losses[s] = 0.0
                has_grad[s] = 0
                for j in range(m):
                    zt[j] = 0.0
                continue
            has_grad[s] = 1
            if i_dense and not o_dense:
                # the hot path (dense hidden -> sparse output), written inline: through the
                # generic helper it measured much slower
                for i in range(n):
                    a = ids[i]
                    w = W[a]
                    acc = np.float32(0.0)
                    for k in range(cnt):
                        acc += w[k] * xv[k]
                    out[i] = acc + b[a]
            else:
                _layer_forward_row(W, b, False, xi, xv, i_dense, ids, n, o_dense, out)
            mults += n * cnt
            if log_q and not o_dense:
                # sampled-softmax correction: the neurons from n_exact on were sampled (not
                # chosen), each with its own inclusion probability pi; adding -log(pi) to its
                # logit makes the softmax's normaliser an unbiased estimate of the full one's
                shift = o_shift[s]
                for i in range(n_exact[s], n):
                    out[i] += shift[i]
            zmax = out[0]
            for i in range(1, n):
                if out[i] > zmax:
                    zmax = out[i]
            if m > 0:
                # the shared tail: the sample's own neurons (labels, retrieved, padding) are
                # taken out of it (accidental hits), the rest shifted by bias - log(pi)
                for j in range(m):
                    zt[j] += t_shift[j]
                for i in range(n):
                    q = t_pos[ids[i]]
                    if q >= 0:
                        zt[q] = NEG_LOGIT
                for j in range(m):
                    if zt[j] > zmax:
                        zmax = zt[j]
            # sum of the label logits before they are overwritten by probabilities
            zlab = 0.0
            if o_dense:
                for e in range(y_lo, y_hi):
                    dup = False
                    for e2 in range(y_lo, e):
                        if y_ids[e2] == y_ids[e]:
                            dup = True
                    if not dup:
                        zlab += out[y_ids[e]] - zmax
            else:
                for i in range(n_lab):
                    zlab += out[i] - zmax
            total = 0.0
            for i in range(n):
                e_i = np.exp(out[i] - zmax)
                out[i] = e_i
                total += e_i
            if m > 0:
                n_kept = 0
                for j in range(m):
                    if zt[j] == NEG_LOGIT:
                        zt[j] = 0.0
                    else:
                        e_j = np.exp(zt[j] - zmax)
                        zt[j] = e_j
                        total += e_j
                        n_kept += 1
                kept += n_kept
                mults += n_kept * cnt
            losses[s] = np.log(total) - zlab / n_lab
            scale = np.float32(inv_batch / total)
            for i in range(n):
                out[i] *= scale
            for j in range(m):
                zt[j] *= scale
            t = np.float32(inv_batch / n_lab)
            if o_dense:
                for e in range(y_lo, y_hi):
                    dup = False
                    for e2 in range(y_lo, e):
                        if y_ids[e2] == y_ids[e]:
                            dup = True
                    if not dup:
                        out[y_ids[e]] -= t
            else:
                for i in range(n_lab):
                    out[i] -= t
            if defer:
                if need_delta:
                    for i in range(n):
                        g = out[i]
                        w = W[ids[i]]
                        for k in range(cnt):
                            xd[k] += g * w[k]
            elif i_dense and not o_dense and need_delta:
                for i in range(n):  # the hot path, inline (see above)
                    g = out[i]
                    a = ids[i]
                    gb[a] += g
                    bias_stamp[a] = batch_id
                    row_stamp[a] = batch_id
                    w = W[a]
                    gw = gW[a]
                    for k in range(cnt):
                        gw[k] += g * xv[k]
                        xd[k] += g * w[k]
            else:
                _backprop_neuron_rows(W, gW, gb, row_stamp, bias_stamp, batch_id, ids, n, o_dense, out,
                                      xi, xv, i_dense, xd, need_delta)
        stats[c, ST_MULTS] += mults
        stats[c, ST_SHARED] += kept


def _backward_impl(p, input_major, inp, i_delta, act, o_delta, has_grad, batch_id, n_chunks):
    """Hidden layer backward: o_delta (dL/d activation, written by the layer above) times
    the ReLU mask, into p.gW/p.gb and the input's delta i_delta (when it is not empty)."""
    W = p.W
    gW = p.gW
    gb = p.gb
    row_stamp = p.row_stamp
    bias_stamp = p.bias_stamp
    i_start = inp.start
    i_cnt = inp.cnt
    i_ids = inp.ids
    i_vals = inp.vals
    i_dense = inp.dense
    o_ids = act.ids
    o_cnt = act.cnt
    o_vals = act.vals
    o_dense = act.dense
    need_delta = i_delta.shape[0] > 0
    B = i_start.shape[0]
    for c in prange(n_chunks):
        for s in range(c * B // n_chunks, (c + 1) * B // n_chunks):
            if has_grad[s] == 0:
                continue
            lo = i_start[s]
            cnt = i_cnt[s]
            n = o_cnt[s]
            d = o_delta[s]
            h = o_vals[s]
            for i in range(n):
                if h[i] <= 0.0:
                    d[i] = 0.0
            xi = i_ids[lo:lo + cnt]  # sliced once: see _dot
            xv = i_vals[lo:lo + cnt]
            xd = i_delta[lo:lo + cnt]
            if need_delta:
                for k in range(cnt):
                    xd[k] = 0.0
            if input_major:
                _backprop_input_rows(W, gW, gb, row_stamp, bias_stamp, batch_id, o_ids[s], n, o_dense, d,
                                     xi, xv, i_dense, xd, need_delta)
            else:
                _backprop_neuron_rows(W, gW, gb, row_stamp, bias_stamp, batch_id, o_ids[s], n, o_dense, d,
                                      xi, xv, i_dense, xd, need_delta)


def _hash_impl(hf, inp, keys, scratch_f, scratch_i, n_chunks):
    """keys[s] = the L bucket keys of sample s's input (LayerInput inp)."""
    i_start = inp.start
    i_cnt = inp.cnt
    i_ids = inp.ids
    i_vals = inp.vals
    i_dense = inp.dense
    B = i_start.shape[0]
    for c in prange(n_chunks):
        for s in range(c * B // n_chunks, (c + 1) * B // n_chunks):
            lo = i_start[s]
            hi = lo + i_cnt[s]
            if i_dense:
                hash_dense_into(hf, i_vals[lo:hi], keys[s], scratch_f[c], scratch_i[c])
            else:
                hash_sparse_into(hf, i_ids[lo:hi], i_vals[lo:hi], keys[s], scratch_f[c], scratch_i[c])


def _select_impl(tables, keys, spec, labels, p, input_major, inp, scratch, law, act, n_chunks, stats):
    """Active set of every sample (ActiveSets act) as SelectSpec spec says: forced labels
    first (training, output layer), then the strategy's neurons (at most spec.chosen_limit),
    then the per-sample tail: uniformly random neurons until spec.sampled_target besides the
    labels (sampling.pad_random), or law.pad_draws draws from a frequency TailLaw `law`
    (tail.py). See sampling.py.
    act.n_exact[s]: the active neurons before position n_exact[s] were chosen deterministically
    (labels, table retrieval, oracle); those from it on are a sample of the rest (random
    strategy, padding), and act.shift[s, i] is each one's log-Q correction -log(pi), which the
    output layer may add to its logit. p (W, b) and inp are read by the oracle control only."""
    strategy = spec.strategy
    cap = spec.cap
    chosen_limit = spec.chosen_limit
    pool_limit = spec.pool_limit
    sampled_target = spec.sampled_target
    threshold = spec.threshold
    force = spec.force
    seed = spec.seed
    stream = spec.stream
    layer_idx = spec.layer
    y_ptr = labels.ptr
    y_ids = labels.ids
    W = p.W
    b = p.b
    i_start = inp.start
    i_cnt = inp.cnt
    i_ids = inp.ids
    i_vals = inp.vals
    i_dense = inp.dense
    stamp = scratch.stamp
    stamp_next = scratch.stamp_next
    counts = scratch.counts
    touched = scratch.touched
    hist = scratch.hist
    scores = scratch.scores
    work = scratch.work
    o_ids = act.ids
    o_cnt = act.cnt
    n_forced = act.n_forced
    n_exact = act.n_exact
    o_shift = act.shift
    by_law = law.law != UNIFORM
    pad_draws = law.pad_draws
    B = i_start.shape[0]
    width = b.shape[0]
    for c in prange(n_chunks):
        st = stamp[c]
        n_act = 0.0
        n_lab_tot = 0.0
        n_ret = 0.0
        n_cand = 0.0
        for s in range(c * B // n_chunks, (c + 1) * B // n_chunks):
            base = stamp_next[c]
            stamp_next[c] = base + STAMP_STRIDE
            out = o_ids[s]
            n = 0
            if force:
                n = force_labels(y_ids, y_ptr[s], y_ptr[s + 1], st, base, out)
            nf = n
            retrieved = 0
            state = stream_seed(seed, stream, s, layer_idx)
            limit = min(cap, nf + chosen_limit)
            if strategy == VANILLA:
                n, retrieved = union_select(tables, keys[s], st, base, out, n, limit)
            elif strategy == THRESHOLD:
                n, retrieved = count_select(tables, keys[s], st, base, counts[c], touched[c], hist[c],
                                            out, n, limit, threshold, False)
            elif strategy == TOPK:
                n, retrieved = count_select(tables, keys[s], st, base, counts[c], touched[c], hist[c],
                                            out, n, min(cap, nf + pool_limit), threshold, True)
                if n > limit:  # a pool larger than the limit: keep the best by exact logit
                    lo = i_start[s]
                    n = rerank_select(W, b, i_ids, i_vals, lo, i_cnt[s], i_dense, scores[c], work[c], touched[c],
                                      st, base, out, nf, n, limit)
            elif strategy == ORACLE and chosen_limit > 0:
                lo = i_start[s]
                score_all(W, b, input_major, i_ids, i_vals, lo, i_cnt[s], i_dense, scores[c])
                n = oracle_select(scores[c], work[c], st, base, out, n, limit)
            n_exact[s] = n
            n_cand += n
            if by_law and sampled_target > 0:
                # pad_draws draws from the law (the workspace has room for all of them)
                state, n = pad_by_law(state, law, st, base, out, o_shift[s], n, pad_draws)
            elif n < nf + sampled_target:
                # a uniform sample of the width - ne neurons not chosen: pi = sampled / pool
                ne = n
                state, n = pad_random(state, width, st, base, out, n, min(cap, nf + sampled_target))
                if n > ne:
                    shift = np.float32(np.log((width - ne) / (n - ne)))
                    for i in range(ne, n):
                        o_shift[s, i] = shift
            o_cnt[s] = n
            n_forced[s] = nf
            n_act += n
            n_lab_tot += nf
            n_ret += retrieved
        stats[c, ST_SAMPLES] += (c + 1) * B // n_chunks - c * B // n_chunks
        stats[c, ST_ACTIVE] += n_act
        stats[c, ST_LABELS] += n_lab_tot
        stats[c, ST_RETRIEVED] += n_ret
        stats[c, ST_CANDIDATES] += n_cand


forward_serial, forward_parallel = twin(_forward_impl)
output_serial, output_parallel = twin(_output_impl)
backward_serial, backward_parallel = twin(_backward_impl)
hash_serial, hash_parallel = twin(_hash_impl)
select_serial, select_parallel = twin(_select_impl)


class Kernels(types.SimpleNamespace):
    """One compiled variant (serial or parallel) of every phase kernel."""


SERIAL = Kernels(forward=forward_serial, output=output_serial, backward=backward_serial,
                 adam=adam_serial, hash=hash_serial, select=select_serial,
                 grouped=grouped_serial, group_rows=group_rows_serial)
PARALLEL = Kernels(forward=forward_parallel, output=output_parallel, backward=backward_parallel,
                   adam=adam_parallel, hash=hash_parallel, select=select_parallel,
                   grouped=grouped_parallel, group_rows=group_rows_parallel)
