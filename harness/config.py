"""Typed schema of the job config, registered in Hydra's ConfigStore so that a misspelt key
fails when the config is composed, not an hour into a sweep.

The `dataset` group has its own schema (harness.data.datasets.DatasetConfig). Model
`params` stay open here because each model's typed __init__ is their schema: the job checks
them against that signature before loading any data (harness.job.check_model_params).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from harness.data.datasets import DatasetConfig


@dataclass
class NetworkConfig:
    hidden: list[int] = field(default_factory=lambda: [128])  # the paper's 128-unit hidden layer
    init_std: float = 0.01  # the reference code's N(0, 0.01) initialisation


@dataclass
class TrainConfig:
    epochs: int = 1
    batch_size: int = 128
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    adam: str = "lazy"  # "lazy" | "dense" (conf/config.yaml says what each means)
    threads: int = 2
    max_train_seconds: Optional[float] = None
    eval_every: int = 100
    eval_every_s: Optional[float] = None
    eval_samples: int = 1000
    log_every: int = 10
    final_eval: bool = True
    resume: str = "auto"  # "auto" | "never" (conf/config.yaml says what each means)
    checkpoint_every_s: Optional[float] = 600.0
    checkpoint_keep: int = 2


@dataclass
class ModelConfig:
    name: str = MISSING
    isolate: bool = False  # run the job in a spawned subprocess (TF: threads/devices set before import)
    env: dict[str, str] = field(default_factory=dict)  # environment of that subprocess, set before it starts
    huge_pages: bool = False  # isolated jobs: glibc maps large allocations on transparent huge pages
    device: str = "cpu"
    params: Any = None  # {_target_: ..., typed kwargs of the model class}


@dataclass
class TrackingConfig:
    uri: str = MISSING
    experiment: str = "slide-bench"
    artifact_root: Optional[str] = None  # where a new experiment keeps artifacts (None: the server decides)
    flush_every_s: float = 10.0  # buffered metrics are written at least this often
    # MLflow's system metrics (CPU, memory, disk, network: a run's "System metrics" charts)
    # sampled this often in the training process; null or 0: off. 10 s: ~15 points over a
    # 150 s job, each a few milliseconds of CPU (harness.tracking.Tracker.system_metrics).
    system_metrics_every_s: Optional[float] = 10.0
    heartbeat_every_s: Optional[float] = 60.0  # harness.resume: a RUNNING run's process is alive
    # a heartbeat from another host (or not verifiable here) older than this makes its run a
    # suspect, ended once its heartbeat stayed unchanged for 2 x heartbeat_every_s + 5 s
    stale_after_s: float = 900.0


@dataclass
class PathsConfig:
    root: str = MISSING
    data_dir: str = MISSING
    cache_dir: str = MISSING
    shared_datasets: str = MISSING
    output_dir: str = MISSING


@dataclass
class SweepConfig:
    skip_finished: bool = True  # a sweep's job whose config already has a FINISHED run is not run again
    repeats: int = 1  # every job of a -m sweep runs with seeds 0..repeats-1 (conf/hydra/default.yaml)


@dataclass
class JobConfig:
    seed: int = 0
    network: NetworkConfig = field(default_factory=NetworkConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dataset: DatasetConfig = MISSING
    model: ModelConfig = MISSING
    tracking: TrackingConfig = MISSING
    paths: PathsConfig = MISSING
    sweep: SweepConfig = field(default_factory=SweepConfig)


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="job_schema", node=JobConfig)
    cs.store(group="model", name="model_schema", node=ModelConfig)
    cs.store(group="dataset", name="dataset_schema", node=DatasetConfig)
    cs.store(group="tracking", name="tracking_schema", node=TrackingConfig)
    cs.store(group="paths", name="paths_schema", node=PathsConfig)
