"""Fixture MLflow runs shaped like the harness contract (/work/notes/contract.md), for the
reports tests: histories are generated from simple closed-form curves so the table maths can
be checked against what was logged.

A fake run of model m trains at ``samples_per_s`` with batch ``batch``; the training clock at
step s is s * batch / samples_per_s; P@1 at step s is p_max * (1 - exp(-s / tau)).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient


@dataclass(frozen=True)
class FakeRun:
    model: str
    samples_per_s: float
    p_max: float
    tau: float  # iterations to reach 63% of p_max
    iterations: int = 400
    eval_every: int = 50
    log_every: int = 10
    batch: int = 128
    threads: int = 2
    n_labels: int = 1000
    dataset: str = "synthetic_tiny"
    peak_rss_mb: float = 300.0

    def clock(self, step: int) -> float:
        return step * self.batch / self.samples_per_s

    def p_at_1(self, step: int) -> float:
        return self.p_max * (1.0 - np.exp(-step / self.tau))


def _metrics(run: FakeRun) -> list[Metric]:
    ts = int(time.time() * 1000)
    out: list[Metric] = []

    def add(key: str, value: float, step: int) -> None:
        out.append(Metric(key, float(value), ts + step, step))

    for s in range(run.log_every, run.iterations + 1, run.log_every):
        add("train/loss", 7.0 * np.exp(-s / run.tau) + 1.0, s)
        add("time/train_s", run.clock(s), s)
        add("perf/samples_per_s", run.samples_per_s, s)
    eval_steps = sorted({*range(0, run.iterations, run.eval_every), run.iterations})
    for s in eval_steps:
        p1 = run.p_at_1(s)
        add("eval/p_at_1", p1, s)
        add("eval/p_at_3", 0.8 * p1, s)
        add("eval/p_at_5", 0.6 * p1, s)
        add("eval/seconds", 0.01, s)
        add("time/train_s", run.clock(s), s)
    final = run.iterations
    add("time/compile_s", 0.5, 0)
    for key, value in {
        "final/p_at_1": 0.98 * run.p_at_1(final), "final/p_at_3": 0.8 * run.p_at_1(final),
        "final/p_at_5": 0.6 * run.p_at_1(final), "final/train_s": run.clock(final),
        "final/samples_per_s": run.samples_per_s, "final/iterations": final,
        "final/epochs": 1.0, "mem/peak_rss_mb": run.peak_rss_mb,
    }.items():
        add(key, value, final)
    return out


def _tags(model: str, dataset: str, threads: int, sweep_id: str, status: str,
          job: int, extra: dict[str, str]) -> list[RunTag]:
    tags = {"model": model, "dataset": dataset, "device": "cpu", "threads": str(threads),
            "sweep_id": sweep_id, "hydra_sweep_dir": sweep_id, "status": status,
            "mlflow.runName": f"{model}/{dataset}/{job}", **extra}
    return [RunTag(k, v) for k, v in tags.items()]


def _params(model: str, dataset: str, threads: int, n_labels: int, batch: int) -> list[Param]:
    params = {"model.name": model, "dataset.name": dataset, "train.threads": threads,
              "train.batch_size": batch, "data.n_labels": n_labels, "data.n_features": 5000,
              "data.n_train": 20000, "data.n_test": 2000}
    return [Param(k, str(v)) for k, v in params.items()]


def log_fake_run(client: MlflowClient, exp_id: str, run: FakeRun, sweep_id: str,
                 job: int) -> str:
    """A finished training run with contract-shaped histories; returns its run id."""
    created = client.create_run(exp_id, run_name=f"{run.model}/{run.dataset}/{job}")
    rid = created.info.run_id
    client.log_batch(rid, metrics=_metrics(run),
                     params=_params(run.model, run.dataset, run.threads, run.n_labels, run.batch),
                     tags=_tags(run.model, run.dataset, run.threads, sweep_id, "finished", job, {}))
    client.set_terminated(rid, "FINISHED")
    return rid


def log_dead_run(client: MlflowClient, exp_id: str, model: str, sweep_id: str, job: int,
                 status: str, reason: str, dataset: str = "synthetic_tiny",
                 threads: int = 2) -> str:
    """A skipped (FINISHED + status=skipped) or failed (FAILED + failure tag) run."""
    created = client.create_run(exp_id, run_name=f"{model}/{dataset}/{job}")
    rid = created.info.run_id
    extra = {"skip_reason": reason} if status == "skipped" else {"failure": reason}
    client.log_batch(rid, params=_params(model, dataset, threads, 1000, 128),
                     tags=_tags(model, dataset, threads, sweep_id, status, job, extra))
    client.set_terminated(rid, "FINISHED" if status == "skipped" else "FAILED")
    return rid


# The Figure 3 sweep of the tests: SLIDE fast and slightly less accurate per step, TF dense
# slow, sampled softmax in between, numpy_dense slowest; tf_gpu skipped, one failed job.
FIGURE3_SWEEP: tuple[FakeRun, ...] = (
    FakeRun("slide", samples_per_s=4000.0, p_max=0.55, tau=120.0),
    FakeRun("tf_cpu", samples_per_s=500.0, p_max=0.60, tau=100.0),
    FakeRun("tf_sampled", samples_per_s=1500.0, p_max=0.50, tau=150.0),
    FakeRun("numpy_dense", samples_per_s=200.0, p_max=0.60, tau=100.0, iterations=200),
)
DEAD_RUNS: tuple[tuple[str, str, str], ...] = (
    ("tf_gpu", "skipped", "no GPU visible to TensorFlow"),
    ("slide", "failed", "MemoryError: hash tables need 30 GiB"),
)


def log_figure3_sweep(client: MlflowClient, exp_id: str, sweep_id: str) -> dict[str, str]:
    """The FIGURE3_SWEEP runs plus the dead ones; returns {run name: run id}."""
    ids: dict[str, str] = {}
    for job, run in enumerate(FIGURE3_SWEEP):
        ids[f"{run.model}/{run.dataset}/{job}"] = log_fake_run(client, exp_id, run, sweep_id, job)
    for job, (model, status, reason) in enumerate(DEAD_RUNS, start=len(FIGURE3_SWEEP)):
        ids[f"{model}/synthetic_tiny/{job}"] = log_dead_run(client, exp_id, model, sweep_id,
                                                            job, status, reason)
    return ids


def log_threads_sweep(client: MlflowClient, exp_id: str, sweep_id: str) -> None:
    """slide and tf_cpu at 1, 2, 4 threads: slide scales near-linearly, TF less."""
    job = 0
    for threads in (1, 2, 4):
        for model, base, eff in (("slide", 2000.0, 0.9), ("tf_cpu", 300.0, 0.6)):
            speed = base * threads ** eff
            log_fake_run(client, exp_id, FakeRun(model, speed, 0.5, 100.0, threads=threads),
                         sweep_id, job)
            job += 1


def log_labels_sweep(client: MlflowClient, exp_id: str, sweep_id: str) -> None:
    """slide and tf_cpu at 1k..100k labels: TF's time per sample is ~linear, SLIDE's ~flat."""
    job = 0
    for n in (1_000, 10_000, 100_000):
        for model, speed in (("slide", 3000.0 / (n / 1000) ** 0.2),
                             ("tf_cpu", 2000.0 / (n / 1000) ** 0.95)):
            log_fake_run(client, exp_id, FakeRun(model, speed, 0.4, 100.0, n_labels=n,
                                                 iterations=100), sweep_id, job)
            job += 1
