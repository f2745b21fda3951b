"""Statistical LSH checks: SimHash collision rate ~ 1 - theta/pi, and hash tables retrieve
the true top inner-product neurons far more often than a random set of the same size."""
from __future__ import annotations

import numpy as np
import pytest

from slide_core.hashing import hash_dense, hash_rows, make_hash_functions
from slide_core.sampling import STAMP_STRIDE, union_select
from slide_core.tables import build_tables


def _pair_at_angle(rng, dim, theta):
    u = rng.standard_normal(dim)
    u /= np.linalg.norm(u)
    w = rng.standard_normal(dim)
    w -= (w @ u) * u
    w /= np.linalg.norm(w)
    return u.astype(np.float32), (np.cos(theta) * u + np.sin(theta) * w).astype(np.float32)


def test_simhash_collision_rate_is_one_minus_theta_over_pi():
    # 3000 single-bit codes x 5 pairs = 15,000 Bernoulli draws per angle: sd <= 0.004
    dim = 128
    hf = make_hash_functions("simhash", dim, 1, 3000, 1, seed=1)
    rng = np.random.default_rng(0)
    for theta in (0.2, 0.5, 1.0, 1.5, 2.0, 2.8):
        rates = []
        for _ in range(5):
            u, v = _pair_at_angle(rng, dim, theta)
            rates.append(np.mean(hash_dense(hf, u) == hash_dense(hf, v)))
        assert abs(np.mean(rates) - (1 - theta / np.pi)) < 0.02, (theta, np.mean(rates))


def _planted(rng, n=5000, dim=128, n_clusters=100, noise=1.0):
    """Neuron weights around cluster centres; queries are ReLU'd noisy centres."""
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    W = (centres[rng.integers(0, n_clusters, n)] + noise * rng.standard_normal((n, dim))).astype(np.float32)
    Q = centres[rng.integers(0, n_clusters, 100)] + noise * rng.standard_normal((100, dim))
    return W, np.maximum(Q, 0).astype(np.float32)


@pytest.mark.parametrize("family,K,range_pow", [("dwta", 4, 12), ("simhash", 9, 12), ("wta", 4, 12),
                                                ("doph", 4, 12)])
def test_union_recall_of_true_top10_beats_random(family, K, range_pow):
    rng = np.random.default_rng(0)
    W, Q = _planted(rng)
    n = W.shape[0]
    hf = make_hash_functions(family, W.shape[1], K, 50, range_pow, seed=2)
    tables = build_tables(hash_rows(hf, W), range_pow, capacity=128)
    stamp = np.zeros(n, np.int64)
    out = np.empty(n, np.int32)
    recalls, sizes = [], []
    for q, x in enumerate(Q):
        top10 = set(np.argsort(-(W @ x))[:10].tolist())
        m = union_select(tables, hash_dense(hf, x), stamp, (q + 1) * STAMP_STRIDE, out, 0, n)[0]
        recalls.append(len(top10 & set(out[:m].tolist())) / 10)
        sizes.append(m)
    recall, random_recall = np.mean(recalls), np.mean(sizes) / n  # a random set of size m has recall m/n
    assert np.mean(sizes) < 0.5 * n  # the union is a real subset
    assert recall > 0.3 and recall > 4 * random_recall, (recall, random_recall)
