"""Clock, precision@k, tracker and the numpy_dense reference model."""
from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from harness.clock import TrainClock
from harness.data.csr import CSR
from harness.evaluation import Evaluator, precision_at_k
from harness.models.base import Model, ModelContext
from harness.models.numpy_dense import NumpyDenseModel
from harness.tracking import Tracker, flatten


class FakeTimer:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_clock_counts_only_inside_blocks():
    timer = FakeTimer()
    clock = TrainClock(timer)
    timer.now = 5.0  # outside: not counted
    with clock:
        timer.now = 7.5
    timer.now = 100.0  # evaluation, outside
    with clock:
        timer.now = 101.0
        assert clock.seconds == pytest.approx(3.5)  # includes the running block
    assert clock.seconds == pytest.approx(3.5)
    with pytest.raises(RuntimeError):
        with clock:
            with clock:
                pass


def reference_precision(topk, label_rows, k):
    return np.mean([len(set(t[:k]) & set(labels)) / k for t, labels in zip(topk, label_rows)])


def test_precision_at_k_matches_reference():
    rng = np.random.default_rng(0)
    n, n_labels = 300, 40
    label_rows = [list(rng.choice(n_labels, size=rng.integers(0, 6), replace=False)) for _ in range(n)]
    y = CSR.from_rows(label_rows, n_labels)
    topk = np.stack([rng.permutation(n_labels)[:5] for _ in range(n)]).astype(np.int32)
    got = precision_at_k(topk, y)
    for k in (1, 3, 5):
        assert got[k] == pytest.approx(reference_precision(topk, label_rows, k))


def test_missing_predictions_never_count_as_hits():
    y = CSR.from_rows([[4], [0, 2]], 5)
    # row 1's "-1" must not be read as row 0's label 4 (keys row*n_cols + label would collide)
    topk = np.array([[1, 0], [-1, 3]], dtype=np.int32)
    assert precision_at_k(topk, y, ks=(1, 2)) == {1: 0.0, 2: 0.0}


def test_evaluator_chunks_agree_and_subset_is_used():
    rng = np.random.default_rng(1)
    n, n_labels = 250, 30
    label_rows = [list(rng.choice(n_labels, size=rng.integers(1, 4), replace=False)) for _ in range(n)]
    y = CSR.from_rows(label_rows, n_labels)
    x = CSR.from_rows([[i % 7] for i in range(n)], 7)
    scores = rng.standard_normal((n, n_labels))

    def predict(xb, k):  # scores looked up by the row's position, via its feature = row id
        rows = predict.rows[predict.offset:predict.offset + xb.n_rows]
        predict.offset += xb.n_rows
        return np.argsort(-scores[rows], axis=1)[:, :k]

    expected = precision_at_k(np.argsort(-scores, axis=1)[:, :5], y)
    for chunk in (1, 17, 1000):
        predict.rows, predict.offset = np.arange(n), 0
        got = Evaluator(x, y, np.arange(n), chunk_rows=chunk).evaluate_full(predict)
        assert got["p_at_1"] == pytest.approx(expected[1]) and got["p_at_5"] == pytest.approx(expected[5])
    subset = np.array([3, 10, 200])
    predict.rows, predict.offset = subset, 0
    got = Evaluator(x, y, subset).evaluate_subset(predict)
    want = precision_at_k(np.argsort(-scores[subset], axis=1)[:, :5], y.take_rows(subset))
    assert got["p_at_3"] == pytest.approx(want[3])


def test_tracker_buffers_and_reads_back(mlflow_uri):
    tracker = Tracker.start(mlflow_uri, "unit", run_name="r", tags={"model": "m"}, flush_every_s=1e9)
    tracker.log_params(flatten({"train": {"lr": 0.1, "threads": 2}, "seed": 3}))
    for step in range(25):
        tracker.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
    client = MlflowClient(tracking_uri=mlflow_uri)
    assert client.get_metric_history(tracker.run_id, "train/loss") == []  # still buffered
    tracker.end("FINISHED", {"status": "finished"})
    history = client.get_metric_history(tracker.run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(25))
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.lr"] == "0.1" and run.data.tags["status"] == "finished"
    tracker.end("FAILED")  # a second end changes nothing
    assert client.get_run(tracker.run_id).info.status == "FINISHED"


def tiny_problem(seed=0, n=12, n_features=9, n_labels=11):
    rng = np.random.default_rng(seed)
    rows = [list(rng.choice(n_features, size=rng.integers(0, 4), replace=False)) for _ in range(n)]
    vals = [list(rng.random(len(r)) + 0.5) for r in rows]
    labels = [list(rng.choice(n_labels, size=rng.integers(0, 3), replace=False)) for _ in range(n)]
    return CSR.from_rows(rows, n_features, vals), CSR.from_rows(labels, n_labels)


def test_numpy_dense_gradients_match_finite_differences():
    x, y = tiny_problem()
    ctx = ModelContext(n_features=9, n_labels=11, hidden=(6, 5), lr=1e-3, seed=1, init_std=0.5)
    model = NumpyDenseModel(ctx)
    model.weights = [w.astype(np.float64) for w in model.weights]
    model.biases = [b.astype(np.float64) + 0.1 for b in model.biases]  # keep ReLUs off their kink
    _, grads = model.loss_and_grads(x, y)
    params = model.weights + model.biases
    rng = np.random.default_rng(0)
    for p, g in zip(params, grads):
        for _ in range(6):
            idx = tuple(rng.integers(0, s) for s in p.shape)
            old = p[idx]
            p[idx] = old + 1e-6
            up, _ = model.loss_and_grads(x, y)
            p[idx] = old - 1e-6
            down, _ = model.loss_and_grads(x, y)
            p[idx] = old
            assert (up - down) / 2e-6 == pytest.approx(g[idx], rel=1e-4, abs=1e-8)
    model.close()


def test_numpy_dense_learns_and_predicts_sorted_topk():
    rng = np.random.default_rng(2)
    n_features = n_labels = 20
    rows = [[int(c)] for c in rng.integers(0, n_features, size=400)]
    x = CSR.from_rows(rows, n_features)
    y = CSR.from_rows(rows, n_labels)  # label = feature: learnable exactly
    model = NumpyDenseModel(ModelContext(n_features, n_labels, hidden=(16,), lr=0.05, seed=0))
    assert isinstance(model, Model)
    first = model.train_step(x, y)
    for _ in range(60):
        last = model.train_step(x, y)
    assert last < first / 3
    top = model.predict_topk(x, 5)
    assert top.dtype == np.int32 and top.shape == (400, 5)
    assert precision_at_k(top, y)[1] > 0.95
    logits = model._forward(x)[-1]
    assert np.all(np.diff(np.take_along_axis(logits, top, axis=1), axis=1) <= 0)  # best first
    model.close()


@pytest.mark.parametrize("adam", ["lazy", "dense"])
def test_numpy_dense_adam_modes_match_the_reference(adam):
    """lazy: only the first layer's rows of the batch's features change (the full softmax touches
    every output neuron); dense: every row, as the reference Adam."""
    import tests.reference as ref

    x, y = tiny_problem(n=3)
    ctx = ModelContext(n_features=9, n_labels=11, hidden=(6,), lr=1e-2, seed=1, init_std=0.5, adam=adam)
    model = NumpyDenseModel(ctx)
    before = [p.copy() for p in model.weights + model.biases]
    _, grads = model.loss_and_grads(x, y)
    model.train_step(x, y)
    features = np.unique(x.indices)
    assert len(features) < 9  # some input rows are untouched
    for i, (p, b, g) in enumerate(zip(model.weights + model.biases, before, grads)):
        rows = features if (adam == "lazy" and i == 0) else np.arange(len(p))
        want, _, _ = ref.adam_lazy(b.astype(np.float64), np.zeros(b.shape), np.zeros(b.shape), g.astype(np.float64),
                                   rows, 1, 1e-2, 0.9, 0.999, 1e-8)
        if adam == "lazy" and i == len(model.weights) + 0:  # b1: entries with a zero gradient stay
            want = np.where(g == 0, b, want)
        np.testing.assert_allclose(p, want, rtol=1e-5, atol=1e-6)
        if adam == "lazy" and i == 0:
            rest = np.setdiff1d(np.arange(9), features)
            assert np.array_equal(p[rest], b[rest])


@pytest.mark.parametrize("adam", ["lazy", "dense"])
def test_numpy_dense_lazy_adam_leaves_rows_a_later_batch_does_not_touch(adam):
    """Two steps on batches with different features: in lazy mode an input row the second
    batch does not touch keeps the weights and moments the first step gave it (its moments are
    not decayed, its weights not moved by the first step's momentum); in dense mode it moves."""
    x1 = CSR.from_rows([[0, 1], [2]], 9, [[1.0, 0.5], [0.7]])
    x2 = CSR.from_rows([[3, 4], [5]], 9, [[1.0, 0.5], [0.7]])
    y = CSR.from_rows([[1], [2, 3]], 11)
    ctx = ModelContext(n_features=9, n_labels=11, hidden=(6,), lr=1e-2, seed=1, init_std=0.5, adam=adam)
    model = NumpyDenseModel(ctx)
    model.train_step(x1, y)
    W, m, v = (a[0].copy() for a in (model.weights, model.adam.m, model.adam.v))
    model.train_step(x2, y)
    first_only = [0, 1, 2]
    unchanged = [np.array_equal(a[0][first_only], b[first_only])
                 for a, b in ((model.weights, W), (model.adam.m, m), (model.adam.v, v))]
    assert all(unchanged) if adam == "lazy" else not any(unchanged)
    assert not np.array_equal(model.weights[0][[3, 4, 5]], W[[3, 4, 5]])  # the second batch's rows moved


# -- progress ------------------------------------------------------------------------------------
def test_progress_prints_plain_lines_when_not_on_a_terminal():
    import io

    from harness.progress import JobProgress

    log_file = io.StringIO()  # a SLURM log file: no terminal
    progress = JobProgress(total=100, label="slide/x/0", stream=log_file, plain_every_s=3600)
    for i in range(50):
        progress.update(1, p_at_1=0.5 if i == 10 else None, clock_s=1.0 + i, samples=128 * (i + 1))
    assert log_file.getvalue() == ""  # nothing before the interval: no redraws
    progress.close()
    (line,) = log_file.getvalue().splitlines()
    assert line.startswith("slide/x/0: 50/100 it (50%)") and "ETA" in line and "P@1 0.500" in line
    assert "\r" not in log_file.getvalue()

    every = io.StringIO()
    progress = JobProgress(total=10, label="j", stream=every, plain_every_s=0.0)
    for _ in range(3):
        progress.update(1, p_at_1=None, clock_s=1.0, samples=1)
    progress.close()
    assert len(every.getvalue().splitlines()) == 4


def test_progress_draws_a_bar_on_a_terminal():
    import io

    from harness.progress import JobProgress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    progress = JobProgress(total=10, label="j", stream=screen, plain_every_s=0.0)
    progress.update(5, p_at_1=None, clock_s=1.0, samples=1)
    progress.close()
    assert "\r" in screen.getvalue() and "ETA" not in screen.getvalue()
