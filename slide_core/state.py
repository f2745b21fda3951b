"""The named-array form of a SlideNetwork's state: its format version, its JSON header and
NamedTuples as one array per field. What the state holds is SlideNetwork.state's business
(network.py); files are checkpoint.py's. Arrays only, so a state goes into an .npz without
pickle and into the harness's job checkpoints as it is.
"""
from __future__ import annotations

import json
from typing import Mapping

import numpy as np

# 4: the label counts (the tail's law) and the rows' centers; 3: diagnostics and the last key
# drift. A format 3 state reads with the same code (it only lacks optional arrays); format 2
# (no diagnostics) is no longer read.
FORMAT = 4
READABLE = (3, 4)


def encode_meta(meta: dict) -> np.ndarray:
    """The JSON header as a uint8 array, with the format version first."""
    return np.frombuffer(json.dumps({"format": FORMAT, **meta}).encode(), dtype=np.uint8)


def decode_meta(arrays: Mapping[str, np.ndarray], source: str) -> dict:
    """The JSON header of a state; ValueError naming `source` for a format it cannot read."""
    meta = json.loads(bytes(arrays["meta"]).decode())
    if meta.get("format") not in READABLE:
        raise ValueError(f"{source}: SLIDE checkpoint format {meta.get('format')} is not one of {READABLE}")
    return meta


def put_tuple(arrays: dict, prefix: str, nt) -> None:
    """Every field of NamedTuple `nt` as arrays[f"{prefix}.{field}"] (ints as 0-d arrays)."""
    for name, value in nt._asdict().items():
        arrays[f"{prefix}.{name}"] = np.asarray(value)


def get_tuple(arrays: Mapping[str, np.ndarray], prefix: str, cls):
    """The `cls` NamedTuple put_tuple stored under `prefix` (0-d arrays back to ints)."""
    fields = {}
    for name in cls._fields:
        a = arrays[f"{prefix}.{name}"]
        fields[name] = int(a) if a.ndim == 0 else np.ascontiguousarray(a)
    return cls(**fields)
