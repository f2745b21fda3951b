"""Look and words of every report figure.

Look: each model's colour and marker (declared in its config, conf/model/<name>.yaml, so a
model looks the same in every figure and a new model needs no edit here), fixed colours per
SLIDE output strategy, shades and line styles per run, the notes panel listing runs that have no
curve, log-axis ticks, and saving as PNG + SVG.

Words: the dataset/threads context of a title, legend labels that name what varies between
runs, and the list of runs that have no curve (with their reason).
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
from reports.repeats import band_text, group_keys, median_band  # noqa: E402

logger = logging.getLogger(__name__)

# SLIDE's output-layer strategies (model.params.strategy), compared in one figure: the hashing
# strategies in warm colours (vanilla = SLIDE's red), the controls apart: black for uniform
# random sampling (what hashing must beat), gold for the exact top-k oracle (its ceiling).
# Keep them apart from the models' colours (conf/model/*.yaml; tests/test_model_registry.py checks),
# so that baseline lines drawn beside them stay distinct.
STRATEGY_COLOURS: dict[str, str] = {"vanilla": "#d62728", "threshold": "#ff7f0e",
                                    "topk": "#8c564b", "random": "#000000", "oracle": "#bcbd22"}
STRATEGY_MARKERS: dict[str, str] = {"vanilla": "o", "threshold": "v", "topk": "P",
                                    "random": "X", "oracle": "*"}
# Runs that do not say their model's colour (logged before models declared one, or by another
# tool) get one from this list chosen by a hash of the name, so that model keeps its colour
# across figures and across report invocations.
_EXTRA_COLOURS: tuple[str, ...] = ("#ff7f0e", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
                                   "#393b79", "#637939", "#843c39")
_LINESTYLES: tuple[str, ...] = ("-", "--", "-.", ":")
DPI = 150
MAX_NOTES = 12  # dead runs listed under a figure


def _declared(group: pd.DataFrame, column: str) -> str:
    """The first non-empty value of a look column among a model's runs ('' if none says)."""
    if column not in group.columns:
        return ""
    values = [str(v) for v in group[column].dropna() if str(v) != ""]
    return values[0] if values else ""


def model_looks(runs: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """model -> (colour, marker) as its config declares them (the colour and marker columns);
    a model whose runs do not say: a stable colour from its name and marker 'o'."""
    looks: dict[str, tuple[str, str]] = {}
    for model, group in runs.groupby("model", sort=False):
        colour = _declared(group, "colour") or _EXTRA_COLOURS[zlib.crc32(str(model).encode()) % len(_EXTRA_COLOURS)]
        looks[model] = (colour, _declared(group, "marker") or "o")
    return looks


def strategy_colour(strategy: str) -> str:
    """The fixed colour of a SLIDE output strategy (unknown ones: a stable colour by name)."""
    if strategy in STRATEGY_COLOURS:
        return STRATEGY_COLOURS[strategy]
    return _EXTRA_COLOURS[zlib.crc32(strategy.encode()) % len(_EXTRA_COLOURS)]


def strategy_marker(strategy: str) -> str:
    return STRATEGY_MARKERS.get(strategy, "o")


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
    looks = model_looks(runs)
    for model, group in runs.groupby("model", sort=False):
        for i, rid in enumerate(group["run_id"]):
            colours[rid] = _shade(looks[model][0], i, len(group))
    return colours


def linestyles(runs: pd.DataFrame) -> dict[str, str]:
    """Runs of the same model share a colour family, so they also get different line styles."""
    styles: dict[str, str] = {}
    for _, group in runs.groupby("model", sort=False):
        for i, rid in enumerate(group["run_id"]):
            styles[rid] = _LINESTYLES[i % len(_LINESTYLES)]
    return styles


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


def figure_with_notes(notes: Sequence[str], ncols: int = 1,
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
        text = "Not plotted or incomplete:\n" + "\n".join(f"  {n}" for n in wrapped)
        note_ax.text(0.0, 1.0, text, va="top", ha="left", fontsize=8,
                     family="monospace", transform=note_ax.transAxes)
    return fig, axes


def draw_curves(ax: plt.Axes, runs: pd.DataFrame, points: pd.DataFrame, x: str, y: str,
                linestyle: str | None = None, labelled: bool = True) -> int:
    """One line per run in the runs' order (colour and marker by model, shade and line style
    by run); repeats of one job (reports.repeats) are one line instead, their median, over a
    band of their spread. Returns how many lines were drawn. ``linestyle`` overrides the
    per-run styles, for a figure whose line style means something else (one quantity solid,
    another dashed); ``labelled=False`` keeps the lines out of the legend (a second line of
    the same run)."""
    by_run = dict(tuple(points.groupby("run_id", sort=False)))
    drawable = runs[runs["run_id"].isin(list(by_run))]  # dead runs take no shade or style
    groups = group_keys(drawable)
    members = groups.groupby(groups, sort=False).groups  # group key -> its run ids, in order
    reps = drawable[~groups.duplicated().to_numpy()]  # one run stands for its group
    labels, styles, colours = curve_labels(reps), linestyles(reps), run_colours(reps)
    looks = model_looks(reps)  # markers: dense models trained identically overlap per step
    for rid, model in zip(reps["run_id"], reps["model"], strict=True):
        ids = members[groups[rid]]
        style = dict(color=colours[rid], linestyle=linestyle or styles[rid],
                     marker=looks[model][1], markersize=4, linewidth=1.6, alpha=0.9)
        label = labels[rid] if labelled else "_nolegend_"
        curves = [(by_run[i][x].to_numpy(), by_run[i][y].to_numpy()) for i in ids]
        band = median_band(curves) if len(ids) > 1 else None
        if band is None or band.empty:  # one run, or repeats that share no x span
            for (cx, cy), i in zip(curves, ids, strict=True):
                ax.plot(cx, cy, label=label if i == rid else "_nolegend_", **style)
            continue
        if labelled:
            label += f" (median of {len(ids)}, band: {band_text(len(ids))})"
        ax.fill_between(band["x"], band["lo"], band["hi"], color=colours[rid], alpha=0.2,
                        linewidth=0)
        ax.plot(band["x"], band["median"], label=label, markevery=len(ids), **style)
    return len(reps)


def legend(ax: plt.Axes, n_curves: int, entries_from: plt.Axes | None = None) -> None:
    """Inside the axes for a few curves; outside on the right for a big sweep. entries_from:
    the axes whose lines the legend lists, when it differs from the one it sits beside (a
    right-hand panel that draws only some of the runs)."""
    handles, labels = (entries_from or ax).get_legend_handles_labels()
    if n_curves <= 8:
        ax.legend(handles, labels, loc="best", fontsize=9)
    else:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
                  ncol=1 + n_curves // 26, borderaxespad=0.0)


class _PlainLogFormatter(LogFormatter):
    """LogFormatter's choice of which ticks to label, printed as plain numbers (0.8, 3000)."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:g}"


def plain_log_ticks(axis: matplotlib.axis.Axis) -> None:
    """Tick labels on a log axis as plain numbers (0.5, 2, 3000 rather than 2x10^0); minor
    ticks are labelled (a subset, or all on a short axis) when the axis spans few decades."""
    axis.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def empty_message(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11)


# ----------------------------------------------------------------------------- words

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
# store locations) or that other label parts already say (threads, dataset name, model). The
# SLIDE job's resolved params (slide.budget, slide.sparsity, slide.K, slide.L) follow from the
# model.params.* choices that the label already names: both would print "sparsity" twice.
# resume_lease.*: who continued a stopped run (harness.resume), not a choice.
_LABEL_SKIP_PREFIXES: tuple[str, ...] = ("paths.", "tracking.", "hydra.", "data.", "model.name",
                                         "model.params._target_", "train.threads", "dataset.name",
                                         "slide.", "resume_lease.")


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


def not_plotted(runs: pd.DataFrame, histories: pd.DataFrame) -> list[str]:
    """Lines for runs without a complete curve: skipped/failed/killed with their reason (and
    'partial curve drawn' when a failed or killed run logged some evals first), and finished
    runs that logged no eval point."""
    has_curve = set(eval_points(histories)["run_id"])
    lines = []
    for r in runs.itertuples(index=False):
        if r.status in ("skipped", "failed", "killed"):
            partial = " (partial curve drawn)" if r.run_id in has_curve else ""
            lines.append(f"{r.run_name}: {r.status}{partial}: {r.reason}")
        elif r.run_id not in has_curve:
            lines.append(f"{r.run_name}: {r.status}: no eval/p_at_1 logged")
    return lines
