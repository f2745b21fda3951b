"""The protocol every model obeys, so one training loop, clock, evaluator and tracker serve all.

numpy_dense, slide and the TensorFlow baselines implement `Model`. The loop (harness.loop)
owns batching, the clock, evaluation and tracking; a model only trains on a batch and predicts.
Models are built by Hydra from conf/model/*.yaml (`_target_`) with one `ModelContext`, which
carries everything the fair-comparison contract says must be identical across models.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from harness.data.csr import CSR
from slide_core.layer import INIT_STD


@dataclass(frozen=True)
class ModelContext:
    """What every model of one comparison shares (docs/design.md, fair-comparison contract)."""

    n_features: int
    n_labels: int
    hidden: tuple[int, ...]  # widths of the ReLU hidden layers, e.g. (128,)
    lr: float  # Adam learning rate
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    seed: int = 0
    threads: int = 1  # CPU threads the model may use (numba / TF intra-op)
    batch_size: int = 128
    init_std: float = INIT_STD  # weights ~ N(0, init_std), biases 0: slide_core.layer.random_weights
    adam: str = "lazy"  # train.adam: "lazy" (rows the batch touched) | "dense" (every weight every step)
    # training-set count of every label (int64, n_labels), for samplers that follow the data
    label_counts: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return (self.n_features, *self.hidden, self.n_labels)


class JobSkipped(Exception):
    """Raised by a model that cannot run here (e.g. tf_gpu without a GPU); the job's run is
    recorded with a `skipped` tag and this message as the reason, and the sweep goes on."""


@runtime_checkable
class Model(Protocol):
    def warmup(self, x: CSR, y: CSR) -> None:
        """Compile / trace everything train_step and predict_topk need, on this batch, WITHOUT
        changing the model's state (weights, optimiser, RNG, step). Timed as time/compile_s."""

    def train_step(self, x: CSR, y: CSR) -> float:
        """One optimiser step on a batch; returns the mean loss over the batch. Must return
        only after the work is done (a GPU model synchronises), because the training clock
        stops when it returns. Loss: softmax cross-entropy with target y/|y|; a row with no
        labels contributes 0 loss and 0 gradient but still counts in the batch mean."""

    def predict_topk(self, x: CSR, k: int) -> np.ndarray:
        """int32 (n_rows, k): the k highest-scoring labels per row, best first."""

    def diagnostics(self) -> dict[str, float]:
        """Model-specific metrics accumulated since the last call (e.g. slide/active_out_mean),
        logged at every evaluation. Resets its accumulators."""

    def describe(self) -> dict[str, str]:
        """Tags for the run: device, optimiser mode, library versions ..."""

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything a resumed job needs to continue bit for bit, as named arrays: weights,
        optimiser moments and step, random states (harness.job_state writes them out
        before the next step, so views of live arrays will do)."""

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what state_dict gave; KeyError / ValueError when it is another model's."""

    def close(self) -> None:
        """Release threads, sessions, files."""

    # Optional, looked up with getattr by the harness:
    #   eval_diagnostics(x, y) -> dict[str, float]: metrics computed on the evaluation subset at
    #       every evaluation, outside the training clock (SLIDE: retrieval quality);
    #   resolved_params() -> dict: settings resolved at construction (SLIDE: K, L, budget for
    #       "auto"), logged once as run params.
