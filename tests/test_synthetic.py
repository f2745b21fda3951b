"""Synthetic generator: shapes, determinism, the documented structure, and learnability."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness.data.synthetic import SyntheticSpec, generate, label_prototypes, write_text
from harness.data.xmc import read_xmc

TINY = SyntheticSpec(n_train=2000, n_test=500, n_features=500, n_labels=300, nnz_per_point=20,
                     labels_per_point=3, prototype_size=16, seed=0)


def _arrays(split):
    return [split.features.indptr, split.features.indices, split.features.data,
            split.labels.indptr, split.labels.indices, split.labels.data]


def test_shapes_dtypes_and_row_invariants():
    train, test = generate(TINY)
    assert train.features.shape == (2000, 500) and train.labels.shape == (2000, 300)
    assert test.features.shape == (500, 500) and test.labels.shape == (500, 300)
    for split in (train, test):
        f, y = split
        assert f.indptr.dtype == np.int64 and f.indices.dtype == np.int32
        assert f.data.dtype == np.float32 and y.data.dtype == np.float32
        assert np.all(y.data == 1.0)
        counts = y.row_counts()
        assert counts.min() >= 1 and counts.max() <= TINY.labels_per_point
        assert f.row_counts().min() >= 1
        assert f.indices.min() >= 0 and f.indices.max() < 500
        assert y.indices.min() >= 0 and y.indices.max() < 300
        # ids strictly increasing within rows (sorted, no repeats)
        for csr in (f, y):
            d = np.diff(csr.indices.astype(np.int64))
            starts = csr.indptr[1:-1]
            inner = np.ones(len(d), dtype=bool)
            inner[starts[starts > 0] - 1] = False  # differences across row boundaries
            assert np.all(d[inner] > 0)
        assert np.all(f.data > 0)
        norms = np.sqrt(np.add.reduceat(f.data.astype(np.float64) ** 2, f.indptr[:-1]))
        np.testing.assert_allclose(norms, 1.0, rtol=1e-5)


def test_deterministic_in_the_seed():
    a_train, a_test = generate(TINY)
    b_train, b_test = generate(TINY)
    for x, y in zip(_arrays(a_train) + _arrays(a_test), _arrays(b_train) + _arrays(b_test)):
        np.testing.assert_array_equal(x, y)
    c_train, _ = generate(dataclasses.replace(TINY, seed=1))
    assert not np.array_equal(a_train.labels.indices[:200], c_train.labels.indices[:200])


def test_train_split_does_not_depend_on_n_test():
    a_train, _ = generate(TINY)
    b_train, b_test = generate(dataclasses.replace(TINY, n_test=0))
    for x, y in zip(_arrays(a_train), _arrays(b_train)):
        np.testing.assert_array_equal(x, y)
    assert b_test.features.shape == (0, 500)


def test_label_frequencies_follow_a_power_law():
    spec = dataclasses.replace(TINY, n_train=20000, n_test=0, label_zipf=1.0)
    train, _ = generate(spec)
    freq = np.sort(np.bincount(train.labels.indices, minlength=spec.n_labels))[::-1]
    # rank-frequency slope on log-log axes over the head ~ -label_zipf
    ranks = np.arange(1, 51)
    slope = np.polyfit(np.log(ranks), np.log(freq[:50]), 1)[0]
    assert -1.3 < slope < -0.7


def test_points_mostly_use_their_labels_prototype_features():
    train, _ = generate(TINY)
    proto = label_prototypes(TINY)
    in_proto = []
    for i in range(300):
        labels = train.labels.indices[train.labels.indptr[i]:train.labels.indptr[i + 1]]
        feats = train.features.indices[train.features.indptr[i]:train.features.indptr[i + 1]]
        in_proto.append(np.isin(feats, proto[labels]).mean())
    # 1 - noise_fraction of the slots come from the prototypes (plus lucky noise hits)
    assert 0.6 < np.mean(in_proto) < 0.95


def test_learnable_by_a_trivial_model():
    """Label-feature co-occurrence counted on train beats the best constant guess by far."""
    train, test = generate(TINY)
    x_train, y_train = train.features.to_dense(), train.labels.to_dense()
    x_test, y_test = test.features.to_dense(), test.labels.to_dense()
    w = y_train.T @ x_train  # (labels, features): summed feature vectors per label
    w /= np.linalg.norm(w, axis=1, keepdims=True) + 1e-12  # cosine to each label's centroid
    pred = np.argmax(x_test @ w.T, axis=1)
    p_at_1 = y_test[np.arange(len(pred)), pred].mean()
    prior = y_test[:, np.argmax(y_train.sum(axis=0))].mean()  # most frequent train label
    chance = y_test.sum(axis=1).mean() / TINY.n_labels  # a random label
    assert prior < 0.25
    assert p_at_1 > 0.5, p_at_1
    assert p_at_1 > 3 * prior and p_at_1 > 20 * chance


def test_amazon_shape_is_supported_with_few_points():
    spec = SyntheticSpec(n_train=3000, n_test=10, n_features=135_909, n_labels=670_091,
                         nnz_per_point=100, labels_per_point=10)
    train, test = generate(spec)
    assert train.features.shape == (3000, 135_909) and train.labels.shape == (3000, 670_091)
    assert 65 < train.features.nnz / 3000 < 85  # ~75 non-zeros, like Amazon-670K
    assert 5.0 < train.labels.nnz / 3000 < 6.0  # ~5.5 labels
    assert test.labels.n_cols == 670_091


def test_more_points_than_one_chunk():
    spec = dataclasses.replace(TINY, n_train=70_000, n_test=0, nnz_per_point=4)
    train, _ = generate(spec)
    assert train.features.n_rows == 70_000
    assert train.features.indptr[-1] == len(train.features.indices)
    assert np.all(np.diff(train.features.indptr) >= 1)


def test_write_text_round_trips(tmp_path):
    spec = dataclasses.replace(TINY, n_train=300, n_test=100)
    train, test = write_text(spec, tmp_path / "train.txt", tmp_path / "test.txt")
    for split, name in ((train, "train.txt"), (test, "test.txt")):
        back = read_xmc(tmp_path / name)
        for x, y in zip(_arrays(split), _arrays(back)):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("change,match", [
    ({"n_train": -1}, "n_train"),
    ({"n_labels": 0}, "n_labels"),
    ({"labels_per_point": 0}, "labels_per_point"),
    ({"noise_fraction": 1.5}, "noise_fraction"),
    ({"label_zipf": -1.0}, "zipf"),
    ({"n_features": 2**31}, "int32"),
])
def test_invalid_specs_are_rejected(change, match):
    with pytest.raises(ValueError, match=match):
        generate(dataclasses.replace(TINY, **change))
