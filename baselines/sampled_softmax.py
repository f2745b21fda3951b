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

import math
from typing import NamedTuple, Sequence

import numpy as np

from baselines.dense_softmax import AdamConfig, DenseSoftmaxNet
from baselines.packing import PackedBatch


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
                 eval_chunk: int | None = None, sampler: UniqueSampler | None = None):
        n_labels = int(weights[-1][0].shape[1])
        if not 1 <= n_sampled:
            raise ValueError(f"n_sampled must be >= 1, got {n_sampled}")
        self.n_sampled = min(int(n_sampled), n_labels)
        self.sampler = LogUniformSampler(n_labels, seed) if sampler is None else sampler
        if self.sampler.range_max != n_labels:
            raise ValueError(f"the sampler draws from {self.sampler.range_max} labels, the layer has {n_labels}")
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
