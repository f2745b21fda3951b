"""conf/dataset/*.yaml and load_dataset: schema, layouts, cache, clear errors, and the small
real sets in ../shared/datasets (skipped, with the reason, when that folder is absent)."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

import harness.data.synthetic as synthetic
from harness.data.datasets import DatasetConfig, load_dataset, read_split_indices
from harness.data.xmc import XMCSplit, read_xmc, write_xmc
from harness.data.synthetic import SyntheticSpec, write_text

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf" / "dataset"
SHARED = Path(os.environ.get("SLIDE_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
YAMLS = sorted(p.stem for p in CONF.glob("*.yaml"))
REAL_SETS = ["amazon670k", "delicious200k", "wikilshtc325k"]


def dataset_cfg(option: str, tmp_path: Path, shared: Path = SHARED, **overrides):
    """The dataset node of conf/dataset/<option>.yaml, validated by the schema and placed in a
    config whose `paths` point into tmp_path (as the job config does)."""
    node = OmegaConf.merge(OmegaConf.structured(DatasetConfig),
                           OmegaConf.load(CONF / f"{option}.yaml"), overrides)
    cfg = OmegaConf.create({"paths": {"root": str(ROOT), "data_dir": str(tmp_path / "data"),
                                      "cache_dir": str(tmp_path / "cache"),
                                      "shared_datasets": str(shared)},
                            "dataset": node})
    return cfg.dataset


# ---------------------------------------------------------------- the configs

def test_the_expected_dataset_configs_exist():
    assert {"synthetic", "synthetic_tiny", "synthetic_amazon", "xmc", "bibtex", "delicious",
            *REAL_SETS} <= set(YAMLS)


@pytest.mark.parametrize("name", YAMLS)
def test_every_dataset_yaml_sets_exactly_the_schema_keys(name, tmp_path):
    raw = OmegaConf.load(CONF / f"{name}.yaml")
    assert set(raw.keys()) == {f.name for f in dataclasses.fields(DatasetConfig)}
    cfg = dataset_cfg(name, tmp_path)  # types check against the schema here
    assert cfg.name == name
    assert cfg.kind in ("synthetic", "xmc")
    assert cfg.where_to_get
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # interpolations resolve


def test_comment_on_every_synthetic_key():
    # the project's rule for config files: every YAML key carries a comment saying why its
    # value (the synthetic shape is a choice, so each of its keys must explain itself)
    for name in ("synthetic", "synthetic_tiny", "synthetic_amazon"):
        for line in (CONF / f"{name}.yaml").read_text().splitlines():
            key = line.split(":")[0]
            if key in ("n_train", "n_test", "n_features", "n_labels", "nnz_per_point",
                       "labels_per_point", "prototype_size", "noise_fraction", "label_zipf"):
                assert "#" in line, f"{name}.yaml: {line}"


def test_default_synthetic_is_wide():
    cfg = OmegaConf.load(CONF / "synthetic.yaml")
    assert cfg.n_labels >= 50_000 and cfg.n_labels > cfg.n_features  # output layer dominates
    amazon = OmegaConf.load(CONF / "synthetic_amazon.yaml")
    assert (amazon.n_features, amazon.n_labels, amazon.n_train, amazon.n_test) == (
        135_909, 670_091, 490_449, 153_025)


@pytest.mark.parametrize("name", REAL_SETS)
def test_real_sets_point_at_the_data_dir(name, tmp_path):
    cfg = dataset_cfg(name, tmp_path)
    assert cfg.train_path == str(tmp_path / "data" / name / "train.txt")
    assert cfg.test_path == str(tmp_path / "data" / name / "test.txt")


def test_root_override_moves_both_paths(tmp_path):
    cfg = dataset_cfg("amazon670k", tmp_path, root="/data/amazon")
    assert (cfg.train_path, cfg.test_path) == ("/data/amazon/train.txt", "/data/amazon/test.txt")


def test_configs_compose_with_the_job_config(tmp_path, monkeypatch):
    """Every dataset option composes with conf/config.yaml under the registered schemas."""
    from hydra import compose, initialize_config_dir

    import harness.config as config_mod

    monkeypatch.setenv("SLIDE_BENCH_ROOT", str(ROOT))
    config_mod.register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for name in YAMLS:
            cfg = compose(config_name="config", overrides=[f"dataset={name}"])
            assert cfg.dataset.name == name


# ---------------------------------------------------------------- load_dataset

def test_synthetic_loads_and_second_load_comes_from_the_cache(tmp_path, monkeypatch):
    calls = []
    real_generate = synthetic.generate
    monkeypatch.setattr(synthetic, "generate",
                        lambda spec: calls.append(spec) or real_generate(spec))
    cfg = dataset_cfg("synthetic_tiny", tmp_path)
    a = load_dataset(cfg, tmp_path / "cache")
    assert (a.name, a.n_features, a.n_labels) == ("synthetic_tiny", 500, 300)
    assert a.train.n_points == 2000 and a.test.n_points == 500
    b = load_dataset(cfg, tmp_path / "cache")
    assert len(calls) == 1
    np.testing.assert_array_equal(a.train.features.data, b.train.features.data)
    np.testing.assert_array_equal(a.test.labels.indices, b.test.labels.indices)
    # any knob is part of the key
    load_dataset(dataset_cfg("synthetic_tiny", tmp_path, seed=5), tmp_path / "cache")
    load_dataset(dataset_cfg("synthetic_tiny", tmp_path, noise_fraction=0.5), tmp_path / "cache")
    assert len(calls) == 3


def test_synthetic_from_a_plain_dataclass(tmp_path):
    cfg = DatasetConfig(name="t", kind="synthetic", n_train=50, n_test=20, n_features=30,
                        n_labels=40, nnz_per_point=5, labels_per_point=2)
    ds = load_dataset(cfg, tmp_path)
    assert ds.train.features.shape == (50, 30) and ds.test.labels.shape == (20, 40)


def test_synthetic_needs_its_shape(tmp_path):
    with pytest.raises(ValueError, match="n_labels"):
        load_dataset(DatasetConfig(name="t", kind="synthetic", n_train=5, n_test=5,
                                   n_features=5), tmp_path)


@pytest.mark.parametrize("name", REAL_SETS)
def test_missing_real_files_say_where_to_get_them(name, tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset(dataset_cfg(name, tmp_path), tmp_path / "cache")
    msg = str(info.value)
    assert str(tmp_path / "data" / name / "train.txt") in msg
    assert "Extreme Classification Repository" in msg and "XMLRepository" in msg
    assert "downloaded" in msg  # ... "Nothing is downloaded at run time"


def _tiny_files(folder: Path) -> tuple[XMCSplit, XMCSplit]:
    folder.mkdir(parents=True, exist_ok=True)
    spec = SyntheticSpec(n_train=40, n_test=15, n_features=30, n_labels=12, nnz_per_point=6,
                         labels_per_point=3, prototype_size=4)
    return write_text(spec, folder / "train.txt", folder / "test.txt")


def test_xmc_train_test_pair(tmp_path):
    train, test = _tiny_files(tmp_path / "mine")
    cfg = dataset_cfg("xmc", tmp_path, train_path=str(tmp_path / "mine" / "train.txt"),
                      test_path=str(tmp_path / "mine" / "test.txt"), name="mine")
    ds = load_dataset(cfg, tmp_path / "cache")
    assert (ds.name, ds.n_features, ds.n_labels) == ("mine", 30, 12)
    np.testing.assert_array_equal(ds.train.features.data, train.features.data)
    np.testing.assert_array_equal(ds.test.labels.indices, test.labels.indices)


def test_named_real_set_reads_files_under_the_data_dir(tmp_path):
    _tiny_files(tmp_path / "data" / "amazon670k")
    ds = load_dataset(dataset_cfg("amazon670k", tmp_path), tmp_path / "cache")
    assert ds.train.n_points == 40 and ds.test.n_points == 15


def _single_file_layout(folder: Path, prefix: str = "toy"):
    """A data file plus split files of 1-based indices, two columns (two splits)."""
    train, test = _tiny_files(folder / "parts")
    n_tr, n_te = train.n_points, test.n_points
    both = XMCSplit(*(type(train.features)(
        np.concatenate([a.indptr, b.indptr[1:] + a.indptr[-1]]),
        np.concatenate([a.indices, b.indices]), np.concatenate([a.data, b.data]), a.n_cols)
        for a, b in zip(train, test)))
    write_xmc(both, folder / f"{prefix.capitalize()}_data.txt")
    rng = np.random.default_rng(0)
    perm = [np.arange(n_tr + n_te), rng.permutation(n_tr + n_te)]  # column 0, column 1
    with open(folder / f"{prefix}_trSplit.txt", "w") as fh:
        for i in range(n_tr):
            fh.write(f"{perm[0][i] + 1} {perm[1][i] + 1}\n")
    with open(folder / f"{prefix}_tstSplit.txt", "w") as fh:
        for i in range(n_tr, n_tr + n_te):
            fh.write(f"{perm[0][i] + 1} {perm[1][i] + 1}\n")
    return both, perm


@pytest.mark.parametrize("column", [0, 1])
def test_single_file_with_split_indices(tmp_path, column):
    both, perm = _single_file_layout(tmp_path / "Toy")
    cfg = dataset_cfg("bibtex", tmp_path, shared=tmp_path, root=str(tmp_path / "Toy"),
                      data_path="${.root}/Toy_data.txt",
                      train_split_path="${.root}/toy_trSplit.txt",
                      test_split_path="${.root}/toy_tstSplit.txt",
                      split_column=column, n_features=None, n_labels=None)
    ds = load_dataset(cfg, tmp_path / "cache")  # no train.txt/test.txt there: this layout
    assert ds.train.n_points == 40 and ds.test.n_points == 15
    rows = perm[column][:40]
    np.testing.assert_array_equal(ds.train.labels.indices, both.labels.take_rows(rows).indices)
    np.testing.assert_array_equal(ds.test.features.data,
                                  both.features.take_rows(perm[column][40:]).data)


def test_pair_is_preferred_when_both_layouts_exist(tmp_path):
    _single_file_layout(tmp_path / "Bibtex", prefix="bibtex")
    _tiny_files(tmp_path / "Bibtex")  # train.txt / test.txt
    (tmp_path / "Bibtex" / "train.txt").write_text("1 1836 159\n3 5:1\n")
    cfg = dataset_cfg("bibtex", tmp_path, shared=tmp_path, n_features=None, n_labels=None)
    with pytest.raises(ValueError, match="train is 1836 features"):
        load_dataset(cfg, tmp_path / "cache")  # read the pair (whose shapes disagree)


def test_expected_shape_guards_against_wrong_files(tmp_path):
    _tiny_files(tmp_path / "data" / "amazon670k")
    cfg = dataset_cfg("amazon670k", tmp_path, n_labels=670_091)
    with pytest.raises(ValueError, match="n_labels=12 but the config expects 670091"):
        load_dataset(cfg, tmp_path / "cache")


def test_missing_shared_set_lists_both_layouts(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset(dataset_cfg("bibtex", tmp_path, shared=tmp_path), tmp_path / "cache")
    msg = str(info.value)
    assert "train.txt" in msg and "Bibtex_data.txt" in msg and "bibtex_trSplit.txt" in msg


def test_split_file_errors_name_file_and_line(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("1 2\n3 9\n")
    assert read_split_indices(path, 0, 5).tolist() == [0, 2]
    with pytest.raises(ValueError, match=r"s.txt:2: point index 9 out of range \[1, 5\]"):
        read_split_indices(path, 1, 5)
    with pytest.raises(ValueError, match="s.txt:1: expected a 1-based point index in column 2"):
        read_split_indices(path, 2, 5)


def test_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of"):
        load_dataset(DatasetConfig(name="t", kind="parquet"), tmp_path)


def test_xmc_without_any_path(tmp_path):
    with pytest.raises(ValueError, match="set train_path and test_path"):
        load_dataset(DatasetConfig(name="t", kind="xmc"), tmp_path)


# ---------------------------------------------------------------- the shared small real sets

@pytest.mark.parametrize("name,folder,n_features,n_labels", [
    ("bibtex", "Bibtex", 1836, 159),
    ("delicious", "Delicious", 500, 983),
])
def test_shared_real_set_loads(name, folder, n_features, n_labels, tmp_path):
    if not (SHARED / folder).is_dir():
        pytest.skip(f"{SHARED / folder} is absent: the small real sets are optional on this "
                    "machine (set SLIDE_SHARED_DATASETS to point elsewhere)")
    ds = load_dataset(dataset_cfg(name, tmp_path), tmp_path / "cache")
    assert (ds.n_features, ds.n_labels) == (n_features, n_labels)
    assert ds.train.n_points > 0 and ds.test.n_points > 0
    for split in (ds.train, ds.test):
        assert split.labels.indices.max() < n_labels
        assert np.all(np.isfinite(split.features.data))
    # the cache now holds the parsed file(s): a second load parses nothing
    again = load_dataset(dataset_cfg(name, tmp_path), tmp_path / "cache")
    np.testing.assert_array_equal(again.train.features.indices, ds.train.features.indices)
    if (SHARED / folder / "train.txt").is_file():
        np.testing.assert_array_equal(read_xmc(SHARED / folder / "train.txt").features.data,
                                      ds.train.features.data)
