"""Sweeps that scale out: parallel local jobs sharing one sqlite store, and a real MLflow
tracking server on loopback."""
from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import job_runs, run_cli, sweep_runs

pytestmark = pytest.mark.slow

TINY = ["dataset=synthetic_tiny", "train.eval_every=5", "train.log_every=1", "train.eval_samples=100",
        "train.epochs=1", "train.threads=1"]


def metric_counts(client: MlflowClient, run) -> dict[str, int]:
    return {key: len(client.get_metric_history(run.info.run_id, key))
            for key in ("train/loss", "eval/p_at_1", "time/train_s")}


def test_parallel_sweep_loses_no_run_and_no_metric(tmp_path):
    seeds = "0,1,2,3,4,5"
    result = run_cli(["-m", "model=numpy_dense", f"seed={seeds}", "hydra/launcher=local_parallel",
                      "tracking.flush_every_s=0", *TINY], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = job_runs(client)
    assert sorted(r.data.params["seed"] for r in runs) == seeds.split(",")
    (parent,) = sweep_runs(client)  # made in the launching process, read by the joblib workers
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        iterations = int(run.data.metrics["final/iterations"])
        counts = metric_counts(client, run)
        assert counts["train/loss"] == iterations  # log_every=1 and flushed on every call
        assert counts["eval/p_at_1"] >= 2


def test_sweep_logs_to_a_tracking_server(tmp_path, tracking_server):
    result = run_cli(["-m", "model=numpy_dense", "seed=0,1", "tracking=server", *TINY], tmp_path,
                     tracking_uri=tracking_server)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri=tracking_server)
    runs = job_runs(client)
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    for run in runs:
        assert metric_counts(client, run)["eval/p_at_1"] >= 2
        assert "config/config.yaml" in [a.path for a in client.list_artifacts(run.info.run_id, "config")]
