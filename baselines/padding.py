"""CSR batch -> padded flat arrays for the TensorFlow step (numpy only, no TF import).

The first layer is an embedding bag: h[r] = sum_j x[r, j] * W1[j], computed as
gather(W1, feat_ids) * feat_vals, summed by row with unsorted_segment_sum(feat_rows). Labels
stay sparse ids: the loss gathers logits[label_rows, label_ids] (never a dense batch x n_labels
target built in Python).

Shapes are padded so that a tf.function (and an XLA cluster, which compiles one executable per
input shape) sees few distinct shapes: rows to a fixed batch size, nonzeros and label pairs to a
capacity that only grows (powers of two). Padding entries have value/weight 0 and point at row
0 / column 0, so they add exact zeros to the sums and their gradients.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

MIN_CAPACITY = 64


class PackedBatch(NamedTuple):
    feat_rows: np.ndarray  # int32 (cap_x,) row of each input nonzero
    feat_ids: np.ndarray  # int32 (cap_x,) feature (column) id
    feat_vals: np.ndarray  # float32 (cap_x,) value; 0 for padding
    label_rows: np.ndarray  # int32 (cap_y,) row of each (row, label) pair
    label_ids: np.ndarray  # int32 (cap_y,) label id
    label_weights: np.ndarray  # float32 (cap_y,) 1/|y_row|: the target y/|y|; 0 for padding
    row_mask: np.ndarray  # float32 (n_rows_padded,) 1 for real rows with at least one label
    n_rows: int  # real rows (the loss is a mean over these, rows without labels included)


def next_capacity(n: int, current: int = 0) -> int:
    """Smallest power of two >= n (and >= MIN_CAPACITY), never below `current`."""
    cap = max(MIN_CAPACITY, current)
    while cap < n:
        cap *= 2
    return cap


def _flat_rows(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray | None, cap: int):
    """(rows, ids, values) of every stored entry, padded to cap with zeros."""
    indptr = np.asarray(indptr, dtype=np.int64)
    base, end = int(indptr[0]), int(indptr[-1])  # indptr of a view may not start at 0
    nnz = end - base
    if nnz > cap:
        raise ValueError(f"batch has {nnz} entries but the capacity is {cap}")
    rows = np.zeros(cap, dtype=np.int32)
    ids = np.zeros(cap, dtype=np.int32)
    vals = np.zeros(cap, dtype=np.float32)
    counts = np.diff(indptr)
    rows[:nnz] = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    ids[:nnz] = indices[base:end]
    if values is not None:
        vals[:nnz] = values[base:end]
    return rows, ids, vals, counts


def pack_features(indptr, indices, data, n_rows_padded: int, cap: int):
    """Input rows only (prediction): (feat_rows, feat_ids, feat_vals)."""
    if len(indptr) - 1 > n_rows_padded:
        raise ValueError(f"{len(indptr) - 1} rows do not fit a padded batch of {n_rows_padded}")
    rows, ids, vals, _ = _flat_rows(indptr, indices, data, cap)
    return rows, ids, vals


def pack_batch(x, y, n_rows_padded: int, cap_x: int, cap_y: int) -> PackedBatch:
    """x, y: CSR-like (indptr, indices, data) with the same number of rows."""
    n_rows = len(x.indptr) - 1
    if len(y.indptr) - 1 != n_rows:
        raise ValueError(f"x has {n_rows} rows but y has {len(y.indptr) - 1}")
    feat_rows, feat_ids, feat_vals = pack_features(x.indptr, x.indices, x.data, n_rows_padded, cap_x)
    label_rows, label_ids, _, counts = _flat_rows(y.indptr, y.indices, None, cap_y)
    n_pairs = int(counts.sum())
    weights = np.zeros(cap_y, dtype=np.float32)
    # target y/|y|: every label of a row gets 1/|y_row| (label values are ignored, as in SLIDE)
    weights[:n_pairs] = (1.0 / np.maximum(counts, 1)).astype(np.float32)[label_rows[:n_pairs]]
    row_mask = np.zeros(n_rows_padded, dtype=np.float32)
    row_mask[:n_rows] = counts > 0
    return PackedBatch(feat_rows, feat_ids, feat_vals, label_rows, label_ids, weights, row_mask, n_rows)


def batch_sizes(x, y) -> tuple[int, int]:
    """(input nonzeros, label pairs) of a batch: what the capacities must hold."""
    return int(x.indptr[-1] - x.indptr[0]), int(y.indptr[-1] - y.indptr[0])
