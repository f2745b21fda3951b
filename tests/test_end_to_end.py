"""Real multiruns of run.py on tiny data, read back from MLflow as a user would."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, job_runs, run_cli, sweep_runs

pytestmark = pytest.mark.slow

TINY = ["dataset=synthetic_tiny", "train.eval_every=5", "train.log_every=2", "train.eval_samples=100",
        "train.epochs=2"]


def runs_by_name(uri: str, experiment: str = "slide-bench") -> dict:
    """The jobs' runs (not the sweeps' parent runs) by run name."""
    return {r.info.run_name: r for r in job_runs(MlflowClient(tracking_uri=uri), experiment)}


def test_sweep_tracks_learning_curves_and_survives_a_failing_job(tmp_path):
    # job 0 trains; job 1 diverges (lr 1e30 -> non-finite loss) and must end FAILED, and the
    # sweep must still have run both and exit non-zero.
    result = run_cli(["-m", "model=numpy_dense", "train.lr=1e-2,1e30", *TINY], tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    runs = runs_by_name(uri)
    assert set(runs) == {"numpy_dense/synthetic_tiny/0", "numpy_dense/synthetic_tiny/1"}
    good, bad = runs["numpy_dense/synthetic_tiny/0"], runs["numpy_dense/synthetic_tiny/1"]
    assert good.info.status == "FINISHED" and good.data.tags["status"] == "finished"
    assert bad.info.status == "FAILED" and "FloatingPointError" in bad.data.tags["failure"]
    traceback_file = client.download_artifacts(bad.info.run_id, "error/traceback.txt", str(tmp_path))
    assert "Traceback" in open(traceback_file).read()

    curve = client.get_metric_history(good.info.run_id, "eval/p_at_1")
    clock = {m.step: m.value for m in client.get_metric_history(good.info.run_id, "time/train_s")}
    steps = sorted(m.step for m in curve)
    assert steps[0] == 0 and len(steps) >= 3
    assert all(s in clock for s in steps)  # P@1 joins the training clock on step
    assert max(m.value for m in curve) > curve[0].value  # it learned
    metrics = good.data.metrics
    for key in ("final/p_at_1", "final/p_at_5", "final/train_s", "mem/peak_rss_mb", "time/compile_s"):
        assert key in metrics
    params, tags = good.data.params, good.data.tags
    assert params["train.lr"] == "0.01" and params["model.name"] == "numpy_dense"
    assert int(params["data.n_labels"]) > 0
    for tag in ("model", "dataset", "device", "threads", "cpu_model", "git_rev", "sweep_id", "lib.numpy"):
        assert tag in tags
    assert tags["sweep_id"] == bad.data.tags["sweep_id"]


def test_misspelt_model_option_fails_the_job_not_the_sweep(tmp_path):
    result = run_cli(["-m", "model=numpy_dense", "+model.params.learning_rat=1", *TINY], tmp_path)
    assert result.returncode == 1
    (run,) = runs_by_name(f"sqlite:///{tmp_path}/mlflow.db").values()
    assert run.info.status == "FAILED" and "learning_rat" in run.data.tags["failure"]


def test_misspelt_train_key_fails_at_compose_time(tmp_path):
    result = run_cli(["train.learning_rate=0.1", *TINY], tmp_path)
    assert result.returncode != 0
    assert "learning_rate" in result.stderr


def test_ctrl_c_ends_the_run_killed_and_stops_the_sweep(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = [sys.executable, str(ROOT / "run.py"), "-m", "model=numpy_dense", "seed=1,2",
            "dataset=synthetic_tiny", "train.epochs=100000", "train.eval_every=20", "train.log_every=5",
            f"hydra.sweep.dir={tmp_path}/sweep", f"tracking.uri={uri}",
            f"tracking.artifact_root={tmp_path}/artifacts", f"paths.cache_dir={tmp_path}/cache",
            "progress=false", "tracking.flush_every_s=0.5"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = MlflowClient(tracking_uri=uri)
    deadline = time.monotonic() + 120
    run_id = None
    while time.monotonic() < deadline and run_id is None:  # wait until training logs metrics
        time.sleep(1)
        exp = client.get_experiment_by_name("slide-bench") if os.path.exists(tmp_path / "mlflow.db") else None
        if exp is not None:
            for run in client.search_runs([exp.experiment_id]):
                if client.get_metric_history(run.info.run_id, "train/loss"):
                    run_id = run.info.run_id
    assert run_id, "the job never logged a training loss"
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    runs = runs_by_name(uri)
    assert len(runs) == 1, "the sweep went on after Ctrl-C"
    run = client.get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags["status"] == "killed"
    (sweep,) = sweep_runs(client)  # never left RUNNING: ended by the sweep process's exit hook
    assert sweep.info.status == "KILLED" and sweep.data.tags["status"] == "killed"
    assert client.get_metric_history(run_id, "train/loss")  # kept what was logged


def test_default_preset_runs_every_model_and_writes_figure3(tmp_path):
    """What `make run` does, on tiny data: every model, tf_gpu skipped with its reason here,
    and the sweep ends by printing where Figure 3 and the table are."""
    result = run_cli(["preset=figure3", "dataset=synthetic_tiny", "train.max_train_seconds=2",
                      "train.eval_every=4", "train.eval_samples=100"], tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = runs_by_name(f"sqlite:///{tmp_path}/mlflow.db")
    by_model = {r.data.tags["model"]: r for r in runs.values()}
    assert set(by_model) == {"slide", "tf_cpu", "tf_gpu", "tf_sampled", "numpy_dense"}
    for model, run in by_model.items():
        if model == "tf_gpu":
            assert run.data.tags["status"] == "skipped" and "GPU" in run.data.tags["skip_reason"]
            assert run.info.run_name.startswith("[skipped] ")
        else:
            assert run.data.tags["status"] == "finished", (model, run.data.tags.get("failure"))
            assert run.data.metrics["final/iterations"] >= 1
    figure = tmp_path / "sweep" / "figure3.png"
    assert figure.exists() and (tmp_path / "sweep" / "time_to_accuracy.md").exists()
    assert str(figure) in result.stdout + result.stderr
    # SLIDE's tables, not the random padding, fill their share of the active set (300 labels:
    # budget 128, up to 64 retrieved), they select better than random, and the retrieval
    # report is drawn from the logged quality metrics
    metrics, params = by_model["slide"].data.metrics, by_model["slide"].data.params
    assert int(params["slide.budget"]) == 128 and int(params["slide.retrieval_limit"]) == 64
    assert metrics["slide/retrieved_out_mean"] >= 0.9 * 64
    assert metrics["slide/labels_out_mean"] + metrics["slide/retrieved_out_mean"] + metrics[
        "slide/padding_out_mean"] == pytest.approx(metrics["slide/active_out_mean"])
    assert metrics["slide/lift_at_10"] > 1 and metrics["slide/eval_retrieved_mean"] > 0
    assert (tmp_path / "sweep" / "retrieval.png").exists()


def test_slide_job_selects_a_sparse_output_layer_end_to_end(tmp_path):
    """One SLIDE job on 3,000 labels, where the active set is a small part of the output layer:
    about 130 of 3,000 neurons per sample (budget 128 = auto's floor, up to 64 chosen by the
    hash tables, the rest sampled), so the training step, the tables and the logged metrics are
    exercised with sparse selection for real (the figure3 case above, on 300 labels, computes
    almost half of them)."""
    n_labels = 3000
    result = run_cli(["model=slide", "dataset=synthetic_tiny", f"dataset.n_labels={n_labels}",
                      "train.epochs=2", "train.eval_every=5", "train.log_every=2", "train.eval_samples=100",
                      "train.threads=1"], tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = runs_by_name(f"sqlite:///{tmp_path}/mlflow.db").values()
    metrics, params = run.data.metrics, run.data.params
    assert run.data.tags["status"] == "finished" and int(params["data.n_labels"]) == n_labels
    assert int(params["slide.budget"]) == 128 and int(params["slide.retrieval_limit"]) == 64
    assert metrics["slide/active_out_mean"] < n_labels / 20
    assert 0 < metrics["slide/retrieved_out_mean"] <= 64  # the tables, not only the padding, chose neurons
    # the log-uniform tail draws enough for min_padding distinct neurons on average over the whole
    # law; the draws that fall on the sample's own labels and retrieved neurons (frequent labels,
    # often retrieved) are skipped, not redrawn, so that every inclusion probability stays exact
    assert int(params["slide.padding_draws"]) >= 64
    assert metrics["slide/padding_out_mean"] >= 32, metrics["slide/padding_out_mean"]  # 46 measured
    assert metrics["slide/labels_out_mean"] + metrics["slide/retrieved_out_mean"] + metrics[
        "slide/padding_out_mean"] == pytest.approx(metrics["slide/active_out_mean"])
    assert metrics["slide/mults_dense_ratio"] < 0.2
    assert metrics["slide/eval_retrieved_mean"] > 0 and metrics["slide/lift_at_100"] > 1
    curve = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db").get_metric_history(
        run.info.run_id, "eval/p_at_1")
    assert max(m.value for m in curve) > curve[0].value  # it learned with sparse outputs
