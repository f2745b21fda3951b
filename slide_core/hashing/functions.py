"""The hash-function state of one layer: ``HashFunctions``, built by ``make_hash_functions``.

Paper terms -> fields: K codes per table (``K``), L tables (``L``), keys of ``range_pow``
bits, WTA/DWTA bin size m (``bin_size``), DOPH top-k (``topk``), input dimension
(``dim``: the layer's fan-in, since neurons are hashed by their weight vectors and inputs
by their activations).

One NamedTuple type for every family: scalar fields are Python ints (Numba int64) and
family arrays always have the same dtype and ndim (unused ones are empty), so each kernel
compiles once whatever the family; the family is a runtime branch.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from slide_core.checks import check_int
from slide_core.hashing.densify import MAX_ATTEMPTS_LIMIT, MAX_BINS
from slide_core.hashing.families import BY_CODE, by_name
from slide_core.hashing.packing import PACKINGS, packing_layout

MAX_RANGE_POW = 30  # keys are int32; 2**30 buckets per table is already 4 GiB of offsets at L=1


class HashFunctions(NamedTuple):
    """All hash functions of one layer (K*L codes). Build with ``make_hash_functions``."""

    family: int        # Family.code (families.py): FAMILIES[family] is its name
    K: int             # codes per table
    L: int             # tables
    dim: int           # input dimension
    range_pow: int     # key bits: keys in [0, 2**range_pow)
    bin_size: int      # WTA/DWTA/DOPH bin size m (codes in [0, m)); 0 for simhash
    code_bits: int     # bits one code needs: ceil(log2(code range))
    packing: int       # index into PACKINGS
    fold: int          # 1 if packed codes exceed range_pow bits and are folded by mixing
    topk: int          # DOPH: number of top coordinates hashed; 0 otherwise
    n_perm: int        # DWTA/DOPH: number of permutations laid end to end; 0 otherwise
    max_attempts: int  # densification retries
    densify_a: int     # universal hash multiplier (odd, < 2**31)
    densify_c: int     # universal hash offset (< 2**31)
    seed: int          # the seed everything above was drawn from
    shifts: np.ndarray      # int64[K]: left shift of code j in the packed key
    sim_R: np.ndarray       # int8[dim, K*L] SimHash signs -1/0/+1 (else (0, 0))
    wta_idx: np.ndarray     # int32[K*L, bin_size] WTA coordinates per code (else (0, 0))
    bin_of: np.ndarray      # int32[dim, n_perm] DWTA/DOPH bin of coordinate d in perm p, -1 unused
    pos_of: np.ndarray      # int32[dim, n_perm] position within that bin
    bin_coord: np.ndarray   # int32[bin_size, K*L] DWTA/DOPH coordinate at position j of bin b


def make_hash_functions(family: str, dim: int, K: int, L: int, range_pow: int, seed: int, *,
                        bin_size: int = 8, simhash_density: float = 1 / 3, doph_topk: int = 30,
                        packing: str = "exact", max_attempts: int = 100) -> HashFunctions:
    """Draw K*L hash functions of ``family`` for ``dim``-dimensional inputs from ``seed``.

    Defaults follow the reference Config.h: bin_size 8 (binsize), SimHash density 1/3
    (Ratio 3), DOPH topk 30 (TOPK), 100 densification attempts.
    """
    fam = by_name(family)
    if packing not in PACKINGS:
        raise ValueError(f"packing must be one of {PACKINGS}, got {packing!r}")
    dim = check_int("dim", dim, 1)
    K = check_int("K", K, 1)
    L = check_int("L", L, 1)
    range_pow = check_int("range_pow", range_pow, 1, MAX_RANGE_POW)
    seed = check_int("seed", seed, 0)
    max_attempts = check_int("max_attempts", max_attempts, 0, MAX_ATTEMPTS_LIMIT)
    n_codes = K * L
    if n_codes >= MAX_BINS:
        raise ValueError(f"K*L must be < {MAX_BINS}, got {n_codes}")
    if fam.projections:
        if not 0.0 < float(simhash_density) <= 1.0:
            raise ValueError(f"simhash_density must be in (0, 1], got {simhash_density}")
        bin_size = 0
    else:
        bin_size = check_int("bin_size", bin_size, 2)
    topk = check_int("doph_topk", doph_topk, 1) if fam.topk else 0
    code_bits, shifts, fold = packing_layout(packing, K, fam.code_range(bin_size), range_pow)

    rng = np.random.default_rng(np.random.SeedSequence(seed))
    a = int(rng.integers(1, 2**31)) | 1
    c = int(rng.integers(0, 2**31))
    # every family's arrays exist (empty when unused): one NamedTuple type for all families
    i32_2d = np.zeros((0, 0), dtype=np.int32)
    arrays = {"sim_R": np.zeros((0, 0), dtype=np.int8), "wta_idx": i32_2d, "bin_of": i32_2d, "pos_of": i32_2d,
              "bin_coord": i32_2d, "n_perm": 0}
    arrays.update(fam.draw(rng, dim, n_codes, bin_size, simhash_density))  # drawn after a, c: same seeds, same draws
    n_perm = arrays.pop("n_perm")
    return HashFunctions(
        family=fam.code, K=K, L=L, dim=dim, range_pow=range_pow, bin_size=bin_size,
        code_bits=code_bits, packing=PACKINGS.index(packing), fold=fold, topk=topk,
        n_perm=n_perm, max_attempts=max_attempts, densify_a=a, densify_c=c, seed=seed,
        shifts=np.ascontiguousarray(shifts), **{k: np.ascontiguousarray(v) for k, v in arrays.items()})


def scratch_sizes(hf: HashFunctions) -> tuple[int, int]:
    """(n_float32, n_int32) scratch one hash_*_into call needs (at least 1 each): the
    family's Family.scratch (families.py says what each holds)."""
    n_f, n_i = BY_CODE[hf.family].scratch(hf.K * hf.L, hf.dim, hf.bin_size, hf.topk)
    return max(n_f, 1), max(n_i, 1)
