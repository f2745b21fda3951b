"""Shared fixtures. Tests never touch the project's own MLflow store or caches: every store
and cache lives under pytest's tmp_path."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.fixture
def mlflow_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def run_cli(args: list[str], tmp_path: Path, timeout: float = 600,
            tracking_uri: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python run.py ARGS` as a user would, with every output, store and cache under
    tmp_path. Without tracking_uri, runs go to tmp_path/mlflow.db. `env`: variables to set
    (a value None removes one)."""
    env = {**os.environ, **(env or {})}
    env = {k: v for k, v in env.items() if v is not None}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tracking = [f"tracking.uri={tracking_uri}"] if tracking_uri else [
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"tracking.artifact_root={tmp_path}/artifacts"]
    base = [f"hydra.sweep.dir={tmp_path}/sweep", f"hydra.run.dir={tmp_path}/run",
            f"paths.cache_dir={tmp_path}/cache", "progress=false", *tracking]
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args, *base], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=timeout)


def job_runs(client: MlflowClient, experiment: str = "slide-bench") -> list:
    """The runs of the experiment's jobs: every run but the sweeps' parent runs (tag kind=sweep,
    harness/sweep_run.py), which hold a sweep's reports, not training."""
    exp = client.get_experiment_by_name(experiment)
    return [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("kind") != "sweep"]


def sweep_runs(client: MlflowClient, experiment: str = "slide-bench") -> list:
    """The sweeps' parent runs of the experiment."""
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], filter_string="tags.kind = 'sweep'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tracking_server(tmp_path):
    """A real `mlflow server` on loopback (sqlite backend and artifacts under tmp_path), lean:
    one worker, no job execution (docs/pitfalls.md, MLflow); yields its URL once it answers /health."""
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


# -- the shared tracking server (scripts/tracking_server.sh) --------------------------------
ADMIN = ("admin", "admin-secret-0123456789")
WRITER = ("alice", "alice-secret-0123456789")
READER = ("rita", "rita-secret-0123456789")


def _postgres_missing() -> str | None:
    if shutil.which("initdb") or list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return None
    return "PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run installs it)"


def as_user(user: tuple[str, str] | None) -> dict[str, str | None]:
    """A client's credentials in MLflow's standard variables (None: none). Tests also set HOME
    to their tmp_path, so that no ~/.mlflow/credentials of the machine is sent."""
    name, password = user if user else (None, None)
    return {"MLFLOW_TRACKING_USERNAME": name, "MLFLOW_TRACKING_PASSWORD": password}


@pytest.fixture(scope="session")
def auth_server():
    """scripts/tracking_server.sh start on a free loopback port; an EDIT and a READ user. One per
    test session (a start takes ~15 s); tests tell their runs apart by sweep folder."""
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
