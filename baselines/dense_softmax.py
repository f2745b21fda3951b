"""Sparse input -> ReLU hidden layer(s) -> full softmax over all labels, trained with Adam in TF.

The same network, loss and optimiser as SLIDE (docs/design.md, fair-comparison contract):
    h1 = relu(x W1 + b1)       first layer as an embedding bag: gather rows of W1 for the
                               nonzeros of x, scale by their values, sum per row
                               (unsorted_segment_sum); XLA cannot compile
                               SparseTensorDenseMatMul, it can compile this (docs/pitfalls.md, TensorFlow)
    logits = h W_out + b_out   over every label
    loss_r = logsumexp(logits_r) - sum_{l in y_r} logits_r[l] / |y_r|
           = cross-entropy of softmax(logits_r) against the target y_r/|y_r|
             (0 for a row without labels; the batch loss is the mean over all real rows)
Adam is TF's fused dense kernel (ResourceApplyAdam, the update of tf.compat.v1 AdamOptimizer
and of the reference SLIDE code):
    m += (g - m)(1 - beta1);  v += (g^2 - v)(1 - beta2)
    w -= lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)
Every weight is updated every step ("dense" Adam), as a standard TF baseline does.

The hyper-parameters go into the compiled step as tensors, so warm-up can run the very same
executable as a no-op step (lr 0, beta1 = beta2 = 1 leave w, m, v bit-identical) and training
never compiles anything.
"""
from __future__ import annotations

import logging
from typing import NamedTuple, Sequence

import numpy as np

from baselines.padding import PackedBatch, batch_sizes, next_capacity, pack_batch, pack_features

log = logging.getLogger(__name__)

EVAL_LOGITS_BYTES = 256 * 1024 * 1024  # logits of one prediction chunk (bigger chunks: fewer W reads)
HIDDEN_CHUNK = 2048  # rows per predict_hidden call: (2048, 128) activations, input padded to it


class AdamConfig(NamedTuple):
    lr: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


def default_eval_chunk(n_labels: int) -> int:
    """Rows per prediction chunk: logits of ~EVAL_LOGITS_BYTES, between 16 and 2048 rows."""
    return int(min(2048, max(16, EVAL_LOGITS_BYTES // (4 * n_labels))))


def _check_ids(m, n: int, what: str) -> None:
    ids = m.indices[int(m.indptr[0]):int(m.indptr[-1])]
    if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= n):
        raise ValueError(f"{what} ids must be in [0, {n}), got [{int(ids.min())}, {int(ids.max())}]")


class DenseSoftmaxNet:
    """The TF network and its optimiser state. Batches are CSR-like (indptr, indices, data)."""

    #: weights[-1] is stored as given (n_in, n_out); the sampled subclass stores it transposed
    transpose_output = False

    def __init__(self, weights: Sequence[tuple[np.ndarray, np.ndarray]], adam: AdamConfig,
                 batch_size: int, jit_compile: bool = False, device: str = "/CPU:0",
                 eval_chunk: int | None = None):
        import tensorflow as tf

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(weights) < 2:
            raise ValueError(f"need at least one hidden layer and the output layer, got {len(weights)} layers")
        self._tf = tf
        self.adam = adam
        self.batch_size = int(batch_size)
        self.jit_compile = bool(jit_compile)
        self.device = device
        self.n_labels = int(weights[-1][0].shape[1])
        self.n_features = int(weights[0][0].shape[0])
        self.eval_chunk = int(eval_chunk or default_eval_chunk(self.n_labels))
        self.step = 0  # Adam's t: finished optimiser steps
        self.cap_x = self.cap_y = 0  # padded capacities: only grow (each growth = one new shape)
        self.shapes_seen: set[tuple[int, int]] = set()
        with tf.device(device):
            self.variables = []
            for i, (w, b) in enumerate(weights):
                if w.ndim != 2 or b.shape != (w.shape[1],):
                    raise ValueError(f"layer {i}: W {w.shape} and b {b.shape} do not match")
                if self.transpose_output and i == len(weights) - 1:
                    w = w.T
                self.variables.append(tf.Variable(np.ascontiguousarray(w, dtype=np.float32), name=f"w{i}"))
                self.variables.append(tf.Variable(np.asarray(b, dtype=np.float32), name=f"b{i}"))
            self.moments = [(tf.Variable(tf.zeros_like(v), name=f"m_{v.name[:-2]}"),
                             tf.Variable(tf.zeros_like(v), name=f"v_{v.name[:-2]}"))
                            for v in self.variables]
        scalar = tf.TensorSpec([], tf.float32)
        vec_i, vec_f = tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32)
        batch_spec = (vec_i, vec_i, vec_f, vec_i, vec_i, vec_f, tf.TensorSpec([self.batch_size], tf.float32), scalar)
        hyper_spec = (scalar,) * 5
        # None dims + padded inputs: one trace for the whole run (checked by tests/diagnostics)
        self._train_fn = tf.function(self._train_graph, jit_compile=self.jit_compile, reduce_retracing=True,
                                     input_signature=batch_spec + self._extra_spec() + hyper_spec)
        self._grad_fn = tf.function(self._loss_and_grads_graph,
                                    input_signature=batch_spec + self._extra_spec())
        self._predict_fns: dict[int, object] = {}
        self._hidden_fn = None

    # --- graph pieces (traced inside tf.function) ---------------------------------------
    def _hidden(self, feat_rows, feat_ids, feat_vals, n_rows: int):
        return self._hidden_from(self._tf.gather(self.variables[0], feat_ids), feat_rows, feat_vals, n_rows)

    def _hidden_from(self, w1_rows, feat_rows, feat_vals, n_rows: int):
        """The hidden layers from w1_rows = the first layer's weight row of every input nonzero."""
        tf = self._tf
        bag = w1_rows * feat_vals[:, None]
        h = tf.nn.relu(tf.math.unsorted_segment_sum(bag, feat_rows, n_rows) + self.variables[1])
        for i in range(2, len(self.variables) - 2, 2):
            h = tf.nn.relu(tf.matmul(h, self.variables[i]) + self.variables[i + 1])
        return h

    def _output_logits(self, h):
        tf = self._tf
        w, b = self.variables[-2], self.variables[-1]
        return tf.matmul(h, w, transpose_b=self.transpose_output) + b

    def _extra_spec(self) -> tuple:
        return ()

    def _loss(self, feat_rows, feat_ids, feat_vals, label_rows, label_ids, label_weights, row_mask,
              n_rows, *extra):
        tf = self._tf
        logits = self._output_logits(self._hidden(feat_rows, feat_ids, feat_vals, self.batch_size))
        lse = tf.reduce_logsumexp(logits, axis=1)
        picked = tf.gather_nd(logits, tf.stack([label_rows, label_ids], axis=1))
        target_term = tf.math.unsorted_segment_sum(picked * label_weights, label_rows, self.batch_size)
        return tf.reduce_sum(row_mask * lse - target_term) / n_rows

    def _loss_and_grads_graph(self, *inputs):
        tf = self._tf
        with tf.GradientTape() as tape:
            loss = self._loss(*inputs)
        grads = tape.gradient(loss, self.variables)
        return loss, [tf.convert_to_tensor(g) for g in grads]

    def _train_graph(self, *inputs):
        tf = self._tf
        batch, (lr, beta1, beta2, beta1_power, beta2_power) = inputs[:-5], inputs[-5:]
        loss, grads = self._loss_and_grads_graph(*batch)
        eps = tf.constant(self.adam.eps, tf.float32)
        updates = []
        for var, (m, v), g in zip(self.variables, self.moments, grads):
            updates.append(tf.raw_ops.ResourceApplyAdam(
                var=var.handle, m=m.handle, v=v.handle, beta1_power=beta1_power, beta2_power=beta2_power,
                lr=lr, beta1=beta1, beta2=beta2, epsilon=eps, grad=g))
        with tf.control_dependencies(updates):  # the returned loss means "the step is done"
            return tf.identity(loss)

    # --- host side -------------------------------------------------------------------------
    def pack(self, x, y) -> PackedBatch:
        nnz, pairs = batch_sizes(x, y)
        n_rows = len(x.indptr) - 1
        if n_rows > self.batch_size:
            raise ValueError(f"batch of {n_rows} rows exceeds batch_size {self.batch_size}")
        # out-of-range ids must fail loudly: XLA's gather clamps them silently
        _check_ids(x, self.n_features, "feature")
        _check_ids(y, self.n_labels, "label")
        self.cap_x, self.cap_y = next_capacity(nnz, self.cap_x), next_capacity(pairs, self.cap_y)
        self.shapes_seen.add((self.cap_x, self.cap_y))
        return pack_batch(x, y, self.batch_size, self.cap_x, self.cap_y)

    def reserve(self, x, y, headroom: float = 1.5) -> None:
        """Grow the capacities to fit batches like this one with headroom, so that later batches
        reuse the warm-up's shapes (an XLA executable is compiled per input shape)."""
        nnz, pairs = batch_sizes(x, y)
        scale = self.batch_size / max(1, len(x.indptr) - 1) * headroom
        self.cap_x = next_capacity(int(nnz * scale), self.cap_x)
        self.cap_y = next_capacity(int(pairs * scale), self.cap_y)

    def _batch_tensors(self, packed: PackedBatch) -> tuple:
        return (*packed[:7], np.float32(packed.n_rows))

    def _extra_inputs(self, packed: PackedBatch, for_warmup: bool) -> tuple:
        return ()

    def _adam_inputs(self, t: int, noop: bool) -> tuple:
        a = self.adam
        powers = (np.float32(a.beta1 ** t), np.float32(a.beta2 ** t))
        if noop:  # lr 0 and betas 1: w -= 0, m += 0 (g - m), v += 0 (g^2 - v): nothing changes
            return (np.float32(0.0), np.float32(1.0), np.float32(1.0), *powers)
        return (np.float32(a.lr), np.float32(a.beta1), np.float32(a.beta2), *powers)

    def train_step(self, x, y) -> float:
        packed = self.pack(x, y)
        if packed.n_rows == 0:
            raise ValueError("empty batch")
        extra = self._extra_inputs(packed, for_warmup=False)
        with self._tf.device(self.device):
            loss = self._train_fn(*self._batch_tensors(packed), *extra,
                                  *self._adam_inputs(self.step + 1, False))
        self.step += 1
        return float(loss)  # reading the value waits for the step (control dependency above)

    def warmup(self, x, y, k: int | None = 5) -> None:
        """Trace + compile the train step on this batch, and TF's own top-k prediction unless k is
        None (the harness ranks with slide_core's dense_topk and never runs it), changing no state."""
        self.reserve(x, y)
        packed = self.pack(x, y)
        extra = self._extra_inputs(packed, for_warmup=True)
        with self._tf.device(self.device):
            self._train_fn(*self._batch_tensors(packed), *extra, *self._adam_inputs(self.step + 1, True)).numpy()
        if k is not None:
            self.predict_topk(x, k)

    def loss_and_gradients(self, x, y) -> tuple[float, list[np.ndarray]]:
        """Loss and dense gradients (in variable order: w0, b0, w1, b1, ...) without a step."""
        packed = self.pack(x, y)
        loss, grads = self._grad_fn(*self._batch_tensors(packed), *self._extra_inputs(packed, True))
        return float(loss), [g.numpy() for g in grads]

    def _predict_fn(self, k: int):
        tf = self._tf
        if k not in self._predict_fns:
            def topk(feat_rows, feat_ids, feat_vals):
                logits = self._output_logits(self._hidden(feat_rows, feat_ids, feat_vals, self.eval_chunk))
                return tf.math.top_k(logits, k=k, sorted=True).indices
            vec_i, vec_f = tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32)
            # no XLA here: XLA's CPU top-k sorts whole rows; TF's kernel keeps a k-heap
            self._predict_fns[k] = tf.function(topk, input_signature=(vec_i, vec_i, vec_f))
        return self._predict_fns[k]

    def predict_topk(self, x, k: int) -> np.ndarray:
        """int32 (n_rows, k): labels by descending score, computed in chunks of eval_chunk rows.
        x: CSR-like (indptr, indices, data)."""
        indptr, indices, data = np.asarray(x.indptr, dtype=np.int64), x.indices, x.data
        if not 1 <= k <= self.n_labels:
            raise ValueError(f"k must be in [1, {self.n_labels}], got {k}")
        _check_ids(x, self.n_features, "feature")
        fn = self._predict_fn(int(k))
        n = len(indptr) - 1
        out = np.empty((n, k), dtype=np.int32)
        cap = 0
        for start in range(0, n, self.eval_chunk):
            stop = min(n, start + self.eval_chunk)
            ptr = indptr[start:stop + 1]
            cap = next_capacity(int(ptr[-1] - ptr[0]), cap)
            rows, ids, vals = pack_features(ptr, indices, data, self.eval_chunk, cap)
            with self._tf.device(self.device):
                top = fn(rows, ids, vals).numpy()
            out[start:stop] = top[:stop - start]
        return out

    def predict_hidden(self, x) -> np.ndarray:
        """float32 (n_rows, d): the last hidden layer's activations, computed by TF in chunks of
        HIDDEN_CHUNK rows (padded, so one trace). With output_weights() this lets the harness rank
        labels with the same top-k code for every model (slide_core.inference.dense_topk)."""
        tf = self._tf
        indptr, indices, data = np.asarray(x.indptr, dtype=np.int64), x.indices, x.data
        _check_ids(x, self.n_features, "feature")
        if self._hidden_fn is None:
            vec_i, vec_f = tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32)
            self._hidden_fn = tf.function(lambda r, i, v: self._hidden(r, i, v, HIDDEN_CHUNK),
                                          input_signature=(vec_i, vec_i, vec_f))
        chunk = HIDDEN_CHUNK
        n = len(indptr) - 1
        out = np.empty((n, int(self.variables[-2].shape[1 if self.transpose_output else 0])), dtype=np.float32)
        cap = 0
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            ptr = indptr[start:stop + 1]
            cap = next_capacity(int(ptr[-1] - ptr[0]), cap)
            with tf.device(self.device):
                h = self._hidden_fn(*pack_features(ptr, indices, data, chunk, cap)).numpy()
            out[start:stop] = h[:stop - start]
        return out

    def output_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the output layer: W (n_labels, d) C-contiguous float32 (one row per label,
        the layout slide_core.inference.dense_topk reads) and b (n_labels,)."""
        w, b = self.variables[-2].numpy(), self.variables[-1].numpy()
        if self.transpose_output:
            return np.array(w, dtype=np.float32), np.array(b, dtype=np.float32)
        out = np.empty((w.shape[1], w.shape[0]), dtype=np.float32)
        for l0 in range(0, w.shape[1], 1024):  # transpose in column blocks: much faster than w.T at once
            out[l0:l0 + 1024] = w[:, l0:l0 + 1024].T
        return out, np.array(b, dtype=np.float32)

    def get_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(W (n_in, n_out), b)] in the layout of harness.models.init."""
        out = []
        for i in range(0, len(self.variables), 2):
            w = self.variables[i].numpy()
            if self.transpose_output and i == len(self.variables) - 2:
                w = w.T
            out.append((w, self.variables[i + 1].numpy()))
        return out

    def optimizer_state(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(m.numpy(), v.numpy()) for m, v in self.moments]

    def _named_variables(self):
        """(name, variable) of every weight and Adam moment, names as in state_dict."""
        for var, (m, v) in zip(self.variables, self.moments):
            name = var.name.split(":")[0]
            yield from ((name, var), (f"m_{name}", m), (f"v_{name}", v))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Weights, Adam moments and Adam's step as named arrays (copies, in the variables' layout)."""
        out = {name: var.numpy() for name, var in self._named_variables()}
        out["adam_step"] = np.asarray(self.step, dtype=np.int64)
        return out

    def load_state_dict(self, arrays) -> None:
        """The state state_dict gave (KeyError / ValueError when it belongs to another network)."""
        for name, var in self._named_variables():
            value = arrays[name]
            if tuple(value.shape) != tuple(var.shape):
                raise ValueError(f"{name}: shape {tuple(value.shape)}, the network's is {tuple(var.shape)}")
            var.assign(value)
        self.step = int(arrays["adam_step"])

    def tracing_count(self) -> int:
        return int(self._train_fn.experimental_get_tracing_count())
