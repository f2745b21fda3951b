"""What the output layer's tables retrieve: the auto-K formula against counts measured on random
weights, retrieval quality (lift) on planted data, the active set's parts, and every rehash
schedule triggering rehashes inside SlideNetwork."""
from __future__ import annotations

import numpy as np
import pytest

from harness.data.csr import CSR
from slide_core import LayerConfig, NetworkConfig, SlideNetwork
from slide_core.config import auto_sparsity
from slide_core.hashing import hash_rows, make_hash_functions
from slide_core.sizing import auto_K, expected_retrieved
from slide_core.sampling import STAMP_STRIDE, union_select
from slide_core.tables import build_tables


def measured_union(n, family, K, L, packing="exact", capacity=128, range_pow=18, queries=200, seed=0):
    """Mean union size of the L probed buckets for random queries over random (Gaussian) neurons."""
    rng = np.random.default_rng(seed)
    dim = 64
    W = rng.standard_normal((n, dim), dtype=np.float32)
    Q = np.maximum(rng.standard_normal((queries, dim), dtype=np.float32), 0)  # ReLU-like queries
    hf = make_hash_functions(family, dim, K, L, range_pow, seed + 1, packing=packing)
    tables = build_tables(hash_rows(hf, W), range_pow, capacity, "reservoir", seed + 2)
    keys = hash_rows(hf, Q)
    stamp = np.zeros(n, np.int64)
    out = np.empty(n, np.int32)
    return float(np.mean([union_select(tables, keys[q], stamp, (q + 1) * STAMP_STRIDE, out, 0, n)[0] for q in range(queries)]))


@pytest.mark.parametrize("n,family,K,L,packing,capacity", [
    (20000, "simhash", 8, 20, "exact", 128),        # uniform keys, buckets below capacity
    (20000, "simhash", 4, 10, "exact", 128),        # buckets over capacity: 10 x 128 at most
    (20000, "dwta", 3, 20, "exact", 128),
    (50000, "dwta", 2, 10, "exact", 64),            # 64 buckets of ~780 neurons, 64 kept each
    (50000, "dwta", 6, 50, "reference_ln", 128),    # the reference's overlapping packing
    (30000, "dwta", 2, 8, "reference_ln", 64),
])
def test_expected_retrieved_matches_counts_on_random_weights(n, family, K, L, packing, capacity):
    expected = expected_retrieved(n, family, K, L, packing=packing, capacity=capacity, dim=64)
    measured = measured_union(n, family, K, L, packing=packing, capacity=capacity)
    assert measured == pytest.approx(expected, rel=0.12), (measured, expected)


def test_auto_k_is_the_most_selective_k_that_reaches_the_target():
    for n, family, target in ((50000, "simhash", 2700), (50000, "dwta", 2700), (983, "simhash", 512),
                              (670091, "simhash", 3200)):
        K = auto_K(n, family, target, 50)
        assert expected_retrieved(n, family, K, 50) >= target
        assert expected_retrieved(n, family, K + 1, 50) < target
    assert auto_K(100, "simhash", 10**6, 50) == 1  # unreachable target: the least selective K
    # what the layer resolves "auto" to: the pool is retrieval_pool x the chosen limit, at most
    # half of what L buckets hold
    layer = LayerConfig(50000, sparsity="auto")
    assert layer.budget == 448 and layer.chosen_limit == 336 and layer.K == 9
    target = min(layer.retrieval_pool * layer.chosen_limit, 0.5 * layer.L * layer.bucket_capacity)
    assert layer.expected_retrieved >= target > expected_retrieved(50000, "simhash", layer.K + 1, layer.L)


def test_auto_sparsity_is_sublinear_with_a_floor():
    assert [LayerConfig(w, sparsity="auto").budget for w in (159, 983, 50000, 670091)] == [128, 128, 448, 1638]
    assert auto_sparsity(100) == 1.0  # smaller than the floor: dense
    assert LayerConfig(100, sparsity="auto").dense


def planted_network(strategy, n_out=4000, dim=32, seed=0):
    """Identity first layer (hidden = ReLU(x)), output neurons with random weights: the query
    x = ReLU(w_a) of a neuron a has a among its largest logits."""
    rng = np.random.default_rng(seed)
    W_out = rng.standard_normal((dim, n_out), dtype=np.float32)
    layers = (LayerConfig(dim), LayerConfig(n_out, sparsity=0.05, strategy=strategy))
    net = SlideNetwork(NetworkConfig(n_features=dim, layers=layers), seed=seed,
                       initial_weights=[(np.eye(dim, dtype=np.float32), np.zeros(dim, np.float32)),
                                        (W_out, np.zeros(n_out, np.float32))])
    planted = rng.choice(n_out, 300, replace=False)
    rows = np.maximum(W_out[:, planted].T, 0) + 0.05 * rng.random((300, dim), dtype=np.float32)
    x = CSR.from_rows([list(range(dim))] * 300, dim, rows.tolist())
    y = CSR.from_rows([[int(a)] for a in planted], n_out)
    return net, x, y


def test_tables_retrieve_the_large_logits_far_better_than_random():
    net, x, y = planted_network("topk")
    q = net.retrieval_quality(x, y)
    random_share = q["retrieved_mean"] / 4000
    assert 0 < q["retrieved_mean"] <= net.config.layers[-1].chosen_limit
    assert q["lift_at_10"] > 5 and q["lift_at_100"] > 3, q
    assert q["label_recall"] > 5 * random_share  # the planted neuron is found
    assert q["softmax_mass"] > 3 * random_share


def test_controls_retrieval_oracle_finds_everything_random_nothing():
    net, x, y = planted_network("oracle")
    q = net.retrieval_quality(x, y)
    assert q["topk_recall_at_10"] == 1.0 and q["topk_recall_at_100"] == 1.0
    net, x, y = planted_network("random")
    q = net.retrieval_quality(x, y)
    assert q["retrieved_mean"] == 0 and "lift_at_100" not in q


def small_batches(n_out=300, n_feat=200, batches=12, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batches):
        xr = [sorted(rng.choice(n_feat, 10, replace=False).tolist()) for _ in range(32)]
        yr = [sorted(rng.choice(n_out, int(rng.integers(1, 4)), replace=False).tolist()) for _ in range(32)]
        out.append((CSR.from_rows(xr, n_feat), CSR.from_rows(yr, n_out)))
    return out


@pytest.mark.parametrize("law", ["uniform", "log_uniform"])
def test_active_set_parts_add_up_and_padding_fills_the_budget(law):
    """The uniform tail fills every active set to exactly the budget; a frequency law's tail
    takes a fixed number of draws (sized for the budget when the tables fill their limit), so
    its size varies around that: both log parts that add up to the whole."""
    layer = LayerConfig(300, sparsity=0.5, K=4, L=10, tail_law=law)
    counts = np.arange(300, 0, -1)
    net = SlideNetwork(NetworkConfig(n_features=200, layers=(LayerConfig(16), layer), lr=1e-2), seed=0,
                       label_counts=counts)
    for x, y in small_batches():
        net.train_batch(x, y)
    st = net.stats()
    assert st["labels_out_mean"] + st["retrieved_out_mean"] + st["padding_out_mean"] == pytest.approx(
        st["active_out_mean"])
    assert st["retrieved_out_mean"] <= layer.chosen_limit
    if law == "uniform":
        assert st["padding_out_mean"] >= layer.min_padding - 1e-9
        assert st["retrieved_out_mean"] + st["padding_out_mean"] == pytest.approx(layer.budget)
    else:  # draws that land on a sample's labels or retrieved neurons are skipped, not redrawn
        assert 0.5 * layer.min_padding <= st["padding_out_mean"] <= layer.budget - st["retrieved_out_mean"] + 16


@pytest.mark.parametrize("schedule,extra,expected", [
    ("fixed", {"rehash_every": 3}, 4),  # after batches 3, 6, 9, 12
    ("exponential", {"schedule_n0": 2, "schedule_lambda": 0.5}, 3),  # after 2, 5, 10
    ("adaptive", {"drift_check_every": 2, "drift_threshold": 1e-6}, 6),  # every check finds drift
    ("adaptive", {"drift_check_every": 2, "drift_threshold": 1.0}, 0),  # never all keys changed
])
def test_each_schedule_rehashes_inside_the_network(schedule, extra, expected):
    layer = LayerConfig(300, sparsity=0.5, K=4, L=10)
    cfg = NetworkConfig(n_features=200, layers=(LayerConfig(16), layer), lr=5e-2, schedule=schedule,
                        rebuild_every=10**6, **extra)
    net = SlideNetwork(cfg, seed=0)
    entries = net.tables[1].entries.copy()
    for x, y in small_batches():
        net.train_batch(x, y)
    assert net.rehash_total == expected
    if expected and schedule != "exponential":  # rehashed after the last batch: the tables hold
        W = net.params[1].W  # the trained weights' keys
        np.testing.assert_array_equal(net._keys_t[1], hash_rows(net.hfs[1], W).T)
        assert not np.array_equal(entries, net.tables[1].entries)
    assert net.stats()["rehashes"] == expected
