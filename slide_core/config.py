"""Validated configuration of a SLIDE network (paper terms -> code names).

Paper / reference code        here
---------------------------   -----------------------------------------------
K (hashes per table)          LayerConfig.K
L (number of tables)          LayerConfig.L
RangePow (log2 buckets)       LayerConfig.range_pow
BUCKETSIZE (128)              LayerConfig.bucket_capacity
Sparsity (per layer)          LayerConfig.sparsity (1 = dense layer, no tables)
binsize (WTA/DWTA bin, m)     LayerConfig.bin_size
Rehash / Rebuild              NetworkConfig.rehash_every / rebuild_every
padding to ~1000 nodes        LayerConfig.min_active

A layer with sparsity < 1 builds L hash tables over its neurons and picks, per input, an
active set with `strategy`:
  vanilla    union of the L probed buckets (optionally capped at `budget`)
  threshold  neurons seen in >= `threshold` of the L buckets
  topk       the `budget` neurons seen in the most buckets
  random     `budget` uniformly random neurons (sampled-softmax control, no tables)
  oracle     the `budget` neurons with the largest exact inner product (control, no tables)
`budget` defaults to ceil(sparsity * width).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

HASH_FAMILIES = ("dwta", "wta", "simhash", "doph")
STRATEGIES = ("vanilla", "threshold", "topk", "random", "oracle")
TABLE_STRATEGIES = ("vanilla", "threshold", "topk")  # the ones that need hash tables
POLICIES = ("reservoir", "fifo")
PACKINGS = ("exact", "reference_ln")
OPTIMIZERS = ("lazy", "dense")
SCHEDULES = ("fixed", "exponential")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(frozen=True)
class LayerConfig:
    """One layer: `width` neurons; hashing options only matter when sparsity < 1."""

    width: int
    sparsity: float = 1.0
    hash_family: str = "dwta"
    K: int = 6
    L: int = 50
    range_pow: int = 18
    bin_size: int = 8
    simhash_density: float = 1.0 / 3.0
    bucket_capacity: int = 128
    insertion: str = "reservoir"
    packing: str = "exact"
    strategy: str = "vanilla"
    budget: int | None = None  # cap / size of the active set; None -> ceil(sparsity*width)
    threshold: int = 2  # hard-threshold strategy: seen in >= threshold of L tables
    min_active: int = 0  # pad the active set with random neurons up to this size

    def __post_init__(self) -> None:
        _check(isinstance(self.width, int) and self.width >= 1, f"width must be an int >= 1, got {self.width!r}")
        _check(0.0 < self.sparsity <= 1.0, f"sparsity must be in (0, 1], got {self.sparsity}")
        _check(self.hash_family in HASH_FAMILIES, f"hash_family must be one of {HASH_FAMILIES}, got {self.hash_family!r}")
        _check(self.strategy in STRATEGIES, f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        _check(self.insertion in POLICIES, f"insertion must be one of {POLICIES}, got {self.insertion!r}")
        _check(self.packing in PACKINGS, f"packing must be one of {PACKINGS}, got {self.packing!r}")
        _check(self.K >= 1 and self.L >= 1, f"K and L must be >= 1, got K={self.K} L={self.L}")
        _check(1 <= self.range_pow <= 30, f"range_pow must be in [1, 30], got {self.range_pow}")
        _check(self.bin_size >= 2, f"bin_size must be >= 2, got {self.bin_size}")
        _check(self.bucket_capacity >= 1, f"bucket_capacity must be >= 1, got {self.bucket_capacity}")
        _check(self.budget is None or self.budget >= 1, f"budget must be None or >= 1, got {self.budget}")
        _check(1 <= self.threshold <= self.L, f"threshold must be in [1, L={self.L}], got {self.threshold}")
        _check(self.min_active >= 0, f"min_active must be >= 0, got {self.min_active}")

    @property
    def dense(self) -> bool:
        return self.sparsity >= 1.0

    @property
    def uses_tables(self) -> bool:
        return not self.dense and self.strategy in TABLE_STRATEGIES

    @property
    def effective_budget(self) -> int:
        """Active-set size for topk/random/oracle, cap for vanilla when `budget` is set."""
        if self.budget is not None:
            return min(self.budget, self.width)
        return max(1, min(self.width, math.ceil(self.sparsity * self.width)))

    def capacity(self, max_labels: int = 0) -> int:
        """Upper bound of the active-set size per sample (sizes the workspaces)."""
        if self.dense:
            return self.width
        if self.strategy == "vanilla":
            base = self.L * self.bucket_capacity if self.budget is None else self.effective_budget
        elif self.strategy == "threshold":
            base = self.L * self.bucket_capacity // self.threshold
        else:
            base = self.effective_budget
        return min(self.width, max(base, self.min_active) + max_labels)


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
    schedule: str = "fixed"
    rehash_every: int = 50  # batches; reference code: 50
    rebuild_every: int = 1000  # batches; reference code: 1000 (new hash functions)
    schedule_n0: int = 50  # exponential schedule: first rehash after n0 batches (paper)
    schedule_lambda: float = 0.1  # exponential schedule growth rate of the intervals
    inference: str = "dense"  # default predict_topk mode: exact dense or "lsh"
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        _check(self.n_features >= 1, f"n_features must be >= 1, got {self.n_features}")
        _check(len(self.layers) >= 1, "layers must hold at least the output layer")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, LayerConfig):
                raise TypeError(f"layers[{i}] must be a LayerConfig, got {type(layer).__name__}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1 and beta2 must be in [0, 1)")
        _check(self.eps > 0, f"eps must be > 0, got {self.eps}")
        _check(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        _check(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        _check(self.rehash_every >= 1 and self.rebuild_every >= 1, "rehash_every and rebuild_every must be >= 1")
        _check(self.schedule_n0 >= 1, f"schedule_n0 must be >= 1, got {self.schedule_n0}")
        _check(self.schedule_lambda >= 0, f"schedule_lambda must be >= 0, got {self.schedule_lambda}")
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

    def with_(self, **changes) -> "NetworkConfig":
        return replace(self, **changes)

