"""Compressed sparse rows: the one array format every room of the harness shares.

Field names follow scipy.sparse (indptr, indices, data) so that a scipy CSR matrix can be
passed wherever a CSR is read, but dtypes are fixed (int64 indptr, int32 indices, float32
data) because Numba kernels are compiled for exactly those.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class CSR(NamedTuple):
    """Rows of a sparse matrix. Row i is indices/data[indptr[i]:indptr[i+1]]."""

    indptr: np.ndarray  # int64, (n_rows + 1,), indptr[0] may be != 0 only for views
    indices: np.ndarray  # int32, column ids
    data: np.ndarray  # float32, values (1.0 for label matrices)
    n_cols: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_rows, self.n_cols)

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1] - self.indptr[0])

    def row_counts(self) -> np.ndarray:
        return np.diff(self.indptr)

    def row_slice(self, start: int, stop: int) -> "CSR":
        """Rows start..stop-1 as views of indices/data, with indptr rebased to 0."""
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        return CSR(self.indptr[start:stop + 1] - lo, self.indices[lo:hi], self.data[lo:hi], self.n_cols)

    def take_rows(self, rows: np.ndarray) -> "CSR":
        """Copy of the given rows, in the given order (vectorised gather, no Python loop)."""
        rows = np.asarray(rows, dtype=np.int64)
        starts = self.indptr[rows]
        counts = self.indptr[rows + 1] - starts
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        # position of every gathered entry in the source arrays
        offsets = np.repeat(starts - indptr[:-1], counts) + np.arange(indptr[-1], dtype=np.int64)
        return CSR(indptr, self.indices[offsets], self.data[offsets], self.n_cols)

    def to_dense(self) -> np.ndarray:
        """Dense float32 copy: for tests and tiny data only."""
        out = np.zeros(self.shape, dtype=np.float32)
        base = self.indptr[0]
        for i in range(self.n_rows):
            lo, hi = self.indptr[i] - base, self.indptr[i + 1] - base
            out[i, self.indices[lo:hi]] = self.data[lo:hi]
        return out

    @staticmethod
    def from_rows(rows: list[list[int]], n_cols: int, values: list[list[float]] | None = None) -> "CSR":
        """Build from Python lists (tests, small fixtures)."""
        counts = [len(r) for r in rows]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        indices = np.array([c for r in rows for c in r], dtype=np.int32)
        if values is None:
            data = np.ones(len(indices), dtype=np.float32)
        else:
            data = np.array([v for r in values for v in r], dtype=np.float32)
        return CSR(indptr, indices, data, n_cols)
