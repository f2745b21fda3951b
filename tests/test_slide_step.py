"""The batch step against the numpy reference: dense equivalence, gradients, Adam, FD."""
from __future__ import annotations

import numpy as np
import pytest

from harness.data.csr import CSR
from slide_core import LayerConfig, NetworkConfig, SlideNetwork
from slide_core.layer import LayerParams
from slide_core.adam import (
    DENSE, LAZY, UNTOUCHED, RowGroups, SharedGrad, adam_lr, adam_parallel, adam_serial, group_rows_parallel, group_rows_serial,
    grouped_parallel, grouped_serial,
)
from tests import reference as ref

N_FEAT, HID, N_OUT = 30, 16, 13  # 13: not a multiple of 8 on purpose


def batch(seed=0, rows=9):
    """Fixture batch with an empty input row (1) and a row without labels (2), multi-label rows."""
    rng = np.random.default_rng(seed)
    xr, xv, yr = [], [], []
    for s in range(rows):
        nnz = 0 if s == 1 else int(rng.integers(1, 7))
        xr.append(sorted(rng.choice(N_FEAT, nnz, replace=False).tolist()))
        xv.append(rng.uniform(0.2, 1.5, nnz).tolist())
        yr.append([] if s == 2 else sorted(rng.choice(N_OUT, int(rng.integers(1, 4)), replace=False).tolist()))
    return CSR.from_rows(xr, N_FEAT, xv), CSR.from_rows(yr, N_OUT)


def weights(seed=1, std=0.3):
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, std, (N_FEAT, HID)).astype(np.float32), rng.normal(0, 0.1, HID).astype(np.float32)),
            (rng.normal(0, std, (HID, N_OUT)).astype(np.float32), rng.normal(0, 0.1, N_OUT).astype(np.float32))]


def dense_net(optimizer="lazy", threads=1, lr=1e-2):
    cfg = NetworkConfig(n_features=N_FEAT, layers=(LayerConfig(HID), LayerConfig(N_OUT)), lr=lr, optimizer=optimizer)
    return SlideNetwork(cfg, initial_weights=weights(), seed=0, threads=threads)


def f64(layers):
    return [(W.astype(np.float64), b.astype(np.float64)) for W, b in layers]


def test_reference_gradient_matches_finite_differences():
    x, y = batch()
    X, Y = x.to_dense().astype(np.float64), y.to_dense().astype(np.float64)
    layers = f64(weights())
    # SLIDE's active sets always hold the labels
    actives = [None, [np.union1d([0, 3, 5, 7, 12], np.flatnonzero(Y[s])) for s in range(X.shape[0])]]
    for act in (None, actives):
        _, grads = ref.backward(layers, X, Y, act)
        rng = np.random.default_rng(3)
        for li in range(2):
            for _ in range(6):
                W = layers[li][0]
                i, j = rng.integers(W.shape[0]), rng.integers(W.shape[1])
                h = 1e-6
                W[i, j] += h
                lp = ref.batch_loss(layers, X, Y, act)
                W[i, j] -= 2 * h
                lm = ref.batch_loss(layers, X, Y, act)
                W[i, j] += h
                assert grads[li][0][i, j] == pytest.approx((lp - lm) / (2 * h), abs=1e-7, rel=1e-5)
            b = layers[li][1]
            j = rng.integers(b.shape[0])
            b[j] += 1e-6
            lp = ref.batch_loss(layers, X, Y, act)
            b[j] -= 2e-6
            lm = ref.batch_loss(layers, X, Y, act)
            b[j] += 1e-6
            assert grads[li][1][j] == pytest.approx((lp - lm) / 2e-6, abs=1e-7, rel=1e-5)


def test_dense_gradients_match_reference():
    x, y = batch()
    net = dense_net()
    loss = net._forward_backward(x, y)
    ref_loss, grads = ref.backward(f64(weights()), x.to_dense().astype(np.float64), y.to_dense().astype(np.float64))
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(net.params[0].gW, grads[0][0], atol=1e-6)  # input-major = Keras layout
    np.testing.assert_allclose(net.params[0].gb, grads[0][1], atol=1e-6)
    np.testing.assert_allclose(net.params[1].gW, grads[1][0].T, atol=1e-6)  # neuron-major
    np.testing.assert_allclose(net.params[1].gb, grads[1][1], atol=1e-6)


def _touched(X, Y, grads):
    """Rows the lazy step touches: features present in labelled rows; neurons with gradient."""
    lab = Y.sum(axis=1) > 0
    rows0 = np.flatnonzero((X[lab] != 0).any(axis=0))
    b0 = np.flatnonzero(grads[0][1] != 0)
    rows1 = np.flatnonzero((grads[1][0] != 0).any(axis=0))
    return rows0, b0, rows1


@pytest.mark.parametrize("optimizer", ["lazy", "dense"])
def test_dense_steps_equal_reference_adam(optimizer):
    net = dense_net(optimizer)
    layers = f64(weights())
    moments = [[np.zeros_like(W), np.zeros_like(W), np.zeros_like(b), np.zeros_like(b)] for W, b in layers]
    for t in range(1, 4):
        x, y = batch(seed=t)
        X, Y = x.to_dense().astype(np.float64), y.to_dense().astype(np.float64)
        loss = net.train_batch(x, y)
        ref_loss, grads = ref.backward(layers, X, Y)
        assert loss == pytest.approx(ref_loss, rel=1e-5)
        rows0, b0, rows1 = _touched(X, Y, grads)
        touched = [(rows0, b0), (rows1, rows1)]
        new = []
        for li, ((W, b), (gW, gb)) in enumerate(zip(layers, grads)):
            mW, vW, mb, vb = moments[li]
            if optimizer == "dense":
                W, mW, vW = ref.adam_dense(W, mW, vW, gW, t, 1e-2, 0.9, 0.999, 1e-8)
                b, mb, vb = ref.adam_dense(b, mb, vb, gb, t, 1e-2, 0.9, 0.999, 1e-8)
            else:
                rw, rb = touched[li]
                # W rows are axis 0 of the stored layout: input rows for layer 0, neurons for layer 1
                if li == 0:
                    W, mW, vW = ref.adam_lazy(W, mW, vW, gW, rw, t, 1e-2, 0.9, 0.999, 1e-8)
                else:
                    WT, mT, vT = ref.adam_lazy(W.T, mW.T, vW.T, gW.T, rw, t, 1e-2, 0.9, 0.999, 1e-8)
                    W, mW, vW = WT.T, mT.T, vT.T
                b, mb, vb = ref.adam_lazy(b, mb, vb, gb, rb, t, 1e-2, 0.9, 0.999, 1e-8)
            moments[li] = [mW, vW, mb, vb]
            new.append((W, b))
        layers = new
        for (W, b), (Wk, bk) in zip(layers, net.weights()):
            np.testing.assert_allclose(Wk, W, atol=2e-6)
            np.testing.assert_allclose(bk, b, atol=2e-6)


def log_q_offsets(net, rows: int) -> np.ndarray:
    """(rows, n_out) logit offsets the log-Q correction gave the last batch's sampled neurons:
    log(pool / sampled) on active positions n_exact.., 0 elsewhere (and without correction)."""
    cfg = net.config.layers[-1]
    lw = net._ws.layers[-1]
    offsets = np.zeros((rows, cfg.width))
    for s in range(rows):
        pool, sampled = cfg.width - lw.n_exact[s], lw.cnt[s] - lw.n_exact[s]
        if cfg.log_q_correction and sampled:
            offsets[s, lw.ids[s, lw.n_exact[s]:lw.cnt[s]]] = np.log(pool / sampled)
    return offsets


@pytest.mark.parametrize("log_q", [False, True])
def test_sparse_output_gradients_match_reference_on_its_active_sets(log_q):
    """Random-strategy output layer: the kernel's loss and gradient equal the reference's
    restricted to the active sets the kernel chose (labels included); with log_q_correction
    the sampled neurons' logits carry + log(pool / sampled) in the reference too."""
    out = LayerConfig(N_OUT, sparsity=0.3, strategy="random", log_q_correction=log_q,
                      tail_law="uniform")  # the frequency laws: test_per_sample_law_tail_* below
    cfg = NetworkConfig(n_features=N_FEAT, layers=(LayerConfig(HID), out), lr=1e-2)
    net = SlideNetwork(cfg, initial_weights=weights(), seed=0, threads=1)
    x, y = batch()
    loss = net._forward_backward(x, y)
    lw = net._ws.layers[1]
    rows = x.n_rows
    actives = [None, [lw.ids[s, :lw.cnt[s]].copy() for s in range(rows)]]
    for s in range(rows):
        labels = y.indices[y.indptr[s]:y.indptr[s + 1]]
        assert set(labels) <= set(actives[1][s]), "labels must be forced into the active set"
        assert len(set(actives[1][s])) == len(actives[1][s])
        assert len(actives[1][s]) == min(N_OUT, len(set(labels)) + out.budget)
        assert lw.n_exact[s] == len(set(labels))  # the random control chooses nothing: all sampled
    offsets = log_q_offsets(net, rows)
    assert log_q == bool(offsets.any())
    X, Y = x.to_dense().astype(np.float64), y.to_dense().astype(np.float64)
    ref_loss, grads = ref.backward(f64(weights()), X, Y, actives, offsets)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    assert net.grouped  # output gradient assembled by the grouped Adam, not accumulated
    gW, gb = net._deferred_output_grad()
    np.testing.assert_allclose(gW, grads[1][0].T, atol=1e-6)
    np.testing.assert_allclose(gb, grads[1][1], atol=1e-6)
    np.testing.assert_allclose(net.params[0].gW, grads[0][0], atol=1e-6)


def shared_tail_net(law="uniform", threads=1, shared=6):
    """A sparse output layer whose per-sample set is labels + up to 4 retrieved neurons, with a
    shared tail of `shared` of the 13 neurons drawn by `law` (counts favour low ids)."""
    out = LayerConfig(N_OUT, sparsity=0.4, strategy="topk", hash_family="simhash", K=2, L=4, range_pow=4,
                      padding=False, shared_tail=shared, tail_law=law)
    cfg = NetworkConfig(n_features=N_FEAT, layers=(LayerConfig(HID), out), lr=1e-2)
    return SlideNetwork(cfg, initial_weights=weights(), seed=0, threads=threads,
                        label_counts=np.arange(N_OUT)[::-1] * 3)


def shared_tail_reference_sets(net, rows):
    """(actives, offsets) of the last batch for tests.reference: each sample's own set plus the
    shared neurons it does not hold, those offset by -log(pi) (own sampled slots by their shift)."""
    lw = net._ws.layers[1]
    shared, log_q = net._shared.ids, net._shared.log_q.astype(np.float64)
    actives, offsets = [], np.zeros((rows, N_OUT))
    for s in range(rows):
        own = lw.ids[s, :lw.cnt[s]].copy()
        offsets[s, own[lw.n_exact[s]:]] = lw.shift[s, lw.n_exact[s]:lw.cnt[s]]
        tail = ~np.isin(shared, own)
        offsets[s, shared[tail]] = -log_q[tail]
        actives.append(np.concatenate([own, shared[tail]]))
    return [None, actives], offsets


@pytest.mark.parametrize("law", ["uniform", "log_uniform"])
def test_shared_tail_gradients_match_reference(law):
    """The shared tail (one sample of neurons for the whole batch, its products one BLAS call):
    loss and gradients of both layers equal the reference softmax over each sample's own
    neurons plus the shared ones it does not hold (accidental hits taken out), the shared ones
    carrying -log(pi)."""
    net = shared_tail_net(law)
    x, y = batch(seed=2, rows=12)
    loss = net._forward_backward(x, y)
    shared = net._shared
    assert np.all(np.diff(shared.ids) > 0) and shared.draws == net.shared_draws >= 6
    if law == "uniform":  # exactly 6 distinct, a uniform subset
        assert len(shared.ids) == 6
        np.testing.assert_allclose(shared.log_q, np.log(6 / N_OUT), rtol=1e-6)
    actives, offsets = shared_tail_reference_sets(net, x.n_rows)
    assert any(np.isin(shared.ids, actives[1][s][:net._ws.layers[1].cnt[s]]).any() for s in range(12)), \
        "the fixture must have accidental hits"
    X, Y = x.to_dense().astype(np.float64), y.to_dense().astype(np.float64)
    ref_loss, grads = ref.backward(f64(weights()), X, Y, actives, offsets)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    gW, gb = net._deferred_output_grad()
    np.testing.assert_allclose(gW, grads[1][0].T, atol=1e-6)
    np.testing.assert_allclose(gb, grads[1][1], atol=1e-6)
    np.testing.assert_allclose(net.params[0].gW, grads[0][0], atol=1e-6)


def test_per_sample_law_tail_gradients_match_reference():
    """A per-sample tail drawn from a frequency law: each sampled slot carries its own
    -log(1 - (1 - P)^T) (T: the law's draws for the budget's sampled part), and the loss and
    gradients equal the reference softmax with those offsets."""
    from slide_core.tail import law_probabilities

    counts = np.arange(N_OUT)[::-1] * 3
    out = LayerConfig(N_OUT, sparsity=0.4, strategy="topk", hash_family="simhash", K=2, L=4, range_pow=4,
                      min_padding=3, tail_law="unigram")
    cfg = NetworkConfig(n_features=N_FEAT, layers=(LayerConfig(HID), out), lr=1e-2)
    net = SlideNetwork(cfg, initial_weights=weights(), seed=0, threads=1, label_counts=counts)
    x, y = batch(seed=2, rows=12)
    loss = net._forward_backward(x, y)
    lw = net._ws.layers[1]
    T = net.laws[1].pad_draws
    p = law_probabilities("unigram", N_OUT, counts)
    assert T >= out.sampled_target - out.chosen_limit
    sampled = 0
    for s in range(x.n_rows):
        ids = lw.ids[s, lw.n_exact[s]:lw.cnt[s]]
        sampled += len(ids)
        np.testing.assert_allclose(lw.shift[s, lw.n_exact[s]:lw.cnt[s]], -np.log(1 - (1 - p[ids]) ** T), rtol=1e-5)
    assert sampled > 0
    actives, offsets = shared_tail_reference_sets(net, x.n_rows)
    X, Y = x.to_dense().astype(np.float64), y.to_dense().astype(np.float64)
    ref_loss, grads = ref.backward(f64(weights()), X, Y, actives, offsets)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    gW, gb = net._deferred_output_grad()
    np.testing.assert_allclose(gW, grads[1][0].T, atol=1e-6)
    np.testing.assert_allclose(net.params[0].gW, grads[0][0], atol=1e-6)


def test_shared_tail_adam_steps_equal_reference_and_parallel_equals_serial():
    """Three lazy-Adam steps with a shared tail: the output rows updated are the samples' own
    and the shared ones, with the reference's update; the first 2-thread step gives the serial
    one's output layer bit for bit."""
    import numba

    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    nets = [shared_tail_net("log_uniform", threads=t) for t in (1, 2)]
    layers = f64(weights())
    moments = [[np.zeros_like(W), np.zeros_like(W), np.zeros_like(b), np.zeros_like(b)] for W, b in layers]
    for t in range(1, 4):
        x, y = batch(seed=t, rows=12)
        for net in nets:
            net._forward_backward(x, y)
        net = nets[0]
        actives, offsets = shared_tail_reference_sets(net, x.n_rows)
        has = net._ws.has_grad[:x.n_rows].astype(bool).copy()
        rows1 = np.unique(np.concatenate([actives[1][s] for s in range(x.n_rows) if has[s]]))
        for n in nets:
            n._update()
        if t == 1:  # later steps differ: the hidden layer's HOGWILD gradient sums race by design
            assert np.array_equal(nets[0].params[1].W, nets[1].params[1].W)
            assert np.array_equal(nets[0].params[1].b, nets[1].params[1].b)
        X, Y = x.to_dense().astype(np.float64), y.to_dense().astype(np.float64)
        _, grads = ref.backward(layers, X, Y, actives, offsets)
        rows0, b0, _ = _touched(X, Y, grads)
        (W0, bb0), (W1, bb1) = layers
        (gW0, gb0), (gW1, gb1) = grads
        W0, moments[0][0], moments[0][1] = ref.adam_lazy(W0, *moments[0][:2], gW0, rows0, t, 1e-2, 0.9, 0.999, 1e-8)
        bb0, moments[0][2], moments[0][3] = ref.adam_lazy(bb0, *moments[0][2:], gb0, b0, t, 1e-2, 0.9, 0.999, 1e-8)
        WT, mT, vT = ref.adam_lazy(W1.T, moments[1][0].T, moments[1][1].T, gW1.T, rows1, t, 1e-2, 0.9, 0.999, 1e-8)
        W1, moments[1][0], moments[1][1] = WT.T, mT.T, vT.T
        bb1, moments[1][2], moments[1][3] = ref.adam_lazy(bb1, *moments[1][2:], gb1, rows1, t, 1e-2, 0.9, 0.999, 1e-8)
        layers = [(W0, bb0), (W1, bb1)]
        for (W, b), (Wk, bk) in zip(layers, net.weights()):
            np.testing.assert_allclose(Wk, W, atol=2e-6)
            np.testing.assert_allclose(bk, b, atol=2e-6)


@pytest.mark.parametrize("optimizer", ["lazy", "dense"])
def test_sparse_output_grouped_adam_steps_equal_reference(optimizer):
    """Three steps with a sparse output layer: weights after the grouped (lazy) / grouped +
    untouched (dense) Adam equal the reference Adam on the kernel's own active sets."""
    out = LayerConfig(N_OUT, sparsity=0.3, strategy="random", tail_law="uniform")  # log(pool / sampled) offsets
    cfg = NetworkConfig(n_features=N_FEAT, layers=(LayerConfig(HID), out), lr=1e-2, optimizer=optimizer)
    net = SlideNetwork(cfg, initial_weights=weights(), seed=0, threads=1)
    layers = f64(weights())
    moments = [[np.zeros_like(W), np.zeros_like(W), np.zeros_like(b), np.zeros_like(b)] for W, b in layers]
    for t in range(1, 4):
        x, y = batch(seed=t)
        net._forward_backward(x, y)
        lw = net._ws.layers[1]
        actives = [None, [lw.ids[s, :lw.cnt[s]].copy() for s in range(x.n_rows)]]
        has = net._ws.has_grad[:x.n_rows].astype(bool).copy()
        offsets = log_q_offsets(net, x.n_rows)
        net._update()
        X, Y = x.to_dense().astype(np.float64), y.to_dense().astype(np.float64)
        _, grads = ref.backward(layers, X, Y, actives, offsets)
        rows0, b0, _ = _touched(X, Y, grads)
        rows1 = np.unique(np.concatenate([actives[1][s] for s in range(x.n_rows) if has[s]]))
        new = []
        for li, ((W, b), (gW, gb)) in enumerate(zip(layers, grads)):
            mW, vW, mb, vb = moments[li]
            if optimizer == "dense":
                W, mW, vW = ref.adam_dense(W, mW, vW, gW, t, 1e-2, 0.9, 0.999, 1e-8)
                b, mb, vb = ref.adam_dense(b, mb, vb, gb, t, 1e-2, 0.9, 0.999, 1e-8)
            elif li == 0:
                W, mW, vW = ref.adam_lazy(W, mW, vW, gW, rows0, t, 1e-2, 0.9, 0.999, 1e-8)
                b, mb, vb = ref.adam_lazy(b, mb, vb, gb, b0, t, 1e-2, 0.9, 0.999, 1e-8)
            else:
                WT, mT, vT = ref.adam_lazy(W.T, mW.T, vW.T, gW.T, rows1, t, 1e-2, 0.9, 0.999, 1e-8)
                W, mW, vW = WT.T, mT.T, vT.T
                b, mb, vb = ref.adam_lazy(b, mb, vb, gb, rows1, t, 1e-2, 0.9, 0.999, 1e-8)
            moments[li] = [mW, vW, mb, vb]
            new.append((W, b))
        layers = new
        for (W, b), (Wk, bk) in zip(layers, net.weights()):
            np.testing.assert_allclose(Wk, W, atol=2e-6)
            np.testing.assert_allclose(bk, b, atol=2e-6)


def test_adam_kernels_match_reference():
    """The three modes of the Adam kernel against the reference, with a gradient that is
    non-zero in EVERY row (stale values where the batch touched nothing): LAZY updates only the
    touched rows (stamp == batch id) and leaves the others, moments included, as they were;
    DENSE updates every row, treating untouched rows' gradient as 0 without reading it;
    UNTOUCHED does only that g = 0 part (grouped Adam did the touched rows). The touched rows'
    gradient is consumed (zeroed); untouched rows' is neither read nor written."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(11, 5)).astype(np.float32)
    m = rng.normal(size=W.shape).astype(np.float32) * 0.1
    v = np.abs(rng.normal(size=W.shape)).astype(np.float32) * 0.01
    g = rng.normal(size=W.shape).astype(np.float32)  # garbage in the untouched rows too
    stamp = np.zeros(11, dtype=np.int64)
    touched = np.array([1, 4, 10])
    untouched = np.setdiff1d(np.arange(11), touched)
    stamp[touched] = 7
    g_batch = g.copy()
    g_batch[untouched] = 0  # the gradient the batch really has
    W64 = W.astype(np.float64)
    expected = {
        LAZY: ref.adam_lazy(W64, m, v, g_batch, touched, 7, 1e-3, 0.9, 0.999, 1e-8),
        DENSE: ref.adam_dense(W64, m, v, g_batch, 7, 1e-3, 0.9, 0.999, 1e-8),
        UNTOUCHED: ref.adam_lazy(W64, m, v, np.zeros_like(g), untouched, 7, 1e-3, 0.9, 0.999, 1e-8),
    }
    for kernel in (adam_serial, adam_parallel):
        for mode, (eW, em, ev) in expected.items():
            args = [a.copy() for a in (W, m, v, g)]
            kernel(*args, stamp, 7, mode, adam_lr(1e-3, 0.9, 0.999, 7), 0.9, 0.999, 1e-8, 3)
            np.testing.assert_allclose(args[0], eW, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(args[1], em, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(args[2], ev, rtol=1e-5, atol=1e-9)
            kept = {LAZY: untouched, DENSE: [], UNTOUCHED: touched}[mode]  # rows this mode must not move
            for got, before in zip(args[:3], (W, m, v)):
                np.testing.assert_array_equal(got[kept], before[kept])
            np.testing.assert_array_equal(args[3][untouched], g[untouched])  # not read, not written
            if mode == UNTOUCHED:
                np.testing.assert_array_equal(args[3][touched], g[touched])
            else:
                assert not args[3][touched].any(), "the gradient rows read are consumed"


def _grouped_step(group_rows, grouped, n_chunks, seed=3, n_shared=0):
    """One grouped lazy-Adam step of a sparse output layer on random active sets (and n_shared
    shared-tail rows with their own gradient rows); returns (W, m, v, b, mb, vb, row_stamp)
    after it and the inputs."""
    rng = np.random.default_rng(seed)
    n_out, n_in, B, cap = 37, 6, 7, 9
    ids = np.stack([rng.choice(n_out, cap, replace=False) for _ in range(B)]).astype(np.int32)
    cnt = rng.integers(0, cap + 1, B).astype(np.int64)
    has_grad = (rng.random(B) > 0.2).astype(np.uint8)
    dz = rng.normal(size=(B, cap)).astype(np.float32)
    H = np.maximum(rng.normal(size=(B, n_in)), 0).astype(np.float32)
    W, m = rng.normal(size=(2, n_out, n_in)).astype(np.float32)
    v = np.abs(rng.normal(size=(n_out, n_in))).astype(np.float32) * 0.01
    b, mb = rng.normal(size=(2, n_out)).astype(np.float32)
    vb = np.abs(rng.normal(size=n_out)).astype(np.float32) * 0.01
    shared = SharedGrad(np.sort(rng.choice(n_out, n_shared, replace=False)).astype(np.int32),
                        rng.normal(size=(n_shared, n_in)).astype(np.float32), rng.normal(size=n_shared).astype(np.float32))
    row_stamp, bias_stamp = np.zeros(n_out, dtype=np.int64), np.zeros(n_out, dtype=np.int64)
    count = np.zeros(n_out, dtype=np.int32)
    n_pairs = B * cap + n_shared
    rows, n_t = np.zeros((n_chunks, n_pairs), dtype=np.int32), np.zeros(n_chunks, dtype=np.int64)
    ptr, pairs = np.zeros((n_chunks, n_pairs + 1), dtype=np.int64), np.zeros((n_chunks, n_pairs), dtype=np.int64)
    inputs = (ids, cnt, has_grad, dz, H, shared, W.copy(), m.copy(), v.copy(), b.copy(), mb.copy(), vb.copy())
    params = LayerParams(W, b, m, v, mb, vb, np.zeros((1, n_in), np.float32), np.zeros_like(b), row_stamp, bias_stamp)
    groups = RowGroups(rows, n_t, ptr, pairs)
    group_rows(ids, cnt, has_grad, shared, count, groups, params, 5, n_chunks)
    assert not count.any(), "the counters are restored to zeros"
    for c in range(n_chunks):  # each chunk lists only rows of its own range, ascending
        own = rows[c, :n_t[c]]
        assert np.all(np.diff(own) > 0)
        assert np.all((own >= c * n_out // n_chunks) & (own < (c + 1) * n_out // n_chunks))
    grouped(params, groups, dz, H, shared, np.zeros((n_chunks, n_in), dtype=np.float32), adam_lr(1e-2, 0.9, 0.999, 5),
            0.9, 0.999, 1e-8, n_chunks)
    return (W, m, v, b, mb, vb, row_stamp), inputs


@pytest.mark.parametrize("n_shared", [0, 11])
def test_grouped_adam_equals_reference_and_is_the_same_for_any_chunk_count(n_shared):
    """The output layer's grouped lazy Adam: the gradient it assembles (the sample pairs', plus
    each shared-tail row's own gradient row) and its update equal a numpy reference on the
    touched rows, leave the other rows untouched, and the parallel variant (each chunk owning
    a range of rows) gives the serial result bit for bit."""
    serial, (ids, cnt, has_grad, dz, H, shared, W0, m0, v0, b0, mb0, vb0) = _grouped_step(
        group_rows_serial, grouped_serial, 1, n_shared=n_shared)
    gW, gb = np.zeros(W0.shape), np.zeros(b0.shape)
    for s in range(ids.shape[0]):
        if has_grad[s]:
            a = ids[s, :cnt[s]]
            np.add.at(gW, a, dz[s, :cnt[s], None].astype(np.float64) * H[s].astype(np.float64))
            np.add.at(gb, a, dz[s, :cnt[s]].astype(np.float64))
    gW[shared.ids] += shared.gW
    gb[shared.ids] += shared.gb
    touched = np.unique(np.concatenate([ids[s, :cnt[s]] for s in range(ids.shape[0]) if has_grad[s]] + [shared.ids]))
    eW, em, ev = ref.adam_lazy(W0.astype(np.float64), m0, v0, gW, touched, 5, 1e-2, 0.9, 0.999, 1e-8)
    eb, emb, evb = ref.adam_lazy(b0.astype(np.float64), mb0, vb0, gb, touched, 5, 1e-2, 0.9, 0.999, 1e-8)
    for got, want in zip(serial[:6], (eW, em, ev, eb, emb, evb)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    untouched = np.setdiff1d(np.arange(W0.shape[0]), touched)
    assert np.array_equal(serial[0][untouched], W0[untouched]) and np.array_equal(serial[1][untouched], m0[untouched])
    assert set(np.flatnonzero(serial[6] == 5)) == set(touched)
    for n_chunks in (2, 3):
        parallel, _ = _grouped_step(group_rows_parallel, grouped_parallel, n_chunks, n_shared=n_shared)
        for got, want in zip(parallel, serial):
            assert np.array_equal(got, want), f"{n_chunks} chunks differ from the serial result"


def test_serial_runs_are_bit_identical():
    def run():
        cfg = NetworkConfig(n_features=N_FEAT, layers=(LayerConfig(HID), LayerConfig(N_OUT, sparsity=0.4, strategy="random")),
                            lr=1e-2)
        net = SlideNetwork(cfg, initial_weights=weights(), seed=5, threads=1)
        losses = [net.train_batch(*batch(seed=t)) for t in range(4)]
        return losses, net.weights()

    l1, w1 = run()
    l2, w2 = run()
    assert l1 == l2
    for (a, b), (c, d) in zip(w1, w2):
        assert np.array_equal(a, c) and np.array_equal(b, d)


def test_bad_inputs_raise_clear_errors():
    net = dense_net()
    x, y = batch()
    with pytest.raises(ValueError, match="rows"):
        net.train_batch(x, CSR.from_rows([[0]], N_OUT))
    with pytest.raises(ValueError, match="column ids"):
        net.train_batch(x, CSR.from_rows([[N_OUT]] * x.n_rows, N_OUT + 1))
    with pytest.raises(TypeError):
        net.train_batch(np.zeros((3, 3)), y)
    with pytest.raises(ValueError):
        LayerConfig(10, sparsity=0)
    with pytest.raises(ValueError, match="strategy"):
        LayerConfig(10, strategy="nope")


@pytest.mark.parametrize("strategy", ["topk", "vanilla", "random"])
def test_parallel_kernels_compute_what_the_serial_ones_do(strategy):
    """The race-free parts of a parallel (2-thread) step equal the serial step bit for bit:
    active sets, logits -> gradients of the output layer, losses, and the weights after the
    output layer's grouped Adam. (Numba's parfors once mis-compiled a kernel that unpacked a
    NamedTuple argument, leaving the serial variant right: this compares the two.)"""
    import numba

    out = LayerConfig(N_OUT, sparsity=0.4, strategy=strategy, hash_family="simhash", K=2, L=4, range_pow=4)
    cfg = NetworkConfig(n_features=N_FEAT, layers=(LayerConfig(HID), out), lr=1e-2)
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    nets = [SlideNetwork(cfg, initial_weights=weights(), seed=3, threads=t) for t in (1, 2)]
    x, y = batch(seed=4, rows=16)
    for net in nets:
        net._forward_backward(x, y)
    (s, p) = nets
    ls, lp = s._ws.layers[1], p._ws.layers[1]
    assert np.array_equal(ls.cnt[:16], lp.cnt[:16])
    for r in range(16):
        assert np.array_equal(ls.ids[r, :ls.cnt[r]], lp.ids[r, :lp.cnt[r]])
        assert np.array_equal(ls.vals[r, :ls.cnt[r]], lp.vals[r, :lp.cnt[r]])
    assert np.array_equal(s._ws.losses[:16], p._ws.losses[:16])
    for net in nets:
        net._update()
    assert np.array_equal(s.params[1].W, p.params[1].W) and np.array_equal(s.params[1].b, p.params[1].b)
