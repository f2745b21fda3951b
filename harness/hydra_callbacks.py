"""Hydra callbacks of the harness: prepare the tracking store before any job starts, give a
sweep its parent MLflow run, and turn the jobs' statuses into the process exit status (and the
parent run's status) at the end of a run or sweep.

Hydra calls on_*_start in the order of hydra.callbacks (conf/hydra/default.yaml) and on_*_end
in the reverse order: sweep_run comes before sweep_report there, so that the reports are
logged to the parent run before it ends."""
from __future__ import annotations

import json
import os
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from harness.job import STATUS_FILE, source_tags
from harness.resume import Heartbeat, end_dead_runs
from harness.sweep_run import end_at_exit, end_sweep_run, hold_sweep_folder, start_sweep_run, ui_link
from harness.sysinfo import machine_tags
from harness.tracking import Tracker, ensure_store, exit_on_access_error, refuse_sqlite_on_network_fs

log = logging.getLogger(__name__)

# Filled at the end of a run/sweep; run.py exits non-zero when it is not empty.
FAILED_JOBS: list[str] = []


def _collect_statuses(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob(STATUS_FILE))]


class TrackingStoreCallback(Callback):
    """Create/migrate the MLflow store once, in the launching process: parallel jobs creating
    a fresh sqlite store at the same time race in its schema migration (docs/pitfalls.md, MLflow)."""

    def _prepare(self, config: DictConfig) -> None:
        launcher = OmegaConf.select(config, "hydra.launcher._target_", default="") or ""
        if launcher.endswith("SlurmLauncher"):  # jobs on the cluster's nodes
            refuse_sqlite_on_network_fs(config.tracking.uri, launcher.rsplit(".", 1)[-1])
        with exit_on_access_error():
            ensure_store(config.tracking.uri, config.tracking.experiment, config.tracking.artifact_root)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._prepare(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._prepare(config)


class SweepRunCallback(Callback):
    """The sweep's parent MLflow run (harness.sweep_run): created before the jobs start,
    ended after the reports were logged to it, FAILED when a job failed."""

    def __init__(self) -> None:
        self.tracker: Tracker | None = None
        self.heartbeat: Heartbeat | None = None
        self.folder_lock: int | None = None

    def __getstate__(self) -> dict:
        """Launchers that run jobs in other processes (joblib) pickle Hydra's callbacks with
        them: the heartbeat's thread and the folder's lock stay here, in the sweep's process."""
        return {**self.__dict__, "heartbeat": None, "folder_lock": None}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.folder_lock = hold_sweep_folder(config.hydra.sweep.dir)  # before anything is written there
        tags = {**source_tags(config.paths.root), **machine_tags()}
        experiment_id = ensure_store(config.tracking.uri, config.tracking.experiment, config.tracking.artifact_root)
        # runs (this sweep's jobs among them) left RUNNING by a killed earlier sweep
        end_dead_runs(MlflowClient(tracking_uri=config.tracking.uri), experiment_id, config.tracking.stale_after_s,
                      config.tracking.heartbeat_every_s)
        with exit_on_access_error():  # a user who may read but not write: refused here
            self.tracker = start_sweep_run(config, tags)
        end_at_exit(self.tracker)  # ends it KILLED if the sweep never reaches on_multirun_end
        self.heartbeat = Heartbeat(self.tracker.client, self.tracker.run_id, config.tracking.heartbeat_every_s).start()
        log.info("sweep run %s (MLflow experiment %s)", self.tracker.run_id, config.tracking.experiment)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.tracker is None:
            return
        if self.heartbeat is not None:
            self.heartbeat.stop()
        statuses = [s["status"] for s in _collect_statuses(Path(config.hydra.sweep.dir))]
        end_sweep_run(self.tracker, statuses)
        if self.folder_lock is not None:
            os.close(self.folder_lock)
            self.folder_lock = None
        experiment_id = self.tracker.client.get_run(self.tracker.run_id).info.experiment_id
        print(f"MLflow: {ui_link(str(config.tracking.uri), experiment_id)}", flush=True)  # user-facing


class JobStatusCallback(Callback):
    """Counts failed jobs from the status files the jobs wrote (works for every launcher,
    including ones that run jobs in other processes or on other machines)."""

    def _finish(self, folder: Path) -> None:
        statuses = _collect_statuses(folder)
        failed = [s["label"] for s in statuses if s["status"] == "failed"]
        skipped = [s["label"] for s in statuses if s["status"] == "skipped"]
        FAILED_JOBS.extend(failed)
        if len(statuses) > 1 or failed or skipped:
            log.info("jobs: %d finished, %d skipped, %d failed%s", len(statuses) - len(failed) - len(skipped),
                     len(skipped), len(failed), f" ({', '.join(failed)})" if failed else "")

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._finish(Path(config.hydra.run.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._finish(Path(config.hydra.sweep.dir))


class ThreadBudgetCallback(Callback):
    """Warn when concurrent jobs x threads per job exceed the cores: timings of an
    oversubscribed sweep measure the scheduler, not the models."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        n_jobs = config.hydra.launcher.get("n_jobs")
        if n_jobs is None:
            return  # sequential launcher: one job at a time
        cores = os.cpu_count() or 1
        n_jobs = cores if n_jobs < 0 else n_jobs
        threads = config.train.threads
        if n_jobs * threads > cores:
            log.warning("%d parallel jobs x train.threads=%d = %d threads on %d cores: timings will be "
                        "distorted; use train.threads=%d", n_jobs, threads, n_jobs * threads, cores,
                        max(cores // n_jobs, 1))
