"""The TensorFlow baselines against a float64 numpy reference (one module: TF imports once).

Same data + same initial weights: loss, gradients and one Adam step of tf_cpu equal the
reference to float32 tolerance; sampled softmax with every class sampled equals the full
softmax; warm-up changes nothing; the tf_gpu job skips itself here; the memory guard refuses an
absurd model with the numbers; top-k equals numpy's argsort.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import numpy as np
import pytest

from harness.data.csr import CSR
from harness.models.base import JobSkipped, ModelContext
from harness.models.init import initial_weights

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                reason="tensorflow is not installed (pip install -e '.[cpu]')")

# ---- float64 numpy reference -------------------------------------------------------------


def ref_forward(weights, x_dense):
    """Activations [x, h1, ..., logits] in float64."""
    acts = [x_dense.astype(np.float64)]
    for i, (w, b) in enumerate(weights):
        z = acts[-1] @ w.astype(np.float64) + b
        acts.append(z if i == len(weights) - 1 else np.maximum(z, 0.0))
    return acts


def ref_loss_and_grads(weights, x: CSR, y: CSR):
    """Mean softmax cross-entropy with target y/|y| (rows without labels: 0) and its gradients."""
    acts = ref_forward(weights, x.to_dense())
    logits = acts[-1]
    n = logits.shape[0]
    target = y.to_dense().astype(np.float64)
    target[target != 0] = 1.0  # label values are ignored: multi-hot
    counts = target.sum(axis=1, keepdims=True)
    has = counts > 0
    target = np.where(has, target / np.maximum(counts, 1), 0.0)
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -(target * logp).sum() / n
    delta = (np.exp(logp) * has - target) / n  # d loss / d logits
    grads = []
    for i in range(len(weights) - 1, -1, -1):
        grads.append((acts[i].T @ delta, delta.sum(axis=0)))
        if i > 0:
            delta = (delta @ weights[i][0].astype(np.float64).T) * (acts[i] > 0)
    return loss, grads[::-1]


def ref_adam_step(params, grads, m, v, t, ctx: ModelContext):
    """TF's / the reference SLIDE code's Adam: eps added to sqrt(v), bias correction in lr_t."""
    lr_t = ctx.lr * np.sqrt(1 - ctx.beta2 ** t) / (1 - ctx.beta1 ** t)
    out = []
    for p, g, mi, vi in zip(params, grads, m, v):
        mi = mi + (g - mi) * (1 - ctx.beta1)
        vi = vi + (g * g - vi) * (1 - ctx.beta2)
        out.append((p - lr_t * mi / (np.sqrt(vi) + ctx.eps), mi, vi))
    return out


# ---- fixtures ---------------------------------------------------------------------------

N_FEATURES, N_LABELS, BATCH = 40, 37, 8  # 37: not a multiple of 8 on purpose


def make_ctx(**kw) -> ModelContext:
    base = dict(n_features=N_FEATURES, n_labels=N_LABELS, hidden=(16,), lr=1e-2, seed=3, threads=2,
                batch_size=BATCH, init_std=0.2, label_counts=np.arange(N_LABELS, 0, -1))  # as the job gives
    base.update(kw)
    return ModelContext(**base)


def make_batch(seed: int = 0, n_rows: int = BATCH, n_labels: int = N_LABELS):
    """Edge cases on purpose: a row with no labels, a row with no features, multi-label rows."""
    rng = np.random.default_rng(seed)
    xr, xv, yr = [], [], []
    for i in range(n_rows):
        k = 0 if i == 1 else int(rng.integers(1, 7))
        xr.append(sorted(rng.choice(N_FEATURES, k, replace=False).tolist()))
        xv.append(rng.uniform(0.1, 2.0, k).tolist())
        yr.append([] if i == 2 else sorted(rng.choice(n_labels, int(rng.integers(1, 4)), replace=False).tolist()))
    return CSR.from_rows(xr, N_FEATURES, xv), CSR.from_rows(yr, n_labels)


@pytest.fixture(scope="module")
def tfm():
    """The TF adapters module; TF's runtime starts once for the module with 2/2 threads."""
    from baselines.devices import configure_threads
    from harness.models import tf as tf_models

    configure_threads(2, 2)
    return tf_models


def flat(weights):
    return [a for wb in weights for a in wb]


# ---- same data, same init: loss, gradients, Adam step --------------------------------------


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("hidden,n_rows", [((16,), BATCH), ((16, 12), BATCH - 3)])
def test_loss_gradients_and_adam_step_match_numpy(tfm, jit, hidden, n_rows):
    ctx = make_ctx(hidden=hidden)
    x, y = make_batch(1, n_rows)  # n_rows < batch_size: the padded last batch
    w0 = initial_weights(ctx)
    model = tfm.TFSoftmaxModel(ctx, jit_compile=jit)
    loss, grads = model.net.loss_and_gradients(x, y)
    ref_loss, ref_grads = ref_loss_and_grads(w0, x, y)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    for g, r in zip(grads, flat(ref_grads)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)

    step_loss = model.train_step(x, y)
    assert step_loss == pytest.approx(ref_loss, rel=1e-5)
    ref = ref_adam_step(flat(w0), flat(ref_grads), [0.0] * len(grads), [0.0] * len(grads), 1, ctx)
    for got, (want, _, _) in zip(flat(model.net.get_weights()), ref):
        # first step moves each weight by ~lr * sign(g): compare at a fraction of lr
        np.testing.assert_allclose(got, want, rtol=0, atol=ctx.lr * 1e-3)
    model.close()


def test_two_adam_steps_track_numpy(tfm):
    ctx = make_ctx()
    xa, ya = make_batch(2)
    xb, yb = make_batch(3)
    model = tfm.TFSoftmaxModel(ctx, jit_compile=True)
    params = flat(initial_weights(ctx))
    m = [np.zeros_like(p, dtype=np.float64) for p in params]
    v = [np.zeros_like(p, dtype=np.float64) for p in params]
    for t, (x, y) in enumerate([(xa, ya), (xb, yb)], start=1):
        weights = [(params[i], params[i + 1]) for i in range(0, len(params), 2)]
        _, grads = ref_loss_and_grads(weights, x, y)
        params, m, v = map(list, zip(*ref_adam_step(params, flat(grads), m, v, t, ctx)))
        model.train_step(x, y)
    for got, want in zip(flat(model.net.get_weights()), params):
        np.testing.assert_allclose(got, want, rtol=0, atol=ctx.lr * 2e-3)
    got_m = [a for mv in model.net.optimizer_state() for a in mv][0::2]
    for a, b in zip(got_m, m):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)


def test_loss_falls_and_no_retracing(tfm):
    ctx = make_ctx(lr=3e-2)
    model = tfm.TFSoftmaxModel(ctx, jit_compile=True)
    batches = [make_batch(s) for s in range(4)]  # different nnz and label counts per batch
    model.warmup(*batches[0])
    first = [model.net.loss_and_gradients(x, y)[0] for x, y in batches]
    for _ in range(15):
        for x, y in batches:
            model.train_step(x, y)
    last = [model.net.loss_and_gradients(x, y)[0] for x, y in batches]
    assert np.mean(last) < 0.5 * np.mean(first)
    diag = model.diagnostics()
    assert diag["tf/traces"] == 1.0  # one trace for every batch shape (padded, None dims)
    assert diag["tf/input_shapes"] == 1.0  # warm-up reserved capacity: no XLA recompiles


# ---- sampled softmax -------------------------------------------------------------------


def test_sampled_with_every_class_is_the_full_softmax(tfm):
    ctx = make_ctx()
    x, y = make_batch(4)
    full = tfm.TFSoftmaxModel(ctx, jit_compile=False)
    sampled = tfm.TFSampledSoftmaxModel(ctx, n_sampled=N_LABELS)
    lf, gf = full.net.loss_and_gradients(x, y)
    ls, gs = sampled.net.loss_and_gradients(x, y)
    assert ls == pytest.approx(lf, rel=1e-5)  # the true labels are among the "sampled": hits removed
    gs[-2] = gs[-2].T  # sampled stores the output layer as (n_labels, hidden)
    for a, b in zip(gf, gs):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    full.train_step(x, y)
    sampled.train_step(x, y)
    for a, b in zip(flat(full.net.get_weights()), flat(sampled.net.get_weights())):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_sampled_loss_is_tf_sampled_softmax_loss(tfm, jit):
    """On rows with the same label count k, the per-row loss is tf.nn.sampled_softmax_loss with
    num_true = k: same log-Q correction, same removal of accidental hits."""
    import tensorflow as tf

    from baselines.sampled_softmax import Sample

    ctx = make_ctx()
    x, _ = make_batch(10)
    rng = np.random.default_rng(10)
    labels = np.stack([rng.choice(N_LABELS, 2, replace=False) for _ in range(BATCH)])
    y = CSR.from_rows(labels.tolist(), N_LABELS)
    model = tfm.TFSampledSoftmaxModel(ctx, n_sampled=9, jit_compile=jit)
    net = model.net
    # a fixed sample holding some true labels, so that accidental hits must be removed
    candidates = np.unique(np.concatenate([labels[:3, 0], rng.choice(N_LABELS, 9, replace=False)]))[:9]
    fixed = Sample(candidates.astype(np.int64), np.zeros(9, np.float32), 40)
    fixed = fixed._replace(expected_counts=net.sampler.expected_count(candidates, fixed))
    net.sampler.sample = lambda n: fixed
    loss, _ = net.loss_and_gradients(x, y)
    packed = net.pack(x, y)
    h = net._hidden(tf.constant(packed.feat_rows), tf.constant(packed.feat_ids),
                    tf.constant(packed.feat_vals), BATCH)
    true_counts = net.sampler.expected_count(labels.ravel(), fixed).reshape(BATCH, 2)
    want = tf.nn.sampled_softmax_loss(
        weights=net.variables[-2], biases=net.variables[-1], labels=labels.astype(np.int64), inputs=h,
        num_sampled=9, num_classes=N_LABELS, num_true=2,
        sampled_values=(fixed.candidates, true_counts, fixed.expected_counts), remove_accidental_hits=True)
    assert any(set(labels[r]) & set(candidates) for r in range(BATCH))
    assert loss == pytest.approx(float(tf.reduce_mean(want)), rel=1e-5)


def test_sampled_fraction_and_training(tfm):
    ctx = make_ctx(lr=3e-2)
    model = tfm.TFSampledSoftmaxModel(ctx, jit_compile=True)  # default: 10% of the labels, as the reference script
    assert model.n_sampled == round(0.1 * N_LABELS)
    assert model.describe()["n_sampled"] == str(model.n_sampled)
    batches = [make_batch(s) for s in range(4)]
    model.warmup(*batches[0])
    full = tfm.TFSoftmaxModel(ctx, jit_compile=False)
    before = np.mean([full.net.loss_and_gradients(x, y)[0] for x, y in batches])
    for _ in range(20):
        for x, y in batches:
            assert np.isfinite(model.train_step(x, y))
    full.net.variables[0].assign(model.net.variables[0])  # full-softmax loss of the trained net
    for i in range(1, len(full.net.variables)):
        src = model.net.variables[i]
        full.net.variables[i].assign(src.numpy().T if i == len(full.net.variables) - 2 else src)
    after = np.mean([full.net.loss_and_gradients(x, y)[0] for x, y in batches])
    assert after < before
    assert model.net.tracing_count() == 1 and len(model.net.shapes_seen) == 1


@pytest.mark.parametrize("jit", [False, True])
def test_lazy_adam_in_tf_sampled_equals_the_reference_on_touched_rows(tfm, jit):
    """train.adam=lazy: tf_sampled updates the first layer's rows of the batch's features and the
    output rows of the sampled classes and the labels (Adam with the global step's bias
    correction, as SLIDE's lazy Adam), b1 where its gradient is non-zero, and leaves every other
    row's weights and moments bit-identical."""
    import tests.reference as ref

    ctx = make_ctx(lr=3e-2, adam="lazy")
    model = tfm.TFSampledSoftmaxModel(ctx, jit_compile=jit)
    net = model.net
    assert net.adam_mode == "lazy" and model.describe()["optimizer"] == "adam_lazy"
    model.warmup(*make_batch(0))
    for t in (1, 2):
        x, y = make_batch(t)
        before = [v.numpy().copy() for v in net.variables]
        moments = [(m.numpy().copy(), v.numpy().copy()) for m, v in net.moments]
        _, grads = net.loss_and_gradients(x, y)  # dense gradients for the sample the step will draw
        state = net.sampler.rng.bit_generator.state
        candidates = net.sampler.sample(net.n_sampled).candidates
        net.sampler.rng.bit_generator.state = state
        model.train_step(x, y)
        touched = [np.unique(x.indices[x.data != 0]), np.flatnonzero(grads[1]),  # w1 rows, b1 entries
                   np.union1d(candidates, y.indices), np.union1d(candidates, y.indices)]  # w_out rows, b_out
        for i, var in enumerate(net.variables):
            (m0, v0), rows = moments[i], touched[i]
            want_w, want_m, want_v = ref.adam_lazy(before[i].astype(np.float64), m0, v0, grads[i].astype(np.float64),
                                                   rows, t, 3e-2, 0.9, 0.999, 1e-8)
            got_w, (got_m, got_v) = var.numpy(), (net.moments[i][0].numpy(), net.moments[i][1].numpy())
            np.testing.assert_allclose(got_w[rows], want_w[rows], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got_m[rows], want_m[rows], rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(got_v[rows], want_v[rows], rtol=1e-5, atol=1e-9)
            rest = np.setdiff1d(np.arange(len(got_w)), rows)
            assert len(rest) > 0 or i == 1  # untouched rows exist (b1: every unit may get a gradient)
            assert np.array_equal(got_w[rest], before[i][rest])  # bit-identical
            assert np.array_equal(got_m[rest], m0[rest]) and np.array_equal(got_v[rest], v0[rest])
    assert net.tracing_count() == 1


def test_numpy_sampler_follows_tensorflows_sampler(tfm):
    """Same law as TF's unique log-uniform sampler: per-id inclusion frequencies and expected
    counts agree (TF's expected count is an approximation of the inclusion probability; we
    reproduce TF's formula, not the exact probability)."""
    import tensorflow as tf

    from baselines.sampled_softmax import LogUniformSampler

    n_classes, n_sampled, reps = 50, 10, 2000
    sampler = LogUniformSampler(n_classes, seed=0)
    assert sampler.probability(np.arange(n_classes)).sum() == pytest.approx(1.0)
    tf.random.set_seed(0)
    ours, theirs = np.zeros(n_classes), np.zeros(n_classes)
    count_ours, count_theirs = np.zeros(n_classes), np.zeros(n_classes)
    for _ in range(reps):
        s = sampler.sample(n_sampled)
        assert len(np.unique(s.candidates)) == n_sampled
        ours[s.candidates] += 1
        count_ours[s.candidates] += s.expected_counts
        t = tf.random.log_uniform_candidate_sampler(tf.zeros([1, 1], tf.int64), 1, n_sampled, True, n_classes)
        ids = t.sampled_candidates.numpy()
        theirs[ids] += 1
        count_theirs[ids] += t.sampled_expected_count.numpy()
    np.testing.assert_allclose(ours / reps, theirs / reps, atol=0.05)  # both streams seeded: deterministic
    head = slice(0, 10)  # ids drawn often enough for a stable mean
    np.testing.assert_allclose(count_ours[head] / ours[head], count_theirs[head] / theirs[head], atol=0.03)
    assert ours[0] > ours[-1]  # Zipfian: small ids are drawn more often


@pytest.mark.slow
def test_unigram_sampler_follows_tensorflows_fixed_unigram_sampler(tfm):
    """Same law as TF's unique fixed_unigram_candidate_sampler over (count + 1) weights."""
    import tensorflow as tf

    from baselines.sampled_softmax import make_sampler

    counts = np.array([40, 0, 7, 100, 3, 0, 25, 1, 60, 12] * 3)
    n_classes, n_sampled, reps = len(counts), 6, 3000
    sampler = make_sampler("unigram", n_classes, seed=0, label_counts=counts)
    assert sampler.probability(np.arange(n_classes)).sum() == pytest.approx(1.0)
    tf.random.set_seed(0)
    ours, theirs = np.zeros(n_classes), np.zeros(n_classes)
    for _ in range(reps):
        s = sampler.sample(n_sampled)
        assert len(np.unique(s.candidates)) == n_sampled
        ours[s.candidates] += 1
        t = tf.random.fixed_unigram_candidate_sampler(tf.zeros([1, 1], tf.int64), 1, n_sampled, True, n_classes,
                                                      unigrams=(counts + 1.0).tolist())
        theirs[t.sampled_candidates.numpy()] += 1
    np.testing.assert_allclose(ours / reps, theirs / reps, atol=0.05)
    assert ours[3] > ours[1]  # the most frequent label is drawn far more often than an unseen one


def test_log_uniform_by_frequency_ranks_labels_by_training_count(tfm):
    from baselines.sampled_softmax import make_sampler

    counts = np.array([5, 90, 0, 30, 30, 1])
    sampler = make_sampler("log_uniform_by_frequency", len(counts), seed=0, label_counts=counts)
    p = sampler.probability(np.arange(len(counts)))
    # ranks by falling count, ties by id: label 1, then 3, 4, then 0, 5, 2
    assert list(np.argsort(-p, kind="stable")) == [1, 3, 4, 0, 5, 2] and p.sum() == pytest.approx(1.0)
    drawn = np.zeros(len(counts))
    for _ in range(2000):
        drawn[sampler.sample(2).candidates] += 1
    assert drawn[1] > drawn[0] > drawn[2]
    with pytest.raises(ValueError, match="training label counts"):
        make_sampler("unigram", len(counts), seed=0)


# ---- warm-up, devices, memory, prediction --------------------------------------------------


@pytest.mark.parametrize("kind", ["softmax_xla", "sampled"])
def test_warmup_changes_no_state(tfm, kind):
    ctx = make_ctx()
    if kind == "sampled":
        model = tfm.TFSampledSoftmaxModel(ctx, n_sampled=5)
        rng_state = model.net.sampler.rng.bit_generator.state
    else:
        model = tfm.TFSoftmaxModel(ctx, jit_compile=True)
    x, y = make_batch(5)
    model.train_step(x, y)  # non-zero moments, step 1
    weights, moments = model.net.get_weights(), model.net.optimizer_state()
    step = model.net.step
    if kind == "sampled":
        rng_state = model.net.sampler.rng.bit_generator.state
    model.warmup(*make_batch(6))
    assert model.net.step == step
    for a, b in zip(flat(weights) + flat(moments), flat(model.net.get_weights()) + flat(model.net.optimizer_state())):
        np.testing.assert_array_equal(a, b)
    if kind == "sampled":
        assert model.net.sampler.rng.bit_generator.state == rng_state


@pytest.mark.parametrize("kind", ["softmax", "sampled_lazy"])
def test_state_dict_restores_a_model_that_continues_identically(tfm, kind):
    """What a job checkpoint holds of a TF model (harness.job_state): weights, Adam
    moments and step, and the sampler's random stream; restored into a fresh model, the next
    steps give the same losses and weights as the model that never stopped."""
    ctx = make_ctx(adam="lazy")
    build = (lambda: tfm.TFSampledSoftmaxModel(ctx, n_sampled=5)) if kind == "sampled_lazy" else \
        (lambda: tfm.TFSoftmaxModel(ctx, jit_compile=False))
    model = build()
    for seed in (1, 2):
        model.train_step(*make_batch(seed))
    state = {k: np.array(v) for k, v in model.state_dict().items()}
    later = [model.train_step(*make_batch(seed)) for seed in (3, 4)]
    restored = build()
    restored.load_state_dict(state)
    assert restored.net.step == 2
    assert [restored.train_step(*make_batch(seed)) for seed in (3, 4)] == later
    for a, b in zip(flat(model.net.get_weights()), flat(restored.net.get_weights())):
        np.testing.assert_array_equal(a, b)
    state["w0"] = state["w0"][:, :3]
    with pytest.raises(ValueError, match="w0: shape"):
        restored.load_state_dict(state)


def test_gpu_job_skips_without_gpu(tfm):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible: the skip path cannot be exercised here")
    with pytest.raises(JobSkipped, match="no GPU visible to TensorFlow"):
        tfm.TFSoftmaxModel(make_ctx(), device="gpu")


def test_memory_guard_refuses_absurd_model_with_numbers(tfm):
    from baselines.memory import InsufficientMemoryError, check_fits, estimate

    ctx = make_ctx(n_features=10_000_000, n_labels=100_000_000, hidden=(1024,), batch_size=1024)
    with pytest.raises(InsufficientMemoryError, match=r"needs ~\d+\.\d+ GiB .* only \d+\.\d+ GiB"):
        tfm.TFSoftmaxModel(ctx)
    est = estimate((1000, 128, 1000), batch_size=128)
    check_fits(est, "small", available=10 * est.total)  # fits: no error
    with pytest.raises(MemoryError, match="params"):
        check_fits(est, "small", available=est.total // 2)
    # the estimate's arithmetic: params, same-size gradients, two Adam moments
    n_params = 1000 * 128 + 128 + 128 * 1000 + 1000
    assert est.params == est.gradients == 4 * n_params and est.adam == 8 * n_params


@pytest.mark.parametrize("kind", ["softmax", "sampled"])
def test_predict_topk_matches_numpy_argsort(tfm, kind, monkeypatch):
    """Both prediction paths, on 11 rows in chunks of 4 (3 chunks, the last one padded): the
    harness's (TF's hidden activations in HIDDEN_CHUNK rows, then slide_core's dense_topk)
    and the network's own TF top-k (eval_chunk rows)."""
    import baselines.dense_softmax as dense_softmax

    monkeypatch.setattr(dense_softmax, "HIDDEN_CHUNK", 4)  # read when predict_hidden first runs
    ctx = make_ctx(init_std=0.5)
    x, _ = make_batch(7, n_rows=11)
    if kind == "sampled":
        model = tfm.TFSampledSoftmaxModel(ctx, n_sampled=7, eval_chunk=4)
    else:
        model = tfm.TFSoftmaxModel(ctx, jit_compile=True, eval_chunk=4)
    logits = ref_forward(initial_weights(ctx), x.to_dense())[-1]
    got = model.predict_topk(x, 5)
    assert got.dtype == np.int32 and got.shape == (11, 5)
    want = np.argsort(-logits, axis=1, kind="stable")[:, :5]
    # row 1 scores every label equally (no features, biases 0): ties go to the lower label id,
    # as in a stable sort, so it is compared too
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(model.net.predict_topk(x, 5), want)
    view = x.row_slice(3, 9)  # views keep working (indptr rebased)
    np.testing.assert_array_equal(model.predict_topk(view, 5), got[3:9])


def test_out_of_range_ids_fail_loudly(tfm):
    model = tfm.TFSoftmaxModel(make_ctx(), jit_compile=True)  # XLA would clamp them silently
    x, y = make_batch(9)
    bad_y = y._replace(indices=np.where(y.indices == y.indices[0], N_LABELS, y.indices).astype(np.int32))
    with pytest.raises(ValueError, match="label ids"):
        model.train_step(x, bad_y)
    bad_x = x._replace(indices=np.full_like(x.indices, N_FEATURES))
    with pytest.raises(ValueError, match="feature ids"):
        model.predict_topk(bad_x, 5)


def test_describe_tags(tfm):
    model = tfm.TFSoftmaxModel(make_ctx(), jit_compile=True)
    tags = model.describe()
    assert tags["device"] == "cpu" and tags["jit_compile"] == "true"
    assert tags["intra_op_threads"] == "2" and tags["inter_op_threads"] == "2"
    assert tags["onednn"] in ("on", "off") and tags["lib.tensorflow"]


def test_hydra_configs_instantiate(tfm, monkeypatch):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from harness.config import register_configs
    from harness.job import check_model_params
    from tests.conftest import ROOT

    register_configs()
    monkeypatch.setenv("SLIDE_BENCH_ROOT", str(ROOT))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        models = {name: compose("config", overrides=[f"model={name}"]).model
                  for name in ["tf_cpu", "tf_sampled", "tf_sampled_0p5", "tf_sampled_20", "tf_gpu"]}
    GlobalHydra.instance().clear()
    for name, cfg in models.items():
        assert cfg.name == name and cfg.isolate is True and cfg.huge_pages is True
        if name == "tf_gpu":
            continue
        assert cfg.env["CUDA_VISIBLE_DEVICES"] == "-1"
        check_model_params(cfg)
        model = instantiate(cfg.params, _partial_=True)(ctx=make_ctx())  # as harness.job does
        assert model.describe()["device"] == cfg.device
    assert models["tf_sampled_0p5"].params.sampled_fraction == 0.005
    cfg = models["tf_gpu"]
    assert cfg.device == "gpu" and "CUDA_VISIBLE_DEVICES" not in cfg.env
    with pytest.raises(JobSkipped):
        instantiate(cfg.params, _partial_=True)(ctx=make_ctx())


def test_importing_the_adapters_does_not_import_tensorflow():
    code = ("import sys, harness.models.tf, baselines, baselines.memory, baselines.padding; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_pack_batch_pads_and_weights():
    from baselines.padding import next_capacity, pack_batch

    x, y = make_batch(8, n_rows=5)
    p = pack_batch(x, y, n_rows_padded=8, cap_x=64, cap_y=64)
    assert p.row_mask.tolist() == [1, 1, 0, 1, 1, 0, 0, 0]
    counts = np.diff(y.indptr)
    n_pairs = int(counts.sum())
    np.testing.assert_allclose(p.label_weights[:n_pairs], 1.0 / counts[p.label_rows[:n_pairs]])
    assert not p.label_weights[n_pairs:].any() and not p.feat_vals[x.nnz:].any()
    assert next_capacity(65) == 128 and next_capacity(10, 256) == 256
    with pytest.raises(ValueError, match="capacity"):
        pack_batch(x, y, 8, cap_x=2, cap_y=64)
