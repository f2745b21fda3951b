"""Every table the reports write, from the tidy tables of reports.load: the time-to-accuracy
table (maths, CSV and markdown) and the sparsity trade-off table beside its figure.

Time to accuracy: how long each model trained to reach a target P@1, and speed-ups.

Targets are fractions (default 50/75/90%) of the best final P@1 (full test set) over the
finished runs of the same problem (dataset, n_labels, n_features) in the sweep. A run's time
to a target is read from its eval/p_at_1 curve (the fixed eval subset) against the logged
training clock time/train_s:

- method "interpolate" (default): the first eval point at/above the target and the one before
  it are joined by a straight line in (time, P@1) and the crossing time is reported. This
  removes most of the eval-interval granularity, which otherwise penalises slow models (their
  eval points are further apart in seconds).
- method "first": the training time of the first eval point at/above the target (an upper
  bound, exactly a logged number).

A run that never reached the target has NaN. Column "t@<f> early" is true when the target was
already met at the first eval after training started: that time reflects the eval interval
more than the model (the markdown stars it). Speed-up of a run vs baseline b at a target =
time(b) / time(run), with b's run on the same problem (dataset, n_labels, n_features), thread
count and batch size; targets are per problem. If b never reached the target but the run did,
the markdown (to_markdown) shows a lower bound ">x" = b's final/train_s / time(run); the CSV
keeps NaN: it holds only measured ratios.

SLIDE runs also get their final retrieval quality beside the final P@5: "final lift@100" and
"final softmax mass", the last logged slide/lift_at_100 and slide/softmax_mass (their last
evaluation); NaN for models that do not log them and, for the lift, for SLIDE's random
control (it retrieves nothing).

Sparsity trade-off (tradeoff_table): one row per finished SLIDE run, its active fraction of the
output layer (last slide/active_out_mean over data.n_labels: what the run really computed,
not the requested sparsity) and final P@1, then the other models' final P@1 per problem; the
points of reports.figures.sparsity_tradeoff.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

import contract
from reports.load import baselines, eval_points, finished, is_slide, last_logged
from reports.repeats import N_BOOT, band_text, bootstrap_ratio, group_keys, median_with_misses

logger = logging.getLogger(__name__)

DEFAULT_FRACTIONS: tuple[float, ...] = (0.5, 0.75, 0.9)
METHODS: tuple[str, ...] = ("interpolate", "first")


def time_to_target(times: np.ndarray, p_at_1: np.ndarray, target: float,
                   method: str = "interpolate") -> float:
    """Training seconds at which the curve (times ascending) first reaches ``target``."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    t = np.asarray(times, dtype=np.float64)
    p = np.asarray(p_at_1, dtype=np.float64)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"times and p_at_1 must be 1-D and equal length: {t.shape} vs {p.shape}")
    hit = np.flatnonzero(p >= target)
    if hit.size == 0:
        return math.nan
    i = int(hit[0])
    if method == "first" or i == 0:
        return float(t[i])
    # p[i-1] < target <= p[i], so the denominator is positive.
    frac = (target - p[i - 1]) / (p[i] - p[i - 1])
    return float(t[i - 1] + frac * (t[i] - t[i - 1]))


# What makes two runs the same learning problem (targets are shared) and what makes them
# comparable for a speed-up (same problem, same threads and batch size). An output-size sweep
# varies data.n_labels within one dataset name, so the name alone is not enough.
PROBLEM_KEYS: tuple[str, ...] = ("dataset", "data.n_labels", "data.n_features")
_COLUMN_NAMES: dict[str, str] = {
    "model": "model", "run_name": "run", "dataset": "dataset", "data.n_labels": "labels",
    "data.n_features": "features", "threads": "threads", "train.batch_size": "batch",
    contract.FINAL_P_AT_1: "final P@1", "final/p_at_5": "final P@5",
    contract.FINAL_SAMPLES_PER_S: "samples/s", contract.FINAL_TRAIN_S: "train s",
    contract.PEAK_RSS_MB: "peak RSS MB", "role": "role"}
MATCH_COLUMNS: tuple[str, ...] = ("dataset", "labels", "features", "threads", "batch")
# Series whose last logged value is a column (from the histories: the runs table's latest
# value would do too, but the histories are what the retrieval figure draws, so the table's
# number is the last point of that curve), inserted after RETRIEVAL_AFTER.
RETRIEVAL_FINALS: dict[str, str] = {"slide/lift_at_100": "final lift@100",
                                    "slide/softmax_mass": "final softmax mass"}
RETRIEVAL_AFTER = "final P@5"


def problem_keys(runs: pd.DataFrame) -> list[str]:
    """The PROBLEM_KEYS that are columns of ``runs`` (a sweep may not log every one)."""
    return [k for k in PROBLEM_KEYS if k in runs.columns]


def _problem(row: Mapping[str, object], keys: Sequence[str]) -> tuple:
    return tuple(None if pd.isna(row[k]) else row[k] for k in keys)


def targets_by_problem(runs: pd.DataFrame, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                       ) -> dict[tuple, dict[float, float]]:
    """{problem: {fraction: fraction * best final P@1 of that problem}}; a problem is the
    tuple of PROBLEM_KEYS values (those the runs have). The best final P@1 is over the
    finished runs' repeat groups (reports.repeats), each at its median: the best single run
    of many repeats would raise the targets with the number of repeats."""
    done = finished(runs)
    if contract.FINAL_P_AT_1 not in done.columns or done.empty:
        return {}
    keys = problem_keys(done)
    by_group: dict[tuple, list[float]] = {}
    groups = done["run_id"].map(group_keys(done))
    for row, group in zip(done.to_dict("records"), groups, strict=True):
        by_group.setdefault((_problem(row, keys), group), []).append(row[contract.FINAL_P_AT_1])
    best: dict[tuple, float] = {}
    for (key, _), values in by_group.items():
        value = pd.Series(values, dtype="float64").median()  # NaN only if none logged it
        if not pd.isna(value) and value > best.get(key, -math.inf):
            best[key] = float(value)
    return {key: {f: f * b for f in fractions} for key, b in best.items()}


def problem_text(key: tuple, runs: pd.DataFrame) -> str:
    """'synthetic (n_labels=10000, n_features=5000)' for a targets_by_problem key."""
    keys = problem_keys(runs)
    named = dict(zip(keys, key, strict=True))
    extra = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in named.items()
                      if k != "dataset" and v is not None)
    return f"{named.get('dataset', '?')}" + (f" ({extra})" if extra else "")


def reached_by_first_eval(times: np.ndarray, p_at_1: np.ndarray, target: float) -> bool:
    """Whether the target was already met at the first eval after training started (the
    crossing lies on the segment from the untrained eval at time 0, or at the first point):
    the time then says more about the eval interval than about the model."""
    hit = np.flatnonzero(np.asarray(p_at_1) >= target)
    if hit.size == 0:
        return False
    i = int(hit[0])
    return i == 0 or float(np.asarray(times)[i - 1]) <= 0.0


def times_to_targets(runs: pd.DataFrame, histories: pd.DataFrame,
                     fractions: Sequence[float] = DEFAULT_FRACTIONS,
                     method: str = "interpolate") -> pd.DataFrame:
    """Long table: run_id, fraction, target, seconds (NaN when not reached), early (reached
    by the first eval after training started, see reached_by_first_eval)."""
    targets = targets_by_problem(runs, fractions)
    keys = problem_keys(runs)
    points = eval_points(histories).dropna(subset=[contract.TRAIN_CLOCK]).sort_values(["run_id", "step"])
    by_run = dict(tuple(points.groupby("run_id")))
    rows = []
    for run in finished(runs).to_dict("records"):
        curve = by_run.get(run["run_id"])
        t = np.empty(0) if curve is None else curve[contract.TRAIN_CLOCK].to_numpy()
        p = np.empty(0) if curve is None else curve[contract.EVAL_P_AT_1].to_numpy()
        for frac, target in targets.get(_problem(run, keys), {}).items():
            rows.append({"run_id": run["run_id"], "fraction": frac, "target": target,
                         "seconds": time_to_target(t, p, target, method) if t.size else math.nan,
                         "early": reached_by_first_eval(t, p, target)})
    return pd.DataFrame(rows, columns=["run_id", "fraction", "target", "seconds", "early"])


def pct_label(frac: float) -> str:
    return f"{frac * 100:g}%"


def _base_columns(runs: pd.DataFrame) -> pd.DataFrame:
    present = {k: v for k, v in _COLUMN_NAMES.items() if k in runs.columns}
    out = runs[["run_id", *present]].rename(columns=present)
    missing = {v: np.nan for k, v in _COLUMN_NAMES.items() if k not in runs.columns}
    return out.assign(**missing)[["run_id", *_COLUMN_NAMES.values()]]


def _with_retrieval_finals(table: pd.DataFrame, histories: pd.DataFrame) -> pd.DataFrame:
    """The RETRIEVAL_FINALS columns (each run's last logged value, NaN if it logged none)
    inserted after RETRIEVAL_AFTER; the other columns keep their order."""
    finals = {name: table["run_id"].map(last_logged(histories, key)).astype("float64")
              for key, name in RETRIEVAL_FINALS.items()}
    order = list(table.columns)
    at = order.index(RETRIEVAL_AFTER) + 1
    return table.assign(**finals)[[*order[:at], *finals, *order[at:]]]


def _baseline_ref(table: pd.DataFrame, base: str, t_col: str) -> pd.DataFrame:
    """Per (dataset, threads) the baseline's time to target (_ref_t) and total training time
    (_ref_total); repeated baseline runs give their median, NaN if any one missed the target
    (a median over only the lucky repeats would flatter the baseline)."""
    rows = table[table["model"] == base]
    return (rows.groupby(list(MATCH_COLUMNS), dropna=False)[[t_col, "train s"]]
            .agg(lambda v: v.median(skipna=False)).reset_index()
            .rename(columns={t_col: "_ref_t", "train s": "_ref_total"}))


def with_baseline_ref(table: pd.DataFrame, base: str, t_col: str) -> pd.DataFrame:
    """The table's rows (same order) with the matching baseline reference columns."""
    return table.merge(_baseline_ref(table, base, t_col), how="left", on=list(MATCH_COLUMNS))


def _speedups(table: pd.DataFrame, fractions: Sequence[float]) -> pd.DataFrame:
    """Adds 'speed-up vs <b> @<f>' = baseline time / run time for every baseline b present,
    matched on the same problem, thread count and batch size (MATCH_COLUMNS)."""
    cols: dict[str, np.ndarray] = {}
    for base in baselines(table):
        for frac in fractions:
            t_col = f"t@{pct_label(frac)} s"
            merged = with_baseline_ref(table, base, t_col)
            cols[f"speed-up vs {base} @{pct_label(frac)}"] = (merged["_ref_t"] / merged[t_col]).to_numpy()
    return table.assign(**cols)


def time_to_accuracy_table(runs: pd.DataFrame, histories: pd.DataFrame,
                           fractions: Sequence[float] = DEFAULT_FRACTIONS,
                           method: str = "interpolate") -> pd.DataFrame:
    """One row per finished run: finals (SLIDE's retrieval quality included), time to each
    target, speed-ups vs each baseline."""
    done = finished(runs)
    long = times_to_targets(done, histories, fractions, method)
    table = _with_retrieval_finals(_base_columns(done), histories)
    for frac in fractions:
        sel = long[long["fraction"] == frac][["run_id", "seconds", "early"]]
        table = table.merge(sel.rename(columns={"seconds": f"t@{pct_label(frac)} s",
                                                "early": f"t@{pct_label(frac)} early"}),
                            how="left", on="run_id")
    missing = {f"t@{pct_label(f)} {kind}": (np.nan if kind == "s" else False)
               for f in fractions for kind in ("s", "early") if f"t@{pct_label(f)} {kind}" not in table}
    table = _speedups(table.assign(**missing), fractions)
    table = table.assign(group=table["run_id"].map(group_keys(done)))
    return table.sort_values([*MATCH_COLUMNS, "model", "run"], ignore_index=True)


# ----------------------------------------------------------------------------- repeats

SUMMARY_KEYS: tuple[str, ...] = ("model", "run", "dataset", "labels", "features", "threads", "batch", "role")
CI_SUFFIXES: tuple[str, str] = (" lo95", " hi95")  # a speed-up's bootstrap interval columns
BOUND_SUFFIX = " lower bound"  # where the baseline's median never reached the target
SUMMARY_STEM = "_summary"  # time_to_accuracy_summary.csv: the repeat summary beside the table


def _spread_columns(values: pd.Series, name: str) -> dict[str, float]:
    """name (the median), name min, name max over a group's runs."""
    return {name: values.median(), f"{name} min": values.min(), f"{name} max": values.max()}


def _group_row(group: pd.DataFrame, fractions: Sequence[float]) -> dict[str, object]:
    """One repeat group of the per-run table as one row: medians with min / max, the samples/s
    spread (max - min over the median, in %: the run-to-run noise), and the median time to each
    target counting a miss as longer than any time (median_with_misses), with how many reached."""
    first = group.iloc[0]
    row: dict[str, object] = {k: first[k] for k in SUMMARY_KEYS}
    speed = group["samples/s"].astype("float64")
    row |= {"runs": len(group), "band": band_text(len(group)),
            **_spread_columns(group["final P@1"].astype("float64"), "final P@1"),
            **_spread_columns(speed, "samples/s"),
            "samples/s spread %": ((speed.max() - speed.min()) / speed.median() * 100.0
                                   if len(group) > 1 else np.nan),
            "train s": group["train s"].median(), "peak RSS MB": group["peak RSS MB"].median()}
    for frac in fractions:
        times = group[f"t@{pct_label(frac)} s"].astype("float64")
        med = median_with_misses(times)
        row |= {f"t@{pct_label(frac)} s": med if math.isfinite(med) else np.nan,
                f"t@{pct_label(frac)} min": times.min(), f"t@{pct_label(frac)} max": times.max(),
                f"t@{pct_label(frac)} reached": int(times.notna().sum())}
    return row


def _match_keys(frame: pd.DataFrame) -> pd.Series:
    """The MATCH_COLUMNS of each row as one string (missing values equal each other)."""
    return frame[list(MATCH_COLUMNS)].astype("string").fillna("<NA>").agg("|".join, axis=1)


def _group_speedups(summary: pd.DataFrame, table: pd.DataFrame,
                    fractions: Sequence[float]) -> pd.DataFrame:
    """Per group and baseline b: 'speed-up vs b @f' = median time of b's runs / the group's
    median time (misses count as longer than any time; NaN when either median missed), its
    bootstrap interval (reports.repeats.bootstrap_ratio) in the ' lo95' / ' hi95' columns (NaN
    when both sides are single runs), and in ' lower bound' b's median training time over the
    group's median time where b's median missed and the group's did not. b's runs: every run
    of model b with the same problem, threads and batch (MATCH_COLUMNS)."""
    cols: dict[str, list[float]] = {}
    keys = _match_keys(table)
    groups = list(table.groupby("group", sort=False))
    for base in baselines(table):
        for frac in fractions:
            t_col, name = f"t@{pct_label(frac)} s", f"speed-up vs {base} @{pct_label(frac)}"
            values: list[tuple[float, float, float, float]] = []
            for _, grp in groups:
                ref = table[(table["model"] == base) & (keys == keys[grp.index[0]])]
                ref_t = ref[t_col].to_numpy(dtype=np.float64)
                mine = median_with_misses(grp[t_col])
                ratio = median_with_misses(ref_t) / mine if ref_t.size else np.nan
                bound = (ref["train s"].median() / mine if ref_t.size and math.isinf(ratio)
                         else np.nan)
                interval = bootstrap_ratio(ref_t, grp[t_col]) if ref_t.size else (np.nan, np.nan)
                values.append((ratio if math.isfinite(ratio) and ratio > 0 else np.nan,
                               *interval, bound))
            point, lo, hi, bound = (list(v) for v in zip(*values, strict=True))
            cols |= {name: point, name + CI_SUFFIXES[0]: lo, name + CI_SUFFIXES[1]: hi,
                     name + BOUND_SUFFIX: bound}
    return summary.assign(**cols)


def repeat_summary(table: pd.DataFrame, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                   ) -> pd.DataFrame:
    """The per-run table (time_to_accuracy_table) with the repeats of each job pooled: one row
    per repeat group (reports.repeats), in the table's order. A group of one run keeps that
    run's numbers, so a sweep without repeats gives the per-run figures again."""
    rows = [_group_row(grp, fractions) for _, grp in table.groupby("group", sort=False)]
    summary = pd.DataFrame(rows, columns=None if rows else [*SUMMARY_KEYS, "runs"])
    return _group_speedups(summary, table, fractions) if rows else summary


def has_repeats(summary: pd.DataFrame) -> bool:
    return bool(len(summary)) and bool((summary["runs"] > 1).any())


def _metric_name(text: str) -> str:
    """MLflow metric names allow letters, digits, '_', '-', '.', ' ', ':' and '/' only:
    '75%' -> '75pct', anything else not allowed -> '_'."""
    return re.sub(r"[^\w.\- :/]", "_", text.replace("%", "pct"))


def headline_speedups(table: pd.DataFrame) -> dict[str, float]:
    """The measured speed-ups of every model that is not itself a baseline (SLIDE and its
    variants) against each baseline, as MLflow metrics of the sweep's parent run:
    'speedup/<model>_vs_<baseline>_at_<pct>pct' (e.g. speedup/slide_vs_tf_cpu_at_75pct), from
    the repeat summary (repeat_summary: the ratio of median times) or any table with the same
    columns. Where the table has a bootstrap interval, its bounds follow as '.../ci95_lo' and
    '.../ci95_hi'. A model with several rows (a sweep over threads or hash settings) gets one
    metric per row, the row's run name appended. Only measured, finite values: no NaN, no '>x'
    bounds (those stay in the markdown table)."""
    speedup_cols = [c for c in table.columns if c.startswith("speed-up vs ")
                    and not c.endswith((*CI_SUFFIXES, BOUND_SUFFIX))]
    rows = table[~table["model"].isin(baselines(table))]
    several = rows["model"].value_counts()
    metrics: dict[str, float] = {}
    for row in rows.to_dict("records"):
        for col in speedup_cols:
            value = row[col]
            if pd.isna(value) or not math.isfinite(float(value)):
                continue
            base, frac_text = col.removeprefix("speed-up vs ").split(" @")
            key = f"speedup/{row['model']}_vs_{base}_at_{frac_text}"
            key += f"/{row['run']}" if several[row["model"]] > 1 else ""
            metrics[_metric_name(key)] = float(value)
            for suffix, bound in zip(CI_SUFFIXES, ("ci95_lo", "ci95_hi"), strict=True):
                limit = row.get(col + suffix, np.nan)
                if not pd.isna(limit) and math.isfinite(float(limit)):
                    metrics[_metric_name(f"{key}/{bound}")] = float(limit)
    return metrics


# ----------------------------------------------------------------------------- CSV and markdown

def _fmt(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _star_early(table: pd.DataFrame) -> pd.DataFrame:
    """Time cells as text, with '*' where the target was reached by the first eval."""
    cols = {}
    for col in [c for c in table.columns if c.startswith("t@") and c.endswith(" s")]:
        early = table[col.removesuffix(" s") + " early"].fillna(False).astype(bool)
        cols[col] = [_fmt(v) + ("\\*" if e and not pd.isna(v) else "")
                     for v, e in zip(table[col], early, strict=True)]
    return table.assign(**cols)


def _markdown(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _speedup_text(ratio: float, mine: float, ref_t: float, ref_total: float) -> str:
    if not math.isnan(ratio):
        return f"{ratio:.2f}x"
    if not math.isnan(mine) and math.isnan(ref_t) and not math.isnan(ref_total):
        return f">{ref_total / mine:.2f}x"
    return "—"


def _speedup_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Speed-up columns as text, with '>x' lower bounds where the baseline never got there."""
    cells: dict[str, list[str]] = {}
    for col in [c for c in table.columns if c.startswith("speed-up vs ")]:
        base, frac_txt = col.removeprefix("speed-up vs ").split(" @")
        t_col = f"t@{frac_txt} s"
        merged = with_baseline_ref(table, base, t_col)
        cells[col.removeprefix("speed-up ")] = [
            _speedup_text(*map(float, vals)) for vals in
            merged[[col, t_col, "_ref_t", "_ref_total"]].itertuples(index=False)]
    return table[["model", "run", "labels", "threads"]].assign(**cells)


def _write_csv_and_markdown(table: pd.DataFrame, markdown: str, out_dir: Path,
                           stem: str) -> list[Path]:
    """Writes the table as <stem>.csv and the markdown text as <stem>.md into out_dir (made if
    absent); returns [csv path, md path]."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    table.to_csv(csv_path, index=False)
    md_path.write_text(markdown, encoding="utf-8")
    logger.info("wrote %s and %s", csv_path, md_path)
    return [csv_path, md_path]


def _with_range(median: float, lo: float, hi: float, digits: int = 3) -> str:
    """'0.805 [0.801, 0.809]'; '—' for a missing median."""
    if pd.isna(median):
        return "—"
    return f"{_fmt(median, digits)} [{_fmt(lo, digits)}, {_fmt(hi, digits)}]"


def _interval_text(point: float, lo: float, hi: float, bound: float) -> str:
    """'1.48x [1.31, 1.62]' (the bootstrap interval; ∞ where resamples never reached), '1.48x'
    without one, '>20.0x' where the baseline's median never reached the target, else '—'."""
    if pd.isna(point):
        return f">{bound:.2f}x" if not pd.isna(bound) else "—"
    if pd.isna(lo):
        return f"{point:.2f}x"
    upper = "∞)" if math.isinf(hi) else f"{hi:.2f}]"
    return f"{point:.2f}x [{lo:.2f}, {upper}"


def _summary_cells(summary: pd.DataFrame, fractions: Sequence[float]) -> pd.DataFrame:
    """The repeat summary as text cells: medians with [min, max], misses counted."""
    out = pd.DataFrame({"model": summary["model"], "runs": summary["runs"],
                        "labels": summary["labels"], "threads": summary["threads"]})
    out["final P@1"] = [_with_range(*v) for v in summary[
        ["final P@1", "final P@1 min", "final P@1 max"]].itertuples(index=False)]
    out["samples/s"] = [_fmt(m) + ("" if pd.isna(sp) else f" (±{sp / 2:.1f}%)") for m, sp in
                        summary[["samples/s", "samples/s spread %"]].itertuples(index=False)]
    for frac in fractions:
        p = pct_label(frac)
        cells = []
        for med, lo, hi, hit, n in summary[[f"t@{p} s", f"t@{p} min", f"t@{p} max",
                                            f"t@{p} reached", "runs"]].itertuples(index=False):
            missed = f" ({hit}/{n} reached)" if hit < n else ""
            cells.append(_with_range(med, lo, hi) + missed)
        out[f"t@{p} s"] = cells
    return out


def _summary_speedup_cells(summary: pd.DataFrame) -> pd.DataFrame:
    cells = {}
    for col in [c for c in summary.columns if c.startswith("speed-up vs ")
                and not c.endswith((*CI_SUFFIXES, BOUND_SUFFIX))]:
        cells[col.removeprefix("speed-up ")] = [
            _interval_text(*v) for v in summary[[col, *(col + s for s in CI_SUFFIXES),
                                                 col + BOUND_SUFFIX]].itertuples(index=False)]
    return summary[["model", "runs", "labels", "threads"]].assign(**cells)


def noise_line(summary: pd.DataFrame) -> str:
    """How far repeats of one job spread in samples/s and final P@1 (the largest spread)."""
    rep = summary[summary["runs"] > 1]
    speed = rep["samples/s spread %"].dropna()
    p_spread = ((rep["final P@1 max"] - rep["final P@1 min"]) * 100.0).dropna()
    parts = []
    if len(speed):
        parts.append(f"samples/s spread by up to {speed.max():.1f}% of its median "
                     f"({rep.loc[speed.idxmax(), 'model']}; median over jobs {speed.median():.1f}%)")
    if len(p_spread):
        parts.append(f"final P@1 by up to {p_spread.max():.1f} points "
                     f"({rep.loc[p_spread.idxmax(), 'model']})")
    if not parts:
        return "Run-to-run noise: the repeats logged no samples/s or final P@1."
    return (f"Run-to-run noise: across the repeats of one job, {' and '.join(parts)}. A "
            f"difference smaller than this is not one this sweep can show.")


def repeats_markdown(summary: pd.DataFrame, fractions: Sequence[float]) -> list[str]:
    """The markdown lines of the repeat summary: medians, speed-ups with intervals, noise."""
    n = int(summary["runs"].max())
    lines = [f"## Repeats (up to {n} runs per job; median [min, max])", "",
             "Runs whose configs differ only in the seed are one job. Times: the median over "
             "its runs, a run that never reached the target counting as longer than any time "
             "(— when half or more missed); samples/s: median (± half its range, in %).", "",
             _markdown(_summary_cells(summary, fractions)), "", noise_line(summary), "",
             "### Speed-ups with 95% bootstrap intervals", "",
             f"Median baseline time / median time; in brackets the 2.5 and 97.5 percentiles of "
             f"that ratio over {N_BOOT:,} resamples of each model's runs (resampled "
             f"independently; ∞: in some resamples the baseline's median never reached the "
             f"target). '>x': the baseline's median never reached it (bound from its training "
             f"time).", "", _markdown(_summary_speedup_cells(summary)), ""]
    return lines


def dead_runs_lines(runs: pd.DataFrame) -> list[str]:
    """'run: status: reason' for every run that is not finished."""
    dead = runs[runs["status"] != "finished"]
    return [f"{r.run_name}: {r.status}" + (f": {r.reason}" if r.reason else "")
            for r in dead.itertuples(index=False)]


def to_markdown(table: pd.DataFrame, runs: pd.DataFrame,
                fractions: Sequence[float] = DEFAULT_FRACTIONS,
                method: str = "interpolate") -> str:
    """The table as a markdown document: targets, method, times, speed-ups, dead runs."""
    targets = targets_by_problem(runs, fractions)
    lines = ["# Time to accuracy", ""]
    if not targets:
        lines.append("No targets: no finished run logged final/p_at_1 (e.g. train.final_eval="
                     "false), so no times to accuracy; throughput and memory are still below.")
    for key, tgs in targets.items():
        desc = ", ".join(f"{pct_label(f)} = {t:.4f}" for f, t in tgs.items())
        lines.append(f"Targets for {problem_text(key, runs)} (fractions of the best final P@1; "
                     f"of repeated jobs, their median): {desc}.")
    lines.append(f"Times are training-clock seconds (time/train_s) at which eval/p_at_1 first "
                 f"reached the target, method: {method}"
                 + (" (linear between the eval points around the crossing)." if method == "interpolate"
                    else " (first eval point at/above the target)."))
    if table["final lift@100"].notna().any():
        lines.append("final lift@100: the last slide/lift_at_100, top-100 recall of the hash "
                     "tables on held-out rows over what a random set of the same size gets (1 = "
                     "no better than random); final softmax mass: share of the full softmax held "
                     "by the retrieved neurons. '—' for models that do not log them (and lift for "
                     "the random control, which retrieves nothing).")
    lines.append("")
    summary = repeat_summary(table, fractions)
    if has_repeats(summary):
        lines += [*repeats_markdown(summary, fractions), "## Every run", ""]
    main_cols = [c for c in table.columns if not c.startswith("speed-up")
                 and not c.endswith(" early") and c not in ("run_id", "role", "features", "group")]
    lines += [_markdown(_star_early(table)[main_cols]), ""]
    if any(table[c].fillna(False).astype(bool).any() for c in table.columns if c.endswith(" early")):
        lines += ["\\* reached by the first evaluation after training started: the time mostly "
                  "reflects the eval interval (and, interpolated, assumes linear progress from "
                  "time 0). Raise the targets or evaluate more often to separate the models.", ""]
    speed = _speedup_cells(table)
    if speed.shape[1] > 4:
        lines += ["## Speed-ups (baseline time / run time; '>x': the baseline never reached the "
                  "target, bound from its total training time)", "", _markdown(speed), ""]
    dead = dead_runs_lines(runs)
    if dead:
        lines += ["## Runs without results", "", *[f"- {d}" for d in dead], ""]
    return "\n".join(lines)


def write_table(runs: pd.DataFrame, histories: pd.DataFrame, out_dir: Path,
                fractions: Sequence[float] = DEFAULT_FRACTIONS, method: str = "interpolate",
                stem: str = "time_to_accuracy") -> list[Path]:
    """Writes <stem>.csv (one row per run), <stem>_summary.csv (one row per job, its repeats
    pooled: repeat_summary) and <stem>.md into out_dir; returns their paths."""
    table = time_to_accuracy_table(runs, histories, fractions, method)
    paths = _write_csv_and_markdown(table, to_markdown(table, runs, fractions, method), out_dir, stem)
    summary_path = Path(out_dir) / f"{stem}{SUMMARY_STEM}.csv"
    repeat_summary(table, fractions).to_csv(summary_path, index=False)
    return [*paths, summary_path]


# ----------------------------------------------------------------------------- trade-off

STRATEGY, SPARSITY, BUDGET = "model.params.strategy", "model.params.sparsity", "slide.budget"
ACTIVE = "slide/active_out_mean"
NO_STRATEGY = "(strategy not logged)"
TRADEOFF_COLUMNS: tuple[str, ...] = ("dataset", "labels", "model", "strategy", "budget",
                                     "active fraction", "final P@1", "final lift@100",
                                     "sparsity", "active neurons", "run", "run_id")


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
    counts = done.groupby(problem_keys(done), dropna=False)[column].nunique(dropna=True)
    return bool((counts > 1).any())


def tradeoff_points(runs: pd.DataFrame, histories: pd.DataFrame) -> pd.DataFrame:
    """One row per finished SLIDE run with an active fraction and a final P@1
    (TRADEOFF_COLUMNS): active fraction = last slide/active_out_mean / data.n_labels, final
    lift@100 = last slide/lift_at_100 (NaN for the random control); sorted by problem,
    strategy, x."""
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
        "final P@1": _column(slide, contract.FINAL_P_AT_1),
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
    if contract.FINAL_P_AT_1 not in others.columns:
        return pd.DataFrame(columns=list(TRADEOFF_COLUMNS))
    others = others.dropna(subset=[contract.FINAL_P_AT_1])
    keys = ["dataset", *(["data.n_labels"] if "data.n_labels" in others.columns else []), "model"]
    levels = (others.groupby(keys, dropna=False, sort=True)
              .agg(**{"final P@1": (contract.FINAL_P_AT_1, "median"), "name": ("run_name", "first"),
                      "n": ("run_name", "size")})
              .reset_index().rename(columns={"data.n_labels": "labels"}))
    # "run": the run's name, or how many runs the median is over
    runs_text = [name if n == 1 else f"median of {n} runs"
                 for name, n in zip(levels["name"], levels["n"], strict=True)]
    return levels.assign(run=runs_text).reindex(columns=list(TRADEOFF_COLUMNS))


def tradeoff_table(runs: pd.DataFrame, histories: pd.DataFrame) -> pd.DataFrame:
    """The figure's points (SLIDE runs), then the other models' levels (no strategy, budget or
    active fraction: drawn as horizontal lines)."""
    parts = [p for p in (tradeoff_points(runs, histories), baseline_levels(runs)) if len(p)]
    if not parts:
        return pd.DataFrame(columns=list(TRADEOFF_COLUMNS))
    return pd.concat(parts, ignore_index=True)[list(TRADEOFF_COLUMNS)]


def tradeoff_markdown(table: pd.DataFrame) -> str:
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
    table = tradeoff_table(runs, histories)
    return _write_csv_and_markdown(table, tradeoff_markdown(table), out_dir, stem)
