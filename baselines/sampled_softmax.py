"""The dense network trained with TF's sampled softmax (tf.nn.sampled_softmax_loss), the paper's
other baseline; evaluated with the full softmax like every model.

Sampler: log-uniform (Zipfian) over label ids, unique candidates, shared by the batch, exactly
TF's LogUniformSampler (P(k) = log((k+2)/(k+1)) / log(n+1), draws until n_sampled distinct ids,
expected counts -expm1(tries * log1p(-P(k)))), but drawn with a numpy Generator owned by the model:
the stream is seeded by ctx.seed, reproducible, and warm-up can leave it untouched (TF's stateful
sampler op cannot be rewound). The candidates enter the compiled step as `sampled_values`.
The log-uniform sampler assumes ids sorted by falling frequency, as TF's docs say; XMC label
ids are not necessarily, which is part of what this baseline is (as in the paper's script).

Multi-label rows: the target is y/|y|. tf.nn.sampled_softmax_loss with num_true > 1 needs the
same label count in every row, so every (row, label) pair is one example with num_true = 1 and
weight 1/|y_row|. With every class sampled and accidental hits removed this is exactly the full
softmax loss: sum_l (lse(all logits) - logit_l) / |y| = lse - mean_l logit_l.

Output layer stored as (n_labels, hidden), the layout tf.nn.sampled_softmax_loss gathers rows of.
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
        if jit_compile:
            raise ValueError("jit_compile is not supported for sampled softmax: XLA cannot compile "
                             "ComputeAccidentalHits (tf.nn.sampled_softmax_loss)")
        self.n_sampled = min(int(n_sampled), n_labels)
        self.sampler = LogUniformSampler(n_labels, seed)
        self.last_tries = 0
        super().__init__(weights, adam, batch_size, jit_compile, device, eval_chunk)

    def _extra_spec(self) -> tuple:
        tf = self._tf
        return (tf.TensorSpec([self.n_sampled], tf.int64), tf.TensorSpec([None], tf.float32),
                tf.TensorSpec([self.n_sampled], tf.float32))

    def _extra_inputs(self, packed: PackedBatch, for_warmup: bool) -> tuple:
        if for_warmup:  # same shapes, but the model's random stream stays where it is
            state = self.sampler.rng.bit_generator.state
            sample = self.sampler.sample(self.n_sampled)
            self.sampler.rng.bit_generator.state = state
        else:
            sample = self.sampler.sample(self.n_sampled)
            self.last_tries = sample.tries
        true_counts = self.sampler.expected_count(packed.label_ids, sample)
        return sample.candidates, true_counts, sample.expected_counts

    def _loss(self, feat_rows, feat_ids, feat_vals, label_rows, label_ids, label_weights, row_mask,
              n_rows, candidates, true_counts, sampled_counts):
        tf = self._tf
        h = self._hidden(feat_rows, feat_ids, feat_vals, self.batch_size)
        pair_loss = tf.nn.sampled_softmax_loss(
            weights=self.variables[-2], biases=self.variables[-1],
            labels=tf.cast(label_ids, tf.int64)[:, None], inputs=tf.gather(h, label_rows),
            num_sampled=self.n_sampled, num_classes=self.n_labels, num_true=1,
            sampled_values=(candidates, true_counts[:, None], sampled_counts),
            remove_accidental_hits=True)
        # padding pairs have weight 0; rows without labels have no pairs
        return tf.reduce_sum(label_weights * pair_loss) / n_rows
