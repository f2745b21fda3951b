"""The shared tracking server as a team would run it: scripts/tracking_server.sh starts
`mlflow server --app-name basic-auth` on a private PostgreSQL cluster, on loopback. Sweeps
log to it with credentials; without them, or with a user who may only read, the command
fails before any training and the store is unchanged."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, _free_port, job_runs, run_cli, sweep_runs

pytestmark = pytest.mark.slow

TINY = ["dataset=synthetic_tiny", "train.eval_every=5", "train.log_every=1", "train.eval_samples=100",
        "train.epochs=1", "train.threads=1"]
ADMIN = ("admin", "admin-secret-0123456789")
WRITER = ("alice", "alice-secret-0123456789")
READER = ("rita", "rita-secret-0123456789")


def _postgres_missing() -> str | None:
    if shutil.which("initdb") or list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return None
    return "PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run installs it)"


def as_user(user: tuple[str, str] | None) -> dict[str, str | None]:
    """Environment for a client: MLflow's standard variables, and a HOME without
    ~/.mlflow/credentials, so that only what the test sets is sent."""
    name, password = user if user else (None, None)
    return {"MLFLOW_TRACKING_USERNAME": name, "MLFLOW_TRACKING_PASSWORD": password}


@pytest.fixture(scope="module")
def auth_server():
    """scripts/tracking_server.sh start on a free loopback port; an EDIT and a READ user."""
    reason = _postgres_missing()
    if reason:
        pytest.skip(reason)
    # not under pytest's tmp folders (0700): as root the cluster belongs to `postgres`, who must
    # pass through every folder above it
    folder = Path(tempfile.mkdtemp(prefix="slide-bench-server-"))
    folder.chmod(0o755)
    port = _free_port()
    env = {**os.environ, "TRACKING_SERVER_DIR": str(folder / "server"), "MLFLOW_SERVER_PORT": str(port),
           "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1], "MLFLOW_BIN": str(Path(sys.executable).parent / "mlflow")}
    script = str(ROOT / "scripts" / "tracking_server.sh")
    started = subprocess.run([script, "start"], env=env, capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stdout + started.stderr
    uri = f"http://127.0.0.1:{port}"
    users = str(ROOT / "scripts" / "tracking_users.py")
    admin_env = {**env, "MLFLOW_TRACKING_USERNAME": ADMIN[0], "MLFLOW_TRACKING_PASSWORD": ADMIN[1]}
    try:
        for (name, password), permission in ((WRITER, "EDIT"), (READER, "READ")):
            for command in (["add", name], ["grant", name, permission]):
                done = subprocess.run([sys.executable, users, "--uri", uri, *command], capture_output=True, text=True,
                                      env={**admin_env, "NEW_USER_PASSWORD": password}, timeout=120)
                assert done.returncode == 0, done.stderr
        yield uri
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def admin_client(auth_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    return MlflowClient(tracking_uri=auth_server)


def all_runs(client: MlflowClient) -> set[str]:
    return {r.info.run_id for e in client.search_experiments() for r in client.search_runs([e.experiment_id])}


def test_server_refuses_anonymous_requests(auth_server):
    import urllib.error
    import urllib.request
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{auth_server}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)
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
    assert result.returncode != 0
    assert "refused the login" in result.stderr and "HTTP 401" in result.stderr, result.stderr[-2000:]
    assert all_runs(admin_client) == before
    assert not list(tmp_path.rglob("job_status.json"))  # no job started


def test_a_reader_cannot_write(auth_server, admin_client, tmp_path):
    before = all_runs(admin_client)
    result = run_cli(["-m", "model=numpy_dense", "seed=0", "tracking=server", *TINY], tmp_path,
                     tracking_uri=auth_server, env={**as_user(READER), "HOME": str(tmp_path)}, timeout=300)
    assert result.returncode != 0
    assert "HTTP 403" in result.stderr and "rita" in result.stderr, result.stderr[-2000:]
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
