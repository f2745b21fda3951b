"""Write a batch kernel once, compile it twice: serial (reproducible) and parallel (HOGWILD).

The body uses `numba.prange` over chunks of the batch; compiled without parallel=True the
prange is a plain range, so the serial variant runs the very same code in sample order.
"""
from __future__ import annotations

import types

from slide_core._numba import jit_fast, jit_parallel_fast


def twin(fn):
    """(serial, parallel) dispatchers of one Python function (fastmath policy, see _numba).

    The copies get distinct qualified names so that Numba's on-disk cache keeps both (its
    cache files are named after the function's qualified name). Changing the options here
    recompiles every kernel: see _numba (the cache is dropped when any engine source changes)."""

    def clone(suffix):
        f = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__, fn.__closure__)
        f.__qualname__ = fn.__qualname__ + suffix
        f.__doc__ = fn.__doc__
        f.__module__ = fn.__module__
        return f

    # error_model="numpy": a float division is IEEE (no ZeroDivisionError branch), without
    # which LLVM leaves any loop containing a division scalar (Adam's m / (sqrt(v) + eps)
    # measured unvectorised). Every division in these kernels has a positive denominator.
    return (jit_fast(clone("_serial"), error_model="numpy"),
            jit_parallel_fast(clone("_parallel"), error_model="numpy"))
