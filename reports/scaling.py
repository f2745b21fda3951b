"""Core scaling from a threads sweep: samples/s (with ideal linear scaling dotted) and time
to a target P@1 against threads, per model.

    python -m reports scaling --experiment NAME [--sweep-id ID] [--out DIR]
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from reports.labels import context_text, not_plotted
from reports.style import (empty_message, figure_with_notes, model_colour, model_marker,
                           plain_log_ticks, save)
from reports.table import finished, times_to_targets


def _per_model_threads(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Median of `column` per (model, threads): repeated runs collapse to one point."""
    clean = frame.dropna(subset=["threads", column])
    return (clean.groupby(["model", "threads"], as_index=False)[column].median()
            .sort_values(["model", "threads"]))


def scaling(runs: pd.DataFrame, histories: pd.DataFrame, out_dir: Path,
            fraction: float = 0.75, stem: str = "scaling") -> list[Path]:
    """Core scaling: samples/s (with ideal linear scaling dashed) and time to a target P@1,
    against threads, per model. Several runs at one (model, threads) are reduced to the median.
    """
    done = finished(runs)
    speed = _per_model_threads(done, "final/samples_per_s") if "final/samples_per_s" in done else \
        pd.DataFrame(columns=["model", "threads", "final/samples_per_s"])
    ttt = times_to_targets(done, histories, [fraction]).merge(
        done[["run_id", "model", "threads"]], on="run_id")
    ttt_med = _per_model_threads(ttt, "seconds")
    fig, (ax_s, ax_t) = figure_with_notes(not_plotted(runs, histories), ncols=2, width=12.0)
    for model, grp in speed.groupby("model"):
        col = model_colour(model)
        ax_s.plot(grp["threads"], grp["final/samples_per_s"], "-", marker=model_marker(model),
                  color=col, label=model)
        base = grp.iloc[0]
        ideal = base["final/samples_per_s"] * grp["threads"] / base["threads"]
        ax_s.plot(grp["threads"], ideal, ":", color=col, alpha=0.6)
    for model, grp in ttt_med.groupby("model"):
        ax_t.plot(grp["threads"], grp["seconds"], "-", marker=model_marker(model),
                  color=model_colour(model), label=model)
    threads = sorted({int(t) for t in runs["threads"].dropna()})
    for ax in (ax_s, ax_t):
        ax.set_xscale("log", base=2)
        ax.set_xticks(threads or [1], labels=[str(t) for t in threads or [1]])
        ax.set_xlabel("threads")
        ax.grid(True, which="both", alpha=0.3)
    for ax in (ax_s, ax_t):
        ax.set_yscale("log")
        plain_log_ticks(ax.yaxis)
    ax_s.set(ylabel="training samples / s (final)", title="throughput (dotted: ideal linear)")
    ax_t.set(ylabel=f"training s to P@1 ≥ {fraction:.0%} of best",
             title=f"time to {fraction:.0%} of the best final P@1")
    for ax in (ax_s, ax_t):
        if ax.get_lines():
            ax.legend(loc="best", fontsize=9)
        else:
            empty_message(ax, "no finished run with data")
    fig.suptitle(f"Core scaling — {context_text(runs)}")
    return save(fig, out_dir, stem)
