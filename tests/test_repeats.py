"""Repeats: runs that differ only in the seed are one job (tag repeat_group), drawn as a median
with a band and summarised with bootstrap intervals (reports.repeats, reports.table), and the
sweep option that makes them (sweep.repeats). Plus the Amazon-width Figure 3 preset."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import reports_fixtures as fx  # noqa: E402

from harness.loop import LoopSettings  # noqa: E402
from harness.resume import config_hash, repeat_group  # noqa: E402
from reports import figures  # noqa: E402
from reports.load import eval_points, load_histories, load_runs  # noqa: E402
from reports.repeats import bootstrap_ratio, group_keys, median_band, median_with_misses  # noqa: E402
from reports.style import draw_curves  # noqa: E402
from reports.table import (headline_speedups, repeat_summary, targets_by_problem,  # noqa: E402
                           time_to_accuracy_table, to_markdown)
from tests.conftest import run_cli  # noqa: E402
from tests.test_configs import hydra_compose  # noqa: E402,F401  (the fixture)

INF = math.inf

# ----------------------------------------------------------------------------- grouping


def test_repeat_group_ignores_the_seed_and_nothing_else():
    base = {"seed": 0, "model": {"name": "slide"}, "train": {"lr": 1e-3, "epochs": 1}}
    seed1 = {**base, "seed": 1}
    other_lr = {**base, "train": {"lr": 2e-3, "epochs": 1}}
    assert repeat_group(base) == repeat_group(seed1)
    assert config_hash(base) != config_hash(seed1)  # still two runs, never one reused for both
    assert repeat_group(other_lr) != repeat_group(base)


def test_group_keys_pool_finished_runs_of_one_group_only():
    runs = pd.DataFrame({
        "run_id": ["a", "b", "c", "d", "e", "f"],
        "status": ["finished", "finished", "finished", "failed", "finished", "finished"],
        "repeat_group": ["g1", "g1", "g1", "g1", "g2", ""]})
    keys = group_keys(runs)
    assert keys["a"] == keys["b"] == keys["c"] != keys["e"]
    assert keys["d"] not in (keys["a"], keys["e"], keys["f"])  # a failed repeat stands alone
    assert keys["f"] == "r:f"  # no tag (an older run): a group of its own
    assert group_keys(runs.drop(columns="repeat_group")).tolist() == [f"r:{r}" for r in "abcdef"]


# ----------------------------------------------------------------------------- statistics


def test_bootstrap_interval_matches_a_hand_computed_case():
    # Each side's resampled median is equally likely its lower value, its mean or its upper
    # value with probabilities 1/4, 1/2, 1/4: the ratio 20/5 = 4 and 10/10 = 1 each have
    # probability 1/16 > 2.5%, so the 2.5% and 97.5% points are exactly 1 and 4.
    assert bootstrap_ratio([10.0, 20.0], [5.0, 10.0]) == (1.0, 4.0)
    # Three baseline runs against one: the resampled median is 10 or 30 with probability
    # 7/27 each (two or three draws of that value), 20 otherwise: interval [1, 3].
    assert bootstrap_ratio([10.0, 20.0, 30.0], [10.0]) == (1.0, 3.0)
    # A baseline run that never reached the target counts as longer than any time: in 3/4 of
    # the resamples the baseline's median missed, so the upper bound is unbounded.
    assert bootstrap_ratio([10.0, math.nan], [5.0, 5.0]) == (2.0, INF)
    assert all(math.isnan(v) for v in bootstrap_ratio([10.0], [5.0]))  # nothing to resample


def test_median_with_misses_counts_a_miss_as_longest():
    assert median_with_misses([3.0, math.nan, 1.0]) == 3.0
    assert median_with_misses([1.0, math.nan]) == INF
    assert math.isnan(median_with_misses([]))


def test_median_band_is_the_range_and_then_the_central_95_percent():
    x1, x2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.5, 1.5, 2.5])
    band = median_band([(x1, x1), (x2, 2 * x2), (x1, 3 * x1)])
    # the shared span is [0.5, 2.5]; every x inside it that some repeat logged
    np.testing.assert_allclose(band["x"], [0.5, 1.0, 1.5, 2.0, 2.5])
    np.testing.assert_allclose(band["median"], 2 * band["x"])
    np.testing.assert_allclose(band["lo"], band["x"])
    np.testing.assert_allclose(band["hi"], 3 * band["x"])
    five = median_band([(x1, k * x1) for k in (1.0, 2.0, 3.0, 4.0, 5.0)])
    np.testing.assert_allclose(five["lo"], np.percentile([1, 2, 3, 4, 5], 2.5) * x1)
    assert median_band([(x1[:2], x1[:2]), (x1[2:], x1[2:])]).empty  # no shared span


# ----------------------------------------------------------------------------- fixture store

SLIDE_REPEATS = (fx.FakeRun("slide", 4000.0, 0.50, 120.0, repeat_group="slide-g"),
                 fx.FakeRun("slide", 3600.0, 0.55, 110.0, repeat_group="slide-g"),
                 fx.FakeRun("slide", 4400.0, 0.60, 130.0, repeat_group="slide-g"))
TF_REPEATS = (fx.FakeRun("tf_cpu", 500.0, 0.60, 100.0, repeat_group="tf-g"),
              fx.FakeRun("tf_cpu", 450.0, 0.58, 100.0, repeat_group="tf-g"))


@pytest.fixture(scope="module")
def repeated(tmp_path_factory):
    """Three SLIDE repeats, two tf_cpu repeats, and one SLIDE run of another config."""
    base = tmp_path_factory.mktemp("repeats")
    client = MlflowClient(f"sqlite:///{base / 'mlflow.db'}")
    exp = client.create_experiment("repeats", artifact_location=(base / "art").as_uri())
    other = fx.FakeRun("slide", 2000.0, 0.40, 100.0, repeat_group="other-lr")
    for job, run in enumerate((*SLIDE_REPEATS, *TF_REPEATS, other)):
        fx.log_fake_run(client, exp, run, "/sweeps/repeats", job)
    runs = load_runs(client, "repeats")
    return runs, load_histories(client, runs)


def test_figure_draws_one_median_line_with_a_band_per_repeated_job(repeated, tmp_path):
    runs, hist = repeated
    points = eval_points(hist)
    points = points[points["time/train_s"] > 0]
    fig, ax = plt.subplots()
    assert draw_curves(ax, runs, points, "time/train_s", "eval/p_at_1") == 3  # not 6 lines
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2  # the two repeated jobs; the single run has none
    labels = [line.get_label() for line in ax.get_lines()]
    assert sum("(median of 3, band: range)" in label for label in labels) == 1
    assert sum("(median of 2, band: range)" in label for label in labels) == 1
    # the median line is the pointwise median of the three SLIDE curves
    line = next(ln for ln in ax.get_lines() if "median of 3" in ln.get_label())
    slide_ids = runs[runs["repeat_group"] == "slide-g"]["run_id"]
    curves = [points[points["run_id"] == r] for r in slide_ids]
    x = line.get_xdata()
    expected = np.median([np.interp(x, c["time/train_s"], c["eval/p_at_1"]) for c in curves], axis=0)
    np.testing.assert_allclose(line.get_ydata(), expected)
    plt.close(fig)
    png = figures.figure3(runs, hist, tmp_path)[0]
    assert png.exists() and plt.imread(png)[..., :3].std() > 0.05


def test_summary_pools_repeats_and_gives_every_speedup_an_interval(repeated):
    runs, hist = repeated
    table = time_to_accuracy_table(runs, hist)
    summary = repeat_summary(table).set_index("run")
    slide = summary[summary["runs"] == 3].iloc[0]
    finals = runs[runs["repeat_group"] == "slide-g"]["final/p_at_1"]
    assert slide["final P@1"] == pytest.approx(finals.median())
    assert (slide["final P@1 min"], slide["final P@1 max"]) == (finals.min(), finals.max())
    assert slide["samples/s spread %"] == pytest.approx((4400 - 3600) / 4000 * 100)
    slide_t = table[table["group"] == "g:slide-g"]["t@75% s"]
    tf_t = table[table["group"] == "g:tf-g"]["t@75% s"]
    point = slide["speed-up vs tf_cpu @75%"]
    assert point == pytest.approx(tf_t.median() / slide_t.median())
    lo, hi = slide["speed-up vs tf_cpu @75% lo95"], slide["speed-up vs tf_cpu @75% hi95"]
    assert (lo, hi) == bootstrap_ratio(tf_t, slide_t) and lo <= point <= hi
    metrics = headline_speedups(summary.reset_index())
    key = next(k for k in metrics if k.startswith("speedup/slide_vs_tf_cpu_at_75pct")
               and k.endswith("ci95_lo"))
    assert metrics[key] == pytest.approx(lo)
    md = to_markdown(table, runs)
    assert "## Repeats" in md and "Run-to-run noise" in md and f"{point:.2f}x [{lo:.2f}, {hi:.2f}]" in md


def test_targets_use_the_median_of_repeats_not_the_luckiest_run(repeated):
    runs, _ = repeated
    (targets,) = targets_by_problem(runs, (0.5,)).values()
    groups = runs.groupby("repeat_group")["final/p_at_1"].median()
    assert targets[0.5] == pytest.approx(0.5 * groups.max())
    assert targets[0.5] < 0.5 * runs["final/p_at_1"].max()


# ----------------------------------------------------------------------------- sweep and presets


def test_sweep_repeats_sweeps_the_seed(hydra_compose):  # noqa: F811
    cfg = hydra_compose(["preset=figure3", "sweep.repeats=3"])
    assert cfg.hydra.sweeper.params.seed == "range(0,3)"
    assert list(cfg.hydra.sweeper.params)[0] == "seed"  # varies slowest: pass after pass
    assert hydra_compose(["preset=figure3"]).hydra.sweeper.params.seed == "range(0,1)"


def test_amazon_width_preset_composes_with_every_model(hydra_compose):  # noqa: F811
    from harness.job import check_model_params
    cfg = hydra_compose(["preset=figure3_amazon_synthetic"])
    models = cfg.hydra.sweeper.params.model.split(",")
    assert set(models) == {"slide", "slide_reference", "tf_cpu", "tf_gpu", "tf_sampled"}
    # the report's targets reach down to where tf_cpu can be measured on 2 cores
    assert min(cfg.hydra.callbacks.sweep_report.fractions) <= 0.05
    for model in models:
        job = hydra_compose(["preset=figure3_amazon_synthetic", f"model={model}"])
        check_model_params(job.model)
        assert (job.dataset.n_features, job.dataset.n_labels) == (135_909, 670_091)
        assert job.train.max_train_seconds == cfg.train.max_train_seconds  # one budget for all
        assert job.train.eval_every_s is not None


def test_evaluations_by_training_clock():
    settings = LoopSettings(epochs=1, batch_size=8, seed=0, eval_every=1000, log_every=10,
                            eval_every_s=60.0)
    assert not settings.eval_due(7, clock_s=59.0, last_eval_s=0.0)
    assert settings.eval_due(8, clock_s=60.5, last_eval_s=0.0)
    assert settings.eval_due(1000, clock_s=61.0, last_eval_s=60.5)  # the iteration rule still holds
    by_steps = LoopSettings(epochs=1, batch_size=8, seed=0, eval_every=1000, log_every=10)
    assert not by_steps.eval_due(8, clock_s=1e6, last_eval_s=0.0)


@pytest.mark.slow
def test_a_repeated_sweep_tags_one_group_and_reports_it(tmp_path):
    done = run_cli(["-m", "model=numpy_dense", "dataset=synthetic_tiny", "sweep.repeats=2",
                    "train.max_train_seconds=1", "train.eval_every=5", "train.eval_samples=200"],
                   tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    runs = load_runs(MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"), "slide-bench")
    runs = runs[runs["model"] == "numpy_dense"]
    assert sorted(runs["seed"].astype(int)) == [0, 1]
    assert runs["repeat_group"].nunique() == 1 and runs["repeat_group"].iloc[0]
    summary = pd.read_csv(tmp_path / "sweep" / "time_to_accuracy_summary.csv")
    assert summary["runs"].tolist() == [2]
    assert "## Repeats" in (tmp_path / "sweep" / "time_to_accuracy.md").read_text()
