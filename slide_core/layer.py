"""Layer parameters as NamedTuples of arrays (what the Numba kernels take).

Layout: the first layer reads a sparse input, so its W is stored INPUT-major (n_in, n_out):
one input feature j is one contiguous row W[j] of n_out floats, which forward reads and
backward/Adam write, and the rows a batch touches are the batch's features. Every other
layer is stored NEURON-major (n_out, n_in): one active neuron a is one contiguous row W[a],
which is what the sparse output layer reads per active neuron.

Gradients are accumulated in gW/gb during a batch (HOGWILD writes race there by design)
and consumed and zeroed by Adam after the batch. `row_stamp[r] == batch id` marks the W
rows a batch touched (lazy Adam updates only those); `bias_stamp` does the same for biases.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class LayerParams(NamedTuple):
    W: np.ndarray  # float32 (n_in, n_out) if input-major else (n_out, n_in)
    b: np.ndarray  # float32 (n_out,)
    mW: np.ndarray  # Adam first moment of W, same shape
    vW: np.ndarray  # Adam second moment of W
    mb: np.ndarray  # Adam moments of b
    vb: np.ndarray
    gW: np.ndarray  # gradient accumulated over the current batch
    gb: np.ndarray
    row_stamp: np.ndarray  # int64 (W rows,): batch id that last touched the row
    bias_stamp: np.ndarray  # int64 (n_out,)


def make_layer(W_in_out: np.ndarray, b: np.ndarray, input_major: bool) -> LayerParams:
    """Parameters from a Keras-layout weight (n_in, n_out) and bias (n_out,)."""
    W_in_out = np.asarray(W_in_out)
    if W_in_out.ndim != 2:
        raise ValueError(f"W must be 2-D (n_in, n_out), got shape {W_in_out.shape}")
    b = np.asarray(b)
    if b.shape != (W_in_out.shape[1],):
        raise ValueError(f"b must have shape ({W_in_out.shape[1]},), got {b.shape}")
    W = W_in_out if input_major else W_in_out.T
    W = np.ascontiguousarray(W, dtype=np.float32).copy() if W is W_in_out else np.ascontiguousarray(W, dtype=np.float32)
    b = np.array(b, dtype=np.float32)
    n_rows = W.shape[0]
    return LayerParams(
        W=W,
        b=b,
        mW=np.zeros_like(W),
        vW=np.zeros_like(W),
        mb=np.zeros_like(b),
        vb=np.zeros_like(b),
        gW=np.zeros_like(W),
        gb=np.zeros_like(b),
        row_stamp=np.zeros(n_rows, dtype=np.int64),
        bias_stamp=np.zeros(b.shape[0], dtype=np.int64),
    )


def keras_weights(p: LayerParams, input_major: bool) -> tuple[np.ndarray, np.ndarray]:
    """(W (n_in, n_out), b) copies in the Keras layout."""
    W = p.W if input_major else p.W.T
    return np.ascontiguousarray(W).copy(), p.b.copy()


def neuron_rows(p: LayerParams, input_major: bool) -> np.ndarray:
    """W as (n_out, n_in) rows, one per neuron (what the hash tables index); may copy."""
    return np.ascontiguousarray(p.W.T) if input_major else p.W
