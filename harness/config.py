"""Typed schema of the job config, registered in Hydra's ConfigStore so that a misspelt key
fails when the config is composed, not an hour into a sweep.

Types only: every value comes from conf/ (config.yaml and the groups), the one source of each
default; a key the YAML forgot stays MISSING, and the job stops before it starts, naming the key
(harness.job.run_job), instead of taking a second default from here.

The `dataset` group has its own schema (harness.data.datasets.DatasetConfig). Model
`params` stay open here because each model's typed __init__ is their schema: the job checks
them against that signature before loading any data (harness.job.check_model_params).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from harness.data.datasets import DatasetConfig


@dataclass
class NetworkConfig:
    hidden: list[int] = MISSING
    init_std: float = MISSING


@dataclass
class TrainConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    beta1: float = MISSING
    beta2: float = MISSING
    eps: float = MISSING
    adam: str = MISSING  # "lazy" | "dense"
    threads: int = MISSING
    max_train_seconds: Optional[float] = MISSING
    eval_every: int = MISSING
    eval_every_s: Optional[float] = MISSING
    eval_samples: int = MISSING
    log_every: int = MISSING
    final_eval: bool = MISSING
    resume: str = MISSING  # "auto" | "never"
    checkpoint_every_s: Optional[float] = MISSING
    checkpoint_keep: int = MISSING


@dataclass
class ModelConfig:
    name: str = MISSING
    role: str = MISSING  # contract.ROLES: slide | dense | sampled
    colour: str = MISSING  # its colour in every figure (any matplotlib colour)
    marker: str = MISSING  # its matplotlib marker
    isolate: bool = MISSING
    env: dict[str, str] = MISSING
    huge_pages: bool = MISSING
    device: str = MISSING
    params: Any = MISSING  # {_target_: ..., typed kwargs of the model class}


@dataclass
class TrackingConfig:
    uri: str = MISSING
    experiment: str = MISSING
    artifact_root: Optional[str] = MISSING
    flush_every_s: float = MISSING
    system_metrics_every_s: Optional[float] = MISSING
    heartbeat_every_s: Optional[float] = MISSING
    stale_after_s: float = MISSING


@dataclass
class PathsConfig:
    root: str = MISSING
    data_dir: str = MISSING
    cache_dir: str = MISSING
    shared_datasets: str = MISSING
    output_dir: str = MISSING


@dataclass
class SweepConfig:
    skip_finished: bool = MISSING
    repeats: int = MISSING


@dataclass
class JobConfig:
    seed: int = MISSING
    progress: bool = MISSING
    network: NetworkConfig = MISSING
    train: TrainConfig = MISSING
    dataset: DatasetConfig = MISSING
    model: ModelConfig = MISSING
    tracking: TrackingConfig = MISSING
    paths: PathsConfig = MISSING
    sweep: SweepConfig = MISSING


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="job_schema", node=JobConfig)
    cs.store(group="model", name="model_schema", node=ModelConfig)
    cs.store(group="dataset", name="dataset_schema", node=DatasetConfig)
    cs.store(group="tracking", name="tracking_schema", node=TrackingConfig)
    cs.store(group="paths", name="paths_schema", node=PathsConfig)
