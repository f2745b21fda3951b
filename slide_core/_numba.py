"""The one place that sets the Numba compilation policy for slide_core.

Every kernel in the engine is compiled through one of these decorators, so caching,
GIL release and fast-math are decided here and nowhere else:

- ``jit``: the default. ``cache=True`` (cold compiles are the slowest part of a test run;
  the on-disk cache makes the second run start in well under a second) and ``nogil=True``
  (kernels may be called from Python threads). No fastmath: hashing, table building and
  anything whose result a test compares bit-for-bit with a numpy reference must keep IEEE
  evaluation order.
- ``jit_fast``: ``jit`` plus ``fastmath=True``. Only for dot products and reductions where
  reassociation (SIMD partial sums) is acceptable and the result is compared with a
  tolerance, never bit-for-bit. Say so in the kernel's docstring.
- ``jit_parallel``: ``jit`` plus ``parallel=True`` for kernels with a ``prange`` loop.
  ``jit_parallel_fast`` adds fastmath on top, under the same rule as ``jit_fast``.

Thread count is set by the caller with ``numba.set_num_threads``; kernels never read it
from the environment.

On-disk cache: Numba keys a cached kernel on its own bytecode and its file's modification
stamp, not on the compile options and not on callees in other files that it inlined (a
changed sampling.py would leave step.py's cached kernels stale; so would new options in
twin.py: it happened once, and Adam silently ran unvectorised). So at import, before any
kernel is decorated, `_drop_stale_cache` hashes every source file of slide_core, and when
the hash differs from the one the cache was built with, deletes the engine's cache files:
any change to the engine recompiles all of it, once. Kernels outside slide_core that use these
decorators (the harness's XMC parser) call `drop_stale_cache_for` at import: their cache is
dropped when their own file, a module whose constants they freeze, or this policy changes, not
on every engine change (the engine's other sources are not compiled into them).

``run_threads`` runs a serial ``nogil`` kernel on several argument tuples from a few Python
threads: for the coarse-grained table maintenance kernels (hash_rows, build_tables) it
replaces ``parallel=True``, whose parfor compile (the whole inlined body optimised again
for the gufunc) made the blocked hash_rows alone slow to compile cold.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

import numba

from slide_core.files import atomic_write

_ROOT = Path(__file__).resolve().parent
_STAMP = _ROOT / "__pycache__" / "numba-sources.sha256"
_POLICY = Path(__file__).resolve()  # this file: the decorators' options are part of every kernel


def _digest(root: Path, paths) -> str:
    """sha256 of files (their paths relative to root, and their contents)."""
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def sources_digest() -> str:
    """sha256 of every slide_core source file (paths and contents)."""
    return _digest(_ROOT, _ROOT.rglob("*.py"))


def _drop_unless_stamped(stamp: Path, digest: str, cache_files) -> None:
    """Delete `cache_files` unless `stamp` says they were built from sources with `digest`;
    then stamp them with it."""
    try:
        if stamp.read_text() == digest:
            return
    except OSError:
        pass
    for path in cache_files:
        try:
            path.unlink()
        except OSError:  # another process starting at the same moment removed it first
            pass
    try:
        stamp.parent.mkdir(exist_ok=True)
        atomic_write(stamp, lambda f: f.write(digest.encode()))
    except OSError:  # read-only install: Numba then caches elsewhere (or not at all)
        pass


def _drop_stale_cache() -> None:
    """Delete slide_core's Numba cache files unless they were built from these sources."""
    _drop_unless_stamped(_STAMP, sources_digest(), list(_ROOT.rglob("__pycache__/*.nb[ic]")))


def drop_stale_cache_for(module_file: str | os.PathLike, *inputs: str | os.PathLike) -> None:
    """For kernels outside slide_core compiled with these decorators: delete the Numba cache
    files of `module_file` (its __file__) unless they were built from this very file, the
    `inputs` its kernels freeze (modules whose constants or kernels they use) and this
    policy (this file). Call it at the module's import, before its first decorator."""
    module = Path(module_file).resolve()
    files = {module, _POLICY, *(Path(f).resolve() for f in inputs)}
    digest = _digest(Path("/"), files)
    cache = module.parent / "__pycache__"
    _drop_unless_stamped(cache / f"numba-sources-{module.stem}.sha256", digest,
                         list(cache.glob(f"{module.stem}.*.nb[ic]")))


_drop_stale_cache()

# OpenMP (Numba's "omp" threading layer, libgomp) keeps its worker threads spinning for a while
# after each parallel kernel. The shared tail's BLAS products (shared_products.py) run on other
# threads right after such kernels, and lost a third of their speed to the spinning workers:
# 35 ms against 25 ms per batch with a shared tail of 5,000 of 50,000 labels on 2 cores, and
# per-sample tails were no slower passive. libgomp reads this when it is loaded, at the first
# parallel kernel: a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

jit = functools.partial(numba.njit, cache=True, nogil=True)
jit_fast = functools.partial(numba.njit, cache=True, nogil=True, fastmath=True)
jit_parallel = functools.partial(numba.njit, cache=True, nogil=True, parallel=True)
jit_parallel_fast = functools.partial(numba.njit, cache=True, nogil=True, parallel=True, fastmath=True)


def run_threads(kernel, arg_tuples, n_threads: int | None = None) -> list:
    """[kernel(*args) for args in arg_tuples], on up to ``n_threads`` threads (default:
    numba.get_num_threads() of the calling thread) pulling tuples in order. ``kernel``
    must be nogil and the tuples must write disjoint memory. Exceptions propagate."""
    arg_tuples = list(arg_tuples)
    n = min(len(arg_tuples), numba.get_num_threads() if n_threads is None else int(n_threads))
    if n <= 1:
        return [kernel(*a) for a in arg_tuples]
    with ThreadPoolExecutor(max_workers=n) as ex:
        return list(ex.map(lambda a: kernel(*a), arg_tuples))


__all__ = ["jit", "jit_fast", "jit_parallel", "jit_parallel_fast", "run_threads", "drop_stale_cache_for"]
