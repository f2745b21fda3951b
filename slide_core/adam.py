"""Adam after each batch, in two named modes (DESIGN.md):

- "lazy": only the W rows / biases the batch touched (row_stamp == batch id) are updated;
  untouched rows keep their weights AND their moments (TF LazyAdam semantics). This is the
  sub-linear mode: the work is proportional to the active rows, not to the layer.
- "dense": every row every batch (the reference C++ does this); rows the batch did not touch
  get g = 0, so their moments decay and their weights keep moving.

Both use the global step t for bias correction, in the Keras form
lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t),  W -= lr_t * m / (sqrt(v) + eps),
which is also the reference code's update. The gradient rows read are zeroed (consumed).
"""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from slide_core.twin import twin


def adam_lr(lr: float, beta1: float, beta2: float, t: int) -> float:
    """Bias-corrected step size for step t >= 1."""
    return lr * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)


def _adam_impl(W, m, v, g, stamp, batch_id, lazy, lr_t, b1, b2, eps, n_chunks):
    """Adam (Keras form) on rows of W: lazy -> only rows with stamp == batch_id; dense ->
    every row. Consumes the gradient (zeroes the rows it read)."""
    n_rows = W.shape[0]
    n_cols = W.shape[1]
    one_b1 = np.float32(1.0 - b1)
    one_b2 = np.float32(1.0 - b2)
    b1f = np.float32(b1)
    b2f = np.float32(b2)
    lr_f = np.float32(lr_t)
    eps_f = np.float32(eps)
    for c in prange(n_chunks):
        for r in range(c * n_rows // n_chunks, (c + 1) * n_rows // n_chunks):
            touched = stamp[r] == batch_id
            if lazy and not touched:
                continue
            for k in range(n_cols):
                gk = g[r, k]
                mk = b1f * m[r, k] + one_b1 * gk
                vk = b2f * v[r, k] + one_b2 * gk * gk
                m[r, k] = mk
                v[r, k] = vk
                W[r, k] -= lr_f * mk / (np.sqrt(vk) + eps_f)
            if touched:
                for k in range(n_cols):
                    g[r, k] = 0.0



adam_serial, adam_parallel = twin(_adam_impl)


def adam_update(kernel, p, batch_id: int, lazy: bool, lr: float, beta1: float, beta2: float,
                eps: float, n_chunks: int) -> None:
    """Adam on one LayerParams (W rows and biases) with the compiled `kernel` variant."""
    lr_t = adam_lr(lr, beta1, beta2, batch_id)
    kernel(p.W, p.mW, p.vW, p.gW, p.row_stamp, batch_id, lazy, lr_t, beta1, beta2, eps, n_chunks)
    kernel(p.b.reshape(-1, 1), p.mb.reshape(-1, 1), p.vb.reshape(-1, 1), p.gb.reshape(-1, 1),
           p.bias_stamp, batch_id, lazy, lr_t, beta1, beta2, eps, max(1, min(n_chunks, p.b.shape[0])))
