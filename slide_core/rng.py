"""Counter-based random numbers for the kernels (SplitMix64).

Every random draw in a batch step is a pure function of (seed, batch id, sample, layer), so
a run is reproducible whatever the thread count and chunking, and the only RNG "state" a
checkpoint needs is the seed and the step counter. Nothing is seeded from the clock.
"""
from __future__ import annotations

import numpy as np

from slide_core._numba import jit

# The stream of inference's random draws (padding of the retrieved sets), apart from every
# training batch id, so that predicting never replays a training step's draws.
PREDICT_STREAM = 1 << 62

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@jit
def mix64(z):
    """SplitMix64 finaliser of a uint64 (a good bijective bit mixer)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@jit
def stream_seed(seed, a, b, c):
    """A uint64 state for the stream (seed, a, b, c), all non-negative ints."""
    z = mix64(np.uint64(seed) + _GOLDEN)
    z = mix64(z ^ (np.uint64(a) + _GOLDEN))
    z = mix64(z ^ (np.uint64(b) + _GOLDEN))
    return mix64(z ^ (np.uint64(c) + _GOLDEN))


@jit
def next_u64(state):
    """(new state, random uint64)."""
    state = state + _GOLDEN
    return state, mix64(state)


@jit
def next_below(state, n):
    """(new state, uniform int in [0, n)) for n < 2**32 (multiply-shift, negligible bias)."""
    state, r = next_u64(state)
    return state, np.int64(((r >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32))
