"""reports/ on SLIDE's retrieval metrics: the retrieval figure, the lift / softmax mass columns
of the time-to-accuracy table and the sparsity trade-off figure and table, checked against
fixture runs (tests/reports_fixtures.py: closed-form slide/* curves whose first and last values
differ) in a temporary sqlite store."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).parent))
import reports_fixtures as fx  # noqa: E402

from reports import figures, style  # noqa: E402
from reports.__main__ import main as cli  # noqa: E402
from reports.build import auto_reports, build  # noqa: E402
from reports.sweep_end import SweepReportCallback  # noqa: E402
from reports.load import SLIDE_KEYS, last_logged, load_histories, load_runs  # noqa: E402
from reports.table import (budgets_vary, time_to_accuracy_table, to_markdown,  # noqa: E402
                           tradeoff_points)

SWEEP = "/sweeps/strategies"
# The time-to-accuracy columns before the retrieval finals were added, in their order.
OLD_COLUMNS = ["run_id", "model", "run", "dataset", "labels", "features", "threads", "batch",
               "final P@1", "final P@5", "samples/s", "train s", "peak RSS MB", "role"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """One sqlite store: the strategy sweep, and a sweep whose runs log no slide/* metric."""
    base = tmp_path_factory.mktemp("mlflow-retrieval")
    uri = f"sqlite:///{base / 'mlflow.db'}"
    client = MlflowClient(uri)
    art = (base / "artifacts").as_uri()
    fakes = fx.log_strategy_sweep(client, client.create_experiment("strategies",
                                                                   artifact_location=art), SWEEP)
    fx.log_figure3_sweep(client, client.create_experiment("plain", artifact_location=art),
                         "/sweeps/plain")
    return {"uri": uri, "client": client, "fakes": fakes, "artifacts": art}


@pytest.fixture(scope="module")
def tables(store) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = load_runs(store["client"], "strategies", SWEEP)
    return runs, load_histories(store["client"], runs)


def _assert_png(path: Path) -> np.ndarray:
    """A real, non-blank figure of the usual size."""
    assert path.exists() and path.stat().st_size > 10_000, path
    img = mpimg.imread(path)
    assert img.shape[1] >= 800 and img.shape[0] >= 500, img.shape
    rgb = img[..., :3]
    assert rgb.std() > 0.05, "blank image"
    assert (rgb.min(axis=2) < 0.9).mean() > 0.01, "almost all white"
    return img


def _capture(monkeypatch, module) -> list:
    """Replaces module.save by one that keeps the figure's axes (lines, texts) before saving."""
    kept: list = []
    real = module.save

    def keep(fig, out_dir, stem):
        kept.extend({"lines": [(ln.get_label(), np.asarray(ln.get_xdata(), dtype=float),
                                np.asarray(ln.get_ydata(), dtype=float), ln.get_linestyle())
                               for ln in ax.get_lines()],
                     "texts": [t.get_text() for t in ax.texts], "yscale": ax.get_yscale(),
                     "legend": [t.get_text() for t in ax.get_legend().get_texts()]
                     if ax.get_legend() else [],
                     "xscale": ax.get_xscale()} for ax in fig.axes)
        return real(fig, out_dir, stem)

    monkeypatch.setattr(module, "save", keep)
    return kept


def _last_from_mlflow(client: MlflowClient, run_id: str, key: str) -> float:
    """The value at the largest step, straight from MLflow (independent of reports.load)."""
    points = client.get_metric_history(run_id, key)
    return max(points, key=lambda m: (m.step, m.timestamp)).value if points else math.nan


# ----------------------------------------------------------------------------- load

def test_slide_series_are_loaded_for_slide_runs_only(tables, store):
    runs, hist = tables
    assert set(SLIDE_KEYS) <= set(hist.columns)
    for rid, fake in store["fakes"].items():
        mine = hist[hist["run_id"] == rid].set_index("step")
        if fake.strategy is None:
            assert mine[list(SLIDE_KEYS)].isna().all().all()
            continue
        recall = mine["slide/topk_recall_at_100"].dropna()
        assert list(recall.index) == list(range(0, fake.iterations + 1, fake.eval_every))
        np.testing.assert_allclose(recall, [fake.recall_100(s) for s in recall.index])
        active = mine["slide/active_out_mean"].dropna()
        np.testing.assert_allclose(active, [fake.active(s) for s in active.index])
        assert mine["slide/lift_at_100"].notna().any() == (fake.strategy != "random")


def test_last_logged_takes_the_value_at_the_largest_step():
    hist = pd.DataFrame({"run_id": ["a", "a", "a", "b"], "step": [20, 0, 10, 5],
                         "x": [3.0, 1.0, np.nan, 7.0]})
    assert last_logged(hist, "x").to_dict() == {"a": 3.0, "b": 7.0}
    assert last_logged(hist, "missing").empty


# ----------------------------------------------------------------------------- table

def test_table_lift_and_mass_are_the_last_logged_values(tables, store):
    runs, hist = tables
    table = time_to_accuracy_table(runs, hist).set_index("run_id")
    for rid, fake in store["fakes"].items():
        lift, mass = table.loc[rid, "final lift@100"], table.loc[rid, "final softmax mass"]
        if fake.strategy is None or fake.strategy == "random":
            assert math.isnan(lift)  # dense models and the random control have no lift
        else:
            assert lift == pytest.approx(fake.lift_100(fake.iterations))
            assert lift == pytest.approx(_last_from_mlflow(store["client"], rid, "slide/lift_at_100"))
            assert lift != pytest.approx(fake.lift_100(0))  # not the first eval's value
        if fake.strategy is None:
            assert math.isnan(mass)
        else:
            assert mass == pytest.approx(fake.softmax_mass(fake.iterations))


def test_table_keeps_its_columns_and_puts_lift_and_mass_after_p_at_5(tables):
    runs, hist = tables
    cols = list(time_to_accuracy_table(runs, hist).columns)
    at = cols.index("final P@5")
    assert cols[at + 1:at + 3] == ["final lift@100", "final softmax mass"]
    assert [c for c in cols if c in OLD_COLUMNS] == OLD_COLUMNS
    assert cols[len(OLD_COLUMNS) + 2].startswith("t@")  # the times follow, as before


def test_table_markdown_and_csv_show_the_lift(tables, store, tmp_path):
    runs, hist = tables
    md = to_markdown(time_to_accuracy_table(runs, hist), runs)
    assert "| final lift@100 | final softmax mass |" in md and "top-100 recall" in md
    plain = load_runs(store["client"], "plain")
    plain_table = time_to_accuracy_table(plain, load_histories(store["client"], plain))
    assert plain_table["final lift@100"].isna().all()  # no SLIDE metrics: blank, no error
    assert "top-100 recall" not in to_markdown(plain_table, plain)
    build(store["client"], "strategies", SWEEP, tmp_path, "table")
    csv = pd.read_csv(tmp_path / "time_to_accuracy.csv").set_index("run_id")
    oracle = next(r for r, f in store["fakes"].items() if f.strategy == "oracle" and f.budget == 10)
    assert csv.loc[oracle, "final lift@100"] == pytest.approx(
        store["fakes"][oracle].lift_100(200))


# ----------------------------------------------------------------------------- retrieval figure

def test_retrieval_figure_draws_every_run_that_logged_the_metrics(tables, store, tmp_path,
                                                                   monkeypatch):
    runs, hist = tables
    kept = _capture(monkeypatch, figures)
    paths = figures.retrieval(runs, hist, tmp_path)
    assert [p.name for p in paths] == ["retrieval.png", "retrieval.svg"]
    _assert_png(paths[0])
    recall_ax, lift_ax = kept[0], kept[1]
    slide = {rid: f for rid, f in store["fakes"].items() if f.strategy is not None}
    labels = style.curve_labels(runs)
    solid = {lbl: y for lbl, _, y, ls in recall_ax["lines"] if ls == "-"}
    assert set(solid) == {labels[rid] for rid in slide}  # tf_cpu / numpy_dense: no line
    dashed = [ln for ln in recall_ax["lines"] if ln[3] == "--"]
    assert len(dashed) == len(slide) and all(ln[0].startswith("_") for ln in dashed)
    rid = next(r for r, f in slide.items() if f.strategy == "vanilla")
    np.testing.assert_allclose(solid[labels[rid]], [slide[rid].recall_100(s)
                                                    for s in range(0, 201, 50)])
    lifted = {lbl for lbl, _, _, ls in lift_ax["lines"] if ls == "-"}
    assert lifted == {labels[r] for r, f in slide.items() if f.strategy != "random"}
    reference = [y for lbl, _, y, ls in lift_ax["lines"] if ls == "--"]
    assert reference and np.allclose(reference[0], 1.0) and "random" in lift_ax["texts"]
    assert lift_ax["yscale"] == "log"
    # 9 runs: the legend sits right of the lift panel yet lists the random runs too (recall only)
    assert set(lift_ax["legend"]) == set(solid) and not recall_ax["legend"]


def test_retrieval_notes_name_the_runs_without_lift(tables):
    runs, hist = tables
    notes = figures.retrieval_notes(runs, hist)
    assert len(notes) == len(fx.STRATEGY_BUDGETS)  # the three random-control runs
    assert all("strategy random retrieves nothing" in n for n in notes)


@pytest.mark.slow
def test_retrieval_is_built_when_runs_have_the_metrics_and_skipped_otherwise(store, tmp_path):
    with_metrics = build(store["client"], "strategies", SWEEP, tmp_path / "a")
    assert "retrieval" in with_metrics
    _assert_png(tmp_path / "a" / "retrieval.png")
    assert (tmp_path / "a" / "retrieval.svg").exists()
    without = build(store["client"], "plain", None, tmp_path / "b")
    assert "retrieval" not in without and not (tmp_path / "b" / "retrieval.png").exists()
    assert (tmp_path / "b" / "figure3.png").exists()  # the rest is still written


def test_legend_labels_skip_the_resolved_slide_params(tables):
    runs, _ = tables
    labels = style.curve_labels(runs).values()
    assert not any("budget=" in lbl or "slide." in lbl for lbl in labels)
    assert "slide strategy=vanilla sparsity=auto" in labels


# ----------------------------------------------------------------------------- trade-off

def test_tradeoff_points_sit_at_active_fraction_and_final_p_at_1(tables, store):
    runs, hist = tables
    points = tradeoff_points(runs, hist).set_index("run_id")
    slide = {rid: f for rid, f in store["fakes"].items() if f.strategy is not None}
    assert set(points.index) == set(slide)
    for rid, fake in slide.items():
        row = points.loc[rid]
        # the LAST logged active set (it shrinks during training) over the label count
        assert row["active fraction"] == pytest.approx(fake.active(fake.iterations) / fake.n_labels)
        assert row["final P@1"] == pytest.approx(0.98 * fake.p_at_1(fake.iterations))
        assert (row["strategy"], row["budget"]) == (fake.strategy, fake.budget)
    assert points.groupby("strategy").size().to_dict() == {
        s: len(fx.STRATEGY_BUDGETS) for s in fx.STRATEGY_P_MAX}


def test_tradeoff_figure_draws_one_sorted_line_per_strategy_and_dense_levels(
        tables, store, tmp_path, monkeypatch):
    runs, hist = tables
    kept = _capture(monkeypatch, figures)
    _assert_png(figures.sparsity_tradeoff(runs, hist, tmp_path)[0])
    (ax,) = kept
    assert ax["xscale"] == "log"
    lines = {lbl.split(" ")[0]: (x, y, ls) for lbl, x, y, ls in ax["lines"]}
    for strategy in fx.STRATEGY_P_MAX:
        x, y, ls = lines[strategy]
        fakes = sorted((f for f in store["fakes"].values() if f.strategy == strategy),
                       key=lambda f: f.active(f.iterations))
        np.testing.assert_allclose(x, [f.active(f.iterations) / f.n_labels for f in fakes])
        np.testing.assert_allclose(y, [0.98 * f.p_at_1(f.iterations) for f in fakes])
        assert ls == "-" and np.all(np.diff(x) > 0)
    for model in ("tf_cpu", "numpy_dense"):
        fake = next(f for f in store["fakes"].values() if f.model == model)
        _, y, ls = lines[model]
        assert ls == "--" and np.allclose(y, 0.98 * fake.p_at_1(fake.iterations))
    # what the figure is for: hashing above random at every budget, oracle above hashing
    assert np.all(lines["vanilla"][1] > lines["random"][1])
    assert np.all(lines["oracle"][1] > lines["vanilla"][1])


def test_tradeoff_without_slide_points_is_one_panel_saying_so(store, tmp_path, monkeypatch):
    """Asked for by name (not by `all`) on a sweep with no SLIDE trade-off point: one panel
    with the reason, not a crash."""
    plain = load_runs(store["client"], "plain")
    hist = load_histories(store["client"], plain)
    assert tradeoff_points(plain, hist).empty
    kept = _capture(monkeypatch, figures)
    _assert_png(figures.sparsity_tradeoff(plain, hist, tmp_path)[0])
    assert any("no finished SLIDE run" in t for t in kept[0]["texts"])


def test_tradeoff_is_built_only_when_budgets_vary(store, tables, tmp_path):
    runs, _ = tables
    assert budgets_vary(runs)
    one_budget = runs[runs["slide.budget"].eq(50).fillna(False) | (runs["model"] != "slide")]
    assert not budgets_vary(one_budget)
    assert "sparsity_tradeoff" not in auto_reports(one_budget)
    assert "sparsity_tradeoff" in auto_reports(runs)
    plain = load_runs(store["client"], "plain")
    assert not budgets_vary(plain) and "sparsity_tradeoff" not in auto_reports(plain)


def test_cli_writes_retrieval_and_tradeoff_with_its_table(store, tmp_path, capsys):
    for name in ("retrieval", "sparsity_tradeoff"):
        assert cli([name, "--experiment", "strategies", "--sweep-id", SWEEP,
                    "--tracking-uri", store["uri"], "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("retrieval.png", "retrieval.svg", "sparsity_tradeoff.png",
                 "sparsity_tradeoff.svg", "sparsity_tradeoff.csv", "sparsity_tradeoff.md"):
        assert (tmp_path / name).exists() and name in out
    csv = pd.read_csv(tmp_path / "sparsity_tradeoff.csv")
    assert len(csv) == len(store["fakes"])  # 9 SLIDE points + the 2 dense levels
    assert {"strategy", "budget", "active fraction", "final P@1", "final lift@100"} <= set(csv.columns)
    dense = csv[csv["model"] != "slide"]
    assert dense["strategy"].isna().all() and set(dense["model"]) == {"tf_cpu", "numpy_dense"}
    rnd = csv[csv["strategy"] == "random"]
    assert rnd["final lift@100"].isna().all() and rnd["active fraction"].notna().all()
    md = (tmp_path / "sparsity_tradeoff.md").read_text()
    assert "| vanilla |" in md and "auto" in md


@pytest.mark.slow
def test_callback_logs_the_new_reports_of_a_strategy_sweep(store, tmp_path, capsys):
    client = store["client"]
    exp_id = client.create_experiment("strategy-callback", artifact_location=store["artifacts"])
    jobs = fx.log_strategy_sweep(client, exp_id, str(tmp_path))
    parent = fx.log_sweep_parent(client, exp_id, str(tmp_path), list(jobs))
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}},
                               "tracking": {"uri": store["uri"], "experiment": "strategy-callback"}})
    SweepReportCallback().on_multirun_end(config)
    assert "Sweep report ->" in capsys.readouterr().out
    _assert_png(tmp_path / "retrieval.png")
    _assert_png(tmp_path / "sparsity_tradeoff.png")
    logged = {a.path for a in client.list_artifacts(parent)}
    assert {"retrieval.png", "retrieval.svg", "sparsity_tradeoff.png", "sparsity_tradeoff.svg",
            "sparsity_tradeoff.csv", "sparsity_tradeoff.md", "time_to_accuracy.csv"} <= logged
