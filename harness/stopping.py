"""Stopping a job on a signal without losing what it trained.

SIGTERM (SLURM preemption, `kill`, systemd), SIGINT (Ctrl-C) and SIGUSR2 (submitit's warning
before a SLURM time limit, conf/hydra/launcher/slurm.yaml) ask the job to stop. Inside the
training loop the request is deferred to the end of the step in progress (a step stopped half
way would leave weights and optimiser state out of step): the loop then writes a checkpoint,
the run ends KILLED, and the process exits with 128 + the signal number. Anywhere else (loading
data, the final evaluation after the last checkpoint) it stops at once, as nothing unsaved is
lost. A second Ctrl-C stops at once even inside the loop (no checkpoint); repeated SIGTERMs are
ignored, so a scheduler that signals every process of the job and a parent that passes its
signal on do not cut the checkpoint short.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Iterator

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)


class JobInterrupted(KeyboardInterrupt):
    """The job was asked to stop by signal `signum` (a KeyboardInterrupt: every handler that
    ends a run KILLED on Ctrl-C handles it)."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """Handlers of STOP_SIGNALS while the `with` block runs (main thread only: Python delivers
    signals there; elsewhere this does nothing)."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self._deferred = False
        self._saved: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._saved[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._saved.items():
            signal.signal(signum, previous)
        self._saved.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.requested is not None:
            if signum == signal.SIGINT:
                log.warning("second interrupt: stopping at once, without a checkpoint")
                raise KeyboardInterrupt
            return
        self.requested = signum
        name = signal.Signals(signum).name
        if self._deferred:
            log.warning("%s: stopping after this step, with a checkpoint (Ctrl-C again: at once)", name)
            return
        log.warning("%s: stopping", name)
        raise JobInterrupted(signum)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A signal inside the block only sets `requested`; the code polls check()."""
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False

    def check(self) -> None:
        if self.requested is not None:
            raise JobInterrupted(self.requested)
