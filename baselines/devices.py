"""TensorFlow runtime setup: thread pools, and which GPUs TensorFlow can see (and why none).

TF fixes its thread pools and visible devices when its runtime starts (the first op), so
`configure_threads` must run before any op; the harness runs every TF job in a fresh spawned
process (conf/model/tf_*.yaml: isolate: true) so that this holds. Imports TF lazily.
"""
from __future__ import annotations

import logging
import os
from typing import NamedTuple

log = logging.getLogger(__name__)

NO_GPU = "no GPU visible to TensorFlow"


class GpuReport(NamedTuple):
    names: list[str]  # human-readable model of every visible GPU ("NVIDIA A100-SXM4-40GB")
    reason: str | None  # why there is none (None when names is not empty)


def detect_gpus() -> GpuReport:
    """Visible GPUs and their names; when there are none, a reason that says why."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            try:
                details = tf.config.experimental.get_device_details(gpu)
            except (ValueError, RuntimeError):  # details are best effort; the device is there
                details = {}
            names.append(str(details.get("device_name", gpu.name)))
        return GpuReport(names, None)
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None and cvd.strip() in ("", "-1"):
        why = f"CUDA_VISIBLE_DEVICES={cvd!r} hides every GPU"
    elif not tf.test.is_built_with_cuda():
        why = "this TensorFlow build has no CUDA support (tensorflow-cpu; a GPU box wants tensorflow[and-cuda])"
    else:
        why = "TensorFlow is built with CUDA but found no usable GPU (driver/CUDA libraries missing?)"
    return GpuReport([], f"{NO_GPU}: {why}")


def configure_threads(intra_op: int, inter_op: int) -> tuple[int, int]:
    """Set TF's thread pools; returns the pools actually in force.

    After TF's runtime has started the pools cannot change (TF raises RuntimeError): then the
    current setting is kept and a warning names both, so a mismatch is visible, not silent.
    """
    import tensorflow as tf

    if intra_op < 1 or inter_op < 1:
        raise ValueError(f"thread counts must be >= 1, got intra_op={intra_op}, inter_op={inter_op}")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        pass
    actual = (tf.config.threading.get_intra_op_parallelism_threads(),
              tf.config.threading.get_inter_op_parallelism_threads())
    if actual != (intra_op, inter_op):
        log.warning("TensorFlow runtime already started with intra/inter-op threads %s; wanted %s "
                    "(run TF jobs in a fresh process: isolate: true)", actual, (intra_op, inter_op))
    return actual


def onednn_state() -> str:
    """'on' unless TF_ENABLE_ONEDNN_OPTS turns oneDNN off (it is on by default on x86 Linux)."""
    flag = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if flag is None:
        return "on"
    return "off" if flag.strip().lower() in ("0", "false", "off") else "on"
