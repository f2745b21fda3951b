"""What users see in the MLflow UI: the experiment opens on its training runs, a sweep is one
parent run with its jobs as children and its reports as artifacts, every run names its data
(digest = the harness's cache key), skipped jobs look skipped, system metrics are collected.
The end-to-end test logs to a real `mlflow server` on loopback, as a shared deployment would."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from harness.data.datasets import DatasetConfig, load_dataset
from harness.sweep_run import sweep_status
from harness.tracking import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND, dataset_inputs, ensure_store
from reports.table import headline_speedups
from tests.conftest import job_runs, run_cli, sweep_runs

TINY = ["dataset=synthetic_tiny", "train.eval_every=5", "train.log_every=2", "train.eval_samples=100",
        "train.epochs=3", "train.threads=1"]


def cache_key_of(entry: Path) -> str:
    """The key in a cache entry's file name: <prefix>-<key>.npz."""
    return entry.stem.rsplit("-", 1)[1]


@pytest.mark.slow
def test_a_sweep_on_a_tracking_server_is_one_parent_run_with_its_jobs_data_and_reports(
        tmp_path, tracking_server):
    # numpy_dense trains in its own process (isolated); tf_gpu is skipped on this GPU-less box
    result = run_cli(["-m", "model=numpy_dense,tf_gpu", "tracking=server",
                      "tracking.system_metrics_every_s=0.5", *TINY], tmp_path,
                     tracking_uri=tracking_server)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri=tracking_server)
    experiment = client.get_experiment_by_name("slide-bench")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    # the sweep ends with a link to its runs in the UI's model-training view
    assert (f"MLflow: {tracking_server}/#/harness/{experiment.experiment_id}/runs"
            "?workflowType=machine_learning") in result.stdout

    (parent,) = sweep_runs(client)
    jobs = {r.data.tags["model"]: r for r in job_runs(client)}
    assert set(jobs) == {"numpy_dense", "tf_gpu"}
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in jobs.values())
    assert parent.info.status == "FINISHED" and parent.data.tags["status"] == "finished"
    assert parent.data.tags["jobs_skipped"] == "1" and "mlflow.parentRunId" not in parent.data.tags
    assert parent.data.params["sweep.overrides"].startswith("model=numpy_dense,tf_gpu")
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"figure3.png", "time_to_accuracy.md", "time_to_accuracy.csv"} <= artifacts

    (entry,) = (tmp_path / "cache").glob("synthetic-synthetic_tiny-*.npz")
    for run in jobs.values():
        (data,) = run.inputs.dataset_inputs
        assert data.dataset.digest == cache_key_of(entry)
        assert data.dataset.name == "synthetic_tiny" and data.dataset.source_type == "code"
        assert '"n_labels": 300' in data.dataset.profile and '"n_train": 2000' in data.dataset.profile

    skipped, trained = jobs["tf_gpu"], jobs["numpy_dense"]
    assert skipped.info.run_name.startswith("[skipped] tf_gpu/") and skipped.info.status == "FINISHED"
    assert skipped.data.tags["status"] == "skipped"
    assert skipped.data.tags["mlflow.note.content"].startswith("Skipped: no GPU")
    # sampled in the job's own process, where it trained
    assert client.get_metric_history(trained.info.run_id, "system/cpu_utilization_percentage")
    assert "system/system_memory_usage_megabytes" in trained.data.metrics
    assert "mem/peak_rss_mb" in trained.data.metrics

    single = run_cli(["model=numpy_dense", "tracking=server", *TINY], tmp_path,
                     tracking_uri=tracking_server)
    assert single.returncode == 0, single.stderr[-3000:]
    (alone,) = [r for r in job_runs(client) if r.info.run_id not in {j.info.run_id for j in jobs.values()}]
    assert "mlflow.parentRunId" not in alone.data.tags  # a run.py without -m stays top-level
    assert len(sweep_runs(client)) == 1


def test_an_existing_experiment_without_a_kind_becomes_model_training(mlflow_uri):
    client = MlflowClient(tracking_uri=mlflow_uri)
    plain = client.create_experiment("made-elsewhere")
    ensure_store(mlflow_uri, "made-elsewhere")
    assert client.get_experiment(plain).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    chosen = client.create_experiment("genai", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    ensure_store(mlflow_uri, "genai")
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"  # kept


def test_file_datasets_log_one_input_per_file_with_its_cache_key(tmp_path):
    (tmp_path / "train.txt").write_text("3 10 5\n1,2 3:0.5 1:1e-3\n 4:2\n0,4 9:7\n")
    (tmp_path / "test.txt").write_text("2 10 5\n1 3:0.5\n0,4 9:7\n")
    config = DatasetConfig(name="pair", kind="xmc", train_path=str(tmp_path / "train.txt"),
                           test_path=str(tmp_path / "test.txt"))
    inputs = dataset_inputs(load_dataset(config, tmp_path / "cache"))
    keys = {p.name.split("-")[0]: cache_key_of(p) for p in (tmp_path / "cache").glob("*.npz")}
    assert len(inputs) == 2 and len(keys) == 2
    for item, split in zip(inputs, ("train", "test"), strict=True):
        assert item.dataset.digest == keys[split] and item.dataset.source_type == "local"
        assert str(tmp_path / f"{split}.txt") in item.dataset.source
        assert [(t.key, t.value) for t in item.tags] == [("mlflow.data.context", split)]
        assert '"n_train": 3' in item.dataset.profile and '"n_test": 2' in item.dataset.profile


def test_headline_speedups_are_the_measured_ratios_of_non_baseline_models():
    table = pd.DataFrame({
        "model": ["slide", "tf_cpu", "tf_sampled"], "role": ["slide", "dense", "sampled"],
        "run": ["slide/d/0", "tf_cpu/d/1", "tf_sampled/d/2"],
        "speed-up vs tf_cpu @75%": [2.5, 1.0, 1.4], "speed-up vs tf_cpu @90%": [float("nan"), 1.0, 2.0]})
    assert headline_speedups(table) == {"speedup/slide_vs_tf_cpu_at_75pct": 2.5}
    two = pd.concat([table, table.iloc[[0]].assign(run="slide/d/3", **{"speed-up vs tf_cpu @75%": 3.0})])
    assert headline_speedups(two) == {"speedup/slide_vs_tf_cpu_at_75pct/slide/d/0": 2.5,
                                      "speedup/slide_vs_tf_cpu_at_75pct/slide/d/3": 3.0}


def test_a_sweep_fails_on_a_failed_job_not_on_a_skipped_one():
    assert sweep_status(["finished", "skipped"]) == "finished"
    assert sweep_status(["finished", "failed", "skipped"]) == "failed"
