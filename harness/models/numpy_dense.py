"""numpy_dense: the dense reference model of the harness, in plain numpy/scipy.

Same network shape, initial weights, loss (softmax cross-entropy with target y/|y|) and Adam
as every other model, computed densely over all labels: the cheapest honest baseline, and a
check of the harness path (data -> loop -> evaluation -> tracking) without TF. Training is
plain numpy/scipy; ranking for evaluation uses slide_core's dense_topk, as every model does.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

import contract
from harness.data.csr import CSR
from harness.models.base import ModelContext
from harness.models.init import initial_weights


def _as_scipy(x: CSR) -> sp.csr_matrix:
    base = x.indptr[0]
    return sp.csr_matrix((x.data, x.indices, x.indptr - base), shape=x.shape)


def softmax_targets(y: CSR, n_rows: int) -> sp.csr_matrix:
    """Sparse target matrix with y/|y| per row (rows without labels are all zero)."""
    counts = y.row_counts()
    weights = np.repeat(1.0 / np.maximum(counts, 1), counts).astype(np.float32)
    base = y.indptr[0]
    return sp.csr_matrix((weights, y.indices, y.indptr - base), shape=(n_rows, y.n_cols))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _copy_into(target: np.ndarray, value: np.ndarray, name: str) -> None:
    """Restore an array in place (ValueError, not numpy's broadcasting, on another shape)."""
    if value.shape != target.shape:
        raise ValueError(f"{name}: shape {value.shape}, the model's is {target.shape}")
    target[...] = value


class Adam:
    """Adam over a list of arrays: every weight every step ("dense"), or ("lazy", as SLIDE's)
    only the weight slices the step touched: for a matrix W (n_in, n_out) the input rows
    (the batch's features) whose gradient row is non-zero, or, for the output layer
    (neuron_columns), the neurons whose gradient column is non-zero (with a full softmax:
    all of them); for a bias, the entries with a non-zero gradient. Untouched slices keep
    their weights and moments. Bias correction uses the global step in both modes."""

    def __init__(self, params: list[np.ndarray], ctx: ModelContext, neuron_columns: set[int] = frozenset()):
        self.params = params
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.lr, self.b1, self.b2, self.eps = ctx.lr, ctx.beta1, ctx.beta2, ctx.eps
        self.lazy = ctx.adam == "lazy"
        self.neuron_columns = neuron_columns  # indices of params whose neurons are columns
        self.t = 0

    def _touched(self, i: int, g: np.ndarray):
        """Index of the slices of param i the gradient touched (lazy mode); None when it
        touched all of them (a full softmax touches every output neuron): the in-place dense
        update then computes the same numbers without fancy-indexing copies of the matrix."""
        if g.ndim == 1:
            idx = np.flatnonzero(g)
            return None if len(idx) == g.shape[0] else idx
        if i in self.neuron_columns:
            cols = np.flatnonzero(np.any(g != 0, axis=0))
            return None if len(cols) == g.shape[1] else (slice(None), cols)
        rows = np.flatnonzero(np.any(g != 0, axis=1))
        return None if len(rows) == g.shape[0] else rows

    def state_dict(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}m{i}": m for i, m in enumerate(self.m)}
        out.update({f"{prefix}v{i}": v for i, v in enumerate(self.v)})
        out[f"{prefix}t"] = np.asarray(self.t, dtype=np.int64)
        return out

    def load_state_dict(self, arrays, prefix: str) -> None:
        for i in range(len(self.params)):
            _copy_into(self.m[i], arrays[f"{prefix}m{i}"], f"{prefix}m{i}")
            _copy_into(self.v[i], arrays[f"{prefix}v{i}"], f"{prefix}v{i}")
        self.t = int(arrays[f"{prefix}t"])

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        # bias correction folded into the step size, as in the Adam paper's efficient form
        step = self.lr * np.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        for i, (p, g, m, v) in enumerate(zip(self.params, grads, self.m, self.v)):
            idx = self._touched(i, g) if self.lazy else None
            if idx is not None:
                g = g[idx]
                m_t = self.b1 * m[idx] + (1 - self.b1) * g
                v_t = self.b2 * v[idx] + (1 - self.b2) * g * g
                m[idx], v[idx] = m_t, v_t
                p[idx] -= (step * m_t / (np.sqrt(v_t) + self.eps)).astype(p.dtype)
                continue
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= (step * m / (np.sqrt(v) + self.eps)).astype(p.dtype)


class NumpyDenseModel:
    def __init__(self, ctx: ModelContext):
        self.ctx = ctx
        layers = initial_weights(ctx)
        self.weights = [w for w, _ in layers]
        self.biases = [b for _, b in layers]
        # weights[1:] hold neurons as columns (Keras layout): the output layer's lazy slices
        self.adam = Adam(self.weights + self.biases, ctx, neuron_columns=set(range(1, len(self.weights))))
        self._threads = threadpool_limits(limits=ctx.threads)  # BLAS threads = train.threads

    # -- the maths ------------------------------------------------------------------------
    def _forward(self, x: CSR) -> list[np.ndarray]:
        """Activations of every layer; the last entry is the logits."""
        acts = []
        h = _as_scipy(x) @ self.weights[0] + self.biases[0]
        for w, b in zip(self.weights[1:], self.biases[1:]):
            h = np.maximum(h, 0)
            acts.append(h)
            h = h @ w + b
        acts.append(h)
        return acts

    def loss_and_grads(self, x: CSR, y: CSR) -> tuple[float, list[np.ndarray]]:
        acts = self._forward(x)
        logp = log_softmax(acts[-1])
        target = softmax_targets(y, x.n_rows)
        has_labels = (y.row_counts() > 0).astype(np.float32)[:, None]
        n = x.n_rows
        loss = float(-(target.multiply(logp)).sum() / n)
        delta = (np.exp(logp) * has_labels - target.toarray()) / n  # (p - y/|y|) / batch
        grads_w, grads_b = [None] * len(self.weights), [None] * len(self.biases)
        for i in range(len(self.weights) - 1, 0, -1):
            grads_w[i] = acts[i - 1].T @ delta
            grads_b[i] = delta.sum(axis=0)
            delta = (delta @ self.weights[i].T) * (acts[i - 1] > 0)
        grads_w[0] = np.asarray(_as_scipy(x).T @ delta)
        grads_b[0] = delta.sum(axis=0)
        return loss, grads_w + grads_b

    # -- the Model protocol -----------------------------------------------------------------
    def warmup(self, x: CSR, y: CSR) -> None:
        """Nothing is compiled in numpy."""

    def train_step(self, x: CSR, y: CSR) -> float:
        loss, grads = self.loss_and_grads(x, y)
        self.adam.step(grads)
        return loss

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {f"w{i}": w for i, w in enumerate(self.weights)}
        out.update({f"b{i}": b for i, b in enumerate(self.biases)})
        out.update(self.adam.state_dict("adam/"))
        return out

    def load_state_dict(self, arrays) -> None:
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            _copy_into(w, arrays[f"w{i}"], f"w{i}")
            _copy_into(b, arrays[f"b{i}"], f"b{i}")
        self.adam.load_state_dict(arrays, "adam/")
        self._topk_weights = None

    def predict_topk(self, x: CSR, k: int) -> np.ndarray:
        """Hidden layers in numpy, labels ranked by slide_core's dense_topk (the ranking code
        and tie-breaking, lower label id first, of every model). The output weights in
        dense_topk's (n_labels, d) layout are copied once per optimiser step, not per chunk."""
        from slide_core.inference import dense_topk

        h = _as_scipy(x) @ self.weights[0] + self.biases[0]
        for w, b in zip(self.weights[1:-1], self.biases[1:-1]):
            h = np.maximum(h, 0) @ w + b
        h = np.maximum(h, 0).astype(np.float32, copy=False)
        cached = getattr(self, "_topk_weights", None)
        if cached is None or cached[0] != self.adam.t:
            cached = self._topk_weights = (self.adam.t, np.ascontiguousarray(self.weights[-1].T))
        return dense_topk(h, cached[1], self.biases[-1], int(k), threads=self.ctx.threads)

    def diagnostics(self) -> dict[str, float]:
        return {}

    def describe(self) -> dict[str, str]:
        from threadpoolctl import threadpool_info

        blas = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
        return {contract.OPTIMIZER: f"adam_{self.ctx.adam}", "backend": "numpy+scipy",
                "threads": str(max(blas) if blas else self.ctx.threads)}

    def close(self) -> None:
        self._threads.restore_original_limits()
