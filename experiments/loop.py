"""The training loop every model runs through: one batch order, one clock, one evaluator.

A model only sees train_step / predict_topk calls (experiments.models.base.Model); what is
timed, when it is evaluated and what gets logged is decided here, identically for all.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from experiments.clock import Stopwatch, TrainClock
from experiments.data.batching import iterate_batches
from experiments.data.xmc import XMCSplit
from experiments.evaluation import Evaluator
from experiments.models.base import Model
from experiments.progress import JobProgress
from experiments.sysinfo import minor_page_faults, peak_rss_mb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopSettings:
    epochs: int
    batch_size: int
    seed: int
    eval_every: int
    log_every: int
    max_train_seconds: float | None = None
    final_eval: bool = True


class _Window:
    """Mean of a per-step quantity (loss, page faults) since the last log line."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    def pop_mean(self) -> float:
        mean = self.total / max(self.count, 1)
        self.total, self.count = 0.0, 0
        return mean


def train_and_evaluate(model: Model, train: XMCSplit, evaluator: Evaluator, tracker,
                       settings: LoopSettings, show_progress: bool = True, label: str = "") -> dict[str, float]:
    """Train until epochs are done or the training clock passes max_train_seconds; log the
    learning curve; return the final metrics (also logged)."""
    if train.features.n_rows == 0:
        raise ValueError("the training split has no rows")
    batches_per_epoch = math.ceil(train.features.n_rows / settings.batch_size)
    first_x, first_y = next(iterate_batches(train, settings.batch_size, epoch=0, seed=settings.seed))
    with Stopwatch() as warmup:
        model.warmup(first_x, first_y)
    tracker.log_metrics({"time/compile_s": warmup.seconds}, step=0)
    log.info("%s warm-up (compile/trace) took %.2f s", label, warmup.seconds)

    clock = TrainClock()
    losses = _Window()
    faults = _Window()  # minor page faults per training step: fresh memory touched in the step
    iteration, samples, epochs_done = 0, 0, 0
    last_eval_step = -1

    def evaluate() -> float:
        nonlocal last_eval_step
        with Stopwatch() as sw:
            scores = evaluator.evaluate_subset(model.predict_topk)
        metrics = {f"eval/{k}": v for k, v in scores.items()}
        metrics.update({"eval/seconds": sw.seconds, "time/train_s": clock.seconds, "epoch": epochs_done})
        metrics.update(model.diagnostics())
        eval_diagnostics = getattr(model, "eval_diagnostics", None)  # optional (SLIDE: retrieval quality)
        if eval_diagnostics is not None:
            with Stopwatch() as sw:
                metrics.update(eval_diagnostics(evaluator.subset_features, evaluator.subset_labels))
            metrics["eval/diagnostics_s"] = sw.seconds
        tracker.log_metrics(metrics, step=iteration)
        last_eval_step = iteration
        return scores["p_at_1"]

    progress = JobProgress(total=settings.epochs * batches_per_epoch, label=label, enabled=show_progress)
    progress.update(0, p_at_1=evaluate(), clock_s=0.0, samples=0)
    out_of_time = False
    for epoch in range(settings.epochs):
        for x, y in iterate_batches(train, settings.batch_size, epoch=epoch, seed=settings.seed):
            faults_before = minor_page_faults()
            with clock:
                loss = model.train_step(x, y)
            faults.add(minor_page_faults() - faults_before)
            if not math.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss} at iteration {iteration + 1}")
            iteration += 1
            samples += x.n_rows
            losses.add(loss)
            p_at_1 = None
            if iteration % settings.log_every == 0:
                tracker.log_metrics({"train/loss": losses.pop_mean(), "time/train_s": clock.seconds,
                                     "perf/samples_per_s": samples / max(clock.seconds, 1e-12),
                                     "perf/page_faults_per_step": faults.pop_mean()}, step=iteration)
            if iteration % settings.eval_every == 0:
                p_at_1 = evaluate()
            progress.update(1, p_at_1=p_at_1, clock_s=clock.seconds, samples=samples)
            if settings.max_train_seconds is not None and clock.seconds >= settings.max_train_seconds:
                out_of_time = True
                break
        if out_of_time:
            break
        epochs_done = epoch + 1
    progress.close()
    if last_eval_step != iteration:
        evaluate()

    final = {
        "final/train_s": clock.seconds,
        "final/iterations": float(iteration),
        "final/epochs": iteration / batches_per_epoch,
        "final/samples_per_s": samples / max(clock.seconds, 1e-12),
    }
    if settings.final_eval:
        with Stopwatch() as sw:
            scores = evaluator.evaluate_full(model.predict_topk)
        final.update({f"final/{k}": v for k, v in scores.items()})
        final["final/eval_s"] = sw.seconds
    # Kept beside MLflow's system metrics, which sample the whole machine's used memory every
    # few seconds: this is the job's own high-water mark (VmHWM), a peak no sampler catches and
    # that no other process (a parallel job, the sweep process) inflates.
    final["mem/peak_rss_mb"] = peak_rss_mb()
    tracker.log_metrics(final, step=iteration)
    log.info("%s finished: %s", label, ", ".join(f"{k}={v:.4g}" for k, v in final.items()))
    return final
