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

import mmap
from typing import NamedTuple

import numpy as np

HUGE_MIN_BYTES = 32 << 20  # arrays at least this big get transparent huge pages


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


INIT_STD = 0.01  # the reference code draws every weight from N(0, 0.01)


def random_weights(sizes, seed: int, std: float = INIT_STD) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(W (n_in, n_out) float32 ~ N(0, std), b (n_out,) zeros) per layer] for layer sizes
    (n_features, hidden..., n_labels), deterministic in seed: the one initialisation every
    model of a comparison starts from (the harness passes it to SLIDE and to the baselines)."""
    rng = np.random.default_rng([int(seed), 0x5EED])
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        w = rng.standard_normal((n_in, n_out), dtype=np.float32)
        w *= np.float32(std)
        layers.append((w, np.zeros(n_out, dtype=np.float32)))
    return layers


def alloc(shape, dtype, fill=0) -> np.ndarray:
    """A filled array whose pages are faulted in now, not in the hot loop.

    Large arrays come from an anonymous mmap advised MADV_HUGEPAGE: the step touches ~1,000+
    random 512-byte rows of 343 MB arrays per sample, and with 4 KiB pages nearly every row
    costs a TLB miss; with 2 MiB pages most do not. np.zeros would also defer every page fault
    (and its zeroing) to the first batches that touch the page.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if nbytes >= HUGE_MIN_BYTES and hasattr(mmap, "MADV_HUGEPAGE"):
        buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            buf.madvise(mmap.MADV_HUGEPAGE)
        except OSError:  # THP disabled: plain pages still work
            pass
        a = np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape))).reshape(shape)
    else:
        a = np.empty(shape, dtype=dtype)
    a.fill(fill)
    return a


def alloc_like(a: np.ndarray, fill=0) -> np.ndarray:
    return alloc(a.shape, a.dtype, fill)


def make_layer(W_in_out: np.ndarray, b: np.ndarray, input_major: bool, grad: bool = True) -> LayerParams:
    """Parameters from a Keras-layout weight (n_in, n_out) and bias (n_out,).

    grad=False: no gradient array (a (1, n_in) dummy): the layer's gradient is assembled
    inside the grouped Adam (adam.grouped_adam) instead of accumulated."""
    W_in_out = np.asarray(W_in_out)
    if W_in_out.ndim != 2:
        raise ValueError(f"W must be 2-D (n_in, n_out), got shape {W_in_out.shape}")
    b = np.asarray(b)
    if b.shape != (W_in_out.shape[1],):
        raise ValueError(f"b must have shape ({W_in_out.shape[1]},), got {b.shape}")
    src = W_in_out if input_major else W_in_out.T
    W = alloc(src.shape, np.float32)
    W[...] = src
    b = np.array(b, dtype=np.float32)
    n_rows = W.shape[0]
    return LayerParams(
        W=W,
        b=b,
        mW=alloc_like(W),
        vW=alloc_like(W),
        mb=np.zeros_like(b),
        vb=np.zeros_like(b),
        gW=alloc_like(W) if grad else np.zeros((1, W.shape[1]), dtype=np.float32),
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
