"""The dense network trained with TF's sampled softmax, the paper's other baseline; evaluated
with the full softmax like every model.

Sampler: log-uniform (Zipfian) over label ids, unique candidates, shared by the batch, exactly
TF's LogUniformSampler (P(k) = log((k+2)/(k+1)) / log(n+1), draws until n_sampled distinct ids,
expected counts -expm1(tries * log1p(-P(k)))), but drawn with a numpy Generator owned by the model:
the stream is seeded by ctx.seed, reproducible, and warm-up can leave it untouched (TF's stateful
sampler op cannot be rewound). The log-uniform sampler assumes ids sorted by falling frequency,
as TF's docs say; XMC label ids are not necessarily, which is part of what this baseline is.

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

import math
from typing import NamedTuple, Sequence

import numpy as np

from baselines.dense_softmax import AdamConfig, DenseSoftmaxNet
from baselines.packing import PackedBatch


class Sample(NamedTuple):
    candidates: np.ndarray  # int64 (n_sampled,) distinct label ids
    expected_counts: np.ndarray  # float32 (n_sampled,)
    tries: int  # draws it took (0: every class, no sampling)


class LogUniformSampler:
    """numpy twin of TF's unique LogUniformSampler (tensorflow/core/kernels/range_sampler.cc)."""

    def __init__(self, range_max: int, seed: int):
        if range_max < 1:
            raise ValueError(f"range_max must be >= 1, got {range_max}")
        self.range_max = int(range_max)
        self.log_range = math.log(range_max + 1)
        self.rng = np.random.default_rng([seed, 0x5A3])
        self._seen = np.zeros(range_max, dtype=bool)

    def probability(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.float64)
        return np.log((ids + 2.0) / (ids + 1.0)) / self.log_range

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
            draws = (np.exp(self.rng.random(chunk) * self.log_range).astype(np.int64) - 1) % self.range_max
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


class SampledSoftmaxNet(DenseSoftmaxNet):
    transpose_output = True

    def __init__(self, weights: Sequence[tuple[np.ndarray, np.ndarray]], adam: AdamConfig, batch_size: int,
                 n_sampled: int, seed: int = 0, jit_compile: bool = False, device: str = "/CPU:0",
                 eval_chunk: int | None = None):
        n_labels = int(weights[-1][0].shape[1])
        if not 1 <= n_sampled:
            raise ValueError(f"n_sampled must be >= 1, got {n_sampled}")
        self.n_sampled = min(int(n_sampled), n_labels)
        self.sampler = LogUniformSampler(n_labels, seed)
        self.last_tries = 0
        self._position = np.full(n_labels, -1, dtype=np.int32)  # label id -> index in the sample
        super().__init__(weights, adam, batch_size, jit_compile, device, eval_chunk)

    def _extra_spec(self) -> tuple:
        tf = self._tf
        return (tf.TensorSpec([self.n_sampled], tf.int32), tf.TensorSpec([self.n_sampled], tf.float32),
                tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int32))

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
        return (sample.candidates.astype(np.int32), np.log(sample.expected_counts),
                np.log(true_counts), hit)

    def _loss(self, feat_rows, feat_ids, feat_vals, label_rows, label_ids, label_weights, row_mask,
              n_rows, candidates, log_q_sampled, log_q_true, hit_position):
        tf = self._tf
        n = self.batch_size
        w, b = self.variables[-2], self.variables[-1]
        h = self._hidden(feat_rows, feat_ids, feat_vals, n)
        sampled = (tf.matmul(h, tf.gather(w, candidates), transpose_b=True)
                   + tf.gather(b, candidates) - log_q_sampled)  # (rows, n_sampled)
        # accidental hits: a row's own true label among the candidates leaves the sampled part
        # (TF adds -FLT_MAX to those logits, so do we)
        is_hit = hit_position >= 0
        hit_index = tf.stack([label_rows, tf.maximum(hit_position, 0)], axis=1)
        sampled += tf.scatter_nd(hit_index, tf.where(is_hit, tf.float32.min, 0.0), tf.shape(sampled))
        true = (tf.reduce_sum(tf.gather(h, label_rows) * tf.gather(w, label_ids), axis=1)
                + tf.gather(b, label_ids) - log_q_true)  # (pairs,)
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
