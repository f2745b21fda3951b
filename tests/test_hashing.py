"""Hash kernels against tests/reference_lsh.py, dense/sparse agreement, packing, validation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from slide_core.hashing import (FAMILIES, hash_dense, hash_dense_into, hash_rows, hash_sparse,
                                hash_sparse_into,
                                make_hash_functions, scratch_sizes)
from slide_core.config import LayerConfig
from slide_core.hashing.families import BY_CODE, by_name
from slide_core.hashing.packing import finalize_key, packing_layout
from slide_core.sizing import expected_retrieved

try:
    from tests import reference_lsh as ref
except ImportError:  # tests/ on sys.path instead of the project root
    import reference_lsh as ref


def _vectors(dim, rng):
    """Edge cases on purpose: zeros, negatives, ties, all-zero, a single nonzero, all negative."""
    gauss = rng.standard_normal(dim).astype(np.float32)
    gauss[rng.random(dim) < 0.4] = 0.0
    ties = rng.integers(-2, 3, size=dim).astype(np.float32)  # many equal values and zeros
    single = np.zeros(dim, np.float32)
    single[dim // 2] = -1.5
    return [gauss, ties, np.zeros(dim, np.float32), single, -np.abs(gauss) - 0.1,
            rng.random(dim).astype(np.float32)]


def _sparse(vec):
    idx = np.flatnonzero(vec).astype(np.int32)
    return idx, vec[idx].copy()


CASES = [  # (family, dim, K, L, range_pow, bin_size, packing): dims not multiples of bin_size
    ("simhash", 37, 3, 5, 8, 8, "exact"),
    ("simhash", 37, 9, 4, 6, 8, "exact"),  # 9 bits > 6: folded
    ("wta", 37, 2, 5, 6, 8, "exact"),
    ("wta", 37, 3, 5, 8, 8, "reference_ln"),
    ("dwta", 37, 3, 5, 9, 8, "exact"),
    ("dwta", 5, 2, 6, 6, 8, "exact"),  # dim < bin_size: bins hold repeated coordinates
    ("dwta", 37, 6, 3, 18, 8, "reference_ln"),
    ("dwta", 37, 4, 4, 10, 8, "exact"),  # 12 bits > 10: folded
    ("doph", 37, 3, 5, 9, 8, "exact"),
    ("doph", 37, 3, 5, 12, 4, "reference_ln"),
]


@pytest.mark.parametrize("family,dim,K,L,range_pow,bin_size,packing", CASES)
def test_keys_match_reference_dense_and_sparse(family, dim, K, L, range_pow, bin_size, packing):
    hf = make_hash_functions(family, dim, K, L, range_pow, seed=11, bin_size=bin_size, packing=packing,
                             doph_topk=5)
    rng = np.random.default_rng(5)
    for vec in _vectors(dim, rng):
        want = ref.keys(hf, vec, packing)
        got_dense = hash_dense(hf, vec)
        np.testing.assert_array_equal(got_dense, want)
        assert got_dense.min() >= 0 and got_dense.max() < 2**range_pow
        idx, vals = _sparse(vec)
        np.testing.assert_array_equal(hash_sparse(hf, idx, vals), want)


@pytest.mark.parametrize("family", ["wta", "dwta", "doph"])
def test_sparse_order_and_explicit_zeros_do_not_matter(family):
    hf = make_hash_functions(family, 50, 3, 6, 9, seed=2, doph_topk=4)
    rng = np.random.default_rng(0)
    vec = rng.integers(-3, 4, size=50).astype(np.float32)
    idx, vals = _sparse(vec)
    perm = rng.permutation(len(idx))
    want = hash_dense(hf, vec)
    np.testing.assert_array_equal(hash_sparse(hf, idx[perm], vals[perm]), want)
    # explicit zeros given sparsely behave like absent entries
    zi = np.flatnonzero(vec == 0).astype(np.int32)[:5]
    idx2 = np.concatenate([idx, zi]).astype(np.int32)
    vals2 = np.concatenate([vals, np.zeros(len(zi), np.float32)])
    np.testing.assert_array_equal(hash_sparse(hf, idx2, vals2), want)


@pytest.mark.parametrize("family", FAMILIES)
def test_empty_sparse_equals_all_zero_dense(family):
    hf = make_hash_functions(family, 40, 3, 4, 9, seed=1)
    empty = hash_sparse(hf, np.zeros(0, np.int32), np.zeros(0, np.float32))
    np.testing.assert_array_equal(empty, hash_dense(hf, np.zeros(40, np.float32)))
    np.testing.assert_array_equal(empty, ref.keys(hf, np.zeros(40, np.float32)))


@pytest.mark.parametrize("family", FAMILIES)
def test_hash_rows_equals_row_by_row(family):
    hf = make_hash_functions(family, 30, 2, 7, 8, seed=4, bin_size=4)
    W = np.random.default_rng(1).standard_normal((203, 30)).astype(np.float32)
    W[5] = 0.0
    keys = hash_rows(hf, W)
    assert keys.shape == (203, 7) and keys.dtype == np.int32
    for i in (0, 5, 101, 202):
        np.testing.assert_array_equal(keys[i], hash_dense(hf, W[i]))
    assert hash_rows(hf, np.zeros((0, 30), np.float32)).shape == (0, 7)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("bin_size", [4, 8])
def test_scratch_sizes_suffice_for_the_largest_inputs(family, bin_size):
    """hash_dense_into / hash_sparse_into on the largest inputs (a full dense vector; every
    coordinate as a sparse entry) touch nothing past scratch_sizes(hf): the guard cells after
    each scratch row keep their sentinel, and the keys equal the reference's although the
    scratch rows start full of garbage."""
    dim, guard = 96, 64
    hf = make_hash_functions(family, dim, 3, 5, 9, seed=2, bin_size=bin_size, doph_topk=dim // 2)
    n_f, n_i = scratch_sizes(hf)
    vec = (np.random.default_rng(5).permutation(dim) - dim / 2 + 0.5).astype(np.float32)  # distinct, non-zero
    idx = np.arange(dim, dtype=np.int32)
    for call in ("dense", "sparse"):
        buf_f = np.concatenate([np.full(n_f, np.nan), np.full(guard, 1.25e30)]).astype(np.float32)
        buf_i = np.concatenate([np.full(n_i, -7), np.full(guard, -123456789)]).astype(np.int32)
        out = np.empty(hf.L, np.int32)
        if call == "dense":
            hash_dense_into(hf, vec, out, buf_f[:n_f], buf_i[:n_i])
        else:
            hash_sparse_into(hf, idx, vec, out, buf_f[:n_f], buf_i[:n_i])
        assert (buf_f[n_f:] == np.float32(1.25e30)).all(), f"{call}: float scratch overrun"
        assert (buf_i[n_i:] == -123456789).all(), f"{call}: int scratch overrun"
        np.testing.assert_array_equal(out, ref.keys(hf, vec))


def test_same_seed_same_functions_other_seed_differs():
    a = make_hash_functions("dwta", 64, 4, 8, 12, seed=3)
    b = make_hash_functions("dwta", 64, 4, 8, 12, seed=3)
    c = make_hash_functions("dwta", 64, 4, 8, 12, seed=4)
    np.testing.assert_array_equal(a.bin_of, b.bin_of)
    assert not np.array_equal(a.bin_of, c.bin_of)


# ------------------------------------------------------------------ parameter structure
def test_simhash_projections_have_density_third_and_signs():
    hf = make_hash_functions("simhash", 100, 5, 6, 10, seed=0)
    projs = ref.simhash_projections(hf)
    assert len(projs) == 30
    for coords, signs in projs:
        assert len(coords) == math.ceil(100 / 3) == len(set(coords.tolist()))
        assert set(signs.tolist()) <= {-1.0, 1.0}
    all_signs = np.concatenate([s for _, s in projs])
    assert 0.4 < (all_signs > 0).mean() < 0.6


def test_dwta_bins_are_permutations_cut_in_bins():
    dim, K, L, m = 37, 6, 10, 8
    hf = make_hash_functions("dwta", dim, K, L, 18, seed=0, bin_size=m)
    assert hf.n_perm == math.ceil(K * L * m / dim)
    members = ref.bins_members(hf)
    assert len(members) == K * L
    for b, mem in enumerate(members):  # every bin covers exactly m slots, one per position
        assert sorted(p for _, p in mem) == list(range(m))
        for d, pos in mem:  # the bin-major copy agrees with the coordinate-major layout
            assert hf.bin_coord[pos, b] == d
    for p in range(hf.n_perm):  # slot = p*dim + j for j over a permutation
        slots = []
        for d in range(dim):
            if hf.bin_of[d, p] >= 0:
                slots.append(hf.bin_of[d, p] * m + hf.pos_of[d, p] - p * dim)
        assert len(set(slots)) == len(slots) and min(slots) >= 0 and max(slots) < dim


def test_wta_codes_use_distinct_coordinates():
    hf = make_hash_functions("wta", 20, 3, 5, 9, seed=0, bin_size=8)
    assert hf.wta_idx.shape == (15, 8)
    for row in hf.wta_idx:
        assert len(set(row.tolist())) == 8


# ------------------------------------------------------------------ packing
def test_exact_packing_is_a_bijection_when_it_fits():
    bits, shifts, fold = packing_layout("exact", 2, 8, 6)
    assert (bits, shifts.tolist(), fold) == (3, [3, 0], 0)
    keys = {ref.pack((a, b), 2, 3, "exact", 8, 6) for a in range(8) for b in range(8)}
    assert keys == set(range(64))


def test_reference_ln_packing_overlaps_like_the_cpp():
    bits, shifts, fold = packing_layout("reference_ln", 6, 8, 18)
    assert shifts.tolist() == [10, 8, 6, 4, 2, 0] and fold == 0  # floor(ln 8) = 2
    assert ref.pack([7] * 6, 6, 3, "reference_ln", 8, 18) == 7 * sum(4**j for j in range(6)) == 9555
    # overlapping codes collide: (1, 0) and (0, 4) give the same key with a 2-bit shift
    assert ref.pack((1, 0), 2, 3, "reference_ln", 8, 18) == ref.pack((0, 4), 2, 3, "reference_ln", 8, 18)
    # SimHash: the reference shifts 1 bit per code, same as exact
    assert packing_layout("reference_ln", 9, 2, 18)[1].tolist() == packing_layout("exact", 9, 2, 18)[1].tolist()


@pytest.mark.parametrize("K,code_range,range_pow,fold", [(3, 8, 9, 0), (3, 8, 8, 1), (9, 2, 9, 0), (9, 2, 8, 1),
                                                         (21, 8, 30, 1), (3, 5, 9, 0)])
def test_fold_decision_and_range(K, code_range, range_pow, fold):
    bits, shifts, f = packing_layout("exact", K, code_range, range_pow)
    assert f == fold and bits == math.ceil(math.log2(code_range))
    rng = np.random.default_rng(0)
    for _ in range(50):
        codes = rng.integers(0, code_range, size=K)
        raw = sum(int(c) << int(s) for c, s in zip(codes, shifts))
        key = int(finalize_key(np.uint64(raw), f, range_pow))
        assert 0 <= key < 2**range_pow
        assert key == ref.pack(codes, K, bits, "exact", code_range, range_pow)


def test_packing_that_cannot_fit_64_bits_is_rejected():
    with pytest.raises(ValueError, match="64 bits"):
        make_hash_functions("dwta", 64, 22, 2, 18, seed=0)  # 66 bits


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(family="minhash"), ValueError, "family"),
    (dict(packing="ln"), ValueError, "packing"),
    (dict(range_pow=0), ValueError, "range_pow"),
    (dict(range_pow=31), ValueError, "range_pow"),
    (dict(K=0), ValueError, "K"),
    (dict(L=2.0), TypeError, "L"),
    (dict(family="wta", dim=5), ValueError, "bin_size"),
    (dict(family="simhash", simhash_density=0.0), ValueError, "density"),
    (dict(bin_size=1), ValueError, "bin_size"),
    (dict(family="doph", doph_topk=0), ValueError, "topk"),
    (dict(seed=-1), ValueError, "seed"),
])
def test_make_hash_functions_validates(kwargs, exc, match):
    args = dict(family="dwta", dim=16, K=2, L=3, range_pow=8, seed=0)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        make_hash_functions(**args)


def test_one_registry_names_every_family_for_the_config_the_kernels_and_sizing():
    """families.py is the one list: the config accepts exactly its names, make_hash_functions
    gives each its code, sizing knows each."""
    for code, name in enumerate(FAMILIES):
        fam = by_name(name)
        assert fam.code == code and BY_CODE[code] is fam
        assert make_hash_functions(name, 16, 2, 3, 8, seed=0).family == code
        assert LayerConfig(300, fan_in=16, hash_family=name, sparsity=0.1).hash_family == name
        assert 0 < expected_retrieved(300, name, 2, 3, dim=16) <= 300
    with pytest.raises(ValueError, match="hash_family must be one of"):
        LayerConfig(300, hash_family="minhash")
    with pytest.raises(ValueError, match="family must be one of"):
        expected_retrieved(300, "minhash", 2, 3)


def test_entry_points_validate_inputs():
    hf = make_hash_functions("dwta", 16, 2, 3, 8, seed=0)
    with pytest.raises(TypeError, match="float32"):
        hash_dense(hf, np.zeros(16, np.float64))
    with pytest.raises(ValueError, match="dim"):
        hash_dense(hf, np.zeros(15, np.float32))
    with pytest.raises(ValueError, match="range"):
        hash_sparse(hf, np.array([16], np.int32), np.ones(1, np.float32))
    with pytest.raises(ValueError, match="range"):  # the kernel checks too
        hash_sparse_into(hf, np.array([-1], np.int32), np.ones(1, np.float32), np.empty(3, np.int32),
                         np.empty(6, np.float32), np.empty(6, np.int32))
    with pytest.raises(ValueError, match="columns"):
        hash_rows(hf, np.zeros((3, 15), np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        hash_rows(hf, np.zeros((16, 6), np.float32).T)
    with pytest.raises(TypeError, match="HashFunctions"):
        hash_rows((1, 2), np.zeros((3, 16), np.float32))
