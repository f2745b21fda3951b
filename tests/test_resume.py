"""Runs that survive: checkpoints, resume after SIGKILL and SIGTERM in the same MLflow run,
sweeps that skip what finished, runs whose process is gone, and unusable checkpoints.

The end-to-end tests start `python run.py` as a user would (tests.conftest.run_cli), kill it,
run the same command again, and compare with a run that was never interrupted."""
from __future__ import annotations

import collections
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from mlflow.tracking import MlflowClient

import contract
from harness.job_state import (CheckpointError, Checkpointer, list_checkpoints, load_latest, prune,
                               read_checkpoint, write_checkpoint)
from harness.resume import config_hash, end_dead_runs, heartbeat_token, local_verdict
from harness.tracking import Tracker, ensure_store
from tests.conftest import ROOT, job_runs, run_cli, sweep_runs

# a job of a few seconds that checkpoints often; every model runs on one thread (bit-exact)
JOB = ["dataset=synthetic_tiny", "train.threads=1", "train.eval_every=20", "train.log_every=5",
       "train.checkpoint_every_s=0.25", "tracking.system_metrics_every_s=null"]
EPOCHS = {"slide": 120, "numpy_dense": 400, "tf_cpu": 80}
COMPARED = ("train/loss", "eval/p_at_1", "eval/p_at_5")


def _command(tmp_path: Path, args: list[str]) -> list[str]:
    return [sys.executable, str(ROOT / "run.py"), *args, f"hydra.sweep.dir={tmp_path}/sweep",
            f"hydra.run.dir={tmp_path}/run", f"paths.cache_dir={tmp_path}/cache", "progress=false",
            f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"tracking.artifact_root={tmp_path}/artifacts"]


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_job_outlives_its_test():
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:  # the test failed before it stopped the job
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _start(tmp_path: Path, args: list[str]) -> subprocess.Popen:
    """run.py in its own process group (killpg reaches an isolated job's child too, as the
    OOM killer of a container, a reboot or scancel would)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(tmp_path / f"run-{time.monotonic_ns()}.log", "w") as log:
        process = subprocess.Popen(_command(tmp_path, args), cwd=tmp_path, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    _STARTED.append(process)
    return process


def _wait_for_checkpoints(folder_glob: Path, count: int, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for d in folder_glob.parent.glob(folder_glob.name) for p in list_checkpoints(d)]
        if len(found) >= count:
            return
        if process.poll() is not None:
            pytest.fail(f"the job ended (code {process.returncode}) before {count} checkpoints were written")
        time.sleep(0.05)
    pytest.fail(f"no {count} checkpoints under {folder_glob} after {timeout} s")


def _client(tmp_path: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _assert_each_step_once(client: MlflowClient, run) -> None:
    for key in run.data.metrics:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        twice = [s for s, n in collections.Counter(steps).items() if n > 1]
        assert not twice, f"{key}: steps logged more than once: {twice[:10]}"


def _final_model_state(run) -> dict[str, np.ndarray]:
    folder = Path(run.data.tags["checkpoint_dir"])
    meta, arrays = read_checkpoint(list_checkpoints(folder)[0], run.data.tags["config_hash"])
    assert meta["loop"]["training_done"]
    return arrays


@pytest.mark.slow
@pytest.mark.parametrize("model", ["slide", "numpy_dense", "tf_cpu"])
def test_sigkill_then_same_command_continues_the_same_run(tmp_path, model):
    args = [f"model={model}", f"train.epochs={EPOCHS[model]}", *JOB]
    (tmp_path / "clean").mkdir()
    clean = run_cli(args, tmp_path / "clean", timeout=600)
    assert clean.returncode == 0, clean.stderr[-3000:]
    (reference,) = job_runs(_client(tmp_path / "clean"))

    where = tmp_path / "killed"
    where.mkdir()
    process = _start(where, args)
    _wait_for_checkpoints(where / "run" / "checkpoints" / "*", 2, process)
    time.sleep(0.5)  # steps past the last checkpoint are logged, then lost with the process
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    client = _client(where)
    (killed,) = job_runs(client)
    assert killed.info.status == "RUNNING"  # nothing could end it

    again = run_cli(args, where, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    (run,) = job_runs(client)
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"
    assert run.data.tags["resumes"] == "1"
    _assert_each_step_once(client, run)
    for key in COMPARED + ("time/train_s",):
        assert [s for s, _ in _history(client, run.info.run_id, key)] == \
               [s for s, _ in _history(_client(tmp_path / "clean"), reference.info.run_id, key)], key
    ours = {k: [v for _, v in _history(client, run.info.run_id, k)] for k in COMPARED}
    theirs = {k: [v for _, v in _history(_client(tmp_path / "clean"), reference.info.run_id, k)] for k in COMPARED}
    final = [run.data.metrics["final/p_at_1"], reference.data.metrics["final/p_at_1"]]
    if model == "tf_cpu":  # XLA's reductions are not bit-reproducible across processes
        for key in COMPARED:
            np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-3, atol=1e-4, err_msg=key)
        assert abs(final[0] - final[1]) <= 0.01
        return
    assert ours == theirs and final[0] == final[1]
    resumed_state, clean_state = _final_model_state(run), _final_model_state(reference)
    assert resumed_state.keys() == clean_state.keys()
    for name in clean_state:
        if name != "meta":  # SLIDE's header holds wall-clock timers
            assert np.array_equal(resumed_state[name], clean_state[name]), name


@pytest.mark.slow
@pytest.mark.parametrize("model", ["slide", "numpy_dense"])
def test_sigterm_checkpoints_ends_killed_and_resumes(tmp_path, model):
    """SIGTERM to the job's process only (numpy_dense: the parent of an isolated job, which
    passes it on to the child that trains)."""
    # MLflow's system metrics on: the resumed run's samples must go on from the killed one's steps
    args = [f"model={model}", f"train.epochs={EPOCHS[model]}", *JOB, "train.checkpoint_every_s=null",
            "tracking.system_metrics_every_s=1"]
    process = _start(tmp_path, args)
    _wait_for_log(tmp_path, "warm-up (compile/trace) took", process)
    time.sleep(1.0)  # training
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 128 + signal.SIGTERM
    stop_s = time.monotonic() - sent
    client = _client(tmp_path)
    (run,) = job_runs(client)
    assert run.info.status == "KILLED" and run.data.tags["stopped_by"] == "SIGTERM"
    (newest, *_) = list_checkpoints(run.data.tags["checkpoint_dir"])
    meta, arrays = read_checkpoint(newest, run.data.tags["config_hash"])
    assert 0 < meta["loop"]["iteration"] and not meta["loop"]["training_done"] and arrays
    assert stop_s < 60, stop_s

    again = run_cli(args, tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    (resumed,) = job_runs(client)
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    assert resumed.data.metrics["final/iterations"] > meta["loop"]["iteration"]
    assert "system/cpu_utilization_percentage" in resumed.data.metrics
    _assert_each_step_once(client, resumed)


def _wait_for_log(where: Path, text: str, process: subprocess.Popen, timeout: float = 240) -> None:
    """Until the job's output says `text` (the store is not polled: a reader creating a fresh
    sqlite store races the job's own schema migration)."""
    deadline = time.monotonic() + timeout
    while not any(text in p.read_text() for p in where.glob("run-*.log")):
        assert time.monotonic() < deadline and process.poll() is None, f"the job never logged {text!r}"
        time.sleep(0.1)


@pytest.mark.slow
def test_rerun_sweep_skips_finished_resumes_killed_runs_the_rest(tmp_path):
    lrs = "0.01,0.02,0.03"
    args = ["-m", "model=slide", f"train.lr={lrs}", "train.epochs=100", *JOB]
    process = _start(tmp_path, args)
    # job 0 wrote its final checkpoint and job 1 a first one: stop the sweep while job 1 trains
    deadline = time.monotonic() + 300
    while sum(1 for d in (tmp_path / "sweep" / "checkpoints").glob("*") if list_checkpoints(d)) < 2:
        assert time.monotonic() < deadline and process.poll() is None, "the sweep never got to its second job"
        time.sleep(0.05)
    client = _client(tmp_path)
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=120) == 128 + signal.SIGTERM
    before = {r.data.params["train.lr"]: r for r in job_runs(client)}
    assert sorted(before) == ["0.01", "0.02"], sorted(before)  # the third never started
    assert before["0.01"].info.status == "FINISHED" and before["0.02"].info.status == "KILLED"

    again = run_cli(args, tmp_path, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    after = {r.data.params["train.lr"]: r for r in job_runs(client)}
    assert sorted(after) == ["0.01", "0.02", "0.03"] and all(r.info.status == "FINISHED" for r in after.values())
    finished, killed = before["0.01"], before["0.02"]
    assert after["0.01"].info.run_id == finished.info.run_id  # not run again
    assert after["0.01"].info.end_time == finished.info.end_time and "resumes" not in after["0.01"].data.tags
    assert after["0.02"].info.run_id == killed.info.run_id and after["0.02"].data.tags["resumes"] == "1"
    newest_sweep = max(sweep_runs(client), key=lambda r: r.info.start_time)
    assert newest_sweep.info.status == "FINISHED"
    children = {r.info.run_id for r in after.values() if r.data.tags.get("mlflow.parentRunId") == newest_sweep.info.run_id}
    assert children == {r.info.run_id for r in after.values()}  # the sweep's reports read these


# -- checkpoint files ------------------------------------------------------------------------
class _Model:
    def __init__(self, value: float):
        self.w = np.full(4, value, dtype=np.float32)

    def state_dict(self):
        return {"w": self.w}

    def load_state_dict(self, arrays):
        if arrays["w"].shape != self.w.shape:
            raise ValueError("shape")
        self.w[...] = arrays["w"]


def test_checkpointer_writes_atomically_and_keeps_the_last_two(tmp_path):
    ticks = iter(range(100))
    saver = Checkpointer(tmp_path, "abc", "run", every_s=10.0, keep=2, clock=lambda: next(ticks) * 4.0)
    saver.start_timer()
    assert not saver.due() and not saver.due() and saver.due()  # 4, 8, 12 s after the start
    for it in (10, 20, 30):
        saver.save(_Model(it), {"iteration": it}, it)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-000000030.npz", "ckpt-000000020.npz"]
    (tmp_path / ".ckpt-000000040.npz.tmp").write_bytes(b"half")  # a kill during a write
    prune(tmp_path, 2)
    assert not list(tmp_path.glob(".*.tmp"))
    model = _Model(0)
    meta = load_latest(tmp_path, "abc", lambda m, a: model.load_state_dict(a))
    assert meta["loop"] == {"iteration": 30} and model.w[0] == 30


def test_unusable_checkpoints_are_named_and_the_previous_one_is_tried(tmp_path, caplog):
    write_checkpoint(tmp_path, 10, {"config_hash": "abc", "loop": {}}, {"w": np.ones(4, np.float32)})
    newest = write_checkpoint(tmp_path, 20, {"config_hash": "abc", "loop": {}}, {"w": np.full(4, 2, np.float32)})
    newest.write_bytes(newest.read_bytes()[:200])  # truncated
    model = _Model(0)
    with caplog.at_level(logging.ERROR):
        meta = load_latest(tmp_path, "abc", lambda m, a: model.load_state_dict(a))
    assert meta["path"].endswith("ckpt-000000010.npz") and model.w[0] == 1
    assert str(newest) in caplog.text and "truncated" in caplog.text

    with pytest.raises(CheckpointError, match="another config") as error:
        read_checkpoint(list_checkpoints(tmp_path)[1], "other")
    assert "ckpt-000000010.npz" in str(error.value)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_latest(tmp_path, "abc", lambda m, a: _Model(0).load_state_dict({"w": np.ones(3)}))
    header = json.dumps({"format": 99, "config_hash": "abc"}).encode()
    np.savez(tmp_path / "ckpt-000000030.npz", meta=np.frombuffer(header, np.uint8))
    with pytest.raises(CheckpointError, match="format 99"):
        read_checkpoint(tmp_path / "ckpt-000000030.npz", "abc")


@pytest.mark.slow
def test_a_killed_run_with_corrupt_checkpoints_fails_with_the_file_named(tmp_path):
    args = ["model=slide", "train.epochs=400", *JOB]
    process = _start(tmp_path, args)
    _wait_for_checkpoints(tmp_path / "run" / "checkpoints" / "*", 2, process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    (folder,) = (tmp_path / "run" / "checkpoints").iterdir()
    for path in list_checkpoints(folder):
        path.write_bytes(b"not a checkpoint")
    result = run_cli(args, tmp_path, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "no usable checkpoint" in output and str(list_checkpoints(folder)[0]) in output
    assert "Traceback" not in output
    (run,) = job_runs(_client(tmp_path))
    assert run.info.status == "FAILED"


# -- identity and stale runs -------------------------------------------------------------------
def test_config_hash_ignores_where_and_how_a_job_is_recorded():
    cfg = {"seed": 0, "train": {"lr": 0.1, "resume": "auto", "checkpoint_every_s": 600},
           "paths": {"root": "/a"}, "tracking": {"uri": "sqlite:///a"}, "model": {"name": "slide"}}
    moved = {**cfg, "paths": {"root": "/b"}, "tracking": {"uri": "http://x"},
             "train": {**cfg["train"], "resume": "never", "checkpoint_every_s": 5}}
    assert config_hash(cfg) == config_hash(moved)
    assert config_hash(cfg) != config_hash({**cfg, "train": {**cfg["train"], "lr": 0.2}})
    assert config_hash(cfg) != config_hash({**cfg, "seed": 1})


@pytest.mark.slow
def test_runs_whose_process_is_gone_are_ended_killed(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    experiment_id = ensure_store(uri, "e")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone_started = psutil.Process(gone.pid).create_time()
    gone.wait()
    me = psutil.Process()
    host = os.uname().nodename

    def beat(pid, started, at, where=host):
        return {"host": where, "pid": pid, "started": started, "at": at, "token": heartbeat_token(where, pid, started)}

    beats = {
        "dead here": beat(gone.pid, gone_started, time.time()),
        "alive here": beat(me.pid, me.create_time(), time.time() - 10_000),
        "pid reused": beat(me.pid, me.create_time() - 100, time.time()),
        "old elsewhere": beat(1, 0, time.time() - 1000, "elsewhere"),
        "fresh elsewhere": beat(1, 0, time.time() - 10, "elsewhere"),
    }
    ids = {}
    for name, value in beats.items():
        tracker = Tracker.start(uri, "e", run_name=name, tags={contract.HEARTBEAT: json.dumps(value)})
        ids[name] = tracker.run_id
    no_beat = Tracker.start(uri, "e", run_name="older version", tags={}).run_id
    ended = end_dead_runs(MlflowClient(tracking_uri=uri), experiment_id, stale_after_s=600, heartbeat_every_s=0)
    assert sorted(ended) == sorted(ids[n] for n in ("dead here", "pid reused", "old elsewhere"))
    client = MlflowClient(tracking_uri=uri)
    for name, run_id in {**ids, "older version": no_beat}.items():
        run = client.get_run(run_id)
        assert (run.info.status == "KILLED") == (run_id in ended), name
    assert "process" in client.get_run(ids["dead here"]).data.tags["mlflow.note.content"]
    assert local_verdict(beats["dead here"]) is True and local_verdict(beats["alive here"]) is False
    assert local_verdict(beats["old elsewhere"]) is None  # not this host's to judge
