"""The report figures, drawn from the tidy tables of reports.load (never from MLflow directly).

- figure3: P@1 (eval subset) against the training clock time/train_s, log-scale x, one curve
  per run, coloured by model; runs that are skipped/failed/killed or have no eval point are
  listed under the plot with their reason. The paper's Figure 3.
- iterations: P@1 and training loss against training iteration (does sparsity cost accuracy
  per step?).
- scaling: samples/s and time to a target P@1 against threads, per model (threads sweep).
- sublinear: seconds per training sample against number of labels, log-log, per model, with
  the fitted log-log slope in the legend (1 = linear in labels, < 1 = sub-linear).

Every function returns the PNG and SVG paths it wrote. Colours are fixed per model
(MODEL_COLOURS) so a model looks the same in every figure.
"""
from __future__ import annotations

import logging
import math
import textwrap
import zlib
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: reports run on headless machines and in Hydra callbacks
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import LogFormatter  # noqa: E402

from reports.load import eval_points  # noqa: E402
from reports.table import DEFAULT_FRACTIONS, finished, times_to_targets  # noqa: E402

logger = logging.getLogger(__name__)

MODEL_COLOURS: dict[str, str] = {
    "slide": "#d62728",        # red: the method under test
    "tf_cpu": "#1f77b4",       # blue: dense full softmax, CPU
    "tf_gpu": "#2ca02c",       # green: dense full softmax, GPU
    "tf_sampled": "#9467bd",   # purple: sampled softmax
    "numpy_dense": "#7f7f7f",  # grey: numpy dense reference
}
MODEL_MARKERS: dict[str, str] = {"slide": "o", "tf_cpu": "s", "tf_gpu": "^",
                                 "tf_sampled": "D", "numpy_dense": "x"}
# Models outside the map get a colour from this list chosen by a hash of the name, so the same
# unknown model keeps its colour across figures and across report invocations.
_EXTRA_COLOURS: tuple[str, ...] = ("#ff7f0e", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
                                   "#393b79", "#637939", "#843c39")
_LINESTYLES: tuple[str, ...] = ("-", "--", "-.", ":")
DPI = 150
MAX_NOTES = 12  # dead runs listed under a figure


def model_colour(model: str) -> str:
    """The fixed colour of a model in every figure."""
    if model in MODEL_COLOURS:
        return MODEL_COLOURS[model]
    return _EXTRA_COLOURS[zlib.crc32(model.encode()) % len(_EXTRA_COLOURS)]


def save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Writes <stem>.png and <stem>.svg, closes the figure, returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    for path in paths:
        fig.savefig(path, dpi=DPI)
    plt.close(fig)
    logger.info("wrote %s", ", ".join(str(p) for p in paths))
    return paths


# ----------------------------------------------------------------------------- labels

def _values(runs: pd.DataFrame, column: str) -> list[str]:
    return sorted({str(v) for v in runs[column].dropna() if str(v) != ""})


def context_text(runs: pd.DataFrame) -> str:
    """'synthetic_tiny, 2 threads' from the runs' dataset and threads columns."""
    datasets = _values(runs, "dataset") or ["unknown dataset"]
    threads = sorted({int(t) for t in runs["threads"].dropna()})
    thr = ("threads: ?" if not threads else
           f"{threads[0]} thread{'s' if threads[0] != 1 else ''}" if len(threads) == 1 else
           "threads " + ", ".join(map(str, threads)))
    return f"{', '.join(datasets)}, {thr}"


# Params that differ between jobs without being a choice of the experiment (job folders,
# store locations) or that other label parts already say (threads, dataset name, model).
_LABEL_SKIP_PREFIXES: tuple[str, ...] = ("paths.", "tracking.", "hydra.", "data.", "model.name",
                                         "model.params._target_", "train.threads", "dataset.name")


def varied_params(group: pd.DataFrame) -> list[str]:
    """Param columns (dotted names) taking more than one value among these runs, e.g.
    model.params.K in a hash-parameter sweep; dataset.* is ignored when the dataset varies."""
    skip = _LABEL_SKIP_PREFIXES + (("dataset.",) if group["dataset"].nunique() > 1 else ())
    return [c for c in group.columns
            if "." in c and not c.startswith(skip) and group[c].nunique(dropna=False) > 1]


def _short_names(keys: Sequence[str]) -> dict[str, str]:
    """model.params.K -> K, unless two keys end the same way (then the full key)."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def curve_labels(runs: pd.DataFrame) -> dict[str, str]:
    """run_id -> legend label: the model, plus dataset / threads when they vary, plus the
    params that vary between runs of the same model (K=4 L=10 ...), plus a job number when
    two labels would still be equal (e.g. repeated seeds)."""
    vary_threads = runs["threads"].nunique(dropna=True) > 1
    vary_data = runs["dataset"].nunique() > 1
    labels: dict[str, str] = {}
    for _, group in runs.groupby("model", sort=False):
        keys = varied_params(group)
        short = _short_names(keys)
        for r in group.itertuples(index=False):
            parts = [r.model or "?"]
            if vary_data:
                parts.append(r.dataset)
            if vary_threads and not pd.isna(r.threads):
                parts.append(f"{r.threads} thr")
            row = group[group["run_id"] == r.run_id].iloc[0]
            parts += [f"{short[k]}={row[k]}" for k in keys if not pd.isna(row[k])]
            if r.status not in ("finished", ""):
                parts.append(f"({r.status})")
            labels[r.run_id] = " ".join(parts)
    counts = pd.Series(list(labels.values())).value_counts()
    dup = set(counts[counts > 1].index)
    names = dict(zip(runs["run_id"], runs["run_name"], strict=True))
    return {rid: (f"{labels[rid]} #{names[rid].rsplit('/', 1)[-1]}" if labels[rid] in dup
                  else labels[rid]) for rid in runs["run_id"]}


def _shade(colour: str, i: int, k: int) -> str:
    """The i-th of k shades of a model's colour: the first run gets the colour itself, the
    others alternate lighter / darker, up to 45% towards white or black."""
    if i == 0 or k == 1:
        return colour
    step = 0.45 / math.ceil((k - 1) / 2)
    mix = step * ((i + 1) // 2) * (1 if i % 2 else -1)  # > 0 towards white, < 0 towards black
    rgb = np.array(matplotlib.colors.to_rgb(colour))
    out = rgb + (1 - rgb) * mix if mix > 0 else rgb * (1 + mix)
    return matplotlib.colors.to_hex(np.clip(out, 0, 1))


def run_colours(runs: pd.DataFrame) -> dict[str, str]:
    """run_id -> colour: the model's fixed colour, in shades when a model has several runs."""
    colours: dict[str, str] = {}
    for model, group in runs.groupby("model", sort=False):
        for i, rid in enumerate(group["run_id"]):
            colours[rid] = _shade(model_colour(model), i, len(group))
    return colours


def _linestyles(runs: pd.DataFrame) -> dict[str, str]:
    """Runs of the same model share a colour family, so they also get different line styles."""
    styles: dict[str, str] = {}
    for _, group in runs.groupby("model", sort=False):
        for i, rid in enumerate(group["run_id"]):
            styles[rid] = _LINESTYLES[i % len(_LINESTYLES)]
    return styles


def not_plotted(runs: pd.DataFrame, histories: pd.DataFrame) -> list[str]:
    """Lines for runs without a curve: skipped/failed/killed with reason, or no eval points."""
    has_curve = set(eval_points(histories)["run_id"])
    lines = []
    for r in runs.itertuples(index=False):
        if r.status in ("skipped", "failed", "killed"):
            lines.append(f"{r.run_name}: {r.status}: {r.reason}")
        elif r.run_id not in has_curve:
            lines.append(f"{r.run_name}: {r.status}: no eval/p_at_1 logged")
    return lines


def _wrap_notes(notes: Sequence[str], chars: int, max_lines: int = 2) -> list[str]:
    """Each note on at most max_lines lines of `chars` characters (failure messages can be
    long and multi-line: whitespace is collapsed, the rest shortened with '...')."""
    lines: list[str] = []
    if len(notes) > MAX_NOTES:  # a big broken sweep must not push the plot off the page
        notes = [*notes[:MAX_NOTES - 1], f"... and {len(notes) - MAX_NOTES + 1} more runs "
                 "(all listed in time_to_accuracy.md)"]
    for note in notes:
        flat = textwrap.shorten(" ".join(note.split()), width=chars * max_lines - 8,
                                placeholder=" ...")
        parts = textwrap.wrap(flat, width=chars)
        lines += [parts[0], *("    " + p for p in parts[1:])]
    return lines


def _figure_with_notes(notes: Sequence[str], ncols: int = 1,
                       width: float = 8.0) -> tuple[Figure, list[plt.Axes]]:
    """A figure with ncols plot axes and, when there are notes, a text panel under them."""
    wrapped = _wrap_notes(notes, chars=int(width * 11.5) - 4)
    note_h = 0.22 * (len(wrapped) + 1) if wrapped else 0.0
    fig = plt.figure(figsize=(width, 5.0 + note_h), layout="constrained")
    grid = fig.add_gridspec(2 if wrapped else 1, ncols,
                            height_ratios=[5.0, note_h] if wrapped else [1.0])
    axes = [fig.add_subplot(grid[0, i]) for i in range(ncols)]
    if wrapped:
        note_ax = fig.add_subplot(grid[1, :])
        note_ax.axis("off")
        text = "Not plotted:\n" + "\n".join(f"  {n}" for n in wrapped)
        note_ax.text(0.0, 1.0, text, va="top", ha="left", fontsize=8,
                     family="monospace", transform=note_ax.transAxes)
    return fig, axes


def model_marker(model: str) -> str:
    """A fixed marker per model: dense models trained identically overlap per step, and the
    markers keep both visible."""
    return MODEL_MARKERS.get(model, "o")


def _curves(ax: plt.Axes, runs: pd.DataFrame, points: pd.DataFrame, x: str, y: str) -> int:
    """One line per run in the runs' order (colour and marker by model, shade and line style
    by run); returns how many were drawn."""
    by_run = dict(tuple(points.groupby("run_id", sort=False)))
    labels = curve_labels(runs)
    drawable = runs[runs["run_id"].isin(list(by_run))]  # dead runs take no shade or style
    styles, colours = _linestyles(drawable), run_colours(drawable)
    drawn = 0
    for rid, model in zip(runs["run_id"], runs["model"], strict=True):
        curve = by_run.get(rid)
        if curve is None or curve.empty:
            continue
        ax.plot(curve[x], curve[y], color=colours[rid], linestyle=styles[rid],
                marker=model_marker(model), markersize=4, linewidth=1.6, alpha=0.9,
                label=labels[rid])
        drawn += 1
    return drawn


def _legend(ax: plt.Axes, n_curves: int) -> None:
    """Inside the axes for a few curves; outside on the right for a big sweep."""
    if n_curves <= 8:
        ax.legend(loc="best", fontsize=9)
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
                  ncol=1 + n_curves // 26, borderaxespad=0.0)


class _PlainLogFormatter(LogFormatter):
    """LogFormatter's choice of which ticks to label, printed as plain numbers (0.8, 3000)."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:g}"


def _plain_log_ticks(axis: matplotlib.axis.Axis) -> None:
    """Tick labels on a log axis as plain numbers (0.5, 2, 3000 rather than 2x10^0); minor
    ticks are labelled (a subset, or all on a short axis) when the axis spans few decades."""
    axis.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def _empty_message(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11)


# ----------------------------------------------------------------------------- figures

def _time_panel(ax: plt.Axes, runs: pd.DataFrame, points: pd.DataFrame) -> None:
    """One Figure 3 panel: the runs' P@1 curves against the training clock, log x."""
    drawn = _curves(ax, runs, points, "time/train_s", "eval/p_at_1")
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_ylim(bottom=0.0)  # P@1 from 0: a zoomed axis would exaggerate small differences
    ax.set_xlabel("training time (s, training clock only; log scale)")
    ax.set_ylabel("P@1 (eval subset)")
    ax.set_title(f"P@1 vs training time — {context_text(runs)}")
    ax.grid(True, which="both", alpha=0.3)
    if drawn:
        _legend(ax, drawn)
    else:
        _empty_message(ax, "no run has eval points after training started")


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
    fig, axes = _figure_with_notes(not_plotted(runs, histories), ncols=len(datasets),
                                   width=8.0 * min(len(datasets), 2) + (4.0 if big else 0.0))
    for ax, dataset in zip(axes, datasets, strict=True):
        mine = runs[runs["dataset"] == dataset]
        _time_panel(ax, mine, points[points["run_id"].isin(mine["run_id"])])
    return save(fig, out_dir, stem)


def iterations(runs: pd.DataFrame, histories: pd.DataFrame, out_dir: Path,
               stem: str = "iterations") -> list[Path]:
    """P@1 and training loss vs iteration, one curve per run (convergence parity)."""
    evals = eval_points(histories).sort_values(["run_id", "step"])
    losses = histories[histories["train/loss"].notna()].sort_values(["run_id", "step"])
    fig, (ax_p, ax_l) = _figure_with_notes(not_plotted(runs, histories), ncols=2,
                                           width=12.0 + (4.0 if len(runs) > 8 else 0.0))
    drawn = _curves(ax_p, runs, evals, "step", "eval/p_at_1")
    _curves(ax_l, runs, losses, "step", "train/loss")
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
        _legend(ax_p if drawn <= 8 else ax_l, drawn)  # a long legend goes right of both panels
    else:
        _empty_message(ax_p, "no eval points")
    fig.suptitle(f"Convergence per step — {context_text(runs)}")
    return save(fig, out_dir, stem)


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
    fig, (ax_s, ax_t) = _figure_with_notes(not_plotted(runs, histories), ncols=2, width=12.0)
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
        _plain_log_ticks(ax.yaxis)
    ax_s.set(ylabel="training samples / s (final)", title="throughput (dotted: ideal linear)")
    ax_t.set(ylabel=f"training s to P@1 ≥ {fraction:.0%} of best",
             title=f"time to {fraction:.0%} of the best final P@1")
    for ax in (ax_s, ax_t):
        if ax.get_lines():
            ax.legend(loc="best", fontsize=9)
        else:
            _empty_message(ax, "no finished run with data")
    fig.suptitle(f"Core scaling — {context_text(runs)}")
    return save(fig, out_dir, stem)


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
    fig, (ax,) = _figure_with_notes(not_plotted(runs, histories))
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
        _empty_message(ax, "no finished run with data.n_labels and final/samples_per_s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="number of labels (output layer width)",
           ylabel="training seconds per sample (1 / final samples/s)",
           title=f"Cost per sample vs output size — {context_text(runs)}")
    ax.grid(True, which="both", alpha=0.3)
    return save(fig, out_dir, stem)


FIGURES = {"figure3": figure3, "iterations": iterations, "scaling": scaling,
           "sublinear": sublinear}
__all__ = ["DEFAULT_FRACTIONS", "FIGURES", "MODEL_COLOURS", "figure3", "iterations",
           "loglog_slope", "model_colour", "model_marker", "scaling", "sublinear", "sublinear_points"]
