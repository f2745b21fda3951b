"""Shared fixtures. Tests never touch the project's own MLflow store or caches: every store
and cache lives under pytest's tmp_path."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.fixture
def mlflow_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def run_cli(args: list[str], tmp_path: Path, timeout: float = 600,
            tracking_uri: str | None = None) -> subprocess.CompletedProcess:
    """Run `python run.py ARGS` as a user would, with every output, store and cache under
    tmp_path. Without tracking_uri, runs go to tmp_path/mlflow.db."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tracking = [f"tracking.uri={tracking_uri}"] if tracking_uri else [
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"tracking.artifact_root={tmp_path}/artifacts"]
    base = [f"hydra.sweep.dir={tmp_path}/sweep", f"hydra.run.dir={tmp_path}/run",
            f"paths.cache_dir={tmp_path}/cache", "+progress=false", *tracking]
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args, *base], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=timeout)
