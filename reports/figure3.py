"""Figure 3 of the SLIDE paper: P@1 (eval subset) against the training clock time/train_s,
log-scale x, one curve per run coloured by model, one panel per dataset; runs that are
skipped/failed/killed or have no eval point are listed under the plot with their reason.

    python -m reports figure3 --experiment NAME [--sweep-id ID] [--tracking-uri URI] [--out DIR]
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
import pandas as pd

from reports.labels import context_text, not_plotted
from reports.load import eval_points
from reports.style import (draw_curves, empty_message, figure_with_notes, legend,
                           plain_log_ticks, save)


def _time_panel(ax: Axes, runs: pd.DataFrame, points: pd.DataFrame) -> None:
    """One Figure 3 panel: the runs' P@1 curves against the training clock, log x."""
    drawn = draw_curves(ax, runs, points, "time/train_s", "eval/p_at_1")
    ax.set_xscale("log")
    plain_log_ticks(ax.xaxis)
    ax.set_ylim(bottom=0.0)  # P@1 from 0: a zoomed axis would exaggerate small differences
    ax.set_xlabel("training time (s, training clock only; log scale)")
    ax.set_ylabel("P@1 (eval subset)")
    ax.set_title(f"P@1 vs training time — {context_text(runs)}")
    ax.grid(True, which="both", alpha=0.3)
    if drawn:
        legend(ax, drawn)
    else:
        empty_message(ax, "no run has eval points after training started")


def figure3(runs: pd.DataFrame, histories: pd.DataFrame, out_dir: Path,
            stem: str = "figure3") -> list[Path]:
    """P@1 vs training time (log x), one curve per run, one panel per dataset (their P@1
    scales differ); dead runs listed under the plot.

    Points at training time 0 (the eval before the first step) cannot sit on a log axis and
    are left out; the curve starts at the first eval after training began.
    """
    points = eval_points(histories).dropna(subset=["time/train_s"]).sort_values(["run_id", "step"])
    points = points[points["time/train_s"] > 0]
    datasets = list(dict.fromkeys(runs["dataset"])) or [""]
    big = runs["dataset"].value_counts().max() > 8 if len(runs) else False
    fig, axes = figure_with_notes(not_plotted(runs, histories), ncols=len(datasets),
                                   width=8.0 * min(len(datasets), 2) + (4.0 if big else 0.0))
    for ax, dataset in zip(axes, datasets, strict=True):
        mine = runs[runs["dataset"] == dataset]
        _time_panel(ax, mine, points[points["run_id"].isin(mine["run_id"])])
    return save(fig, out_dir, stem)
