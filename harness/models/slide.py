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
from dataclasses import fields

import numba
import numpy as np

import contract
from harness.data.csr import CSR
from harness.models.base import ModelContext
from harness.models.init import initial_weights
from slide_core import LayerConfig, NetworkConfig, SlideNetwork

log = logging.getLogger(__name__)


_LAYER = {f.name: f.default for f in fields(LayerConfig)}
_NET = {f.name: f.default for f in fields(NetworkConfig)}


class SlideModel:
    def __init__(self, ctx: ModelContext, *, sparsity: float | str = "auto", active_budget: int | None = None,
                 hash_family: str = _LAYER["hash_family"], K: int | str = _LAYER["K"], L: int = _LAYER["L"],
                 range_pow: int = _LAYER["range_pow"], bin_size: int = _LAYER["bin_size"],
                 simhash_density: float = _LAYER["simhash_density"], bucket_capacity: int = _LAYER["bucket_capacity"],
                 insertion: str = _LAYER["insertion"], packing: str = _LAYER["packing"],
                 strategy: str = _LAYER["strategy"], retrieval_cap: float | None = _LAYER["retrieval_cap"],
                 retrieval_pool: float = _LAYER["retrieval_pool"], padding: bool = _LAYER["padding"],
                 min_padding: int = _LAYER["min_padding"],
                 log_q_correction: bool = _LAYER["log_q_correction"], threshold: int = _LAYER["threshold"],
                 tail_law: str = _LAYER["tail_law"], shared_tail: int = _LAYER["shared_tail"],
                 center_rows: bool = _LAYER["center_rows"], rerank_pool: float = _LAYER["rerank_pool"],
                 adam: str | None = None, schedule: str = _NET["schedule"],
                 rehash_every: int = _NET["rehash_every"], rebuild_every: int = _NET["rebuild_every"],
                 schedule_n0: int = _NET["schedule_n0"], schedule_lambda: float = _NET["schedule_lambda"],
                 drift_check_every: int = _NET["drift_check_every"], drift_probe: int = _NET["drift_probe"],
                 drift_threshold: float = _NET["drift_threshold"], inference: str = _NET["inference"],
                 parallel: bool | None = None, warmup_both: bool = False, bias_init_std: float | None = None,
                 retrieval_rows: int = 256, min_lift: float = 2.0):
        self.ctx = ctx
        if active_budget is not None:  # an absolute budget (the reference code pads to 1000 whatever the width)
            sparsity = min(1.0, int(active_budget) / ctx.n_labels)
        output = LayerConfig(
            width=ctx.n_labels, fan_in=ctx.layer_sizes[-2],
            sparsity=sparsity if sparsity == "auto" else float(sparsity), hash_family=hash_family,
            K=K if K == "auto" else int(K), L=int(L), range_pow=int(range_pow), bin_size=int(bin_size),
            simhash_density=float(simhash_density), bucket_capacity=int(bucket_capacity), insertion=insertion,
            packing=packing, strategy=strategy, retrieval_cap=None if retrieval_cap is None else float(retrieval_cap),
            retrieval_pool=float(retrieval_pool), padding=bool(padding), min_padding=int(min_padding),
            log_q_correction=bool(log_q_correction),
            threshold=int(threshold), tail_law=tail_law, shared_tail=int(shared_tail),
            center_rows=bool(center_rows), rerank_pool=float(rerank_pool))
        self.config = NetworkConfig(
            n_features=ctx.n_features, layers=(*(LayerConfig(int(h)) for h in ctx.hidden), output),
            lr=ctx.lr, beta1=ctx.beta1, beta2=ctx.beta2, eps=ctx.eps, optimizer=adam or ctx.adam,
            schedule=schedule,
            rehash_every=int(rehash_every), rebuild_every=int(rebuild_every), schedule_n0=int(schedule_n0),
            schedule_lambda=float(schedule_lambda), drift_check_every=int(drift_check_every),
            drift_probe=int(drift_probe), drift_threshold=float(drift_threshold), inference=inference,
            seed=ctx.seed)
        # parallel (HOGWILD) kernels whenever more than one thread is allowed, unless told; never
        # more threads than Numba's pool has (NUMBA_NUM_THREADS, e.g. 1 under the joblib launcher)
        numba.set_num_threads(max(1, min(int(ctx.threads), numba.config.NUMBA_NUM_THREADS)))
        self.threads = numba.get_num_threads() if (parallel is None or parallel) else 1
        self.warmup_both = bool(warmup_both)
        self.retrieval_rows = int(retrieval_rows)
        self.min_lift = float(min_lift)
        self._warned_lift = False
        weights = initial_weights(ctx)
        if bias_init_std is not None:  # slide_reference: the C++ code draws biases from N(0, 0.01) too
            rng = np.random.default_rng([ctx.seed, 0xB1A5])
            weights = [(W, (rng.standard_normal(b.shape, dtype=np.float32) * np.float32(bias_init_std)))
                       for W, b in weights]
        self.net = SlideNetwork(self.config, initial_weights=weights, seed=ctx.seed, threads=self.threads,
                                label_counts=ctx.label_counts)

    def resolved_params(self) -> dict[str, float | int]:
        """What "auto" became for this layer width, logged as run params."""
        out = self.config.layers[-1]
        return {"slide.sparsity": out.sparsity, "slide.budget": out.budget, "slide.retrieval_limit": out.chosen_limit,
                "slide.K": out.K, "slide.L": out.L,
                "slide.expected_retrieved_at_init": round(out.expected_retrieved, 1),
                "slide.shared_tail": min(out.shared_tail, out.width), "slide.shared_tail_draws": self.net.shared_draws,
                "slide.padding_draws": self.net.laws[-1].pad_draws}

    # -- the Model protocol -----------------------------------------------------------------
    def warmup(self, x: CSR, y: CSR) -> None:
        """Compile every kernel (serial and parallel, train and predict; only the variant the run
        uses when warmup_both=False: much less cold compile time) on a tiny
        throwaway network with the same layer options and dtypes; the real network's weights,
        Adam state, tables, RNG and step are not touched."""
        c = self.config
        small_out = c.layers[-1]
        width = max(64, min(small_out.width, 512))
        tiny_out = LayerConfig(**{**small_out.__dict__, "width": width, "range_pow": min(small_out.range_pow, 10),
                                  "fan_in": None})
        tiny = NetworkConfig(**{**c.__dict__, "n_features": c.n_features,
                                "layers": (*(LayerConfig(8) for _ in c.layers[:-1]), tiny_out)})
        rows = min(8, x.n_rows)
        xs = x.row_slice(0, rows)
        ys = y.row_slice(0, rows)
        ys = CSR(ys.indptr, np.minimum(ys.indices, width - 1).astype(np.int32), ys.data, width)
        for threads in (sorted({1, self.threads}) if self.warmup_both else [self.threads]):
            net = SlideNetwork(tiny, seed=c.seed, threads=threads, label_counts=np.ones(width, dtype=np.int64))
            net.train_batch(xs, ys)
            net.predict_topk(xs, min(5, width))
            net.predict_topk(xs, min(5, width), mode="lsh")
            net.stats()

    def train_step(self, x: CSR, y: CSR) -> float:
        return self.net.train_batch(x, y)

    def predict_topk(self, x: CSR, k: int) -> np.ndarray:
        return self.net.predict_topk(x, k)

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.net.state()

    def load_state_dict(self, arrays) -> None:
        self.net = None  # freed before the restored one is built: one network in memory, not two
        net = SlideNetwork.from_state(arrays, threads=self.threads)
        if net.config.to_dict() != self.config.to_dict():
            raise ValueError("the checkpoint's SLIDE network config differs from this job's")
        self.net = net

    def diagnostics(self) -> dict[str, float]:
        return {f"slide/{k}": float(v) for k, v in self.net.stats().items()}

    def eval_diagnostics(self, x: CSR, y: CSR) -> dict[str, float]:
        """Retrieval quality on the first `retrieval_rows` evaluation rows (outside the training
        clock): recall of the exact top-10/100 logits, lift over random, softmax mass. Warns once
        when, after the tables were first rebuilt from trained weights, they select no better
        than random."""
        rows = min(self.retrieval_rows, x.n_rows)
        if rows == 0 or self.config.layers[-1].dense:
            return {}
        found = self.net.retrieval_quality(x.row_slice(0, rows), y.row_slice(0, rows))
        renamed = {"retrieved_mean": "eval_retrieved_mean", "label_recall": "eval_label_recall"}
        out = {f"slide/{renamed.get(k, k)}": float(v) for k, v in found.items()}
        lift = found.get("lift_at_100")
        if (lift is not None and lift < self.min_lift and self.net.rehash_total > 0 and not self._warned_lift
                and self.config.layers[-1].uses_tables):
            self._warned_lift = True
            c = self.config.layers[-1]
            log.warning("SLIDE's hash tables select no better than random: lift@100 = %.2f < %.1f after %d "
                        "rehashes (hash_family=%s K=%d L=%d strategy=%s, %.0f retrieved per row). Try "
                        "hash_family=simhash, a smaller K (more neurons per bucket) or a larger "
                        "retrieval_pool, more tables (L), or a schedule that rehashes sooner.",
                        lift, self.min_lift, self.net.rehash_total, c.hash_family, c.K, c.L, c.strategy,
                        found["retrieved_mean"])
        return out

    def describe(self) -> dict[str, str]:
        out = self.config.layers[-1]
        return {
            contract.THREADS: str(self.threads),  # what the kernels run on (serial: 1)
            contract.OPTIMIZER: f"adam_{self.config.optimizer}",
            "slide.hash_family": out.hash_family,
            "slide.strategy": out.strategy,
            "slide.packing": out.packing,
            "slide.schedule": self.config.schedule,
            "slide.log_q_correction": str(out.log_q_correction).lower(),
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
