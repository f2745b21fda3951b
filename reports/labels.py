"""Words on the figures: the dataset/threads context of a title, legend labels that name
what varies between runs, and the list of runs that have no curve (with their reason)."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from reports.load import eval_points

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
_LABEL_SKIP_PREFIXES: tuple[str, ...] = ("paths.", "tracking.", "hydra.", "data.", "model.name",
                                         "model.params._target_", "train.threads", "dataset.name",
                                         "slide.")


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
