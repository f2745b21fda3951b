"""The sampled tail of an output layer's active set: which neurons it draws, and their log-Q
corrections.

Besides the true labels and the neurons the hash tables retrieve (both taken exactly), a
training active set holds a sample of the other neurons, whose logits get the sampled-softmax
correction -log(pi_j), pi_j the probability that neuron j is in the sample: the softmax's
normaliser over the active set is then a (Horvitz-Thompson) estimate of the full one. Two
shapes of tail:

- per sample (`padding`): each sample draws its own neurons, outside its labels and
  retrieved set, to fill its active set up to the budget (the selection kernel calls
  `pad_by_law` for a non-uniform law, sampling.pad_random for the uniform one);
- shared (`shared_tail` = m): one set of about m distinct neurons per batch
  (`sample_shared`), whose logits for the whole batch are one dense product H @ W_S^T
  (network.py), as TensorFlow's sampled softmax does. A sample's own labels and retrieved
  neurons that the shared set also holds ("accidental hits") are taken out of its tail.

Laws (`tail_law`), over the layer's neurons (= labels of an output layer):
- `uniform`: every neuron alike;
- `log_uniform`: TF's log-uniform (Zipfian) law over the labels' ranks by training frequency,
  P(rank k) = log((k + 2) / (k + 1)) / log(n + 1): the law tf_sampled uses by default;
- `unigram`: P(j) proportional to (count_j + 1)^distortion (TF's FixedUnigramSampler).
The frequency laws need the training label counts (SlideNetwork's `label_counts`).

A frequency law draws a fixed number T of neurons with replacement and keeps the distinct
ones: a neuron is then in the sample with probability pi_j = 1 - (1 - P(j))^T exactly, its
logit gets -log(pi_j), and sum_{j in sample} f_j / pi_j is an unbiased (Horvitz-Thompson)
estimate of sum_j f_j. T is chosen once (`draws_for`) so that the sample holds the wanted
number of distinct neurons on average, for the shared tail and for a per-sample tail that
fills the budget when the tables retrieved their limit (a sample whose tables retrieved fewer
gets a smaller tail, not more draws). (TF's unique samplers draw until m are distinct and
use the same formula with the draws that took: the stopping rule biases it, measured +2.4%
at 100 of 2,000 neurons under a unigram law, +7% at 9 of 40.) Neurons a sample must not
hold (its labels and retrieved set) are skipped, their draws still counted in T, which keeps
pi_j exact for the others. The uniform law takes exactly m distinct neurons, a uniform
subset: pi = m / (the neurons it could take).
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np

from slide_core._numba import jit
from slide_core.rng import next_below, next_u64, stream_seed

LAWS = ("uniform", "log_uniform", "unigram")
UNIFORM, LOG_UNIFORM, UNIGRAM = 0, 1, 2
_U53 = 1.0 / 9007199254740992.0  # 2**-53
# most draws per distinct neuron wanted: a law with a thin tail (unigram over a few huge
# counts) may need millions of draws for m distinct neurons on average; it then gets this many
# per neuron and fewer neurons. log_uniform over 52,946 labels needs ~2.6 per neuron for
# m = 5,295 (10%).
MAX_DRAWS_PER_NEURON = 64


class TailLaw(NamedTuple):
    """A sampling law over n neurons, in the form the kernels draw from: Walker's alias table
    (one uniform number and at most two reads per draw, whatever n)."""

    law: int  # index into LAWS
    accept: np.ndarray  # float64 (n,): draw slot j, keep it with probability accept[j] ... ; (1,) for uniform
    alias: np.ndarray  # int32 (n,): ... else take alias[j]; (1,) for uniform
    log1m_p: np.ndarray  # float64 (n,): log(1 - P(j)); (1,) for uniform (unused)
    pad_draws: int  # the per-sample tail's draws: draws_for(its target); 0 for uniform (it fills to the target exactly)


def law_probabilities(law: str, n: int, label_counts: np.ndarray | None = None,
                      distortion: float = 1.0) -> np.ndarray:
    """P(j) (float64, sums to 1) of `law` over n neurons; frequency laws need label_counts (n,)."""
    if law not in LAWS:
        raise ValueError(f"tail_law must be one of {LAWS}, got {law!r}")
    if law == "uniform":
        return np.full(n, 1.0 / n)
    if label_counts is None and law == "log_uniform":
        # TF's LogUniformCandidateSampler convention: label ids sorted by decreasing frequency
        warnings.warn("tail_law 'log_uniform' without label_counts: labels are ranked by id (TF's "
                      "convention: ids sorted by frequency); pass label_counts to rank them by the data",
                      stacklevel=3)
        label_counts = np.arange(n, 0, -1)
    if label_counts is None:
        raise ValueError(f"tail_law {law!r} needs the training label counts (label_counts)")
    counts = np.asarray(label_counts, dtype=np.float64)
    if counts.shape != (n,) or not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError(f"label_counts must hold {n} non-negative counts, got shape {counts.shape}")
    if law == "unigram":
        w = (counts + 1.0) ** float(distortion)
        return w / w.sum()
    # log_uniform over frequency ranks; a stable sort keeps equally frequent labels in id order
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(n)
    return np.log((rank + 2.0) / (rank + 1.0)) / math.log(n + 1.0)


def make_law(law: str, n: int, label_counts: np.ndarray | None = None, distortion: float = 1.0,
             pad_target: int = 0) -> TailLaw:
    """The TailLaw the kernels take: the alias table and log(1 - P) built once, and the draws a
    per-sample tail of pad_target distinct neurons (on average) takes (a frequency law only:
    the uniform tail takes exactly its target, sampling.pad_random)."""
    if law == "uniform":
        one = np.zeros(1)
        return TailLaw(UNIFORM, one, np.zeros(1, np.int32), one, 0)
    p = law_probabilities(law, n, label_counts, distortion)
    accept, alias = _alias_table(p)
    log1m_p = np.log1p(-np.minimum(p, 1.0 - 1e-16))
    return TailLaw(LAWS.index(law), accept, alias, log1m_p, _draws_for(log1m_p, pad_target))


@jit
def _alias_table(p):
    """Vose's alias method: slot j is kept with probability accept[j], else alias[j] is taken,
    so that a uniform slot gives neuron j with probability p[j] (p sums to 1)."""
    n = p.shape[0]
    scaled = p * n
    accept = np.ones(n)
    alias = np.arange(n).astype(np.int32)
    small = np.empty(n, np.int64)
    large = np.empty(n, np.int64)
    ns = nl = 0
    for j in range(n):
        if scaled[j] < 1.0:
            small[ns] = j
            ns += 1
        else:
            large[nl] = j
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        g = large[nl - 1]
        accept[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        if scaled[g] < 1.0:
            nl -= 1
            small[ns] = g
            ns += 1
    return accept, alias  # slots left in either list keep accept 1 (rounding leftovers)


def _expected_distinct(log1m_p: np.ndarray, t: int) -> float:
    return float(-np.expm1(t * log1m_p).sum())


def draws_for(law: TailLaw, m: int) -> int:
    """T: the fewest draws whose distinct neurons number >= m on average,
    E = sum_j 1 - (1 - P(j))^T (at most MAX_DRAWS_PER_NEURON * m); m for the uniform law."""
    return int(m) if law.law == UNIFORM else _draws_for(law.log1m_p, m)


def _draws_for(log1m_p: np.ndarray, m: int) -> int:
    m = int(m)
    if m <= 0:
        return 0
    lo, hi, cap = m, m, MAX_DRAWS_PER_NEURON * m
    while _expected_distinct(log1m_p, hi) < m and hi < cap:
        lo, hi = hi, min(2 * hi, cap)
    if _expected_distinct(log1m_p, hi) < m:
        return cap
    while lo < hi:  # the smallest t in [lo, hi] with E[distinct](t) >= m
        mid = (lo + hi) // 2
        if _expected_distinct(log1m_p, mid) >= m:
            hi = mid
        else:
            lo = mid + 1
    return hi


@jit
def draw_by_law(state, law):
    """(new state, a neuron drawn from the TailLaw's alias table)."""
    state, r = next_u64(state)
    n = law.accept.shape[0]
    u = np.float64(r >> np.uint64(11)) * _U53 * n
    j = min(np.int64(u), n - 1)
    if u - j < law.accept[j]:
        return state, j
    return state, np.int64(law.alias[j])


@jit
def log_inclusion(log1m_p, a, tries):
    """log(pi_a) = log(1 - (1 - P(a))^tries): the log-probability that `tries` draws hold a."""
    return np.log(-np.expm1(tries * log1m_p[a]))


@jit
def pad_by_law(state, law, stamp, base, out, shift, n, draws):
    """Draw `draws` neurons from `law` and append those not yet stamped (>= base), each once,
    with its log-Q correction -log(pi) in shift[...] (pi for `draws` draws). `out` must have
    room for n + draws. Returns (state, n)."""
    first = n
    for _ in range(draws):
        state, a = draw_by_law(state, law)
        if stamp[a] < base:
            stamp[a] = base
            out[n] = a
            n += 1
    for i in range(first, n):
        shift[i] = -log_inclusion(law.log1m_p, out[i], draws)
    return state, n


class SharedSample(NamedTuple):
    ids: np.ndarray  # int32 (m,) distinct neurons, ascending
    log_q: np.ndarray  # float32 (m,): log(pi_j), the correction is -log_q (0 when every neuron is taken)
    draws: int  # draws it took (0: every neuron, no sampling)


@jit
def _draw_shared(seed, stream, law, draws, seen, ids, log_q):
    """The shared tail: `draws` neurons drawn from `law`, the distinct ones into ids (ascending)
    with their log inclusion probabilities in log_q; uniform: exactly `draws` distinct neurons
    (a uniform subset). `seen` (n bools, all False) is restored. Returns the count."""
    state = stream_seed(seed, stream, 0x5A4ED, 0)  # in Numba: the state stays a uint64
    n = seen.shape[0]
    found = 0
    if law.law == UNIFORM:
        while found < draws:
            state, a = next_below(state, n)
            if not seen[a]:
                seen[a] = True
                ids[found] = a
                found += 1
    else:
        for _ in range(draws):
            state, a = draw_by_law(state, law)
            if not seen[a]:
                seen[a] = True
                ids[found] = a
                found += 1
    ids[:found].sort()
    for i in range(found):
        seen[ids[i]] = False
        log_q[i] = np.log(found / n) if law.law == UNIFORM else log_inclusion(law.log1m_p, ids[i], draws)
    return found


def sample_shared(law: TailLaw, n: int, draws: int, seed: int, stream: int, seen: np.ndarray | None = None,
                  ids: np.ndarray | None = None, log_q: np.ndarray | None = None) -> SharedSample:
    """The batch's shared tail over n neurons: `draws` draws from `law` (draws_for gives the
    count for m distinct on average; uniform: exactly `draws` distinct), the distinct ones
    ascending, their log inclusion probabilities, the draws. A pure function of (seed, stream)
    (rng.stream_seed): a checkpoint needs no sampler state. draws >= n (uniform) takes every
    neuron. seen / ids / log_q: reusable buffers (n bools, >= draws, >= draws)."""
    if law.law == UNIFORM and draws >= n:
        return SharedSample(np.arange(n, dtype=np.int32), np.zeros(n, dtype=np.float32), 0)
    seen = np.zeros(n, dtype=np.bool_) if seen is None else seen
    ids = np.empty(draws, dtype=np.int32) if ids is None else ids
    log_q = np.empty(draws, dtype=np.float32) if log_q is None else log_q
    found = _draw_shared(int(seed), int(stream), law, int(draws), seen, ids, log_q)
    return SharedSample(ids[:found], log_q[:found], int(draws))
