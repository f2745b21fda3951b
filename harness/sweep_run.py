"""The parent MLflow run of a sweep: one run per `-m` sweep, the jobs' runs its children.

In the MLflow UI the runs table groups a sweep's jobs under this run (MLflow's nested runs: a
child carries the tag mlflow.parentRunId), its duration is the sweep's, and at the end it holds
what describes the whole sweep: Figure 3, the time-to-accuracy table and the headline
speed-ups (logged by reports.sweep_end, which finds it by its tags). A single job (`run.py`
without -m) has no parent and stays a top-level run.

The parent is created once, in the launching process, before any job starts
(harness.hydra_callbacks.SweepRunCallback). Its id reaches the jobs through a file in the sweep
folder (PARENT_RUN_FILE), the one channel every launcher shares: the basic launcher runs jobs
in the same process, joblib in worker processes of this machine, submitit on SLURM nodes that
read the sweep folder anyway (the launcher pickles the jobs there). An environment variable
would depend on each launcher passing the environment on.

Status of the parent at the end of the sweep:
- FINISHED when every job finished or was skipped: a skip (tf_gpu without a GPU) is an
  expected outcome that the sweep records, not an error, and the command exits 0;
- FAILED when any job failed. The parent says whether the sweep delivered what it was asked
  for, like the command's exit status: the group row is what a user scanning the runs table
  sees first (often collapsed), and a red mark there sends them to the failed child. The
  reports of the other jobs are still built and logged to it;
- KILLED when the sweep process ended without reaching the end of the sweep (Ctrl-C, a
  launcher error): an exit hook ends the parent then, so it never stays RUNNING.
"""
from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import socket
from pathlib import Path
from typing import Sequence

from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE
from omegaconf import DictConfig, OmegaConf

import contract
from harness.tracking import Tracker, with_retries

log = logging.getLogger(__name__)

# MLflow 3.17's UI lays a page out for GenAI or for model training by a per-browser toggle
# (default GenAI, kept in the browser's localStorage), not by the experiment's
# mlflow.experimentKind tag (mlflow/mlflow#24498); this URL parameter selects model training.
UI_TRAINING_VIEW = "?workflowType=machine_learning"
LOCAL_UI = "http://127.0.0.1:5000"  # where the README's `mlflow ui` command serves a local store
PARENT_RUN_FILE = "mlflow_parent_run.json"  # in the sweep folder: {"run_id", "uri", "experiment"}
SWEEP_LOCK_FILE = "sweep.lock"  # in the sweep folder: held (flock) by the sweep's launching process


class SweepFolderBusy(RuntimeError):
    """Another live sweep holds the sweep folder."""


def hold_sweep_folder(sweep_dir: str | Path) -> int:
    """Lock the sweep folder for this sweep (an exclusive flock on SWEEP_LOCK_FILE, released by
    the kernel when the process ends, however it ends); returns the descriptor to keep open.
    Two sweeps in one folder would overwrite each other's parent-run file and status files and
    mix their reports: the second is refused here, before it creates anything."""
    folder = Path(sweep_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / SWEEP_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace") or "unknown"
        os.close(fd)
        raise SweepFolderBusy(f"sweep folder {folder} is in use by another sweep that is still running ({holder}); "
                              "every sweep needs its own folder: the default name has a random suffix, a "
                              "hydra.sweep.dir given by hand must differ") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
    return fd


def preset_name(config: DictConfig) -> str | None:
    """The experiment preset the sweep was started with (conf/preset/NAME), if any."""
    return OmegaConf.select(config, "hydra.runtime.choices.preset", default=None)


def sweep_run_name(config: DictConfig) -> str:
    """'<preset> <sweep folder>', e.g. 'figure3 2026-11-03_14-05-12'; 'sweep ...' without one."""
    return f"{preset_name(config) or 'sweep'} {Path(str(config.hydra.sweep.dir)).name}"


def sweeper_params(config: DictConfig) -> str:
    """What the preset itself sweeps (hydra.sweeper.params), as 'key=a,b key2=c,d'."""
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    return " ".join(f"{key}={value}" for key, value in params.items())


def sweep_params(config: DictConfig) -> dict[str, str]:
    """The sweep's definition as run params: preset, command-line overrides, the preset's own
    sweep, the launcher. (The jobs' runs carry each job's full resolved config.)"""
    launcher = OmegaConf.select(config, "hydra.launcher._target_", default="") or ""
    return {
        "sweep.preset": preset_name(config) or "none",
        "sweep.overrides": " ".join(config.hydra.overrides.task) or "none",
        "sweep.preset_params": sweeper_params(config) or "none",
        "sweep.launcher": launcher.rsplit(".", 1)[-1],
        "sweep.n_jobs": str(OmegaConf.select(config, "hydra.launcher.n_jobs", default=1)),
    }


def describe(config: DictConfig) -> str:
    """The run's description (MLflow's note, shown on the run page)."""
    overrides = " ".join(config.hydra.overrides.task)
    return (f"Hydra sweep `python run.py -m {overrides}`; every job of the sweep is a child run. "
            "Figure 3, the time-to-accuracy table and the other reports are among this run's "
            "artifacts (also in the sweep folder "
            f"{config.hydra.sweep.dir}), the headline speed-ups (speedup/...) among its metrics.")


def start_sweep_run(config: DictConfig, tags: dict[str, str]) -> Tracker:
    """Create the sweep's parent run and tell the jobs its id (PARENT_RUN_FILE)."""
    tracking = config.tracking
    sweep_dir = Path(str(config.hydra.sweep.dir))
    tracker = Tracker.start(tracking.uri, tracking.experiment, run_name=sweep_run_name(config),
                            tags={**tags, contract.KIND: contract.KIND_SWEEP, contract.SWEEP_ID: str(config.hydra.sweep.dir),
                                  contract.STATUS: "running", MLFLOW_RUN_NOTE: describe(config)},
                            artifact_root=tracking.get("artifact_root"))
    tracker.log_params(sweep_params(config))
    # as Hydra composed it (its own multirun.yaml): the sweep's overrides under hydra.overrides
    tracker.log_text(OmegaConf.to_yaml(config), "config/multirun.yaml")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / PARENT_RUN_FILE).write_text(json.dumps(
        {"run_id": tracker.run_id, "uri": str(tracking.uri), "experiment": str(tracking.experiment)}))
    return tracker


def parent_run_id(sweep_dir: str | Path, uri: str, experiment: str) -> str | None:
    """The id of the sweep's parent run, for a job of the sweep in `sweep_dir`; None when the
    sweep has none (the callback is off) or it lives in another store or experiment than the
    job's (MLflow nests runs within one experiment only)."""
    try:
        found = json.loads((Path(sweep_dir) / PARENT_RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    if found.get("uri") != str(uri) or found.get("experiment") != str(experiment):
        log.warning("sweep parent run %s is in %s/%s, this job logs to %s/%s: not nested",
                    found.get("run_id"), found.get("uri"), found.get("experiment"), uri, experiment)
        return None
    return found.get("run_id")


def ui_link(uri: str, experiment_id: str) -> str:
    """Where to look at the sweep: the experiment's runs page in the MLflow UI, in its model
    training view. A tracking server serves the UI itself; a local store needs `mlflow ui`."""
    page = f"/#/harness/{experiment_id}/runs{UI_TRAINING_VIEW}"
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/") + page
    return (f"{LOCAL_UI}{page} (start the UI first: mlflow ui --backend-store-uri {uri} "
            f"--host 127.0.0.1 --port 5000 --workers 1)")


def sweep_status(job_statuses: Sequence[str]) -> str:
    """The parent's harness status from its jobs' (module docstring): failed if any failed."""
    return "failed" if "failed" in job_statuses else "finished"


def end_sweep_run(tracker: Tracker, job_statuses: Sequence[str]) -> str:
    """End the parent FINISHED or FAILED (sweep_status), with the job counts as tags."""
    status = sweep_status(job_statuses)
    counts = {f"jobs_{s}": str(sum(1 for j in job_statuses if j == s))
              for s in ("finished", "skipped", "failed", "killed")}
    tracker.end("FAILED" if status == "failed" else "FINISHED",
                {contract.STATUS: status, "jobs": str(len(job_statuses)), **counts})
    return status


def end_if_still_running(tracker: Tracker) -> None:
    """Exit hook: a sweep that stopped before its end (Ctrl-C, a launcher error) leaves its
    parent KILLED instead of RUNNING forever."""
    if tracker.ended:
        return
    try:
        if with_retries(MlflowClient(tracking_uri=tracker.client.tracking_uri).get_run,
                         tracker.run_id).info.status == "RUNNING":
            tracker.end("KILLED", {contract.STATUS: "killed"})
    except Exception as error:  # at interpreter exit: report, never raise
        log.warning("could not end the sweep's parent run %s: %s", tracker.run_id, error)


def end_at_exit(tracker: Tracker) -> None:
    atexit.register(end_if_still_running, tracker)
