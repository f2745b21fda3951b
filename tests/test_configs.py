"""Every config composes: each model, dataset, tracking option and experiment preset, with
its model options checked against the typed __init__ they are passed to."""
from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from harness.config import register_configs
from harness.job import check_model_params
from tests.conftest import ROOT

CONF = ROOT / "conf"
register_configs()


def names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.fixture
def hydra_compose(monkeypatch):
    monkeypatch.setenv("SLIDE_BENCH_ROOT", str(ROOT))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield lambda overrides: compose("config", overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("model", names("model"))
def test_every_model_composes_and_matches_its_class(hydra_compose, model):
    cfg = hydra_compose([f"model={model}"])
    check_model_params(cfg.model)
    assert cfg.model.name


@pytest.mark.parametrize("dataset", names("dataset"))
def test_every_dataset_composes(hydra_compose, dataset):
    cfg = hydra_compose([f"dataset={dataset}"])
    assert cfg.dataset.name and cfg.dataset.kind in ("synthetic", "xmc")
    # paths resolve (no interpolation left dangling), except the runtime-only hydra ones
    OmegaConf.to_container(cfg.dataset, resolve=True)


@pytest.mark.parametrize("preset", names("preset"))
def test_every_preset_composes(hydra_compose, preset):
    cfg = hydra_compose([f"preset={preset}"])
    assert cfg.hydra.mode.name == "MULTIRUN"
    swept = cfg.hydra.sweeper.params
    for model in str(swept.get("model", cfg.model.name)).split(","):
        check_model_params(hydra_compose([f"preset={preset}", f"model={model}"]).model)


@pytest.mark.parametrize("tracking", names("tracking"))
def test_tracking_options_compose(hydra_compose, tracking):
    cfg = hydra_compose([f"tracking={tracking}"])
    assert cfg.tracking.uri


def test_local_parallel_launcher_composes(hydra_compose):
    cfg = hydra_compose(["hydra/launcher=local_parallel"])
    assert cfg.hydra.launcher.n_jobs == 2


def test_slurm_launcher_composes_with_one_core_per_thread(hydra_compose):
    cfg = hydra_compose(["hydra/launcher=slurm", "train.threads=16", "tracking=server"])
    assert "submitit" in cfg.hydra.launcher._target_
    assert cfg.hydra.launcher.cpus_per_task == 16


def test_a_typo_fails_at_compose_time(hydra_compose):
    with pytest.raises(ConfigCompositionException):
        hydra_compose(["train.learning_rate=0.1"])
    with pytest.raises(ConfigCompositionException):
        hydra_compose(["dataset.n_lables=5"])


def test_model_slide_yaml_repeats_the_engines_defaults_and_nothing_else(hydra_compose):
    """conf/model/slide.yaml lists every option for users to read, but the engine's
    LayerConfig / NetworkConfig and the adapter's keywords are the source of each default: a
    value in the yaml that differs from them would silently override a changed default."""
    import inspect
    from dataclasses import fields

    from harness.models.base import ModelContext
    from harness.models.slide import SlideModel
    from slide_core import LayerConfig, NetworkConfig

    engine = {f.name: f.default for cls in (LayerConfig, NetworkConfig) for f in fields(cls)}
    adapter = {name: p.default for name, p in inspect.signature(SlideModel.__init__).parameters.items()
               if p.default is not inspect.Parameter.empty}
    params = OmegaConf.to_container(hydra_compose(["model=slide"]).model.params)
    params.pop("_target_")
    assert set(params) == set(adapter), "slide.yaml and SlideModel take the same options"
    for key, value in params.items():
        assert value == adapter[key], f"slide.yaml {key}: {value!r}, adapter default {adapter[key]!r}"
        # sparsity: the engine's default layer is dense; adam: null takes train.adam
        if key in engine and key not in ("sparsity", "adam"):
            assert value == engine[key], f"slide.yaml {key}: {value!r}, engine default {engine[key]!r}"
    assert hydra_compose([]).network.init_std == ModelContext.init_std
