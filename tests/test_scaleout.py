"""Sweeps that scale out: parallel local jobs sharing one sqlite store, and a real MLflow
tracking server on loopback."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_cli

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
    exp = client.get_experiment_by_name("slide-bench")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.data.params["seed"] for r in runs) == seeds.split(",")
    for run in runs:
        assert run.info.status == "FINISHED"
        iterations = int(run.data.metrics["final/iterations"])
        counts = metric_counts(client, run)
        assert counts["train/loss"] == iterations  # log_every=1 and flushed on every call
        assert counts["eval/p_at_1"] >= 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tracking_server(tmp_path):
    port = _free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
         "--artifacts-destination", str(tmp_path / "server-artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("the MLflow server did not come up")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_sweep_logs_to_a_tracking_server(tmp_path, tracking_server):
    result = run_cli(["-m", "model=numpy_dense", "seed=0,1", "tracking=server", *TINY], tmp_path,
                     tracking_uri=tracking_server)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri=tracking_server)
    runs = client.search_runs([client.get_experiment_by_name("slide-bench").experiment_id])
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    for run in runs:
        assert metric_counts(client, run)["eval/p_at_1"] >= 2
        assert "config/config.yaml" in [a.path for a in client.list_artifacts(run.info.run_id, "config")]
