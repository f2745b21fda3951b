"""load_xmc_cached: a second load reads the .npz; a changed file is parsed again."""
from __future__ import annotations

import os

import numpy as np
import pytest

import harness.data.cache as cache
from harness.data.cache import load_splits, load_xmc_cached, save_splits
from harness.data.xmc import read_xmc

TEXT_A = "3 10 5\n1,2 3:0.5 1:1e-3\n 4:2\n0,4 9:7\n"
TEXT_B = "3 10 5\n1,3 3:0.5 1:1e-3\n 4:2\n0,4 9:7\n"  # same size, one label differs


@pytest.fixture
def parse_counter(monkeypatch):
    """Counts calls of the parser behind the cache."""
    calls = []

    def counting_read(path):
        calls.append(path)
        return read_xmc(path)

    monkeypatch.setattr(cache, "read_xmc", counting_read)
    return calls


def _assert_same(a, b):
    for x, y in ((a.features, b.features), (a.labels, b.labels)):
        assert x.n_cols == y.n_cols
        for name in ("indptr", "indices", "data"):
            u, v = getattr(x, name), getattr(y, name)
            assert u.dtype == v.dtype
            np.testing.assert_array_equal(u, v)


def test_second_load_hits_the_cache(tmp_path, parse_counter):
    path = tmp_path / "train.txt"
    path.write_text(TEXT_A)
    first = load_xmc_cached(path, tmp_path / "cache")
    second = load_xmc_cached(path, tmp_path / "cache")
    assert len(parse_counter) == 1
    _assert_same(first, second)
    _assert_same(second, read_xmc(path))
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1


def test_changed_content_same_size_is_parsed_again(tmp_path, parse_counter):
    path = tmp_path / "train.txt"
    path.write_text(TEXT_A)
    st = path.stat()
    load_xmc_cached(path, tmp_path / "cache")
    path.write_text(TEXT_B)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old mtime
    assert path.stat().st_size == st.st_size
    split = load_xmc_cached(path, tmp_path / "cache")
    assert len(parse_counter) == 2
    assert split.labels.indices[:2].tolist() == [1, 3]
    # the stale entry of the old content is gone
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1


def test_touched_file_is_parsed_again(tmp_path, parse_counter):
    path = tmp_path / "train.txt"
    path.write_text(TEXT_A)
    load_xmc_cached(path, tmp_path / "cache")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    load_xmc_cached(path, tmp_path / "cache")
    assert len(parse_counter) == 2


def test_large_file_change_outside_the_header_is_detected(tmp_path, parse_counter, monkeypatch):
    # files above the whole-file limit are keyed by size, mtime and sampled blocks
    monkeypatch.setattr(cache, "_WHOLE_FILE_LIMIT", 256)
    monkeypatch.setattr(cache, "_SAMPLE_BYTES", 64)
    rows = [f"{i % 5} {i % 10}:1" for i in range(200)]
    path = tmp_path / "big.txt"
    path.write_text("200 10 5\n" + "\n".join(rows) + "\n")
    st = path.stat()
    load_xmc_cached(path, tmp_path / "cache")
    rows[-1] = "4 8:2"  # the tail block is always sampled
    path.write_text("200 10 5\n" + "\n".join(rows) + "\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    split = load_xmc_cached(path, tmp_path / "cache")
    assert len(parse_counter) == 2
    assert split.features.data[-1] == 2.0


def test_same_name_in_two_folders_does_not_collide(tmp_path, parse_counter):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "train.txt").write_text(TEXT_A)
    (tmp_path / "b" / "train.txt").write_text(TEXT_B)
    a = load_xmc_cached(tmp_path / "a" / "train.txt", tmp_path / "cache")
    b = load_xmc_cached(tmp_path / "b" / "train.txt", tmp_path / "cache")
    assert a.labels.indices[1] == 2 and b.labels.indices[1] == 3
    load_xmc_cached(tmp_path / "a" / "train.txt", tmp_path / "cache")
    assert len(parse_counter) == 2


def test_corrupt_cache_entry_is_rebuilt(tmp_path, parse_counter):
    path = tmp_path / "train.txt"
    path.write_text(TEXT_A)
    load_xmc_cached(path, tmp_path / "cache")
    (entry,) = (tmp_path / "cache").glob("*.npz")
    entry.write_bytes(b"not a zip file")
    split = load_xmc_cached(path, tmp_path / "cache")
    assert len(parse_counter) == 2
    _assert_same(split, read_xmc(path))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.txt"):
        load_xmc_cached(tmp_path / "absent.txt", tmp_path / "cache")


def test_parse_errors_are_not_cached(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("1 10 5\n0 11:1\n")
    with pytest.raises(ValueError, match="out of range"):
        load_xmc_cached(path, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.npz"))


def test_save_and_load_splits_round_trip(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT_A)
    split = read_xmc(path)
    view = split._replace(features=split.features.row_slice(1, 3),
                          labels=split.labels.row_slice(1, 3))
    save_splits(tmp_path / "e.npz", {"train": split, "test": view})
    back = load_splits(tmp_path / "e.npz")
    assert set(back) == {"train", "test"}
    _assert_same(back["train"], split)
    _assert_same(back["test"], view)
    assert load_splits(tmp_path / "absent.npz") is None


def test_unwritable_cache_only_costs_a_reparse(tmp_path, parse_counter, monkeypatch):
    path = tmp_path / "train.txt"
    path.write_text(TEXT_A)

    def failing_savez(*args, **kwargs):
        raise OSError("read-only file system")

    monkeypatch.setattr(cache.np, "savez", failing_savez)
    a = load_xmc_cached(path, tmp_path / "cache")
    b = load_xmc_cached(path, tmp_path / "cache")
    assert len(parse_counter) == 2
    _assert_same(a, b)
    assert not list((tmp_path / "cache").iterdir())  # no temporary files left behind
