"""hydra/launcher=slurm on a real SLURM cluster: a single-node one started on this machine
(scripts/local_slurm.sh: slurmctld and slurmd on 127.0.0.1, munge), a two-job sweep into the
authenticated tracking server, one job preempted (scontrol requeue: SIGTERM, then SLURM runs
it again), and the sweep ends with the preempted job's run continued, not restarted, and every
job in the reports."""
from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, WRITER, _free_port, as_user, job_runs, sweep_runs

pytestmark = pytest.mark.slow

SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue")


def _slurm_missing() -> str | None:
    if os.geteuid() != 0:
        return "starting slurmd needs root"
    missing = [b for b in SLURM_BINARIES if shutil.which(b) is None]
    if missing:
        return f"{', '.join(missing)} not installed (Debian: apt-get install slurmctld slurmd slurm-client munge)"
    return None


@pytest.fixture(scope="module")
def slurm_cluster():
    reason = _slurm_missing()
    if reason:
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="slide-bench-slurm-"))
    folder.chmod(0o755)  # munge's user must reach its socket folder
    port = _free_port()
    env = {**os.environ, "LOCAL_SLURM_PORTS": str(port)}
    script = str(ROOT / "scripts" / "local_slurm.sh")
    started = subprocess.run([script, "start", str(folder)], env=env, capture_output=True, text=True, timeout=120)
    if started.returncode != 0:  # e.g. a sandbox where slurmd cannot run: say exactly why
        subprocess.run([script, "stop", str(folder)], env=env, capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"the local SLURM cluster did not start: {(started.stdout + started.stderr).strip()[-800:]}")
    try:
        yield {"SLURM_CONF": str(folder / "slurm.conf")}
    finally:
        subprocess.run([script, "stop", str(folder)], env=env, capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _slurm(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=60)


def _wait_for(condition, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _started_again(env: dict, job: str) -> bool:
    """Once the requeued job is PENDING, lift its begin time; True once it runs again."""
    state = _slurm(env, "squeue", "-h", "-j", job, "-o", "%T").stdout.strip()
    if state == "PENDING":
        _slurm(env, "scontrol", "update", f"JobId={job}", "StartTime=now")
    return state == "RUNNING"


def _read(paths: list[Path]) -> str:
    return "".join(p.read_text() for p in paths if p.exists())


def test_a_preempted_slurm_job_resumes_and_the_sweep_reports_every_job(slurm_cluster, auth_server, admin_client,
                                                                       tmp_path):
    env = {**os.environ, **slurm_cluster, **as_user(WRITER), "HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2"}
    sweep = tmp_path / "sweep"
    command = [sys.executable, str(ROOT / "run.py"), "-m", "model=numpy_dense", "seed=0,1", "dataset=synthetic_tiny",
               "train.threads=1", "train.epochs=100000", "train.max_train_seconds=30", "train.eval_every=50",
               "train.eval_samples=100", "train.checkpoint_every_s=3", "hydra/launcher=slurm",
               "hydra.launcher.partition=debug", "hydra.launcher.mem_gb=2", "tracking=server",
               f"tracking.uri={auth_server}", f"hydra.sweep.dir={sweep}", f"paths.cache_dir={tmp_path}/cache"]
    with open(tmp_path / "sweep.log", "w") as log:
        sweep_process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            # job 0 (its SLURM id is the name of its submitit folder, e.g. 1_0) has checkpointed
            job0 = _wait_for(lambda: next(iter(sweep.glob(".submitit/*_0")), None), 120, "job 0's submission").name
            logs = [sweep / ".submitit" / job0 / f"{job0}_0_log.{kind}" for kind in ("out", "err")]
            run_id = _wait_for(lambda: re.search(r"checkpoints/(\w+)/ckpt-", _read(logs)), 240,
                               "job 0's first checkpoint").group(1)
            requeued = _slurm(env, "scontrol", "requeue", job0)
            assert requeued.returncode == 0, requeued.stderr
            # SLURM holds a requeued job back for a while (BeginTime); let it start again now
            _wait_for(lambda: _started_again(env, job0), 180, "the requeued job to run again", poll=1)
            assert sweep_process.wait(timeout=600) == 0, (tmp_path / "sweep.log").read_text()[-4000:]
        finally:
            if sweep_process.poll() is None:
                sweep_process.kill()
    job_log = _read(logs)
    assert "SIGTERM: stopping after this step, with a checkpoint" in job_log
    assert f"continuing run {run_id}" in job_log
    runs = {r.info.run_id: r for r in job_runs(admin_client) if r.data.tags.get("sweep_id") == str(sweep)}
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs.values())
    assert runs[run_id].data.tags["resumes"] == "1"  # continued from its checkpoint, in the same run
    (parent,) = [r for r in sweep_runs(admin_client) if r.data.tags.get("sweep_id") == str(sweep)]
    assert parent.info.status == "FINISHED" and parent.data.tags["jobs_finished"] == "2"
    with open(sweep / "time_to_accuracy.csv") as table:
        assert {row["run_id"] for row in csv.DictReader(table)} == set(runs)
    assert "figure3.png" in [a.path for a in admin_client.list_artifacts(parent.info.run_id)]
