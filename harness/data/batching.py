"""Seeded training order, batches, and the fixed evaluation subset: identical for every model.

The public XMC files are sorted by label, so training in file order would feed a model one
label block at a time; every epoch gets its own seeded permutation instead. Each use has its
own random stream (SeedSequence spawn keys), so e.g. changing the number of epochs or the
eval subset size never changes the shuffle, and nothing is seeded from the clock.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from harness.data.csr import CSR
from harness.data.xmc import XMCSplit

_STREAM_EPOCH_ORDER = 101
_STREAM_EVAL_SUBSET = 102


def _rng(seed: int, *key: int) -> np.random.Generator:
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key))


def epoch_order(n_rows: int, epoch: int, seed: int) -> np.ndarray:
    """int64 permutation of range(n_rows) for this epoch; a pure function of its arguments."""
    if n_rows < 0 or epoch < 0:
        raise ValueError(f"n_rows and epoch must be >= 0, got {n_rows}, {epoch}")
    return _rng(seed, _STREAM_EPOCH_ORDER, int(epoch)).permutation(int(n_rows)).astype(np.int64)


def iterate_batches(split: XMCSplit, batch_size: int, epoch: int,
                    seed: int, first_batch: int = 0) -> Iterator[tuple[CSR, CSR]]:
    """(features, labels) batches in epoch_order, from batch `first_batch` of the epoch on (a
    resumed job); the last, smaller batch is kept."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = epoch_order(split.features.n_rows, epoch, seed)
    for start in range(int(first_batch) * batch_size, len(order), batch_size):
        rows = order[start:start + batch_size]
        yield split.features.take_rows(rows), split.labels.take_rows(rows)


def n_batches(n_rows: int, batch_size: int) -> int:
    """Batches per epoch, counting the last partial one."""
    return -(-int(n_rows) // int(batch_size))


def eval_subset(n_rows: int, n_eval: int, seed: int) -> np.ndarray:
    """Sorted int64 row ids of min(n_eval, n_rows) test points, drawn without replacement."""
    if n_rows < 0 or n_eval < 0:
        raise ValueError(f"n_rows and n_eval must be >= 0, got {n_rows}, {n_eval}")
    if n_eval >= n_rows:
        return np.arange(n_rows, dtype=np.int64)
    rows = _rng(seed, _STREAM_EVAL_SUBSET).choice(int(n_rows), size=int(n_eval), replace=False)
    return np.sort(rows).astype(np.int64)
