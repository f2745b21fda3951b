"""slide_core.files.atomic_write: a file's name never shows half of it."""
from __future__ import annotations

import numpy as np
import pytest

from slide_core.files import atomic_write


def test_the_content_round_trips_and_replaces_the_old_file(tmp_path):
    path = tmp_path / "a.npz"
    path.write_bytes(b"old")
    arrays = {"w": np.arange(5, dtype=np.float32), "k": np.int64(3)}
    atomic_write(path, lambda f: np.savez(f, **arrays))
    with np.load(path) as z:
        assert set(z.files) == {"w", "k"}
        assert np.array_equal(z["w"], arrays["w"]) and int(z["k"]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]  # no temporary left


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path, error):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old content")

    def half_then_fail(f):
        f.write(b"new, but only ha")
        f.flush()  # the half is on disk under the temporary name
        raise error("disk full")

    with pytest.raises(error, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_a_new_file_that_fails_is_not_created(tmp_path):
    def fail(f):
        raise OSError("no space left")

    with pytest.raises(OSError):
        atomic_write(tmp_path / "new.json", fail)
    assert list(tmp_path.iterdir()) == []
