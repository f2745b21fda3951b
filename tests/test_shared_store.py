"""A store several people and sweeps share: nothing read back from it is trusted blindly
(paths in tags, heartbeats), sweeps never share a folder, exactly one job continues a KILLED
run, schema creation is serialised between processes, and sqlite on a network filesystem is
refused for SLURM."""
from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

import contract
from harness.job_state import checkpoint_folder, owned_checkpoint_folder
from harness.resume import Heartbeat, claim_resume, end_dead_runs, heartbeat_value
from harness.sweep_run import SweepFolderBusy, hold_sweep_folder
from harness.tracking import Tracker, ensure_store, filesystem_type, refuse_sqlite_on_network_fs
from tests.conftest import ROOT, job_runs, run_cli, sweep_runs

TINY = ["dataset=synthetic_tiny", "train.eval_every=5", "train.log_every=1", "train.eval_samples=100",
        "train.epochs=1", "train.threads=1"]


# -- paths read back from tags -----------------------------------------------------------------
def test_a_checkpoint_folder_from_a_tag_is_used_only_inside_the_project(tmp_path):
    sweeps = tmp_path / "outputs" / "sweeps"
    mine = sweeps / "2026-12-03_10-00-00_abc123"
    earlier = checkpoint_folder(sweeps / "2026-12-02_09-00-00_def456", "run1")
    earlier.mkdir(parents=True)
    (earlier.parent.parent / "multirun.yaml").write_text("{}")  # Hydra's mark of a sweep folder
    roots = [sweeps, tmp_path / "outputs" / "runs"]
    assert owned_checkpoint_folder(str(earlier), "run1", mine, roots) == earlier  # an earlier sweep's: fine
    assert owned_checkpoint_folder(None, "run1", mine, roots) == checkpoint_folder(mine, "run1")
    outside = tmp_path / "elsewhere" / "checkpoints" / "run1"
    (tmp_path / "elsewhere" / "checkpoints" / "run1").mkdir(parents=True)
    (tmp_path / "elsewhere" / "multirun.yaml").write_text("{}")
    other_run = checkpoint_folder(earlier.parent.parent, "run2")
    climbing = f"{earlier.parent.parent}/../../../elsewhere/checkpoints/run1"
    (sweeps / "y").mkdir()
    (sweeps / "y" / "multirun.yaml").write_text("{}")
    (sweeps / "y" / "checkpoints").symlink_to(tmp_path / "elsewhere" / "checkpoints")
    linked = sweeps / "y" / "checkpoints" / "run1"
    not_a_sweep = sweeps / "z" / "checkpoints" / "run1"
    not_a_sweep.mkdir(parents=True)
    for forged in (outside, other_run, climbing, linked, not_a_sweep, "/etc", "checkpoints/run1"):
        assert owned_checkpoint_folder(str(forged), "run1", mine, roots) == checkpoint_folder(mine, "run1"), forged


@pytest.mark.slow
def test_a_resumed_run_does_not_write_where_a_forged_tag_points(tmp_path):
    """Kill a job, point its run's checkpoint_dir tag outside the project, resume: the job writes
    its checkpoints into its own sweep folder, and nothing appears at the forged place."""
    args = ["-m", "model=numpy_dense", *TINY, "train.epochs=40", "train.checkpoint_every_s=0.5"]
    sweep = tmp_path / "sweep"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, str(ROOT / "run.py"), *args, f"hydra.sweep.dir={sweep}", f"hydra.run.dir={tmp_path}/run",
           f"paths.cache_dir={tmp_path}/cache", "progress=false", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
           f"tracking.artifact_root={tmp_path}/artifacts"]
    job = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(sweep.glob("checkpoints/*/ckpt-*.npz")) and time.monotonic() < deadline:
        time.sleep(0.5)
    job.send_signal(2)  # Ctrl-C: checkpoint, run KILLED
    job.wait(timeout=120)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = job_runs(client)
    assert run.info.status == "KILLED"
    forged = tmp_path / "victim" / "checkpoints" / run.info.run_id
    forged.mkdir(parents=True)
    (forged / "precious.txt").write_text("keep me")
    client.set_tag(run.info.run_id, "checkpoint_dir", str(forged))
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "refused" in result.stdout + result.stderr
    assert sorted(p.name for p in forged.iterdir()) == ["precious.txt"]
    assert list((sweep / "checkpoints" / run.info.run_id).glob("ckpt-*.npz"))
    (again,) = job_runs(client)
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"


# -- heartbeats ----------------------------------------------------------------------------------
def _running(uri: str, beat: dict) -> str:
    return Tracker.start(uri, "e", run_name="live", tags={contract.HEARTBEAT: json.dumps(beat)}).run_id


@pytest.mark.slow  # several processes, each importing MLflow
@pytest.mark.parametrize("forged", ["another host, long ago", "this host, a dead pid, no valid token"])
def test_a_forged_heartbeat_does_not_end_a_live_run(tmp_path, forged):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    experiment_id = ensure_store(uri, "e")
    client = MlflowClient(tracking_uri=uri)
    run_id = _running(uri, json.loads(heartbeat_value()))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    fake = {"another host, long ago": {"host": "elsewhere", "pid": 1, "started": 0, "at": time.time() - 10_000},
            "this host, a dead pid, no valid token": {"host": socket.gethostname(), "pid": dead.pid,
                                                      "started": time.time() - 5, "at": time.time() - 10_000,
                                                      "token": "0" * 32}}[forged]
    with Heartbeat(client, run_id, every_s=1.0):  # the run's live process beats every second
        client.set_tag(run_id, contract.HEARTBEAT, json.dumps(fake))  # someone else's write lands after a beat
        ended = end_dead_runs(client, experiment_id, stale_after_s=600, heartbeat_every_s=1.0)
    assert ended == []
    assert client.get_run(run_id).info.status == "RUNNING"


@pytest.mark.slow  # several processes, each importing MLflow
def test_a_silent_run_of_another_host_is_ended_after_the_watch(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    experiment_id = ensure_store(uri, "e")
    run_id = _running(uri, {"host": "elsewhere", "pid": 1, "started": 0, "at": time.time() - 10_000})
    start = time.monotonic()
    ended = end_dead_runs(MlflowClient(tracking_uri=uri), experiment_id, stale_after_s=600, heartbeat_every_s=1.0)
    assert ended == [run_id]
    assert time.monotonic() - start >= 7.0 - 0.5  # watched 2 x 1 s + 5 s first


# -- resume lease --------------------------------------------------------------------------------
def _claim(uri: str, run_id: str, barrier, results) -> None:
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)  # both read the KILLED run before either claims it
    barrier.wait()
    results.put(claim_resume(client, run))


@pytest.mark.slow  # several processes, each importing MLflow
def test_exactly_one_process_gets_a_killed_runs_resume_lease(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ensure_store(uri, "e")
    tracker = Tracker.start(uri, "e", run_name="stopped", tags={})
    tracker.end("KILLED")
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(4), context.Queue()
    claimers = [context.Process(target=_claim, args=(uri, tracker.run_id, barrier, results)) for _ in range(4)]
    for p in claimers:
        p.start()
    for p in claimers:
        p.join(timeout=120)
    assert sorted(results.get(timeout=10) for _ in claimers) == [False, False, False, True]
    # a later stop of the same run is a new lease
    client = MlflowClient(tracking_uri=uri)
    client.update_run(tracker.run_id, "RUNNING")
    time.sleep(0.01)
    client.set_terminated(tracker.run_id, "KILLED")
    assert claim_resume(client, client.get_run(tracker.run_id))


@pytest.mark.slow  # several processes, each importing MLflow
# -- sweep folders -------------------------------------------------------------------------------
def test_a_sweep_folder_is_held_by_one_sweep_at_a_time(tmp_path):
    fd = hold_sweep_folder(tmp_path / "sweep")
    holder = subprocess.run([sys.executable, "-c", "from harness.sweep_run import hold_sweep_folder as h; "
                             f"h({str(tmp_path / 'sweep')!r})"], cwd=ROOT, capture_output=True, text=True)
    assert holder.returncode != 0 and "in use by another sweep" in holder.stderr
    assert f"pid {os.getpid()}" in holder.stderr
    os.close(fd)  # the sweep ended (or died: the kernel drops the lock with the process)
    os.close(hold_sweep_folder(tmp_path / "sweep"))
    with pytest.raises(SweepFolderBusy):
        fd = hold_sweep_folder(tmp_path / "again")
        hold_sweep_folder(tmp_path / "again")


@pytest.mark.slow
def test_two_sweeps_started_together_keep_their_own_folders_runs_and_reports(tmp_path):
    """Two sweeps of the same preset into one store, started at the same instant with the
    default (time-stamped) folder names: two parent runs, each with its own children, and
    reports that do not mix."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", SLIDE_BENCH_ROOT=str(tmp_path))  # outputs/, mlflow.db there
    cmd = [sys.executable, str(ROOT / "run.py"), "-m", "model=numpy_dense", "seed=0,1", *TINY, "progress=false",
           "sweep.skip_finished=false", f"paths.cache_dir={tmp_path}/cache"]
    both = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    errors = [p.communicate(timeout=600)[1] for p in both]
    assert [p.returncode for p in both] == [0, 0], errors[0][-2000:] + errors[1][-2000:]
    folders = sorted((tmp_path / "outputs" / "sweeps").iterdir())
    assert len(folders) == 2
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    parents = sweep_runs(client)
    assert sorted(p.data.tags["sweep_id"] for p in parents) == [str(f) for f in folders]
    runs = job_runs(client)
    for parent in parents:
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert sorted(r.data.params["seed"] for r in children) == ["0", "1"]
        assert {r.data.tags["sweep_id"] for r in children} == {parent.data.tags["sweep_id"]}
    for folder in folders:
        statuses = [json.loads(p.read_text()) for p in folder.rglob("job_status.json")]
        assert len(statuses) == 2
        table = (folder / "time_to_accuracy.csv").read_text().splitlines()
        assert len(table) - 1 == 2, table  # this sweep's two jobs, not four


# -- the store -----------------------------------------------------------------------------------
def _create(uri: str, barrier) -> None:
    barrier.wait()
    ensure_store(uri, "e")


@pytest.mark.slow  # several processes, each importing MLflow
def test_concurrent_processes_create_a_fresh_sqlite_store_safely(tmp_path):
    uri = f"sqlite:///{tmp_path}/fresh/mlflow.db"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    makers = [context.Process(target=_create, args=(uri, barrier)) for _ in range(4)]
    for p in makers:
        p.start()
    for p in makers:
        p.join(timeout=300)
    assert [p.exitcode for p in makers] == [0, 0, 0, 0]
    assert MlflowClient(tracking_uri=uri).get_experiment_by_name("e") is not None


def test_sqlite_on_a_network_filesystem_is_refused_for_slurm(tmp_path, monkeypatch):
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nserver:/home {tmp_path}/nfs nfs4 rw 0 0\n")
    assert filesystem_type(tmp_path / "nfs" / "project", mounts) == "nfs4"
    assert filesystem_type(tmp_path / "local", mounts) == "ext4"
    monkeypatch.setattr("harness.tracking.filesystem_type", lambda path: filesystem_type(path, mounts))
    with pytest.raises(RuntimeError, match="network filesystem"):
        refuse_sqlite_on_network_fs(f"sqlite:///{tmp_path}/nfs/project/mlflow.db", "SlurmLauncher")
    refuse_sqlite_on_network_fs(f"sqlite:///{tmp_path}/local/mlflow.db", "SlurmLauncher")
    refuse_sqlite_on_network_fs("http://host:5000", "SlurmLauncher")


def test_the_slurm_sweep_refuses_sqlite_on_nfs_before_creating_the_store(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from harness.hydra_callbacks import TrackingStoreCallback

    monkeypatch.setattr("harness.tracking.filesystem_type", lambda path: "nfs4")
    db = tmp_path / "mlflow.db"
    config = OmegaConf.create({
        "tracking": {"uri": f"sqlite:///{db}", "experiment": "e", "artifact_root": None},
        "hydra": {"launcher": {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"}}})
    with pytest.raises(RuntimeError, match="SlurmLauncher"):
        TrackingStoreCallback().on_multirun_start(config)
    assert not db.exists()
    config.hydra.launcher._target_ = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    TrackingStoreCallback().on_multirun_start(config)  # one machine: sqlite is fine
    assert db.exists()


def _log_same_datasets(uri: str, rounds: int, barrier, results) -> None:
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.entities import DatasetInput

    from harness.tracking import _ShapedDataset, log_inputs

    client = MlflowClient(tracking_uri=uri)
    run_id = Tracker.start(uri, "e", run_name="job", tags={}).run_id
    for round_ in range(rounds):  # each round every process logs the same new dataset at once
        entity = _ShapedDataset(CodeDatasetSource({"generator": "test"}), "synthetic", f"d{round_}",
                                {"n": 1})._to_mlflow_entity()
        barrier.wait()
        try:
            log_inputs(client, run_id, [DatasetInput(entity)])
            results.put("ok")
        except Exception as error:  # what the race did before log_inputs retried
            results.put(repr(error)[:300])


@pytest.mark.slow  # several processes, each importing MLflow
def test_jobs_logging_the_same_new_dataset_at_once_all_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ensure_store(uri, "e")
    context = multiprocessing.get_context("spawn")
    barrier, results, rounds = context.Barrier(4), context.Queue(), 8
    loggers = [context.Process(target=_log_same_datasets, args=(uri, rounds, barrier, results)) for _ in range(4)]
    for p in loggers:
        p.start()
    outcomes = [results.get(timeout=120) for _ in range(4 * rounds)]
    for p in loggers:
        p.join(timeout=60)
    assert outcomes == ["ok"] * (4 * rounds), [o for o in outcomes if o != "ok"][:1]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("e").experiment_id])
    assert len(runs) == 4 and all(len(r.inputs.dataset_inputs) == rounds for r in runs)
