"""A model is registered by its YAML alone (docs/extending.md, "A model").

Every conf/model/*.yaml declares a role the reports understand, a colour and a marker matplotlib
draws, and no two models share a colour. End to end: a model defined in a YAML file outside the
project (Hydra's search path), reusing an existing class, runs in a sweep and appears in Figure 3
in its own colour and in the table as what its role says, with no other edit.
"""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.colors as mcolors
import matplotlib.markers as mmarkers
import pytest
from omegaconf import OmegaConf

import contract
from harness.job import check_model_params
from reports.style import STRATEGY_COLOURS

from tests.conftest import run_cli
from tests.model_configs import MODELS, model_config


@pytest.fixture(scope="module")
def model_configs():
    """conf/model/<name>.yaml as the job sees it, for every model."""
    return {name: model_config(name) for name in MODELS}


@pytest.mark.parametrize("name", MODELS)
def test_every_model_declares_how_reports_show_it(model_configs, name):
    model = model_configs[name]
    assert not OmegaConf.missing_keys(model), f"{name} leaves keys unset (the schema holds no defaults)"
    assert model.name == name  # runs are tagged by it; the file name is what users type
    assert model.role in contract.ROLES
    assert mcolors.is_color_like(model.colour), model.colour
    assert model.marker in mmarkers.MarkerStyle.markers, model.marker
    check_model_params(model)  # its params fit its class's signature


def test_no_two_models_share_a_colour(model_configs):
    colours = {name: mcolors.to_hex(m.colour) for name, m in model_configs.items()}
    shared = {c: [n for n in colours if colours[n] == c] for c in colours.values()}
    assert not {c: ns for c, ns in shared.items() if len(ns) > 1}
    # baselines are drawn as dashed lines beside SLIDE's strategies (the sparsity trade-off)
    baselines = {colours[n] for n, m in model_configs.items() if m.role in contract.BASELINE_ROLES}
    assert baselines.isdisjoint(mcolors.to_hex(c) for c in STRATEGY_COLOURS.values())


NEW_MODEL = """\
defaults:
  - numpy_dense  # an existing model's class and settings
  - _self_
name: my_dense
role: dense
colour: "#00a087"
marker: h
"""


@pytest.mark.slow
def test_a_new_model_is_one_yaml_and_reaches_figure3(tmp_path):
    extra = tmp_path / "my_conf"
    (extra / "model").mkdir(parents=True)
    (extra / "model" / "my_dense.yaml").write_text(NEW_MODEL)
    result = run_cli(["-m", "model=slide,my_dense", f"hydra.searchpath=[file://{extra}]",
                      "dataset=synthetic_tiny", "train.max_train_seconds=2", "train.eval_every=4",
                      "train.eval_samples=100"], tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "sweep"
    svg = (sweep / "figure3.svg").read_text()
    assert "#00a087" in svg  # its curve, in its own colour
    with open(sweep / "time_to_accuracy.csv") as f:
        rows = {r["model"]: r for r in csv.DictReader(f)}
    assert rows["my_dense"]["role"] == "dense" and rows["slide"]["role"] == "slide"
    # as a baseline: SLIDE's speed-ups are measured against it
    assert any(c.startswith("speed-up vs my_dense") for c in rows["slide"])
    assert Path(sweep / "figure3.png").exists()


@pytest.mark.slow
def test_a_model_yaml_without_its_look_stops_the_job_naming_the_key(tmp_path):
    extra = tmp_path / "my_conf"
    (extra / "model").mkdir(parents=True)
    (extra / "model" / "bare.yaml").write_text("defaults:\n  - model_schema\n  - _self_\nname: bare\nrole: dense\n"
                                               "marker: o\nisolate: false\nenv: {}\nhuge_pages: false\ndevice: cpu\n"
                                               "params:\n  _target_: harness.models.numpy_dense.NumpyDenseModel\n")
    result = run_cli(["model=bare", f"hydra.searchpath=[file://{extra}]", "dataset=synthetic_tiny",
                      "train.max_train_seconds=1"], tmp_path, timeout=300)
    assert result.returncode != 0 and "model.colour" in result.stderr
    assert not (tmp_path / "mlflow.db").exists() or "bare" not in (tmp_path / "mlflow.db").read_bytes().decode(errors="ignore")
