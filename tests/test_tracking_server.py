"""The shared tracking server as a team would run it: scripts/tracking_server.sh starts
`mlflow server --app-name basic-auth` on a private PostgreSQL cluster, on loopback. Sweeps
log to it with credentials; without them, or with a user who may only read, the command
fails before any training and the store is unchanged."""
from __future__ import annotations


import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import READER, WRITER, as_user, job_runs, run_cli, sweep_runs

pytestmark = pytest.mark.slow

TINY = ["dataset=synthetic_tiny", "train.eval_every=5", "train.log_every=1", "train.eval_samples=100",
        "train.epochs=1", "train.threads=1"]


def all_runs(client: MlflowClient) -> set[str]:
    return {r.info.run_id for e in client.search_experiments() for r in client.search_runs([e.experiment_id])}


def test_server_refuses_anonymous_requests(auth_server):
    import urllib.error
    import urllib.request
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{auth_server}/api/2.0/mlflow/harness/search?max_results=1", timeout=10)
    assert refused.value.code == 401


def test_parallel_sweep_with_credentials_lands_every_run_metric_and_report(auth_server, admin_client, tmp_path):
    result = run_cli(["-m", "model=numpy_dense", "seed=0,1", "hydra/launcher=local_parallel", "tracking=server",
                      *TINY], tmp_path, tracking_uri=auth_server, env={**as_user(WRITER), "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = str(tmp_path / "sweep")
    runs = [r for r in job_runs(admin_client) if r.data.tags.get("sweep_id") == sweep]
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]
    (parent,) = [r for r in sweep_runs(admin_client) if r.data.tags.get("sweep_id") == sweep]
    assert parent.info.status == "FINISHED"
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["mlflow.user"] == WRITER[0]
        history = admin_client.get_metric_history(run.info.run_id, "train/loss")
        assert len(history) == int(run.data.metrics["final/iterations"])
        assert "config/config.yaml" in [a.path for a in admin_client.list_artifacts(run.info.run_id, "config")]
    reports = [a.path for a in admin_client.list_artifacts(parent.info.run_id)]
    assert "figure3.png" in reports and "time_to_accuracy.md" in reports
    assert (tmp_path / "sweep" / "figure3.png").exists()


@pytest.mark.parametrize("user", [None, ("alice", "not-her-password-0000")], ids=["no credentials", "wrong password"])
def test_no_or_wrong_credentials_fail_before_training_and_change_nothing(auth_server, admin_client, tmp_path, user):
    before = all_runs(admin_client)
    result = run_cli(["-m", "model=numpy_dense", "seed=0,1", "tracking=server", *TINY], tmp_path,
                     tracking_uri=auth_server, env={**as_user(user), "HOME": str(tmp_path)}, timeout=300)
    assert result.returncode == 2  # the access error's own status, before any job
    output = result.stdout + result.stderr  # Hydra's log of the launching process goes to stdout
    assert "refused the login" in output and "HTTP 401" in output and "Traceback" not in output, output[-2000:]
    assert all_runs(admin_client) == before
    assert not list(tmp_path.rglob("job_status.json"))  # no job started


def test_a_reader_cannot_write(auth_server, admin_client, tmp_path):
    before = all_runs(admin_client)
    result = run_cli(["-m", "model=numpy_dense", "seed=0", "tracking=server", *TINY], tmp_path,
                     tracking_uri=auth_server, env={**as_user(READER), "HOME": str(tmp_path)}, timeout=300)
    assert result.returncode == 2  # the access error's own status, before any job
    output = result.stdout + result.stderr
    assert "HTTP 403" in output and "rita" in output and "Traceback" not in output, output[-2000:]
    assert all_runs(admin_client) == before
    assert not list(tmp_path.rglob("job_status.json"))


def test_credentials_file_is_used(auth_server, admin_client, tmp_path):
    """~/.mlflow/credentials, MLflow's other standard place, works like the variables."""
    (tmp_path / ".mlflow").mkdir()
    (tmp_path / ".mlflow" / "credentials").write_text(
        f"[mlflow]\nmlflow_tracking_username = {WRITER[0]}\nmlflow_tracking_password = {WRITER[1]}\n")
    result = run_cli(["model=numpy_dense", "tracking=server", *TINY], tmp_path, tracking_uri=auth_server,
                     env={**as_user(None), "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
