"""Sizing a layer's hash tables: how many neurons L tables of K codes retrieve, and the K
(and L) that make that count hit a target.

At random weights (every code of a neuron independent of the query's, uniform over its
range) the key of a neuron in table t is a random draw from the key distribution p_k of
the packing, independent across tables. The probed bucket of a table then holds neuron i
with probability

    q = sum_k p_k * min(1, capacity / (n p_k)) * p_k     (bucket k holds ~ n p_k neurons,
                                                            at most `capacity` of them)

and the union of the L probed buckets holds, in expectation,

    E[retrieved] = n * (1 - (1 - q)^L).

For `exact` packing the keys are uniform over B = min(code_range^K, 2^range_pow) buckets,
so q = min(1/B, capacity/n). For `reference_ln` packing (codes added with overlapping
shifts, see hashing/packing.py) p_k is the distribution of the sum of K shifted uniform
codes, computed exactly by convolution.

SimHash codes are not independent of each other: a neuron at angle theta from the query
agrees with it on each bit with probability 1 - theta/pi, so given theta a table collides
with probability (1 - theta/pi)^K and the union holds the neuron with probability
1 - (1 - that)^L. For random weights in `dim` dimensions, cos(theta) has the density
~ (1 - t^2)^((dim - 3) / 2), and averaging over it gives more retrieved neurons than the
independent-bits value (Jensen: +18% at K=8, dim=64). Pass `dim` (the layer's fan-in) for
SimHash; without it the bits are taken as independent.

Trained weights are not random: the tables then retrieve the neurons that resemble the
query more often and the rest less often. How the count moves during training is measured
(slide/chosen_out_mean, and the retrieval diagnostics at every evaluation), not predicted.
"""
from __future__ import annotations


import numpy as np

from slide_core.hashing.families import by_name
from slide_core.hashing.packing import packing_layout

MAX_AUTO_K = 16


def key_distribution(code_range: int, K: int, range_pow: int, packing: str) -> np.ndarray | int:
    """The bucket keys' distribution when each of the K codes is uniform on [0, code_range):
    an int B when the keys are uniform over B buckets, else the probabilities of the keys in
    use (any order)."""
    _, shifts, fold = packing_layout(packing, K, code_range, range_pow)
    if fold:  # packed codes mixed onto every bucket
        return 2 ** range_pow
    step = int(shifts[-2]) if K > 1 else 0  # shifts are (K-1)*step, ..., step, 0
    if K == 1 or step >= int(code_range - 1).bit_length():  # codes do not overlap
        return code_range ** K
    # overlapping shifts (reference_ln): key = sum_j code_j << (j * step); convolve K uniform codes
    dist = np.ones(1)
    for j in range(K):
        spread = np.zeros((code_range - 1) * (1 << (j * step)) + 1)
        spread[np.arange(code_range) << (j * step)] = 1.0 / code_range
        dist = np.convolve(dist, spread)
    return dist[dist > 0]


def collision_probability(n: int, code_range: int, K: int, range_pow: int, packing: str,
                          capacity: int) -> float:
    """q: probability that a random neuron sits in the bucket a random query probes in one table."""
    p = key_distribution(code_range, K, range_pow, packing)
    if isinstance(p, int):
        return min(1.0 / p, capacity / n)
    return float(np.sum(p * p * np.minimum(1.0, capacity / (n * p))))


def _angle_weights(dim: int, points: int = 4001) -> tuple[np.ndarray, np.ndarray]:
    """(cos theta grid, probability weights) of the angle between a fixed vector and a random
    direction in `dim` dimensions."""
    t = np.linspace(-1.0, 1.0, points)[1:-1]
    w = np.exp(0.5 * (dim - 3) * np.log1p(-t * t))
    return t, w / w.sum()


def expected_retrieved(n: int, family: str, K: int, L: int, *, bin_size: int = 8, range_pow: int = 18,
                       packing: str = "exact", capacity: int = 128, dim: int | None = None) -> float:
    """Expected size of the union of the L probed buckets at random weights (module docstring)."""
    fam = by_name(family)
    if fam.projections and dim is not None and dim >= 2:  # the angle law of sign projections
        t, w = _angle_weights(dim)
        per_table = (1.0 - np.arccos(t) / np.pi) ** K
        # buckets over capacity keep a random `capacity` of their ~n 2^-K neurons
        keep = min(1.0, capacity * min(2.0 ** K, 2.0 ** range_pow) / n)
        return float(n * (1.0 - np.sum(w * (1.0 - keep * per_table) ** L)))
    q = collision_probability(n, fam.code_range(bin_size), K, range_pow, packing, capacity)
    return n * (1.0 - (1.0 - q) ** L)


def auto_K(n: int, family: str, target: float, L: int, *, bin_size: int = 8, range_pow: int = 18,
           packing: str = "exact", capacity: int = 128, dim: int | None = None) -> int:
    """The largest K (most selective buckets) whose L tables still retrieve >= target neurons
    in expectation at random weights; 1 if even K=1 retrieves fewer."""
    best = 1
    for K in range(1, MAX_AUTO_K + 1):
        if expected_retrieved(n, family, K, L, bin_size=bin_size, range_pow=range_pow, packing=packing,
                              capacity=capacity, dim=dim) >= target:
            best = K
        else:
            break
    return best
