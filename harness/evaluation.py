"""Precision@k on a fixed, seeded evaluation subset (every eval_every steps) and on the full
test set (at the end), the same rows for every model.

Predictions are requested in chunks of rows so that memory stays bounded whatever the number
of labels (670k labels x 150k test points would be 400 GB of scores at once); the model's
predict_topk never sorts all labels (argpartition or a Numba kernel inside the model).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from harness.data.csr import CSR

TOP_K = (1, 3, 5)


def hits_at_k(topk: np.ndarray, labels: CSR) -> np.ndarray:
    """bool (n, k): whether topk[i, j] is a true label of row i. Vectorised: (row, label)
    pairs are encoded as one int64 key and looked up with np.isin."""
    n, k = topk.shape
    if labels.n_rows != n:
        raise ValueError(f"{n} prediction rows for {labels.n_rows} label rows")
    rows = np.repeat(np.arange(n, dtype=np.int64), labels.row_counts())
    true_keys = rows * labels.n_cols + labels.indices[labels.indptr[0]:labels.indptr[-1]]
    pred_keys = np.arange(n, dtype=np.int64)[:, None] * labels.n_cols + topk.astype(np.int64)
    # -1 = "no prediction" (LSH inference with fewer than k active neurons): its key would be
    # the previous row's last label, so it must never count as a hit
    return np.isin(pred_keys, true_keys) & (topk >= 0)


def precision_at_k(topk: np.ndarray, labels: CSR, ks=TOP_K) -> dict[int, float]:
    """P@k = mean over rows of |top-k predictions ∩ true labels| / k. Rows without labels count
    as 0, the Extreme Classification Repository's convention."""
    hits = hits_at_k(topk, labels)
    return {k: float(hits[:, :k].sum(axis=1).mean() / k) if len(hits) else 0.0 for k in ks}


class Evaluator:
    """Holds the test split and the fixed subset; evaluates any predict_topk function."""

    def __init__(self, features: CSR, labels: CSR, subset: np.ndarray, chunk_rows: int = 1024):
        self.features = features
        self.labels = labels
        self.subset_features = features.take_rows(subset)
        self.subset_labels = labels.take_rows(subset)
        self.chunk_rows = chunk_rows

    def _evaluate(self, predict_topk: Callable[[CSR, int], np.ndarray], x: CSR, y: CSR) -> dict[str, float]:
        k = max(TOP_K)
        hit_sums = np.zeros(k, dtype=np.float64)  # hits at each rank, summed over rows
        for start in range(0, x.n_rows, self.chunk_rows):
            stop = min(start + self.chunk_rows, x.n_rows)
            topk = np.asarray(predict_topk(x.row_slice(start, stop), k))
            if topk.shape != (stop - start, k):
                raise ValueError(f"predict_topk returned shape {topk.shape}, expected {(stop - start, k)}")
            hit_sums += hits_at_k(topk, y.row_slice(start, stop)).sum(axis=0)
        n = max(x.n_rows, 1)
        cumulative = np.cumsum(hit_sums)
        return {f"p_at_{k}": float(cumulative[k - 1] / (n * k)) for k in TOP_K}

    def evaluate_subset(self, predict_topk) -> dict[str, float]:
        return self._evaluate(predict_topk, self.subset_features, self.subset_labels)

    def evaluate_full(self, predict_topk) -> dict[str, float]:
        return self._evaluate(predict_topk, self.features, self.labels)
