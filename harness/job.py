"""One Hydra job = one MLflow run: build data, model and evaluator from the config, train,
and end the run with the right status whatever happens.

Isolated models (TensorFlow) run the whole job in a spawned subprocess, so that device
visibility and thread pools are fixed before TensorFlow is imported, and a sweep of
tf_cpu,tf_gpu in one process still gives each job its own settings. The parent creates the
run; the child attaches to it; if the child dies without ending the run (killed by the OS,
segfault), the parent marks it FAILED.

A job of a `-m` sweep is a child of the sweep's parent run (harness.sweep_run). A job that
cannot run here (JobSkipped: tf_gpu without a GPU) ends FINISHED, named "[skipped] <label>",
with its reason as tag skip_reason and as the run's description. Not KILLED (MLflow: stopped by
the user; this harness: Ctrl-C) nor FAILED (something broke, and the sweep exits non-zero): a
skip is a recorded outcome of a job that did all it could. The name is what makes it visible:
it is the one column every view of the runs table shows, and a prefix because the UI cuts
long names short. Reports go by the tag status=skipped and draw no curve for it.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import getpass
import inspect
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import get_class, instantiate
from mlflow.tracking import MlflowClient
from mlflow.utils.credentials import read_mlflow_creds
from mlflow.utils.mlflow_tags import (MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NOTE,
                                      MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE, MLFLOW_USER)
from omegaconf import DictConfig, OmegaConf

import contract
from harness.clock import Stopwatch
from harness.data.batching import eval_subset
from harness.data.datasets import Dataset, load_dataset
from harness.evaluation import Evaluator
from harness.job_state import Checkpointer, checkpoint_folder, load_latest, owned_checkpoint_folder
from harness.loop import LoopSettings, LoopState, train_and_evaluate
from harness.models.base import JobSkipped, ModelContext
from harness.resume import (Heartbeat, claim_resume, config_hash, end_dead_runs,
                            finished_run, repeat_group, resumable_run, runs_of_config)
from harness.stopping import STOP_SIGNALS, JobInterrupted, StopSignals
from harness.sweep_run import parent_run_id
from harness.sysinfo import git_revision, machine_tags, reset_peak_rss, start_environment, thp_mode
from harness.tracking import Tracker, ensure_store, flatten, with_retries

log = logging.getLogger(__name__)

STATUS_FILE = "job_status.json"  # written into the job's output folder; read by the sweep callback
SKIPPED_PREFIX = "[skipped] "  # a skipped job's run name starts with it
RESUME_MODES = ("auto", "never")


@dataclass(frozen=True)
class CheckpointPlan:
    """Where the job's checkpoints go, and whether it continues from them (a resumed run)."""

    folder: str
    config_hash: str
    resume: bool = False


def check_model_params(model_cfg: DictConfig) -> None:
    """Fail fast on a misspelt model option: compare the keys of model.params with the typed
    __init__ of its _target_ before any data is loaded."""
    target = model_cfg.params.get("_target_") if model_cfg.params is not None else None
    if not target:
        raise ValueError(f"model '{model_cfg.name}': model.params._target_ is not set")
    signature = inspect.signature(get_class(target).__init__)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return
    known = set(signature.parameters) - {"self", "ctx"}
    unknown = sorted(k for k in model_cfg.params if not k.startswith("_") and k not in known)
    if unknown:
        raise TypeError(f"model '{model_cfg.name}': unknown option(s) {unknown} for {target}; "
                        f"it takes {sorted(known)}")


def model_context(cfg: DictConfig, dataset: Dataset) -> ModelContext:
    t = cfg.train
    if t.adam not in ("lazy", "dense"):
        raise ValueError(f"train.adam must be 'lazy' or 'dense', got {t.adam!r}")
    labels = dataset.train.labels
    counts = np.bincount(labels.indices[labels.indptr[0]:labels.indptr[-1]], minlength=dataset.n_labels)
    return ModelContext(n_features=dataset.n_features, n_labels=dataset.n_labels,
                        hidden=tuple(cfg.network.hidden), lr=t.lr, beta1=t.beta1, beta2=t.beta2,
                        eps=t.eps, seed=cfg.seed, threads=t.threads, batch_size=t.batch_size,
                        init_std=cfg.network.init_std, adam=t.adam, label_counts=counts)


def _train(cfg: DictConfig, tracker: Tracker, label: str, plan: CheckpointPlan, stop: StopSignals) -> None:
    # this job's own peak memory, also when earlier jobs of a sweep ran in this process
    gc.collect()
    tracker.set_tags({"peak_rss_scope": "job" if reset_peak_rss() else "process"})
    dataset = load_dataset(cfg.dataset, Path(cfg.paths.cache_dir))
    if not tracker.resumed:
        tracker.log_dataset(dataset)
        tracker.log_params({"data.n_features": dataset.n_features, "data.n_labels": dataset.n_labels,
                            "data.n_train": dataset.train.features.n_rows,
                            "data.n_test": dataset.test.features.n_rows})
    # _partial_: Hydra would turn a dataclass keyword into a config node; the model gets the
    # ModelContext object itself.
    with Stopwatch() as setup:  # network construction, incl. SLIDE's first hash-table build
        model = instantiate(cfg.model.params, _partial_=True)(ctx=model_context(cfg, dataset))
    tracker.log_metrics({"time/setup_s": setup.seconds}, step=0)
    try:
        tags = model.describe()
        if contract.THREADS in tags and tags[contract.THREADS] != str(cfg.train.threads):
            log.warning("%s runs on %s threads, not the %s requested (train.threads)", label, tags[contract.THREADS],
                        cfg.train.threads)
        tracker.set_tags(tags)
        resolved = getattr(model, "resolved_params", None)  # optional: what "auto" settings became
        if resolved is not None and not tracker.resumed:
            tracker.log_params(resolved())
        start = _restore(model, plan, tracker, label) if plan.resume else None
        subset = eval_subset(dataset.test.features.n_rows, cfg.train.eval_samples, cfg.seed)
        evaluator = Evaluator(dataset.test.features, dataset.test.labels, subset)
        settings = LoopSettings(epochs=cfg.train.epochs, batch_size=cfg.train.batch_size, seed=cfg.seed,
                                eval_every=cfg.train.eval_every, eval_every_s=cfg.train.eval_every_s,
                                log_every=cfg.train.log_every,
                                max_train_seconds=cfg.train.max_train_seconds,
                                final_eval=cfg.train.final_eval)
        checkpoints = Checkpointer(plan.folder, plan.config_hash, tracker.run_id, cfg.train.checkpoint_every_s,
                                   cfg.train.checkpoint_keep, tracker)
        train_and_evaluate(model, dataset.train, evaluator, tracker, settings,
                           show_progress=cfg.progress, label=label, checkpoints=checkpoints,
                           stop=stop, start=start)
    finally:
        model.close()


def _restore(model, plan: CheckpointPlan, tracker: Tracker, label: str) -> LoopState | None:
    """The resumed job's model from its newest usable checkpoint; the loop's position, or None
    (start from the beginning, in the same run) when it was stopped before its first one."""
    with Stopwatch() as restore:
        meta = load_latest(plan.folder, plan.config_hash, lambda _meta, arrays: model.load_state_dict(arrays))
    if meta is None:
        log.warning("%s: no checkpoint in %s: training again from the start, in the same run", label, plan.folder)
        return None
    state = LoopState.from_dict(meta["loop"])
    log.info("%s resumes from %s (iteration %d, %.1f s of training) in %.2f s", label, meta["path"],
             state.iteration, state.train_s, restore.seconds)
    previous = tracker.client.get_run(tracker.run_id).data.tags.get(contract.RESUMES, "0")
    count = int(previous) if previous.isdigit() else 0  # a tag anyone could have written
    tracker.set_tags({contract.RESUMES: str(count + 1), "resumed_from": meta["path"]})
    tracker.log_metrics({"checkpoint/restore_s": restore.seconds}, step=state.iteration)
    return state


def _end_failed(tracker: Tracker, error: Exception, what: str) -> str:
    """End the run FAILED with the error as a tag and the traceback of the exception being
    handled as an artifact (called from an except block); returns the status."""
    log.error("%s: %s: %s", what, type(error).__name__, error)
    try:
        tracker.log_text(traceback.format_exc(), "error/traceback.txt")
    finally:
        tracker.end("FAILED", {contract.STATUS: "failed", contract.FAILURE: f"{type(error).__name__}: {error}"[:5000]})
    return "failed"


def _end_skipped(tracker: Tracker, label: str, reason: str) -> str:
    """End the run of a job that could not run here, visibly (module docstring)."""
    log.warning("%s skipped: %s", label, reason)
    tracker.rename(SKIPPED_PREFIX + label)
    tracker.end("FINISHED", {contract.STATUS: "skipped", contract.SKIP_REASON: reason,
                             MLFLOW_RUN_NOTE: f"Skipped: {reason}"})
    return "skipped"


def run_tracked(cfg: DictConfig, tracker: Tracker, label: str, plan: CheckpointPlan) -> str:
    """Train and end the run: finished / skipped / failed (traceback logged) / killed (a stop
    signal: harness.stopping; JobInterrupted propagates). MLflow's system metrics and the
    run's heartbeat come from here, the process that trains (an isolated job's child)."""
    try:
        with tracker.system_metrics(), Heartbeat(tracker.client, tracker.run_id, cfg.tracking.heartbeat_every_s), \
                StopSignals() as stop:
            _train(cfg, tracker, label, plan, stop)
    except JobSkipped as skip:
        return _end_skipped(tracker, label, str(skip))
    except KeyboardInterrupt as stopped:
        _end_killed(tracker, stopped)
        raise
    except Exception as error:  # the sweep must go on: record and report, don't propagate
        return _end_failed(tracker, error, f"{label} failed")
    tracker.end("FINISHED", {contract.STATUS: "finished"})
    return "finished"


def _end_killed(tracker: Tracker, stopped: BaseException) -> None:
    how = signal.Signals(stopped.signum).name if isinstance(stopped, JobInterrupted) else "KeyboardInterrupt"
    tracker.end("KILLED", {contract.STATUS: "killed", contract.STOPPED_BY: how})


HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"  # glibc: madvise(MADV_HUGEPAGE) on its large mappings


def isolated_environment(cfg: DictConfig) -> dict[str, str]:
    """The environment an isolated job's process must START with: the model's env, thread
    counts, and (huge_pages, where the kernel's THP mode allows it) glibc's huge-page tunable.
    glibc reads GLIBC_TUNABLES only at process start, so setting it inside the child is too late:
    TF frees and re-faults its large per-step buffers in 4 KB pages otherwise, a large share of
    a 670k-label step (docs/pitfalls.md, TensorFlow; perf/page_faults_per_step shows it)."""
    env = {k: str(v) for k, v in cfg.model.env.items()}
    threads = str(cfg.train.threads)
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = threads
    if cfg.model.get("huge_pages", False) and thp_mode() in ("always", "madvise"):
        current = env.get("GLIBC_TUNABLES", os.environ.get("GLIBC_TUNABLES", ""))
        if HUGE_PAGES_TUNABLE not in current.split(":"):
            env["GLIBC_TUNABLES"] = ":".join(t for t in (current, HUGE_PAGES_TUNABLE) if t)
    return env


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """os.environ with `values` set, restored afterwards: a child spawned inside inherits it
    from its first instruction on."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _die_with_parent() -> None:
    """Linux: this process gets SIGTERM when the process that spawned it dies (a SIGKILLed
    sweep), so it checkpoints and ends its run instead of training on as an orphan."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _isolated_main(cfg_container: dict, run_id: str, label: str, plan: dict) -> None:
    """Entry point of the spawned subprocess (its environment was set by the parent)."""
    _die_with_parent()
    cfg = OmegaConf.create(cfg_container)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    plan = CheckpointPlan(**plan)
    tracker = Tracker.attach(cfg.tracking.uri, run_id, resumed=plan.resume, flush_every_s=cfg.tracking.flush_every_s,
                             system_metrics_every_s=cfg.tracking.system_metrics_every_s)
    # what the process really started with, not what the config asked for
    started = HUGE_PAGES_TUNABLE in start_environment().get("GLIBC_TUNABLES", "").split(":")
    tracker.set_tags({"huge_pages": "on" if started else "off", "thp_mode": thp_mode()})
    try:
        run_tracked(cfg, tracker, label, plan)
    except JobInterrupted as stopped:
        sys.exit(stopped.exit_code)


@contextlib.contextmanager
def _spawn_start_method():
    """A spawned child re-applies its parent's default start method; inside a joblib (loky)
    worker that is 'loky', which a fresh interpreter does not know: spawn's own for the start."""
    previous = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method("spawn", force=True)
    try:
        yield
    finally:
        multiprocessing.set_start_method(previous, force=True)


@contextlib.contextmanager
def _passing_signals_to(process):
    """While the parent waits for an isolated job: a stop signal (harness.stopping) is
    passed on to the child as SIGTERM, once (the child checkpoints and ends its run KILLED);
    a second Ctrl-C raises KeyboardInterrupt here. Yields a list that gets the signal number."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handle(signum, frame):
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not received:
            received.append(signum)
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    saved = {signum: signal.signal(signum, handle) for signum in STOP_SIGNALS}
    try:
        yield received
    finally:
        for signum, previous in saved.items():
            signal.signal(signum, previous)


def _stop_child(process) -> None:
    """After a second Ctrl-C: give the child a moment to end its run, then kill it."""
    process.join(timeout=5)
    if process.is_alive():
        process.kill()
        process.join()


def _run_isolated(cfg: DictConfig, cfg_container: dict, tracker: Tracker, label: str, plan: CheckpointPlan) -> str:
    process = multiprocessing.get_context("spawn").Process(
        target=_isolated_main, args=(cfg_container, tracker.run_id, label, asdict(plan)), name=f"job-{label}")
    with _environment(isolated_environment(cfg)), _spawn_start_method():
        process.start()
    try:
        with _passing_signals_to(process) as received:
            process.join()
    except KeyboardInterrupt:
        _stop_child(process)
        tracker.end("KILLED", {contract.STATUS: "killed", contract.STOPPED_BY: "KeyboardInterrupt"})
        raise
    run = tracker.client.get_run(tracker.run_id)
    if run.info.status == "RUNNING":  # the child died without ending the run
        return _end_dead_child(tracker, label, process.exitcode)
    if received or run.info.status == "KILLED":
        raise JobInterrupted(received[0] if received else signal.SIGTERM)
    return run.data.tags.get(contract.STATUS, "failed")


def _end_dead_child(tracker: Tracker, label: str, exitcode: int | None) -> str:
    """KILLED (resumable) when a signal killed the child (the OOM killer's SIGKILL), else FAILED."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        reason = f"the job's subprocess was killed by {name} (the OOM killer?) before ending its run"
        log.error("%s killed: %s", label, reason)
        tracker.end("KILLED", {contract.STATUS: "killed", contract.STOPPED_BY: name, contract.FAILURE: reason})
        return "killed"
    reason = f"the job's subprocess exited with code {exitcode} before ending its run"
    log.error("%s failed: %s", label, reason)
    tracker.end("FAILED", {contract.STATUS: "failed", contract.FAILURE: reason})
    return "failed"


def source_tags(root: str | os.PathLike) -> dict[str, str]:
    """The code a run comes from and who ran it: our git_rev ('-dirty' when the work tree has
    changes) and MLflow's own source and user tags, which fill the UI's Source and User columns
    (MLflow's fluent API sets them; the client's create_run, which the harness uses, does not).
    The user is the tracking server's login when there is one, else the OS user."""
    revision = git_revision(root)
    return {"git_rev": revision, MLFLOW_USER: read_mlflow_creds().username or getpass.getuser(),
            MLFLOW_SOURCE_TYPE: "LOCAL",
            MLFLOW_SOURCE_NAME: str(Path(root) / "run.py"),
            MLFLOW_GIT_COMMIT: revision.removesuffix("-dirty")}


def base_tags(cfg: DictConfig, job: dict[str, Any]) -> dict[str, str]:
    """Tags a job's run starts with; a job of a sweep also names the sweep's parent run."""
    parent = parent_run_id(job["sweep_id"], cfg.tracking.uri, cfg.tracking.experiment) \
        if job.get("multirun") else None
    return {
        **({MLFLOW_PARENT_RUN_ID: parent} if parent else {}),
        **source_tags(cfg.paths.root),
        contract.MODEL: cfg.model.name,
        contract.DATASET: cfg.dataset.name,
        contract.DEVICE: cfg.model.device,
        contract.THREADS: str(cfg.train.threads),
        contract.SWEEP_ID: job["sweep_id"],
        contract.JOB_NUM: str(job["num"]),
        contract.STATUS: "running",
        **machine_tags(),
    }


def run_job(cfg: DictConfig, job: dict[str, Any]) -> str:
    """Run one job; returns its status. `job` carries what HydraConfig knows: num, sweep_id,
    output_dir, multirun, owned_roots (run.py). Never raises for a failing model (the sweep goes on); a stop signal
    (KeyboardInterrupt, JobInterrupted) does.

    Which run it logs to (harness.resume): in a sweep, a FINISHED run of the same config
    is reused instead (sweep.skip_finished); a KILLED one is continued from its checkpoint
    (train.resume=auto) by the job that wins its resume lease (the others skip); else a new run."""
    label = f"{cfg.model.name}/{cfg.dataset.name}/{job['num']}"
    output_dir = Path(job["output_dir"])
    output_dir.mkdir(parents=True, exist_ok=True)
    if cfg.train.resume not in RESUME_MODES:
        raise ValueError(f"train.resume must be one of {RESUME_MODES}, got {cfg.train.resume!r}")
    cfg_container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # a key conf/ forgot: fail here
    digest = config_hash(cfg_container)
    tags = {**base_tags(cfg, job), contract.CONFIG_HASH: digest, contract.REPEAT_GROUP: repeat_group(cfg_container)}
    experiment_id = ensure_store(cfg.tracking.uri, cfg.tracking.experiment, cfg.tracking.get("artifact_root"))
    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    end_dead_runs(client, experiment_id, cfg.tracking.stale_after_s, cfg.tracking.heartbeat_every_s)
    previous = runs_of_config(client, experiment_id, digest)
    done = finished_run(previous) if job.get("multirun") and cfg.sweep.skip_finished else None
    if done is not None:
        return _reuse_finished(client, done, tags, label, output_dir)
    stopped = resumable_run(previous) if cfg.train.resume == "auto" else None
    if stopped is not None and not claim_resume(client, stopped):
        return _leave_to_lease_holder(stopped, label, output_dir)
    try:
        tracker, plan = _open_run(cfg, job, label, tags, stopped)
    except BaseException:
        if stopped is not None:  # lease taken but the run not reopened: stop it anew (a new lease)
            with_retries(client.set_terminated, stopped.info.run_id, status="KILLED")
        raise
    status = "failed"
    try:
        if not tracker.resumed:
            tracker.log_params(flatten(cfg_container))
            tracker.log_text(OmegaConf.to_yaml(cfg_container), "config/config.yaml")
        check_model_params(cfg.model)
        if cfg.model.isolate:
            status = _run_isolated(cfg, cfg_container, tracker, label, plan)
        else:
            status = run_tracked(cfg, tracker, label, plan)
    except KeyboardInterrupt as interrupted:
        _end_killed(tracker, interrupted)
        status = "killed"
        raise
    except Exception as error:  # bad config etc.: still one FAILED run, and the sweep goes on
        status = _end_failed(tracker, error, f"{label} failed before training")
    finally:
        _write_status(output_dir, status, tracker.run_id, label)
    return status


def _open_run(cfg: DictConfig, job: dict[str, Any], label: str, tags: dict[str, str],
              stopped) -> tuple[Tracker, CheckpointPlan]:
    """The run the job logs to: `stopped` (a KILLED run of its config) continued, or a new one;
    and where its checkpoints are."""
    options = dict(flush_every_s=cfg.tracking.flush_every_s, system_metrics_every_s=cfg.tracking.system_metrics_every_s)
    if stopped is not None:
        tracker = Tracker.attach(cfg.tracking.uri, stopped.info.run_id, resumed=True, **options)
        folder = str(owned_checkpoint_folder(stopped.data.tags.get(contract.CHECKPOINT_DIR), tracker.run_id,
                                             job["sweep_id"], job["owned_roots"]))
        log.info("%s: continuing run %s (stopped before its end) from %s", label, tracker.run_id, folder)
        tracker.set_tags(_join_sweep_tags(tags))
    else:
        tracker = Tracker.start(cfg.tracking.uri, cfg.tracking.experiment, run_name=label, tags=tags,
                                artifact_root=cfg.tracking.get("artifact_root"), **options)
        folder = str(checkpoint_folder(job["sweep_id"], tracker.run_id))
        tracker.set_tags({contract.CHECKPOINT_DIR: folder})
    Heartbeat(tracker.client, tracker.run_id, None).beat()  # this process, until training starts
    return tracker, CheckpointPlan(folder, tags[contract.CONFIG_HASH], resume=stopped is not None)


def _join_sweep_tags(tags: dict[str, str]) -> dict[str, str]:
    """The tags that make an earlier run part of this sweep (its parent, sweep and job number),
    so that this sweep's reports include it, and its repeat group (runs from before the tag)."""
    keys = (MLFLOW_PARENT_RUN_ID, contract.SWEEP_ID, contract.JOB_NUM, contract.REPEAT_GROUP)
    return {k: tags[k] for k in keys if k in tags}


def _leave_to_lease_holder(run, label: str, output_dir: Path) -> str:
    """Another job (another sweep of the same config) took the lease to continue `run`
    (harness.resume): this one does not train it a second time."""
    log.warning("%s: run %s is being continued by another job (it holds the run's resume lease): skipped here",
                label, run.info.run_id)
    _write_status(output_dir, "skipped", run.info.run_id, label, reused=True)
    return "skipped"


def _reuse_finished(client: MlflowClient, run, tags: dict[str, str], label: str, output_dir: Path) -> str:
    run_id = run.info.run_id
    log.info("%s: already FINISHED as run %s (same config): not run again (sweep.skip_finished=false runs it)",
             label, run_id)
    joined = _join_sweep_tags(tags)
    if joined:
        Tracker(client, run_id).set_tags(joined)
    _write_status(output_dir, "finished", run_id, label, reused=True)
    return "finished"


def _write_status(output_dir: Path, status: str, run_id: str, label: str, reused: bool = False) -> None:
    (output_dir / STATUS_FILE).write_text(json.dumps({"status": status, "run_id": run_id, "label": label,
                                                      "reused": reused}))
