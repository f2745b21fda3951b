"""The time-to-accuracy table as files: CSV (numbers) and markdown (targets, method, times with
'*' where the target came by the first eval, speed-ups with '>x' lower bounds, dead runs)."""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from reports.table import (DEFAULT_FRACTIONS, pct_label, problem_text, targets_by_problem,
                           time_to_accuracy_table, with_baseline_ref)

logger = logging.getLogger(__name__)

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
        lines.append(f"Targets for {problem_text(key, runs)} (fractions of the best final P@1): "
                     f"{desc}.")
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
    main_cols = [c for c in table.columns if not c.startswith("speed-up")
                 and not c.endswith(" early") and c not in ("run_id", "features")]
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
    """Writes <stem>.csv and <stem>.md into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = time_to_accuracy_table(runs, histories, fractions, method)
    csv_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    table.to_csv(csv_path, index=False)
    md_path.write_text(to_markdown(table, runs, fractions, method), encoding="utf-8")
    logger.info("wrote %s and %s", csv_path, md_path)
    return [csv_path, md_path]
