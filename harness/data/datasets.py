"""Turn a `dataset` config into train/test CSR splits, through the cache.

Kinds:
- "synthetic": harness.data.synthetic with the config's shape fields; generated once and
  cached under a key derived from the spec, so later jobs of a sweep just load the .npz.
- "xmc": Extreme Classification Repository text files, in either layout the repository uses:
  a train/test pair (train_path, test_path: Amazon-670K, Delicious-200K, WikiLSHTC-325K), or
  one data file plus split files of 1-based point indices, one column per split (data_path,
  train_split_path, test_split_path, split_column: the small sets such as Bibtex). When both
  are configured, the first layout whose files all exist is used. Nothing is downloaded: a
  missing file raises FileNotFoundError naming the paths and saying where to get the data.

For "xmc", n_train / n_test / n_features / n_labels are optional expectations: when set, the
files must match them (a guard against pointing at the wrong files).

A loaded Dataset also says where it came from (Dataset.inputs: one DataInput per cache entry,
with the entry's key), which every run logs as its MLflow dataset inputs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from harness.data import synthetic
from harness.data.cache import KEY_CHARS, load_splits, load_xmc_keyed, store_or_warn
from harness.data.xmc import XMCSplit

log = logging.getLogger(__name__)

KINDS = ("synthetic", "xmc")


@dataclass
class DatasetConfig:
    """Schema of the Hydra `dataset` group (conf/dataset/*.yaml set every key)."""

    name: str
    kind: str  # "synthetic" | "xmc"
    where_to_get: str = ""  # shown when files are missing
    root: Optional[str] = None  # folder the paths below usually interpolate from
    train_path: Optional[str] = None
    test_path: Optional[str] = None
    data_path: Optional[str] = None  # single-file layout
    train_split_path: Optional[str] = None
    test_split_path: Optional[str] = None
    split_column: int = 0  # which of the split files' columns (the repository ships 10)
    n_train: Optional[int] = None
    n_test: Optional[int] = None
    n_features: Optional[int] = None
    n_labels: Optional[int] = None
    # synthetic only (see harness.data.synthetic.SyntheticSpec)
    nnz_per_point: Optional[int] = None
    labels_per_point: Optional[int] = None
    prototype_size: Optional[int] = None
    noise_fraction: Optional[float] = None
    label_zipf: Optional[float] = None
    feature_zipf: Optional[float] = None
    seed: int = 0  # the data's own seed: model seeds vary, the data stays put
    # The Adam learning rate that suits this data (train.lr defaults to it). The paper's 1e-4
    # suits epochs over real Amazon-670K; small and synthetic sets need more to leave the
    # label prior within minutes (docs/design.md, fair-comparison contract). Each yaml says why its value.
    lr: float = 1e-3


class DataInput(NamedTuple):
    """One cache entry a dataset was loaded from: what the run trained or evaluated on, as
    MLflow's dataset tracking records it (harness.tracking.dataset_inputs)."""

    splits: str  # which splits it holds: "train", "test" or "train+test"
    key: str  # the cache key naming the entry: a digest of the file's content / the generator spec
    path: Optional[str] = None  # the text file it was parsed from (absolute), or
    generator: Optional[dict] = None  # the spec it was generated from (synthetic data)


class Dataset(NamedTuple):
    name: str
    train: XMCSplit
    test: XMCSplit
    n_features: int
    n_labels: int
    inputs: tuple[DataInput, ...] = ()  # where the splits came from, one per cache entry


def load_dataset(cfg, cache_dir: Path) -> Dataset:
    """Load (or generate) the dataset described by cfg, a DatasetConfig or Hydra's DictConfig."""
    kind = cfg.kind
    if kind == "synthetic":
        train, test, inputs = _load_synthetic(synthetic_spec(cfg), Path(cache_dir), cfg.name)
    elif kind == "xmc":
        train, test, inputs = _load_xmc(cfg, Path(cache_dir))
        _check_expected(cfg, train, test)
    else:
        raise ValueError(f"dataset {cfg.name!r}: kind must be one of {KINDS}, got {kind!r}")
    if train.features.n_cols != test.features.n_cols or train.labels.n_cols != test.labels.n_cols:
        raise ValueError(f"dataset {cfg.name!r}: train is {train.features.n_cols} features x "
                         f"{train.labels.n_cols} labels but test is {test.features.n_cols} x "
                         f"{test.labels.n_cols}")
    log.info("dataset %s: %d train, %d test points, %d features, %d labels", cfg.name,
             train.n_points, test.n_points, train.features.n_cols, train.labels.n_cols)
    return Dataset(cfg.name, train, test, train.features.n_cols, train.labels.n_cols, inputs)


def synthetic_spec(cfg) -> synthetic.SyntheticSpec:
    """The generator spec of a synthetic dataset config (unset optional knobs: spec defaults)."""
    fields = {f.name for f in dataclasses.fields(synthetic.SyntheticSpec)}
    required = ("n_train", "n_test", "n_features", "n_labels")
    missing = [name for name in required if getattr(cfg, name, None) is None]
    if missing:
        raise ValueError(f"synthetic dataset {cfg.name!r} needs {', '.join(missing)}")
    kwargs = {name: getattr(cfg, name) for name in fields if getattr(cfg, name, None) is not None}
    return synthetic.SyntheticSpec(**kwargs)


def _load_synthetic(spec: synthetic.SyntheticSpec, cache_dir: Path,
                    name: str) -> tuple[XMCSplit, XMCSplit, tuple[DataInput, ...]]:
    generator = {"v": synthetic.GENERATOR_VERSION, **dataclasses.asdict(spec)}
    key = hashlib.sha256(json.dumps(generator, sort_keys=True).encode()).hexdigest()[:KEY_CHARS]
    inputs = (DataInput("train+test", key, generator=generator),)
    entry = cache_dir / f"synthetic-{name}-{key}.npz"
    cached = load_splits(entry)
    if cached is not None and set(cached) == {"train", "test"}:
        log.info("loaded synthetic dataset %s from %s", name, entry)
        return cached["train"], cached["test"], inputs
    log.info("generating synthetic dataset %s (%s)", name, spec)
    train, test = synthetic.generate(spec)
    store_or_warn(entry, {"train": train, "test": test})
    return train, test, inputs


def _load_file(path, splits: str, cache_dir: Path) -> tuple[XMCSplit, DataInput]:
    split, key = load_xmc_keyed(path, cache_dir)
    return split, DataInput(splits, key, path=str(Path(path).resolve()))


def _load_xmc(cfg, cache_dir: Path) -> tuple[XMCSplit, XMCSplit, tuple[DataInput, ...]]:
    pair = [cfg.train_path, cfg.test_path]
    single = [cfg.data_path, cfg.train_split_path, cfg.test_split_path]
    layouts = [paths for paths in (pair, single) if any(p is not None for p in paths)]
    if not layouts:
        raise ValueError(f"dataset {cfg.name!r}: set train_path and test_path, or data_path, "
                         "train_split_path and test_split_path")
    for paths in layouts:
        if all(p is not None and Path(p).is_file() for p in paths):
            if paths is pair:
                (train, train_input), (test, test_input) = (
                    _load_file(cfg.train_path, "train", cache_dir),
                    _load_file(cfg.test_path, "test", cache_dir))
                return train, test, (train_input, test_input)
            # one file holds both splits; the split files pick its rows (they are job params)
            data, data_input = _load_file(cfg.data_path, "train+test", cache_dir)
            return (_take(data, read_split_indices(cfg.train_split_path, cfg.split_column,
                                                   data.n_points)),
                    _take(data, read_split_indices(cfg.test_split_path, cfg.split_column,
                                                   data.n_points)),
                    (data_input,))
    looked = "; ".join(", ".join(str(p) for p in paths) for paths in layouts)
    raise FileNotFoundError(f"dataset {cfg.name!r}: data files not found (looked for: {looked}). "
                            f"Nothing is downloaded at run time. Where to get them: "
                            f"{cfg.where_to_get or 'see the dataset config'}")


def read_split_indices(path, column: int, n_points: int) -> np.ndarray:
    """0-based int64 rows from column `column` of a split file of 1-based point indices."""
    rows = []
    with open(path, encoding="ascii", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            if column >= len(parts) or not parts[column].isdigit():
                raise ValueError(f"{path}:{line_no}: expected a 1-based point index in column "
                                 f"{column}, got {line.strip()!r}")
            idx = int(parts[column])
            if not 1 <= idx <= n_points:
                raise ValueError(f"{path}:{line_no}: point index {idx} out of range "
                                 f"[1, {n_points}]")
            rows.append(idx - 1)
    return np.asarray(rows, dtype=np.int64)


def _take(split: XMCSplit, rows: np.ndarray) -> XMCSplit:
    return XMCSplit(split.features.take_rows(rows), split.labels.take_rows(rows))


def _check_expected(cfg, train: XMCSplit, test: XMCSplit) -> None:
    actual = {"n_train": train.n_points, "n_test": test.n_points,
              "n_features": train.features.n_cols, "n_labels": train.labels.n_cols}
    for key, value in actual.items():
        expected = getattr(cfg, key, None)
        if expected is not None and int(expected) != value:
            raise ValueError(f"dataset {cfg.name!r}: the files have {key}={value} but the config "
                             f"expects {expected} (set dataset.{key}=null to accept the files)")
