"""Validated configuration of a SLIDE network (paper terms -> code names).

Paper / reference code        here
---------------------------   -----------------------------------------------
K (hashes per table)          LayerConfig.K
L (number of tables)          LayerConfig.L
RangePow (log2 buckets)       LayerConfig.range_pow
BUCKETSIZE (128)              LayerConfig.bucket_capacity
Sparsity = 1                  LayerConfig.sparsity = 1: a dense layer, no tables
binsize (WTA/DWTA bin, m)     LayerConfig.bin_size
Rehash / Rebuild              NetworkConfig.rehash_every / rebuild_every (schedule "fixed"),
                              schedule "exponential" (the paper), "adaptive" (key drift)
Sparsity (per layer)          LayerConfig.sparsity: active budget B = ceil(sparsity*width)
padding to ~1000 nodes        LayerConfig.padding (up to B), retrieval_cap (None: the reference)

A layer with sparsity < 1 picks, per input, an active set of about B = ceil(sparsity * width)
neurons besides the forced true labels (training, output layer), in two parts:

  chosen   up to `retrieval_cap` * B neurons picked by `strategy` (None: no cap):
             vanilla    union of the L probed buckets, in table order
             threshold  neurons seen in >= `threshold` of the L buckets
             topk       the neurons seen in the most buckets
             oracle     the largest exact inner products (control: no tables)
             random     nothing chosen: the whole budget is sampled (sampled-softmax control)
  sampled  `padding`: other neurons drawn by `tail_law` (slide_core/tail.py; default
           log_uniform by training frequency) until the set holds about B (+ labels); at
           least `min_padding` of B are sampled when the chosen part is capped (a frequency
           law: drawn for, on average; draws that hit the sample's own labels or retrieved
           neurons are skipped, not redrawn, which keeps each log-Q correction exact). Or, with
           `shared_tail` = m, about m neurons drawn once per batch for all its samples.

With `log_q_correction` the sampled neurons' logits get -log(pi_j), pi_j their inclusion
probability (uniform law: + log(pool / sampled), pool = the neurons not chosen), the
sampled-softmax correction: the softmax over the active set then
estimates the full softmax's normaliser without bias, so the chosen neurons (the large
logits) are exact and the tail is estimated. Without it (the reference code) the tail is
ignored, and the larger the tail's share of the probability, the more the gradient is biased.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from slide_core.hashing.families import FAMILIES, by_name
from slide_core.sizing import auto_K, expected_retrieved
from slide_core.tail import LAWS

STRATEGIES = ("vanilla", "threshold", "topk", "random", "oracle")
TABLE_STRATEGIES = ("vanilla", "threshold", "topk")  # the ones that need hash tables
POLICIES = ("reservoir", "fifo")
PACKINGS = ("exact", "reference_ln")
OPTIMIZERS = ("lazy", "dense")
SCHEDULES = ("fixed", "exponential", "adaptive")


# sparsity "auto": an active budget of max(AUTO_BUDGET_FLOOR, AUTO_BUDGET_SCALE * sqrt(width))
# neurons, sub-linear in the layer's width (448 of 50k labels, 1,638 of 670k, 128 of 983 or 159).
# Measured (docs/retrieval.md): on the default synthetic data (50k labels, 2 epochs) P@1 at
# budget 450 matched 1,000; on Bibtex (159 labels) and Delicious (983), 3 seeds each, a budget
# of 2 sqrt(width) (26, 63) stayed 0.8 and 1.0 points of P@1 below dense training, 128 (half
# retrieved, half sampled) came within +0.1 and -0.3.
AUTO_BUDGET_SCALE = 2.0
AUTO_BUDGET_FLOOR = 128


def auto_sparsity(width: int) -> float:
    """The fraction of `width` that sparsity "auto" means (1.0: too small to be sparse)."""
    return min(1.0, max(AUTO_BUDGET_FLOOR, math.ceil(AUTO_BUDGET_SCALE * math.sqrt(width))) / width)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(frozen=True)
class LayerConfig:
    """One layer: `width` neurons; hashing options only matter when sparsity < 1."""

    width: int
    sparsity: float | str = 1.0  # 1: dense layer; "auto": see auto_sparsity
    hash_family: str = "simhash"
    K: int | str = "auto"  # "auto": slide_core.sizing.auto_K for the retrieval pool below
    L: int = 50
    range_pow: int = 18
    bin_size: int = 8
    simhash_density: float = 1.0 / 3.0
    bucket_capacity: int = 128
    insertion: str = "reservoir"
    packing: str = "exact"
    strategy: str = "topk"
    retrieval_cap: float | None = 0.75  # the strategy fills at most this share of the budget; None: no cap
    retrieval_pool: float = 8.0  # K auto: random-weight tables retrieve this many times the cap
    fan_in: int | None = None  # the layer's input width, for sizing (SimHash's collision rate depends on it)
    padding: bool = True  # fill the active set up to about the budget with neurons drawn by tail_law
    min_padding: int = 64  # with padding and a retrieval cap, at least this many of the budget are sampled
    log_q_correction: bool = True  # sampled-softmax correction of the sampled neurons' logits
    threshold: int = 2  # hard-threshold strategy: seen in >= threshold of L tables
    tail_law: str = "log_uniform"  # law of the sampled neurons (tail.py): log_uniform | uniform | unigram
    shared_tail: int = 0  # neurons sampled once per batch and shared by its samples (0: none; tail.py)
    center_rows: bool = False  # SimHash the rows minus their mean (same ranking by w.h, spread angles)
    rerank_pool: float = 0.0  # topk: take this many times the limit by hit count, keep the best by exact logit (0: off)

    def __post_init__(self) -> None:
        _check(isinstance(self.width, int) and self.width >= 1, f"width must be an int >= 1, got {self.width!r}")
        if self.sparsity == "auto":
            object.__setattr__(self, "sparsity", auto_sparsity(self.width))
        _check(isinstance(self.sparsity, (int, float)) and 0.0 < self.sparsity <= 1.0,
               f"sparsity must be 'auto' or in (0, 1], got {self.sparsity!r}")
        object.__setattr__(self, "sparsity", float(self.sparsity))
        _check(self.K == "auto" or (isinstance(self.K, int) and not isinstance(self.K, bool)),
               f"K must be 'auto' or an int, got {self.K!r}")
        _check(self.hash_family in FAMILIES, f"hash_family must be one of {FAMILIES}, got {self.hash_family!r}")
        _check(self.strategy in STRATEGIES, f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        _check(self.insertion in POLICIES, f"insertion must be one of {POLICIES}, got {self.insertion!r}")
        _check(self.packing in PACKINGS, f"packing must be one of {PACKINGS}, got {self.packing!r}")
        _check(self.L >= 1, f"L must be >= 1, got {self.L}")
        _check(1 <= self.range_pow <= 30, f"range_pow must be in [1, 30], got {self.range_pow}")
        _check(self.bin_size >= 2, f"bin_size must be >= 2, got {self.bin_size}")
        _check(self.bucket_capacity >= 1, f"bucket_capacity must be >= 1, got {self.bucket_capacity}")
        _check(self.retrieval_cap is None or self.retrieval_cap >= 0,
               f"retrieval_cap must be None or >= 0, got {self.retrieval_cap}")
        _check(1 <= self.threshold <= self.L, f"threshold must be in [1, L={self.L}], got {self.threshold}")
        _check(self.retrieval_pool > 0, f"retrieval_pool must be > 0, got {self.retrieval_pool}")
        _check(self.min_padding >= 0, f"min_padding must be >= 0, got {self.min_padding}")
        _check(not self.center_rows or by_name(self.hash_family).projections,
               f"center_rows is implemented for SimHash only (sign projections), not {self.hash_family!r}")
        _check(self.rerank_pool == 0 or (self.rerank_pool >= 1 and self.strategy == "topk"),
               f"rerank_pool must be 0 (off) or >= 1 with strategy topk, got {self.rerank_pool!r}")
        _check(self.tail_law in LAWS, f"tail_law must be one of {LAWS}, got {self.tail_law!r}")
        _check(isinstance(self.shared_tail, int) and self.shared_tail >= 0,
               f"shared_tail must be an int >= 0, got {self.shared_tail!r}")
        _check(not (self.shared_tail and self.padding),
               "a layer samples its tail per sample (padding) or shared by the batch (shared_tail > 0), "
               "not both: set padding=false with shared_tail")
        if self.K == "auto":
            object.__setattr__(self, "K", self._auto_K())
        _check(self.K >= 1, f"K must be >= 1, got {self.K}")

    def _auto_K(self) -> int:
        """K whose L tables retrieve, at random weights, retrieval_pool x chosen_limit neurons
        (at most half of what L buckets of bucket_capacity hold, so buckets do not overflow).
        Why a pool larger than the cap: trained tables retrieve far fewer neurons than random
        ones (the weights of most labels point away from most inputs), and topk keeps the
        best of the pool by collision count."""
        target = min(self.retrieval_pool * max(self.chosen_limit, 1), 0.5 * self.L * self.bucket_capacity)
        return auto_K(self.width, self.hash_family, target, self.L, bin_size=self.bin_size,
                      range_pow=self.range_pow, packing=self.packing, capacity=self.bucket_capacity,
                      dim=self.fan_in)

    @property
    def expected_retrieved(self) -> float:
        """Neurons the L probed buckets hold at random weights (slide_core.sizing)."""
        return expected_retrieved(self.width, self.hash_family, self.K, self.L, bin_size=self.bin_size,
                                  range_pow=self.range_pow, packing=self.packing, capacity=self.bucket_capacity,
                                  dim=self.fan_in)

    @property
    def dense(self) -> bool:
        return self.sparsity >= 1.0

    @property
    def uses_tables(self) -> bool:
        return not self.dense and self.strategy in TABLE_STRATEGIES

    @property
    def budget(self) -> int:
        """B: active neurons per input besides the forced labels, ceil(sparsity * width)."""
        return max(1, min(self.width, math.ceil(self.sparsity * self.width - 1e-9)))

    @property
    def chosen_limit(self) -> int:
        """Most neurons the strategy may choose per input (besides labels)."""
        if self.strategy == "random":
            return 0
        if self.retrieval_cap is None:
            return self.width if self.strategy == "oracle" else min(self.width, self.L * self.bucket_capacity)
        limit = math.ceil(self.retrieval_cap * self.budget - 1e-9)
        if self.padding:
            # the sampled softmax estimates the tail from the padding: keep enough samples
            # (Delicious, budget 128: 32 sampled -> 0.7 points of P@1 below dense, 64 -> 0.3)
            limit = min(limit, max(0, self.budget - self.min_padding))
        return min(self.width, limit)

    @property
    def sampled_target(self) -> int:
        """Size (besides labels) that per-sample sampling fills the active set up to (the
        random control samples its whole budget per sample unless the tail is shared)."""
        return self.budget if (self.padding or (self.strategy == "random" and not self.shared_tail)) else 0

    @property
    def pool_limit(self) -> int:
        """Neurons the strategy picks before the exact re-rank keeps chosen_limit of them."""
        return min(self.width, math.ceil(self.rerank_pool * self.chosen_limit)) if self.rerank_pool else self.chosen_limit

    def active_capacity(self, max_labels: int = 0) -> int:
        """Upper bound of the active-set size per sample (sizes the workspaces)."""
        if self.dense:
            return self.width
        return min(self.width, max(self.pool_limit, self.sampled_target) + max_labels)


@dataclass(frozen=True)
class NetworkConfig:
    """Sparse input of n_features -> layers[:-1] (ReLU) -> layers[-1] (softmax)."""

    n_features: int
    layers: tuple[LayerConfig, ...]
    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    optimizer: str = "lazy"
    schedule: str = "adaptive"
    rehash_every: int = 50  # batches; reference code: 50
    rebuild_every: int = 1000  # batches; reference code: 1000 (new hash functions)
    schedule_n0: int = 50  # exponential schedule: first rehash after n0 batches (paper)
    schedule_lambda: float = 0.1  # exponential schedule growth rate of the intervals
    drift_check_every: int = 10  # adaptive schedule: batches between drift checks
    drift_probe: int = 1024  # adaptive schedule: neurons re-hashed per check
    drift_threshold: float = 0.2  # adaptive schedule: rehash when this share of probe keys changed
    inference: str = "dense"  # default predict_topk mode: exact dense or "lsh"
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        _check(self.n_features >= 1, f"n_features must be >= 1, got {self.n_features}")
        _check(len(self.layers) >= 1, "layers must hold at least the output layer")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, LayerConfig):
                raise TypeError(f"layers[{i}] must be a LayerConfig, got {type(layer).__name__}")
            fan_in = self.n_features if i == 0 else self.layers[i - 1].width
            _check(layer.fan_in in (None, fan_in), f"layers[{i}].fan_in is {layer.fan_in}, but its input has {fan_in}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1 and beta2 must be in [0, 1)")
        _check(self.eps > 0, f"eps must be > 0, got {self.eps}")
        _check(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        _check(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        _check(self.rehash_every >= 1 and self.rebuild_every >= 1, "rehash_every and rebuild_every must be >= 1")
        _check(self.schedule_n0 >= 1, f"schedule_n0 must be >= 1, got {self.schedule_n0}")
        _check(self.schedule_lambda >= 0, f"schedule_lambda must be >= 0, got {self.schedule_lambda}")
        _check(self.drift_check_every >= 1 and self.drift_probe >= 1, "drift_check_every and drift_probe must be >= 1")
        _check(0.0 < self.drift_threshold <= 1.0, f"drift_threshold must be in (0, 1], got {self.drift_threshold}")
        _check(self.inference in ("dense", "lsh"), f"inference must be 'dense' or 'lsh', got {self.inference!r}")

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.n_features, *(layer.width for layer in self.layers))

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "NetworkConfig":
        d = dict(d)
        d["layers"] = tuple(LayerConfig(**layer) for layer in d["layers"])
        return NetworkConfig(**d)

