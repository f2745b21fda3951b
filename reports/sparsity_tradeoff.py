"""Sparsity trade-off (the KDD 2017 SLIDE paper's figure): final P@1 against the active
fraction of the output layer, one line per output strategy (model.params.strategy), so one
reads at each budget whether hashing (vanilla / threshold / topk) beats uniform random
sampling (`random`) and how far it stays from the exact top-k `oracle`. Other models of the
sweep (tf_cpu, numpy_dense ...) are horizontal dashed lines at their final P@1.

The active fraction of a run is its last slide/active_out_mean (training active set per row:
retrieved + forced labels + random padding) over data.n_labels, measured rather than the
requested sparsity: what the run really computed. Points sit on a log x axis; one panel per
(dataset, labels) (P@1 levels of different problems do not compare). Beside
the figure, sparsity_tradeoff.csv / .md list the same points and the baselines' levels.

    python -m reports sparsity_tradeoff --experiment NAME [--sweep-id ID] [--out DIR]
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from reports.labels import context_text
from reports.load import is_slide, last_logged
from reports.style import (empty_message, figure_with_notes, model_colour, plain_log_ticks,
                           save, strategy_colour, strategy_marker)
from reports.table import PROBLEM_KEYS, finished
from reports.table_markdown import _markdown

logger = logging.getLogger(__name__)

STRATEGY, SPARSITY, BUDGET = "model.params.strategy", "model.params.sparsity", "slide.budget"
ACTIVE = "slide/active_out_mean"
NO_STRATEGY = "(strategy not logged)"
# Legend words for the two controls: what each line is there to show.
_STRATEGY_NOTES: dict[str, str] = {"random": "uniform sampling", "oracle": "exact top-k"}
COLUMNS: tuple[str, ...] = ("dataset", "labels", "model", "strategy", "budget",
                            "active fraction", "final P@1", "final lift@100", "sparsity",
                            "active neurons", "run", "run_id")


def _problem_keys(runs: pd.DataFrame) -> list[str]:
    return [k for k in PROBLEM_KEYS if k in runs.columns]


def _column(frame: pd.DataFrame, name: str, dtype: str = "float64") -> pd.Series:
    """frame[name] if present, else an all-missing column (params a run did not log)."""
    if name in frame.columns:
        return frame[name]
    return pd.Series(pd.NA if dtype == "Int64" else np.nan, index=frame.index, dtype=dtype)


def budgets_vary(runs: pd.DataFrame) -> bool:
    """Whether, within one problem, the finished SLIDE runs use at least two budgets
    (slide.budget, else the requested model.params.sparsity): a trade-off needs two x."""
    done = finished(runs)
    done = done[is_slide(done)]
    column = next((c for c in (BUDGET, SPARSITY) if c in done.columns), None)
    if column is None or done.empty:
        return False
    counts = done.groupby(_problem_keys(done), dropna=False)[column].nunique(dropna=True)
    return bool((counts > 1).any())


def tradeoff_points(runs: pd.DataFrame, histories: pd.DataFrame) -> pd.DataFrame:
    """One row per finished SLIDE run with an active fraction and a final P@1 (COLUMNS):
    active fraction = last slide/active_out_mean / data.n_labels, final lift@100 = last
    slide/lift_at_100 (NaN for the random control); sorted by problem, strategy, x."""
    done = finished(runs)
    slide = done[is_slide(done)]
    active = slide["run_id"].map(last_logged(histories, ACTIVE)).astype("float64")
    n_labels = _column(slide, "data.n_labels").astype("float64")
    points = pd.DataFrame({
        "dataset": slide["dataset"], "labels": _column(slide, "data.n_labels", "Int64"),
        "model": slide["model"],
        "strategy": _column(slide, STRATEGY, "object").fillna(NO_STRATEGY).astype("str"),
        "budget": pd.to_numeric(_column(slide, BUDGET, "Int64"), errors="coerce").astype("Int64"),
        "active fraction": active / n_labels,
        "final P@1": _column(slide, "final/p_at_1"),
        "final lift@100": slide["run_id"].map(last_logged(histories, "slide/lift_at_100"))
                                         .astype("float64"),
        "sparsity": _column(slide, SPARSITY, "object"),  # as requested: a float or "auto"
        "active neurons": active, "run": slide["run_name"], "run_id": slide["run_id"]})
    points = points.dropna(subset=["active fraction", "final P@1"])
    return points.sort_values(["dataset", "labels", "strategy", "active fraction"],
                              ignore_index=True)


def baseline_levels(runs: pd.DataFrame) -> pd.DataFrame:
    """The other models' final P@1 per problem (median over repeats): the dashed lines."""
    done = finished(runs)
    others = done[~is_slide(done) & done["model"].astype("str").ne("")]
    if "final/p_at_1" not in others.columns:
        return pd.DataFrame(columns=list(COLUMNS))
    others = others.dropna(subset=["final/p_at_1"])
    keys = ["dataset", *(["data.n_labels"] if "data.n_labels" in others.columns else []), "model"]
    levels = (others.groupby(keys, dropna=False, sort=True)
              .agg(**{"final P@1": ("final/p_at_1", "median"), "name": ("run_name", "first"),
                      "n": ("run_name", "size")})
              .reset_index().rename(columns={"data.n_labels": "labels"}))
    # "run": the run's name, or how many runs the median is over
    runs_text = [name if n == 1 else f"median of {n} runs"
                 for name, n in zip(levels["name"], levels["n"], strict=True)]
    return levels.assign(run=runs_text).reindex(columns=list(COLUMNS))


def tradeoff_table(runs: pd.DataFrame, histories: pd.DataFrame) -> pd.DataFrame:
    """The figure's points (SLIDE runs), then the other models' levels (no strategy, budget or
    active fraction: drawn as horizontal lines)."""
    parts = [p for p in (tradeoff_points(runs, histories), baseline_levels(runs)) if len(p)]
    if not parts:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat(parts, ignore_index=True)[list(COLUMNS)]


def tradeoff_notes(runs: pd.DataFrame, points: pd.DataFrame) -> list[str]:
    """SLIDE runs that are not points: dead (with their reason), or finished without an
    active set size, data.n_labels or final P@1."""
    drawn = set(points["run_id"])
    lines = []
    for r in runs[is_slide(runs)].to_dict("records"):
        if r["status"] != "finished":
            lines.append(f"{r['run_name']}: {r['status']}: {r['reason']}")
        elif r["run_id"] not in drawn:
            lines.append(f"{r['run_name']}: finished: no {ACTIVE}, data.n_labels or final/p_at_1")
    return lines


def _strategy_label(strategy: str) -> str:
    note = _STRATEGY_NOTES.get(strategy)
    return f"{strategy} ({note})" if note else strategy


def _panel(ax: Axes, title: str, points: pd.DataFrame, levels: pd.DataFrame) -> None:
    """One problem: a marked line per strategy (sorted by x), a dashed line per other model."""
    for strategy, grp in points.groupby("strategy", sort=True):
        grp = grp.sort_values("active fraction")
        ax.plot(grp["active fraction"], grp["final P@1"], "-", color=strategy_colour(strategy),
                marker=strategy_marker(strategy), markersize=7, linewidth=1.6,
                label=_strategy_label(strategy))
    for level in levels.to_dict("records"):  # repeated runs: their median (the table says so)
        ax.axhline(level["final P@1"], color=model_colour(level["model"]), linestyle="--",
                   linewidth=1.4, label=level["model"])
    ax.set_xscale("log")
    plain_log_ticks(ax.xaxis)
    ax.set_ylim(bottom=0.0)  # P@1 from 0, as in Figure 3
    ax.set(xlabel="active fraction of the output layer (last active set / labels; log)",
           ylabel="final P@1 (full test set)", title=title)
    ax.grid(True, which="both", alpha=0.3)
    if len(points):
        ax.legend(loc="best", fontsize=9)
    else:
        empty_message(ax, f"no finished SLIDE run with {ACTIVE} and final/p_at_1")


def _problems(points: pd.DataFrame) -> list[tuple[str, int]]:
    """The (dataset, labels) pairs that have points, in order: one panel each."""
    return list(dict.fromkeys(zip(points["dataset"], points["labels"], strict=True)))


def _of_problem(frame: pd.DataFrame, dataset: str, labels: int) -> pd.DataFrame:
    """The rows of `frame` (points or levels) on this dataset and label count."""
    same = (frame["dataset"] == dataset) & (frame["labels"].astype("Int64") == labels)
    return frame[same.fillna(False).astype(bool)]


def sparsity_tradeoff(runs: pd.DataFrame, histories: pd.DataFrame, out_dir: Path,
                      stem: str = "sparsity_tradeoff") -> list[Path]:
    """Final P@1 vs active fraction (log x), a line per strategy, the other models dashed;
    one panel per (dataset, labels) that has SLIDE points."""
    points = tradeoff_points(runs, histories)
    levels = baseline_levels(runs)
    problems = _problems(points)
    fig, axes = figure_with_notes(tradeoff_notes(runs, points), ncols=max(len(problems), 1),
                                  width=8.0 * min(max(len(problems), 1), 2))
    if not problems:  # one empty panel saying why (no finished SLIDE run with a point)
        _panel(axes[0], f"Sparsity trade-off — {context_text(runs)}", points, levels)
        return save(fig, out_dir, stem)
    for ax, (dataset, labels) in zip(axes, problems, strict=True):
        _panel(ax, f"Sparsity trade-off — {dataset}, {labels} labels",
               _of_problem(points, dataset, labels), _of_problem(levels, dataset, labels))
    return save(fig, out_dir, stem)


def to_markdown(table: pd.DataFrame) -> str:
    """The trade-off points as a markdown document."""
    lines = ["# Sparsity trade-off", "",
             "Final P@1 (full test set) against the active fraction of the output layer (the "
             "run's last slide/active_out_mean / labels) per SLIDE output strategy; lift@100 = "
             "the last top-100 recall of the strategy over a random set's of the same size "
             "('—' for the random control, which retrieves nothing). Rows without a strategy are "
             "the other models of the sweep (dashed lines in the figure).", ""]
    if table.empty:
        return "\n".join([*lines, "No finished SLIDE run with slide/active_out_mean and "
                          "final/p_at_1.", ""])
    return "\n".join([*lines, _markdown(table.drop(columns=["run_id"])), ""])


def write_tradeoff_table(runs: pd.DataFrame, histories: pd.DataFrame, out_dir: Path,
                         stem: str = "sparsity_tradeoff") -> list[Path]:
    """Writes <stem>.csv and <stem>.md (the figure's points and levels); returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = tradeoff_table(runs, histories)
    csv_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    table.to_csv(csv_path, index=False)
    md_path.write_text(to_markdown(table), encoding="utf-8")
    logger.info("wrote %s and %s", csv_path, md_path)
    return [csv_path, md_path]
