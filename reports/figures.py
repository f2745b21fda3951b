"""The report figures, drawn from the tidy tables of reports.load (never from MLflow directly)
with the look of reports.style; every function writes <stem>.png and <stem>.svg into out_dir
and returns their paths. `python -m reports NAME --experiment EXP [--sweep-id ID] [--out DIR]`
draws one by name (reports.build.REPORTS, the one list of reports).

- figure3: P@1 (eval subset) against the training clock time/train_s, log x, one curve per run
  coloured by model, one panel per dataset: the SLIDE paper's Figure 3.
- iterations: P@1 and training loss against training iteration, one curve per run: does
  sparsity cost accuracy per step? (convergence parity)
- scaling: from a threads sweep, samples/s (with ideal linear scaling dotted) and time to a
  target P@1 against threads, per model.
- sublinear: from an output-size sweep, training seconds per sample against the number of
  labels, log-log, per model, with the fitted log-log slope in the legend (1 = cost linear in
  labels, < 1 = sub-linear) and a slope-1 guide.
- retrieval: does SLIDE's output strategy (the hash tables, or a control) find the neurons with
  the largest logits? Left: top-100 recall (solid) and top-10 recall (dashed) on held-out rows
  against iterations; right: lift@100, that recall over a uniformly random set of the same size
  (log y, 1 = no better than random). One line per run that logged the slide/* retrieval
  metrics (other models do not).
- sparsity_tradeoff (the KDD 2017 SLIDE paper's figure): final P@1 against the active fraction
  of the output layer (reports.table.tradeoff_points), one line per output strategy
  (model.params.strategy), so one reads at each budget whether hashing (vanilla / threshold /
  topk) beats uniform random sampling (`random`) and how far it stays from the exact top-k
  `oracle`. Other models of the sweep (tf_cpu, numpy_dense ...) are horizontal dashed lines at
  their final P@1. Log x; one panel per (dataset, labels): P@1 levels of different problems do
  not compare. build writes its points beside it (reports.table.write_tradeoff_table).

Runs that are skipped/failed/killed or have no curve are listed under each figure with their
reason.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

import contract
from reports.load import eval_points, finished, is_slide
from reports.style import (context_text, draw_curves, empty_message, figure_with_notes, legend,
                           model_looks, not_plotted, plain_log_ticks, save,
                           strategy_colour, strategy_marker)
from reports.table import ACTIVE, baseline_levels, times_to_targets, tradeoff_points

# ----------------------------------------------------------------------------- figure3

def _time_panel(ax: Axes, runs: pd.DataFrame, points: pd.DataFrame) -> None:
    """One Figure 3 panel: the runs' P@1 curves against the training clock, log x."""
    drawn = draw_curves(ax, runs, points, contract.TRAIN_CLOCK, contract.EVAL_P_AT_1)
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
    points = eval_points(histories).dropna(subset=[contract.TRAIN_CLOCK]).sort_values(["run_id", "step"])
    points = points[points[contract.TRAIN_CLOCK] > 0]
    datasets = list(dict.fromkeys(runs["dataset"])) or [""]
    big = runs["dataset"].value_counts().max() > 8 if len(runs) else False
    fig, axes = figure_with_notes(not_plotted(runs, histories), ncols=len(datasets),
                                   width=8.0 * min(len(datasets), 2) + (4.0 if big else 0.0))
    for ax, dataset in zip(axes, datasets, strict=True):
        mine = runs[runs["dataset"] == dataset]
        _time_panel(ax, mine, points[points["run_id"].isin(mine["run_id"])])
    return save(fig, out_dir, stem)


# ----------------------------------------------------------------------------- iterations

def iterations(runs: pd.DataFrame, histories: pd.DataFrame, out_dir: Path,
               stem: str = "iterations") -> list[Path]:
    """P@1 and training loss vs iteration, one curve per run (convergence parity)."""
    evals = eval_points(histories).sort_values(["run_id", "step"])
    losses = histories[histories[contract.TRAIN_LOSS].notna()].sort_values(["run_id", "step"])
    fig, (ax_p, ax_l) = figure_with_notes(not_plotted(runs, histories), ncols=2,
                                           width=12.0 + (4.0 if len(runs) > 8 else 0.0))
    drawn = draw_curves(ax_p, runs, evals, "step", contract.EVAL_P_AT_1)
    draw_curves(ax_l, runs, losses, "step", contract.TRAIN_LOSS)
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


# ----------------------------------------------------------------------------- scaling

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
    speed = _per_model_threads(done, contract.FINAL_SAMPLES_PER_S) if contract.FINAL_SAMPLES_PER_S in done else \
        pd.DataFrame(columns=["model", "threads", contract.FINAL_SAMPLES_PER_S])
    ttt = times_to_targets(done, histories, [fraction]).merge(
        done[["run_id", "model", "threads"]], on="run_id")
    ttt_med = _per_model_threads(ttt, "seconds")
    fig, (ax_s, ax_t) = figure_with_notes(not_plotted(runs, histories), ncols=2, width=12.0)
    looks = model_looks(runs)
    for model, grp in speed.groupby("model"):
        col, marker = looks[model]
        ax_s.plot(grp["threads"], grp[contract.FINAL_SAMPLES_PER_S], "-", marker=marker,
                  color=col, label=model)
        base = grp.iloc[0]
        ideal = base[contract.FINAL_SAMPLES_PER_S] * grp["threads"] / base["threads"]
        ax_s.plot(grp["threads"], ideal, ":", color=col, alpha=0.6)
    for model, grp in ttt_med.groupby("model"):
        ax_t.plot(grp["threads"], grp["seconds"], "-", marker=looks[model][1],
                  color=looks[model][0], label=model)
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


# ----------------------------------------------------------------------------- sublinear

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
    if contract.FINAL_SAMPLES_PER_S not in done.columns or "data.n_labels" not in done.columns:
        return pd.DataFrame(columns=["model", "n_labels", "s_per_sample"])
    pts = done.assign(n_labels=done["data.n_labels"].astype("float64"),
                      s_per_sample=1.0 / done[contract.FINAL_SAMPLES_PER_S])
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
    looks = model_looks(runs)
    for model, grp in pts.groupby("model"):
        slope = loglog_slope(grp["n_labels"].to_numpy(), grp["s_per_sample"].to_numpy())
        label = model + ("" if math.isnan(slope) else f" (slope {slope:.2f})")
        ax.plot(grp["n_labels"], grp["s_per_sample"], "-", marker=looks[model][1],
                color=looks[model][0], label=label)
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


# ----------------------------------------------------------------------------- retrieval

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


# ----------------------------------------------------------------------------- trade-off

# Legend words for the two controls: what each line is there to show.
_STRATEGY_NOTES: dict[str, str] = {"random": "uniform sampling", "oracle": "exact top-k"}


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


def _tradeoff_panel(ax: Axes, title: str, points: pd.DataFrame, levels: pd.DataFrame,
                    looks: dict[str, tuple[str, str]]) -> None:
    """One problem: a marked line per strategy (sorted by x), a dashed line per other model."""
    for strategy, grp in points.groupby("strategy", sort=True):
        grp = grp.sort_values("active fraction")
        ax.plot(grp["active fraction"], grp["final P@1"], "-", color=strategy_colour(strategy),
                marker=strategy_marker(strategy), markersize=7, linewidth=1.6,
                label=_strategy_label(strategy))
    for level in levels.to_dict("records"):  # repeated runs: their median (the table says so)
        ax.axhline(level["final P@1"], color=looks[level["model"]][0], linestyle="--",
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
    looks = model_looks(runs)
    if not problems:  # one empty panel saying why (no finished SLIDE run with a point)
        _tradeoff_panel(axes[0], f"Sparsity trade-off — {context_text(runs)}", points, levels, looks)
        return save(fig, out_dir, stem)
    for ax, (dataset, labels) in zip(axes, problems, strict=True):
        _tradeoff_panel(ax, f"Sparsity trade-off — {dataset}, {labels} labels",
                        _of_problem(points, dataset, labels), _of_problem(levels, dataset, labels), looks)
    return save(fig, out_dir, stem)
