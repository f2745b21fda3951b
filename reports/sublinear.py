"""Sub-linearity from an output-size sweep: training seconds per sample against the number
of labels, log-log, per model, with the fitted log-log slope in the legend (1 = cost linear
in labels, < 1 = sub-linear) and a slope-1 guide.

    python -m reports sublinear --experiment NAME [--sweep-id ID] [--out DIR]
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from reports.labels import context_text, not_plotted
from reports.style import empty_message, figure_with_notes, model_colour, model_marker, save
from reports.table import finished


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log y against log x (NaN with fewer than two distinct x)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    if np.unique(x[ok]).size < 2:
        return math.nan
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def sublinear_points(runs: pd.DataFrame) -> pd.DataFrame:
    """model, n_labels, s_per_sample (= 1 / final/samples_per_s, median over repeats)."""
    done = finished(runs)
    if "final/samples_per_s" not in done.columns or "data.n_labels" not in done.columns:
        return pd.DataFrame(columns=["model", "n_labels", "s_per_sample"])
    pts = done.assign(n_labels=done["data.n_labels"].astype("float64"),
                      s_per_sample=1.0 / done["final/samples_per_s"])
    pts = pts.dropna(subset=["n_labels", "s_per_sample"])
    pts = pts[np.isfinite(pts["s_per_sample"])]
    return (pts.groupby(["model", "n_labels"], as_index=False)["s_per_sample"].median()
            .sort_values(["model", "n_labels"]))


def sublinear(runs: pd.DataFrame, histories: pd.DataFrame, out_dir: Path,
              stem: str = "sublinear") -> list[Path]:
    """Seconds per training sample vs number of labels, log-log, per model; legend gives the
    fitted slope; a grey dashed guide of slope 1 (cost linear in labels) for comparison."""
    pts = sublinear_points(runs)
    fig, (ax,) = figure_with_notes(not_plotted(runs, histories))
    for model, grp in pts.groupby("model"):
        slope = loglog_slope(grp["n_labels"].to_numpy(), grp["s_per_sample"].to_numpy())
        label = model + ("" if math.isnan(slope) else f" (slope {slope:.2f})")
        ax.plot(grp["n_labels"], grp["s_per_sample"], "-", marker=model_marker(model),
                color=model_colour(model), label=label)
    if len(pts):
        lo, hi = pts["n_labels"].min(), pts["n_labels"].max()
        anchor = pts[pts["n_labels"] == lo]["s_per_sample"].median()
        ax.plot([lo, hi], [anchor, anchor * hi / lo], "--", color="#aaaaaa",
                label="∝ labels (slope 1)")
        ax.legend(loc="best", fontsize=9)
    else:
        empty_message(ax, "no finished run with data.n_labels and final/samples_per_s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="number of labels (output layer width)",
           ylabel="training seconds per sample (1 / final samples/s)",
           title=f"Cost per sample vs output size — {context_text(runs)}")
    ax.grid(True, which="both", alpha=0.3)
    return save(fig, out_dir, stem)
