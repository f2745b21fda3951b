"""Repeats: runs of one job that differ only in their seed, read as one measurement with a
spread instead of as separate lines and rows.

The harness tags every run with ``repeat_group``, a hash of its config without the seed
(harness.resume.repeat_group): `sweep.repeats=3` or `seed=0,1,2` gives each job three
runs with one group. Runs without the tag (stores from before it, other tools) and runs that
did not finish are groups of their own, so they are drawn and listed exactly as before.

- ``group_keys``: run_id -> group key.
- ``median_band``: the median curve of a group with its band (the range over the repeats, or
  the central 95% of them from five repeats on), on the x values the repeats share.
- ``bootstrap_ratio``: a bootstrap interval for a ratio of medians (a speed-up), resampling
  each side's runs independently.

Figures (reports.style.draw_curves) and the time-to-accuracy summary (reports.table) use them.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

GROUP_TAG = "repeat_group"  # written by the harness (harness.resume.REPEAT_GROUP_TAG)
PERCENTILE_FROM = 5  # repeats from which a band is the central 95% rather than the range
LEVEL = 0.95  # the bootstrap intervals' coverage
N_BOOT = 4000  # bootstrap resamples: the 2.5% tail then holds ~100 of them
BOOT_SEED = 0  # a fixed stream: the same store always gives the same intervals


def group_keys(runs: pd.DataFrame) -> pd.Series:
    """run_id -> group key: 'g:<repeat_group>' for finished runs that carry the tag, else
    'r:<run_id>' (a group of one)."""
    tag = runs[GROUP_TAG].fillna("").astype("str") if GROUP_TAG in runs.columns else \
        pd.Series("", index=runs.index)
    pooled = (runs["status"] == "finished") & (tag != "")
    keys = np.where(pooled, "g:" + tag, "r:" + runs["run_id"].astype("str"))
    return pd.Series(keys, index=runs["run_id"].to_numpy(), name="group")


def band_text(n: int) -> str:
    """What a group's band spans, for legends and tables."""
    return "central 95%" if n >= PERCENTILE_FROM else "range"


def median_band(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Columns x, median, lo, hi for a group of curves (x ascending in each): every x any
    repeat logged inside the span all of them cover, each curve linearly interpolated there.
    The band is the range of the repeats, or their 2.5-97.5 percentiles from PERCENTILE_FROM
    repeats on. Empty when the curves share no x span."""
    starts = max((float(np.min(x)) for x, _ in curves), default=np.inf)
    ends = min((float(np.max(x)) for x, _ in curves), default=-np.inf)
    if starts > ends:
        return pd.DataFrame(columns=["x", "median", "lo", "hi"], dtype="float64")
    grid = np.unique(np.concatenate([np.asarray(x, dtype=np.float64) for x, _ in curves]))
    grid = grid[(grid >= starts) & (grid <= ends)]
    values = np.vstack([np.interp(grid, np.asarray(x, dtype=np.float64),
                                  np.asarray(y, dtype=np.float64)) for x, y in curves])
    if len(curves) >= PERCENTILE_FROM:
        lo, hi = np.percentile(values, [2.5, 97.5], axis=0)
    else:
        lo, hi = values.min(axis=0), values.max(axis=0)
    return pd.DataFrame({"x": grid, "median": np.median(values, axis=0), "lo": lo, "hi": hi})


def _misses_as_inf(times: Sequence[float]) -> np.ndarray:
    """Times to a target with NaN (never reached) as inf: longer than any time."""
    t = np.asarray(times, dtype=np.float64)
    return np.where(np.isnan(t), np.inf, t)


def median_with_misses(times: Sequence[float]) -> float:
    """Median of times to a target where NaN (never reached) counts as longer than any time:
    inf when half or more of the runs missed; NaN for no runs."""
    t = _misses_as_inf(times)
    return float(np.median(t)) if t.size else np.nan


def bootstrap_ratio(numerator: Sequence[float], denominator: Sequence[float],
                    n_boot: int = N_BOOT, level: float = LEVEL,
                    seed: int = BOOT_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of median(numerator) / median(denominator): each side's
    values are resampled with replacement on their own (runs of two models are not paired),
    n_boot times. NaN values are misses (see median_with_misses), so a resampled ratio may be
    inf (the numerator's median missed) or 0 (the denominator's did). (nan, nan) when both
    sides are single values (nothing to resample) or a resample has both medians missing."""
    a, b = _misses_as_inf(numerator), _misses_as_inf(denominator)
    if a.size == 0 or b.size == 0 or (a.size == 1 and b.size == 1):
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    med_a = np.median(a[rng.integers(0, a.size, size=(n_boot, a.size))], axis=1)
    med_b = np.median(b[rng.integers(0, b.size, size=(n_boot, b.size))], axis=1)
    if np.any(np.isinf(med_a) & np.isinf(med_b)):
        return (np.nan, np.nan)
    with np.errstate(divide="ignore"):
        ratios = med_a / med_b
    tail = (1.0 - level) / 2.0 * 100.0
    # inverted_cdf: a value the resamples took, never a blend of a finite ratio and inf
    lo, hi = np.percentile(ratios, [tail, 100.0 - tail], method="inverted_cdf")
    return (float(lo), float(hi))
