"""MLflow tracking for one job: one run, buffered metrics, and a run status that is right
whatever happens to the job (finished, failed, skipped, interrupted).

Every store call on sqlite costs an fsync (~24 ms, STACK.md), so metrics are buffered and
written with log_batch: when the buffer is large, when `flush_every_s` has passed, and when
the run ends for any reason.
"""
from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, Mapping

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

# MLflow's own limits per log_batch call
_MAX_METRICS_PER_BATCH = 1000
_MAX_PARAMS_PER_BATCH = 100
_MAX_PARAM_CHARS = 6000


def _with_retries(call, *args, attempts: int = 12, **kwargs):
    """Run a store call, retrying while a concurrent writer holds the sqlite lock (parallel
    sweeps: several jobs share one database file). Other errors propagate at once."""
    delay = 0.05
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except Exception as error:  # MlflowException wrapping sqlalchemy's OperationalError
            if "locked" not in str(error).lower() or attempt == attempts - 1:
                raise
            log.debug("store busy, retrying in %.2f s", delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _sqlite_path(uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(uri[len(prefix):]) if uri.startswith(prefix) else None


def ensure_store(uri: str, experiment: str, artifact_root: str | None = None) -> str:
    """Create (or migrate) the store and the experiment once, before any job logs to it.

    Two processes creating a fresh sqlite store at once race in MLflow's schema migration
    (STACK.md), so a parallel sweep calls this in the launching process first. On sqlite the
    database is switched to WAL journaling: 3x cheaper commits and readers never block writers.
    Returns the experiment id.
    """
    db = _sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=uri)
    if db is not None:
        with sqlite3.connect(db) as con:
            con.execute("PRAGMA journal_mode=WAL")
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(experiment, artifact_location=artifact_root)
    except Exception:  # another process created it between our lookup and our create
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise
        return found.experiment_id


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{'train': {'lr': 1e-3}} -> {'train.lr': '0.001'}; lists become their repr."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, prefix=f"{name}."))
        else:
            out[name] = str(value)[:_MAX_PARAM_CHARS]
    return out


class Tracker:
    """One MLflow run. Create with `Tracker.start` (new run) or `Tracker.attach` (a run
    started by the parent process of an isolated job)."""

    def __init__(self, client: MlflowClient, run_id: str, flush_every_s: float = 10.0,
                 max_buffer: int = 500):
        self.client = client
        self.run_id = run_id
        self.flush_every_s = flush_every_s
        self.max_buffer = max_buffer
        self._buffer: list[Metric] = []
        self._last_flush = time.monotonic()
        self.ended = False

    @classmethod
    def start(cls, uri: str, experiment: str, run_name: str, tags: Mapping[str, str],
              artifact_root: str | None = None, **kwargs) -> "Tracker":
        experiment_id = ensure_store(uri, experiment, artifact_root)
        client = MlflowClient(tracking_uri=uri)
        run = _with_retries(client.create_run, experiment_id, run_name=run_name, tags=dict(tags))
        return cls(client, run.info.run_id, **kwargs)

    @classmethod
    def attach(cls, uri: str, run_id: str, **kwargs) -> "Tracker":
        return cls(MlflowClient(tracking_uri=uri), run_id, **kwargs)

    # -- writing -------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [Param(k, str(v)[:_MAX_PARAM_CHARS]) for k, v in params.items()]
        for i in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            _with_retries(self.client.log_batch, self.run_id, params=items[i:i + _MAX_PARAMS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        items = [RunTag(k, str(v)) for k, v in tags.items()]
        _with_retries(self.client.log_batch, self.run_id, tags=items)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Buffered; written by flush()."""
        now_ms = int(time.time() * 1000)
        self._buffer.extend(Metric(k, float(v), now_ms, int(step)) for k, v in metrics.items())
        if len(self._buffer) >= self.max_buffer or time.monotonic() - self._last_flush > self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        pending, self._buffer = self._buffer, []
        for i in range(0, len(pending), _MAX_METRICS_PER_BATCH):
            _with_retries(self.client.log_batch, self.run_id, metrics=pending[i:i + _MAX_METRICS_PER_BATCH])
        self._last_flush = time.monotonic()

    def log_text(self, text: str, artifact_file: str) -> None:
        _with_retries(self.client.log_text, self.run_id, text, artifact_file)

    def end(self, status: str, tags: Mapping[str, Any] | None = None) -> None:
        """Flush, tag, and terminate the run as FINISHED / FAILED / KILLED. Safe to call twice:
        the first status wins."""
        if self.ended:
            return
        try:
            self.flush()
            if tags:
                self.set_tags(tags)
        finally:
            _with_retries(self.client.set_terminated, self.run_id, status=status)
            self.ended = True

    # -- reading -------------------------------------------------------------------------
    def status(self) -> str:
        return self.client.get_run(self.run_id).info.status
