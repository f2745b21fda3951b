"""A progress bar per job: iterations with rate and ETA, training samples/s, last P@1."""
from __future__ import annotations

import sys

from tqdm import tqdm


class JobProgress:
    def __init__(self, total: int, label: str = "", enabled: bool = True):
        # mininterval keeps the bar from costing anything measurable in the loop; the loop's
        # training clock never includes it anyway (it is updated outside `with clock`).
        self._bar = tqdm(total=total, desc=label, unit="it", dynamic_ncols=True, mininterval=1.0,
                         disable=not enabled, file=sys.stderr)
        self._p_at_1 = float("nan")

    def update(self, n: int, p_at_1: float | None, clock_s: float, samples: int) -> None:
        if p_at_1 is not None:
            self._p_at_1 = p_at_1
        if n:
            self._bar.update(n)
        if self._bar.disable:
            return
        rate = samples / clock_s if clock_s > 0 else 0.0
        self._bar.set_postfix_str(f"{rate:,.0f} samples/s (train clock), P@1 {self._p_at_1:.3f}", refresh=False)

    def close(self) -> None:
        self._bar.close()
