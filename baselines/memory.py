"""Estimate a dense model's memory before building it, and refuse what cannot fit.

A 670k-label model that does not fit is otherwise killed by the OS minutes into a run with no
message. The estimate is deliberately simple arithmetic on float32 tensors: parameters, their
gradients (dense: the full-softmax gradient is dense and the Adam update densifies the rest),
Adam's two moments, the logits of one batch and the temporaries of softmax and its gradient,
the evaluation chunk's logits, the input, plus a fixed allowance for the TF runtime.
No TensorFlow import: the check runs before TF allocates anything.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
from typing import NamedTuple, Sequence

log = logging.getLogger(__name__)

GIB = 1024 ** 3
F32 = 4
TF_RUNTIME_BYTES = int(0.6 * GIB)  # TF + Python + libraries, measured ~0.5 GiB RSS after import
LOGIT_COPIES = 4  # logits, exp/softmax, its gradient, the target scatter (full softmax, no XLA)
EVAL_LOGIT_COPIES = 2  # logits + top-k workspace


class InsufficientMemoryError(MemoryError):
    """The model would not fit; the message carries the estimate and what is available."""


class MemoryEstimate(NamedTuple):
    params: int
    gradients: int
    adam: int
    train_logits: int
    eval_logits: int
    inputs: int
    runtime: int

    @property
    def total(self) -> int:
        return sum(self)

    def describe(self) -> str:
        parts = ", ".join(f"{name} {value / GIB:.2f}" for name, value in zip(self._fields, self))
        return f"{self.total / GIB:.2f} GiB ({parts})"


def n_parameters(layer_sizes: Sequence[int]) -> int:
    return sum(n_in * n_out + n_out for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:]))


def estimate(layer_sizes: Sequence[int], batch_size: int, logit_columns: int | None = None,
             logit_rows: int | None = None, eval_chunk: int = 256, nnz_per_row: float = 1000.0,
             runtime_bytes: int = TF_RUNTIME_BYTES) -> MemoryEstimate:
    """Bytes a dense model of these layer sizes needs.

    logit_columns: classes scored per training row (all labels for the full softmax, the sampled
    ones for sampled softmax); logit_rows: rows scored (batch size, or label pairs).
    """
    if len(layer_sizes) < 2 or min(layer_sizes) < 1:
        raise ValueError(f"layer_sizes must be >= 2 positive sizes, got {list(layer_sizes)}")
    n_labels = layer_sizes[-1]
    p = n_parameters(layer_sizes) * F32
    cols = n_labels if logit_columns is None else logit_columns
    rows = batch_size if logit_rows is None else logit_rows
    train_logits = LOGIT_COPIES * rows * cols * F32
    eval_logits = EVAL_LOGIT_COPIES * eval_chunk * n_labels * F32
    widest_hidden = max(layer_sizes[1:-1], default=0)
    # input entries (id, row, value) + their gathered first-layer rows and gradient
    inputs = int(batch_size * nnz_per_row) * (3 * 4 + 2 * widest_hidden * F32)
    return MemoryEstimate(p, p, 2 * p, train_logits, eval_logits, inputs, runtime_bytes)


def available_host_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def available_gpu_bytes() -> int | None:
    """Free memory of GPU 0 from nvidia-smi, or None when it cannot be read."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
        return int(float(out.strip().splitlines()[0])) * 1024 * 1024
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def check_fits(est: MemoryEstimate, what: str, device: str = "cpu", available: int | None = None,
               headroom: float = 0.9) -> None:
    """Raise InsufficientMemoryError when est.total > headroom * available memory.

    device "gpu": tensors live in the GPU's memory (checked when nvidia-smi can tell) and only
    the runtime + inputs + evaluation copies on the host.
    """
    if device == "gpu":
        gpu_free = available_gpu_bytes() if available is None else available
        if gpu_free is None:
            log.warning("cannot read the GPU's free memory; %s needs ~%s", what, est.describe())
            return
        _compare(est.total - est.runtime, gpu_free, headroom, what, "GPU", est)
        return
    host = available_host_bytes() if available is None else available
    _compare(est.total, host, headroom, what, "host", est)


def _compare(need: int, have: int, headroom: float, what: str, where: str, est: MemoryEstimate) -> None:
    if need > headroom * have:
        raise InsufficientMemoryError(
            f"{what} needs ~{need / GIB:.2f} GiB of {where} memory but only {have / GIB:.2f} GiB is "
            f"available ({headroom:.0%} usable); estimate: {est.describe()}. "
            f"Use a smaller batch size, fewer labels or a bigger machine.")
    log.info("%s memory estimate %s; %s memory available %.2f GiB", what, est.describe(), where,
             have / GIB)
