"""Synthetic extreme-classification data with a structure a model can learn.

Model of the data (all draws from numpy Generators derived from `spec.seed`):
- every label has a prototype: `prototype_size` feature ids drawn uniformly; the first ones
  are the label's strongest words (a point picks prototype position floor(P * u^2));
- a point draws its label count uniformly from 1..labels_per_point, then that many labels from
  a power law p(rank) ~ (rank + 1)^-label_zipf (ranks mapped to ids by a random permutation,
  so frequent labels are not the low ids); repeats collapse;
- it has about nnz_per_point feature slots (uniform in [nnz/2, 3nnz/2]); a slot is noise with
  probability noise_fraction (a background word from a Zipf law over features) and otherwise
  a prototype feature of one of the point's labels, chosen uniformly;
- values are tf-idf-like: (1 + log tf) * idf, where idf grows with the background rank of the
  feature (common background words weigh little), and rows are L2-normalised.

Points are generated in fixed-size chunks, each from its own seed, with vectorised numpy (no
per-point Python loop) and memory proportional to the data: no n_points x n_labels array.
Train and test come from separate streams, so changing n_test leaves the train split alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from harness.data.csr import CSR
from harness.data.xmc import XMCSplit, write_xmc

GENERATOR_VERSION = 1  # bump when the output for a given spec changes (invalidates caches)
_CHUNK_ROWS = 1 << 16  # fixed, so the output does not depend on how the work is split
_STREAM_STRUCTURE, _STREAM_TRAIN, _STREAM_TEST = 0, 1, 2


@dataclass(frozen=True)
class SyntheticSpec:
    n_train: int
    n_test: int
    n_features: int
    n_labels: int
    # mean feature slots per point; repeats merge into tf, so a point ends with ~25% fewer
    # distinct features (100 slots -> ~73 non-zeros, Amazon-670K has ~75)
    nnz_per_point: int = 100
    labels_per_point: int = 10  # label count ~ uniform 1..this (10 -> mean 5.5, Amazon ~5.4)
    prototype_size: int = 32  # feature ids per label prototype
    noise_fraction: float = 0.25  # share of feature slots drawn from the background words
    label_zipf: float = 0.7  # label power-law exponent (1.0 puts the top label in ~1/3 of points)
    feature_zipf: float = 1.0  # Zipf exponent of background word frequencies
    seed: int = 0

    def validate(self) -> None:
        for name in ("n_train", "n_test"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("n_features", "n_labels", "nnz_per_point", "labels_per_point",
                     "prototype_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if max(self.n_features, self.n_labels) > np.iinfo(np.int32).max:
            raise ValueError("n_features and n_labels must fit in int32")
        if not 0.0 <= self.noise_fraction <= 1.0:
            raise ValueError(f"noise_fraction must be in [0, 1], got {self.noise_fraction}")
        if self.label_zipf < 0 or self.feature_zipf < 0:
            raise ValueError("label_zipf and feature_zipf must be >= 0")


class _Structure(NamedTuple):
    label_cdf: np.ndarray  # float64 (n_labels,): CDF over label frequency ranks
    label_of_rank: np.ndarray  # int32 (n_labels,)
    prototypes: np.ndarray  # int32 (n_labels, prototype_size)
    feature_cdf: np.ndarray  # float64 (n_features,): CDF over background word ranks
    feature_of_rank: np.ndarray  # int32 (n_features,)
    idf: np.ndarray  # float32 (n_features,)


def generate(spec: SyntheticSpec) -> tuple[XMCSplit, XMCSplit]:
    """(train, test) splits for the spec; the same spec always gives the same arrays."""
    spec.validate()
    st = _structure(spec)
    train = _points(spec, st, spec.n_train, _STREAM_TRAIN)
    return train, _points(spec, st, spec.n_test, _STREAM_TEST)


def write_text(spec: SyntheticSpec, train_path, test_path) -> tuple[XMCSplit, XMCSplit]:
    """Generate and write both splits as XMC text files (e.g. for the reader benchmark)."""
    train, test = generate(spec)
    write_xmc(train, train_path)
    write_xmc(test, test_path)
    return train, test


def label_prototypes(spec: SyntheticSpec) -> np.ndarray:
    """int32 (n_labels, prototype_size): the prototypes behind the data (for tests, oracles)."""
    spec.validate()
    return _structure(spec).prototypes


def _rng(spec: SyntheticSpec, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=key))


def _power_law_cdf(n: int, exponent: float) -> np.ndarray:
    p = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(p)
    return cdf / cdf[-1]


def _sample(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Ranks drawn by inverting the CDF at uniforms u."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def _structure(spec: SyntheticSpec) -> _Structure:
    rng = _rng(spec, _STREAM_STRUCTURE)
    label_of_rank = rng.permutation(spec.n_labels).astype(np.int32)
    prototypes = rng.integers(0, spec.n_features, size=(spec.n_labels, spec.prototype_size),
                              dtype=np.int32)
    feature_of_rank = rng.permutation(spec.n_features).astype(np.int32)
    idf = np.empty(spec.n_features, dtype=np.float32)
    # rare background words weigh more, as idf does: log(2 + rank) runs from ~0.7 to ~log(n)
    idf[feature_of_rank] = np.log(2.0 + np.arange(spec.n_features)).astype(np.float32)
    return _Structure(_power_law_cdf(spec.n_labels, spec.label_zipf), label_of_rank, prototypes,
                      _power_law_cdf(spec.n_features, spec.feature_zipf), feature_of_rank, idf)


def _points(spec: SyntheticSpec, st: _Structure, n: int, stream: int) -> XMCSplit:
    chunks = [_chunk(spec, st, min(_CHUNK_ROWS, n - lo), _rng(spec, stream, i))
              for i, lo in enumerate(range(0, n, _CHUNK_ROWS))]
    if not chunks:
        chunks = [(_empty(spec.n_features), _empty(spec.n_labels))]
    return XMCSplit(_vstack([c[0] for c in chunks]), _vstack([c[1] for c in chunks]))


def _chunk(spec: SyntheticSpec, st: _Structure, m: int, rng: np.random.Generator):
    # labels: count per point, power-law draws, repeats collapsed by np.unique on (row, label)
    n_lab = rng.integers(1, spec.labels_per_point + 1, size=m)
    lab_row = np.repeat(np.arange(m, dtype=np.int64), n_lab)
    lab = st.label_of_rank[_sample(st.label_cdf, rng.random(len(lab_row)))]
    keys = np.unique(lab_row * spec.n_labels + lab)
    lab_row, lab = keys // spec.n_labels, (keys % spec.n_labels).astype(np.int32)
    lab_count = np.bincount(lab_row, minlength=m)
    lab_start = np.concatenate(([0], np.cumsum(lab_count)[:-1]))
    labels = CSR(_indptr(lab_count), lab, np.ones(len(lab), dtype=np.float32), spec.n_labels)

    # feature slots: prototype words of a random one of the point's labels, or background noise
    lo = max(1, spec.nnz_per_point // 2)
    n_slot = rng.integers(lo, spec.nnz_per_point + (spec.nnz_per_point - lo) + 1, size=m)
    slot_row = np.repeat(np.arange(m, dtype=np.int64), n_slot)
    pick = lab_start[slot_row] + (rng.random(len(slot_row)) * lab_count[slot_row]).astype(np.int64)
    pos = (spec.prototype_size * rng.random(len(slot_row)) ** 2).astype(np.int64)
    feat = st.prototypes[lab[pick], pos]
    noise = rng.random(len(slot_row)) < spec.noise_fraction
    feat[noise] = st.feature_of_rank[_sample(st.feature_cdf, rng.random(int(noise.sum())))]

    # tf-idf-like values: repeated slots are the term frequency
    keys, tf = np.unique(slot_row * spec.n_features + feat, return_counts=True)
    f_row, f_id = keys // spec.n_features, (keys % spec.n_features).astype(np.int32)
    val = (1.0 + np.log(tf)).astype(np.float32) * st.idf[f_id]
    norm = np.sqrt(np.bincount(f_row, weights=val.astype(np.float64) ** 2, minlength=m))
    val = (val / norm[f_row]).astype(np.float32)
    features = CSR(_indptr(np.bincount(f_row, minlength=m)), f_id, val, spec.n_features)
    return features, labels


def _indptr(counts: np.ndarray) -> np.ndarray:
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr


def _empty(n_cols: int) -> CSR:
    return CSR(np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32),
               np.zeros(0, dtype=np.float32), n_cols)


def _vstack(parts: list[CSR]) -> CSR:
    if len(parts) == 1:
        return parts[0]
    counts = np.concatenate([p.row_counts() for p in parts])
    return CSR(_indptr(counts), np.concatenate([p.indices for p in parts]),
               np.concatenate([p.data for p in parts]), parts[0].n_cols)
