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
"""
from __future__ import annotations

import functools

import numba

jit = functools.partial(numba.njit, cache=True, nogil=True)
jit_fast = functools.partial(numba.njit, cache=True, nogil=True, fastmath=True)
jit_parallel = functools.partial(numba.njit, cache=True, nogil=True, parallel=True)
jit_parallel_fast = functools.partial(numba.njit, cache=True, nogil=True, parallel=True, fastmath=True)

__all__ = ["jit", "jit_fast", "jit_parallel", "jit_parallel_fast"]
