"""Slow, obviously-correct numpy references for the SLIDE engine's kernels.

Everything here works on dense arrays in float64 (or the dtype given), in the Keras layout
W (n_in, n_out), and loops over samples where that makes the code easier to read.
The kernels in slide_core are checked against these with assert_allclose, and these are
checked against finite differences.
"""
from __future__ import annotations

import numpy as np


def forward(layers, X, actives=None, offsets=None):
    """Activations of every layer. layers: [(W (n_in, n_out), b)], X dense (n, n_features).

    actives: optional list (one per layer) of per-sample active-id arrays or None (dense);
    inactive neurons output 0 (they do not exist for that sample). Hidden layers are ReLU,
    the last layer returns logits (inactive logits are -inf).
    offsets: optional (n, n_out) constants added to the logits (the sampled-softmax log-Q
    correction of sampled neurons); they change the softmax, not the form of its gradient.
    Returns [a_0 = X, a_1, ..., logits].
    """
    acts = [X]
    a = X
    for li, (W, b) in enumerate(layers):
        z = a @ W + b
        last = li == len(layers) - 1
        if last and offsets is not None:
            z = z + offsets
        if actives is not None and actives[li] is not None:
            mask = np.zeros_like(z, dtype=bool)
            for s, ids in enumerate(actives[li]):
                mask[s, ids] = True
            z = np.where(mask, z, -np.inf if last else 0.0)
        a = z if last else np.maximum(z, 0.0)
        acts.append(a)
    return acts


def softmax_loss_grad(logits, Y):
    """Per-sample loss and dL/dlogits for softmax cross-entropy with target y/|y|.

    logits (n, m) with -inf for inactive neurons; Y dense 0/1 (n, m). A row without labels
    has loss 0 and gradient 0. The gradient is NOT divided by the batch size here.
    """
    n = logits.shape[0]
    loss = np.zeros(n)
    grad = np.zeros_like(logits)
    for s in range(n):
        y = Y[s]
        n_lab = y.sum()
        if n_lab == 0:
            continue
        z = logits[s]
        finite = np.isfinite(z)
        zmax = z[finite].max()
        e = np.where(finite, np.exp(np.where(finite, z - zmax, 0.0)), 0.0)
        p = e / e.sum()
        t = y / n_lab
        loss[s] = -(t[finite] * np.log(p[finite])).sum()
        grad[s] = np.where(finite, p - t, 0.0)
    return loss, grad


def batch_loss(layers, X, Y, actives=None, offsets=None):
    """Mean loss over the batch (rows without labels count as 0)."""
    acts = forward(layers, X, actives, offsets)
    loss, _ = softmax_loss_grad(acts[-1], Y)
    return loss.mean()


def backward(layers, X, Y, actives=None, offsets=None):
    """(mean loss, [(dW, db)]) of the batch-mean loss."""
    acts = forward(layers, X, actives, offsets)
    loss, g = softmax_loss_grad(acts[-1], Y)
    g = g / X.shape[0]
    grads = [None] * len(layers)
    for li in range(len(layers) - 1, -1, -1):
        W, _ = layers[li]
        a_in = acts[li]
        grads[li] = (a_in.T @ g, g.sum(axis=0))
        if li > 0:
            g = (g @ W.T) * (acts[li] > 0)
    return loss.mean(), grads


def adam_dense(W, m, v, g, t, lr, b1, b2, eps):
    """Adam on every entry (Keras form: lr_t = lr sqrt(1-b2^t)/(1-b1^t), eps outside sqrt).
    Returns new (W, m, v)."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
    return W - lr_t * m / (np.sqrt(v) + eps), m, v


def adam_lazy(W, m, v, g, touched_rows, t, lr, b1, b2, eps):
    """Adam only on rows `touched_rows` (axis 0), with the global step t's bias correction."""
    W, m, v = W.copy(), m.copy(), v.copy()
    rows = np.asarray(touched_rows, dtype=np.int64)
    W[rows], m[rows], v[rows] = adam_dense(W[rows], m[rows], v[rows], g[rows], t, lr, b1, b2, eps)
    return W, m, v


def sparse_forward_row(W_neuron_major, b, ids, x_ids, x_vals):
    """z[a] = b[a] + sum_j W[a, j] x_j for a in ids (sparse input, neuron-major weights)."""
    z = b[ids].astype(np.float64).copy()
    for i, a in enumerate(ids):
        z[i] += float(np.dot(W_neuron_major[a, x_ids].astype(np.float64), x_vals))
    return z


def topk_dense(scores, k):
    """Indices of the k largest scores per row, best first (ties: lower index first)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k]
