"""When to rehash (re-insert neurons with current weights) and rebuild (new hash functions).

Pure functions of the number of finished batches `done` (1 after the first batch):
- fixed: rehash when done % rehash_every == 0, rebuild when done % rebuild_every == 0
  (reference code: 50 and 1000). A rebuild includes a rehash.
- exponential (the paper): the t-th rehash (t = 1, 2, ...) happens after
  round(sum_{i<t} N0 * e^(lambda*i)) batches: first at N0, then intervals growing by e^lambda,
  because the weights change quickly at first and slowly later. Rebuilds keep the fixed
  rebuild_every in every mode.
- adaptive (after Mongoose, Chen et al., ICLR 2021): every `drift_check_every` batches the
  network re-hashes a small random probe of neurons with the current hash functions and
  rehashes the layer when the share of the probe's keys that changed since the tables were
  built passes `drift_threshold` (SlideNetwork._key_drift). Here that is "check" points;
  the decision needs the weights, so it is the network's.
"""
from __future__ import annotations

import math


def exponential_points(n0: int, lam: float, up_to: int) -> list[int]:
    """All exponential-schedule rehash points <= up_to, increasing (deduplicated)."""
    if n0 < 1 or lam < 0:
        raise ValueError(f"need n0 >= 1 and lambda >= 0, got n0={n0} lambda={lam}")
    points: list[int] = []
    total = 0.0
    i = 0
    while True:
        total += n0 * math.exp(lam * i)
        p = int(round(total))
        if p > up_to:
            return points
        if not points or p > points[-1]:
            points.append(p)
        i += 1


def is_exponential_point(done: int, n0: int, lam: float) -> bool:
    """True if `done` is a rehash point of the exponential schedule."""
    if done < n0:
        return False
    if lam == 0:
        return done % n0 == 0
    # the point index t with sum_{i<t} n0 e^(lam i) ~ done, from the closed form, then
    # check its neighbours exactly (rounding)
    t = math.log1p(done * (math.exp(lam) - 1.0) / n0) / lam
    for cand in (int(t) - 1, int(t), int(t) + 1):
        if cand >= 1:
            total = n0 * (math.exp(lam * cand) - 1.0) / (math.exp(lam) - 1.0)
            if int(round(total)) == done:
                return True
    return False


def maintenance_due(done: int, schedule: str, rehash_every: int, rebuild_every: int,
                    n0: int = 50, lam: float = 0.1) -> str | None:
    """"rebuild", "rehash", "check" (adaptive: measure key drift, rehash if it is large) or
    None after `done` finished batches. For "adaptive", rehash_every is the check interval."""
    if schedule not in ("fixed", "exponential", "adaptive"):
        raise ValueError(f"schedule must be 'fixed', 'exponential' or 'adaptive', got {schedule!r}")
    if done <= 0:
        return None
    if done % rebuild_every == 0:
        return "rebuild"
    if schedule == "fixed":
        return "rehash" if done % rehash_every == 0 else None
    if schedule == "adaptive":
        return "check" if done % rehash_every == 0 else None
    return "rehash" if is_exponential_point(done, n0, lam) else None
