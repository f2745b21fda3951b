"""The engine's Numba cache is dropped when any engine source changes, and a kernel module
outside the engine's when its own sources or the policy change (slide_core._numba)."""
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


def test_a_module_outside_the_engine_loses_its_cache_when_it_its_inputs_or_the_policy_change(tmp_path, monkeypatch):
    """drop_stale_cache_for, as the XMC parser calls it: only that module's cache files go."""
    policy = tmp_path / "policy.py"
    parser, constants = tmp_path / "parser.py", tmp_path / "constants.py"
    for path in (policy, parser, constants):
        path.write_text("x = 1\n")
    monkeypatch.setattr(_numba, "_POLICY", policy)
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    other = cache / "constants.g-1.py311.nbi"  # another module's cache: never touched

    def cached_files():
        for path in (cache / "parser.f-1.py311.nbi", cache / "parser.f-1.py311.1.nbc", other):
            path.touch()
        return [cache / "parser.f-1.py311.nbi", cache / "parser.f-1.py311.1.nbc"]

    files = cached_files()
    _numba.drop_stale_cache_for(parser, constants)  # first start: nothing is trusted
    assert not any(f.exists() for f in files) and other.exists()
    for changed in (None, constants, policy, parser):
        files = cached_files()
        if changed is not None:
            changed.write_text(changed.read_text() + "y = 2\n")
        _numba.drop_stale_cache_for(parser, constants)
        assert all(f.exists() == (changed is None) for f in files), changed
        assert other.exists()
