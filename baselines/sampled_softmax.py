"""The dense network trained with TF's sampled softmax, the paper's other baseline; evaluated
with the full softmax like every model.

Samplers (unique candidates, shared by the batch, drawn until n_sampled distinct ids; expected
counts -expm1(tries * log1p(-P(k))) as TF computes them; a numpy Generator owned by the model, so
the stream is seeded by ctx.seed, reproducible, and warm-up can leave it untouched, which TF's
stateful sampler ops cannot):
- `log_uniform`: TF's LogUniformSampler, P(k) = log((k+2)/(k+1)) / log(n+1) over label ids. It
  assumes ids sorted by falling frequency, as TF's docs say; XMC label ids are not.
- `log_uniform_by_frequency`: the same Zipfian law over the labels' RANKS by training frequency
  (the id remapping TF's docs presuppose, done once from the training label counts).
- `unigram`: TF's FixedUnigramSampler, P(k) proportional to (count_k + 1)^unigram_distortion of
  the training label counts (+1: a label never seen in training can still be sampled).

Loss: the math of tf.nn.sampled_softmax_loss (its _compute_sampled_logits: logits minus
log expected count, accidental hits removed, softmax cross-entropy over [true, sampled] with
target 1/num_true per true class) with num_true = |y_r| per row. tf.nn.sampled_softmax_loss
itself needs the same num_true for every row; the two ways around that both cost more: padding
rows repeats labels in the softmax, and one example per (row, label) pair multiplies the
sampled logits by the mean label count (~5.4x on Amazon-670K, which measured slower than the
full softmax). The test suite checks this loss equals tf.nn.sampled_softmax_loss on rows of
equal label count, and equals the full softmax when every class is sampled.
Written with gathers and segment sums only, so XLA can compile it (the library op cannot:
ComputeAccidentalHits has no XLA kernel); the sample enters the step as inputs.

Output layer stored as (n_labels, hidden), the layout TF's sampled softmax gathers rows of.
"""
from __future__ import annotations

import json
import math
from typing import NamedTuple, Sequence

import numpy as np

from baselines.dense_softmax import AdamConfig, DenseSoftmaxNet
from baselines.padding import PackedBatch, next_capacity


class Sample(NamedTuple):
    candidates: np.ndarray  # int64 (n_sampled,) distinct label ids
    expected_counts: np.ndarray  # float32 (n_sampled,)
    tries: int  # draws it took (0: every class, no sampling)


class UniqueSampler:
    """Distinct candidates drawn with replacement from a fixed distribution over label ids
    until n_sampled are distinct, as TF's unique samplers do; subclasses give the distribution
    as `probability(ids)` and `_draw(n)` (n ids, with replacement)."""

    def __init__(self, range_max: int, seed: int):
        if range_max < 1:
            raise ValueError(f"range_max must be >= 1, got {range_max}")
        self.range_max = int(range_max)
        self.rng = np.random.default_rng([seed, 0x5A3])
        self._seen = np.zeros(range_max, dtype=bool)

    def probability(self, ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _draw(self, n: int) -> np.ndarray:
        raise NotImplementedError

    def expected_count(self, ids: np.ndarray, sample: Sample) -> np.ndarray:
        """Expected number of times each id appears in a sample like `sample` (TF's formula)."""
        if sample.tries == 0:  # every class taken: no sampling, no correction
            return np.ones(len(ids), dtype=np.float32)
        p = self.probability(ids)
        n = len(sample.candidates)
        if sample.tries == n:
            return (p * n).astype(np.float32)
        return (-np.expm1(sample.tries * np.log1p(-p))).astype(np.float32)

    def sample(self, n_sampled: int) -> Sample:
        if n_sampled >= self.range_max:
            ids = np.arange(self.range_max, dtype=np.int64)
            return Sample(ids, np.ones(self.range_max, dtype=np.float32), 0)
        taken, tries, need = [], 0, n_sampled
        while need > 0:
            chunk = max(2 * need, 1024)
            draws = self._draw(chunk)
            ids, first = np.unique(draws, return_index=True)
            fresh = ~self._seen[ids]
            ids, first = ids[fresh], first[fresh]
            order = np.argsort(first, kind="stable")
            ids, first = ids[order], first[order]
            if len(ids) >= need:
                ids = ids[:need]
                tries += int(first[need - 1]) + 1
            else:
                tries += chunk
            self._seen[ids] = True
            taken.append(ids)
            need -= len(ids)
        candidates = np.concatenate(taken)
        self._seen[candidates] = False
        sample = Sample(candidates, np.empty(0, np.float32), tries)
        return sample._replace(expected_counts=self.expected_count(candidates, sample))


class LogUniformSampler(UniqueSampler):
    """numpy twin of TF's unique LogUniformSampler (tensorflow/core/kernels/range_sampler.cc),
    over label ids, or over ranks (id_of_rank: label ids by falling training frequency)."""

    def __init__(self, range_max: int, seed: int, id_of_rank: np.ndarray | None = None):
        super().__init__(range_max, seed)
        self.log_range = math.log(range_max + 1)
        self.id_of_rank = None if id_of_rank is None else np.asarray(id_of_rank, dtype=np.int64)
        if self.id_of_rank is not None:
            if sorted(self.id_of_rank.tolist()) != list(range(range_max)):
                raise ValueError("id_of_rank must be a permutation of the label ids")
            self.rank_of_id = np.empty(range_max, dtype=np.int64)
            self.rank_of_id[self.id_of_rank] = np.arange(range_max)

    def probability(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        k = (ids if self.id_of_rank is None else self.rank_of_id[ids]).astype(np.float64)
        return np.log((k + 2.0) / (k + 1.0)) / self.log_range

    def _draw(self, n: int) -> np.ndarray:
        ranks = (np.exp(self.rng.random(n) * self.log_range).astype(np.int64) - 1) % self.range_max
        return ranks if self.id_of_rank is None else self.id_of_rank[ranks]


class UnigramSampler(UniqueSampler):
    """numpy twin of TF's FixedUnigramSampler: P(k) proportional to (count_k + 1)^distortion."""

    def __init__(self, counts: np.ndarray, seed: int, distortion: float = 1.0):
        counts = np.asarray(counts, dtype=np.float64)
        super().__init__(len(counts), seed)
        weights = (counts + 1.0) ** float(distortion)
        self.p = weights / weights.sum()
        self.cdf = np.cumsum(self.p)
        self.cdf[-1] = 1.0

    def probability(self, ids: np.ndarray) -> np.ndarray:
        return self.p[np.asarray(ids, dtype=np.int64)]

    def _draw(self, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cdf, self.rng.random(n), side="right"), self.range_max - 1)


SAMPLERS = ("log_uniform", "log_uniform_by_frequency", "unigram")


def make_sampler(kind: str, n_labels: int, seed: int, label_counts: np.ndarray | None = None,
                 unigram_distortion: float = 1.0) -> UniqueSampler:
    """The named sampler; the frequency-based ones need the training label counts."""
    if kind not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {kind!r}")
    if kind == "log_uniform":
        return LogUniformSampler(n_labels, seed)
    if label_counts is None or len(label_counts) != n_labels:
        raise ValueError(f"sampler {kind!r} needs the training label counts (n_labels={n_labels})")
    if kind == "log_uniform_by_frequency":
        # stable: equally frequent labels keep id order, so the ranks are reproducible
        return LogUniformSampler(n_labels, seed, id_of_rank=np.argsort(-np.asarray(label_counts), kind="stable"))
    return UnigramSampler(label_counts, seed, unigram_distortion)


class SampledSoftmaxNet(DenseSoftmaxNet):
    transpose_output = True

    def __init__(self, weights: Sequence[tuple[np.ndarray, np.ndarray]], adam: AdamConfig, batch_size: int,
                 n_sampled: int, seed: int = 0, jit_compile: bool = False, device: str = "/CPU:0",
                 eval_chunk: int | None = None, sampler: UniqueSampler | None = None, adam_mode: str = "dense"):
        if adam_mode not in ADAM_MODES:
            raise ValueError(f"adam_mode must be one of {ADAM_MODES}, got {adam_mode!r}")
        self.adam_mode = adam_mode
        n_labels = int(weights[-1][0].shape[1])
        if not 1 <= n_sampled:
            raise ValueError(f"n_sampled must be >= 1, got {n_sampled}")
        self.n_sampled = min(int(n_sampled), n_labels)
        self.sampler = LogUniformSampler(n_labels, seed) if sampler is None else sampler
        if self.sampler.range_max != n_labels:
            raise ValueError(f"the sampler draws from {self.sampler.range_max} labels, the layer has {n_labels}")
        self.last_tries = 0
        self._position = np.full(n_labels, -1, dtype=np.int32)  # label id -> index in the sample
        n_features = int(weights[0][0].shape[0])
        self._rows_out = _RowSet(n_labels)  # lazy Adam: the output rows a batch touches
        self._rows_in = _RowSet(n_features)  # ... and the first layer's (the batch's features)
        self.cap_rows_in = self.cap_rows_out = 0
        super().__init__(weights, adam, batch_size, jit_compile, device, eval_chunk)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The dense net's state and the sampler's random stream (its bit generator's state)."""
        out = super().state_dict()
        out["sampler_rng"] = np.frombuffer(json.dumps(self.sampler.rng.bit_generator.state).encode(), dtype=np.uint8)
        return out

    def load_state_dict(self, arrays) -> None:
        super().load_state_dict(arrays)
        self.sampler.rng.bit_generator.state = json.loads(bytes(arrays["sampler_rng"]).decode())

    def _extra_spec(self) -> tuple:
        tf = self._tf
        spec = (tf.TensorSpec([self.n_sampled], tf.int32), tf.TensorSpec([self.n_sampled], tf.float32),
                tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int32))
        if self.adam_mode == "lazy":  # (rows, valid) per layer and each use's position in its rows
            vec_i, vec_f = tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32)
            spec += (vec_i, vec_f, vec_i, vec_i, vec_f, tf.TensorSpec([self.n_sampled], tf.int32), vec_i)
        return spec

    def _extra_inputs(self, packed: PackedBatch, for_warmup: bool) -> tuple:
        """(candidates, log expected count of each, log expected count of each pair's true
        label, position of each pair's label among the candidates or -1: an accidental hit)."""
        if for_warmup:  # same shapes, but the model's random stream stays where it is
            state = self.sampler.rng.bit_generator.state
            sample = self.sampler.sample(self.n_sampled)
            self.sampler.rng.bit_generator.state = state
        else:
            sample = self.sampler.sample(self.n_sampled)
            self.last_tries = sample.tries
        true_counts = self.sampler.expected_count(packed.label_ids, sample)
        self._position[sample.candidates] = np.arange(self.n_sampled, dtype=np.int32)
        hit = self._position[packed.label_ids]
        self._position[sample.candidates] = -1
        hit[packed.label_weights == 0] = -1  # padding pairs hit nothing
        extra = (sample.candidates.astype(np.int32), np.log(sample.expected_counts), np.log(true_counts), hit)
        if self.adam_mode == "lazy":
            extra += self._lazy_rows(packed, sample.candidates)
        return extra

    def _lazy_rows(self, packed: PackedBatch, candidates: np.ndarray) -> tuple:
        """The rows lazy Adam updates: the first layer's rows of the batch's features, the output
        rows of the sampled classes and the batch's labels; each padded to a capacity that only
        grows (one XLA shape) with distinct untouched rows whose update is a no-op (valid 0)."""
        real_x = packed.feat_vals != 0
        self.cap_rows_in = next_capacity(int(real_x.sum()), self.cap_rows_in)
        in_rows, in_valid, feat_pos = self._rows_in.build(packed.feat_ids[real_x], packed.feat_ids, self.cap_rows_in)
        real_y = packed.label_weights > 0
        self.cap_rows_out = next_capacity(self.n_sampled + int(real_y.sum()), self.cap_rows_out)
        used = np.concatenate([candidates.astype(np.int32), packed.label_ids[real_y]])
        out_rows, out_valid, pos = self._rows_out.build(used, np.concatenate([candidates.astype(np.int32),
                                                                              packed.label_ids]), self.cap_rows_out)
        cand_pos, lab_pos = pos[:len(candidates)], pos[len(candidates):]
        return in_rows, in_valid, feat_pos, out_rows, out_valid, cand_pos, lab_pos

    def _loss(self, feat_rows, feat_ids, feat_vals, label_rows, label_ids, label_weights, row_mask,
              n_rows, candidates, log_q_sampled, log_q_true, hit_position, *lazy_rows):
        tf = self._tf
        w, b = self.variables[-2], self.variables[-1]
        h = self._hidden(feat_rows, feat_ids, feat_vals, self.batch_size)
        return self._sampled_loss(h, label_rows, label_weights, row_mask, n_rows, tf.gather(w, candidates),
                                  tf.gather(b, candidates), tf.gather(w, label_ids), tf.gather(b, label_ids),
                                  log_q_sampled, log_q_true, hit_position)

    def _sampled_loss(self, h, label_rows, label_weights, row_mask, n_rows, w_sampled, b_sampled, w_true, b_true,
                      log_q_sampled, log_q_true, hit_position):
        """The loss from the hidden activations and the output rows of the candidates and of
        each (row, label) pair."""
        tf = self._tf
        n = self.batch_size
        sampled = tf.matmul(h, w_sampled, transpose_b=True) + b_sampled - log_q_sampled  # (rows, n_sampled)
        # accidental hits: a row's own true label among the candidates leaves the sampled part
        # (TF adds -FLT_MAX to those logits, so do we)
        is_hit = hit_position >= 0
        hit_index = tf.stack([label_rows, tf.maximum(hit_position, 0)], axis=1)
        sampled += tf.scatter_nd(hit_index, tf.where(is_hit, tf.float32.min, 0.0), tf.shape(sampled))
        true = tf.reduce_sum(tf.gather(h, label_rows) * w_true, axis=1) + b_true - log_q_true  # (pairs,)
        real_pair = label_weights > 0
        # per-row logsumexp over [the row's true logits, its sampled logits], stabilised by the max
        true_for_max = tf.where(real_pair, true, tf.float32.min)
        top = tf.stop_gradient(tf.maximum(tf.reduce_max(sampled, axis=1),
                                          tf.math.unsorted_segment_max(true_for_max, label_rows, n)))
        total = (tf.reduce_sum(tf.exp(sampled - top[:, None]), axis=1)
                 + tf.math.unsorted_segment_sum(tf.where(real_pair, tf.exp(true - tf.gather(top, label_rows)), 0.0),
                                                label_rows, n))
        lse = top + tf.math.log(total)
        target_term = tf.math.unsorted_segment_sum(label_weights * true, label_rows, n)
        return tf.reduce_sum(row_mask * lse - target_term) / n_rows

    def _train_graph(self, *inputs):
        if self.adam_mode == "dense":
            return super()._train_graph(*inputs)
        return self._lazy_train_graph(*inputs)

    def _lazy_train_graph(self, feat_rows, feat_ids, feat_vals, label_rows, label_ids, label_weights, row_mask,
                          n_rows, candidates, log_q_sampled, log_q_true, hit_position, in_rows, in_valid, feat_pos,
                          out_rows, out_valid, cand_pos, lab_pos, lr, beta1, beta2, beta1_power, beta2_power):
        """Lazy Adam (slide_core/adam.py's "lazy"): the gradient is taken with respect to the
        gathered rows the batch uses (first layer: its features; output layer: the sampled
        classes and its labels), and only those rows' weights and moments are updated; every
        other row keeps its weights and moments bit for bit. Biases of the hidden layers and
        hidden weight matrices update where their gradient is non-zero. Bias correction uses
        the global step, as SLIDE's lazy Adam does."""
        tf = self._tf
        w1, w_out, b_out = self.variables[0], self.variables[-2], self.variables[-1]
        w1_rows = tf.gather(w1, in_rows)
        w_rows, b_rows = tf.gather(w_out, out_rows), tf.gather(b_out, out_rows)
        small = self.variables[1:-2]  # b1 and any hidden layers between
        with tf.GradientTape() as tape:
            tape.watch([w1_rows, w_rows, b_rows])
            h = self._hidden_from(tf.gather(w1_rows, feat_pos), feat_rows, feat_vals, self.batch_size)
            loss = self._sampled_loss(h, label_rows, label_weights, row_mask, n_rows, tf.gather(w_rows, cand_pos),
                                      tf.gather(b_rows, cand_pos), tf.gather(w_rows, lab_pos),
                                      tf.gather(b_rows, lab_pos), log_q_sampled, log_q_true, hit_position)
        g_w1, g_w, g_b, *g_small = tape.gradient(loss, [w1_rows, w_rows, b_rows, *small])
        lr_t = lr * tf.sqrt(1.0 - beta2_power) / (1.0 - beta1_power)
        eps = tf.constant(self.adam.eps, tf.float32)

        def adam(w_old, m_old, v_old, g, keep):
            """SLIDE's form: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; w -= lr_t m/(sqrt(v)+eps);
            entries where `keep` stay as they were."""
            m_new = beta1 * m_old + (1.0 - beta1) * g
            v_new = beta2 * v_old + (1.0 - beta2) * g * g
            w_new = w_old - lr_t * m_new / (tf.sqrt(v_new) + eps)
            return tuple(tf.where(keep, old, new) for old, new in ((w_old, w_new), (m_old, m_new), (v_old, v_new)))

        updates = []
        moments = dict(zip((id(v) for v in self.variables), self.moments))
        for var, rows, valid, g, w_old in ((w1, in_rows, in_valid, g_w1, w1_rows),
                                           (w_out, out_rows, out_valid, g_w, w_rows),
                                           (b_out, out_rows, out_valid, g_b, b_rows)):
            m, v = moments[id(var)]
            keep = (valid == 0)[:, None] if len(var.shape) == 2 else valid == 0
            new = adam(w_old, tf.gather(m, rows), tf.gather(v, rows), g, keep)
            for target, value in zip((var, m, v), new):
                updates.append(target.scatter_update(tf.IndexedSlices(value, rows)))
        for var, g in zip(small, g_small):
            m, v = moments[id(var)]
            new = adam(var, m, v, g, tf.equal(g, 0.0))
            for target, value in zip((var, m, v), new):
                updates.append(target.assign(value))
        with tf.control_dependencies(updates):  # the returned loss means "the step is done"
            return tf.identity(loss)


class _RowSet:
    """Distinct rows a batch uses, padded with distinct unused rows (host side, numpy)."""

    def __init__(self, n: int):
        self.n = int(n)
        self.position = np.full(self.n, -1, dtype=np.int32)  # row id -> slot; -1 between calls

    def build(self, used: np.ndarray, lookups: np.ndarray, capacity: int) -> tuple:
        """(rows int32 (cap,), valid float32 (cap,), positions int32 of `lookups`) where rows
        starts with the sorted distinct `used` ids; lookups that are not used ids (padding
        entries) get position 0, a row whose gradient they leave untouched."""
        rows = np.unique(used).astype(np.int32)
        cap = min(max(capacity, len(rows)), self.n)
        valid = np.zeros(cap, dtype=np.float32)
        valid[:len(rows)] = 1.0
        self.position[rows] = np.arange(len(rows), dtype=np.int32)
        pos = self.position[lookups]
        pad = cap - len(rows)
        if pad:  # the smallest unused ids: distinct from every used row, so their no-op writes race with nothing
            free = np.flatnonzero(self.position[:min(self.n, len(rows) + pad)] < 0)[:pad].astype(np.int32)
            rows = np.concatenate([rows, free])
        self.position[rows[:len(valid[valid > 0])]] = -1
        return rows, valid, np.maximum(pos, 0).astype(np.int32)


ADAM_MODES = ("dense", "lazy")
