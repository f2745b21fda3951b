"""Why do the tables find (or miss) the large logits of a trained output layer? The anatomy of
the exact top-k on held-out rows, printed by `benchmarks.active_set --anatomy`.

For each query h (a held-out row's hidden activations) and the output layer's rows w_j, b_j:

    cos_all / cos_top      mean cos(h, w_j) over every row / over the exact top-100 by logit:
                           what an angle hash (SimHash) sees
    top_by_angle@100/1000  share of the exact top-100 by logit that are among the top-100 /
                           top-1,000 rows by cos(h, w_j): the best ANY angle hash can return
    ... _centered          the same for the rows minus their mean (w_j - mean_j w_j): the ranking
                           by w_j.h is unchanged by subtracting a common vector, the angles are not
    norm_top / norm_all    median ||w_j|| of the top-100 and of every row: is a top logit a
                           large-norm row at a moderate angle?
    bias_share_top         median |b_j| / (|w_j.h| + |b_j|) over the top-100: how much of a top
                           logit the bias is (SimHash hashes w_j only)
    p_table_top(K)         SimHash's collision probability per table, (1 - theta/pi)^K, at the
                           top-100's median angle, raw and centered, and over L tables

Numbers, not conclusions: docs/retrieval.md says what they showed on which data.
"""
from __future__ import annotations

import numpy as np

from slide_core.inference import _fill_input, _hidden
from slide_core.workspace import make_workspace


def hidden_rows(net, x) -> np.ndarray:
    """The output layer's input (last hidden activations) for CSR rows x, float32 (rows, d)."""
    rows = x.n_rows
    ws = make_workspace(net.config.layers, rows, 0, net.n_chunks, net.hfs)
    x_ptr = np.asarray(x.indptr, dtype=np.int64) - int(x.indptr[0])
    _fill_input(ws, x_ptr, 0, rows)
    return np.ascontiguousarray(_hidden(net, ws, np.ascontiguousarray(x.indices, np.int32),
                                        np.ascontiguousarray(x.data, np.float32), rows))


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-30)


def anatomy(H: np.ndarray, W: np.ndarray, b: np.ndarray, K: int, L: int, top: int = 100) -> dict[str, float]:
    """The statistics of the module docstring for queries H (rows, d) against rows W (n, d)."""
    H = H.astype(np.float64)
    W = W.astype(np.float64)
    b = b.astype(np.float64)
    Z = H @ W.T + b
    wb = H @ W.T
    Hu = _unit(H)
    out: dict[str, list[float]] = {}

    def add(key, value):
        out.setdefault(key, []).append(float(value))

    mu = W.mean(axis=0)
    for name, rows in (("", W), ("_centered", W - mu)):
        C = Hu @ _unit(rows).T  # (queries, n) cosines
        for r in range(H.shape[0]):
            if not H[r].any():
                continue
            t = np.argpartition(-Z[r], top)[:top]
            rank = np.argsort(-C[r])
            pos = np.empty(len(rank), dtype=np.int64)
            pos[rank] = np.arange(len(rank))
            add(f"cos_all{name}", C[r].mean())
            add(f"cos_top{name}", np.median(C[r, t]))
            add(f"top_by_angle@100{name}", np.mean(pos[t] < 100))
            add(f"top_by_angle@1000{name}", np.mean(pos[t] < 1000))
            theta = np.arccos(np.clip(np.median(C[r, t]), -1, 1))
            p = (1 - theta / np.pi) ** K
            add(f"p_table_top{name}", p)
            add(f"p_union_top{name}", 1 - (1 - p) ** L)
            if name == "":
                norms = np.linalg.norm(W, axis=1)
                add("norm_top", np.median(norms[t]))
                add("norm_all", np.median(norms))
                add("bias_share_top", np.median(np.abs(b[t]) / (np.abs(wb[r, t]) + np.abs(b[t]) + 1e-30)))
    return {k: float(np.mean(v)) for k, v in out.items()}


def format_anatomy(stats: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in stats.items())
