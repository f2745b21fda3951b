"""The shared tail's dense products (tail.py): one BLAS product per phase for the whole batch,
split into column blocks of the shared neurons, each block a single-threaded BLAS call on its
own Python thread.

    before the output kernel   W_S = W[ids];  Z = H @ W_S^T                   (rows x m)
    after it (Z holds dL/dz)   dH += Z @ W_S;  gW_S = Z^T @ H;  gb_S = sum_s Z   (m x n_in)

Why not OpenBLAS's own threads: after a call its threads keep spinning for a while, and the
Numba kernels that run next (the output kernel, the grouped Adam; OpenMP threads on the same
cores) lost more than half their speed to them: 72 ms against 30 ms per batch of 128 with a
shared tail of 5,000 of 50,000 labels on this 2-core machine. Single-threaded BLAS on one
column block per thread (BLAS limited to 1 thread for the duration, threadpoolctl) gives both
cores to the products and leaves none spinning (the dense evaluation, inference.py, does the
same). Each block's rows of gW_S and its partial dH are its own, so nothing races; the
partials are added in block order, so the result does not depend on thread timing.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np


_POOLS: dict[int, ThreadPoolExecutor] = {}  # one pool of worker threads per thread count, for every network
_CONTROLLER = []  # the threadpoolctl controller, made once (making one scans the loaded libraries)


def _pool(threads: int) -> ThreadPoolExecutor:
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="slide_tail")
    return _POOLS[threads]


def _blas_limit():
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


class SharedProducts:
    """Runs the products on `threads` column blocks (threads 1: in the caller's thread)."""

    def __init__(self, threads: int):
        self.threads = max(1, int(threads))

    def _blocks(self, m: int) -> list[tuple[int, int]]:
        T = min(self.threads, max(1, m // 256))  # blocks of at least 256 columns
        return [(t * m // T, (t + 1) * m // T) for t in range(T)]

    def _run(self, work, m: int) -> None:
        blocks = self._blocks(m)
        with _blas_limit():
            if len(blocks) == 1:
                work(0, *blocks[0])
                return
            pool = _pool(self.threads)
            for f in [pool.submit(work, t, lo, hi) for t, (lo, hi) in enumerate(blocks)]:
                f.result()

    def logits(self, W: np.ndarray, ids: np.ndarray, H: np.ndarray, W_S: np.ndarray, z: np.ndarray) -> None:
        """W_S[:] = W[ids] and z[:] = H @ W_S^T (z: rows x m, W_S: m x n_in)."""
        def work(t, lo, hi):
            np.take(W, ids[lo:hi], axis=0, out=W_S[lo:hi])
            np.matmul(H, W_S[lo:hi].T, out=z[:, lo:hi])

        self._run(work, len(ids))

    def gradients(self, z: np.ndarray, W_S: np.ndarray, H: np.ndarray, gW: np.ndarray, gb: np.ndarray,
                  dh_parts: np.ndarray, dH: np.ndarray) -> None:
        """gW[:] = z^T @ H, gb[:] = column sums of z, dH += z @ W_S (dh_parts: (threads, rows, n_in)
        scratch for each block's partial)."""
        m = z.shape[1]

        def work(t, lo, hi):
            np.matmul(z[:, lo:hi].T, H, out=gW[lo:hi])
            np.sum(z[:, lo:hi], axis=0, out=gb[lo:hi])
            np.matmul(z[:, lo:hi], W_S[lo:hi], out=dh_parts[t])

        self._run(work, m)
        for t in range(len(self._blocks(m))):
            dH += dh_parts[t]
