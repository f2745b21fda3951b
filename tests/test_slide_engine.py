"""Parallel HOGWILD, checkpoint round trip, schedules, dense inference top-k."""
from __future__ import annotations

import numba
import numpy as np
import pytest

from harness.data.csr import CSR
from slide_core import LayerConfig, NetworkConfig, SlideNetwork
from slide_core import inference
from slide_core.schedule import exponential_points, is_exponential_point, maintenance_due
from tests import reference as ref


def learnable(n, n_feat=120, n_out=40, seed=0):
    """Label l owns features 3l..3l+2; each row shows 2 of them plus 1 noise feature."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_out, n)
    xr = [sorted(set((3 * lab + rng.choice(3, 2, replace=False)).tolist() + [int(rng.integers(n_feat))])) for lab in labels]
    return CSR.from_rows(xr, n_feat), CSR.from_rows([[int(lab)] for lab in labels], n_out)


def train(threads, batches=60, seed=0):
    out = LayerConfig(40, sparsity=0.25, hash_family="simhash", K=3, L=10, range_pow=6, bucket_capacity=16)
    cfg = NetworkConfig(n_features=120, layers=(LayerConfig(32), out), lr=1e-2, rehash_every=10, rebuild_every=30)
    net = SlideNetwork(cfg, seed=seed, threads=threads)
    x, y = learnable(64 * batches, seed=1)
    losses = [net.train_batch(x.row_slice(64 * b, 64 * b + 64), y.row_slice(64 * b, 64 * b + 64)) for b in range(batches)]
    xt, yt = learnable(500, seed=2)
    p1 = (net.predict_topk(xt, 1)[:, 0] == yt.indices).mean()
    return losses, p1, net


@pytest.mark.slow  # compiles every parallel kernel cold; a few seconds with the cache warm
def test_parallel_hogwild_learns_like_serial():
    numba.set_num_threads(2)
    ls, p_serial, _ = train(1)
    lp, p_par, net = train(2)
    assert np.mean(lp[-10:]) < 0.5 * np.mean(lp[:5])
    assert p_serial > 0.5 and abs(p_par - p_serial) < 0.1, (p_serial, p_par)
    assert net.kernels.forward.py_func.__name__.endswith("_parallel")


TAILS = {
    "dwta, uniform padding": dict(hash_family="dwta", K=2),
    "simhash about the rows' mean, log-uniform padding": dict(hash_family="simhash", K=2, center_rows=True,
                                                             tail_law="log_uniform"),
    "shared unigram tail": dict(hash_family="simhash", K=2, padding=False, shared_tail=12, tail_law="unigram"),
}


@pytest.mark.parametrize("tail", sorted(TAILS))
def test_checkpoint_round_trip_continues_identically(tmp_path, tail):
    """Save after 4 batches, load, train 4 more: the same losses and weights as without the
    round trip. The label counts a frequency law follows and the rows' center are in the
    checkpoint (a load that lost them would draw another tail or hash other keys)."""
    x, y = learnable(64 * 8, seed=3)
    batches = [(x.row_slice(64 * b, 64 * b + 64), y.row_slice(64 * b, 64 * b + 64)) for b in range(8)]
    out = LayerConfig(40, sparsity=0.25, L=6, range_pow=6, **TAILS[tail])
    cfg = NetworkConfig(n_features=120, layers=(LayerConfig(16), out), lr=1e-2, rehash_every=3, rebuild_every=5)
    counts = np.bincount(y.indices, minlength=40)
    net = SlideNetwork(cfg, seed=4, threads=1, label_counts=counts)
    for b in batches[:4]:
        net.train_batch(*b)
    net.save(tmp_path / "ck.npz")
    rest_a = [net.train_batch(*b) for b in batches[4:]]
    loaded = SlideNetwork.load(tmp_path / "ck.npz")
    assert loaded.step == 4
    rest_b = [loaded.train_batch(*b) for b in batches[4:]]
    assert rest_a == rest_b
    for (a, b), (c, d) in zip(net.weights(), loaded.weights()):
        assert np.array_equal(a, c) and np.array_equal(b, d)
    for p, q in zip(net.params, loaded.params):
        assert np.array_equal(p.mW, q.mW) and np.array_equal(p.vW, q.vW)
    assert np.array_equal(net.tables[1].entries, loaded.tables[1].entries)


def test_fixed_and_exponential_schedules():
    assert [d for d in range(1, 201) if maintenance_due(d, "fixed", 50, 100)] == [50, 100, 150, 200]
    assert maintenance_due(100, "fixed", 50, 100) == "rebuild"
    assert maintenance_due(50, "fixed", 50, 100) == "rehash"
    assert maintenance_due(0, "fixed", 50, 100) is None
    pts = exponential_points(50, 0.1, 2000)
    assert pts[0] == 50 and pts[1] == round(50 + 50 * np.exp(0.1))
    gaps = np.diff(pts)
    assert np.all(gaps[1:] >= gaps[:-1])  # intervals grow
    got = [d for d in range(1, 2001) if is_exponential_point(d, 50, 0.1)]
    assert got == pts
    assert exponential_points(50, 0.0, 200) == [50, 100, 150, 200]
    with pytest.raises(ValueError):
        maintenance_due(5, "nope", 1, 1)


@pytest.mark.parametrize("threads", [1, 2])
def test_dense_topk_matches_full_sort(threads):
    numba.set_num_threads(2)
    cfg = NetworkConfig(n_features=120, layers=(LayerConfig(24), LayerConfig(53)))
    net = SlideNetwork(cfg, seed=7, threads=threads)
    rng = np.random.default_rng(0)
    for p in net.params:  # distinct scores (no ties) with non-zero biases
        p.b[:] = rng.normal(0, 0.5, p.b.shape)
    x, _ = learnable(37, seed=5)
    got = inference.predict_dense(net, x.indptr, x.indices, x.data, 5, block_points=8, block_labels=7)
    layers = [(W.astype(np.float64), b.astype(np.float64)) for W, b in net.weights()]
    logits = ref.forward(layers, x.to_dense().astype(np.float64))[-1]
    np.testing.assert_array_equal(got, ref.topk_dense(logits, 5))
    np.testing.assert_array_equal(net.predict_topk(x, 5), got)
