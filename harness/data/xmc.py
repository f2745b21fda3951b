"""Read and write the Extreme Classification Repository's text format.

    n_points n_features n_labels            <- header, line 1
    l1,l2,... f:v f:v ...                   <- one line per point, 0-based ids
     f:v f:v                                <- a point without labels starts with a space

Also accepted: Windows line endings, trailing blank lines, "3, 7" label lists (a label token
ending with ',' continues in the next token, as in the LSHTC files), features in any order
(sorted by id here) and repeated label ids (dropped, with a warning). Everything else that
deviates raises XMCFormatError naming file, 1-based line and problem.

The parsing itself is a Numba kernel over the raw bytes (harness.data.xmc_parse; writing:
harness.data.xmc_format); this
module reads the header, sizes the arrays, and turns the kernel's error codes into messages.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np

from harness.data import xmc_format as fmt
from harness.data import xmc_parse as k
from harness.data.csr import CSR
from slide_core.files import atomic_write

log = logging.getLogger(__name__)

_INT32_MAX = np.iinfo(np.int32).max
_WRITE_CHUNK_ROWS = 8192  # rows formatted per kernel call: bounds the output buffer


class XMCFormatError(ValueError):
    """A file that does not follow the format; str(e) is "path:line: problem"."""

    def __init__(self, path, line: int, problem: str):
        self.path = str(path)
        self.line = int(line)
        self.problem = problem
        super().__init__(f"{self.path}:{self.line}: {problem}")


class XMCSplit(NamedTuple):
    """One file's points: features (float32 values) and labels (values all 1.0)."""

    features: CSR
    labels: CSR

    @property
    def n_points(self) -> int:
        return self.features.n_rows


def read_xmc(path) -> XMCSplit:
    """Parse an XMC text file into CSR features and labels (see the module docstring)."""
    path = Path(path)
    buf = np.fromfile(path, dtype=np.uint8)
    n_points, n_features, n_labels, body_start = _read_header(path, buf)
    end = _end_without_trailing_breaks(buf)
    body_start = min(body_start, end)
    n_colon, n_comma, n_newline = k.count_separators(buf, body_start, end)
    # A header that claims more rows than the file has lines must fail with a row-count error,
    # not by allocating arrays for the claimed size: parse one row more than can exist.
    n_rows = min(n_points, n_newline + (1 if end > body_start else 0) + 1)

    f_indptr = np.empty(n_rows + 1, dtype=np.int64)
    f_indices = np.empty(n_colon, dtype=np.int32)
    f_data = np.empty(n_colon, dtype=np.float32)
    l_indptr = np.empty(n_rows + 1, dtype=np.int64)
    l_indices = np.empty(n_comma + n_rows, dtype=np.int32)
    err = np.zeros(4, dtype=np.int64)
    rows, fk, lk, n_dup = k.parse_body(buf, body_start, end, 2, n_rows, n_features, n_labels,
                                       f_indptr, f_indices, f_data, l_indptr, l_indices, err)
    if err[0] != 0:
        raise XMCFormatError(path, int(err[1]), _problem(buf, err, n_points, n_features, n_labels))
    if n_dup:
        log.warning("%s: dropped %d repeated label ids", path, n_dup)
    features = CSR(f_indptr, _trim(f_indices, fk), _trim(f_data, fk), n_features)
    labels = CSR(l_indptr, _trim(l_indices, lk), np.ones(lk, dtype=np.float32), n_labels)
    return XMCSplit(features, labels)


def write_xmc(split: XMCSplit, path) -> None:
    """Write a split in the same format (values with 9 significant digits: float32-exact)."""
    features, labels = split
    if features.n_rows != labels.n_rows:
        raise ValueError(f"features have {features.n_rows} rows but labels {labels.n_rows}")
    f_indptr = np.ascontiguousarray(features.indptr - features.indptr[0], dtype=np.int64)
    l_indptr = np.ascontiguousarray(labels.indptr - labels.indptr[0], dtype=np.int64)
    f_indices = np.ascontiguousarray(features.indices, dtype=np.int32)
    f_data = np.ascontiguousarray(features.data, dtype=np.float32)
    l_indices = np.ascontiguousarray(labels.indices, dtype=np.int32)
    if not np.all(np.isfinite(f_data)):
        raise ValueError("feature values must be finite to be written")
    n = features.n_rows

    def write(fh) -> None:
        fh.write(f"{n} {features.n_cols} {labels.n_cols}\n".encode())
        for lo in range(0, n, _WRITE_CHUNK_ROWS):
            hi = min(n, lo + _WRITE_CHUNK_ROWS)
            size = (fmt.ROW_BYTES * (hi - lo)
                    + fmt.LABEL_BYTES * int(l_indptr[hi] - l_indptr[lo])
                    + fmt.FEATURE_BYTES * int(f_indptr[hi] - f_indptr[lo]))
            out = np.empty(size, dtype=np.uint8)
            used = fmt.format_rows(f_indptr, f_indices, f_data, l_indptr, l_indices, lo, hi, out)
            fh.write(out[:used].tobytes())

    atomic_write(path, write)  # a reader never sees half a file


# ---------------------------------------------------------------- helpers

def _read_header(path: Path, buf: np.ndarray) -> tuple[int, int, int, int]:
    """(n_points, n_features, n_labels, offset of line 2)."""
    nl = np.flatnonzero(buf[:4096] == 10)
    head_end = int(nl[0]) if len(nl) else min(len(buf), 4096)
    text = buf[:head_end].tobytes().decode("ascii", errors="replace").strip()
    parts = text.split()
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise XMCFormatError(path, 1, "header must be three non-negative integers "
                                      f"'n_points n_features n_labels', got '{shown}'")
    n_points, n_features, n_labels = (int(p) for p in parts)
    if n_features > _INT32_MAX or n_labels > _INT32_MAX:
        raise XMCFormatError(path, 1, "n_features and n_labels must fit in int32")
    return n_points, n_features, n_labels, head_end + 1


def _end_without_trailing_breaks(buf: np.ndarray) -> int:
    """len(buf) without trailing '\\n' / '\\r' bytes: blank last lines are not points."""
    end = len(buf)
    while end > 0 and buf[end - 1] in (10, 13):
        end -= 1
    return end


def _trim(a: np.ndarray, n: int) -> np.ndarray:
    """a[:n], copied when the over-allocation is large (so the spare memory is freed)."""
    return a[:n].copy() if n < 0.9 * len(a) else a[:n]


def _token(buf: np.ndarray, pos: int) -> str:
    """The whitespace-delimited token starting at byte pos, for messages."""
    stop = pos
    while stop < len(buf) and stop - pos < 60 and buf[stop] not in (9, 10, 13, 32):
        stop += 1
    return buf[pos:stop].tobytes().decode("ascii", errors="replace")


def _problem(buf, err, n_points: int, n_features: int, n_labels: int) -> str:
    code, _, value, pos = (int(x) for x in err)
    tok = _token(buf, pos)
    if code == k.E_MALFORMED_FEATURE:
        return f"malformed feature '{tok}' (expected 'feature_id:value')"
    if code == k.E_NEGATIVE_FEATURE:
        return f"negative feature id {value} in '{tok}'"
    if code == k.E_FEATURE_RANGE:
        return f"feature id {tok.split(':')[0]} out of range [0, {n_features}) in '{tok}'"
    if code == k.E_MALFORMED_LABEL:
        return f"malformed label list '{tok}' (expected comma-separated label ids)"
    if code == k.E_NEGATIVE_LABEL:
        return f"negative label id {value} in '{tok}'"
    if code == k.E_LABEL_RANGE:
        return f"label id out of range [0, {n_labels}) in '{tok}'"
    if code == k.E_NONFINITE:
        return f"non-finite value in '{tok}'"
    if code == k.E_DUPLICATE_FEATURE:
        return f"duplicate feature id {value} in one row"
    if code == k.E_TOO_FEW_ROWS:
        return f"row count {value} differs from the header's {n_points} points (file ends early)"
    if code == k.E_TOO_MANY_ROWS:
        return f"row count differs from the header: more than the header's {n_points} points"
    return f"unknown parse error {code}"
