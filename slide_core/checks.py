"""Argument checks shared by the engine's public functions: one wording for every message."""
from __future__ import annotations

import numpy as np


def check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    """`value` as an int in [lo, hi] (hi None: no upper bound); TypeError for a non-integer
    (bool included), ValueError naming the argument and the allowed range otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value
