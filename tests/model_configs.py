"""conf/model/<name>.yaml as a job sees it (Hydra's own composition: defaults lists, schema),
for the tests that check or use the models' declared role, colour and marker."""
from __future__ import annotations

import functools
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from harness.config import register_configs

CONF = Path(__file__).resolve().parents[1] / "conf"
MODELS = tuple(sorted(p.stem for p in (CONF / "model").glob("*.yaml")))


@functools.cache
def model_config(name: str) -> DictConfig:
    """The composed `model` node of `name` (read-only use: the result is shared)."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        model = compose("config", overrides=[f"model={name}"]).model
    GlobalHydra.instance().clear()
    return model
