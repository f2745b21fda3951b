"""The one training clock every model is timed with (docs/design.md, fair-comparison contract):
seconds spent in training steps only; evaluation, data loading and JIT/tracing warm-up are
excluded."""
from __future__ import annotations

import time


class TrainClock:
    """Accumulates wall seconds spent inside `with clock:` blocks.

    The loop wraps exactly one model.train_step call in each block; a model that runs on a
    GPU returns from train_step only after synchronising, so the block ends when the work has.
    """

    def __init__(self, timer=time.perf_counter, start_s: float = 0.0):
        self._timer = timer
        self._total = float(start_s)  # a resumed job's clock goes on from its checkpoint
        self._started: float | None = None

    def __enter__(self) -> "TrainClock":
        if self._started is not None:
            raise RuntimeError("TrainClock is already running: nested timing would double-count")
        self._started = self._timer()
        return self

    def __exit__(self, *exc) -> None:
        self._total += self._timer() - self._started
        self._started = None

    @property
    def seconds(self) -> float:
        """Training seconds so far, including a block still running."""
        running = 0.0 if self._started is None else self._timer() - self._started
        return self._total + running


class Stopwatch:
    """Times one thing apart from the training clock (warm-up, evaluation)."""

    def __init__(self, timer=time.perf_counter):
        self._timer = timer
        self.seconds = 0.0

    def __enter__(self) -> "Stopwatch":
        self._start = self._timer()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = self._timer() - self._start
