"""slide_core.inference.dense_topk: equals a stable full sort (ties by lower label id) for
every block shape and thread count, including ties across threads, k = n_labels, n_labels not
a multiple of the block, empty input; and its argument checks."""
import numpy as np
import pytest

from slide_core.inference import dense_topk
from tests import reference as ref


def _problem(n=37, d=9, n_labels=53, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    H = rng.standard_normal((n, d)).astype(np.float32)
    W = rng.standard_normal((n_labels, d)).astype(np.float32)
    b = rng.normal(0, 0.5, n_labels).astype(np.float32)
    if ties:  # integer-valued scores (exact in float32): many ties, also across label blocks
        H = rng.integers(-2, 3, (n, d)).astype(np.float32)
        W = rng.integers(-1, 2, (n_labels, d)).astype(np.float32)
        b = np.zeros(n_labels, dtype=np.float32)
    return H, W, b


def _expected(H, W, b, k):
    scores = H.astype(np.float64) @ W.astype(np.float64).T + b
    return ref.topk_dense(scores, k)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("threads,bp,bl", [(1, 128, 2048), (1, 8, 7), (2, 8, 7), (3, 5, 4), (2, 128, 2048)])
def test_dense_topk_equals_stable_sort(ties, threads, bp, bl):
    H, W, b = _problem(ties=ties)
    for k in (1, 5):
        got = dense_topk(H, W, b, k, threads=threads, block_points=bp, block_labels=bl)
        assert got.dtype == np.int32 and got.shape == (len(H), k)
        np.testing.assert_array_equal(got, _expected(H, W, b, k))


def test_dense_topk_k_equals_n_labels_and_small_blocks_per_thread():
    H, W, b = _problem(n=6, n_labels=11, ties=True)
    # 4 threads over 11 labels in blocks of 3: some threads hold fewer than k labels
    got = dense_topk(H, W, b, 11, threads=4, block_points=4, block_labels=3)
    np.testing.assert_array_equal(got, _expected(H, W, b, 11))


def test_dense_topk_empty_and_non_contiguous_hidden():
    H, W, b = _problem()
    assert dense_topk(H[:0], W, b, 3).shape == (0, 3)
    Hf = np.asfortranarray(H)
    np.testing.assert_array_equal(dense_topk(Hf, W, b, 3, threads=2), _expected(H, W, b, 3))


def test_dense_topk_argument_checks():
    H, W, b = _problem()
    with pytest.raises(TypeError, match="float32"):
        dense_topk(H.astype(np.float64), W, b, 3)
    with pytest.raises(ValueError, match="C-contiguous"):
        dense_topk(H, np.asfortranarray(W), b, 3)
    with pytest.raises(ValueError, match="columns"):
        dense_topk(H[:, :4], W, b, 3)
    with pytest.raises(ValueError, match="b_out"):
        dense_topk(H, W, b[:-1], 3)
    with pytest.raises(ValueError, match="k must be"):
        dense_topk(H, W, b, 0)
    with pytest.raises(ValueError, match="k must be"):
        dense_topk(H, W, b, W.shape[0] + 1)
    with pytest.raises(ValueError, match="threads"):
        dense_topk(H, W, b, 3, threads=0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["softmax", "sampled"])
def test_tf_models_rank_with_dense_topk_like_a_stable_sort(kind):
    """The TF baselines' predict_topk (TF hidden activations + dense_topk) equals numpy's stable
    argsort on every row, including a row with no features whose labels all tie (zero biases)."""
    pytest.importorskip("tensorflow")
    from baselines.devices import configure_threads
    from harness.data.csr import CSR
    from harness.models import tf as tfm
    from harness.models.base import ModelContext
    from harness.models.init import initial_weights

    configure_threads(2, 2)  # as tests/test_tf_baselines.py: whichever module starts TF first
    ctx = ModelContext(n_features=30, n_labels=23, hidden=(16,), lr=1e-2, seed=3, threads=2, batch_size=8,
                       label_counts=np.arange(23, 0, -1),
                       init_std=0.5)
    rng = np.random.default_rng(1)
    rows = [[] if i == 1 else sorted(rng.choice(30, int(rng.integers(1, 6)), replace=False).tolist())
            for i in range(11)]
    x = CSR.from_rows(rows, 30)
    x = x._replace(data=rng.uniform(0.1, 2.0, len(x.data)).astype(np.float32))
    model = (tfm.TFSampledSoftmaxModel(ctx, n_sampled=7) if kind == "sampled"
             else tfm.TFSoftmaxModel(ctx, jit_compile=False))
    acts = x.to_dense().astype(np.float64)
    weights = initial_weights(ctx)
    for i, (w, b) in enumerate(weights):
        acts = acts @ w.astype(np.float64) + b
        if i < len(weights) - 1:
            acts = np.maximum(acts, 0.0)
    got = model.predict_topk(x, 5)
    assert got.dtype == np.int32 and got.shape == (11, 5)
    np.testing.assert_array_equal(got, ref.topk_dense(acts, 5))
    np.testing.assert_array_equal(got[1], np.arange(5))  # all tie: lowest ids first
    np.testing.assert_array_equal(model.predict_topk(x.row_slice(3, 9), 5), got[3:9])


def test_tf_output_weights_layout_across_transpose_blocks():
    """output_weights() = the output kernel transposed to (n_labels, d), C-contiguous, also
    when n_labels spans several of its 1024-label copy blocks (and for the sampled net, which
    stores the kernel transposed already)."""
    pytest.importorskip("tensorflow")
    from baselines.devices import configure_threads
    from harness.models import tf as tfm
    from harness.models.base import ModelContext
    from harness.models.init import initial_weights

    configure_threads(2, 2)
    ctx = ModelContext(n_features=10, n_labels=2100, hidden=(4,), lr=1e-2, seed=1, threads=2, batch_size=8,
                       label_counts=np.ones(2100, dtype=np.int64),
                       init_std=0.5)
    want_w, want_b = initial_weights(ctx)[-1]
    for model in (tfm.TFSoftmaxModel(ctx, jit_compile=False), tfm.TFSampledSoftmaxModel(ctx, n_sampled=7)):
        W, b = model.net.output_weights()
        assert W.flags.c_contiguous and W.dtype == np.float32 and W.shape == (2100, 4)
        np.testing.assert_array_equal(W, want_w.T)
        np.testing.assert_array_equal(b, want_b)
