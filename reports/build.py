"""Load a sweep (or a whole experiment) from MLflow once and write the requested reports."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from reports.figures import FIGURES, has_retrieval, scaling, sparsity_tradeoff
from reports.load import load_histories, load_runs
from reports.table import DEFAULT_FRACTIONS, budgets_vary, write_table, write_tradeoff_table

logger = logging.getLogger(__name__)

REPORTS: tuple[str, ...] = ("figure3", "iterations", "table", "scaling", "sublinear",
                             "retrieval", "sparsity_tradeoff")


def varies(runs: pd.DataFrame, column: str) -> bool:
    """Whether the finished runs of the sweep take more than one value of `column`."""
    done = runs[runs["status"] == "finished"]
    return column in done.columns and done[column].nunique(dropna=True) > 1


def auto_reports(runs: pd.DataFrame) -> list[str]:
    """What `all` writes: always figure3, iterations and the table; scaling when threads
    vary, sublinear when data.n_labels varies (otherwise those figures have one point);
    retrieval when some run logged SLIDE's retrieval metrics (other models have none);
    sparsity_tradeoff when SLIDE runs of one problem use two budgets or more."""
    chosen = ["figure3", "iterations", "table"]
    if varies(runs, "threads"):
        chosen.append("scaling")
    if varies(runs, "data.n_labels"):
        chosen.append("sublinear")
    if has_retrieval(runs):
        chosen.append("retrieval")
    if budgets_vary(runs):
        chosen.append("sparsity_tradeoff")
    return chosen


def write_reports(runs: pd.DataFrame, histories: pd.DataFrame, out_dir: Path,
                  which: Sequence[str], fractions: Sequence[float] = DEFAULT_FRACTIONS,
                  method: str = "interpolate") -> dict[str, list[Path]]:
    """Writes each named report into out_dir; returns {name: paths written}."""
    unknown = set(which) - set(REPORTS)
    if unknown:
        raise ValueError(f"unknown reports {sorted(unknown)}; choose from {REPORTS}")
    written: dict[str, list[Path]] = {}
    for name in which:
        if name == "table":
            written[name] = write_table(runs, histories, out_dir, fractions, method)
        elif name == "scaling":
            written[name] = scaling(runs, histories, out_dir, fraction=fractions[len(fractions) // 2])
        elif name == "sparsity_tradeoff":  # the figure and its points as a table beside it
            written[name] = [*sparsity_tradeoff(runs, histories, out_dir),
                             *write_tradeoff_table(runs, histories, out_dir)]
        else:
            written[name] = FIGURES[name](runs, histories, out_dir)
    return written


def build(client: MlflowClient, experiment: str, sweep_id: str | None, out_dir: Path,
          which: Sequence[str] | str = "all", fractions: Sequence[float] = DEFAULT_FRACTIONS,
          method: str = "interpolate") -> dict[str, list[Path]]:
    """Reads the runs from MLflow and writes the reports (`which="all"`: see auto_reports)."""
    runs = load_runs(client, experiment, sweep_id)
    if runs.empty:
        raise ValueError(f"no runs in experiment {experiment!r}"
                         + (f" with sweep_id {sweep_id!r}" if sweep_id else ""))
    histories = load_histories(client, runs)
    chosen = auto_reports(runs) if which == "all" else list(
        [which] if isinstance(which, str) else which)
    return write_reports(runs, histories, Path(out_dir), chosen, fractions, method)
