"""One-file checkpoint of a SlideNetwork (numpy .npz, no pickle).

Holds the config (JSON), the step, the seed, rebuild counters, every layer's weights,
Adam moments and row stamps, and every layer's hash functions, tables and the keys the
tables were built from (what the adaptive schedule measures drift against). The RNG is
counter-based (rng.py), so seed + step is its whole state. A loaded network continues
training bit-identically in serial mode (tests/test_slide_engine.py,
test_checkpoint_round_trip_continues_identically).
"""
from __future__ import annotations

import json
import os

import numpy as np

from slide_core.config import NetworkConfig
from slide_core.hashing import HashFunctions
from slide_core.layer import LayerParams
from slide_core.tables import HashTables

FORMAT = 2  # 2: active-set budget / retrieval cap / padding options, keys saved
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


def save_network(net, path) -> None:
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "config": net.config.to_dict(), "step": net.step, "seed": net.seed,
            "rebuilds": net.rebuilds, "rehash_total": net.rehash_total}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    for i, p in enumerate(net.params):
        for name in _LAYER_FIELDS:
            arrays[f"layer{i}.{name}"] = getattr(p, name)
        if net.hfs[i] is not None:
            _put_tuple(arrays, f"hf{i}", net.hfs[i])
            _put_tuple(arrays, f"tables{i}", net.tables[i])
            arrays[f"keys{i}"] = net._keys_t[i]
    tmp = f"{os.fspath(path)}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # never leave a half-written checkpoint under the real name


def load_network(cls, path, threads: int | None = None):
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: checkpoint format {meta.get('format')} is not {FORMAT}")
        config = NetworkConfig.from_dict(meta["config"])
        n_layers = len(config.layers)
        weights = []
        for i in range(n_layers):
            W = z[f"layer{i}.W"]
            weights.append((W if cls.input_major(i) else W.T, z[f"layer{i}.b"]))
        # the constructor builds fresh tables from these weights; they are replaced below
        net = cls(config, initial_weights=weights, seed=meta["seed"], threads=threads or 1)
        for i in range(n_layers):
            fields = {name: np.ascontiguousarray(z[f"layer{i}.{name}"]) for name in _LAYER_FIELDS}
            p = net.params[i]
            net.params[i] = LayerParams(**fields, gW=p.gW, gb=p.gb)
            if f"hf{i}.family" in z.files:
                net.hfs[i] = _get_tuple(z, f"hf{i}", HashFunctions)
                net.tables[i] = _get_tuple(z, f"tables{i}", HashTables)
                net._keys_t[i] = np.ascontiguousarray(z[f"keys{i}"])
        net.step = int(meta["step"])
        net.rebuilds = list(meta["rebuilds"])
        net.rehash_total = int(meta["rehash_total"])
    return net
