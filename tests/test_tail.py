"""The sampled tail (slide_core/tail.py): its laws, the samplers' statistics (chi-square against
the law, Horvitz-Thompson unbiasedness of the -log(pi) correction) and the per-sample kernel's
corrections against a numpy reference."""
from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from slide_core import LayerConfig
from slide_core.rng import stream_seed
from slide_core.tail import (
    MAX_DRAWS_PER_NEURON, draw_by_law, draws_for, law_probabilities, make_law, pad_by_law, sample_shared,
)

N = 40
COUNTS = np.array([(7 * i) % 11 + (20 if i % 9 == 0 else 0) for i in range(N)])  # ties and a few frequent labels


def chi2_critical(df: int, z: float = 3.29) -> float:
    """Upper quantile of chi-square(df) at the normal quantile z (3.29: p = 0.0005), by the
    Wilson-Hilferty approximation (accurate to ~1% for df >= 10)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def test_laws_are_the_documented_distributions():
    uniform = law_probabilities("uniform", N)
    np.testing.assert_allclose(uniform, 1 / N)
    unigram = law_probabilities("unigram", N, COUNTS, distortion=0.5)
    np.testing.assert_allclose(unigram, np.sqrt(COUNTS + 1) / np.sqrt(COUNTS + 1).sum())
    lu = law_probabilities("log_uniform", N, COUNTS)
    assert lu.sum() == pytest.approx(1.0)
    # rank 0 is the most frequent label; equal counts keep id order (a stable sort)
    order = sorted(range(N), key=lambda i: (-COUNTS[i], i))
    for rank, label in enumerate(order):
        assert lu[label] == pytest.approx(math.log((rank + 2) / (rank + 1)) / math.log(N + 1))
    with pytest.raises(ValueError, match="label counts"):
        law_probabilities("unigram", N)
    with pytest.warns(UserWarning, match="ranked by id"):  # TF's convention: ids sorted by frequency
        by_id = law_probabilities("log_uniform", N)
    np.testing.assert_allclose(by_id, np.log((np.arange(N) + 2) / (np.arange(N) + 1)) / math.log(N + 1))
    with pytest.raises(ValueError, match="tail_law"):
        law_probabilities("zipf", N, COUNTS)
    with pytest.raises(ValueError, match="40 non-negative"):
        law_probabilities("unigram", N, -COUNTS)


@numba.njit
def _histogram_of_draws(law, n):
    """Counts of n draw_by_law draws, the state kept inside Numba (uint64): a state passed back
    and forth through Python would come back as an int64, on which the mixer's arithmetic
    is not the kernels'."""
    state = stream_seed(7, 1, 2, 3)
    hits = np.zeros(law.accept.shape[0])
    for _ in range(n):
        state, a = draw_by_law(state, law)
        hits[a] += 1
    return hits


@pytest.mark.parametrize("law", ["log_uniform", "unigram"])
def test_draws_follow_the_law(law):
    """200k kernel draws against the law: the chi-square statistic stays below its 0.9995
    quantile (fails for an alias table built off by one slot, or accept read as reject)."""
    tl = make_law(law, N, COUNTS)
    p = law_probabilities(law, N, COUNTS)
    hits = _histogram_of_draws(tl, 200_000)
    expected = p * hits.sum()
    chi2 = float(((hits - expected) ** 2 / expected).sum())
    assert chi2 < chi2_critical(N - 1), chi2


@pytest.mark.parametrize("law", ["uniform", "log_uniform", "unigram"])
@pytest.mark.parametrize("n, m", [(40, 9), (2000, 100)])
def test_shared_sample_correction_is_unbiased(law, n, m):
    """sample_shared: T = draws_for(m) draws give m distinct neurons on average, ascending, with
    log_q = log(1 - (1 - P)^T) (uniform: exactly m, log(m / n)); sum_{j in S} f_j / pi_j
    averages to sum_j f_j (Horvitz-Thompson) within 4 standard errors + 0.5% over 3,000
    batches, also at 9 of 40 neurons, where TF's draw-until-m-distinct rule is +7% off and a
    uniform correction on a frequency law far more."""
    counts = np.random.default_rng(1).zipf(1.6, n)
    tl = make_law(law, n, counts)
    p = law_probabilities(law, n, counts)
    T = draws_for(tl, m)
    f = np.exp(np.random.default_rng(0).normal(size=n))  # positive values, like exp(logit)
    estimates, sizes = [], []
    for batch in range(3000):
        s = sample_shared(tl, n, T, seed=3, stream=batch)
        assert np.all(np.diff(s.ids) > 0) and s.draws == T
        want = np.log(m / n) if law == "uniform" else np.log(1 - (1 - p[s.ids]) ** T)
        np.testing.assert_allclose(s.log_q, want, rtol=1e-5)
        estimates.append(float((f[s.ids] / np.exp(s.log_q.astype(np.float64))).sum()))
        sizes.append(len(s.ids))
    assert np.mean(sizes) == pytest.approx(m, rel=0.05)
    mean, se = np.mean(estimates), np.std(estimates) / math.sqrt(len(estimates))
    assert abs(mean - f.sum()) < 4 * se + 0.005 * f.sum(), (mean, f.sum(), se)
    if law == "uniform":
        every = sample_shared(tl, n, n, seed=3, stream=0)
        assert np.array_equal(every.ids, np.arange(n)) and not every.log_q.any() and every.draws == 0


def test_draws_for_a_thin_tailed_law_are_capped():
    """unigram over a few huge counts: 50 distinct of 1,000 on average would take ~10^7 draws;
    draws_for stops at MAX_DRAWS_PER_NEURON per neuron wanted, and the sample is smaller."""
    counts = np.zeros(1000, dtype=np.int64)
    counts[:3] = 10**9
    tl = make_law("unigram", 1000, counts)
    T = draws_for(tl, 50)
    assert T == MAX_DRAWS_PER_NEURON * 50
    s = sample_shared(tl, 1000, T, seed=0, stream=0)
    assert 3 <= len(s.ids) < 50


def test_pad_by_law_corrections_match_numpy():
    """The per-sample kernel: T draws, the neurons not already stamped kept once each, with
    -log(1 - (1 - P)^T) as numpy computes it; the draws that hit stamped neurons count in T."""
    tl = make_law("unigram", N, COUNTS, pad_target=12)
    assert tl.pad_draws == draws_for(tl, 12) >= 12
    p = law_probabilities("unigram", N, COUNTS)
    stamp = np.zeros(N, dtype=np.int64)
    base = 4
    stamp[[0, 9, 18]] = base  # already in the set (labels / retrieved): never drawn again
    out = np.full(N + 30, -1, dtype=np.int32)
    shift = np.zeros(N + 30, dtype=np.float32)
    out[:3] = [0, 9, 18]
    state, n = pad_by_law(np.uint64(stream_seed(1, 2, 3, 4)), tl, stamp, base, out, shift, 3, 30)
    got = out[3:n]
    assert 3 < n <= 33 and len(set(got.tolist())) == n - 3 and not set(got.tolist()) & {0, 9, 18}
    assert np.all(stamp[got] == base)
    np.testing.assert_allclose(shift[3:n], -np.log(1 - (1 - p[got]) ** 30), rtol=1e-6)
    assert not shift[:3].any()


def test_layer_config_tail_options_are_checked():
    assert LayerConfig(100, sparsity=0.1, padding=False, shared_tail=20).shared_tail == 20
    with pytest.raises(ValueError, match="not both"):
        LayerConfig(100, sparsity=0.1, shared_tail=20)  # padding is on by default
    with pytest.raises(ValueError, match="tail_law"):
        LayerConfig(100, sparsity=0.1, tail_law="zipf")
    with pytest.raises(ValueError, match="shared_tail"):
        LayerConfig(100, sparsity=0.1, padding=False, shared_tail=-1)


@pytest.mark.parametrize("padding", [True, False])
def test_random_control_samples_its_budget_by_law_with_or_without_padding(padding):
    """strategy=random samples its whole budget per sample (LayerConfig.sampled_target) whether
    `padding` is on or not: under a frequency law too, not only the uniform one."""
    from harness.data.csr import CSR
    from slide_core import NetworkConfig, SlideNetwork

    rng = np.random.default_rng(0)
    x = CSR.from_rows([sorted(rng.choice(50, 5, replace=False).tolist()) for _ in range(16)], 50)
    y = CSR.from_rows([[int(rng.integers(0, 400))] for _ in range(16)], 400)
    out = LayerConfig(400, sparsity=0.1, strategy="random", padding=padding)
    net = SlideNetwork(NetworkConfig(n_features=50, layers=(LayerConfig(16), out), lr=1e-2), seed=0,
                       label_counts=np.arange(400, 0, -1))
    net.train_batch(x, y)
    st = net.stats()
    assert net.laws[1].pad_draws >= out.budget
    assert 0.5 * out.budget <= st["padding_out_mean"] <= net.laws[1].pad_draws
