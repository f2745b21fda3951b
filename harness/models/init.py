"""One initialisation for every model: the same seed gives every model the same weights.

The reference SLIDE code draws every weight and bias from N(0, 0.01); we keep its weights
and start biases at 0 (slide_core.layer.random_weights, which SlideNetwork also uses when
given no weights). Layout is the Keras kernel layout, W of shape (n_in, n_out), so the TF
baselines take the arrays as they are and SLIDE transposes the layers it stores by neuron.
"""
from __future__ import annotations

import numpy as np

from harness.models.base import ModelContext
from slide_core.layer import random_weights


def initial_weights(ctx: ModelContext) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(W (n_in, n_out) float32, b (n_out,) float32) per layer], deterministic in ctx.seed."""
    return random_weights(ctx.layer_sizes, ctx.seed, ctx.init_std)
