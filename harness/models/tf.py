"""Adapters: the TensorFlow baselines (baselines/) behind the Model protocol.

    tf_cpu      TFSoftmaxModel(ctx, device="cpu")   full softmax, oneDNN, XLA by default
    tf_gpu      TFSoftmaxModel(ctx, device="gpu")   the same on /GPU:0; JobSkipped without a GPU
    tf_sampled  TFSampledSoftmaxModel(ctx, ...)     TF's sampled softmax (log-uniform by frequency rank), XLA, full-softmax eval

TensorFlow is imported inside __init__ only, after the thread pools are chosen, so importing
this module (as Hydra's instantiate does) costs nothing and the SLIDE path never loads TF. The
harness runs TF jobs in a spawned subprocess (conf/model/tf_*.yaml: isolate: true) with the
config's env (CUDA_VISIBLE_DEVICES, TF_CPP_MIN_LOG_LEVEL) set before this runs.
Every model starts from harness.models.init.initial_weights(ctx): the same weights as SLIDE.
"""
from __future__ import annotations

import gc
import logging

import numpy as np

import contract
from harness.data.csr import CSR
from harness.models.base import JobSkipped, ModelContext
from harness.models.init import initial_weights

log = logging.getLogger(__name__)

class _TFModel:
    """Shared set-up: threads before any op, device choice, memory guard, tags."""

    name = "tf"

    def _setup(self, ctx: ModelContext, device: str, inter_op_threads: int | None,
               logit_columns: int, logit_rows: int, eval_chunk: int | None, check_memory: bool) -> None:
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
        from baselines import devices, memory
        from baselines.dense_softmax import default_eval_chunk

        self.ctx = ctx
        self.device = device
        self._eval_weights = None  # output weights copied for dense_topk, dropped at every train step
        self.intra_op, self.inter_op = devices.configure_threads(ctx.threads, inter_op_threads or ctx.threads)
        self.gpu_model = None
        self.tf_device = "/CPU:0"
        if device == "gpu":
            report = devices.detect_gpus()
            if not report.names:
                raise JobSkipped(report.reason)
            self.gpu_model, self.tf_device = report.names[0], "/GPU:0"
            log.info("TensorFlow on /GPU:0 (%s)", self.gpu_model)
        self.eval_chunk = eval_chunk or default_eval_chunk(ctx.n_labels)
        if check_memory:  # before any weight exists: refuse instead of being killed mid-run
            est = memory.estimate(ctx.layer_sizes, ctx.batch_size, logit_columns=logit_columns,
                                  logit_rows=logit_rows, eval_chunk=self.eval_chunk)
            memory.check_fits(est, f"{type(self).__name__} {ctx.layer_sizes} batch {ctx.batch_size}", device)

    def _adam(self):
        from baselines.dense_softmax import AdamConfig

        c = self.ctx
        return AdamConfig(lr=c.lr, beta1=c.beta1, beta2=c.beta2, eps=c.eps)

    # --- Model protocol -------------------------------------------------------------------
    def warmup(self, x: CSR, y: CSR) -> None:
        """Trace what the run uses: the train step, and the hidden-layer function + Numba top-k
        that evaluation calls (not TF's own top-k, which evaluation never runs)."""
        self.net.warmup(x, y, k=None)
        self.predict_topk(x.row_slice(0, min(8, x.n_rows)), 1)
        self._eval_weights = None
        self._sync()

    def train_step(self, x: CSR, y: CSR) -> float:
        self._eval_weights = None  # the weights change: the next evaluation copies them again
        loss = self.net.train_step(x, y)
        self._sync()
        return loss

    def predict_topk(self, x: CSR, k: int) -> np.ndarray:
        """Hidden activations from TF, then the labels ranked by slide_core's dense_topk (the
        same ranking code and tie-breaking, lower label id first, as every other model; at 670K
        labels it was faster than TF's own matmul + top_k: benchmarks/bench_inference.py --tf
        measures it).
        The output weights are copied to numpy at the first call after a training step and
        reused by the following calls, i.e. once per evaluation (the evaluator calls this
        chunk by chunk), not once per chunk."""
        from slide_core.inference import dense_topk

        if not 1 <= k <= self.ctx.n_labels:
            raise ValueError(f"k must be in [1, {self.ctx.n_labels}], got {k}")
        if self._eval_weights is None:
            self._eval_weights = self.net.output_weights()
        W, b = self._eval_weights
        return dense_topk(self.net.predict_hidden(x), W, b, int(k), threads=self.ctx.threads)

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.net.state_dict()

    def load_state_dict(self, arrays) -> None:
        self.net.load_state_dict(arrays)
        self._eval_weights = None

    def diagnostics(self) -> dict[str, float]:
        # a growing count means the step was retraced / recompiled inside the training clock
        return {"tf/traces": float(self.net.tracing_count()),
                "tf/input_shapes": float(len(self.net.shapes_seen))}

    def describe(self) -> dict[str, str]:
        import tensorflow as tf
        from baselines.devices import onednn_state

        tags = {
            contract.THREADS: str(self.intra_op),  # the intra-op pool actually in force
            contract.DEVICE: self.device,
            "tf_device": self.tf_device,
            "lib.tensorflow": tf.__version__,
            "onednn": onednn_state(),
            "jit_compile": str(self.net.jit_compile).lower(),
            "intra_op_threads": str(self.intra_op),
            "inter_op_threads": str(self.inter_op),
            # fused ResourceApplyAdam, every weight every step (a full softmax touches every output row)
            contract.OPTIMIZER: "adam_dense",
            "first_layer": "embedding bag (gather + unsorted_segment_sum)",
            "eval_chunk": str(self.net.eval_chunk),
        }
        if self.gpu_model:
            tags[contract.GPU_MODEL] = self.gpu_model
        return tags

    def close(self) -> None:
        self.net = self._eval_weights = None
        gc.collect()

    def _sync(self) -> None:
        if self.device == "gpu":  # the clock stops when train_step returns: the GPU must be idle
            import tensorflow as tf

            tf.test.experimental.sync_devices()


class TFSoftmaxModel(_TFModel):
    """Full softmax over all labels (tf_cpu, tf_gpu)."""

    name = "tf_softmax"

    def __init__(self, ctx: ModelContext, device: str = "cpu", jit_compile: bool = True,
                 inter_op_threads: int | None = None, eval_chunk: int | None = None,
                 check_memory: bool = True):
        self._setup(ctx, device, inter_op_threads, ctx.n_labels, ctx.batch_size, eval_chunk, check_memory)
        from baselines.dense_softmax import DenseSoftmaxNet

        self.net = DenseSoftmaxNet(initial_weights(ctx), self._adam(), ctx.batch_size,
                                   jit_compile=jit_compile, device=self.tf_device, eval_chunk=self.eval_chunk)


class TFSampledSoftmaxModel(_TFModel):
    """TF's sampled softmax (tf.nn.sampled_softmax_loss's math, per row); n_sampled, else a
    fraction of the labels (the reference script samples 10%), drawn by `sampler`
    (baselines.sampled_softmax.SAMPLERS; the frequency-based ones use ctx.label_counts)."""

    name = "tf_sampled"

    def __init__(self, ctx: ModelContext, n_sampled: int | None = None, sampled_fraction: float = 0.1,
                 sampler: str = "log_uniform_by_frequency", unigram_distortion: float = 1.0, adam: str | None = None,
                 device: str = "cpu", jit_compile: bool = True, inter_op_threads: int | None = None,
                 eval_chunk: int | None = None, check_memory: bool = True):
        if n_sampled is None:
            if not 0.0 < sampled_fraction <= 1.0:
                raise ValueError(f"sampled_fraction must be in (0, 1], got {sampled_fraction}")
            n_sampled = max(1, round(sampled_fraction * ctx.n_labels))
        self.n_sampled = min(int(n_sampled), ctx.n_labels)
        self._setup(ctx, device, inter_op_threads, self.n_sampled, ctx.batch_size, eval_chunk, check_memory)
        from baselines.sampled_softmax import SampledSoftmaxNet, make_sampler

        self.sampler_kind = sampler
        self.adam_mode = adam or ctx.adam  # null: the shared train.adam
        draw = make_sampler(sampler, ctx.n_labels, ctx.seed, ctx.label_counts, unigram_distortion)
        self.net = SampledSoftmaxNet(initial_weights(ctx), self._adam(), ctx.batch_size, self.n_sampled,
                                     seed=ctx.seed, jit_compile=jit_compile, device=self.tf_device,
                                     eval_chunk=self.eval_chunk, sampler=draw, adam_mode=self.adam_mode)

    def describe(self) -> dict[str, str]:
        tags = super().describe()
        tags["n_sampled"] = str(self.n_sampled)
        tags["sampler"] = f"{self.sampler_kind}, unique, shared by the batch (numpy twin of TF's)"
        tags[contract.OPTIMIZER] = f"adam_{self.adam_mode}"
        return tags

    def diagnostics(self) -> dict[str, float]:
        out = super().diagnostics()
        out["tf/sampler_tries"] = float(self.net.last_tries)
        return out
