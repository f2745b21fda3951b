"""model=slide: the SLIDE engine (slide_core) behind the harness's Model protocol.

The network shape, Adam settings, seed, threads and initial weights come from the shared
ModelContext (the fair-comparison contract); everything SLIDE-specific (hash family, K, L,
strategy, schedule, lazy/dense Adam ...) is a typed keyword here, set in conf/model/slide*.yaml.
The keywords describe the OUTPUT layer; hidden layers are dense (sparsity 1), as in the
paper's Amazon-670K and Delicious-200K networks.
"""
from __future__ import annotations

import logging
import platform

import numba
import numpy as np

from experiments.data.csr import CSR
from experiments.models.base import ModelContext
from experiments.models.init import initial_weights
from slide_core import LayerConfig, NetworkConfig, SlideNetwork

log = logging.getLogger(__name__)


class SlideModel:
    def __init__(self, ctx: ModelContext, *, sparsity: float = 0.005, hash_family: str = "dwta", K: int = 6,
                 L: int = 50, range_pow: int = 18, bin_size: int = 8, simhash_density: float = 1.0 / 3.0,
                 bucket_capacity: int = 128, insertion: str = "reservoir", packing: str = "exact",
                 strategy: str = "vanilla", budget: int | None = None, threshold: int = 2, min_active: int = 1000,
                 optimizer: str = "lazy", schedule: str = "fixed", rehash_every: int = 50,
                 rebuild_every: int = 1000, schedule_n0: int = 50, schedule_lambda: float = 0.1,
                 inference: str = "dense", parallel: bool | None = None, warmup_both: bool = True):
        self.ctx = ctx
        output = LayerConfig(
            width=ctx.n_labels, sparsity=float(sparsity), hash_family=hash_family, K=int(K), L=int(L),
            range_pow=int(range_pow), bin_size=int(bin_size), simhash_density=float(simhash_density),
            bucket_capacity=int(bucket_capacity), insertion=insertion, packing=packing, strategy=strategy,
            budget=None if budget is None else int(budget), threshold=int(threshold),
            min_active=min(int(min_active), ctx.n_labels))
        self.config = NetworkConfig(
            n_features=ctx.n_features, layers=(*(LayerConfig(int(h)) for h in ctx.hidden), output),
            lr=ctx.lr, beta1=ctx.beta1, beta2=ctx.beta2, eps=ctx.eps, optimizer=optimizer, schedule=schedule,
            rehash_every=int(rehash_every), rebuild_every=int(rebuild_every), schedule_n0=int(schedule_n0),
            schedule_lambda=float(schedule_lambda), inference=inference, seed=ctx.seed)
        # parallel (HOGWILD) kernels whenever more than one thread is allowed, unless told
        self.threads = int(ctx.threads) if (parallel is None or parallel) else 1
        self.warmup_both = bool(warmup_both)
        numba.set_num_threads(max(1, min(int(ctx.threads), numba.config.NUMBA_NUM_THREADS)))
        self.net = SlideNetwork(self.config, initial_weights=initial_weights(ctx), seed=ctx.seed,
                                threads=self.threads)

    # -- the Model protocol -----------------------------------------------------------------
    def warmup(self, x: CSR, y: CSR) -> None:
        """Compile every kernel (serial and parallel, train and predict; only the variant the run
        uses when warmup_both=False: ~40% less cold compile time) on a tiny
        throwaway network with the same layer options and dtypes; the real network's weights,
        Adam state, tables, RNG and step are not touched."""
        c = self.config
        small_out = c.layers[-1]
        width = max(64, min(small_out.width, 512))
        tiny_out = LayerConfig(**{**small_out.__dict__, "width": width, "min_active": min(small_out.min_active, width),
                                  "range_pow": min(small_out.range_pow, 10),
                                  "budget": None if small_out.budget is None else min(small_out.budget, width)})
        tiny = NetworkConfig(**{**c.__dict__, "n_features": c.n_features,
                                "layers": (*(LayerConfig(8) for _ in c.layers[:-1]), tiny_out)})
        rows = min(8, x.n_rows)
        xs = x.row_slice(0, rows)
        ys = y.row_slice(0, rows)
        ys = CSR(ys.indptr, np.minimum(ys.indices, width - 1).astype(np.int32), ys.data, width)
        for threads in (sorted({1, self.threads}) if self.warmup_both else [self.threads]):
            net = SlideNetwork(tiny, seed=c.seed, threads=threads)
            net.train_batch(xs, ys)
            net.predict_topk(xs, min(5, width))
            net.predict_topk(xs, min(5, width), mode="lsh")
            net.stats()

    def train_step(self, x: CSR, y: CSR) -> float:
        return self.net.train_batch(x, y)

    def predict_topk(self, x: CSR, k: int) -> np.ndarray:
        return self.net.predict_topk(x, k)

    def diagnostics(self) -> dict[str, float]:
        return {f"slide/{k}": float(v) for k, v in self.net.stats().items()}

    def describe(self) -> dict[str, str]:
        out = self.config.layers[-1]
        return {
            "optimizer": f"adam_{self.config.optimizer}",
            "slide.optimizer_mode": self.config.optimizer,
            "slide.hash_family": out.hash_family,
            "slide.strategy": out.strategy,
            "slide.packing": out.packing,
            "slide.kernels": "parallel_hogwild" if self.threads > 1 else "serial",
            "slide.inference": self.config.inference,
            "backend": f"numba {numba.__version__} ({numba.threading_layer() if self._threading_known() else 'n/a'})",
            "python": platform.python_version(),
        }

    @staticmethod
    def _threading_known() -> bool:
        try:
            numba.threading_layer()
            return True
        except ValueError:  # no parallel kernel has run yet
            return False

    def close(self) -> None:
        self.net = None
