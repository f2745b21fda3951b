"""Checkpoint of a SlideNetwork: its whole state as named numpy arrays (no pickle).

`network_state` gives the arrays: the config (JSON), the step, the seed, rebuild counters,
every layer's weights, Adam moments and row stamps, every layer's hash functions, tables and
the keys the tables were built from (what the adaptive schedule measures drift against), and
the diagnostics accumulated since the last stats() call, and the training label counts a tail
law follows (slide_core/tail.py). The RNG is counter-based (rng.py),
so seed + step is its whole state. `restore_network` builds a network from them that continues
training bit-identically in serial mode (tests/test_slide_engine.py,
test_checkpoint_round_trip_continues_identically). save_network / load_network put the arrays
in one .npz file; the harness puts them in its job checkpoints (harness.job_state).
"""
from __future__ import annotations

import json
import os
from typing import Mapping

import numpy as np

from slide_core.config import NetworkConfig
from slide_core.hashing import HashFunctions
from slide_core.layer import LayerParams
from slide_core.tables import HashTables

FORMAT = 4  # 4: the label counts (the tail's law) and the rows' centers; 3: diagnostics and the last key drift; 2, 3 still load
_READABLE = (2, 3, 4)
_LAYER_FIELDS = ("W", "b", "mW", "vW", "mb", "vb", "row_stamp", "bias_stamp")


def _put_tuple(arrays: dict, prefix: str, nt) -> None:
    for name, value in nt._asdict().items():
        arrays[f"{prefix}.{name}"] = np.asarray(value)


def _get_tuple(z, prefix: str, cls):
    fields = {}
    for name in cls._fields:
        a = z[f"{prefix}.{name}"]
        fields[name] = int(a) if a.ndim == 0 else np.ascontiguousarray(a)
    return cls(**fields)


def network_state(net) -> dict[str, np.ndarray]:
    """The network's whole state as named arrays (views of the live arrays, not copies: write
    them out before the next training step)."""
    if net._ws is not None:  # the workspace's per-batch counters into the accumulators
        net._fold_stats(net._ws)
    meta = {"format": FORMAT, "config": net.config.to_dict(), "step": net.step, "seed": net.seed,
            "rebuilds": net.rebuilds, "rehash_total": net.rehash_total, "last_drift": net.last_drift,
            "rehashes_since_stats": net._rehashes, "batches_since_stats": net._batches_since_stats,
            "samples_since_stats": net._samples_since_stats, "timers": net._timers}
    arrays: dict[str, np.ndarray] = {"meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                                     "stat_acc": net._stat_acc}
    if net.label_counts is not None:
        arrays["label_counts"] = net.label_counts
    for i, p in enumerate(net.params):
        for name in _LAYER_FIELDS:
            arrays[f"layer{i}.{name}"] = getattr(p, name)
        if net.hfs[i] is not None:
            _put_tuple(arrays, f"hf{i}", net.hfs[i])
            _put_tuple(arrays, f"tables{i}", net.tables[i])
            arrays[f"keys{i}"] = net._keys_t[i]
        if i in net._centers:
            arrays[f"center{i}"] = net._centers[i]
    return arrays


def restore_network(cls, arrays: Mapping[str, np.ndarray], threads: int | None = None, source: str = "checkpoint"):
    """A `cls` (SlideNetwork) with the state `network_state` gave; `source` names where the
    arrays came from in error messages."""
    meta = json.loads(bytes(arrays["meta"]).decode())
    if meta.get("format") not in _READABLE:
        raise ValueError(f"{source}: SLIDE checkpoint format {meta.get('format')} is not one of {_READABLE}")
    config = NetworkConfig.from_dict(meta["config"])
    n_layers = len(config.layers)
    weights = []
    for i in range(n_layers):
        W = arrays[f"layer{i}.W"]
        weights.append((W if cls.input_major(i) else W.T, arrays[f"layer{i}.b"]))
    # the constructor builds fresh tables from these weights; they are replaced below
    counts = arrays["label_counts"] if "label_counts" in arrays else None
    net = cls(config, initial_weights=weights, seed=meta["seed"], threads=threads or 1, label_counts=counts)
    for i in range(n_layers):
        fields = {name: np.ascontiguousarray(arrays[f"layer{i}.{name}"]) for name in _LAYER_FIELDS}
        p = net.params[i]
        net.params[i] = LayerParams(**fields, gW=p.gW, gb=p.gb)
        if f"hf{i}.family" in arrays:
            net.hfs[i] = _get_tuple(arrays, f"hf{i}", HashFunctions)
            net.tables[i] = _get_tuple(arrays, f"tables{i}", HashTables)
            net._keys_t[i] = np.ascontiguousarray(arrays[f"keys{i}"])
        if f"center{i}" in arrays:
            net._centers[i] = np.ascontiguousarray(arrays[f"center{i}"])
    net.step = int(meta["step"])
    net.rebuilds = list(meta["rebuilds"])
    net.rehash_total = int(meta["rehash_total"])
    if meta["format"] >= 3:
        net.last_drift = list(meta["last_drift"])
        net._stat_acc[:] = arrays["stat_acc"]
        net._rehashes = int(meta["rehashes_since_stats"])
        net._batches_since_stats = int(meta["batches_since_stats"])
        net._samples_since_stats = int(meta["samples_since_stats"])
        net._timers.update(meta["timers"])
    return net


def save_network(net, path) -> None:
    tmp = f"{os.fspath(path)}.tmp.npz"
    np.savez(tmp, **network_state(net))
    os.replace(tmp, path)  # never leave a half-written checkpoint under the real name


def load_network(cls, path, threads: int | None = None):
    with np.load(path, allow_pickle=False) as z:
        return restore_network(cls, z, threads, source=os.fspath(path))
