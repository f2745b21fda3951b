"""Retrieval quality: does the output layer's strategy choose the neurons with large logits?

For rows of held-out data (the harness passes its evaluation subset, outside the training
clock) this compares what the strategy chooses (the tables' retrieval, or the oracle; no
labels forced, no random sampling: exactly the "chosen" part of a training active set)
with the exact logits computed densely:

    retrieved_mean      neurons chosen per row
    topk_recall_at_k    share of the exact top-k neurons by logit that were chosen
    lift_at_k           topk_recall_at_k / (retrieved_mean / width): how many times better
                        than a uniformly random set of the same size (1 = no better)
    label_recall        share of the rows' true labels that were chosen
    softmax_mass        probability of the full softmax held by the chosen neurons (the part
                        of the gradient the active set gets exactly; a random set of the same
                        size holds retrieved_mean / width on average)

A strategy without tables still gets numbers: `random` chooses nothing (the whole budget is
sampled), `oracle` reaches recall 1 for k <= its limit.
"""
from __future__ import annotations

import numpy as np

from slide_core.inference import _fill_input, _hidden, dense_topk
from slide_core.rng import PREDICT_STREAM
from slide_core.workspace import make_workspace

RECALL_KS = (10, 100)
MASS_ROWS = 64  # rows of full logits (rows x width float32) computed at once for the softmax mass


def _softmax_mass(H: np.ndarray, W: np.ndarray, b: np.ndarray, ids, cnt) -> np.ndarray:
    """Per row, the full softmax probability of neurons ids[r, :cnt[r]] (float64 sums)."""
    out = np.empty(H.shape[0])
    for r0 in range(0, H.shape[0], MASS_ROWS):
        Z = H[r0:r0 + MASS_ROWS] @ W.T
        Z += b
        zmax = Z.max(axis=1, keepdims=True)
        np.subtract(Z, zmax, out=Z)
        np.exp(Z, out=Z)
        total = Z.sum(axis=1, dtype=np.float64)
        for j in range(Z.shape[0]):
            r = r0 + j
            out[r] = Z[j, ids[r, :cnt[r]]].sum(dtype=np.float64) / total[j]
    return out


def retrieval_quality(net, x_ptr, x_ids, x_vals, y_ptr=None, y_ids=None, ks=RECALL_KS) -> dict[str, float]:
    """Retrieval metrics of the output layer of SlideNetwork `net` on CSR rows x (and labels
    y, optional), as defined in the module docstring. Empty dict for a dense output layer."""
    layers = net.config.layers
    last = len(layers) - 1
    cfg = layers[last]
    rows = len(x_ptr) - 1
    if cfg.dense or rows == 0:
        return {}
    width = cfg.width
    ks = tuple(k for k in ks if k <= width)
    ws = make_workspace(layers, rows, 0, net.n_chunks, net.hfs)
    _fill_input(ws, x_ptr, 0, rows)
    H = np.ascontiguousarray(_hidden(net, ws, x_ids, x_vals, rows))
    inp = ws.layers[last - 1].as_input(rows, True)
    no_labels = np.zeros(rows + 1, dtype=np.int64)
    net._select(net.kernels, last, ws, inp, rows, False, no_labels, np.zeros(0, np.int32), PREDICT_STREAM, False,
                sample=False)
    lw = ws.layers[last]
    ids, cnt = lw.ids[:rows], lw.cnt[:rows]
    p = net.params[last]
    retrieved_mean = float(cnt.mean())
    out = {"retrieved_mean": retrieved_mean}
    if ks:
        top = dense_topk(H, p.W, p.b, max(ks), threads=net.threads)
        hits = np.zeros((rows, top.shape[1]), dtype=bool)
        for r in range(rows):
            hits[r] = np.isin(top[r], ids[r, :cnt[r]])
        random_recall = retrieved_mean / width
        for k in ks:
            recall = float(hits[:, :k].mean())
            out[f"topk_recall_at_{k}"] = recall
            if random_recall > 0:  # nothing chosen (the random control): no lift to speak of
                out[f"lift_at_{k}"] = recall / random_recall
    if y_ptr is not None:
        found = total = 0
        for r in range(rows):
            labels = y_ids[y_ptr[r]:y_ptr[r + 1]]
            found += int(np.isin(labels, ids[r, :cnt[r]]).sum())
            total += len(labels)
        if total:
            out["label_recall"] = found / total
    out["softmax_mass"] = float(_softmax_mass(H, p.W, p.b, ids, cnt).mean())
    return out
