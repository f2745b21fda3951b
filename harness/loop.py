"""The training loop every model runs through: one batch order, one clock, one evaluator.

A model only sees train_step / predict_topk calls (harness.models.base.Model); what is
timed, when it is evaluated and what gets logged is decided here, identically for all.
"""
from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import asdict, dataclass

import contract
from harness.job_state import Checkpointer
from harness.clock import Stopwatch, TrainClock
from harness.data.batching import iterate_batches
from harness.data.xmc import XMCSplit
from harness.evaluation import Evaluator
from harness.models.base import Model
from harness.progress import JobProgress
from harness.stopping import StopSignals
from harness.sysinfo import minor_page_faults, peak_rss_mb

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
    eval_every_s: float | None = None  # also evaluate when this much training clock passed

    def eval_due(self, iteration: int, clock_s: float, last_eval_s: float) -> bool:
        """Whether the step just done is an evaluation point: every eval_every iterations, and
        once eval_every_s seconds of training clock passed since the last evaluation."""
        by_time = self.eval_every_s is not None and clock_s - last_eval_s >= self.eval_every_s
        return iteration % self.eval_every == 0 or by_time


@dataclass
class LoopState:
    """Where training is: what a checkpoint stores besides the model, so that a resumed job
    takes the next batch of the same seeded order, its clock goes on, and every metric step
    is logged once (harness.job_state)."""

    epoch: int = 0  # the epoch in progress
    batch: int = 0  # batches of that epoch done
    iteration: int = 0  # optimiser steps done
    samples: int = 0
    train_s: float = 0.0  # the training clock
    last_eval_step: int = -1
    last_eval_s: float = 0.0  # the training clock at the last evaluation
    loss_sum: float = 0.0  # train/loss and page faults per step since the last log point
    loss_count: int = 0
    faults_sum: float = 0.0
    faults_count: int = 0
    training_done: bool = False  # the last step is behind: only the final evaluation is left

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "LoopState":
        return cls(**values)

    def add_step(self, loss: float, faults: float) -> None:
        self.loss_sum += loss
        self.loss_count += 1
        self.faults_sum += faults
        self.faults_count += 1

    def pop_means(self) -> tuple[float, float]:
        """Mean loss and page faults per step since the last call (the log point's values)."""
        means = self.loss_sum / max(self.loss_count, 1), self.faults_sum / max(self.faults_count, 1)
        self.loss_sum, self.loss_count, self.faults_sum, self.faults_count = 0.0, 0, 0.0, 0
        return means


def train_and_evaluate(model: Model, train: XMCSplit, evaluator: Evaluator, tracker,
                       settings: LoopSettings, show_progress: bool = True, label: str = "",
                       checkpoints: Checkpointer | None = None, stop: StopSignals | None = None,
                       start: LoopState | None = None) -> dict[str, float]:
    """Train until epochs are done or the training clock passes max_train_seconds; log the
    learning curve; return the final metrics (also logged).

    start: the position of a resumed job (its model already restored). checkpoints: written
    when due between steps, and once training is over, outside the training clock. stop: a
    signal during training ends it after the step in progress, with a checkpoint, by raising
    JobInterrupted."""
    if train.features.n_rows == 0:
        raise ValueError("the training split has no rows")
    state = start or LoopState()
    batches_per_epoch = math.ceil(train.features.n_rows / settings.batch_size)
    first_x, first_y = next(iterate_batches(train, settings.batch_size, epoch=0, seed=settings.seed))
    with Stopwatch() as warmup:
        model.warmup(first_x, first_y)
    tracker.log_metrics({"time/compile_s": warmup.seconds}, step=0)
    log.info("%s warm-up (compile/trace) took %.2f s", label, warmup.seconds)

    clock = TrainClock(start_s=state.train_s)

    def evaluate() -> float:
        with Stopwatch() as sw:
            scores = evaluator.evaluate_subset(model.predict_topk)
        metrics = {f"eval/{k}": v for k, v in scores.items()}
        metrics.update({"eval/seconds": sw.seconds, "epoch": state.epoch})
        if state.iteration == 0 or state.iteration % settings.log_every:  # else the log point has it
            metrics[contract.TRAIN_CLOCK] = clock.seconds
        metrics.update(model.diagnostics())
        eval_diagnostics = getattr(model, "eval_diagnostics", None)  # optional (SLIDE: retrieval quality)
        if eval_diagnostics is not None:
            with Stopwatch() as sw:
                metrics.update(eval_diagnostics(evaluator.subset_features, evaluator.subset_labels))
            metrics["eval/diagnostics_s"] = sw.seconds
        tracker.log_metrics(metrics, step=state.iteration)
        state.last_eval_step, state.last_eval_s = state.iteration, clock.seconds
        return scores["p_at_1"]

    def save_checkpoint() -> None:
        state.train_s = clock.seconds
        checkpoints.save(model, state.to_dict(), state.iteration)

    def train_step(x, y) -> None:
        """One step, timed; its loss and page faults (fresh memory touched) logged every
        log_every steps, P@1 every eval_every."""
        faults_before = minor_page_faults()
        with clock:
            loss = model.train_step(x, y)
        state.add_step(loss, minor_page_faults() - faults_before)
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} at iteration {state.iteration + 1}")
        state.iteration += 1
        state.batch += 1
        state.samples += x.n_rows
        p_at_1 = None
        if state.iteration % settings.log_every == 0:
            loss_mean, faults_mean = state.pop_means()
            tracker.log_metrics({contract.TRAIN_LOSS: loss_mean, contract.TRAIN_CLOCK: clock.seconds,
                                 "perf/samples_per_s": state.samples / max(clock.seconds, 1e-12),
                                 "perf/page_faults_per_step": faults_mean}, step=state.iteration)
        if settings.eval_due(state.iteration, clock.seconds, state.last_eval_s):
            p_at_1 = evaluate()
        progress.update(1, p_at_1=p_at_1, clock_s=clock.seconds, samples=state.samples)

    progress = JobProgress(total=settings.epochs * batches_per_epoch, label=label, enabled=show_progress)
    progress.update(state.iteration, p_at_1=None, clock_s=clock.seconds, samples=state.samples)
    if state.last_eval_step < 0:
        progress.update(0, p_at_1=evaluate(), clock_s=0.0, samples=0)
    stopping = (lambda: stop.requested is not None) if stop is not None else (lambda: False)

    if checkpoints is not None:
        checkpoints.start_timer()

    with stop.deferred() if stop is not None else contextlib.nullcontext():
        while not state.training_done and not stopping():
            if state.epoch >= settings.epochs:
                state.training_done = True
                break
            # the epoch from the state's position on (a resumed job starts mid-epoch)
            for x, y in iterate_batches(train, settings.batch_size, epoch=state.epoch, seed=settings.seed,
                                        first_batch=state.batch):
                train_step(x, y)
                if settings.max_train_seconds is not None and clock.seconds >= settings.max_train_seconds:
                    state.training_done = True
                    break
                if stopping():
                    break
                if checkpoints is not None and checkpoints.due():
                    save_checkpoint()
            else:
                state.epoch += 1
                state.batch = 0
        if checkpoints is not None:
            save_checkpoint()
        if stop is not None:
            stop.check()  # after the checkpoint: JobInterrupted
    progress.close()
    if state.last_eval_step != state.iteration:
        evaluate()

    clock_s = clock.seconds
    final = {
        contract.FINAL_TRAIN_S: clock_s,
        "final/iterations": float(state.iteration),
        "final/epochs": state.iteration / batches_per_epoch,
        contract.FINAL_SAMPLES_PER_S: state.samples / max(clock_s, 1e-12),
    }
    if settings.final_eval:
        with Stopwatch() as sw:
            scores = evaluator.evaluate_full(model.predict_topk)
        final.update({f"final/{k}": v for k, v in scores.items()})
        final["final/eval_s"] = sw.seconds
    # Kept beside MLflow's system metrics, which sample the whole machine's used memory every
    # few seconds: this is the job's own high-water mark (VmHWM), a peak no sampler catches and
    # that no other process (a parallel job, the sweep process) inflates.
    final[contract.PEAK_RSS_MB] = peak_rss_mb()
    if checkpoints is not None:
        final["checkpoint/save_s_total"] = checkpoints.total_save_s
        final["checkpoint/size_mb"] = checkpoints.last_size_mb
    tracker.log_metrics(final, step=state.iteration)
    log.info("%s finished: %s", label, ", ".join(f"{k}={v:.4g}" for k, v in final.items()))
    return final

