"""reports/: MLflow -> tables -> figures, checked against fixture runs in a temporary sqlite
store (tests/reports_fixtures.py) whose histories come from closed-form curves, plus an
end-to-end sweep through run.py (slow)."""
from __future__ import annotations

import math
import os
import subprocess
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

import contract  # noqa: E402

from reports import figures, style  # noqa: E402
from reports.__main__ import main as cli  # noqa: E402
from reports.sweep_end import SweepReportCallback  # noqa: E402
from reports.load import _fill_time, load_histories, load_runs  # noqa: E402
from reports.table import (targets_by_problem, time_to_accuracy_table, time_to_target,  # noqa: E402
                           to_markdown)

ROOT = Path(__file__).resolve().parents[1]
SWEEP_A, SWEEP_B = "/sweeps/figure3-a", "/sweeps/figure3-b"


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> dict:
    """One sqlite store (created once: MLflow's schema migration takes seconds) with three
    experiments: a Figure 3 sweep (+ a second small sweep), a threads sweep, a labels sweep."""
    base = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{base / 'mlflow.db'}"
    client = MlflowClient(uri)
    art = (base / "artifacts").as_uri()
    fig = client.create_experiment("figure3", artifact_location=art)
    ids = fx.log_figure3_sweep(client, fig, SWEEP_A)
    fx.log_fake_run(client, fig, fx.FakeRun("slide", 3000.0, 0.5, 100.0), SWEEP_B, 0)
    fx.log_threads_sweep(client, client.create_experiment("threads", artifact_location=art),
                         "/sweeps/threads")
    fx.log_labels_sweep(client, client.create_experiment("labels", artifact_location=art),
                        "/sweeps/labels")
    return {"uri": uri, "client": client, "ids": ids, "base": base, "artifacts": art}


@pytest.fixture(scope="session")
def fig_tables(store) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = load_runs(store["client"], "figure3", SWEEP_A)
    return runs, load_histories(store["client"], runs)


def _fake(model: str) -> fx.FakeRun:
    return next(r for r in fx.FIGURE3_SWEEP if r.model == model)


# ----------------------------------------------------------------------------- load

def test_load_runs_one_row_per_run_with_contract_columns(fig_tables):
    runs, _ = fig_tables
    assert len(runs) == len(fx.FIGURE3_SWEEP) + len(fx.DEAD_RUNS)
    assert runs["run_id"].is_unique
    assert str(runs["threads"].dtype) == "Int64" and str(runs["data.n_labels"].dtype) == "Int64"
    assert pd.api.types.is_string_dtype(runs["model"])
    by_name = runs.set_index("run_name")
    assert by_name.loc["tf_gpu/synthetic_tiny/4", "status"] == "skipped"
    assert by_name.loc["tf_gpu/synthetic_tiny/4", "reason"] == "no GPU visible to TensorFlow"
    assert by_name.loc["slide/synthetic_tiny/5", "status"] == "failed"
    assert by_name.loc["slide/synthetic_tiny/5", "mlflow_status"] == "FAILED"
    assert "MemoryError" in by_name.loc["slide/synthetic_tiny/5", "reason"]
    slide = _fake("slide")
    assert by_name.loc["slide/synthetic_tiny/0", "final/p_at_1"] == pytest.approx(
        0.98 * slide.p_at_1(slide.iterations))
    assert by_name.loc["slide/synthetic_tiny/0", "final/samples_per_s"] == slide.samples_per_s


def test_load_runs_filters_by_sweep_and_skips_parent_runs(store):
    client = store["client"]
    assert len(load_runs(client, "figure3", SWEEP_B)) == 1
    everything = load_runs(client, "figure3")
    assert set(everything["sweep_id"]) == {SWEEP_A, SWEEP_B}
    assert set(everything["role"]) == {"slide", "dense", "sampled"}  # from the models' configs
    exp_id = client.get_experiment_by_name("figure3").experiment_id
    parent = client.create_run(exp_id, tags={contract.KIND: contract.KIND_SWEEP, contract.SWEEP_ID: "/elsewhere"})
    client.set_terminated(parent.info.run_id)
    assert parent.info.run_id not in set(load_runs(client, "figure3")["run_id"])
    client.delete_run(parent.info.run_id)  # the store is shared by this module's tests
    assert set(load_runs(client, "figure3", "latest")["sweep_id"]) == {SWEEP_B}


def test_load_runs_unknown_experiment_names_the_ones_there(store):
    with pytest.raises(ValueError, match="figure3"):
        load_runs(store["client"], "no-such-experiment")


def test_histories_join_eval_and_clock_on_step(fig_tables):
    runs, hist = fig_tables
    rid = runs.set_index("run_name").loc["slide/synthetic_tiny/0", "run_id"]
    slide = _fake("slide")
    mine = hist[hist["run_id"] == rid].set_index("step")
    assert mine.index.is_unique and mine.index.is_monotonic_increasing
    evals = mine[mine["eval/p_at_1"].notna()]
    assert list(evals.index) == list(range(0, slide.iterations + 1, slide.eval_every))
    for step, row in evals.iterrows():
        assert row["time/train_s"] == pytest.approx(slide.clock(step))
        assert row["eval/p_at_1"] == pytest.approx(slide.p_at_1(step))
        assert row["eval/p_at_5"] == pytest.approx(0.6 * slide.p_at_1(step))
    assert mine["train/loss"].notna().sum() == slide.iterations // slide.log_every


def test_missing_clock_points_are_interpolated_on_step():
    frame = pd.DataFrame({"step": [0, 10, 20, 40], "time/train_s": [0.0, np.nan, 2.0, np.nan]})
    filled = _fill_time(frame)["time/train_s"].to_numpy()
    np.testing.assert_allclose(filled[:3], [0.0, 1.0, 2.0])
    assert math.isnan(filled[3])  # no extrapolation past the last logged clock point


# ----------------------------------------------------------------------------- table maths

@pytest.mark.parametrize(("target", "method", "expected"), [
    (0.25, "interpolate", 15.0),  # halfway between (10, 0.2) and (20, 0.3)
    (0.25, "first", 20.0),
    (0.30, "interpolate", 20.0),  # exactly on a point
    (0.05, "interpolate", 0.0),  # already reached at the first eval
    (0.90, "interpolate", math.nan),  # never reached
    (0.35, "first", 40.0),  # the dip at 30 s does not count, 0.4 at 40 s does
])
def test_time_to_target(target, method, expected):
    t = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    p = np.array([0.1, 0.2, 0.3, 0.25, 0.4])
    got = time_to_target(t, p, target, method)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_time_to_target_rejects_bad_input():
    with pytest.raises(ValueError, match="method"):
        time_to_target(np.zeros(2), np.zeros(2), 0.5, "nearest")
    with pytest.raises(ValueError, match="equal length"):
        time_to_target(np.zeros(3), np.zeros(2), 0.5)


def test_targets_are_fractions_of_the_best_final_p_at_1(fig_tables):
    runs, _ = fig_tables
    best = runs["final/p_at_1"].max()
    assert best == pytest.approx(0.98 * _fake("tf_cpu").p_at_1(_fake("tf_cpu").iterations))
    assert targets_by_problem(runs)[("synthetic_tiny", 1000, 5000)] == pytest.approx(
        {0.5: 0.5 * best, 0.75: 0.75 * best, 0.9: 0.9 * best})


def _raw_curve(client: MlflowClient, run_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(time, P@1) at the eval steps, straight from MLflow (independent of reports.load)."""
    p = {m.step: m.value for m in client.get_metric_history(run_id, "eval/p_at_1")}
    t = {m.step: m.value for m in client.get_metric_history(run_id, "time/train_s")}
    steps = sorted(p)
    return np.array([t[s] for s in steps]), np.array([p[s] for s in steps])


@pytest.mark.parametrize("method", ["interpolate", "first"])
def test_table_times_match_the_logged_histories(store, fig_tables, method):
    runs, hist = fig_tables
    table = time_to_accuracy_table(runs, hist, method=method).set_index("run_id")
    assert len(table) == len(fx.FIGURE3_SWEEP)  # skipped and failed runs have no row
    (targets,) = targets_by_problem(runs).values()
    for rid, row in table.iterrows():
        t, p = _raw_curve(store["client"], rid)
        for frac, target in targets.items():
            got = row[f"t@{frac * 100:g}% s"]
            hit = np.flatnonzero(p >= target)
            if hit.size == 0:
                assert math.isnan(got)
                continue
            i = hit[0]
            if method == "first":
                assert got == t[i]  # a logged number, exactly
            else:
                assert t[i - 1] <= got <= t[i]
                # the crossing of the straight line through the two eval points
                assert np.interp(got, t[i - 1:i + 1], p[i - 1:i + 1]) == pytest.approx(target)


def test_table_speedups_are_time_ratios(fig_tables):
    runs, hist = fig_tables
    table = time_to_accuracy_table(runs, hist).set_index("model")
    col = "speed-up vs tf_cpu @50%"
    assert table.loc["tf_cpu", col] == pytest.approx(1.0)
    assert table.loc["slide", col] == pytest.approx(
        table.loc["tf_cpu", "t@50% s"] / table.loc["slide", "t@50% s"])
    # SLIDE is 8x faster per sample and reaches 50% in a similar number of steps
    assert table.loc["slide", col] > 4.0
    assert table.loc["slide", "samples/s"] == _fake("slide").samples_per_s
    assert table.loc["slide", "peak RSS MB"] == _fake("slide").peak_rss_mb
    assert not any(c.startswith("speed-up vs tf_gpu") for c in table.columns)  # skipped: no row


def test_markdown_names_method_lower_bounds_and_dead_runs(fig_tables):
    runs, hist = fig_tables
    table = time_to_accuracy_table(runs, hist)
    md = to_markdown(table, runs)
    assert "method: interpolate" in md
    assert "tf_gpu/synthetic_tiny/4: skipped: no GPU visible to TensorFlow" in md
    # tf_sampled never reaches 90% of tf_cpu's best; slide does: a '>x' lower bound
    speedups = md.split("## Speed-ups")[1]
    slide_line = next(line for line in speedups.splitlines() if line.startswith("| slide | slide/"))
    assert ">3." in slide_line  # tf_sampled trained 34 s, slide reached 90% in ~11 s


# ----------------------------------------------------------------------------- figures

def _assert_image(path: Path, min_w: int = 800, min_h: int = 500) -> np.ndarray:
    assert path.exists() and path.stat().st_size > 10_000, path
    img = mpimg.imread(path)
    assert img.shape[1] >= min_w and img.shape[0] >= min_h, img.shape
    rgb = img[..., :3]
    assert rgb.std() > 0.05, "blank image"
    assert (rgb.min(axis=2) < 0.9).mean() > 0.01, "almost all white"
    # the model colours are there (slide red), not only black text
    red = (rgb[..., 0] > 0.7) & (rgb[..., 1] < 0.3) & (rgb[..., 2] < 0.3)
    assert red.sum() > 200
    return img


@pytest.mark.parametrize("name", ["figure3", "iterations"])
def test_figures_are_written_and_not_blank(fig_tables, tmp_path, name):
    runs, hist = fig_tables
    paths = getattr(figures, name)(runs, hist, tmp_path)
    assert [p.suffix for p in paths] == [".png", ".svg"]
    _assert_image(paths[0])
    assert paths[1].read_text().lstrip().startswith("<?xml")


def test_figure3_lists_dead_runs_under_the_plot(fig_tables, tmp_path):
    runs, hist = fig_tables
    notes = style.not_plotted(runs, hist)
    assert notes == ["tf_gpu/synthetic_tiny/4: skipped: no GPU visible to TensorFlow",
                     "slide/synthetic_tiny/5: failed: MemoryError: hash tables need 30 GiB"]
    with_notes = mpimg.imread(figures.figure3(runs, hist, tmp_path / "a")[0])
    alive = runs[runs["status"] == "finished"]
    without = mpimg.imread(figures.figure3(alive, hist, tmp_path / "b")[0])
    assert with_notes.shape[0] > without.shape[0]  # the notes panel adds height


def test_scaling_and_sublinear_figures(store, tmp_path):
    client = store["client"]
    runs = load_runs(client, "threads")
    _assert_image(figures.scaling(runs, load_histories(client, runs), tmp_path)[0])
    runs = load_runs(client, "labels")
    _assert_image(figures.sublinear(runs, load_histories(client, runs), tmp_path)[0])


def test_sublinear_slopes_recover_the_fixture_exponents(store):
    pts = figures.sublinear_points(load_runs(store["client"], "labels"))
    slopes = {m: figures.loglog_slope(g["n_labels"].to_numpy(), g["s_per_sample"].to_numpy())
              for m, g in pts.groupby("model")}
    assert slopes == pytest.approx({"slide": 0.2, "tf_cpu": 0.95})


def test_a_model_is_drawn_in_its_declared_colour_in_every_figure(fig_tables, tmp_path, monkeypatch):
    """The curves of Figure 3 and of the iterations figure are drawn in the colour each model's
    config declares (one run per model here: no shades), a model whose runs declare none (runs of
    another tool) in the same colour in both figures, and no two models share one."""
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    runs, hist = fig_tables
    runs = runs[runs["status"] == "finished"]
    extra = runs[runs["model"] == "tf_cpu"].assign(model="my_model", run_id="extra-run", run_name="my_model/x/9",
                                                   colour="", marker="", role="")
    runs = pd.concat([runs, extra], ignore_index=True)
    tf_cpu_id = runs.loc[runs["model"] == "tf_cpu", "run_id"].iloc[0]
    hist = pd.concat([hist, hist[hist["run_id"] == tf_cpu_id].assign(run_id="extra-run")], ignore_index=True)
    declared = {m: mcolors.to_hex(fx.look_params(m)[contract.MODEL_COLOUR]) for m in ("slide", "tf_cpu", "tf_sampled", "numpy_dense")}
    closed = []
    monkeypatch.setattr(plt, "close", lambda fig=None: closed.append(fig))  # keep them to inspect
    figures.figure3(runs, hist, tmp_path / "f3")
    figures.iterations(runs, hist, tmp_path / "it")
    colours_by_figure = []
    for fig in closed:
        drawn = {}
        for ax in fig.axes:
            for line in ax.get_lines():
                if not line.get_label().startswith("_"):
                    drawn.setdefault(line.get_label().split()[0], set()).add(mcolors.to_hex(line.get_color()))
        assert set(drawn) == {"slide", "tf_cpu", "tf_sampled", "numpy_dense", "my_model"}
        for model, colours in drawn.items():
            assert len(colours) == 1, (model, colours)
            if model != "my_model":
                assert colours == {declared[model]}, model
        assert drawn["my_model"].isdisjoint(declared.values())
        colours_by_figure.append(drawn)
    monkeypatch.undo()
    for fig in closed:
        plt.close(fig)
    assert len(colours_by_figure) == 2 and colours_by_figure[0] == colours_by_figure[1]


def test_empty_sweep_still_draws_an_explained_figure(fig_tables, tmp_path):
    runs, hist = fig_tables
    dead = runs[runs["status"] != "finished"]
    path = figures.figure3(dead, hist[hist["run_id"].isin(dead["run_id"])], tmp_path)[0]
    assert mpimg.imread(path)[..., :3].std() > 0.01


# ----------------------------------------------------------------------------- entry points

@pytest.mark.slow
def test_cli_all_picks_scaling_when_threads_vary(store, tmp_path, capsys):
    assert cli(["all", "--experiment", "threads", "--tracking-uri", store["uri"],
                "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("figure3.png", "iterations.png", "time_to_accuracy.md", "time_to_accuracy.csv",
                 "scaling.png", "scaling.svg"):
        assert (tmp_path / name).exists() and name in out
    assert not (tmp_path / "sublinear.png").exists()  # one n_labels only
    csv = pd.read_csv(tmp_path / "time_to_accuracy.csv")
    assert len(csv) == 6 and "speed-up vs tf_cpu @75%" in csv.columns


def test_cli_unknown_experiment_is_a_message_not_a_traceback(store, capsys):
    assert cli(["figure3", "--experiment", "nope", "--tracking-uri", store["uri"]]) == 2
    assert "no MLflow experiment named 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point_runs(store, tmp_path):
    done = subprocess.run([sys.executable, "-m", "reports", "figure3", "--experiment", "figure3",
                           "--sweep-id", SWEEP_A, "--tracking-uri", store["uri"],
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "figure3.png").exists() and "figure3.png" in done.stdout


def _hydra_config(tmp_path: Path, uri: str, experiment: str):
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}},
                             "tracking": {"uri": uri, "experiment": experiment}})


@pytest.mark.slow
def test_callback_writes_reports_into_the_sweep_and_logs_them_to_its_parent_run(store, tmp_path,
                                                                               capsys):
    client = store["client"]
    exp_id = client.create_experiment("callback", artifact_location=store["artifacts"])
    jobs = fx.log_figure3_sweep(client, exp_id, str(tmp_path))
    parent = fx.log_sweep_parent(client, exp_id, str(tmp_path), list(jobs.values()))
    SweepReportCallback().on_multirun_end(_hydra_config(tmp_path, store["uri"], "callback"))
    out = capsys.readouterr().out
    assert f"Figure 3: {tmp_path / 'figure3.png'}" in out and parent in out
    _assert_image(tmp_path / "figure3.png")
    assert (tmp_path / "time_to_accuracy.md").exists()
    assert len(client.search_runs([exp_id])) == 7  # the six jobs and their parent, nothing more
    logged = {a.path for a in client.list_artifacts(parent)}
    assert {"figure3.png", "figure3.svg", "iterations.png", "time_to_accuracy.md",
            "time_to_accuracy.csv"} <= logged
    # the headline: SLIDE against each baseline, the table's own numbers
    table = pd.read_csv(tmp_path / "time_to_accuracy.csv").set_index("model")
    metrics = client.get_run(parent).data.metrics
    assert metrics["speedup/slide_vs_tf_cpu_at_75pct"] == pytest.approx(
        table.loc["slide", "speed-up vs tf_cpu @75%"])
    assert {k for k in metrics if k.startswith("speedup/slide_vs_numpy_dense")}
    assert not any("vs_tf_gpu" in k or k.startswith("speedup/tf_") for k in metrics)


def test_sweep_is_read_as_its_parent_runs_children(store):
    client = store["client"]
    exp_id = client.create_experiment("nested", artifact_location=store["artifacts"])
    jobs = fx.log_figure3_sweep(client, exp_id, "/sweeps/nested")
    fx.log_sweep_parent(client, exp_id, "/sweeps/nested", list(jobs.values())[:2])
    runs = load_runs(client, "nested", "/sweeps/nested")
    assert set(runs["run_id"]) == set(list(jobs.values())[:2])  # the parent itself is no row
    assert len(load_runs(client, "nested")) == len(jobs)


def test_callback_failure_is_reported_not_raised(store, tmp_path, capsys):
    SweepReportCallback().on_multirun_end(_hydra_config(tmp_path, store["uri"], "missing"))
    assert "Sweep report FAILED" in capsys.readouterr().out


# ----------------------------------------------------------------------------- end to end

@pytest.mark.slow
def test_real_tiny_sweep_builds_every_report(tmp_path):
    """run.py -m over two models on tiny data, the sweep callback on, then the CLI on top."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, "run.py", "-m", "model=numpy_dense", "train.threads=1,2",
           "dataset=synthetic_tiny", "train.max_train_seconds=1", "train.eval_every=5",
           "train.eval_samples=200", f"tracking.uri={uri}", "tracking.experiment=e2e",
           f"hydra.sweep.dir={sweep_dir}", f"tracking.artifact_root={tmp_path / 'artifacts'}",
           "++hydra.callbacks.sweep_report._target_=reports.sweep_end.SweepReportCallback"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"Figure 3: {sweep_dir / 'figure3.png'}" in done.stdout
    img = _assert_image_any(sweep_dir / "figure3.png")
    assert img.shape[0] >= 500
    client = MlflowClient(uri)
    runs = load_runs(client, "e2e", str(sweep_dir))
    assert len(runs) == 2 and set(runs["status"]) == {"finished"}
    exp_id = client.get_experiment_by_name("e2e").experiment_id
    (parent,) = client.search_runs([exp_id], "tags.kind = 'sweep'")
    assert len(client.search_runs([exp_id])) == 3  # the two jobs and their sweep
    assert parent.data.tags["sweep_id"] == str(sweep_dir)
    assert (tmp_path / "artifacts" / parent.info.run_id / "artifacts" / "figure3.png").exists()
    hist = load_histories(client, runs)
    table = pd.read_csv(sweep_dir / "time_to_accuracy.csv")
    recomputed = time_to_accuracy_table(runs, hist)
    np.testing.assert_allclose(table["t@50% s"], recomputed["t@50% s"])
    for rid in runs["run_id"]:  # every eval point of the table's input is a logged one
        t, p = _raw_curve(client, rid)
        mine = hist[(hist["run_id"] == rid) & hist["eval/p_at_1"].notna()]
        np.testing.assert_allclose(mine["eval/p_at_1"], p)
        np.testing.assert_allclose(mine["time/train_s"], t)
    assert (sweep_dir / "scaling.png").exists()  # threads varied
    out = tmp_path / "cli"
    assert cli(["all", "--experiment", "e2e", "--sweep-id", "latest", "--tracking-uri", uri,
                "--out", str(out)]) == 0
    for name in ("figure3", "iterations", "scaling"):
        _assert_image_any(out / f"{name}.png")
    assert cli(["sublinear", "--experiment", "e2e", "--tracking-uri", uri, "--out", str(out)]) == 0
    _assert_image_any(out / "sublinear.png")


def _assert_image_any(path: Path) -> np.ndarray:
    """Size and non-blank checks for figures of models without a red curve."""
    assert path.exists(), path
    img = mpimg.imread(path)
    rgb = img[..., :3]
    assert img.shape[1] >= 800 and rgb.std() > 0.05 and (rgb.min(axis=2) < 0.9).mean() > 0.01
    return img


def test_figure3_has_one_panel_per_dataset(store, tmp_path):
    client = store["client"]
    exp_id = client.create_experiment("two-datasets", artifact_location=store["artifacts"])
    for job, dataset in enumerate(("synthetic_tiny", "bibtex")):
        fx.log_fake_run(client, exp_id, fx.FakeRun("slide", 3000.0, 0.5, 100.0, dataset=dataset),
                        "/sweeps/two", job)
    runs = load_runs(client, "two-datasets")
    one = mpimg.imread(figures.figure3(runs[runs["dataset"] == "bibtex"],
                                       load_histories(client, runs), tmp_path / "one")[0])
    two = _assert_image(figures.figure3(runs, load_histories(client, runs), tmp_path / "two")[0])
    assert two.shape[1] > 1.5 * one.shape[1]


# hand-made runs: slide* models are SLIDE, tf_sampled* sampled, the rest dense: (role, colour, marker)
ROLE_LOOKS = {"slide": ("slide", "#d62728", "o"), "sampled": ("sampled", "#9467bd", "D"),
              "dense": ("dense", "#1f77b4", "s")}


def _look(model: str) -> tuple[str, str, str]:
    return ROLE_LOOKS["slide" if model.startswith("slide") else "sampled" if model.startswith("tf_sampled") else "dense"]


def _frames(curves: dict[str, tuple[str, list[float], list[float]]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """runs/histories tables by hand: {run_id: (model, times, p_at_1)}; final P@1 = last point."""
    models = [m for m, _, _ in curves.values()]
    runs = pd.DataFrame({
        "run_id": list(curves), "run_name": [f"{m}/d/{i}" for i, (m, _, _) in enumerate(curves.values())],
        "model": models, "role": [_look(m)[0] for m in models], "colour": [_look(m)[1] for m in models],
        "marker": [_look(m)[2] for m in models], "dataset": "d", "status": "finished",
        "reason": "", "threads": pd.array([2] * len(curves), dtype="Int64"),
        "final/p_at_1": [p[-1] for _, _, p in curves.values()],
        "final/train_s": [t[-1] for _, t, _ in curves.values()]})
    hist = pd.concat([pd.DataFrame({"run_id": rid, "step": np.arange(len(t)), "eval/p_at_1": p,
                                    "time/train_s": t, "eval/p_at_5": np.nan, "train/loss": np.nan})
                      for rid, (_, t, p) in curves.items()], ignore_index=True)
    return runs, hist


def test_repeated_baselines_use_the_median_and_any_miss_counts():
    t = [0.0, 10.0, 20.0, 40.0]
    runs, hist = _frames({"a": ("tf_cpu", t, [0.0, 0.5, 1.0, 1.0]),       # 50% at 10 s
                          "b": ("tf_cpu", t, [0.0, 0.25, 0.5, 0.75]),     # 50% at 20 s, 90% never
                          "c": ("slide", [0.0, 1.0, 2.0, 3.0], [0.0, 0.5, 0.9, 1.0])})
    table = time_to_accuracy_table(runs, hist, fractions=(0.5, 0.9)).set_index("run_id")
    assert table.loc["c", "speed-up vs tf_cpu @50%"] == pytest.approx(15.0 / 1.0)
    assert math.isnan(table.loc["c", "speed-up vs tf_cpu @90%"])  # one repeat never got there
    assert table.loc["a", "t@90% s"] == pytest.approx(18.0)  # 0.5 -> 1.0 between 10 and 20 s
    # 50% came by the first eval after t=0 (flagged: it measures the eval interval); 90% later
    assert table.loc["c", "t@50% early"] and not table.loc["c", "t@90% early"]
    md = to_markdown(time_to_accuracy_table(runs, hist, fractions=(0.5, 0.9)), runs, (0.5, 0.9))
    slide_row = next(r for r in md.split("## Speed-ups")[1].splitlines() if r.startswith("| slide"))
    assert ">20.00x" in slide_row  # median total baseline time 40 s / slide's 2 s
    assert "| 1\\* | 2 |" in md and "reached by the first evaluation" in md


def test_labels_name_the_params_that_vary_within_a_model():
    t, p = [0.0, 1.0], [0.0, 0.5]
    runs, _ = _frames({"a": ("slide", t, p), "b": ("slide", t, p), "c": ("tf_cpu", t, p)})
    runs = runs.assign(**{"model.params.K": ["4", "9", pd.NA], "model.params.L": "50",
                          "paths.output_dir": ["/s/0", "/s/1", "/s/2"]})
    assert style.curve_labels(runs) == {"a": "slide K=4", "b": "slide K=9", "c": "tf_cpu"}
    colours = style.run_colours(runs)
    assert colours["c"] == ROLE_LOOKS["dense"][1] and colours["a"] != colours["b"]


def test_output_size_sweep_compares_runs_of_the_same_label_count(store):
    client = store["client"]
    runs = load_runs(client, "labels")
    table = time_to_accuracy_table(runs, load_histories(client, runs))
    assert len(targets_by_problem(runs)) == 3  # one target set per n_labels
    for _, group in table.groupby("labels"):
        slide, tf = (group[group["model"] == m].iloc[0] for m in ("slide", "tf_cpu"))
        assert slide["speed-up vs tf_cpu @50%"] == pytest.approx(tf["t@50% s"] / slide["t@50% s"])
        assert tf["speed-up vs tf_cpu @50%"] == pytest.approx(1.0)


def test_a_run_that_failed_mid_training_is_drawn_and_listed(tmp_path):
    runs, hist = _frames({"a": ("slide", [0.0, 1.0, 2.0], [0.0, 0.2, 0.3]),
                          "b": ("tf_cpu", [0.0, 5.0], [0.0, 0.1])})
    runs = runs.assign(status=["finished", "failed"], reason=["", "MemoryError: out of memory"])
    assert style.not_plotted(runs, hist) == [
        "tf_cpu/d/1: failed (partial curve drawn): MemoryError: out of memory"]
    assert style.curve_labels(runs)["b"] == "tf_cpu (failed)"
    _assert_image(figures.figure3(runs, hist, tmp_path)[0])


def test_table_without_final_p_at_1_says_why_it_has_no_times():
    runs, hist = _frames({"a": ("slide", [0.0, 1.0], [0.0, 0.2])})
    runs = runs.drop(columns=["final/p_at_1"])  # e.g. train.final_eval=false
    table = time_to_accuracy_table(runs, hist)
    assert table["t@50% s"].isna().all() and list(table.columns[:3]) == ["run_id", "model", "run"]
    assert "No targets" in to_markdown(table, runs)
