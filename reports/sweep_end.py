"""Hydra callback: at the end of every `-m` sweep, write the sweep's reports into its folder
and log them to the sweep's parent MLflow run. Enable it in the Hydra config:

    hydra:
      callbacks:
        sweep_report:
          _target_: reports.sweep_end.SweepReportCallback

It reads the sweep's runs from MLflow (the children of the sweep's parent run, found by its
tags kind=sweep and sweep_id = the Hydra sweep dir, config.hydra.sweep.dir; see reports.load),
using config.tracking.uri / config.tracking.experiment, so it works with any launcher (jobs in
other processes or on other machines).

The report files go to the parent run, which the harness creates for every sweep
(harness/sweep_run.py) and ends after this callback: as artifacts at its root (Figure 3,
the time-to-accuracy table, ...), next to the runs they describe, and the headline speed-ups
(reports.table.headline_speedups, from the repeat summary: ratios of median times, with
their bootstrap intervals where jobs were repeated) as its metrics, so that they show in the runs table on the
sweep's row. Training runs stay exactly as their jobs ended them. A sweep without a parent run
(the harness's sweep_run callback off) gets its files in the sweep folder only.

A reporting error never fails the sweep (its runs are safely in MLflow): it is logged with
its traceback and the console line says how to rebuild the reports by hand.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from reports.build import build
from reports.load import experiment_id, get_client, sweep_run
from reports.table import DEFAULT_FRACTIONS, SUMMARY_STEM, headline_speedups

logger = logging.getLogger(__name__)


def log_to_sweep_run(client: MlflowClient, run_id: str,
                     written: Mapping[str, Sequence[Path]]) -> dict[str, float]:
    """The report files as artifacts of the sweep's parent run (at its root) and the table's
    headline speed-ups as its metrics; returns those metrics."""
    for paths in written.values():
        for path in paths:
            client.log_artifact(run_id, str(path))
    summary = next((p for p in written.get("table", []) if p.stem.endswith(SUMMARY_STEM)), None)
    metrics = headline_speedups(pd.read_csv(summary)) if summary is not None else {}
    if metrics:
        now_ms = int(pd.Timestamp.now(tz="UTC").timestamp() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now_ms, 0) for k, v in metrics.items()])
    return metrics


def summary_line(written: Mapping[str, Sequence[Path]], run_id: str | None) -> str:
    """The one console line: where Figure 3 and the table are (and the sweep's MLflow run)."""
    fig = next((p for p in written.get("figure3", []) if p.suffix == ".png"), None)
    table = next((p for p in written.get("table", []) if p.suffix == ".md"), None)
    parts = [f"Figure 3: {fig}" if fig else "", f"table: {table}" if table else ""]
    where = "; ".join(p for p in parts if p) or "no reports written"
    return f"Sweep report -> {where}" + (f" (logged to the MLflow sweep run {run_id})" if run_id else "")


def report_sweep(tracking_uri: str, experiment: str, sweep_id: str, out_dir: Path,
                 which: Sequence[str] | str = "all", fractions: Sequence[float] = DEFAULT_FRACTIONS,
                 method: str = "interpolate", log_to_mlflow: bool = True,
                 ) -> tuple[dict[str, list[Path]], str | None]:
    """Writes the sweep's reports into out_dir and, when the sweep has a parent run, logs them
    to it; returns (paths, the parent's run id or None)."""
    client = get_client(tracking_uri)
    written = build(client, experiment, sweep_id, out_dir, which, fractions, method)
    if not log_to_mlflow:
        return written, None
    parent = sweep_run(client, experiment_id(client, experiment), sweep_id)
    if parent is None:
        logger.warning("sweep %s has no parent MLflow run: reports written to %s only", sweep_id, out_dir)
        return written, None
    log_to_sweep_run(client, parent.info.run_id, written)
    return written, parent.info.run_id


class SweepReportCallback(Callback):
    """on_multirun_end: reports of the sweep into config.hydra.sweep.dir, logged to MLflow."""

    def __init__(self, reports: Sequence[str] | str = "all",
                 fractions: Sequence[float] = DEFAULT_FRACTIONS, method: str = "interpolate",
                 log_to_mlflow: bool = True) -> None:
        self.reports = reports if isinstance(reports, str) else list(reports)
        self.fractions = tuple(float(f) for f in fractions)
        self.method = method
        self.log_to_mlflow = log_to_mlflow

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # The exact string the harness tagged (HydraConfig's sweep.dir), not a normalised Path.
        sweep_id = str(config.hydra.sweep.dir)
        sweep_dir = Path(sweep_id)
        uri, experiment = str(config.tracking.uri), str(config.tracking.experiment)
        try:
            written, run_id = report_sweep(uri, experiment, sweep_id, sweep_dir, self.reports,
                                           self.fractions, self.method, self.log_to_mlflow)
        except Exception:
            logger.exception("could not build the sweep report for %s", sweep_dir)
            print(f"Sweep report FAILED (see the log above); rebuild it with: python -m reports all "
                  f"--experiment {experiment} --sweep-id {sweep_id} --tracking-uri {uri} "
                  f"--out {sweep_dir}", flush=True)
            return
        print(summary_line(written, run_id), flush=True)  # user-facing: where the figures are
