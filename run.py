"""Hydra entry point: compose the config, run one tracked job, hand it to the model.

    python run.py                                   # one job, defaults from conf/config.yaml
    python run.py -m model=slide,tf_cpu,tf_gpu       # a sweep: one MLflow run per job
    python run.py -m preset=figure3              # a preset sweep (conf/preset/)

The process exits non-zero when any job of the run or sweep failed (its MLflow run is FAILED
with the traceback as an artifact; the other jobs still ran), and with 128 + the signal number
when SIGTERM / Ctrl-C stopped it (the job checkpointed, its run is KILLED; running the same
command again continues it: harness.resume), and with 2 when the tracking server refused
the login or a write (nothing was trained; the message says what to set).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

# Every path in conf/ hangs off the project root, wherever the command is started from.
os.environ.setdefault("SLIDE_BENCH_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from harness import hydra_callbacks  # noqa: E402
from harness.config import register_configs  # noqa: E402
from harness.job import run_job  # noqa: E402
from harness.stopping import JobInterrupted  # noqa: E402
from harness.tracking import exit_on_access_error  # noqa: E402

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> str:
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    job = {
        "num": hc.job.num if multirun else 0,
        "sweep_id": hc.sweep.dir if multirun else hc.runtime.output_dir,
        "output_dir": hc.runtime.output_dir,
        "multirun": multirun,  # a job of a sweep: its run is a child of the sweep's run
        # the folders that hold this project's sweep and run folders: the only places a path
        # read back from a run's tags may point into (harness.job_state)
        "owned_roots": [str(Path(str(hc.sweep.dir)).parent), str(Path(str(hc.run.dir)).parent)],
    }
    with exit_on_access_error():
        return run_job(cfg, job)


if __name__ == "__main__":
    try:
        main()
    except JobInterrupted as stopped:
        sys.exit(stopped.exit_code)
    sys.exit(1 if hydra_callbacks.FAILED_JOBS else 0)
