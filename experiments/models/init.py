"""One initialisation for every model: the same seed gives every model the same weights.

The reference SLIDE code draws every weight and bias from N(0, 0.01); we keep its weights
and start biases at 0. Layout is the Keras kernel layout, W of shape (n_in, n_out), so the
TF baselines take the arrays as they are and SLIDE transposes the layers it stores by neuron.
"""
from __future__ import annotations

import numpy as np

from experiments.models.base import ModelContext


def initial_weights(ctx: ModelContext) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(W (n_in, n_out) float32, b (n_out,) float32) per layer], deterministic in ctx.seed."""
    rng = np.random.default_rng([ctx.seed, 0x5EED])
    sizes = ctx.layer_sizes
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        w = rng.standard_normal((n_in, n_out), dtype=np.float32)
        w *= np.float32(ctx.init_std)
        layers.append((w, np.zeros(n_out, dtype=np.float32)))
    return layers
