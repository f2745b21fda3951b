"""Parsed datasets cached as .npz, so only the first job of a sweep pays for parsing.

A text file's cache entry is keyed by its size, mtime and a hash of its header and a spread
sample of its bytes (the whole file when small), plus the parser's format version: touching,
editing or replacing the file makes a new key and the file is parsed again. A synthetic
dataset is keyed by its generator spec instead (harness.data.datasets).

Entries are written to a temporary name and renamed into place (slide_core.files.atomic_write),
so parallel jobs of a sweep that miss at the same time each write a complete file and readers
never see half of one.
"""
from __future__ import annotations

import hashlib
import logging
import zipfile
from pathlib import Path

import numpy as np

from harness.data.csr import CSR
from harness.data.xmc import XMCSplit, read_xmc
from slide_core.files import atomic_write

log = logging.getLogger(__name__)

# Bump when read_xmc's output for the same bytes changes, to invalidate old entries.
PARSER_VERSION = 1
_WHOLE_FILE_LIMIT = 4 << 20  # files up to this size are hashed entirely
_SAMPLE_BYTES = 64 << 10  # otherwise: head, tail and 32 evenly spread blocks of this size
_N_SAMPLES = 32
# Hex characters of a content digest that name a cache entry. This short key is also what a
# run logs as its MLflow dataset digest (harness.tracking), so the Dataset column of the
# MLflow UI and the files under the cache folder name the same data the same way.
KEY_CHARS = 20


def file_key(path) -> str:
    """Hex digest of (parser version, size, mtime, header + sample of the content)."""
    path = Path(path)
    st = path.stat()
    h = hashlib.sha256(f"xmc-v{PARSER_VERSION}:{st.st_size}:{st.st_mtime_ns}".encode())
    with open(path, "rb") as fh:
        if st.st_size <= _WHOLE_FILE_LIMIT:
            h.update(fh.read())
        else:
            offsets = np.linspace(0, st.st_size - _SAMPLE_BYTES, _N_SAMPLES + 2).astype(np.int64)
            for off in offsets:  # first is the head (with the header), last the tail
                fh.seek(int(off))
                h.update(fh.read(_SAMPLE_BYTES))
    return h.hexdigest()


def load_xmc_cached(path, cache_dir) -> XMCSplit:
    """read_xmc(path) through the cache in cache_dir (created if missing)."""
    return load_xmc_keyed(path, cache_dir)[0]


def load_xmc_keyed(path, cache_dir) -> tuple[XMCSplit, str]:
    """load_xmc_cached, plus the cache key of the file (KEY_CHARS of its file_key), which
    names its entry: (split, key)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"XMC data file not found: {path}")
    cache_dir = Path(cache_dir)
    prefix = f"{path.stem}-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]}"
    key = file_key(path)[:KEY_CHARS]
    entry = cache_dir / f"{prefix}-{key}.npz"
    cached = load_splits(entry)
    if cached is not None:
        log.info("loaded %s from cache %s", path, entry)
        return cached["data"], key
    log.info("parsing %s (no cache entry %s)", path, entry.name)
    split = read_xmc(path)
    if store_or_warn(entry, {"data": split}):
        for stale in cache_dir.glob(f"{prefix}-*.npz"):  # entries of older versions of the file
            if stale != entry:
                stale.unlink(missing_ok=True)
    return split, key


def store_or_warn(entry: Path, splits: dict[str, XMCSplit]) -> bool:
    """save_splits, but a cache that cannot be written (read-only, disk full) only costs the
    next job a re-parse: log it and go on. Returns whether the entry was written."""
    try:
        save_splits(entry, splits)
        return True
    except OSError as e:
        log.warning("could not write cache entry %s (%s); continuing without it", entry, e)
        return False


def save_splits(entry: Path, splits: dict[str, XMCSplit]) -> None:
    """Write named splits to one .npz, atomically."""
    entry = Path(entry)
    entry.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, split in splits.items():
        for part, csr in (("x", split.features), ("y", split.labels)):
            arrays[f"{name}.{part}.indptr"] = csr.indptr - csr.indptr[0]
            arrays[f"{name}.{part}.indices"] = csr.indices
            arrays[f"{name}.{part}.data"] = csr.data
            arrays[f"{name}.{part}.n_cols"] = np.int64(csr.n_cols)
    atomic_write(entry, lambda f: np.savez(f, **arrays))  # uncompressed: loading is the hot path, disk is cheap


def load_splits(entry: Path) -> dict[str, XMCSplit] | None:
    """The splits saved by save_splits, or None when the entry is missing or unreadable."""
    entry = Path(entry)
    if not entry.is_file():
        return None
    try:
        with np.load(entry) as z:
            names = sorted({key.split(".")[0] for key in z.files})
            out = {}
            for name in names:
                x, y = (CSR(z[f"{name}.{p}.indptr"].astype(np.int64, copy=False),
                            z[f"{name}.{p}.indices"].astype(np.int32, copy=False),
                            z[f"{name}.{p}.data"].astype(np.float32, copy=False),
                            int(z[f"{name}.{p}.n_cols"])) for p in ("x", "y"))
                out[name] = XMCSplit(x, y)
            return out
    # a truncated or foreign file: parse / generate again and overwrite it
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        log.warning("ignoring unreadable cache entry %s (%s)", entry, e)
        return None
