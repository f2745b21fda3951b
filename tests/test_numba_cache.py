"""The engine's Numba cache is dropped when any engine source changes (slide_core._numba)."""
from __future__ import annotations

from slide_core import _numba


def test_cache_files_survive_unchanged_sources_and_go_when_a_source_changes(tmp_path, monkeypatch):
    (tmp_path / "kernel.py").write_text("x = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "callee.py").write_text("y = 1\n")
    cache = tmp_path / "sub" / "__pycache__"
    cache.mkdir()
    monkeypatch.setattr(_numba, "_ROOT", tmp_path)
    monkeypatch.setattr(_numba, "_STAMP", tmp_path / "__pycache__" / "numba-sources.sha256")

    def cached_files():
        for name in ("kernel.f-1.py311.nbi", "kernel.f-1.py311.1.nbc"):
            (cache / name).touch()
        return [cache / "kernel.f-1.py311.nbi", cache / "kernel.f-1.py311.1.nbc"]

    files = cached_files()
    _numba._drop_stale_cache()  # first start: no stamp, so nothing is trusted
    assert not any(f.exists() for f in files)
    files = cached_files()
    _numba._drop_stale_cache()  # same sources: the cache stays
    assert all(f.exists() for f in files)
    (tmp_path / "sub" / "callee.py").write_text("y = 2\n")  # a callee in another file changed
    _numba._drop_stale_cache()
    assert not any(f.exists() for f in files)
    assert _numba._STAMP.read_text() == _numba.sources_digest()
