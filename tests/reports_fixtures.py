"""Fixture MLflow runs shaped like the harness's MLflow conventions (docs/design.md), for the
reports tests: histories are generated from simple closed-form curves so the table maths can
be checked against what was logged.

A fake run of model m trains at ``samples_per_s`` with batch ``batch``; the training clock at
step s is s * batch / samples_per_s; P@1 at step s is p_max * (1 - exp(-s / tau)).

A fake SLIDE run with a ``strategy`` also logs the slide/* metrics (retrieval quality at every
eval, active set size at every log step) and the strategy / budget params; their curves change
over training so that the first and the last logged values differ.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

import contract
from tests.model_configs import MODELS, model_config


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
    strategy: str | None = None  # SLIDE output strategy; None: no slide/* metrics or params
    budget: int = 50  # slide.budget: active neurons per row besides the labels
    recall_max: float = 0.8  # top-100 recall the tables approach during training
    sparsity: str | None = None  # model.params.sparsity as logged; None: budget / n_labels
    repeat_group: str = ""  # the harness's tag for runs that differ only in the seed; "": none

    def clock(self, step: int) -> float:
        return step * self.batch / self.samples_per_s

    def p_at_1(self, step: int) -> float:
        return self.p_max * (1.0 - np.exp(-step / self.tau))

    def retrieved(self) -> float:
        """Neurons the strategy retrieves per held-out row (the random control: none)."""
        return 0.0 if self.strategy == "random" else float(self.budget)

    def recall_100(self, step: int) -> float:
        """Rises from recall_max / 2 towards recall_max (0 for the random control)."""
        return 0.0 if self.strategy == "random" else self.recall_max * (1 - 0.5 * np.exp(-step / self.tau))

    def lift_100(self, step: int) -> float:
        return self.recall_100(step) / (self.retrieved() / self.n_labels)

    def softmax_mass(self, step: int) -> float:
        return 0.1 + 0.5 * self.recall_100(step)

    def active(self, step: int) -> float:
        """Training active set per row: budget + 3 labels + a start-up excess that decays."""
        return self.budget + 3.0 + 40.0 * np.exp(-step / self.tau)


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
    if run.strategy is not None:
        out += _slide_metrics(run, eval_steps, ts)
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


def _slide_metrics(run: FakeRun, eval_steps: list[int], ts: int) -> list[Metric]:
    """The slide/* series of the metric contract: retrieval at every eval (no lift for the
    random control), the active set and its parts at every log step."""
    out = []
    for s in eval_steps:
        values = {"slide/topk_recall_at_100": run.recall_100(s),
                  "slide/topk_recall_at_10": min(1.0, 1.2 * run.recall_100(s)),
                  "slide/softmax_mass": run.softmax_mass(s),
                  "slide/eval_retrieved_mean": run.retrieved()}
        if run.retrieved() > 0:
            values["slide/lift_at_100"] = run.lift_100(s)
            values["slide/lift_at_10"] = min(1.0, 1.2 * run.recall_100(s)) * run.n_labels / run.retrieved()
        out += [Metric(k, float(v), ts + s, s) for k, v in values.items()]
    for s in range(run.log_every, run.iterations + 1, run.log_every):
        retrieved = 0.0 if run.strategy == "random" else run.active(s) - 3.0
        values = {"slide/active_out_mean": run.active(s), "slide/labels_out_mean": 3.0,
                  "slide/retrieved_out_mean": retrieved,
                  "slide/padding_out_mean": run.active(s) - 3.0 - retrieved}
        out += [Metric(k, float(v), ts + s, s) for k, v in values.items()]
    return out


def _slide_params(run: FakeRun) -> dict[str, object]:
    """Strategy, requested sparsity and the SLIDE job's resolved params (none without a strategy)."""
    if run.strategy is None:
        return {}
    return {"model.params.strategy": run.strategy,
            "model.params.sparsity": run.sparsity or f"{run.budget / run.n_labels:g}",
            "model.params.K": 6, "model.params.L": 50, "slide.budget": run.budget,
            "slide.sparsity": run.budget / run.n_labels, "slide.K": 6, "slide.L": 50}


@functools.cache
def look_params(model: str) -> dict[str, str]:
    """The role, colour and marker params a harness job of ``model`` logs, from its config
    (none for a model without one: runs logged by another tool)."""
    if model not in MODELS:
        return {}
    config = model_config(model)
    return {contract.MODEL_ROLE: config.role, contract.MODEL_COLOUR: config.colour,
            contract.MODEL_MARKER: config.marker}


def _tags(model: str, dataset: str, threads: int, sweep_id: str, status: str,
          job: int, extra: dict[str, str]) -> list[RunTag]:
    tags = {"model": model, "dataset": dataset, "device": "cpu", "threads": str(threads),
            "sweep_id": sweep_id, "status": status,
            "mlflow.runName": f"{model}/{dataset}/{job}", **extra}
    return [RunTag(k, v) for k, v in tags.items()]


def _params(model: str, dataset: str, threads: int, n_labels: int, batch: int,
            extra: dict[str, object] | None = None) -> list[Param]:
    params = {"model.name": model, "dataset.name": dataset, "train.threads": threads,
              "train.batch_size": batch, "data.n_labels": n_labels, "data.n_features": 5000,
              "data.n_train": 20000, "data.n_test": 2000, **look_params(model), **(extra or {})}
    return [Param(k, str(v)) for k, v in params.items()]


def log_fake_run(client: MlflowClient, exp_id: str, run: FakeRun, sweep_id: str,
                 job: int) -> str:
    """A finished training run with contract-shaped histories; returns its run id."""
    created = client.create_run(exp_id, run_name=f"{run.model}/{run.dataset}/{job}")
    rid = created.info.run_id
    client.log_batch(rid, metrics=_metrics(run),
                     params=_params(run.model, run.dataset, run.threads, run.n_labels, run.batch,
                                    _slide_params(run)),
                     tags=_tags(run.model, run.dataset, run.threads, sweep_id, "finished", job,
                                {"repeat_group": run.repeat_group} if run.repeat_group else {}))
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


def log_sweep_parent(client: MlflowClient, exp_id: str, sweep_id: str,
                     children: list[str]) -> str:
    """A sweep's parent run as the harness makes it (tags kind=sweep, sweep_id; left RUNNING:
    the harness ends it after the reports), the given runs made its children; returns its id."""
    parent = client.create_run(exp_id, run_name=f"sweep {sweep_id}",
                               tags={"kind": "sweep", "sweep_id": sweep_id})
    for child in children:
        client.set_tag(child, "mlflow.parentRunId", parent.info.run_id)
    return parent.info.run_id


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


# The sparsity trade-off sweep: SLIDE's hashing (vanilla), the uniform random control and the
# exact top-k oracle at three budgets of 1000 labels, plus two dense models. P@1 grows with the
# budget and with the strategy's quality (random < vanilla < oracle); one vanilla run asked
# for sparsity "auto".
STRATEGY_BUDGETS: tuple[int, ...] = (10, 50, 200)
STRATEGY_P_MAX: dict[str, float] = {"random": 0.2, "vanilla": 0.35, "oracle": 0.45}


def strategy_sweep() -> list[FakeRun]:
    runs = [FakeRun("slide", 4000.0, p_max=STRATEGY_P_MAX[s] + 0.05 * np.log10(b), tau=60.0,
                    iterations=200, strategy=s, budget=b, recall_max=1.0 if s == "oracle" else 0.6,
                    sparsity="auto" if (s, b) == ("vanilla", 50) else None)
            for s in STRATEGY_P_MAX for b in STRATEGY_BUDGETS]
    return [*runs, FakeRun("tf_cpu", 500.0, 0.6, 60.0, iterations=200),
            FakeRun("numpy_dense", 200.0, 0.58, 60.0, iterations=200)]


def log_strategy_sweep(client: MlflowClient, exp_id: str, sweep_id: str) -> dict[str, FakeRun]:
    """The strategy_sweep runs; returns {run id: its FakeRun}."""
    return {log_fake_run(client, exp_id, run, sweep_id, job): run
            for job, run in enumerate(strategy_sweep())}
