"""Load a sweep (or a whole experiment) from MLflow once and write the requested reports."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from reports.figures import (figure3, has_retrieval, iterations, retrieval, scaling, sparsity_tradeoff,
                             sublinear)
from reports.load import load_histories, load_runs
from reports.table import DEFAULT_FRACTIONS, budgets_vary, write_table, write_tradeoff_table

logger = logging.getLogger(__name__)

Runs = pd.DataFrame
# (runs, histories, out_dir, fractions, method) -> the files written
Writer = Callable[[Runs, pd.DataFrame, Path, Sequence[float], str], list[Path]]


@dataclass(frozen=True)
class Report:
    """One report: how it is written, when `all` writes it, and the words of the CLI's help."""

    name: str
    write: Writer
    wanted: Callable[[Runs], bool]  # does `all` write it for these runs?
    about: str  # what it shows, and when `all` includes it


def varies(runs: Runs, column: str) -> bool:
    """Whether the finished runs of the sweep take more than one value of `column`."""
    done = runs[runs["status"] == "finished"]
    return column in done.columns and done[column].nunique(dropna=True) > 1


def _always(runs: Runs) -> bool:
    return True


def _drawn(draw: Callable[[Runs, pd.DataFrame, Path], list[Path]]) -> Writer:
    """A figure's writer: it takes no targets and no time-to-target method."""
    return lambda runs, histories, out, fractions, method: draw(runs, histories, out)


def _scaling(runs: Runs, histories: pd.DataFrame, out: Path, fractions: Sequence[float], method: str) -> list[Path]:
    return scaling(runs, histories, out, fraction=fractions[len(fractions) // 2])  # the middle target


def _sparsity_tradeoff(runs: Runs, histories: pd.DataFrame, out: Path) -> list[Path]:
    """The figure and its points as a table beside it."""
    return [*sparsity_tradeoff(runs, histories, out), *write_tradeoff_table(runs, histories, out)]


# The one list of reports: the CLI's choices and help, `all` and the sweep's end read it. A new
# report is a function (reports.figures or reports.table) and one entry here (docs/extending.md).
REPORTS: dict[str, Report] = {r.name: r for r in (
    Report("figure3", _drawn(figure3), _always, "P@1 against training time, one curve per run (always)"),
    Report("iterations", _drawn(iterations), _always, "P@1 and loss against training iteration (always)"),
    Report("table", write_table, _always, "time to accuracy and speed-ups, markdown and CSV (always)"),
    Report("scaling", _scaling, lambda runs: varies(runs, "threads"),
           "samples/s and time to target against threads (when threads vary)"),
    Report("sublinear", _drawn(sublinear), lambda runs: varies(runs, "data.n_labels"),
           "seconds per sample against labels (when data.n_labels varies)"),
    Report("retrieval", _drawn(retrieval), has_retrieval,
           "SLIDE's retrieval quality over training (when SLIDE runs logged it)"),
    Report("sparsity_tradeoff", _drawn(_sparsity_tradeoff), budgets_vary,
           "final P@1 against the active fraction (when SLIDE runs use two budgets or more)"),
)}


def auto_reports(runs: Runs) -> list[str]:
    """What `all` writes: the reports whose `wanted` says these runs can fill them."""
    return [name for name, report in REPORTS.items() if report.wanted(runs)]


def write_reports(runs: Runs, histories: pd.DataFrame, out_dir: Path,
                  which: Sequence[str], fractions: Sequence[float] = DEFAULT_FRACTIONS,
                  method: str = "interpolate") -> dict[str, list[Path]]:
    """Writes each named report into out_dir; returns {name: paths written}."""
    unknown = set(which) - set(REPORTS)
    if unknown:
        raise ValueError(f"unknown reports {sorted(unknown)}; choose from {list(REPORTS)}")
    return {name: REPORTS[name].write(runs, histories, out_dir, fractions, method) for name in which}


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
