"""Which MLflow run a job continues, and runs whose process is gone.

A job is identified by a hash of its resolved config (`config_hash`, tag `config_hash`), without
the settings that change where or how it is recorded but not what it computes (paths, tracking,
the resume and checkpoint settings, the progress bar). Running the same command again then
- reuses a FINISHED run of that config in a sweep (sweep.skip_finished: nothing to do again);
- continues a KILLED run of it (train.resume: auto) from its last checkpoint, in the same run;
- else starts a new run.

Heartbeats. A RUNNING run whose process was SIGKILLed (OOM killer, reboot, scancel) would stay
RUNNING for ever. So a running job's process writes a tag `heartbeat` = {host, pid, process
start time, unix time, token} every `tracking.heartbeat_every_s` seconds, from a thread (a long
step or evaluation does not delay it). Before a job picks its run, `end_dead_runs` ends KILLED,
with a note, every RUNNING run of the experiment whose process is gone. Anyone who may write to
the store can write that tag, so a verdict never rests on what the tag claims alone:
- on the host that wrote it, and only when its token checks out (an HMAC of host, pid and start
  time under a key that never leaves this host's temp folder), the process is gone at once when
  that pid with that start time no longer exists;
- otherwise (another host, or a token this host did not issue) a heartbeat older than
  `tracking.stale_after_s` only makes the run a suspect: it is ended after this process has
  watched its heartbeat stay unchanged for 2 x heartbeat_every_s + 5 s (the window of our own
  config, never of the tag), so a live process, which beats within that window, is never ended
  because of a forged or replayed tag.
Runs without a heartbeat (older versions) are left alone.

Resume lease. Two sweeps of one config can both find the same KILLED run. The one that continues
it is the one that logs the run's param `resume_lease.<end time of the stop>` first: MLflow params
are write-once (a second, different value is refused by the store, in one transaction), which
makes the param a compare-and-set that needs nothing beyond the tracking API. The other job
leaves that run to it (harness.job).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

import psutil
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

import contract
from harness.tracking import Tracker, with_retries

log = logging.getLogger(__name__)

# where or how a job is recorded, not what it computes: left out of its identity
_NOT_IDENTITY = {"paths", "tracking", "progress", "sweep"}
_NOT_IDENTITY_TRAIN = {"resume", "checkpoint_every_s", "checkpoint_keep"}
_NOT_IDENTITY_MODEL = {"role", "colour", "marker"}  # how reports show a model, not what it computes


def config_hash(config: Mapping[str, Any]) -> str:
    """16 hex digits of SHA-256 over the resolved config without _NOT_IDENTITY settings."""
    kept = {k: v for k, v in config.items() if k not in _NOT_IDENTITY}
    if isinstance(kept.get("train"), Mapping):
        kept["train"] = {k: v for k, v in kept["train"].items() if k not in _NOT_IDENTITY_TRAIN}
    if isinstance(kept.get("model"), Mapping):
        kept["model"] = {k: v for k, v in kept["model"].items() if k not in _NOT_IDENTITY_MODEL}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def repeat_group(config: Mapping[str, Any]) -> str:
    """config_hash of the config without its seed: the same for every repeat of a job."""
    return config_hash({k: v for k, v in config.items() if k != "seed"})


# -- heartbeats -----------------------------------------------------------------------------
def _host_key() -> bytes | None:
    """This user's secret on this host (created once, 0600, in a 0700 folder of the local temp
    folder, so that it does not travel with a shared home); None when that folder is not ours."""
    folder = Path(tempfile.gettempdir()) / f"slide-bench-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        log.warning("%s is not private to this user: heartbeats of this host are not trusted", folder)
        return None
    path = folder / "heartbeat.key"
    if not path.exists():
        draft = folder / f"heartbeat.key.{os.getpid()}"
        draft.write_bytes(secrets.token_bytes(32))
        draft.chmod(0o600)
        try:
            os.link(draft, path)  # atomic: the first process to link wins, the others read its key
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_bytes()


def heartbeat_token(host: str, pid: int, started: float) -> str | None:
    key = _host_key()
    if key is None:
        return None
    return hmac.new(key, f"{host}|{int(pid)}|{float(started):.2f}".encode(), hashlib.sha256).hexdigest()[:32]


def heartbeat_value() -> str:
    me = psutil.Process()
    host, started = socket.gethostname(), round(me.create_time(), 2)
    return json.dumps({"host": host, "pid": me.pid, "started": started, "at": round(time.time(), 1),
                       "token": heartbeat_token(host, me.pid, started)})


def local_verdict(beat: Mapping[str, Any]) -> bool | None:
    """Whether the process that wrote heartbeat `beat` has ended, judged here: only for a beat
    of this host whose token this host issued. None: not ours to judge (module docstring)."""
    try:
        pid, started = int(beat["pid"]), float(beat["started"])
    except (KeyError, TypeError, ValueError):
        return None
    if beat.get("host") != socket.gethostname():
        return None
    token = heartbeat_token(socket.gethostname(), pid, started)
    if token is None or not hmac.compare_digest(str(beat.get("token", "")), token):
        return None
    try:
        return abs(psutil.Process(pid).create_time() - started) > 1.0  # the pid was reused
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True
    except psutil.Error:
        return False


def looks_stale(beat: Mapping[str, Any], stale_after_s: float, now: float | None = None) -> bool:
    """A heartbeat older than stale_after_s: what makes a run a suspect, never a verdict."""
    now = time.time() if now is None else now
    try:
        return now - float(beat.get("at", 0)) > stale_after_s
    except (TypeError, ValueError):
        return True


def watch_window_s(heartbeat_every_s: float | None) -> float:
    """How long a suspect's heartbeat must stay unchanged before its run is ended: a live process
    beats at least once within it."""
    return 2.0 * (heartbeat_every_s or 0.0) + 5.0


class Heartbeat:
    """Writes the heartbeat tag of `run_id` now and then every `every_s` seconds from a daemon
    thread until stop(); None or 0: once, at start."""

    def __init__(self, client: MlflowClient, run_id: str, every_s: float | None):
        self.client, self.run_id, self.every_s = client, run_id, every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        try:
            with_retries(self.client.set_tag, self.run_id, contract.HEARTBEAT, heartbeat_value())
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


def end_dead_runs(client: MlflowClient, experiment_id: str, stale_after_s: float,
                  heartbeat_every_s: float | None) -> list[str]:
    """End KILLED every RUNNING run of the experiment whose process is gone; returns their ids.
    Waits up to watch_window_s(heartbeat_every_s) when a run is a suspect (module docstring)."""
    running = with_retries(client.search_runs, [experiment_id], filter_string="attributes.status = 'RUNNING'",
                            max_results=1000)
    dead, suspects = [], {}
    for run in running:
        raw = run.data.tags.get(contract.HEARTBEAT)
        try:
            beat = json.loads(raw) if raw is not None else None
        except ValueError:
            beat = None
        if not isinstance(beat, dict):
            continue
        verdict = local_verdict(beat)
        if verdict:
            dead.append((run, beat))
        elif verdict is None and looks_stale(beat, stale_after_s):
            suspects[run.info.run_id] = (run, beat, raw)
    if suspects:
        dead.extend(_silent(client, suspects, watch_window_s(heartbeat_every_s)))
    for run, beat in dead:
        _end_dead(client, run, beat)
    return [run.info.run_id for run, _ in dead]


def _silent(client: MlflowClient, suspects: dict, window_s: float) -> list:
    """The suspects whose heartbeat did not change, and that stayed RUNNING, for window_s."""
    log.info("%d RUNNING run(s) with an old heartbeat from another host: watching them for %.0f s before "
             "ending them", len(suspects), window_s)
    deadline = time.monotonic() + window_s
    while suspects and time.monotonic() < deadline:
        time.sleep(min(2.0, max(deadline - time.monotonic(), 0.0)))
        for run_id, (_, _, raw) in list(suspects.items()):
            now = with_retries(client.get_run, run_id)
            if now.info.status != "RUNNING" or now.data.tags.get(contract.HEARTBEAT) != raw:
                del suspects[run_id]  # it beat (alive) or someone else ended it
    return [(run, beat) for run, beat, _ in suspects.values()]


def _end_dead(client: MlflowClient, run: Run, beat: Mapping[str, Any]) -> None:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(beat.get("at", 0) or 0)))
    note = (f"Ended KILLED by the harness: its process (pid {beat.get('pid')} on {beat.get('host')}) was gone; "
            f"last heartbeat {when}. Killed without warning (SIGKILL, OOM killer, reboot): re-running the "
            "same command resumes it from its last checkpoint.")
    log.warning("run %s (%s) was left RUNNING by a process that is gone: marking it KILLED",
                run.info.run_id, run.info.run_name)
    Tracker(client, run.info.run_id).end("KILLED", {contract.STATUS: "killed", MLFLOW_RUN_NOTE: note})


def claim_resume(client: MlflowClient, run: Run) -> bool:
    """Take the lease to continue KILLED `run` (module docstring); False when another job has it."""
    key = f"{contract.RESUME_LEASE}.{run.info.end_time or 0}"
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    try:
        with_retries(client.log_param, run.info.run_id, key, holder)
    except MlflowException as error:
        if error.error_code != "INVALID_PARAMETER_VALUE":
            raise
        return False
    return with_retries(client.get_run, run.info.run_id).data.params.get(key) == holder


# -- previous runs of a config ---------------------------------------------------------------
def runs_of_config(client: MlflowClient, experiment_id: str, digest: str) -> list[Run]:
    """The runs of this config in the experiment, newest first."""
    return with_retries(client.search_runs, [experiment_id], filter_string=f"tags.{contract.CONFIG_HASH} = '{digest}'",
                         order_by=["attributes.start_time DESC"], max_results=200)


def finished_run(runs: list[Run]) -> Run | None:
    """The newest run that finished training (not one recorded as skipped)."""
    return next((r for r in runs if r.info.status == "FINISHED" and r.data.tags.get(contract.STATUS) == "finished"), None)


def resumable_run(runs: list[Run]) -> Run | None:
    """The newest run that was stopped before its end (KILLED), if no newer run of the config
    started after it: a FAILED one failed for a reason that resuming would meet again."""
    newest = runs[0] if runs else None
    return newest if newest is not None and newest.info.status == "KILLED" else None
