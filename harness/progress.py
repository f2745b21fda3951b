"""Progress of a job: iterations with rate and ETA, training samples/s, last P@1.

On a terminal a redrawn tqdm bar. Anywhere else (a SLURM log file, `make run > log`) a bar
writes a redraw per second into the file (~1,100 in a 14-minute make run), so there a plain
line is printed every PLAIN_EVERY_S seconds instead, plus one at the end."""
from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

PLAIN_EVERY_S = 60.0


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class JobProgress:
    def __init__(self, total: int, label: str = "", enabled: bool = True, stream: TextIO | None = None,
                 plain_every_s: float = PLAIN_EVERY_S):
        self._stream = stream or sys.stderr
        self._plain = enabled and not self._stream.isatty()
        # mininterval keeps the bar from costing anything measurable in the loop; the loop's
        # training clock never includes it anyway (it is updated outside `with clock`).
        self._bar = tqdm(total=total, desc=label, unit="it", dynamic_ncols=True, mininterval=1.0,
                         disable=not enabled or self._plain, file=self._stream)
        self._total, self._label, self._every_s = total, label, plain_every_s
        self._done, self._clock_s, self._samples = 0, 0.0, 0
        self._start = self._last_line = time.monotonic()
        self._first: int | None = None  # the iteration count at start (a resumed job starts past 0)
        self._p_at_1 = float("nan")

    def update(self, n: int, p_at_1: float | None, clock_s: float, samples: int) -> None:
        """Called every step: formats nothing while progress is off or between two plain lines."""
        if p_at_1 is not None:
            self._p_at_1 = p_at_1
        self._done += n
        self._clock_s, self._samples = clock_s, samples
        if self._first is None:
            self._first = self._done
        if n:
            self._bar.update(n)
        if self._plain:
            if time.monotonic() - self._last_line >= self._every_s:
                self._line()
        elif not self._bar.disable:
            self._bar.set_postfix_str(self._rate_text(), refresh=False)

    def _rate_text(self) -> str:
        rate = self._samples / self._clock_s if self._clock_s > 0 else 0.0
        return f"{rate:,.0f} samples/s (train clock), P@1 {self._p_at_1:.3f}"

    def _line(self) -> None:
        """One plain progress line: count, share, iterations per wall second since this process
        started the job, elapsed, ETA, and what the bar's postfix says."""
        now = time.monotonic()
        elapsed = now - self._start
        speed = (self._done - (self._first or 0)) / elapsed if elapsed > 0 else 0.0
        share = 100.0 * self._done / self._total if self._total else 100.0
        eta = _duration((self._total - self._done) / speed) if speed > 0 else "?"
        print(f"{self._label}: {self._done}/{self._total} it ({share:.0f}%), {speed:.1f} it/s, elapsed "
              f"{_duration(elapsed)}, ETA {eta}, {self._rate_text()}", file=self._stream, flush=True)
        self._last_line = now

    def close(self) -> None:
        if self._plain:
            self._line()
        self._bar.close()
