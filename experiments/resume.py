"""Which MLflow run a job continues, and runs whose process is gone.

A job is identified by a hash of its resolved config (`config_hash`, tag `config_hash`), without
the settings that change where or how it is recorded but not what it computes (paths, tracking,
the resume and checkpoint settings, the progress bar). Running the same command again then
- reuses a FINISHED run of that config in a sweep (sweep.skip_finished: nothing to do again);
- continues a KILLED run of it (train.resume: auto) from its last checkpoint, in the same run;
- else starts a new run.

Heartbeats. A RUNNING run whose process was SIGKILLed (OOM killer, reboot, scancel) would stay
RUNNING for ever. So a running job's process writes a tag `heartbeat` = {host, pid, process
start time, unix time} every `tracking.heartbeat_every_s` seconds, from a thread (a long step
or evaluation does not delay it). Before a job picks its run, `end_dead_runs` ends KILLED, with
a note, every RUNNING run of the experiment whose process is gone: on this host when that
pid with that start time no longer exists (at once), on another host when its heartbeat is
older than `tracking.stale_after_s`. Runs without a heartbeat (older versions) are left alone.
"""
from __future__ import annotations

import hashlib
import json
import logging
import socket
import threading
import time
from typing import Any, Mapping

import psutil
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from experiments.tracking import Tracker, with_retries

log = logging.getLogger(__name__)

CONFIG_HASH_TAG = "config_hash"
# Repeats of a job: runs whose configs differ only in the seed share this tag (the reports draw
# them as one median curve with a band and bootstrap their speed-ups).
REPEAT_GROUP_TAG = "repeat_group"
HEARTBEAT_TAG = "heartbeat"
# where or how a job is recorded, not what it computes: left out of its identity
_NOT_IDENTITY = {"paths", "tracking", "progress", "sweep"}
_NOT_IDENTITY_TRAIN = {"resume", "checkpoint_every_s", "checkpoint_keep"}


def config_hash(config: Mapping[str, Any]) -> str:
    """16 hex digits of SHA-256 over the resolved config without _NOT_IDENTITY settings."""
    kept = {k: v for k, v in config.items() if k not in _NOT_IDENTITY}
    if isinstance(kept.get("train"), Mapping):
        kept["train"] = {k: v for k, v in kept["train"].items() if k not in _NOT_IDENTITY_TRAIN}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def repeat_group(config: Mapping[str, Any]) -> str:
    """config_hash of the config without its seed: the same for every repeat of a job."""
    return config_hash({k: v for k, v in config.items() if k != "seed"})


# -- heartbeats -----------------------------------------------------------------------------
def heartbeat_value() -> str:
    me = psutil.Process()
    return json.dumps({"host": socket.gethostname(), "pid": me.pid, "started": round(me.create_time(), 2),
                       "at": round(time.time(), 1)})


def process_gone(beat: Mapping[str, Any], stale_after_s: float, now: float | None = None) -> bool:
    """Whether the process that wrote heartbeat `beat` has ended (module docstring)."""
    now = time.time() if now is None else now
    if beat.get("host") != socket.gethostname():
        return now - float(beat.get("at", 0)) > stale_after_s
    try:
        process = psutil.Process(int(beat["pid"]))
        return abs(process.create_time() - float(beat["started"])) > 1.0  # the pid was reused
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True
    except (KeyError, ValueError, psutil.Error):
        return False


class Heartbeat:
    """Writes the heartbeat tag of `run_id` now and then every `every_s` seconds from a daemon
    thread until stop(); None or 0: once, at start."""

    def __init__(self, client: MlflowClient, run_id: str, every_s: float | None):
        self.client, self.run_id, self.every_s = client, run_id, every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        try:
            with_retries(self.client.set_tag, self.run_id, HEARTBEAT_TAG, heartbeat_value())
        except Exception as error:  # a missed beat must not end the job
            log.warning("heartbeat of run %s not written: %s", self.run_id, error)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.beat()

    def start(self) -> "Heartbeat":
        self.beat()
        if self.every_s:
            self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{self.run_id[:8]}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "Heartbeat":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def end_dead_runs(client: MlflowClient, experiment_id: str, stale_after_s: float) -> list[str]:
    """End KILLED every RUNNING run of the experiment whose process is gone; returns their ids."""
    running = with_retries(client.search_runs, [experiment_id], filter_string="attributes.status = 'RUNNING'",
                            max_results=1000)
    ended = []
    for run in running:
        raw = run.data.tags.get(HEARTBEAT_TAG)
        if raw is None:
            continue
        try:
            beat = json.loads(raw)
        except ValueError:
            continue
        if not process_gone(beat, stale_after_s):
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(beat.get("at", 0))))
        note = (f"Ended KILLED by the harness: its process (pid {beat.get('pid')} on {beat.get('host')}) was gone; "
                f"last heartbeat {when}. Killed without warning (SIGKILL, OOM killer, reboot): re-running the "
                "same command resumes it from its last checkpoint.")
        log.warning("run %s (%s) was left RUNNING by a process that is gone: marking it KILLED",
                    run.info.run_id, run.info.run_name)
        Tracker(client, run.info.run_id).end("KILLED", {"status": "killed", MLFLOW_RUN_NOTE: note})
        ended.append(run.info.run_id)
    return ended


# -- previous runs of a config ---------------------------------------------------------------
def runs_of_config(client: MlflowClient, experiment_id: str, digest: str) -> list[Run]:
    """The runs of this config in the experiment, newest first."""
    return with_retries(client.search_runs, [experiment_id], filter_string=f"tags.{CONFIG_HASH_TAG} = '{digest}'",
                         order_by=["attributes.start_time DESC"], max_results=200)


def finished_run(runs: list[Run]) -> Run | None:
    """The newest run that finished training (not one recorded as skipped)."""
    return next((r for r in runs if r.info.status == "FINISHED" and r.data.tags.get("status") == "finished"), None)


def resumable_run(runs: list[Run]) -> Run | None:
    """The newest run that was stopped before its end (KILLED), if no newer run of the config
    started after it: a FAILED one failed for a reason that resuming would meet again."""
    newest = runs[0] if runs else None
    return newest if newest is not None and newest.info.status == "KILLED" else None
