"""MLflow tracking for one job: one run, buffered metrics, and a run status that is right
whatever happens to the job (finished, failed, skipped, interrupted).

Every store call on sqlite costs an fsync (docs/pitfalls.md, MLflow), so metrics are buffered and
written with log_batch: when the buffer is large, when `flush_every_s` has passed, and when
the run ends for any reason.

Besides the harness's own metrics a run carries what MLflow's UI shows by itself: the data it
trained on as dataset inputs (the Dataset column), and CPU / memory / disk / network samples
from MLflow's system-metrics collector (a run's "System metrics" charts).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.credentials import read_mlflow_creds
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from harness.data.datasets import DataInput, Dataset

log = logging.getLogger(__name__)

# MLflow 3's UI opens an experiment by this tag: without it (or with "genai_development") on
# the GenAI overview of traces, with "custom_model_development" on the training runs. The
# value is the UI's own enum (server/js: CUSTOM_MODEL_DEVELOPMENT); no Python constant exists.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"

# MLflow's own limits per log_batch call
_MAX_METRICS_PER_BATCH = 1000
_MAX_PARAMS_PER_BATCH = 100
_MAX_PARAM_CHARS = 6000


class TrackingAccessError(RuntimeError):
    """The tracking server does not know who we are (HTTP 401) or does not let us do what a job
    needs (HTTP 403): raised before any training, with what to do about it."""


@contextlib.contextmanager
def explained_access(uri: str, experiment: str, action: str) -> Iterator[None]:
    """Turn a server's 401 / 403 during `action` into a TrackingAccessError saying which
    credentials were sent and where they come from (MLflow's MLFLOW_TRACKING_USERNAME /
    MLFLOW_TRACKING_PASSWORD, else ~/.mlflow/credentials)."""
    try:
        yield
    except MlflowException as error:
        if error.error_code not in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            raise
        user = read_mlflow_creds().username
        if error.error_code == "UNAUTHENTICATED":
            who = f"user {user!r}" if user else "no credentials"
            message = (f"the tracking server {uri} refused the login ({who}, HTTP 401): set "
                       "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or write them to "
                       "~/.mlflow/credentials (README, \"A shared tracking server\")")
        else:
            message = (f"the tracking server {uri} let user {user!r} in but not {action} in experiment "
                       f"{experiment!r} (HTTP 403): ask its admin for EDIT on it "
                       f"(scripts/tracking_users.py grant {user or 'USER'} EDIT)")
        raise TrackingAccessError(message) from None


ACCESS_EXIT_CODE = 2  # the command's exit status when the tracking server refuses us


@contextlib.contextmanager
def exit_on_access_error() -> Iterator[None]:
    """A TrackingAccessError ends the whole command at once with its one-line message and exit
    status ACCESS_EXIT_CODE (every other job would meet it too), not with a traceback."""
    try:
        yield
    except TrackingAccessError as error:
        log.error("%s", error)
        raise SystemExit(ACCESS_EXIT_CODE) from None


def with_retries(call, *args, attempts: int = 12, **kwargs):
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


def _duplicate_key(error: Exception) -> bool:
    """A unique-key violation in the store (sqlite's or PostgreSQL's words for it)."""
    text = str(error)
    return "UNIQUE constraint failed" in text or "duplicate key value" in text or "IntegrityError" in text


def _sqlite_path(uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(uri[len(prefix):]) if uri.startswith(prefix) else None


# network filesystems on which sqlite's locking cannot be trusted (sqlite.org/useovernet.html)
NETWORK_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "glusterfs",
                       "fuse.glusterfs", "fuse.sshfs", "fuse.cephfs", "afs", "9p", "ocfs2", "gfs2", "panfs", "wekafs"}


def filesystem_type(path: str | Path, mounts: str = "/proc/mounts") -> str | None:
    """The type of the filesystem that holds `path` (its longest mount point prefix)."""
    target = Path(path).resolve()
    best, best_type = -1, None
    try:
        lines = Path(mounts).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = Path(fields[1].replace("\\040", " "))
        if target.is_relative_to(point) and len(point.parts) > best:
            best, best_type = len(point.parts), fields[2]
    return best_type


def refuse_sqlite_on_network_fs(uri: str, launcher: str) -> None:
    """A sqlite store on a network filesystem, written by jobs on several nodes, corrupts or
    deadlocks (its locks do not hold there): refused for a cluster launcher, with what to use."""
    db = _sqlite_path(uri)
    if db is None:
        return
    kind = filesystem_type(db.parent)
    if kind in NETWORK_FILESYSTEMS:
        raise RuntimeError(f"tracking.uri={uri} is a sqlite file on a network filesystem ({kind}), and the "
                           f"{launcher} launcher runs jobs on several nodes that would all write it: sqlite's "
                           "locks do not hold there. Use a tracking server (tracking=server, "
                           "scripts/tracking_server.sh; README, \"A shared tracking server\").")


@contextlib.contextmanager
def _schema_lock(uri: str) -> Iterator[None]:
    """Serialise creating a sqlite store between processes, also of different sweeps: two
    processes creating a fresh store at once race in MLflow's schema migration
    (docs/pitfalls.md, MLflow). An flock on a file beside the database; a tracking server
    creates its own schema when it starts, so nothing is locked for it."""
    db = _sqlite_path(uri)
    if db is None:
        yield
        return
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # the lock goes with the file's closing


def ensure_store(uri: str, experiment: str, artifact_root: str | None = None) -> str:
    """Create (or migrate) the store and the experiment once, before any job logs to it, under
    a lock between processes (_schema_lock). On sqlite the database is switched to WAL
    journaling: cheaper commits, and readers never block writers.
    Returns the experiment id.
    """
    db = _sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    with _schema_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        if db is not None:
            with sqlite3.connect(db) as con:
                con.execute("PRAGMA journal_mode=WAL")
        with explained_access(uri, experiment, "create the experiment"):
            return _ensure_experiment(client, experiment, artifact_root)


def _ensure_experiment(client: MlflowClient, experiment: str, artifact_root: str | None) -> str:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        try:
            return client.create_experiment(experiment, artifact_location=artifact_root,
                                            tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})
        except Exception:  # another process created it between our lookup and our create
            found = client.get_experiment_by_name(experiment)
            if found is None:
                raise
    if EXPERIMENT_KIND_TAG not in found.tags:  # made before the harness set it: the GenAI view
        with_retries(client.set_experiment_tag, found.experiment_id, EXPERIMENT_KIND_TAG,
                      MODEL_TRAINING_KIND)
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
                 max_buffer: int = 500, system_metrics_every_s: float | None = None):
        self.client = client
        self.run_id = run_id
        self.flush_every_s = flush_every_s
        self.max_buffer = max_buffer
        self.system_metrics_every_s = system_metrics_every_s
        self._buffer: list[Metric] = []
        self._last_flush = time.monotonic()
        self.ended = False
        self.resumed = False
        # a resumed run: the (key, step) points a killed process had already written past its
        # last checkpoint; logging them again would give a step twice (see log_metrics)
        self._logged: dict[str, set[int]] = {}

    @classmethod
    def start(cls, uri: str, experiment: str, run_name: str, tags: Mapping[str, str],
              artifact_root: str | None = None, **kwargs) -> "Tracker":
        experiment_id = ensure_store(uri, experiment, artifact_root)
        client = MlflowClient(tracking_uri=uri)
        with explained_access(uri, experiment, "create runs"):
            run = with_retries(client.create_run, experiment_id, run_name=run_name, tags=dict(tags))
        return cls(client, run.info.run_id, **kwargs)

    @classmethod
    def attach(cls, uri: str, run_id: str, resumed: bool = False, **kwargs) -> "Tracker":
        """A run created elsewhere: by the parent of an isolated job, or, resumed=True, by an
        earlier process of this job that was stopped (the run is set RUNNING again)."""
        tracker = cls(MlflowClient(tracking_uri=uri), run_id, **kwargs)
        if resumed:
            tracker._reopen()
        return tracker

    def _reopen(self) -> None:
        self.resumed = True
        if self.status() != "RUNNING":
            with_retries(self.client.update_run, self.run_id, status="RUNNING")
        run = with_retries(self.client.get_run, self.run_id)
        for key in run.data.metrics:
            history = with_retries(self.client.get_metric_history, self.run_id, key)
            self._logged[key] = {m.step for m in history}

    # -- writing -------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [Param(k, str(v)[:_MAX_PARAM_CHARS]) for k, v in params.items()]
        for i in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            with_retries(self.client.log_batch, self.run_id, params=items[i:i + _MAX_PARAMS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        items = [RunTag(k, str(v)) for k, v in tags.items()]
        with_retries(self.client.log_batch, self.run_id, tags=items)

    def rename(self, name: str) -> None:
        with_retries(self.client.update_run, self.run_id, name=name)

    def log_dataset(self, dataset: Dataset) -> None:
        """The run's data as MLflow dataset inputs (see dataset_inputs); nothing for a Dataset
        that does not say where it came from."""
        inputs = dataset_inputs(dataset)
        if inputs:
            log_inputs(self.client, self.run_id, inputs)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Buffered; written by flush()."""
        now_ms = int(time.time() * 1000)
        self._buffer.extend(Metric(k, float(v), now_ms, int(step)) for k, v in metrics.items()
                            if int(step) not in self._logged.get(k, ()))
        if len(self._buffer) >= self.max_buffer or time.monotonic() - self._last_flush > self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        pending, self._buffer = self._buffer, []
        for i in range(0, len(pending), _MAX_METRICS_PER_BATCH):
            with_retries(self.client.log_batch, self.run_id, metrics=pending[i:i + _MAX_METRICS_PER_BATCH])
        self._last_flush = time.monotonic()

    def log_text(self, text: str, artifact_file: str) -> None:
        with_retries(self.client.log_text, self.run_id, text, artifact_file)

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
            with_retries(self.client.set_terminated, self.run_id, status=status)
            self.ended = True

    @contextlib.contextmanager
    def system_metrics(self) -> Iterator[None]:
        """MLflow's system-metrics collector on this run while the block runs (system/cpu_...,
        system/system_memory_usage_megabytes, disk, network; GPU where there is one), sampled
        every `system_metrics_every_s` seconds in a thread of THIS process: enter it where the
        training happens (an isolated job's child), so that on a cluster the samples describe
        the node that trains. None or 0: off.

        Cost: per sample, psutil reads and two store calls (the run's status, a log_batch) on a
        background thread, a few milliseconds of CPU on the local sqlite store; at the default
        10 s interval a negligible share of one core, below the noise of the training clock.
        A last sample is taken when the block ends (the collector drops the one it was
        gathering), so a job shorter than one interval has a point too."""
        if not self.system_metrics_every_s:
            yield
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        # its start/stop/no-GPU INFO lines would be printed for every job of a sweep
        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
        monitor = SystemMetricsMonitor(self.run_id, sampling_interval=self.system_metrics_every_s,
                                       resume_logging=self.resumed, tracking_uri=self.client.tracking_uri)
        monitor.start()
        try:
            yield
        finally:
            monitor.finish()  # joins its thread: the calls below do not race it
            try:
                monitor.collect_metrics()
                monitor.publish_metrics(monitor.aggregate_metrics())
                monitor.mlflow_logger.flush()
            except Exception as error:  # a lost sample must not change how the job ends
                log.warning("last system-metrics sample not logged: %s", error)

    # -- reading -------------------------------------------------------------------------
    def status(self) -> str:
        return self.client.get_run(self.run_id).info.status


def log_inputs(client: MlflowClient, run_id: str, inputs: list[DatasetInput]) -> None:
    """client.log_inputs, safe when several processes log the same new dataset at once: MLflow
    looks a dataset up, then inserts it, so two jobs (parallel jobs, two sweeps) can collide on
    its unique key; the loser's next try finds the winner's row and only links it to the run."""
    for attempt in range(3):
        try:
            with_retries(client.log_inputs, run_id, datasets=inputs)
            return
        except MlflowException as error:
            if not _duplicate_key(error) or attempt == 2:
                raise
            time.sleep(0.1)


class _ShapedDataset(MetaDataset):
    """MLflow's metadata-only dataset (our data lives in the harness's cache, not in MLflow)
    with the data's shape as its profile, which the UI shows in the dataset's details."""

    def __init__(self, source, name: str, digest: str, profile: Mapping[str, int]):
        self._profile = dict(profile)
        super().__init__(source, name=name, digest=digest)

    @property
    def profile(self) -> dict[str, int]:
        return self._profile

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self._profile)}


def dataset_inputs(dataset: Dataset) -> list[DatasetInput]:
    """One MLflow dataset input per cache entry the data came from (Dataset.inputs): named
    after the dataset config, digest = the entry's cache key (so runs on the same data share
    one MLflow dataset, and a changed file or spec shows as a new digest), source = the file
    path ("local") or the generator spec ("code"), profile = the shape the run saw, context =
    the splits the entry holds (train, test, train+test)."""
    profile = {"n_train": dataset.train.features.n_rows, "n_test": dataset.test.features.n_rows,
               "n_features": dataset.n_features, "n_labels": dataset.n_labels}
    return [DatasetInput(_ShapedDataset(_source(item), dataset.name, item.key, profile)._to_mlflow_entity(),
                         tags=[InputTag(MLFLOW_DATASET_CONTEXT, item.splits)])
            for item in dataset.inputs]


def _source(item: DataInput):
    if item.path is not None:
        return LocalArtifactDatasetSource(item.path)
    return CodeDatasetSource({"generator": "harness.data.synthetic", **(item.generator or {})})
