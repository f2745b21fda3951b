"""The hash families: one `Family` row each holds what the Python side knows of a family.

The name a config uses, the integer code the kernels branch on, the values one code takes,
the options it reads, the arrays it draws, the scratch one hash call needs and the
collision law the sizing formulas assume (sizing.py) are read from here, by
make_hash_functions, scratch_sizes, sizing, LayerConfig's checks and the Python-level
dispatch. The Numba kernels cannot read this table: the batch step hashes inside its
prange, where the family must be a branch compiled into the kernel, so they keep their
if/elif chains on `HashFunctions.family` (dispatch.py; its top lists every place a new
family touches).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from slide_core.hashing.dwta import make_bins
from slide_core.hashing.simhash import make_simhash
from slide_core.hashing.wta import make_wta

# HashFunctions.family: what the kernels branch on. Checkpoints store it: never renumber.
SIMHASH, WTA, DWTA, DOPH = 0, 1, 2, 3


@dataclass(frozen=True)
class Family:
    name: str  # LayerConfig.hash_family, make_hash_functions(family=...)
    code: int  # HashFunctions.family
    # codes are the signs of random projections (HashFunctions.sim_R): two values, no bins; a
    # code collides with probability 1 - theta/pi (sizing.py); many rows hash as one BLAS
    # product, optionally about a center (dispatch.py). Otherwise a code is a position in a
    # bin of bin_size coordinates.
    projections: bool
    topk: bool  # hashes the input's top-k coordinates (DOPH): reads doph_topk
    # (rng, dim, n_codes, bin_size, simhash_density) -> the HashFunctions array fields it fills
    draw: Callable[[np.random.Generator, int, int, int, float], dict]
    # (n_codes, dim, bin_size, topk) -> (float32, int32) scratch one hash_*_into call needs
    scratch: Callable[[int, int, int, int], tuple[int, int]]

    def code_range(self, bin_size: int) -> int:
        """Values one code takes: 2 (a sign bit) or bin_size (a position in a bin)."""
        return 2 if self.projections else int(bin_size)


def _draw_simhash(rng, dim, n_codes, bin_size, density) -> dict:
    return {"sim_R": make_simhash(rng, dim, n_codes, float(density))}


def _draw_wta(rng, dim, n_codes, bin_size, density) -> dict:
    return {"wta_idx": make_wta(rng, dim, n_codes, bin_size)}


def _draw_bins(rng, dim, n_codes, bin_size, density) -> dict:
    bin_of, pos_of, bin_coord = make_bins(rng, dim, n_codes, bin_size)
    return {"bin_of": bin_of, "pos_of": pos_of, "bin_coord": bin_coord, "n_perm": bin_of.shape[1]}


# int32 scratch always starts with the K*L raw codes; the float32 scratch holds:
_ROWS = (
    Family("simhash", SIMHASH, projections=True, topk=False, draw=_draw_simhash,
           scratch=lambda n_codes, dim, m, k: (n_codes, n_codes)),  # one accumulator per projection
    Family("wta", WTA, projections=False, topk=False, draw=_draw_wta,
           scratch=lambda n_codes, dim, m, k: (dim, n_codes)),  # the scattered sparse input
    Family("dwta", DWTA, projections=False, topk=False, draw=_draw_bins,
           scratch=lambda n_codes, dim, m, k: (n_codes * (1 + m), n_codes)),  # best values, gathered slots
    Family("doph", DOPH, projections=False, topk=True, draw=_draw_bins,
           scratch=lambda n_codes, dim, m, k: (k, n_codes + k)),  # the top-k heap (values; coordinates)
)
BY_CODE: tuple[Family, ...] = tuple(sorted(_ROWS, key=lambda f: f.code))  # BY_CODE[hf.family]
assert [f.code for f in BY_CODE] == list(range(len(BY_CODE))), "family codes must be 0, 1, 2, ..."
FAMILIES: tuple[str, ...] = tuple(f.name for f in BY_CODE)
_BY_NAME = {f.name: f for f in BY_CODE}


def by_name(name: str) -> Family:
    """The family called `name`; ValueError naming the known ones otherwise."""
    if name not in _BY_NAME:
        raise ValueError(f"family must be one of {FAMILIES}, got {name!r}")
    return _BY_NAME[name]
