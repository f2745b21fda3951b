"""Retrieval quality of SLIDE's output layer during training: does the strategy (the hash
tables, or a control) find the neurons with the largest logits? Left: top-100 recall (solid)
and top-10 recall (dashed) on held-out rows against training iterations; right: lift@100, that
recall over a uniformly random set of the same size (log y, 1 = no better than random). One
line per run that logged the slide/* retrieval metrics (other models do not).

    python -m reports retrieval --experiment NAME [--sweep-id ID] [--out DIR]
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes

from reports.labels import context_text
from reports.load import is_slide
from reports.style import (draw_curves, empty_message, figure_with_notes, legend,
                           plain_log_ticks, save)

RECALL_100, RECALL_10 = "slide/topk_recall_at_100", "slide/topk_recall_at_10"
LIFT_100 = "slide/lift_at_100"


def has_retrieval(runs: pd.DataFrame) -> bool:
    """Whether any run logged the retrieval metrics (the load_runs table holds each metric's
    latest value, NaN for runs that never logged it)."""
    return RECALL_100 in runs.columns and bool(runs[RECALL_100].notna().any())


def _points(histories: pd.DataFrame, key: str) -> pd.DataFrame:
    """The rows where `key` was logged, in step order per run (empty without the column)."""
    if key not in histories.columns:
        return histories.iloc[0:0].assign(**{key: pd.Series(dtype="float64")})
    return histories[histories[key].notna()].sort_values(["run_id", "step"])


def retrieval_notes(runs: pd.DataFrame, histories: pd.DataFrame) -> list[str]:
    """Why a SLIDE run has no (or only a partial) line: dead runs with their reason, finished
    runs without retrieval metrics, and runs with recall but no lift (nothing retrieved: the
    random control). Other models never log these metrics and are not listed."""
    recall = set(_points(histories, RECALL_100)["run_id"])
    lift = set(_points(histories, LIFT_100)["run_id"])
    lines = []
    for r in runs[is_slide(runs)].to_dict("records"):
        name, status, rid = r["run_name"], r["status"], r["run_id"]
        if status in ("skipped", "failed", "killed"):
            partial = " (partial curve drawn)" if rid in recall else ""
            lines.append(f"{name}: {status}{partial}: {r['reason']}")
        elif rid not in recall:
            lines.append(f"{name}: {status}: no {RECALL_100} logged")
        elif rid not in lift:
            strategy = r.get("model.params.strategy")
            which = f"strategy {strategy}" if isinstance(strategy, str) and strategy else "strategy"
            lines.append(f"{name}: no lift drawn: its {which} retrieves nothing (recall drawn)")
    return lines


def _recall_panel(ax: Axes, runs: pd.DataFrame, histories: pd.DataFrame) -> int:
    """Top-100 recall solid (labelled), top-10 recall dashed in the same colour."""
    drawn = draw_curves(ax, runs, _points(histories, RECALL_100), "step", RECALL_100,
                        linestyle="-")
    draw_curves(ax, runs, _points(histories, RECALL_10), "step", RECALL_10, linestyle="--",
                labelled=False)
    ax.set_ylim(-0.02, 1.02)  # a share: the whole range, so runs read against 0 and 1
    ax.set(xlabel="training iteration (batches)",
           ylabel="share of the exact top-k neurons retrieved",
           title="top-k recall on held-out rows (solid: k=100, dashed: k=10)")
    ax.grid(True, alpha=0.3)
    return drawn


def _lift_panel(ax: Axes, runs: pd.DataFrame, histories: pd.DataFrame) -> int:
    """lift@100 on a log axis with the random reference at 1."""
    points = _points(histories, LIFT_100)
    # A lift of 0 (no top-100 neuron retrieved) has no place on a log axis: left out.
    drawn = draw_curves(ax, runs, points[points[LIFT_100] > 0], "step", LIFT_100, linestyle="-")
    ax.axhline(1.0, color="#555555", linestyle="--", linewidth=1.2)
    # The label sits on the line itself: the legend may be on the other panel.
    ax.text(0.01, 1.0, "random", color="#555555", fontsize=9, va="bottom", ha="left",
            transform=ax.get_yaxis_transform())
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.set(xlabel="training iteration (batches)",
           ylabel="lift@100 = recall@100 / random set's (log)",
           title="lift over a random set of the same size")
    ax.grid(True, which="both", alpha=0.3)
    return drawn


def retrieval(runs: pd.DataFrame, histories: pd.DataFrame, out_dir: Path,
              stem: str = "retrieval") -> list[Path]:
    """Top-k recall and lift@100 against iterations, one line per run that logged them."""
    fig, (ax_r, ax_l) = figure_with_notes(retrieval_notes(runs, histories), ncols=2,
                                           width=12.0 + (4.0 if len(runs) > 8 else 0.0))
    drawn = _recall_panel(ax_r, runs, histories)
    lifted = _lift_panel(ax_l, runs, histories)
    if drawn:
        # A long legend goes right of both panels, still listing the recall panel's runs: the
        # lift panel lacks the runs that retrieve nothing.
        legend(ax_r if drawn <= 8 else ax_l, drawn, entries_from=ax_r)
    else:
        empty_message(ax_r, f"no run logged {RECALL_100}")
    if not lifted:
        empty_message(ax_l, f"no run logged {LIFT_100}")
    fig.suptitle(f"SLIDE retrieval quality — {context_text(runs)}")
    return save(fig, out_dir, stem)
