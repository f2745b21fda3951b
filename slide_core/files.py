"""Writing a file so that its name never shows half of it: the one way the engine and the
harness save checkpoints, network files and data caches.

`atomic_write(path, write)` hands `write` a binary file object open on a temporary name in the
same folder (same file system, so the rename is atomic), fsyncs the data, renames it over
`path` (os.replace: a reader sees the old file or the new one, never a mix) and fsyncs the
folder, so the rename itself survives a crash. The temporary name is unique per process
(`.<name>.<pid>.tmp`): parallel jobs of a sweep that write the same cache entry each write
their own temporary and the last rename wins. If anything fails, the temporary is removed
and the old file is left as it was.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable


def _temporary_name(path: str | os.PathLike) -> Path:
    """Where atomic_write writes before renaming: a hidden name next to `path`, unique per
    process (a crash leaves it behind; it matches `.<name>.*.tmp`)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _fsync_folder(folder: str | os.PathLike) -> None:
    """Make a rename inside `folder` durable (POSIX: the entry lives in the folder's data)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Replace `path` with what `write(file)` writes, atomically (module docstring)."""
    path = Path(path)
    tmp = _temporary_name(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: never leave the temporary behind
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
