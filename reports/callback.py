"""Hydra callback: at the end of every `-m` sweep, write the sweep's reports into its folder
and log them to MLflow. Enable it in the Hydra config:

    hydra:
      callbacks:
        sweep_report:
          _target_: reports.callback.SweepReportCallback

It reads the sweep's runs from MLflow by their `sweep_id` tag (the harness sets it to the
Hydra sweep dir, config.hydra.sweep.dir), using config.tracking.uri / config.tracking.experiment,
so it works with any launcher (jobs in other processes or on other machines).

The figures are logged to ONE extra MLflow run per report, tagged kind=report and with the
sweep's sweep_id, under the artifact folder `report/`, in a sibling experiment named
"<experiment>-reports". Why not to each training run: the figures describe the whole sweep
(N copies of one figure would be noise) and training runs stay exactly as their jobs ended
them (no write into another process's finished run). Why not in the training experiment:
there every run is one job, which is what people and tests count and compare in the MLflow
UI; a metric-less report run would be an odd row there. A re-built report simply makes a new
report run.

A reporting error never fails the sweep (its runs are safely in MLflow): it is logged with
its traceback and the console line says how to rebuild the reports by hand.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hydra.experimental.callback import Callback
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from reports.build import build
from reports.load import REPORT_KIND, experiment_id, get_client
from reports.table import DEFAULT_FRACTIONS

logger = logging.getLogger(__name__)
ARTIFACT_DIR = "report"
REPORT_EXPERIMENT_SUFFIX = "-reports"


def report_experiment_id(client: MlflowClient, experiment: str) -> str:
    """The id of "<experiment>-reports", created on first use with its artifacts beside the
    training experiment's (a local store: <artifacts>/reports; a server decides for itself).
    Without an explicit location MLflow would put them under ./mlruns of the cwd."""
    name = experiment + REPORT_EXPERIMENT_SUFFIX
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    base = client.get_experiment(experiment_id(client, experiment)).artifact_location
    local = base and urlparse(base).scheme in ("", "file")
    try:
        return client.create_experiment(name, artifact_location=f"{base.rstrip('/')}/reports"
                                        if local else None)
    except Exception:  # created by a concurrent report between our lookup and our create
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def log_report_run(client: MlflowClient, experiment: str, sweep_id: str,
                   written: Mapping[str, Sequence[Path]], out_dir: Path) -> str:
    """A FINISHED run tagged kind=report + sweep_id holding the report files, in the
    "<experiment>-reports" experiment; returns its id."""
    name = f"report/{Path(sweep_id).name or sweep_id}"
    run = client.create_run(report_experiment_id(client, experiment), run_name=name,
                            tags={"kind": REPORT_KIND, "sweep_id": sweep_id,
                                  "experiment": experiment, "report_dir": str(out_dir),
                                  "status": "finished"})
    run_id = run.info.run_id
    try:
        for paths in written.values():
            for path in paths:
                client.log_artifact(run_id, str(path), artifact_path=ARTIFACT_DIR)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def summary_line(written: Mapping[str, Sequence[Path]], run_id: str | None) -> str:
    """The one console line: where Figure 3 and the table are (and the report's MLflow run)."""
    fig = next((p for p in written.get("figure3", []) if p.suffix == ".png"), None)
    table = next((p for p in written.get("table", []) if p.suffix == ".md"), None)
    parts = [f"Figure 3: {fig}" if fig else "", f"table: {table}" if table else ""]
    where = "; ".join(p for p in parts if p) or "no reports written"
    return f"Sweep report -> {where}" + (f" (MLflow report run {run_id})" if run_id else "")


def report_sweep(tracking_uri: str, experiment: str, sweep_id: str, out_dir: Path,
                 which: Sequence[str] | str = "all", fractions: Sequence[float] = DEFAULT_FRACTIONS,
                 method: str = "interpolate", log_to_mlflow: bool = True,
                 ) -> tuple[dict[str, list[Path]], str | None]:
    """Writes the sweep's reports into out_dir (and a report run); returns (paths, run id)."""
    client = get_client(tracking_uri)
    written = build(client, experiment, sweep_id, out_dir, which, fractions, method)
    run_id = log_report_run(client, experiment, sweep_id, written, out_dir) if log_to_mlflow else None
    return written, run_id


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
