"""The selection kernels training calls (slide_core.sampling), against brute force over the
tables' buckets (tests/reference_lsh.py): force_labels, union_select (vanilla),
count_select (threshold and top-k by frequency), rerank_select, oracle_select, pad_random."""
from __future__ import annotations

import numpy as np
import pytest

from slide_core.rng import stream_seed
from slide_core.sampling import (
    STAMP_STRIDE, count_select, force_labels, oracle_select, pad_random, rerank_select, union_select,
)
from slide_core.tables import build_tables, max_candidates
from tests import reference_lsh as ref

N, L, RANGE_POW, CAPACITY = 300, 6, 3, 16


@pytest.fixture(scope="module")
def tables_and_buckets():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**RANGE_POW, size=(N, L)).astype(np.int32)
    keys[rng.random((N, L)) < 0.3] = 3  # some overflowing buckets
    tables = build_tables(keys, range_pow=RANGE_POW, capacity=CAPACITY, policy="fifo")
    return tables, ref.buckets(keys, CAPACITY, "fifo")


def queries(n_queries=40, seed=1):
    """(probed keys, labels, cap) per query: labels may repeat and may or may not be in the buckets."""
    rng = np.random.default_rng(seed)
    for q in range(n_queries):
        labels = rng.integers(0, N, int(rng.integers(0, 5))).astype(np.int32)
        yield q, rng.integers(0, 2**RANGE_POW, L).astype(np.int32), labels, int(rng.integers(0, 120))


def start(q, labels, stamp, out):
    """force_labels for query q; checks it against the distinct labels in order."""
    base = (q + 1) * STAMP_STRIDE
    n = force_labels(labels, 0, len(labels), stamp, base, out)
    assert out[:n].tolist() == list(dict.fromkeys(labels.tolist()))
    return base, n


def count_buffers(tables):
    """(stamp, counts, touched, hist, out): count_select's working memory, as training sizes it."""
    return (np.zeros(N, np.int64), np.zeros(N, np.int32), np.empty(max_candidates(tables), np.int32),
            np.zeros(L + 2, np.int64), np.empty(N, np.int32))


def probed(bkts, keys):
    """Neurons of the probed buckets in table order (with repeats) and their counts."""
    seq = [i for t, k in enumerate(keys) for i in bkts.get((t, int(k)), [])]
    return seq, ref.query_counts(bkts, keys, N)


def test_union_select_is_the_deduplicated_union_after_the_labels(tables_and_buckets):
    tables, bkts = tables_and_buckets
    stamp = np.zeros(N, np.int64)
    out = np.empty(N, np.int32)
    for q, keys, labels, cap in queries():
        base, nf = start(q, labels, stamp, out)
        cap = max(cap, nf)
        n, retrieved = union_select(tables, keys, stamp, base, out, nf, cap)
        seq, _ = probed(bkts, keys)
        forced = out[:nf].tolist()
        union = [i for i in dict.fromkeys(seq) if i not in forced]
        assert out[:n].tolist() == forced + union[:cap - nf]
        assert retrieved == len(set(forced) & set(seq)), "labels the tables hold, counted past the cap too"


@pytest.mark.parametrize("threshold", [1, 2, 3])
def test_threshold_select_takes_the_neurons_seen_in_enough_buckets(tables_and_buckets, threshold):
    tables, bkts = tables_and_buckets
    stamp, counts, touched, hist, out = count_buffers(tables)
    for q, keys, labels, cap in queries(seed=threshold):
        base, nf = start(q, labels, stamp, out)
        cap = max(cap, nf)
        n, retrieved = count_select(tables, keys, stamp, base, counts, touched, hist, out, nf, cap, threshold, False)
        seq, cnt = probed(bkts, keys)
        forced = out[:nf].tolist()
        above = [i for i in dict.fromkeys(seq) if cnt[i] >= threshold and i not in forced]
        assert out[:n].tolist() == forced + above[:cap - nf]
        assert retrieved == sum(cnt[a] >= threshold for a in forced)
        assert not counts.any(), "counts are reset to zeros"


def test_topk_select_takes_the_most_frequent_neurons_ties_by_first_appearance(tables_and_buckets):
    tables, bkts = tables_and_buckets
    stamp, counts, touched, hist, out = count_buffers(tables)
    for q, keys, labels, cap in queries(seed=7):
        base, nf = start(q, labels, stamp, out)
        cap = max(cap, nf)
        n, retrieved = count_select(tables, keys, stamp, base, counts, touched, hist, out, nf, cap, 1, True)
        seq, cnt = probed(bkts, keys)
        forced = out[:nf].tolist()
        order = list(dict.fromkeys(seq))
        ranked = sorted((i for i in order if i not in forced), key=lambda i: (-cnt[i], order.index(i)))
        chosen = out[nf:n].tolist()
        assert out[:nf].tolist() == forced and len(set(chosen)) == len(chosen)
        assert set(chosen) == set(ranked[:cap - nf])
        if chosen:  # labels count as retrieved when the tables rank them with the chosen
            weakest = min(cnt[i] for i in chosen)
            assert sum(cnt[a] > weakest for a in forced) <= retrieved <= sum(cnt[a] >= weakest for a in forced)
        assert not counts.any()


def test_oracle_select_takes_the_largest_scores_ties_by_index():
    rng = np.random.default_rng(3)
    stamp = np.zeros(N, np.int64)
    out = np.empty(N, np.int32)
    work = np.empty(N, np.float32)
    for q in range(30):
        scores = rng.integers(-5, 5, N).astype(np.float32)  # many ties
        labels = rng.integers(0, N, 3).astype(np.int32)
        base, nf = start(q, labels, stamp, out)
        cap = nf + int(rng.integers(0, 60))
        n = oracle_select(scores, work, stamp, base, out, nf, cap)
        rest = sorted((a for a in range(N) if a not in out[:nf]), key=lambda a: (-scores[a], a))
        assert sorted(out[nf:n].tolist()) == sorted(rest[:cap - nf])


@pytest.mark.parametrize("dense_input", [True, False])
def test_rerank_select_keeps_the_pool_neurons_with_the_largest_logits(dense_input):
    """Of a pool appended after the labels, rerank_select keeps the `limit` with the largest
    exact logits w.h + b (ties in pool order), in out[nf:limit]; the dropped ones are unseen
    again (stamp < base), the kept and the labels keep theirs."""
    rng = np.random.default_rng(5)
    d = 12
    W = rng.normal(size=(N, d)).astype(np.float32)
    b = rng.normal(size=N).astype(np.float32)
    b[:40] = 7.0  # ties
    W[:40] = 0.0
    stamp = np.zeros(N, np.int64)
    out = np.empty(N, np.int32)
    scores, work, pool = np.empty(N, np.float32), np.empty(N, np.float32), np.empty(N, np.int32)
    for q in range(25):
        h = np.maximum(rng.normal(size=d), 0).astype(np.float32)
        ids = np.arange(d, dtype=np.int32) if dense_input else np.sort(rng.choice(40, d, replace=False)).astype(np.int32)
        if not dense_input:
            W40 = np.zeros((N, 40), np.float32)
            W40[:, ids] = W
        labels = rng.integers(0, N, 2).astype(np.int32)
        base, nf = start(q, labels, stamp, out)
        pool_ids = rng.choice(np.setdiff1d(np.arange(N), labels), int(rng.integers(1, 80)), replace=False).astype(np.int32)
        n = nf + len(pool_ids)
        out[nf:n] = pool_ids
        stamp[pool_ids] = base
        limit = nf + int(rng.integers(1, 50))
        Wq = W if dense_input else W40
        got = rerank_select(Wq, b, ids, h, 0, d, dense_input, scores, work, pool, stamp, base, out, nf, n, limit)
        logits = (W.astype(np.float64) @ h.astype(np.float64) + b) if dense_input else (W @ h + b)
        keep = sorted(range(len(pool_ids)), key=lambda i: (-np.float32(logits[pool_ids[i]]), i))[:limit - nf]
        assert got == min(n, limit)
        assert sorted(out[nf:got].tolist()) == sorted(pool_ids[keep].tolist())
        dropped = np.setdiff1d(pool_ids, out[nf:got])
        assert np.all(stamp[dropped] < base) and np.all(stamp[out[nf:got]] == base)
        assert np.all(stamp[out[:nf]] > base)


@pytest.mark.parametrize("target", [10, 250, N])
def test_pad_random_adds_distinct_unchosen_neurons_up_to_the_target(target):
    stamp = np.zeros(N, np.int64)
    out = np.empty(N, np.int32)
    labels = np.array([5, 7, 5, 299], np.int32)
    base, nf = start(0, labels, stamp, out)
    state, n = pad_random(np.uint64(stream_seed(1, 2, 3, 4)), N, stamp, base, out, nf, target)
    assert n == max(target, nf)
    assert len(set(out[:n].tolist())) == n and out[:nf].tolist() == [5, 7, 299]
    again = np.empty(N, np.int32)
    again[:nf] = out[:nf]
    stamp2 = np.zeros(N, np.int64)
    start(0, labels, stamp2, again)
    assert pad_random(np.uint64(stream_seed(1, 2, 3, 4)), N, stamp2, base, again, nf, target)[1] == n
    assert np.array_equal(again[:n], out[:n]), "the same stream gives the same padding"


def test_pad_random_is_uniform():
    """Padding is a uniform sample: every neuron is drawn about equally often."""
    width, per_draw, draws = 50, 10, 4000
    stamp = np.zeros(width, np.int64)
    out = np.empty(width, np.int32)
    hits = np.zeros(width)
    for d in range(draws):
        _, n = pad_random(np.uint64(stream_seed(0, d, 0, 0)), width, stamp, (d + 1) * STAMP_STRIDE, out, 0, per_draw)
        hits[out[:n]] += 1
    expected = draws * per_draw / width
    chi2 = float(((hits - expected) ** 2 / expected).sum())
    assert chi2 < 100, chi2  # 49 degrees of freedom: p ~ 1e-5 at 100
