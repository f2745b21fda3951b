"""P@1 and training loss against training iteration, one curve per run: does sparsity
cost accuracy per step? (convergence parity)

    python -m reports iterations --experiment NAME [--sweep-id ID] [--out DIR]
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from reports.labels import context_text, not_plotted
from reports.load import eval_points
from reports.style import draw_curves, empty_message, figure_with_notes, legend, save


def iterations(runs: pd.DataFrame, histories: pd.DataFrame, out_dir: Path,
               stem: str = "iterations") -> list[Path]:
    """P@1 and training loss vs iteration, one curve per run (convergence parity)."""
    evals = eval_points(histories).sort_values(["run_id", "step"])
    losses = histories[histories["train/loss"].notna()].sort_values(["run_id", "step"])
    fig, (ax_p, ax_l) = figure_with_notes(not_plotted(runs, histories), ncols=2,
                                           width=12.0 + (4.0 if len(runs) > 8 else 0.0))
    drawn = draw_curves(ax_p, runs, evals, "step", "eval/p_at_1")
    draw_curves(ax_l, runs, losses, "step", "train/loss")
    ax_p.set(xlabel="training iteration (batches)", ylabel="P@1 (eval subset)",
             title="P@1 vs iterations")
    ax_l.set(xlabel="training iteration (batches)", ylabel="training loss (batch mean)")
    # SLIDE and sampled softmax report the loss over their active / sampled labels only, so
    # levels differ from the full-softmax loss by construction: the title says so.
    ax_l.set_title("training loss vs iterations\n(each model's own loss: levels are not "
                   "comparable across models)", fontsize=10)
    for ax in (ax_p, ax_l):
        ax.grid(True, alpha=0.3)
    if drawn:
        legend(ax_p if drawn <= 8 else ax_l, drawn)  # a long legend goes right of both panels
    else:
        empty_message(ax_p, "no eval points")
    fig.suptitle(f"Convergence per step — {context_text(runs)}")
    return save(fig, out_dir, stem)
